/* ioserve-it harness: processes, temp files, sockets, data patterns. */
#include "harness.h"
#include "uring_refused.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <linux/io_uring.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct it_env it_env;
int it_skip;
char it_skip_reason[1024];
int it_failed;
char it_errbuf[512];
struct it_server *it_srv;

/* ------------------------------------------------------------- messages */

void it_log(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "ioserve-it [%s/%s]: %s\n",
            it_env.scenario ? it_env.scenario : "?",
            it_env.model ? it_env.model : "?", line);
    fflush(stderr);
}

void it_fail(const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    it_failed = 1;
    it_log("FAIL: %s", line);
}

static void set_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void set_err(const char *fmt, ...)
{
    int saved = errno;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it_errbuf, sizeof it_errbuf, fmt, ap);
    va_end(ap);
    errno = saved;
}

int64_t it_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void it_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        ;
}

/* ------------------------------------------------------------- skipping */

int it_skip_scenario(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(it_skip_reason, sizeof it_skip_reason, fmt, ap);
    va_end(ap);
    it_skip = 1;
    it_log("SKIP: %s", it_skip_reason);
    return 0;
}

/* What each model needs from the kernel beyond what every model needs. */
static const struct {
    const char *model;
    int (*refused)(char *why, size_t len);
} model_needs[] = {
    {"uring", uring_refused},
};

int it_model_unavailable(const char *model, char *why, size_t len)
{
    char path[1024];
    if (strchr(model, '/')) /* a path to a .so, as the host takes it */
        snprintf(path, sizeof path, "%s", model);
    else
        snprintf(path, sizeof path, "%s/%s.so", it_env.plugin_dir ? it_env.plugin_dir : ".",
                 model);
    if (access(path, R_OK) != 0) {
        snprintf(why, len, "model %s: its plugin %s is not built (%s)", model, path,
                 strerror(errno));
        return 1;
    }
    for (size_t i = 0; i < sizeof model_needs / sizeof model_needs[0]; i++) {
        char need[512];
        if (strcmp(model, model_needs[i].model) == 0 && model_needs[i].refused(need, sizeof need)) {
            snprintf(why, len, "model %s cannot run on this machine: %s", model, need);
            return 1;
        }
    }
    return 0;
}

/* ------------------------------------------------ registry of processes */

/*
 * Every process the harness started (servers, commands) and every worker
 * it saw, with the start time of the worker so a recycled pid is never
 * signalled.  Read by the watchdog (signal handler) and the atexit hook.
 */
#define MAX_PROCS 256
struct proc_ent {
    volatile pid_t pid;
    volatile int own_child; /* 1: our child (waitpid it); 0: a worker */
    unsigned long long start; /* /proc start time, for workers */
};
static struct proc_ent g_procs[MAX_PROCS];

static void reg_proc(pid_t pid, int own_child, unsigned long long start)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (g_procs[i].pid == pid && g_procs[i].own_child == own_child &&
            g_procs[i].start == start)
            return; /* seen again */
    for (int i = 0; i < MAX_PROCS; i++) {
        if (g_procs[i].pid == 0) {
            g_procs[i].own_child = own_child;
            g_procs[i].start = start;
            g_procs[i].pid = pid;
            return;
        }
    }
    it_log("process registry full (pid %d not tracked)", (int)pid);
}

static void unreg_proc(pid_t pid)
{
    for (int i = 0; i < MAX_PROCS; i++)
        if (g_procs[i].pid == pid)
            g_procs[i].pid = 0;
}

/* Start time (field 22) and state of /proc/pid/stat.  0 if gone. */
static int proc_stat(pid_t pid, unsigned long long *start, char *state,
                     pid_t *ppid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0)
        return 0;
    buf[n] = 0;
    char *p = strrchr(buf, ')'); /* comm may hold spaces */
    if (!p)
        return 0;
    char st = 0;
    int pp = 0;
    unsigned long long stt = 0;
    /* after ") ": state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime priority nice threads
     * itrealvalue starttime */
    if (sscanf(p + 2,
               "%c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %*u %*u %*d %*d "
               "%*d %*d %*d %*d %llu",
               &st, &pp, &stt) != 3)
        return 0;
    if (start)
        *start = stt;
    if (state)
        *state = st;
    if (ppid)
        *ppid = pp;
    return 1;
}

/* 1 if the worker we recorded (pid + start time) is still running. */
static int worker_running(pid_t pid, unsigned long long start)
{
    unsigned long long st;
    char state;
    if (!proc_stat(pid, &st, &state, NULL))
        return 0;
    if (st != start)
        return 0; /* the pid was recycled */
    return state != 'Z' && state != 'X';
}

static void kill_registered(void)
{
    /* Async-signal-safe enough: kill() and proc reads only. */
    for (int i = 0; i < MAX_PROCS; i++) {
        pid_t p = g_procs[i].pid;
        if (p <= 0)
            continue;
        if (g_procs[i].own_child) {
            kill(p, SIGKILL);
        } else if (worker_running(p, g_procs[i].start)) {
            kill(p, SIGKILL);
        }
    }
}

static void reap_registered(void)
{
    for (int i = 0; i < MAX_PROCS; i++) {
        pid_t p = g_procs[i].pid;
        if (p > 0 && g_procs[i].own_child) {
            int st;
            waitpid(p, &st, 0);
        }
        g_procs[i].pid = 0;
    }
}

static void on_alarm(int sig)
{
    (void)sig;
    static const char msg[] =
        "ioserve-it: WATCHDOG: the scenario took too long; killing the "
        "processes it started\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    kill_registered();
    _exit(1);
}

static void on_stop_signal(int sig)
{
    static const char msg[] =
        "ioserve-it: interrupted; killing the processes it started\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    kill_registered();
    signal(sig, SIG_DFL);
    raise(sig);
    _exit(1);
}

void it_watchdog(unsigned seconds)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGALRM, &sa, NULL);
    /* Interrupted (Ctrl-C, ctest giving up): leave no server behind. */
    sa.sa_handler = on_stop_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    alarm(seconds);
}

/* -------------------------------------------------------------- temp dir */

static char g_tmpdir[256];
static struct it_server g_group_server;
static int g_group_log_dumped;

static int rm_entry(const char *path, const struct stat *sb, int flag,
                    struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void at_exit_cleanup(void)
{
    int had_children = 0;
    for (int i = 0; i < MAX_PROCS; i++)
        if (g_procs[i].pid > 0)
            had_children = 1;
    if (had_children) {
        it_log("atexit: stopping processes still running");
        if (g_group_server.pid > 0)
            it_server_stop(&g_group_server);
        kill_registered();
        reap_registered();
    }
    if (g_tmpdir[0] && !getenv("IT_KEEP"))
        nftw(g_tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    else if (g_tmpdir[0])
        it_log("kept %s", g_tmpdir);
}

const char *it_tmpdir(void)
{
    if (!g_tmpdir[0]) {
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/ioserve-it.XXXXXX");
        if (!mkdtemp(g_tmpdir)) {
            it_log("mkdtemp: %s", strerror(errno));
            g_tmpdir[0] = 0;
            return "/tmp";
        }
        atexit(at_exit_cleanup);
    }
    return g_tmpdir;
}

char *it_read_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    for (;;) {
        if (!buf)
            break;
        if (cap - n < 2) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    close(fd);
    if (buf)
        buf[n] = 0;
    if (len)
        *len = n;
    return buf;
}

int it_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "we");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f) == 0 ? 0 : -1;
}

/* The setting name a config line starts with. */
static size_t line_key(const char *line, const char **start)
{
    while (*line == ' ' || *line == '\t' || *line == '\n')
        line++;
    *start = line;
    size_t n = 0;
    while (isalnum((unsigned char)line[n]) || line[n] == '_')
        n++;
    return n;
}

char *it_write_config(const char *name, const char *const *lines)
{
    const char *dir = it_tmpdir();
    char pidline[600];
    snprintf(pidline, sizeof pidline, "pid_file = \"%s/%s.pid\";", dir,
             name);
    char modelline[600], plugline[1200];
    snprintf(modelline, sizeof modelline, "model = \"%s\";",
             it_env.model ? it_env.model : "epoll");
    snprintf(plugline, sizeof plugline, "plugin_dir = \"%s\";",
             it_env.plugin_dir ? it_env.plugin_dir : "");
    const char *defaults[] = {
        "listen = \"127.0.0.1:0\";",
        modelline,
        plugline,
        "handler = \"echo\";",
        "workers = 1;",
        "log_level = \"info\";",
        "max_connections = 1024;",
        "idle_timeout = 60;",
        "drain_timeout = 5;",
        pidline,
        NULL,
    };

    size_t cap = 8192, len = 0;
    char *text = malloc(cap);
    if (!text)
        return NULL;
    text[0] = 0;
#define APPEND(s)                                                       \
    do {                                                                \
        size_t l_ = strlen(s);                                          \
        while (len + l_ + 2 > cap) {                                    \
            cap *= 2;                                                   \
            text = realloc(text, cap);                                  \
            if (!text)                                                  \
                return NULL;                                            \
        }                                                               \
        memcpy(text + len, s, l_);                                      \
        len += l_;                                                      \
        text[len++] = '\n';                                             \
        text[len] = 0;                                                  \
    } while (0)

    APPEND("# written by ioserve-it");
    for (size_t i = 0; defaults[i]; i++) {
        const char *dk;
        size_t dn = line_key(defaults[i], &dk);
        int overridden = 0;
        for (size_t j = 0; lines && lines[j]; j++) {
            const char *lk;
            size_t ln = line_key(lines[j], &lk);
            if (ln == dn && strncmp(lk, dk, dn) == 0)
                overridden = 1;
        }
        if (!overridden)
            APPEND(defaults[i]);
    }
    for (size_t j = 0; lines && lines[j]; j++)
        APPEND(lines[j]);
#undef APPEND

    char *path = malloc(strlen(dir) + strlen(name) + 16);
    if (!path) {
        free(text);
        return NULL;
    }
    sprintf(path, "%s/%s.cfg", dir, name);
    if (it_write_file(path, text) != 0) {
        it_log("cannot write %s: %s", path, strerror(errno));
        free(text);
        free(path);
        return NULL;
    }
    free(text);
    return path;
}

/* ------------------------------------------------------------ processes */

/* Forks and execs argv with stdout+stderr to outpath; with listen_fd >= 0,
 * that socket is passed the way systemd passes one (sd_listen_fds(3)). */
static pid_t spawn(char *const argv[], const char *outpath, int listen_fd)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        it_log("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int out = open(outpath, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (out < 0 || in < 0)
            _exit(127);
        dup2(in, 0);
        dup2(out, 1);
        dup2(out, 2);
        if (in > 2)
            close(in);
        if (out > 2)
            close(out);
        if (listen_fd >= 0) {
            static char pid_env[32];
            if (dup2(listen_fd, 3) != 3 || fcntl(3, F_SETFD, 0) != 0)
                _exit(127);
            snprintf(pid_env, sizeof pid_env, "LISTEN_PID=%d", (int)getpid());
            putenv(pid_env);
            putenv("LISTEN_FDS=1");
        }
        /* Default dispositions for the server, whatever ours are. */
        signal(SIGPIPE, SIG_DFL);
        signal(SIGALRM, SIG_DFL);
        alarm(0);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], argv);
        dprintf(2, "ioserve-it: execv %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    reg_proc(pid, 1, 0);
    return pid;
}

/* waitpid with a deadline.  1 = reaped (status set), 0 = still running. */
static int wait_until(pid_t pid, int *status, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR) {
            *status = 0;
            return 1; /* not our child any more: treat as gone */
        }
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(5);
    }
}

static void describe_status(int st, char *buf, size_t len)
{
    if (WIFEXITED(st))
        snprintf(buf, len, "exit %d", WEXITSTATUS(st));
    else if (WIFSIGNALED(st))
        snprintf(buf, len, "killed by signal %d (%s)", WTERMSIG(st),
                 strsignal(WTERMSIG(st)));
    else
        snprintf(buf, len, "status 0x%x", st);
}

int it_run(char *const argv[], int timeout_ms, const char *stop_on,
           char **out, int64_t *elapsed_ms)
{
    return it_run_activated(argv, -1, timeout_ms, stop_on, out, elapsed_ms);
}

int it_passed_socket(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(fd, backlog) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        errno = e;
        return -1;
    }
    it_track(fd);
    *port = ntohs(sa.sin_port);
    return fd;
}

int it_run_activated(char *const argv[], int listen_fd, int timeout_ms,
                     const char *stop_on, char **out, int64_t *elapsed_ms)
{
    static int seq;
    char outpath[512];
    snprintf(outpath, sizeof outpath, "%s/cmd%d.out", it_tmpdir(), ++seq);
    int64_t t0 = it_now_ms();
    pid_t pid = spawn(argv, outpath, listen_fd);
    int status = -1;
    if (pid > 0) {
        int64_t end = t0 + timeout_ms;
        for (;;) {
            pid_t r = waitpid(pid, &status, WNOHANG);
            if (r == pid)
                break;
            if (stop_on) {
                char *o = it_read_file(outpath, NULL);
                int hit = o && strstr(o, stop_on);
                free(o);
                if (hit) {
                    it_log("`%s` printed \"%s\": stopping it", argv[0],
                           stop_on);
                    status = -1;
                    break;
                }
            }
            if (it_now_ms() >= end) {
                it_log("`%s` still running after %d ms: stopping it",
                       argv[0], timeout_ms);
                status = -1;
                break;
            }
            it_sleep_ms(10);
        }
        if (status == -1) {
            /* Record its children so they get stopped too. */
            pid_t kids[64];
            int nk = it_children(pid, kids, 64);
            for (int i = 0; i < nk; i++) {
                unsigned long long st;
                if (proc_stat(kids[i], &st, NULL, NULL))
                    reg_proc(kids[i], 0, st);
            }
            kill(pid, SIGTERM);
            int dummy;
            if (!wait_until(pid, &dummy, 5000)) {
                kill(pid, SIGKILL);
                waitpid(pid, &dummy, 0);
            }
            for (int i = 0; i < nk; i++) {
                unsigned long long st;
                if (proc_stat(kids[i], &st, NULL, NULL)) {
                    int64_t wend = it_now_ms() + 3000;
                    while (worker_running(kids[i], st) && it_now_ms() < wend)
                        it_sleep_ms(10);
                    if (worker_running(kids[i], st))
                        kill(kids[i], SIGKILL);
                }
                unreg_proc(kids[i]);
            }
        }
        unreg_proc(pid);
    }
    if (elapsed_ms)
        *elapsed_ms = it_now_ms() - t0;
    if (out) {
        *out = it_read_file(outpath, NULL);
        if (!*out)
            *out = strdup("");
    }
    return status;
}

/* Appends the pids listed in a /proc/.../children file.  -1 if absent. */
static int read_children_file(const char *path, pid_t *out, int *n, int max)
{
    char *text = it_read_file(path, NULL);
    if (!text)
        return -1;
    char *p = text;
    while (*p && *n < max) {
        char *end;
        long v = strtol(p, &end, 10);
        if (end == p)
            break;
        out[(*n)++] = (pid_t)v;
        p = end;
        while (*p == ' ' || *p == '\n')
            p++;
    }
    free(text);
    return 0;
}

int it_children(pid_t master, pid_t *out, int max)
{
    int n = 0;
    char path[128];
    /* Children are listed per thread that forked them: read every task. */
    snprintf(path, sizeof path, "/proc/%d/task", (int)master);
    DIR *td = opendir(path);
    int have_file = 0;
    if (td) {
        struct dirent *e;
        while ((e = readdir(td))) {
            if (!isdigit((unsigned char)e->d_name[0]))
                continue;
            char cpath[300];
            snprintf(cpath, sizeof cpath, "/proc/%d/task/%s/children",
                     (int)master, e->d_name);
            if (read_children_file(cpath, out, &n, max) == 0)
                have_file = 1;
        }
        closedir(td);
    }
    if (have_file)
        return n;
    /* No children file on this kernel: scan /proc for PPid. */
    DIR *d = opendir("/proc");
    if (!d)
        return -1;
    struct dirent *e;
    while ((e = readdir(d)) && n < max) {
        if (!isdigit((unsigned char)e->d_name[0]))
            continue;
        pid_t p = (pid_t)atoi(e->d_name);
        pid_t pp;
        char st;
        if (proc_stat(p, NULL, &st, &pp) && pp == master && st != 'Z')
            out[n++] = p;
    }
    closedir(d);
    return n;
}

long it_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    char *text = it_read_file(path, NULL);
    if (!text)
        return -1;
    long kb = -1;
    char *p = strstr(text, "VmRSS:");
    if (p)
        kb = strtol(p + 6, NULL, 10);
    free(text);
    return kb;
}

void it_dump_log(const struct it_server *s)
{
    size_t len;
    char *text = it_read_file(s->log, &len);
    if (!text) {
        it_log("no server log at %s", s->log);
        return;
    }
    const size_t max = 48 * 1024;
    const char *p = text;
    if (len > max) {
        p = text + len - max;
        const char *nl = strchr(p, '\n');
        if (nl)
            p = nl + 1;
    }
    fprintf(stderr, "----- server log %s%s -----\n", s->log,
            len > max ? " (tail)" : "");
    fputs(p, stderr);
    if (len && text[len - 1] != '\n')
        fputc('\n', stderr);
    fprintf(stderr, "----- end of server log -----\n");
    fflush(stderr);
    free(text);
}

int it_log_contains(const struct it_server *s, const char *needle)
{
    char *text = it_read_file(s->log, NULL);
    int hit = text && strstr(text, needle);
    free(text);
    return hit;
}

size_t it_log_size(const struct it_server *s)
{
    struct stat st;
    return stat(s->log, &st) == 0 ? (size_t)st.st_size : 0;
}

int it_wait_log(const struct it_server *s, size_t off, const char *needle,
                int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        size_t len = 0;
        char *text = it_read_file(s->log, &len);
        const char *p = text && off <= len ? strstr(text + off, needle) : NULL;
        int hit = p && strchr(p, '\n');
        free(text);
        if (hit)
            return 1;
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(10);
    }
}

int it_wait_exit(struct it_server *s, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    while (it_server_alive(s)) {
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(10);
    }
    return 1;
}

char *it_log_since(const struct it_server *s, size_t off)
{
    size_t len = 0;
    char *text = it_read_file(s->log, &len);
    if (!text)
        return strdup("");
    if (off > len)
        off = len;
    memmove(text, text + off, len - off + 1);
    return text;
}

void it_stop_servers(struct it_server *srv, int n, int dump_logs)
{
    for (int i = 0; i < n; i++) {
        if (dump_logs && srv[i].log[0])
            it_dump_log(&srv[i]);
        if (it_server_stop(&srv[i]) != 0)
            it_failed = 1;
    }
}

pid_t it_wait_new_worker(const struct it_server *s, pid_t not, int timeout_ms)
{
    int64_t end = it_now_ms() + timeout_ms;
    for (;;) {
        pid_t k[64];
        int n = it_children(s->pid, k, 64);
        if (n == 1 && k[0] != not)
            return k[0];
        if (it_now_ms() >= end)
            return 0;
        it_sleep_ms(5);
    }
}

void it_kill_until_respawn_waits(struct it_server *s, const char *delay)
{
    pid_t w = s->workers[0];
    for (int round = 0;; round++) {
        size_t off = it_log_size(s);
        IT_CHECK(kill(w, SIGKILL) == 0, "kill(worker %d): %s", (int)w, strerror(errno));
        char line[64];
        snprintf(line, sizeof line, "respawning worker in %s", delay);
        if (it_wait_log(s, off, line, 1000))
            return;
        IT_CHECK(round < 3, "after %d kill -9 the log never said \"%s\"", round + 1, line);
        w = it_wait_new_worker(s, w, 3000);
        IT_CHECK(w > 0, "no worker respawned after kill -9");
    }
}

/* Port of "listening on HOST:PORT" once the whole number is written. */
static int parse_listening(const char *log)
{
    const char *p = strstr(log, "listening on ");
    if (!p)
        return 0;
    p += strlen("listening on ");
    const char *end = p;
    while (*end && *end != ' ' && *end != '\n' && *end != ',' &&
           *end != '\t')
        end++;
    if (!*end)
        return 0; /* line still being written */
    const char *colon = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == ':')
            colon = q;
    if (!colon)
        return -1;
    char *e;
    long port = strtol(colon + 1, &e, 10);
    if (e == colon + 1 || port <= 0 || port > 65535)
        return -1;
    return (int)port;
}

static void record_workers(struct it_server *s)
{
    pid_t kids[64];
    int n = it_children(s->pid, kids, 64);
    s->nworkers = 0;
    for (int i = 0; i < n; i++) {
        unsigned long long st;
        if (!proc_stat(kids[i], &st, NULL, NULL))
            continue;
        s->workers[s->nworkers++] = kids[i];
        reg_proc(kids[i], 0, st);
    }
}

void it_server_follow(struct it_server *s, pid_t pid)
{
    s->pid = pid;
    reg_proc(pid, 1, 0);
    record_workers(s);
}

int it_server_launch(struct it_server *s, const char *cfg_path)
{
    memset(s, 0, sizeof *s);
    snprintf(s->cfg, sizeof s->cfg, "%s", cfg_path);
    snprintf(s->log, sizeof s->log, "%s.log", cfg_path);
    if (!it_env.bin) {
        it_fail("IOSERVE_BIN is not set");
        return -1;
    }
    /* IOSERVE_IT_SET="key=value,key=value": -o overrides for a model
     * variant (e.g. models.epoll.edge_triggered=true), set by ctest. */
    char *argv[40] = {(char *)it_env.bin, "-c", s->cfg};
    int argc = 3;
    char *set = getenv("IOSERVE_IT_SET") ? strdup(getenv("IOSERVE_IT_SET")) : NULL;
    for (char *save = NULL, *kv = set ? strtok_r(set, ",", &save) : NULL; kv && argc < 37;
         kv = strtok_r(NULL, ",", &save)) {
        argv[argc++] = "-o";
        argv[argc++] = kv;
    }
    argv[argc] = NULL;
    s->launched_ms = it_now_ms();
    s->pid = spawn(argv, s->log, -1);
    free(set);
    if (s->pid <= 0) {
        s->pid = 0;
        return -1;
    }
    return 0;
}

int it_server_wait_listening(struct it_server *s)
{
    int64_t t0 = s->launched_ms;
    int expect_workers = 1;
    for (;;) {
        char *log = it_read_file(s->log, NULL);
        int port = log ? parse_listening(log) : 0;
        if (port > 0) {
            /* "listening on ADDR (model M, handler H, N workers, ...)" */
            const char *n = strstr(strstr(log, "listening on "), ", handler ");
            n = n ? strstr(n, ", ") : NULL;
            expect_workers = n ? atoi(n + 2) : 1;
            free(log);
            s->port = port;
            break;
        }
        if (port < 0) {
            it_fail("cannot parse the port of the \"listening on\" line");
            free(log);
            it_dump_log(s);
            record_workers(s); /* reaped with the master even if it needs SIGKILL */
            it_server_stop(s);
            return -1;
        }
        int st;
        pid_t r = waitpid(s->pid, &st, WNOHANG);
        if (r == s->pid) {
            unreg_proc(s->pid);
            s->pid = 0;
            s->status = st;
            char how[128];
            describe_status(st, how, sizeof how);
            it_fail("server exited before listening (%s)", how);
            free(log);
            it_dump_log(s);
            return -1;
        }
        free(log);
        if (it_now_ms() - t0 > 10000) {
            it_fail("no \"listening on\" line within 10 s");
            it_dump_log(s);
            record_workers(s); /* reaped with the master even if it needs SIGKILL */
            it_server_stop(s);
            return -1;
        }
        it_sleep_ms(10);
    }
    /* The master prints the line once every worker is ready: each is its
     * child by now, though /proc may show it a moment later. */
    record_workers(s);
    for (int64_t end = it_now_ms() + 2000; s->nworkers < expect_workers && it_now_ms() < end;) {
        it_sleep_ms(5);
        record_workers(s);
    }
    if (s->nworkers < expect_workers)
        it_log("the master says %d workers, /proc shows %d", expect_workers, s->nworkers);
    it_log("server pid %d listening on 127.0.0.1:%d (%d worker%s) in %lld ms",
           (int)s->pid, s->port, s->nworkers, s->nworkers == 1 ? "" : "s",
           (long long)(it_now_ms() - t0));
    return 0;
}

int it_server_start(struct it_server *s, const char *cfg_path)
{
    return it_server_launch(s, cfg_path) == 0 ? it_server_wait_listening(s) : -1;
}

int it_server_alive(struct it_server *s)
{
    if (s->pid <= 0)
        return 0;
    int st;
    pid_t r = waitpid(s->pid, &st, WNOHANG);
    if (r == s->pid) {
        unreg_proc(s->pid);
        s->pid = 0;
        s->status = st;
        return 0;
    }
    return 1;
}

int it_server_stop(struct it_server *s)
{
    int rc = 0;
    if (s->pid > 0) {
        pid_t pid = s->pid;
        kill(pid, SIGTERM);
        int st = 0;
        if (wait_until(pid, &st, 5000)) {
            s->stop_ok = 1;
        } else {
            it_fail("server pid %d still running 5 s after SIGTERM: "
                    "SIGKILL", (int)pid);
            kill(pid, SIGKILL);
            while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
                ;
            rc = -1;
        }
        s->status = st;
        unreg_proc(pid);
        s->pid = 0;
        char how[128];
        describe_status(st, how, sizeof how);
        if (s->stop_ok && !(WIFEXITED(st) && WEXITSTATUS(st) == 0))
            it_log("note: server stopped by SIGTERM with %s", how);
    }
    /* The workers must go with the master. */
    for (int i = 0; i < s->nworkers; i++) {
        pid_t w = s->workers[i];
        unsigned long long start = 0;
        for (int j = 0; j < MAX_PROCS; j++)
            if (g_procs[j].pid == w && !g_procs[j].own_child)
                start = g_procs[j].start;
        int64_t end = it_now_ms() + 3000;
        while (worker_running(w, start) && it_now_ms() < end)
            it_sleep_ms(10);
        if (worker_running(w, start)) {
            it_fail("worker pid %d still running 3 s after the master "
                    "exited: SIGKILL",
                    (int)w);
            kill(w, SIGKILL);
            rc = -1;
        }
        unreg_proc(w);
    }
    s->nworkers = 0;
    return rc;
}

/* ------------------------------------------------------ group fixtures */

void it_dump_group_log(void)
{
    if (g_group_server.log[0] && !g_group_log_dumped)
        it_dump_log(&g_group_server);
}

void it_own_start(struct it_server *s, const char *name, const char *const *lines)
{
    char *cfg = it_write_config(name, lines);
    assert_non_null(cfg);
    int rc = it_server_start(s, cfg);
    free(cfg);
    IT_CHECK(rc == 0, "the server did not start");
    it_srv = s;
}

int it_group_start(const char *const *lines)
{
    char *cfg = it_write_config(it_env.scenario ? it_env.scenario : "it",
                                lines);
    if (!cfg) {
        it_fail("cannot write the config");
        return -1;
    }
    int rc = it_server_start(&g_group_server, cfg);
    free(cfg);
    if (rc == -1)
        g_group_log_dumped = 1; /* it_server_start printed it */
    if (rc != 0) {
        it_srv = NULL;
        it_failed = 1;
        return -1;
    }
    it_srv = &g_group_server;
    return 0;
}

int it_group_teardown(void **state)
{
    (void)state;
    it_close_all();
    if (it_srv) {
        if (it_server_stop(it_srv) != 0)
            it_failed = 1;
    }
    return 0;
}

int it_test_setup(void **state)
{
    (void)state;
    return 0;
}

int it_test_teardown(void **state)
{
    (void)state;
    it_close_all();
    if (!it_srv)
        return 0;
    if (it_srv->pid > 0 && !it_server_alive(it_srv)) {
        char how[128];
        describe_status(it_srv->status, how, sizeof how);
        it_fail("the server exited during the test (%s)", how);
        return -1;
    }
    if (it_srv->pid > 0 && it_srv->nworkers > 0) {
        pid_t kids[64];
        int n = it_children(it_srv->pid, kids, 64);
        int same = n == it_srv->nworkers;
        for (int i = 0; same && i < n; i++) {
            int found = 0;
            for (int j = 0; j < it_srv->nworkers; j++)
                if (kids[i] == it_srv->workers[j])
                    found = 1;
            same = found;
        }
        if (!same) {
            it_fail("the worker processes changed during the test (a "
                    "worker died and was respawned?): had %d, now %d",
                    it_srv->nworkers, n);
            record_workers(it_srv);
            return -1;
        }
    }
    return 0;
}

/* --------------------------------------------------------------- sockets */

#define MAX_TRACKED 1024
static int g_fds[MAX_TRACKED];
static int g_nfds;

void it_track(int fd)
{
    if (fd < 0)
        return;
    if (g_nfds < MAX_TRACKED)
        g_fds[g_nfds++] = fd;
}

static void untrack(int fd)
{
    for (int i = 0; i < g_nfds; i++) {
        if (g_fds[i] == fd) {
            g_fds[i] = g_fds[--g_nfds];
            return;
        }
    }
}

void it_close(int fd)
{
    if (fd < 0)
        return;
    untrack(fd);
    close(fd);
}

void it_close_rst(int fd)
{
    if (fd < 0)
        return;
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    it_close(fd);
}

void it_close_all(void)
{
    while (g_nfds > 0)
        close(g_fds[--g_nfds]);
}

static int make_sock(int port, int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        set_err("socket: %s", strerror(errno));
        return -1;
    }
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *fd_out = fd;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
        return 0;
    if (errno == EINPROGRESS)
        return 1;
    set_err("connect 127.0.0.1:%d: %s", port, strerror(errno));
    close(fd);
    return -1;
}

int it_connect_nb(int port)
{
    int fd;
    if (make_sock(port, &fd) < 0)
        return -1;
    it_track(fd);
    return fd;
}

static int connect_ipv4(struct in_addr ip, int port, int timeout_ms)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons((uint16_t)port);
    a.sin_addr = ip;
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            close(fd);
            errno = e;
            return -1;
        }
        struct pollfd p = {fd, POLLOUT, 0};
        int r;
        do
            r = poll(&p, 1, timeout_ms);
        while (r < 0 && errno == EINTR);
        int err = 0;
        socklen_t el = sizeof err;
        if (r <= 0)
            err = ETIMEDOUT;
        else
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            close(fd);
            errno = err;
            return -1;
        }
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

int it_connect_timeout(int port, int timeout_ms)
{
    return connect_ipv4((struct in_addr){htonl(INADDR_LOOPBACK)}, port, timeout_ms);
}

int it_connect_to(const char *ip, int port)
{
    struct in_addr a;
    if (inet_pton(AF_INET, ip, &a) != 1) {
        set_err("not an IPv4 address: %s", ip);
        return -1;
    }
    int fd = connect_ipv4(a, port, 5000);
    if (fd < 0) {
        set_err("connect %s:%d: %s", ip, port,
                errno == ETIMEDOUT ? "timed out" : strerror(errno));
        return -1;
    }
    it_track(fd);
    return fd;
}

int it_connect(int port)
{
    return it_connect_to("127.0.0.1", port);
}

/* The inodes of the sockets among /proc/pid/fd (at most max), and with
 * fds non-NULL their descriptor numbers in that process.  Count, or -1
 * when the process is gone. */
static int socket_fds(pid_t pid, unsigned long *inodes, int *fds, int max)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while (n < max && (e = readdir(d))) {
        char link[400], target[64];
        snprintf(link, sizeof link, "%s/%s", path, e->d_name);
        ssize_t len = readlink(link, target, sizeof target - 1);
        if (len <= 0)
            continue;
        target[len] = 0;
        if (sscanf(target, "socket:[%lu]", &inodes[n]) != 1)
            continue;
        if (fds)
            fds[n] = atoi(e->d_name);
        n++;
    }
    closedir(d);
    return n;
}

static int socket_inodes(pid_t pid, unsigned long *inodes, int max)
{
    int n = socket_fds(pid, inodes, NULL, max);
    return n < 0 ? 0 : n;
}

int it_holds_socket(pid_t pid, unsigned long inode)
{
    static unsigned long held[4096];
    int n = socket_inodes(pid, held, 4096);
    for (int i = 0; i < n; i++)
        if (held[i] == inode)
            return 1;
    return 0;
}

/* it_tcp_sockets through copies of the process's descriptors (pidfd_getfd,
 * Linux 5.6): asks each socket itself, in time that grows with what the
 * process holds.  -1 when the kernel or ptrace rules refuse the copies. */
static int tcp_sockets_by_copy(pid_t pid, struct it_sock *out, int max)
{
#if defined(SYS_pidfd_open) && defined(SYS_pidfd_getfd)
    int pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (pidfd < 0)
        return -1;
    static unsigned long inodes[8192];
    static int theirs[8192];
    int nsock = socket_fds(pid, inodes, theirs, 8192);
    int n = 0, refused = nsock < 0;
    for (int k = 0; !refused && k < nsock; k++) {
        unsigned long inode = inodes[k];
        int fd = (int)syscall(SYS_pidfd_getfd, pidfd, theirs[k], 0);
        if (fd < 0) {
            refused = errno == EPERM || errno == ENOSYS;
            continue; /* closed meanwhile */
        }
        int domain = 0, type = 0, listening = 0;
        socklen_t olen = sizeof domain;
        struct sockaddr_in local;
        socklen_t alen = sizeof local;
        getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &domain, &olen);
        olen = sizeof type;
        getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &olen);
        olen = sizeof listening;
        getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &olen);
        int named = getsockname(fd, (struct sockaddr *)&local, &alen) == 0;
        close(fd);
        if (domain != AF_INET || type != SOCK_STREAM || !named)
            continue;
        if (n < max) {
            out[n].local = local;
            out[n].listening = listening;
            out[n].inode = inode;
        }
        n++;
    }
    close(pidfd);
    return refused ? -1 : n;
#else
    (void)pid, (void)out, (void)max;
    return -1;
#endif
}

int it_tcp_sockets(pid_t pid, struct it_sock *out, int max)
{
    /* /proc/net/tcp lists every socket of the namespace, TIME_WAIT ones
     * too: after the suite's load tests that is tens of thousands of
     * lines, and reading it took over a minute under ASan. */
    int by_copy = tcp_sockets_by_copy(pid, out, max);
    if (by_copy >= 0)
        return by_copy;
    static unsigned long held[4096];
    int nheld = socket_inodes(pid, held, 4096);
    char *text = it_read_file("/proc/net/tcp", NULL);
    if (!text)
        return -1;
    int n = 0;
    /* "sl local rem st tx:rx tr:when retrnsmt uid timeout inode ...",
     * addresses as hex in network byte order, the port in host order */
    for (char *line = strchr(text, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        unsigned addr, port, state;
        unsigned long inode;
        if (sscanf(line + 1, " %*d: %8X:%4X %*X:%*X %2X %*X:%*X %*X:%*X %*X %*u %*u %lu",
                   &addr, &port, &state, &inode) != 4 || inode == 0)
            continue;
        int mine = 0;
        for (int i = 0; !mine && i < nheld; i++)
            mine = held[i] == inode;
        if (!mine)
            continue;
        if (n < max) {
            memset(&out[n], 0, sizeof out[n]);
            out[n].local.sin_family = AF_INET;
            out[n].local.sin_addr.s_addr = addr;
            out[n].local.sin_port = htons((uint16_t)port);
            out[n].listening = state == 0x0A; /* TCP_LISTEN */
            out[n].inode = inode;
        }
        n++;
    }
    free(text);
    return n;
}

static int poll_fd(int fd, short events, int64_t deadline)
{
    for (;;) {
        int64_t left = deadline - it_now_ms();
        if (left < 0)
            left = 0;
        struct pollfd p = {fd, events, 0};
        int r = poll(&p, 1, (int)left);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            return 0;
        return p.revents ? p.revents : events;
    }
}

int it_send_all(int fd, const void *buf, size_t n, int timeout_ms)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    const char *p = buf;
    size_t done = 0;
    while (done < n) {
        ssize_t w = send(fd, p + done, n - done, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (w > 0) {
            done += (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK) {
            set_err("send: %s after %zu of %zu bytes", strerror(errno), done,
                    n);
            return -1;
        }
        int r = poll_fd(fd, POLLOUT, deadline);
        if (r == 0) {
            set_err("send: timed out after %zu of %zu bytes", done, n);
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return 0;
}

ssize_t it_recv_exact(int fd, void *buf, size_t n, int timeout_ms,
                      size_t *got)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    char *p = buf;
    size_t done = 0;
    if (got)
        *got = 0;
    while (done < n) {
        ssize_t r = recv(fd, p + done, n - done, MSG_DONTWAIT);
        if (r > 0) {
            done += (size_t)r;
            if (got)
                *got = done;
            continue;
        }
        if (r == 0) {
            set_err("recv: EOF after %zu of %zu bytes", done, n);
            errno = 0;
            return (ssize_t)done;
        }
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            set_err("recv: %s after %zu of %zu bytes", strerror(errno), done,
                    n);
            return -1;
        }
        if (poll_fd(fd, POLLIN, deadline) == 0) {
            set_err("recv: timed out after %zu of %zu bytes", done, n);
            errno = ETIMEDOUT;
            return -1;
        }
    }
    return (ssize_t)done;
}

int it_recv_until_eof(int fd, void *buf, size_t cap, int timeout_ms,
                      size_t *got)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    char *p = buf;
    size_t done = 0;
    char scratch[1];
    *got = 0;
    for (;;) {
        ssize_t r;
        if (done < cap)
            r = recv(fd, p + done, cap - done, MSG_DONTWAIT);
        else
            r = recv(fd, scratch, 1, MSG_DONTWAIT);
        if (r > 0) {
            if (done >= cap) {
                set_err("recv: more than the %zu bytes expected", cap);
                errno = EMSGSIZE;
                return -1;
            }
            done += (size_t)r;
            *got = done;
            continue;
        }
        if (r == 0)
            return 0;
        if (errno == EINTR)
            continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            set_err("recv: %s after %zu bytes (EOF expected)", strerror(errno),
                    done);
            return -1;
        }
        if (poll_fd(fd, POLLIN, deadline) == 0) {
            set_err("recv: no EOF within %d ms (%zu bytes received)",
                    timeout_ms, done);
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

int it_wait_closed(int fd, int timeout_ms, size_t *discarded)
{
    int64_t deadline = it_now_ms() + timeout_ms;
    char buf[16384];
    size_t total = 0;
    for (;;) {
        ssize_t r = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (r > 0) {
            total += (size_t)r;
            continue;
        }
        if (discarded)
            *discarded = total;
        if (r == 0)
            return 1;
        if (errno == EINTR)
            continue;
        if (errno == ECONNRESET || errno == EPIPE)
            return 1;
        if (errno != EAGAIN && errno != EWOULDBLOCK) {
            set_err("recv: %s", strerror(errno));
            return -1;
        }
        if (poll_fd(fd, POLLIN, deadline) == 0)
            return 0;
    }
}

int it_peer_closed(int fd, int wait_ms)
{
    struct pollfd p = {fd, POLLIN | POLLRDHUP, 0};
    int r;
    do
        r = poll(&p, 1, wait_ms);
    while (r < 0 && errno == EINTR);
    if (r <= 0)
        return 0;
    if (p.revents & (POLLHUP | POLLERR | POLLRDHUP))
        return 1;
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_DONTWAIT | MSG_PEEK);
    if (n == 0)
        return 1;
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
        return 1;
    return 0;
}

int it_transfer(int fd, struct it_xfer *x)
{
    int64_t deadline = it_now_ms() + x->timeout_ms;
    char *in = x->in;
    int shut_done = 0;
    char scratch[1];
    x->sent = x->got = 0;
    x->eof = 0;
    for (;;) {
        int send_more = x->sent < x->out_len;
        if (!send_more && x->shut_wr && !shut_done) {
            if (shutdown(fd, SHUT_WR) != 0) {
                set_err("shutdown(SHUT_WR): %s", strerror(errno));
                return -1;
            }
            shut_done = 1;
        }
        int recv_more = x->until_eof ? !x->eof : x->got < x->want;
        if (!send_more && !recv_more)
            return 0;
        if (x->eof && send_more) {
            set_err("peer closed after %zu bytes received, %zu of %zu sent",
                    x->got, x->sent, x->out_len);
            errno = 0;
            return -1;
        }
        if (x->eof && !x->until_eof && x->got < x->want) {
            set_err("EOF after %zu of %zu bytes", x->got, x->want);
            errno = 0;
            return -1;
        }
        int progress = 0;
        if (send_more) {
            size_t chunk = x->out_len - x->sent;
            if (chunk > 256 * 1024)
                chunk = 256 * 1024;
            ssize_t w = send(fd, (const char *)x->out + x->sent, chunk,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (w > 0) {
                x->sent += (size_t)w;
                progress = 1;
            } else if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR) {
                set_err("send: %s after %zu of %zu bytes (%zu received)",
                        strerror(errno), x->sent, x->out_len, x->got);
                return -1;
            }
        }
        if (recv_more) {
            ssize_t r;
            if (x->got < x->want)
                r = recv(fd, in + x->got, x->want - x->got, MSG_DONTWAIT);
            else
                r = recv(fd, scratch, 1, MSG_DONTWAIT);
            if (r > 0) {
                if (x->got >= x->want) {
                    set_err("received more than the %zu bytes expected",
                            x->want);
                    errno = EMSGSIZE;
                    return -1;
                }
                x->got += (size_t)r;
                progress = 1;
            } else if (r == 0) {
                x->eof = 1;
                progress = 1;
            } else if (errno != EAGAIN && errno != EWOULDBLOCK &&
                       errno != EINTR) {
                set_err("recv: %s after %zu of %zu bytes (%zu of %zu sent)",
                        strerror(errno), x->got, x->want, x->sent,
                        x->out_len);
                return -1;
            }
        }
        if (progress)
            continue;
        short ev = (short)((send_more ? POLLOUT : 0) | (recv_more ? POLLIN : 0));
        if (poll_fd(fd, ev, deadline) == 0) {
            set_err("timed out: %zu of %zu bytes sent, %zu received%s",
                    x->sent, x->out_len, x->got,
                    x->until_eof ? " (waiting for EOF)" : "");
            errno = ETIMEDOUT;
            return -1;
        }
    }
}

int it_roundtrip(int fd, const void *msg, size_t len, const void *expect,
                 size_t expect_len, int timeout_ms)
{
    char *in = malloc(expect_len ? expect_len : 1);
    if (!in) {
        set_err("out of memory");
        return -1;
    }
    struct it_xfer x = {.out = msg,
                        .out_len = len,
                        .in = in,
                        .want = expect_len,
                        .timeout_ms = timeout_ms};
    int rc = it_transfer(fd, &x);
    if (rc == 0) {
        long d = it_first_diff(in, expect, expect_len);
        if (d >= 0) {
            set_err("reply differs at byte %ld of %zu: got 0x%02x, "
                    "expected 0x%02x",
                    d, expect_len, (unsigned char)in[d],
                    ((const unsigned char *)expect)[d]);
            rc = -1;
        }
    }
    free(in);
    return rc;
}

/* ----------------------------------------------------------------- data */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

void it_pattern(uint64_t seed, uint64_t offset, void *buf, size_t n)
{
    unsigned char *p = buf;
    uint64_t base = seed * 0x100000001b3ull;
    size_t i = 0;
    while (i < n) {
        uint64_t pos = offset + i;
        uint64_t w = splitmix64(base ^ (pos >> 3));
        unsigned k = (unsigned)(pos & 7);
        for (; k < 8 && i < n; k++, i++)
            p[i] = (unsigned char)(w >> (8 * k));
    }
}

long it_first_diff(const void *a, const void *b, size_t n)
{
    if (memcmp(a, b, n) == 0)
        return -1;
    const unsigned char *x = a, *y = b;
    for (size_t i = 0; i < n; i++)
        if (x[i] != y[i])
            return (long)i;
    return -1;
}

int it_has_number_token(const char *s, const char *num)
{
    size_t nl = strlen(num);
    for (const char *p = s; *p; p++) {
        if (!isdigit((unsigned char)*p))
            continue;
        const char *q = p;
        while (isdigit((unsigned char)*q))
            q++;
        if ((size_t)(q - p) == nl && strncmp(p, num, nl) == 0)
            return 1;
        p = q - 1;
    }
    return 0;
}

/* ----------------------------------------------------- the status endpoint */

/* The port of "status: metrics on http://127.0.0.1:PORT/metrics". */
int it_status_port(const struct it_server *s)
{
    char *log = it_read_file(s->log, NULL);
    int port = 0;
    const char *p = log ? strstr(log, "metrics on http://127.0.0.1:") : NULL;
    if (p)
        port = atoi(p + strlen("metrics on http://127.0.0.1:"));
    free(log);
    return port;
}

/* GET path from the status endpoint; returns the whole response. */
char *it_http_get(int port, const char *path)
{
    int fd = it_connect(port);
    if (fd < 0)
        return NULL;
    char req[256];
    int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path);
    static char buf[1 << 17];
    size_t got = 0;
    if (it_send_all(fd, req, (size_t)n, 5000) != 0 ||
        it_recv_until_eof(fd, buf, sizeof buf - 1, 5000, &got) != 0) {
        it_close(fd);
        return NULL;
    }
    it_close(fd);
    buf[got] = '\0';
    return buf;
}

/* Sum of every sample of `family` (optionally only those whose labels
 * contain `label`). */
unsigned long long it_metric_sum(const char *body, const char *family, const char *label)
{
    unsigned long long sum = 0;
    size_t flen = strlen(family);
    for (const char *l = body; *l; l = strchr(l, '\n') + 1) {
        const char *end = strchr(l, '\n');
        if (!end)
            break;
        if (strncmp(l, family, flen) == 0 && (l[flen] == '{' || l[flen] == ' ')) {
            /* The value follows the last space: label values (a fallback's
             * reason) may hold spaces too. */
            const char *sp = end;
            while (sp > l && sp[-1] != ' ')
                sp--;
            char labels[512];
            snprintf(labels, sizeof labels, "%.*s", (int)(end - l), l);
            if (sp > l && (!label || strstr(labels, label)))
                sum += strtoull(sp, NULL, 10);
        }
    }
    return sum;
}

