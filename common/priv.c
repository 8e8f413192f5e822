#include "config.h"

#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "priv.h"

int
priv_resolve(const char *user, const char *group, struct priv *p,
    char *err, size_t errlen)
{
	struct passwd *pw;
	struct group *gr;

	p->drop = 0;
	if (user == NULL || *user == '\0')
		return 0;
	errno = 0;
	if ((pw = getpwnam(user)) == NULL) {
		snprintf(err, errlen, "user: no such user '%s'", user);
		return -1;
	}
	p->uid = pw->pw_uid;
	p->gid = pw->pw_gid;
	snprintf(p->user, sizeof(p->user), "%s", user);
	if (group != NULL && *group != '\0') {
		if ((gr = getgrnam(group)) == NULL) {
			snprintf(err, errlen, "group: no such group '%s'", group);
			return -1;
		}
		p->gid = gr->gr_gid;
	}
	p->drop = 1;
	return 0;
}

int
priv_drop(const struct priv *p, char *err, size_t errlen)
{
	if (p->chroot[0] != '\0') {
		if (chroot(p->chroot) == -1 || chdir("/") == -1) {
			snprintf(err, errlen, "chroot %s: %s", p->chroot,
			    strerror(errno));
			return -1;
		}
	}
	if (!p->drop)
		return 0;
	if (getuid() != 0 && geteuid() != 0) {
		/* Not root: we can only be who we already are. */
		if (getuid() == p->uid)
			return 0;
		snprintf(err, errlen, "cannot switch to user %s: not running "
		    "as root", p->user);
		return -1;
	}
	if (initgroups(p->user, p->gid) == -1 || setgid(p->gid) == -1 ||
	    setuid(p->uid) == -1) {
		snprintf(err, errlen, "switching to user %s: %s", p->user,
		    strerror(errno));
		return -1;
	}
	/* Verify: there must be no way back. */
	if (p->uid != 0 && (setuid(0) != -1 || geteuid() == 0 ||
	    getuid() != p->uid || getgid() != p->gid)) {
		snprintf(err, errlen, "privileges were not dropped");
		return -1;
	}
	return 0;
}
