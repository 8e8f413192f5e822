/* Content types by file extension: /etc/mime.types plus a fallback. */
#ifndef MIME_H
#define MIME_H

/* Load the table (replaces any previous one); -1 if unreadable. */
int		 mime_load(const char *path);
/* Type for a file name; "application/octet-stream" when unknown. */
const char	*mime_type(const char *name);

#endif
