#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "privs.h"

int privs_drop(const char *user, const char *group, char *err, size_t errlen)
{
    if ((!user && !group) || geteuid() != 0)
        return 0;

    uid_t uid = getuid();
    gid_t gid = getgid();
    if (user) {
        errno = 0;
        struct passwd *pw = getpwnam(user);
        if (!pw) {
            snprintf(err, errlen, "user '%s': %s", user,
                     errno ? strerror(errno) : "no such user");
            return -1;
        }
        uid = pw->pw_uid;
        gid = pw->pw_gid; /* the user's primary group unless `group` says otherwise */
    }
    if (group) {
        errno = 0;
        struct group *gr = getgrnam(group);
        if (!gr) {
            snprintf(err, errlen, "group '%s': %s", group,
                     errno ? strerror(errno) : "no such group");
            return -1;
        }
        gid = gr->gr_gid;
    }
    /* Group first: once the uid is gone, so is the right to change it. */
    int rc = user ? initgroups(user, gid) : setgroups(1, &gid);
    if (rc != 0 || setgid(gid) != 0 || (user && setuid(uid) != 0)) {
        snprintf(err, errlen, "dropping privileges to %s%s%s: %s", user ? user : "",
                 group ? ":" : "", group ? group : "", strerror(errno));
        return -1;
    }
    if (user && uid != 0 && (setuid(0) == 0 || geteuid() == 0)) {
        snprintf(err, errlen, "dropping privileges: root could be regained");
        return -1;
    }
    return 0;
}
