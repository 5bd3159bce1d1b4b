/*
 * A generation's life and a worker's life without its master.
 *
 * Global scenarios (run once, as it.<scenario>):
 *   lifecycle  every state a generation leaves with no live worker:
 *              serving (all workers waiting out their respawn delay) then
 *              SIGQUIT or a reload; starting that fails; the slots of
 *              ended generations are free again
 *   restart_settings  a reload that changes backlog, user, group and
 *              pid_file says which of them need a restart
 * Per-model scenario (it.<model>.orphan):
 *   orphan     kill -9 of the master while a client keeps a connection
 *              busy: the workers stop accepting at once, end within
 *              drain_timeout, and a new master binds the same port
 *
 * Each test starts its own servers; the teardown stops and reaps them,
 * and ends (by pid) the workers of a master the test killed.
 */
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define LC_MAX_SERVERS 2
static struct it_server lc_srv[LC_MAX_SERVERS];
static int lc_nsrv;

static struct it_server *lc_start(const char *name, const char *const *lines)
{
    if (lc_nsrv == LC_MAX_SERVERS)
        IT_FAIL("more than %d servers in one test", LC_MAX_SERVERS);
    char *cfg = it_write_config(name, lines);
    IT_CHECK(cfg, "cannot write config %s", name);
    struct it_server *s = &lc_srv[lc_nsrv++];
    int rc = it_server_start(s, cfg);
    free(cfg);
    IT_CHECK(rc == 0, "server %s did not start (see its log above)", name);
    return s;
}

/* A process that exists and is not a zombie. */
static int lc_running(pid_t pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    return p && p[1] == ' ' && p[2] != 'Z' && p[2] != 'X';
}

static int lc_setup(void **state)
{
    (void)state;
    lc_nsrv = 0;
    return 0;
}

static int lc_teardown(void **state)
{
    (void)state;
    it_close_all();
    for (int i = 0; i < lc_nsrv; i++) {
        struct it_server *s = &lc_srv[i];
        if (!it_server_alive(s)) /* a master the test killed: its orphans */
            for (int j = 0; j < s->nworkers; j++)
                if (lc_running(s->workers[j]))
                    kill(s->workers[j], SIGKILL);
        if (it_server_stop(s) != 0)
            it_failed = 1;
    }
    lc_nsrv = 0;
    return 0;
}

#define LC_TEST(f) cmocka_unit_test_setup_teardown(f, lc_setup, lc_teardown)

/* Sends sig to the master: the log's size before, to wait on what it
 * does. */
static size_t lc_signal(struct it_server *s, int sig)
{
    size_t off = it_log_size(s);
    IT_CHECK(kill(s->pid, sig) == 0, "kill(master, SIG%s): %s", sigabbrev_np(sig),
             strerror(errno));
    return off;
}

/* ============================================================ lifecycle */

static const char *const one_worker[] = {"workers = 1;", "drain_timeout = 30;", NULL};

/* serving -> draining with 0 live workers: SIGQUIT ends the master at once
 * instead of waiting for a respawn that draining cancelled. */
static void quit_while_every_worker_waits_respawn(void **state)
{
    (void)state;
    struct it_server *s = lc_start("quit_respawn", one_worker);
    it_kill_until_respawn_waits(s, "2000 ms");
    int64_t t0 = it_now_ms();
    size_t off = lc_signal(s, SIGQUIT);
    IT_CHECK(it_wait_exit(s, 1500),
             "the master still runs 1.5 s after SIGQUIT with no live worker");
    IT_CHECK(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0,
             "the master ended with status 0x%x after SIGQUIT", s->status);
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 0),
             "the log does not say generation 1 drained");
    it_log("master exited %lld ms after SIGQUIT", (long long)(it_now_ms() - t0));
}

/* serving -> draining with 0 live workers by a reload: the old generation
 * ends at once (its slot, socket and counters freed), the new one serves. */
static void reload_while_every_worker_waits_respawn(void **state)
{
    (void)state;
    struct it_server *s = lc_start("reload_respawn", one_worker);
    it_kill_until_respawn_waits(s, "2000 ms");
    size_t off = lc_signal(s, SIGHUP);
    IT_CHECK(it_wait_log(s, off, "reload: generation 2 serving", 5000),
             "the reload did not complete");
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 1000),
             "generation 1 (no live worker) did not end when it began draining");
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "connect: %s", it_errbuf);
    IT_ECHO(fd, "after", 5);
    it_close(fd);
    /* and SIGQUIT still ends everything */
    lc_signal(s, SIGQUIT);
    IT_CHECK(it_wait_exit(s, 5000), "the master still runs 5 s after SIGQUIT");
}

/* starting -> failed with 0 live workers, more times than there are
 * generation slots: each failed generation ends, and a good reload still
 * gets a slot. */
static void failed_starts_end(void **state)
{
    (void)state;
    struct it_server *s = lc_start("failed_starts", one_worker);
    char bad[1024];
    snprintf(bad, sizeof bad, "model = \"%s/bad_no_run.so\";",
             it_env.bad_plugin_dir ? it_env.bad_plugin_dir : "/nonexistent");
    const char *const bad_lines[] = {"workers = 1;", bad, NULL};
    for (int i = 0; i < 18; i++) {
        free(it_write_config("failed_starts", bad_lines));
        size_t off = lc_signal(s, SIGHUP);
        IT_CHECK(it_wait_log(s, off, "keeps serving", 5000),
                 "bad reload %d: no \"reload failed ... keeps serving\"", i + 1);
        char ended[64];
        snprintf(ended, sizeof ended, "generation %d: ended", i + 2);
        IT_CHECK(it_wait_log(s, off, ended, 2000), "bad reload %d: no \"%s\"", i + 1,
                 ended);
    }
    free(it_write_config("failed_starts", one_worker));
    size_t off = lc_signal(s, SIGHUP);
    IT_CHECK(it_wait_log(s, off, "reload: generation 20 serving", 5000),
             "a good reload after 18 failed ones did not complete");
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 5000),
             "generation 1 did not drain after the good reload");
}

/* starting -> failed by SIGQUIT while the new generation starts: the
 * master ends both generations and exits. */
static void quit_while_starting(void **state)
{
    (void)state;
    struct it_server *s = lc_start("quit_starting", one_worker);
    size_t off = lc_signal(s, SIGHUP);
    lc_signal(s, SIGQUIT);
    IT_CHECK(it_wait_exit(s, 5000), "the master still runs 5 s after SIGQUIT");
    IT_CHECK(WIFEXITED(s->status) && WEXITSTATUS(s->status) == 0,
             "the master ended with status 0x%x after SIGQUIT", s->status);
    IT_CHECK(it_wait_log(s, off, "generation 1 drained in", 0),
             "the log does not say generation 1 drained");
}

/* ===================================================== restart_settings */

/* A reload that changes backlog, user, group and pid_file: the backlog
 * is applied to the kept socket, the others are named at warn as needing
 * a restart, and the new generation serves. */
static void reload_names_what_needs_restart(void **state)
{
    (void)state;
    const char *const before[] = {"backlog = 128;", NULL};
    struct it_server *s = lc_start("restart_settings", before);
    char pid_line[600];
    snprintf(pid_line, sizeof pid_line, "pid_file = \"%s/elsewhere.pid\";", it_tmpdir());
    const char *const after[] = {"backlog = 64;", "user = \"nobody\";",
                                 "group = \"nogroup\";", pid_line, NULL};
    free(it_write_config("restart_settings", after));
    size_t off = lc_signal(s, SIGHUP);
    IT_CHECK(it_wait_log(s, off, "reload: generation 2 serving", 5000),
             "the reload did not complete");
    IT_CHECK(it_wait_log(s, off, "reload: backlog 64 (was 128)", 0),
             "the new backlog was not applied to the kept socket");
    static const char *const named[] = {
        "[warn]", "'user' changed to 'nobody' but needs a restart",
        "[warn]", "'group' changed to 'nogroup' but needs a restart",
        "[warn]", "'pid_file' changed to",
    };
    for (size_t i = 0; i < sizeof named / sizeof named[0]; i += 2) {
        size_t len = 0;
        char *log = it_read_file(s->log, &len);
        const char *hit = log && off <= len ? strstr(log + off, named[i + 1]) : NULL;
        const char *bol = hit;
        while (bol && bol > log + off && bol[-1] != '\n')
            bol--;
        const char *warn = bol ? strstr(bol, named[i]) : NULL;
        int ok = hit && warn && warn < hit;
        free(log);
        IT_CHECK(ok, "no %s line saying \"%s\"", named[i], named[i + 1]);
    }
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "connect: %s", it_errbuf);
    IT_ECHO(fd, "kept", 4);
    it_close(fd);
}

int it_run_restart_settings(void)
{
    const struct CMUnitTest tests[] = {LC_TEST(reload_names_what_needs_restart)};
    return cmocka_run_group_tests_name("restart_settings", tests, NULL, NULL);
}

/* =============================================================== orphan */

#define ORPHAN_DRAIN_MS 2000

/* A new client on port: refused, or answered (echoed or closed) within
 * timeout_ms.  0, or -1 with the reason in why. */
static int lc_not_left_hanging(int port, int timeout_ms, char *why, size_t whylen)
{
    int fd = it_connect_timeout(port, timeout_ms);
    if (fd < 0) {
        if (errno == ECONNREFUSED)
            return 0;
        snprintf(why, whylen, "connect: %s", strerror(errno));
        return -1;
    }
    it_track(fd);
    char got[8];
    size_t n = 0;
    int rc = 0;
    if (it_send_all(fd, "new\n", 4, timeout_ms) == 0 &&
        it_recv_exact(fd, got, 4, timeout_ms, &n) < 0 && errno == ETIMEDOUT) {
        snprintf(why, whylen, "connected, and neither answered nor closed in %d ms",
                 timeout_ms);
        rc = -1;
    }
    it_close(fd);
    return rc;
}

/* kill -9 of the master while a client keeps a connection busy (a line
 * every 0.2 s): the orphaned workers stop accepting at once, end within
 * their drain_timeout, and free the port for a new master. */
static void orphan_drains_and_frees_port(void **state)
{
    (void)state;
    const char *const lines[] = {"workers = 2;", "drain_timeout = 2;", NULL};
    struct it_server *s = lc_start("orphan", lines);
    int port = s->port;
    int busy = it_connect(port);
    IT_CHECK(busy >= 0, "connect: %s", it_errbuf);
    IT_ECHO(busy, "busy\n", 5);

    IT_CHECK(kill(s->pid, SIGKILL) == 0, "kill(master, SIGKILL): %s", strerror(errno));
    IT_CHECK(it_wait_exit(s, 2000), "the master survived SIGKILL");
    int64_t t0 = it_now_ms();

    /* the busy client keeps going while a new one tries its luck */
    int busy_open = 1;
    char why[256] = "";
    int hanging = -1;
    while (it_now_ms() - t0 < ORPHAN_DRAIN_MS + 2000) {
        int alive = 0;
        for (int i = 0; i < s->nworkers; i++)
            alive += lc_running(s->workers[i]);
        if (!alive)
            break;
        if (busy_open && it_roundtrip(busy, "busy\n", 5, "busy\n", 5, 150) != 0)
            busy_open = 0; /* closed by the drain's end */
        if (hanging < 0 && it_now_ms() - t0 >= 300)
            hanging = lc_not_left_hanging(port, 1000, why, sizeof why);
        it_sleep_ms(200);
    }
    int64_t took = it_now_ms() - t0;
    for (int i = 0; i < s->nworkers; i++)
        IT_CHECK(!lc_running(s->workers[i]),
                 "worker %d still runs %lld ms after its master died (drain_timeout %d ms)",
                 (int)s->workers[i], (long long)took, ORPHAN_DRAIN_MS);
    IT_CHECK(hanging == 0, "a new client after the master died: %s", why);
    it_log("orphaned workers ended %lld ms after the master", (long long)took);
    it_close(busy);

    /* the port is free: a new master binds it */
    char listen[64];
    snprintf(listen, sizeof listen, "listen = \"127.0.0.1:%d\";", port);
    const char *const again[] = {listen, NULL};
    struct it_server *s2 = lc_start("orphan_next", again);
    int fd = it_connect(s2->port);
    IT_CHECK(fd >= 0, "connect to the new master: %s", it_errbuf);
    IT_ECHO(fd, "again", 5);
    it_close(fd);
}

int it_run_orphan(void)
{
    const struct CMUnitTest tests[] = {LC_TEST(orphan_drains_and_frees_port)};
    return cmocka_run_group_tests_name("orphan", tests, NULL, NULL);
}

int it_run_lifecycle(void)
{
    const struct CMUnitTest tests[] = {
        LC_TEST(quit_while_every_worker_waits_respawn),
        LC_TEST(reload_while_every_worker_waits_respawn),
        LC_TEST(failed_starts_end),
        LC_TEST(quit_while_starting),
    };
    return cmocka_run_group_tests_name("lifecycle", tests, NULL, NULL);
}
