/* Privileges: resolve the configured user/group, drop to them, chroot. */
#ifndef PRIV_H
#define PRIV_H

#include <stddef.h>
#include <sys/types.h>

struct priv {
	int	 drop;		/* a user is configured */
	uid_t	 uid;
	gid_t	 gid;
	char	 user[256];
	char	 chroot[4096];	/* empty: no chroot */
};

/* Look the user and group up; -1 with a message if they do not exist. */
int	priv_resolve(const char *user, const char *group, struct priv *,
	    char *err, size_t errlen);
/*
 * chroot (if asked), initgroups, setgid, setuid, and verify; -1 with
 * the reason in err.
 */
int	priv_drop(const struct priv *, char *err, size_t errlen);

#endif
