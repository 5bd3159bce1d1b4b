/* ioserve-it SCENARIO MODEL: runs one integration scenario against the real
 * ioserve binary.  Exit 0 = pass, 1 = fail, 77 = skip. */
#include "harness.h"
#include "hostile.h" /* sc_hostile.c, sc_soak.c, sc_memcheck.c */

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* sc_reload.c: hot swap */
int it_run_reload_swap(void);
int it_run_reload_bad(void);
int it_run_drain(void);
int it_run_listen_change(void);
int it_run_kill9(void);
int it_run_workers(void);
int it_run_signals(void);

/* sc_systemd.c: metrics, socket activation, sd_notify */
int it_run_metrics(void);
int it_run_socket_activation(void);
int it_run_sd_notify(void);

/* sc_lifecycle.c: a generation's life, workers without their master */
int it_run_lifecycle(void);
int it_run_orphan(void);
int it_run_restart_settings(void);

/* sc_http_rfc.c: what RFC 9112 asks of the http handler */
int it_run_http_rfc(void);

/* sc_handover_min.c: the host's hand-over path, with a minimal model */
int it_run_handover_host(void);

/* sc_fallback.c: io_uring refused */
int it_run_uring_unavailable(void);
int it_run_fork_refused(void);

/* sc_spread.c: several workers on one socket */
int it_run_spread(void);

/* sc_close.c: how a connection ends */
int it_run_stop_reading(void);
int it_run_linger(void);
/* Promises of the README only these read (issue 16): sc_timeouts.c,
 * sc_resume.c, sc_metrics.c, sc_promises.c */
int it_run_timeouts(void);
int it_run_resume(void);
int it_run_metrics_counts(void);
/* sc_latency.c */
int it_run_latency(void);
int it_run_refused_reset(void);
int it_run_reload_promises(void);
int it_run_exclusive_wakeup(void);
int it_run_generation_start(void);

/* sc_upgrade.c: binary upgrade */
int it_run_upgrade_load(void);
int it_run_upgrade_broken(void);
int it_run_upgrade_systemd(void);
int it_run_upgrade_fake_master(void);
int it_run_upgrade_drains(void);

/* sc_handover.c: live hand-over */
int it_run_handover_rotation(void);
int it_run_handover_stream(void);
int it_run_handover_idle(void);
int it_run_handover_spread(void);
int it_run_handover_kill(void);
int it_run_handover_abi11(void);
int it_run_handover_quit(void);
int it_run_handover_off(void);
int it_run_health(void);
int it_run_quit(void);
int it_run_health_master(void);

/* sc_canary.c: the A/B split */
int it_run_canary_split(void);
int it_run_canary_promote(void);
int it_run_canary_off(void);
int it_run_canary_bad(void);
int it_run_canary_systemd(void);

struct scenario {
    const char *name;
    int (*run)(void);
};

static const struct scenario scenarios[] = {
    {"echo", it_run_echo},
    {"upper", it_run_upper},
    {"concurrent", it_run_concurrent},
    {"slow_reader", it_run_slow_reader},
    {"half_close", it_run_half_close},
    {"reset", it_run_reset},
    {"http", it_run_http},
    {"http_rfc", it_run_http_rfc},
    {"max_conn", it_run_max_conn},
    {"idle", it_run_idle},
    {"bad_config", it_run_bad_config},
    {"bad_plugin", it_run_bad_plugin},
    {"check_ok", it_run_check_ok},
    {"reload_swap", it_run_reload_swap},
    {"reload_bad", it_run_reload_bad},
    {"drain", it_run_drain},
    {"listen_change", it_run_listen_change},
    {"kill9", it_run_kill9},
    {"workers", it_run_workers},
    {"signals", it_run_signals},
    {"metrics", it_run_metrics},
    {"socket_activation", it_run_socket_activation},
    {"sd_notify", it_run_sd_notify},
    {"uring_unavailable", it_run_uring_unavailable},
    {"fork_refused", it_run_fork_refused},
    {"lifecycle", it_run_lifecycle},
    {"handover_host", it_run_handover_host},
    {"orphan", it_run_orphan},
    {"restart_settings", it_run_restart_settings},
    {"slowloris", it_run_slowloris},
    {"emfile", it_run_emfile},
    {"many_conns", it_run_many_conns},
    {"soak", it_run_soak},
    {"privdrop", it_run_privdrop},
    {"memcheck", it_run_memcheck},
    {"refusals", it_run_refusals},
    {"spread", it_run_spread},
    {"stop_reading", it_run_stop_reading},
    {"linger", it_run_linger},
    {"timeouts", it_run_timeouts},
    {"resume", it_run_resume},
    {"metrics_counts", it_run_metrics_counts},
    {"latency", it_run_latency},
    {"refused_reset", it_run_refused_reset},
    {"reload_promises", it_run_reload_promises},
    {"exclusive_wakeup", it_run_exclusive_wakeup},
    {"generation_start", it_run_generation_start},
    {"handover_rotation", it_run_handover_rotation},
    {"handover_stream", it_run_handover_stream},
    {"handover_idle", it_run_handover_idle},
    {"handover_spread", it_run_handover_spread},
    {"handover_kill", it_run_handover_kill},
    {"handover_abi11", it_run_handover_abi11},
    {"handover_quit", it_run_handover_quit},
    {"handover_off", it_run_handover_off},
    {"health", it_run_health},
    {"quit", it_run_quit},
    {"health_master", it_run_health_master},
    {"canary_split", it_run_canary_split},
    {"canary_promote", it_run_canary_promote},
    {"canary_off", it_run_canary_off},
    {"canary_bad", it_run_canary_bad},
    {"canary_systemd", it_run_canary_systemd},
    {"upgrade_load", it_run_upgrade_load},
    {"upgrade_broken", it_run_upgrade_broken},
    {"upgrade_systemd", it_run_upgrade_systemd},
    {"upgrade_fake_master", it_run_upgrade_fake_master},
    {"upgrade_drains", it_run_upgrade_drains},
};

static void usage(void)
{
    fprintf(stderr, "usage: ioserve-it SCENARIO MODEL\nscenarios:");
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        fprintf(stderr, " %s", scenarios[i].name);
    fprintf(stderr,
            "\nenvironment: IOSERVE_BIN IOSERVE_PLUGIN_DIR "
            "IOSERVE_BAD_PLUGIN_DIR IOSERVE_SOURCE_DIR\n");
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        usage();
        return 2;
    }
    it_env.scenario = argv[1];
    it_env.model = argv[2];
    it_env.bin = getenv("IOSERVE_BIN");
    it_env.plugin_dir = getenv("IOSERVE_PLUGIN_DIR");
    it_env.bad_plugin_dir = getenv("IOSERVE_BAD_PLUGIN_DIR");
    it_env.source_dir = getenv("IOSERVE_SOURCE_DIR");

    const struct scenario *sc = NULL;
    for (size_t i = 0; i < sizeof scenarios / sizeof scenarios[0]; i++)
        if (strcmp(scenarios[i].name, argv[1]) == 0)
            sc = &scenarios[i];
    if (!sc) {
        fprintf(stderr, "ioserve-it: unknown scenario '%s'\n", argv[1]);
        usage();
        return 2;
    }
    if (!it_env.bin || !it_env.plugin_dir) {
        fprintf(stderr, "ioserve-it: IOSERVE_BIN and IOSERVE_PLUGIN_DIR "
                        "must be set\n");
        return 2;
    }

    signal(SIGPIPE, SIG_IGN);
    it_watchdog(90);

    /* Whether the model can run here is asked of the machine, before any
     * server starts: a server that then fails to start is a failure. */
    char why[1024];
    int failed = 0;
    if (it_model_unavailable(it_env.model, why, sizeof why))
        it_skip_scenario("%s", why);
    else
        failed = sc->run();
    alarm(0);

    /* A failure is reported even when some part of the scenario skipped. */
    if (failed || it_failed) {
        it_log("scenario failed (%d failed test%s%s)", failed,
               failed == 1 ? "" : "s",
               it_failed ? ", plus harness checks" : "");
        it_dump_group_log();
        return 1;
    }
    if (it_skip) {
        printf("SKIP: %s\n", it_skip_reason);
        fflush(stdout);
        return 77;
    }
    return 0;
}
