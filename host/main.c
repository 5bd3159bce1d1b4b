/* ioserve: command line. */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "master.h"
#include "pidfile.h"
#include "plugin_load.h"
#include "split.h"
#include "upgrade.h"
#include "worker.h"

#ifndef IOSERVE_DEFAULT_CONFIG
#define IOSERVE_DEFAULT_CONFIG "/usr/local/etc/ioserve/ioserve.cfg"
#endif

#define MAX_OVERRIDES 64

static void usage(FILE *out)
{
    fprintf(out,
        "usage: ioserve [-c FILE] [-o KEY=VALUE]... [-t] [-s SIGNAL] [--list-models] [-V] [-h]\n"
        "\n"
        "A TCP server whose I/O model is a plugin (Linux only).\n"
        "\n"
        "  -c, --config FILE    configuration file (default " IOSERVE_DEFAULT_CONFIG ")\n"
        "  -o, --set KEY=VALUE  override a setting, e.g. -o model=select -o listen=127.0.0.1:0\n"
        "                       (repeatable; nested keys such as models.epoll.edge_triggered work)\n"
        "  -t, --test           check the configuration, that its models load and which one starts\n"
        "  -s, --signal SIGNAL  send SIGNAL to the running master (through pid_file):\n"
        "                       reload (swap in a new generation), quit (drain, exit), stop (exit now),\n"
        "                       upgrade (start the binary now at the master's path as a new master)\n"
        "      --list-models    list the plugins in plugin_dir with their knobs\n"
        "  -V, --version        print the version\n"
        "  -h, --help           this help\n");
}

/* Runs fn(cfg) in a child: plugin code (constructors included) never runs in
 * the process that would supervise workers.  Returns the child's verdict. */
static int in_child(int (*fn)(const struct ios_config *), const struct ios_config *cfg)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "ioserve: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int rc = fn(cfg);
        fflush(NULL);
        _exit(rc == 0 ? 0 : 1);
    }
    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM) {
        fprintf(stderr, "ioserve: the dry run did not end within %d s: a model did not "
                        "drain when stop_fd became readable\n", WORKER_DRY_RUN_SECONDS);
        return -1;
    }
    if (WIFSIGNALED(status)) {
        fprintf(stderr, "ioserve: loading a plugin crashed (signal %d)\n", WTERMSIG(status));
        return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

static const char *knob_type_name(enum ios_knob_type t)
{
    return t == IOS_KNOB_BOOL ? "bool" : t == IOS_KNOB_INT ? "int" : "string";
}

static int filter_so(const struct dirent *d)
{
    size_t n = strlen(d->d_name);
    return n > 3 && strcmp(d->d_name + n - 3, ".so") == 0;
}

static int list_models(const struct ios_config *cfg)
{
    struct dirent **names;
    int n = scandir(cfg->plugin_dir, &names, filter_so, alphasort);
    if (n < 0) {
        fprintf(stderr, "ioserve: plugin_dir %s: %s\n", cfg->plugin_dir, strerror(errno));
        return -1;
    }
    printf("models in %s:\n", cfg->plugin_dir);
    for (int i = 0; i < n; i++) {
        char path[4096], err[1024];
        snprintf(path, sizeof(path), "%s/%s", cfg->plugin_dir, names[i]->d_name);
        struct plugin p;
        if (plugin_open(&p, path, err, sizeof(err)) != 0) {
            printf("  %-12s (refused: %s)\n", names[i]->d_name, err);
        } else {
            printf("  %-12s %s\n", p.desc->name, p.desc->summary);
            for (const struct ios_knob *k = p.desc->knobs; k && k->name; k++) {
                char def[64];
                if (k->type == IOS_KNOB_STRING)
                    snprintf(def, sizeof(def), "\"%s\"",
                             k->default_string ? k->default_string : "");
                else if (k->type == IOS_KNOB_BOOL)
                    snprintf(def, sizeof(def), "%s", k->default_int ? "true" : "false");
                else
                    snprintf(def, sizeof(def), "%lld (%lld..%lld)", k->default_int,
                             k->min, k->max);
                printf("      models.%s.%s = %s  [%s]  %s\n", p.desc->name, k->name, def,
                       knob_type_name(k->type), k->help ? k->help : "");
            }
            plugin_close(&p);
        }
        free(names[i]);
    }
    free(names);
    printf("%s: model %s", cfg->file, cfg->models[0]);
    for (size_t i = 1; i < cfg->n_models; i++)
        printf("%s%s", i == 1 ? " (then " : ", ", cfg->models[i]);
    if (cfg->n_models > 1)
        printf(")");
    if (cfg->canary.model) {
        char split[192];
        split_describe(cfg->canary.model, cfg->canary.share, cfg->canary.workers, split,
                       sizeof(split));
        printf(", %s", split);
    }
    printf("\n");
    return 0;
}

static int send_signal(const struct ios_config *cfg, const char *what)
{
    int sig = strcmp(what, "reload") == 0 ? SIGHUP
            : strcmp(what, "quit") == 0   ? SIGQUIT
            : strcmp(what, "stop") == 0   ? SIGTERM
            : strcmp(what, "upgrade") == 0 ? SIGUSR2
                                          : 0;
    if (!sig) {
        fprintf(stderr, "ioserve: -s %s: expected reload, quit, stop or upgrade\n", what);
        return 1;
    }
    if (!cfg->pid_file) {
        fprintf(stderr, "ioserve: -s needs pid_file to be set in %s\n", cfg->file);
        return 1;
    }
    char err[1024];
    pid_t pid = pidfile_read(cfg->pid_file, err, sizeof(err));
    if (pid < 0) {
        fprintf(stderr, "ioserve: %s\n", err);
        return 1;
    }
    if (kill(pid, sig) != 0) {
        fprintf(stderr, "ioserve: kill %d: %s\n", (int)pid, strerror(errno));
        return 1;
    }
    return 0;
}

/* The path this binary was started from, absolute (a binary upgrade runs
 * what is found there then, so symlinks are left as they are): argv[0]
 * made absolute, or found in PATH, or, failing both, /proc/self/exe.
 * malloc'd, or NULL. */
static char *exe_path(const char *argv0)
{
    char buf[PATH_MAX];
    if (argv0[0] == '/')
        return strdup(argv0);
    if (strchr(argv0, '/')) {
        char cwd[PATH_MAX];
        if (getcwd(cwd, sizeof(cwd)) &&
            snprintf(buf, sizeof(buf), "%s/%s", cwd, argv0) < (int)sizeof(buf))
            return strdup(buf);
    } else if (getenv("PATH")) {
        char *dirs = strdup(getenv("PATH"));
        for (char *save = NULL, *d = dirs ? strtok_r(dirs, ":", &save) : NULL; d;
             d = strtok_r(NULL, ":", &save)) {
            if (d[0] == '/' && snprintf(buf, sizeof(buf), "%s/%s", d, argv0) < (int)sizeof(buf) &&
                access(buf, X_OK) == 0) {
                free(dirs);
                return strdup(buf);
            }
        }
        free(dirs);
    }
    ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    if (n <= 0)
        return NULL;
    buf[n] = '\0';
    return strdup(buf);
}

int main(int argc, char **argv)
{
    const char *config_file = IOSERVE_DEFAULT_CONFIG;
    char *overrides[MAX_OVERRIDES];
    size_t n_overrides = 0;
    int test_only = 0, want_list = 0;
    const char *signal_name = NULL;

    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"set", required_argument, NULL, 'o'},
        {"test", no_argument, NULL, 't'},
        {"signal", required_argument, NULL, 's'},
        {"list-models", no_argument, NULL, 'L'},
        {"version", no_argument, NULL, 'V'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    while ((opt = getopt_long(argc, argv, "c:o:ts:Vh", longopts, NULL)) != -1) {
        switch (opt) {
        case 'c': config_file = optarg; break;
        case 'o':
            if (n_overrides == MAX_OVERRIDES) {
                fprintf(stderr, "ioserve: at most %d -o options\n", MAX_OVERRIDES);
                return 1;
            }
            overrides[n_overrides++] = optarg;
            break;
        case 't': test_only = 1; break;
        case 's': signal_name = optarg; break;
        case 'L': want_list = 1; break;
        case 'V': printf("ioserve %s (plugin ABI %d.%d)\n", IOSERVE_VERSION,
                         IOS_ABI_MAJOR, IOS_ABI_MINOR);
                  return 0;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "ioserve: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 1;
    }

    struct ios_config *cfg = calloc(1, sizeof(*cfg));
    char err[1024];
    if (!cfg)
        return 1;
    if (cfg_load(cfg, config_file, overrides, n_overrides, err, sizeof(err)) != 0) {
        fprintf(stderr, "ioserve: %s\n", err);
        cfg_free(cfg);
        free(cfg);
        return 1;
    }

    int rc;
    if (signal_name) {
        rc = send_signal(cfg, signal_name);
    } else if (want_list) {
        rc = in_child(list_models, cfg) == 0 ? 0 : 1;
    } else if (test_only) {
        rc = in_child(worker_check, cfg) == 0 ? 0 : 1;
        if (rc == 0)
            printf("ioserve: %s: configuration ok\n", cfg->file);
        else
            fprintf(stderr, "ioserve: %s: configuration test failed\n", cfg->file);
    } else {
        log_set_level(cfg->log_level);
        struct upgrade_inherited in;
        int inherited = upgrade_inherited_from_env(&in, err, sizeof(err));
        if (inherited < 0) {
            fprintf(stderr, "ioserve: %s\n", err);
            cfg_free(cfg);
            free(cfg);
            return 1;
        }
        char *exe = exe_path(argv[0]);
        char **args = calloc((size_t)argc + 1, sizeof(*args));
        if (!exe || !args) {
            fprintf(stderr, "ioserve: out of memory\n");
            free(exe);
            free(args);
            cfg_free(cfg);
            free(cfg);
            return 1;
        }
        args[0] = exe;
        for (int i = 1; i < argc; i++)
            args[i] = argv[i];
        struct master_opts mo = {config_file, overrides, n_overrides, exe, args,
                                 inherited ? &in : NULL};
        rc = master_run(&mo, cfg); /* takes cfg */
        free(exe);
        free(args);
        return rc;
    }
    cfg_free(cfg);
    free(cfg);
    return rc;
}
