/*
 * Binary upgrade (issue 14): `ioserve -s upgrade` / SIGUSR2 starts the
 * binary now at the master's path as a new master, which takes the
 * listening socket and, once its workers serve, every open connection of
 * the old master; the old master exits.
 *
 *   upgrade_load     (per model) 100 upper sessions (a line every 50 ms)
 *                    and 20 http keep-alive clients (back to back) through
 *                    two upgrades of each server, the binary replaced by
 *                    rename between them: no session broken, every byte
 *                    right and in order, every connection on the newest
 *                    master (its /metrics), the pid file naming it, the old
 *                    masters gone, the second one running the new file
 *   upgrade_broken   new binaries that fail: a file that is not a program,
 *                    one that is not executable, a script that exits at
 *                    once, one that never reports ready (upgrade_timeout),
 *                    the real binary with a config it refuses: each time the
 *                    old master keeps serving (an open session and new
 *                    connections), the log names the cause, the pid file is
 *                    unchanged and ioserve_upgrades_total{result="failed"}
 *                    counts it; then a good upgrade still works; and a new
 *                    master that never acknowledges what it is handed: the
 *                    old one gives up after drain_timeout + upgrade_timeout;
 *                    and one killed after READY, during the hand-over: the
 *                    old master serves again, every session it held goes on
 *   upgrade_drains   what cannot move finishes on the old master, as on a
 *                    reload: handover = false, a new model of ABI 1.1, a
 *                    changed handler; the old master says why and serves
 *                    the session until it closes
 *   (upgrade_fake_master is no test: upgrade_broken runs it as the new binary
 *   that answers with another upgrade protocol)
 *   upgrade_systemd  under a NOTIFY_SOCKET: the old master sends
 *                    MAINPID=<new> and nothing after it (no STOPPING=1),
 *                    the new master READY=1, and a reload afterwards is a
 *                    config reload of the new master (RELOADING=1, READY=1)
 *
 * The servers run a copy of build/ioserve in the test's temp dir; the copy
 * is replaced as an installer does (write beside, rename over).  The test
 * process is a child subreaper, so a new master becomes its child when the
 * old one exits, and is stopped and reaped by the teardown like any server.
 */
#include "ho_load.h"
#include "harness.h"
#include "hostile.h" /* hx_raise_nofile */

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <stdint.h>
#include <unistd.h>

#define UP_MAX_SERVERS 2

static struct it_server up_srv[UP_MAX_SERVERS];
static int up_nsrv;
static int up_passed; /* the test reached its end: no log dump */
static char up_bin[600]; /* the installed copy the servers run */

/* ============================================================ binaries */

/* Installs `len` bytes of `data` at up_bin with `mode`: written beside,
 * renamed over, as a package manager replaces a binary in use. */
static void up_install(const char *data, size_t len, mode_t mode)
{
    char tmp[700];
    snprintf(tmp, sizeof tmp, "%s.new", up_bin);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0700);
    IT_CHECK(fd >= 0, "open %s: %s", tmp, strerror(errno));
    size_t off = 0;
    while (off < len) {
        ssize_t w = write(fd, data + off, len - off);
        if (w <= 0) {
            close(fd);
            IT_FAIL("write %s: %s", tmp, strerror(errno));
        }
        off += (size_t)w;
    }
    IT_CHECK(fchmod(fd, mode) == 0 && close(fd) == 0, "%s: %s", tmp, strerror(errno));
    IT_CHECK(rename(tmp, up_bin) == 0, "rename %s -> %s: %s", tmp, up_bin, strerror(errno));
}

/* Installs the build's ioserve at up_bin. */
static void up_install_ioserve(void)
{
    size_t len = 0;
    char *bin = it_read_file(it_env.bin, &len);
    IT_CHECK(bin && len > 0, "cannot read %s", it_env.bin);
    up_install(bin, len, 0755);
    free(bin);
}

static ino_t up_inode(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* ============================================================= servers */

struct up_cfg {
    const char *handler;
    int workers;
    const char *extra; /* one more line, or NULL */
};

static char *up_write(const char *name, const struct up_cfg *c)
{
    char model[1200], handler[96], workers[64], pid[800];
    snprintf(model, sizeof model, "model = \"%s\";", it_env.model);
    snprintf(handler, sizeof handler, "handler = \"%s\";", c->handler);
    snprintf(workers, sizeof workers, "workers = %d;", c->workers ? c->workers : 1);
    snprintf(pid, sizeof pid, "pid_file = \"%s/%s.pid\";", it_tmpdir(), name);
    const char *const lines[] = {model,
                                 handler,
                                 workers,
                                 pid,
                                 "drain_timeout = 2;",
                                 "max_connections = 4096;",
                                 "status_listen = \"127.0.0.1:0\";",
                                 c->extra,
                                 NULL};
    return it_write_config(name, lines);
}

/* Starts a server running the build's ioserve, installed at up_bin. */
static struct it_server *up_start(const char *name, const struct up_cfg *c)
{
    IT_CHECK(up_nsrv < UP_MAX_SERVERS, "more than %d servers", UP_MAX_SERVERS);
    if (!up_bin[0]) {
        char dir[400];
        snprintf(dir, sizeof dir, "%.380s/sbin", it_tmpdir());
        IT_CHECK(mkdir(dir, 0755) == 0 || errno == EEXIST, "mkdir %s: %s", dir,
                 strerror(errno));
        snprintf(up_bin, sizeof up_bin, "%s/ioserve", dir);
    }
    up_install_ioserve(); /* whatever an earlier test left there */
    char *cfg = up_write(name, c);
    IT_CHECK(cfg, "cannot write config %s", name);
    struct it_server *s = &up_srv[up_nsrv++];
    const char *build_bin = it_env.bin;
    it_env.bin = up_bin;
    int rc = it_server_start(s, cfg);
    it_env.bin = build_bin;
    free(cfg);
    IT_CHECK(rc == 0, "server %s did not start (see its log above)", name);
    return s;
}

/* The pid in server s's pid file, or -1. */
static pid_t up_pidfile(const struct it_server *s)
{
    char path[800];
    snprintf(path, sizeof path, "%.*s", (int)(strlen(s->cfg) - 4), s->cfg); /* .cfg */
    strncat(path, ".pid", sizeof path - strlen(path) - 1);
    char *text = it_read_file(path, NULL);
    pid_t pid = text ? (pid_t)atoi(text) : -1;
    free(text);
    return pid;
}

/* The config of s with the line of `line`'s key replaced by `line`. */
static void up_rewrite(const struct it_server *s, const char *line)
{
    char *cfg = it_read_file(s->cfg, NULL);
    IT_CHECK(cfg, "cannot read %s", s->cfg);
    char out[8192] = "", key[64];
    snprintf(key, sizeof key, "%.*s", (int)strcspn(line, " ="), line);
    for (const char *l = cfg; *l;) {
        size_t n = strcspn(l, "\n") + (l[strcspn(l, "\n")] == '\n');
        if (!(strncmp(l, key, strlen(key)) == 0 && l[strlen(key)] == ' ') &&
            strlen(out) + n < sizeof out)
            strncat(out, l, n);
        l += n;
    }
    free(cfg);
    IT_CHECK(strlen(out) + strlen(line) + 2 < sizeof out, "config too long");
    strcat(out, line);
    strcat(out, "\n");
    IT_CHECK(it_write_file(s->cfg, out) == 0, "cannot write %s", s->cfg);
}

/* The complete line of `text` holding `needle` (malloc'd), or NULL. */
static char *up_line(const char *text, const char *needle)
{
    const char *p = strstr(text, needle);
    const char *end = p ? strchr(p, '\n') : NULL;
    if (!end)
        return NULL;
    while (p > text && p[-1] != '\n')
        p--;
    return strndup(p, (size_t)(end - p));
}

/* ============================================================ upgrades */

/* An upgrade in flight, asked with SIGUSR2 while the clients keep going. */
struct up_step {
    struct it_server *s;
    size_t off;
    pid_t old, new_pid;
    int64_t t0;
    int done;
};

static void up_begin(struct up_step *u, struct it_server *s)
{
    *u = (struct up_step){.s = s, .off = it_log_size(s), .old = s->pid, .t0 = it_now_ms()};
    IT_CHECK(kill(s->pid, SIGUSR2) == 0, "SIGUSR2 to %d: %s", (int)s->pid, strerror(errno));
}

/* 1 once the old master said it handed over and exited (reaped), and s
 * follows the new one; fails the test when the upgrade failed or took
 * over 15 s. */
static int up_done(struct up_step *u)
{
    if (u->done)
        return 1;
    char *seg = it_log_since(u->s, u->off);
    char *ok = up_line(seg, "handed over to the new master pid ");
    char *bad = up_line(seg, "upgrade failed");
    if (!bad)
        bad = up_line(seg, "refused");
    int old_alive = it_server_alive(u->s);
    if (ok && !old_alive) {
        u->new_pid = (pid_t)atoi(strstr(ok, "new master pid ") + 15);
        it_server_follow(u->s, u->new_pid);
        u->done = 1;
        it_log("upgrade of %s: master %d -> %d in %lld ms", u->s->cfg, (int)u->old,
               (int)u->new_pid, (long long)(it_now_ms() - u->t0));
    } else if (bad || (!old_alive && !ok) || it_now_ms() - u->t0 > 15000) {
        fprintf(stderr, "----- log since the upgrade -----\n%s\n----- end -----\n", seg);
        free(seg);
        free(ok);
        IT_FAIL("upgrade of master %d: %s", (int)u->old,
                bad ? bad : !old_alive ? "the old master exited without handing over"
                                       : "no outcome within 15 s");
    }
    free(seg);
    free(ok);
    free(bad);
    return u->done;
}

/* After an upgrade: the pid file names the new master, the old one is
 * gone, the new one serves the same port from `inode`. */
static void up_check_successor(const struct up_step *u, int port, ino_t inode)
{
    pid_t in_file = up_pidfile(u->s);
    IT_CHECK(in_file == u->new_pid, "pid file names %d, the new master is %d", (int)in_file,
             (int)u->new_pid);
    IT_CHECK(kill(u->old, 0) != 0 && errno == ESRCH, "the old master %d is still there",
             (int)u->old);
    char *seg = it_log_since(u->s, u->off);
    char want[64];
    snprintf(want, sizeof want, "listening on 127.0.0.1:%d ", port);
    int same_port = strstr(seg, want) != NULL;
    free(seg);
    IT_CHECK(same_port, "the new master does not say \"%s\"", want);
    char exe[64];
    snprintf(exe, sizeof exe, "/proc/%d/exe", (int)u->new_pid);
    struct stat st;
    IT_CHECK(stat(exe, &st) == 0 && st.st_ino == inode,
             "the new master runs inode %lu, the installed binary is inode %lu",
             (unsigned long)st.st_ino, (unsigned long)inode);
}

/* ============================================================= fixtures */

static int up_group_setup(void **state)
{
    (void)state;
    hx_raise_nofile(8192);
    /* New masters outlive their parents: they become ours to reap. */
    if (prctl(PR_SET_CHILD_SUBREAPER, 1) != 0) {
        it_log("prctl PR_SET_CHILD_SUBREAPER: %s", strerror(errno));
        return -1;
    }
    return 0;
}

static int up_test_setup(void **state)
{
    (void)state;
    up_passed = 0;
    return 0;
}

static int up_test_teardown(void **state)
{
    (void)state;
    ho_free_loads();
    it_close_all();
    it_stop_servers(up_srv, up_nsrv, !up_passed);
    up_nsrv = 0;
    return 0;
}

#define UP_TEST(f) cmocka_unit_test_setup_teardown(f, up_test_setup, up_test_teardown)

/* ============================================================ load */

#define LOAD_UPPER 100
#define LOAD_HTTP 20

struct load_state {
    struct up_step step[UP_MAX_SERVERS];
};

static int load_hook(void *arg)
{
    struct load_state *st = arg;
    int all = 1;
    for (int i = 0; i < up_nsrv; i++)
        all &= up_done(&st->step[i]);
    return all;
}

static void upgrade_under_load(void **state)
{
    (void)state;
    struct up_cfg cu = {.handler = "upper", .workers = 2};
    struct up_cfg ch = {.handler = "http", .workers = 2};
    struct it_server *su = up_start("up_upper", &cu);
    struct it_server *sh = up_start("up_http", &ch);
    struct ho_load *loads[2];
    loads[0] = ho_open(su->port, LOAD_UPPER, HO_UPPER, 50);
    loads[1] = ho_open(sh->port, LOAD_HTTP, HO_HTTP, 0);
    ho_pump(loads, 2, 500, NULL, NULL);
    IT_CHECK(ho_broken(loads[0], "upper session") == 0 &&
                 ho_broken(loads[1], "http client") == 0,
             "sessions broke before any upgrade");
    /* Every session on the old master before the first upgrade: one still
     * in the backlog would be accepted by the new master's workers, not
     * handed over (under TSan a thread per session starts slowly). */
    long held, held_total;
    IT_CHECK(ho_wait_active(su, 1, LOAD_UPPER, 3000 * IT_SLOWDOWN, &held, &held_total) == 0 &&
                 ho_wait_active(sh, 1, LOAD_HTTP, 3000 * IT_SLOWDOWN, &held, &held_total) == 0,
             "the sessions were not all accepted before the upgrade (%ld of them)", held_total);

    for (int round = 0; round < 2; round++) {
        if (round == 1)
            up_install_ioserve(); /* a new inode at the same path */
        ino_t inode = up_inode(up_bin);
        struct load_state st;
        up_begin(&st.step[0], su);
        up_begin(&st.step[1], sh);
        ho_pump(loads, 2, 30000, load_hook, &st);
        IT_CHECK(st.step[0].done && st.step[1].done, "upgrade %d did not complete in 30 s",
                 round + 1);
        up_check_successor(&st.step[0], su->port, inode);
        up_check_successor(&st.step[1], sh->port, inode);
        ho_pump(loads, 2, 300, NULL, NULL);
        int bu = ho_broken(loads[0], "upper session");
        int bh = ho_broken(loads[1], "http client");
        IT_CHECK(bu == 0 && bh == 0,
                 "upgrade %d: %d of %d upper sessions and %d of %d http clients broke "
                 "(reasons above)", round + 1, bu, LOAD_UPPER, bh, LOAD_HTTP);
        /* Every connection now on the new master's first generation, every
         * one handed over, none finished on the old model. */
        long on_gen, total;
        IT_CHECK(ho_wait_active(su, 1, LOAD_UPPER, 3000, &on_gen, &total) == 0,
                 "upgrade %d: the new upper master holds %ld connections (%ld on "
                 "generation 1), expected %d", round + 1, total, on_gen, LOAD_UPPER);
        IT_CHECK(ho_wait_active(sh, 1, LOAD_HTTP, 3000, &on_gen, &total) == 0,
                 "upgrade %d: the new http master holds %ld connections (%ld on "
                 "generation 1), expected %d", round + 1, total, on_gen, LOAD_HTTP);
        ho_check_moved(su, LOAD_UPPER);
        ho_check_moved(sh, LOAD_HTTP);
    }
    ho_exchange_all(loads[0], 5000);
    IT_CHECK(ho_broken(loads[0], "upper session") == 0,
             "upper sessions failed their last exchange");
    unsigned long long lines = 0, reqs = 0;
    for (int i = 0; i < loads[0]->n; i++)
        lines += loads[0]->s[i].done;
    for (int i = 0; i < loads[1]->n; i++)
        reqs += loads[1]->s[i].done;
    it_log("%llu lines and %llu http responses verified across two upgrades", lines, reqs);
    up_passed = 1;
}

int it_run_upgrade_load(void)
{
    const struct CMUnitTest tests[] = {UP_TEST(upgrade_under_load)};
    return cmocka_run_group_tests_name("upgrade_load", tests, up_group_setup, NULL);
}

/* ============================================================== broken */

/* ioserve_upgrades_total{result="failed"} of server s, or -1. */
static long up_failed_count(const struct it_server *s)
{
    const char *body = ho_metrics(s);
    return body ? (long)it_metric_sum(body, "ioserve_upgrades_total", "result=\"failed\"") : -1;
}

/* s keeps serving as it did: the same master, named by the pid file; the
 * session `fd` opened before still answers, and so does a new one. */
static void up_check_still_serving(struct it_server *s, pid_t master, int fd, const char *why)
{
    IT_CHECK(it_server_alive(s) && s->pid == master, "%s: the old master %d is gone", why,
             (int)master);
    IT_CHECK(up_pidfile(s) == master, "%s: the pid file names %d, not the old master %d", why,
             (int)up_pidfile(s), (int)master);
    IT_CHECK(it_roundtrip(fd, "still here\n", 11, "STILL HERE\n", 11, 5000) == 0,
             "%s: the session opened before: %s", why, it_errbuf);
    int fresh = it_connect(s->port);
    IT_CHECK(fresh >= 0, "%s: a new connection: %s", why, it_errbuf);
    IT_CHECK(it_roundtrip(fresh, "new one\n", 8, "NEW ONE\n", 8, 5000) == 0,
             "%s: a new connection: %s", why, it_errbuf);
    it_close(fresh);
}

struct broken {
    const char *what;
    const char *content; /* NULL: the real ioserve, its config given `cfg_extra` */
    mode_t mode;
    const char *cause;     /* in the "upgrade failed" line */
    const char *cfg_extra; /* for the real ioserve: a line that breaks its config */
    const char *says;      /* what the real ioserve then says */
};

static void broken_binaries(void **state)
{
    (void)state;
    struct up_cfg c = {.handler = "upper", .extra = "upgrade_timeout = 5;"};
    struct it_server *s = up_start("up_broken", &c);
    pid_t master = s->pid;
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "%s", it_errbuf);
    IT_CHECK(it_roundtrip(fd, "hello\n", 6, "HELLO\n", 6, 5000) == 0, "%s", it_errbuf);

    static const char not_ioserve[] = "#!/bin/sh\necho 'this is not ioserve' >&2\nexit 3\n";
    static const char crashes[] = "#!/bin/sh\nkill -SEGV $$\n";
    static const char never_ready[] = "#!/bin/sh\nexec sleep 30\n";
    /* ioserve-it itself, acting as a new master of another protocol */
    char other_protocol[1200], self[1024];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    IT_CHECK(len > 0, "readlink /proc/self/exe: %s", strerror(errno));
    self[len] = '\0';
    snprintf(other_protocol, sizeof other_protocol,
             "#!/bin/sh\nexec '%s' upgrade_fake_master %s\n", self, it_env.model);
    char bad_abi[1200];
    snprintf(bad_abi, sizeof bad_abi, "model = \"%s/bad_abi.so\";", it_env.bad_plugin_dir);
    const struct broken cases[] = {
        {.what = "a file that is not a program", .content = "just some text\n", .mode = 0755,
         .cause = "Exec format error"},
        {.what = "a file that is not executable", .content = "just some text\n", .mode = 0644,
         .cause = "is not an executable file"},
        {.what = "a script that exits at once", .content = not_ioserve, .mode = 0755,
         .cause = "exited with status 3 before it was ready"},
        {.what = "a script that crashes", .content = crashes, .mode = 0755,
         .cause = "was killed by signal 11 (SIGSEGV) before it was ready"},
        {.what = "a script that never reports ready", .content = never_ready, .mode = 0755,
         .cause = "did not report ready within upgrade_timeout (5000 ms)"},
        {.what = "a new master of another upgrade protocol", .content = other_protocol,
         .mode = 0755, .cause = "sent upgrade protocol 99, this master speaks 1"},
        {.what = "ioserve refusing its config", .mode = 0755,
         .cause = "exited with status 1 before it was ready",
         .cfg_extra = "this is no setting", .says = "syntax error"},
        {.what = "ioserve refusing the plugin's ABI", .mode = 0755,
         .cause = "exited with status 1 before it was ready", .cfg_extra = bad_abi,
         .says = "ABI"},
    };

    const int n = (int)(sizeof cases / sizeof cases[0]);
    char *good_cfg = it_read_file(s->cfg, NULL);
    IT_CHECK(good_cfg, "cannot read %s", s->cfg);
    for (int i = 0; i < n; i++) {
        const struct broken *b = &cases[i];
        if (b->content) {
            up_install(b->content, strlen(b->content), b->mode);
        } else {
            up_install_ioserve();
            up_rewrite(s, b->cfg_extra);
        }
        size_t off = it_log_size(s);
        IT_CHECK(kill(master, SIGUSR2) == 0, "SIGUSR2: %s", strerror(errno));
        IT_CHECK(it_wait_log(s, off, "upgrade failed", 10000),
                 "%s: no \"upgrade failed\" line within 10 s", b->what);
        char *seg = it_log_since(s, off);
        char *line = up_line(seg, "upgrade failed");
        if (!b->content) {
            int said = strstr(seg, b->says) != NULL;
            IT_CHECK(it_write_file(s->cfg, good_cfg) == 0, "cannot restore %s", s->cfg);
            IT_CHECK(said, "%s: the new master did not say what is wrong:\n%s", b->what, seg);
        }
        it_log("%s: %s", b->what, line ? line : "(no line)");
        int named = line && strstr(line, b->cause) && strstr(line, "keeps serving");
        if (!named)
            fprintf(stderr, "----- log since the upgrade -----\n%s\n----- end -----\n", seg);
        free(seg);
        IT_CHECK(named, "%s: the \"upgrade failed\" line does not say \"%s\"", b->what,
                 b->cause);
        free(line);
        if (b->content == never_ready || b->content == other_protocol)
            IT_CHECK(it_wait_log(s, off, "upgrade: the failed new master pid", 10000),
                     "%s: the new binary was not stopped", b->what);
        up_check_still_serving(s, master, fd, b->what);
        long failed = up_failed_count(s);
        IT_CHECK(failed == i + 1, "%s: ioserve_upgrades_total{result=\"failed\"} %ld, "
                 "expected %d", b->what, failed, i + 1);
    }
    free(good_cfg);

    /* After all that, the real binary still upgrades. */
    up_install_ioserve();
    struct up_step u;
    up_begin(&u, s);
    while (!up_done(&u))
        it_sleep_ms(10);
    up_check_successor(&u, s->port, up_inode(up_bin));
    IT_CHECK(it_roundtrip(fd, "moved\n", 6, "MOVED\n", 6, 5000) == 0,
             "the session after the upgrade: %s", it_errbuf);
    up_passed = 1;
}

/* The fake new master of protocol 1: READY, then it reads nothing. */
static void up_install_silent_master(void)
{
    char self[1024], script[1400];
    ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
    IT_CHECK(len > 0, "readlink /proc/self/exe: %s", strerror(errno));
    self[len] = '\0';
    snprintf(script, sizeof script,
             "#!/bin/sh\nIT_FAKE_PROTOCOL=1 exec '%s' upgrade_fake_master %s\n", self,
             it_env.model);
    up_install(script, strlen(script), 0755);
}

/* Upgrades s to the silent new master and waits until the old master has
 * let it serve (`off`: the log's size before); the silent master's pid. */
static pid_t up_commit_to_silent(struct it_server *s, size_t off)
{
    up_install_silent_master();
    IT_CHECK(kill(s->pid, SIGUSR2) == 0, "SIGUSR2: %s", strerror(errno));
    IT_CHECK(it_wait_log(s, off, "handing over and exiting", 10000), "no commit");
    char *seg = it_log_since(s, off);
    char *line = up_line(seg, "new master pid ");
    pid_t pid = line ? (pid_t)atoi(strstr(line, "new master pid ") + 15) : 0;
    free(line);
    free(seg);
    return pid;
}

/* A new master that says READY and then never acknowledges what it is
 * handed: the old master gives up on it after drain_timeout +
 * upgrade_timeout, saying so, and exits instead of waiting forever. */
static void never_acknowledged(void **state)
{
    (void)state;
    struct up_cfg c = {.handler = "upper", .extra = "upgrade_timeout = 1;"};
    struct it_server *s = up_start("up_silent", &c);
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "%s", it_errbuf);
    IT_CHECK(it_roundtrip(fd, "hello\n", 6, "HELLO\n", 6, 5000) == 0, "%s", it_errbuf);
    size_t off = it_log_size(s);
    pid_t old = s->pid;
    int64_t t0 = it_now_ms();
    pid_t fake = up_commit_to_silent(s, off);
    IT_CHECK(it_wait_log(s, off, "did not acknowledge 1 connection(s)", 10000),
             "the old master does not give up on the silent new master");
    IT_CHECK(it_wait_exit(s, 5000), "the old master %d did not exit", (int)old);
    int64_t took = it_now_ms() - t0;
    it_log("the old master gave up and exited %lld ms after the upgrade began", (long long)took);
    if (fake > 0)
        it_server_follow(s, fake); /* ours now: stopped by the teardown */
    IT_CHECK(took < 8000, "it took %lld ms (drain_timeout 2 s + upgrade_timeout 1 s)",
             (long long)took);
    up_passed = 1;
}

#define RESUME_SESSIONS 20

/* The new master dies (kill -9) after READY, while the old one hands over:
 * the old master serves again, from a generation of its configuration, and
 * every connection it still held in transit carries on there. */
static void successor_dies(void **state)
{
    (void)state;
    struct up_cfg c = {.handler = "upper", .extra = "upgrade_timeout = 5;"};
    struct it_server *s = up_start("up_resume", &c);
    pid_t old = s->pid;
    int fd[RESUME_SESSIONS];
    for (int i = 0; i < RESUME_SESSIONS; i++) {
        fd[i] = it_connect(s->port);
        IT_CHECK(fd[i] >= 0, "%s", it_errbuf);
        IT_CHECK(it_roundtrip(fd[i], "one\n", 4, "ONE\n", 4, 5000) == 0, "%s", it_errbuf);
    }
    size_t off = it_log_size(s);
    pid_t fake = up_commit_to_silent(s, off);
    IT_CHECK(it_wait_log(s, off, "drained in", 5000), "the old generation did not give");
    IT_CHECK(fake > 0 && kill(fake, SIGKILL) == 0, "kill -9 of the new master %d: %s",
             (int)fake, strerror(errno));
    IT_CHECK(it_wait_log(s, off, "went away during the hand-over", 5000),
             "the old master did not notice");
    IT_CHECK(it_wait_log(s, off, "(model ", 10000) &&
                 it_wait_log(s, off, "generation 2)", 10000),
             "the old master does not serve again");
    for (int i = 0; i < RESUME_SESSIONS; i++)
        IT_CHECK(it_roundtrip(fd[i], "two\n", 4, "TWO\n", 4, 5000) == 0,
                 "session %d after the new master died: %s", i, it_errbuf);
    up_check_still_serving(s, old, fd[0], "after the new master died");
    long failed = up_failed_count(s);
    IT_CHECK(failed == 1, "ioserve_upgrades_total{result=\"failed\"} %ld, expected 1", failed);
    up_passed = 1;
}

int it_run_upgrade_broken(void)
{
    IT_CHECK(it_env.bad_plugin_dir, "IOSERVE_BAD_PLUGIN_DIR is not set");
    const struct CMUnitTest tests[] = {UP_TEST(broken_binaries), UP_TEST(never_acknowledged),
                                       UP_TEST(successor_dies)};
    return cmocka_run_group_tests_name("upgrade_broken", tests, up_group_setup, NULL);
}

/* ============================================================== drains */

/*
 * What cannot move across an upgrade finishes on the old master, as on a
 * reload: the session keeps being answered by the old binary's upper until
 * the client closes it (within drain_timeout), the old master says why and
 * stays until then, and the new master serves what the new configuration
 * says.
 */
static void upgrade_drain_case(struct it_server *s, const char *cfg_line, const char *why,
                               const char *new_reply)
{
    int fd = it_connect(s->port);
    IT_CHECK(fd >= 0, "%s", it_errbuf);
    IT_CHECK(it_roundtrip(fd, "before\n", 7, "BEFORE\n", 7, 5000) == 0, "%s", it_errbuf);
    up_rewrite(s, cfg_line);
    size_t off = it_log_size(s);
    pid_t old = s->pid;
    IT_CHECK(kill(old, SIGUSR2) == 0, "SIGUSR2: %s", strerror(errno));
    IT_CHECK(it_wait_log(s, off, "handing over and exiting", 10000),
             "%s: the upgrade did not go through", cfg_line);
    IT_CHECK(it_wait_log(s, off, why, 2000), "%s: the old master does not say \"%s\"",
             cfg_line, why);
    /* Still the old master's upper, and it waits for this session. */
    IT_CHECK(it_roundtrip(fd, "after\n", 6, "AFTER\n", 6, 5000) == 0,
             "%s: the session after the upgrade: %s", cfg_line, it_errbuf);
    IT_CHECK(it_server_alive(s), "%s: the old master left with a session open", cfg_line);
    int fresh = it_connect(s->port);
    IT_CHECK(fresh >= 0, "%s", it_errbuf);
    IT_CHECK(it_roundtrip(fresh, "x\n", 2, new_reply, strlen(new_reply), 5000) == 0,
             "%s: a new connection: %s", cfg_line, it_errbuf);
    it_close(fresh);
    it_close(fd);
    struct up_step u = {.s = s, .off = off, .old = old, .t0 = it_now_ms()};
    while (!up_done(&u))
        it_sleep_ms(10);
    IT_CHECK(up_pidfile(s) == u.new_pid, "the pid file does not name the new master");
}

static void upgrade_drains(void **state)
{
    (void)state;
    struct up_cfg c = {.handler = "upper"};
    struct it_server *s = up_start("up_drains", &c);
    upgrade_drain_case(s, "handover = false;", "takes no connections over", "X\n");
    up_rewrite(s, "handover = true;"); /* from here on: the model decides */
    char model[1200];
    snprintf(model, sizeof model, "model = \"%s/handover_min_11.so\";", it_env.bad_plugin_dir);
    upgrade_drain_case(s, model, "takes no connections over", "X\n");
    /* Back to the model under test, handing over, for the handler change. */
    snprintf(model, sizeof model, "model = \"%s\";", it_env.model);
    up_rewrite(s, model);
    struct up_step u;
    up_begin(&u, s);
    while (!up_done(&u))
        it_sleep_ms(10);
    upgrade_drain_case(s, "handler = \"echo\";", "handler changed upper -> echo", "x\n");
    up_passed = 1;
}

int it_run_upgrade_drains(void)
{
    IT_CHECK(it_env.bad_plugin_dir, "IOSERVE_BAD_PLUGIN_DIR is not set");
    const struct CMUnitTest tests[] = {UP_TEST(upgrade_drains)};
    return cmocka_run_group_tests_name("upgrade_drains", tests, up_group_setup, NULL);
}

/* ============================================================= systemd */

/* The datagrams sent to NOTIFY_SOCKET, each as "PID: PAYLOAD" (the
 * sender's pid from SCM_CREDENTIALS). */
static char notes[16384];

static void up_notes_read(int fd)
{
    for (;;) {
        char buf[1024];
        union {
            char b[CMSG_SPACE(sizeof(struct ucred))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {buf, sizeof buf - 1};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl.b,
                            .msg_controllen = sizeof ctl.b};
        ssize_t n = recvmsg(fd, &mh, MSG_DONTWAIT);
        if (n <= 0)
            return;
        buf[n] = '\0';
        pid_t from = 0;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
            if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_CREDENTIALS)
                from = ((struct ucred *)CMSG_DATA(c))->pid;
        for (char *p = buf; *p; p++)
            if (*p == '\n')
                *p = ' ';
        size_t len = strlen(notes);
        snprintf(notes + len, sizeof notes - len, "%d: %s\n", (int)from, buf);
    }
}

static const char *up_notes_wait(int fd, const char *want)
{
    for (int64_t end = it_now_ms() + 10000; it_now_ms() < end && !strstr(notes, want);) {
        up_notes_read(fd);
        it_sleep_ms(10);
    }
    return strstr(notes, want);
}

static void systemd_follows(void **state)
{
    (void)state;
    int nfd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    char path[100];
    snprintf(path, sizeof path, "%.80s/notify.sock", it_tmpdir());
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    memcpy(sa.sun_path, path, strlen(path) + 1);
    int one = 1;
    IT_CHECK(nfd >= 0 && bind(nfd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
                 setsockopt(nfd, SOL_SOCKET, SO_PASSCRED, &one, sizeof one) == 0,
             "notify socket: %s", strerror(errno));
    it_track(nfd);
    notes[0] = '\0';
    setenv("NOTIFY_SOCKET", path, 1);
    struct up_cfg c = {.handler = "upper"};
    struct it_server *s = up_start("up_systemd", &c);
    unsetenv("NOTIFY_SOCKET");
    pid_t old = s->pid;
    char want[64];
    snprintf(want, sizeof want, "%d: READY=1", (int)old);
    IT_CHECK(up_notes_wait(nfd, want), "no READY=1 from the master; got:\n%s", notes);

    struct up_step u;
    up_begin(&u, s);
    while (!up_done(&u))
        it_sleep_ms(10);
    snprintf(want, sizeof want, "%d: MAINPID=%d", (int)old, (int)u.new_pid);
    const char *mainpid = up_notes_wait(nfd, want);
    IT_CHECK(mainpid, "no \"%s\" from the old master; got:\n%s", want, notes);
    snprintf(want, sizeof want, "%d: ", (int)u.new_pid);
    up_notes_wait(nfd, "READY=1 STATUS=serving");
    const char *after = strstr(mainpid, want);
    IT_CHECK(after && strstr(after, "READY=1"), "no READY=1 from the new master %d after "
             "MAINPID; got:\n%s", (int)u.new_pid, notes);
    snprintf(want, sizeof want, "\n%d: ", (int)old);
    IT_CHECK(!strstr(mainpid, want), "the old master %d spoke after MAINPID=; got:\n%s",
             (int)old, notes);
    IT_CHECK(!strstr(notes, "STOPPING=1"), "STOPPING=1 during an upgrade; got:\n%s", notes);

    /* systemctl reload: a config reload of the new master. */
    size_t mark = strlen(notes);
    IT_CHECK(kill(u.new_pid, SIGHUP) == 0, "SIGHUP: %s", strerror(errno));
    snprintf(want, sizeof want, "%d: RELOADING=1", (int)u.new_pid);
    IT_CHECK(up_notes_wait(nfd, want), "no RELOADING=1 from the new master; got:\n%s", notes);
    IT_CHECK(up_notes_wait(nfd, "(generation 2)") && strstr(notes + mark, "READY=1"),
             "no READY=1 for generation 2; got:\n%s", notes);
    unlink(path);
    up_passed = 1;
}

int it_run_upgrade_systemd(void)
{
    const struct CMUnitTest tests[] = {UP_TEST(systemd_follows)};
    return cmocka_run_group_tests_name("upgrade_systemd", tests, up_group_setup, NULL);
}

/* ========================================================= fake master */

/* Run by upgrade_broken as the "new binary": it answers READY as a new
 * master would (the layout of host/upgrade.c's struct up_hello), with
 * upgrade protocol 99, or IT_FAKE_PROTOCOL; then it waits to be stopped,
 * never reading what the old master sends (nor acknowledging it). */
int it_run_upgrade_fake_master(void)
{
    const char *proto = getenv("IT_FAKE_PROTOCOL");
    struct {
        uint32_t type, protocol, handover, pid;
        char handler[32];
        char model[64];
    } ready = {0x55500001u, proto ? (uint32_t)atoi(proto) : 99, 1, (uint32_t)getpid(),
               "upper", "epoll"};
    if (!getenv("IOSERVE_UPGRADE") ||
        send(5, &ready, sizeof ready, MSG_NOSIGNAL) != (ssize_t)sizeof ready)
        return 1;
    for (;;)
        pause(); /* SIGQUIT from the old master ends it */
}
