/* Error log: one line per event, "TIME [level] role[pid]: message". */
#ifndef LOG_H
#define LOG_H

#include <stdarg.h>

enum log_level { LOG_LVL_ERROR, LOG_LVL_WARN, LOG_LVL_INFO, LOG_LVL_DEBUG };

/* Where error-log lines go before and after log_open(). */
void	log_init(const char *role, int to_stderr);
void	log_set_role(const char *role);
void	log_set_level(enum log_level);
int	log_level_parse(const char *, enum log_level *);
int	log_open(const char *target);	/* file path or "syslog"; -1 on error */
int	log_reopen(void);		/* SIGUSR1: reopen the file, if any */
int	log_file_fd(void);		/* the log file's fd, or -1 */
void	log_adopt(int fd);		/* take over fd (sent by the master) */

void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatal(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));
void	fatalx(const char *, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
