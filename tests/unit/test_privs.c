/* privs_drop (host/privs.c): started by anyone but root, `user` and `group`
 * are ignored (README, Privileges) — even unknown ones — and nothing
 * changes.  Run in a child that is not root (made so with setuid when the
 * tests run as root), since a drop cannot be undone. */
#include <grp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "privs.h"

/* In a non-root child: what privs_drop(user, group) does.  Exit codes:
 * 0 ignored as promised, 1 returned an error, 2 changed an id,
 * 3 could not become non-root. */
static int ignored_when_not_root(const char *user, const char *group)
{
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (geteuid() == 0) {
            /* any unprivileged ids will do: nobody's by number */
            if (setgroups(0, NULL) != 0 || setgid(65534) != 0 || setuid(65534) != 0)
                _exit(3);
        }
        uid_t uid = getuid(), euid = geteuid();
        gid_t gid = getgid(), egid = getegid();
        char err[256] = "";
        if (privs_drop(user, group, err, sizeof err) != 0) {
            fprintf(stderr, "privs_drop(%s, %s): %s\n", user ? user : "-",
                    group ? group : "-", err);
            _exit(1);
        }
        _exit(getuid() == uid && geteuid() == euid && getgid() == gid && getegid() == egid
                  ? 0
                  : 2);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static void test_user_group_ignored_when_not_root(void **state)
{
    (void)state;
    assert_int_equal(ignored_when_not_root("root", "root"), 0);
    assert_int_equal(ignored_when_not_root("daemon", NULL), 0);
    assert_int_equal(ignored_when_not_root(NULL, "daemon"), 0);
    /* not even looked up */
    assert_int_equal(ignored_when_not_root("no-such-user-ioserve", "no-such-group-ioserve"),
                     0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_user_group_ignored_when_not_root),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
