/* /healthz and /readyz (host/health.c) in each state of the master, on a
 * master table built by hand: start-up, serving, a reload starting, every
 * worker dead and waiting out a respawn, -s quit (its quit_delay, the
 * backlog emptied, the drain), -s stop.  The real
 * server in each state: it.health_start and it.<model>.health. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "master_state.h"

#define NSLOTS 2

struct fx {
    struct master m;
    struct generation gens[2];
    struct worker_slot slots[2][NSLOTS];
    struct ios_counters counters[2][NSLOTS];
};

/* Generation `i` (id i + 1) of the fixture, in `state`, with `up` of its
 * workers running and ready, the others dead with a respawn due in 1 s. */
static struct generation *gen(struct fx *f, unsigned i, enum gen_state state, unsigned up)
{
    struct generation *g = &f->gens[i];
    g->id = i + 1;
    g->state = state;
    g->slots = f->slots[i];
    g->nslots = NSLOTS;
    g->counters = f->counters[i];
    for (unsigned j = 0; j < NSLOTS; j++) {
        struct worker_slot *w = &g->slots[j];
        snprintf(w->model, sizeof(w->model), "epoll");
        w->pid = j < up ? (pid_t)(1000 + 10 * i + j) : 0;
        w->ready = j < up;
        w->respawn_at_ms = j < up ? 0 : clock_now_ms() + 1000;
    }
    f->m.gens[i] = g;
    return g;
}

/* The page's code; its body (one line) in line. */
static int ask(struct fx *f, int (*page)(void *, struct ios_buf *), char *line, size_t len)
{
    struct ios_buf out = {0};
    int code = page(&f->m, &out);
    assert_true(ios_buf_pending(&out) > 0 && ios_buf_pending(&out) < len);
    memcpy(line, out.data + out.off, ios_buf_pending(&out));
    line[ios_buf_pending(&out)] = '\0';
    ios_buf_free(&out);
    /* one line, saying why */
    assert_non_null(strchr(line, '\n'));
    assert_true(strchr(line, '\n') == line + strlen(line) - 1);
    return code;
}

static void expect(struct fx *f, int live, const char *live_why, int ready,
                   const char *ready_why)
{
    char line[512];
    int code = ask(f, health_live, line, sizeof(line));
    if (code != live || !strstr(line, live_why))
        fail_msg("/healthz: %d %s(expected %d \"%s...\")", code, line, live, live_why);
    code = ask(f, health_ready, line, sizeof(line));
    if (code != ready || !strstr(line, ready_why))
        fail_msg("/readyz: %d %s(expected %d \"%s...\")", code, line, ready, ready_why);
}

static int setup(void **st)
{
    *st = calloc(1, sizeof(struct fx));
    return *st ? 0 : -1;
}

static int teardown(void **st)
{
    free(*st);
    return 0;
}

static void start_up(void **st)
{
    struct fx *f = *st;
    gen(f, 0, GEN_STARTING, 1);
    expect(f, 503, "starting: generation 1 has 1 of 2", 503, "starting: generation 1 has 1 of 2");
}

static void serving(void **st)
{
    struct fx *f = *st;
    gen(f, 0, GEN_ACTIVE, 2);
    expect(f, 200, "ok: generation 1 serving, 2 of 2", 200,
           "ready: generation 1 serving with model epoll, 2 of 2");
    /* one worker down of two: still ready */
    gen(f, 0, GEN_ACTIVE, 1);
    expect(f, 200, "ok", 200, "ready: generation 1 serving with model epoll, 1 of 2");
}

static void reload_starting(void **st)
{
    struct fx *f = *st;
    gen(f, 0, GEN_ACTIVE, 2);
    gen(f, 1, GEN_STARTING, 0);
    expect(f, 200, "ok: generation 1 serving", 200, "ready: generation 1 serving");
}

/* Every worker died: the master respawns them (alive), nothing accepts
 * now (not ready). */
static void no_worker_up(void **st)
{
    struct fx *f = *st;
    gen(f, 0, GEN_ACTIVE, 0);
    expect(f, 200, "ok: generation 1 serving, 0 of 2 worker(s) up, respawning", 503,
           "no worker up: generation 1 lost its 2 worker(s), next respawn in ");
    /* a respawned worker that has not reported ready yet is not up */
    f->slots[0][0].pid = 4242;
    f->slots[0][0].respawn_at_ms = 0;
    expect(f, 200, "respawning", 503, "no worker up");
    f->slots[0][0].ready = true;
    expect(f, 200, "1 of 2", 200, "ready");
}

static void quitting(void **st)
{
    struct fx *f = *st;
    gen(f, 0, GEN_DRAINING, 2);
    f->counters[0][1].active = 3;
    f->m.quitting = true;
    expect(f, 200, "ok: generation 1 draining for -s quit, 3 connection(s) open", 503,
           "stopping: draining for -s quit, 3 connection(s) open");
}

/* quit_delay: still serving and accepting, but not ready any more. */
static void quit_delay(void **st)
{
    struct fx *f = *st;
    gen(f, 0, GEN_ACTIVE, 2);
    f->m.quitting = true;
    f->m.quit_phase = QUIT_DELAY;
    f->m.quit_phase_at_ms = clock_now_ms() + 4000;
    expect(f, 200, "ok: generation 1 serving, 2 of 2", 503, "stopping: -s quit, accepting for ");
    char line[512];
    ask(f, health_ready, line, sizeof(line));
    unsigned long long left = strtoull(strstr(line, "for ") + 4, NULL, 10);
    assert_true(left > 3000 && left <= 4000);
    assert_non_null(strstr(line, " more ms so balancers can take this instance out"));
    f->m.quit_phase = QUIT_FLUSH;
    expect(f, 200, "ok: generation 1 serving", 503,
           "stopping: -s quit, accepting what the backlog holds, then draining");
}

static void terminating(void **st)
{
    struct fx *f = *st;
    gen(f, 0, GEN_ACTIVE, 2);
    f->m.terminating = true;
    expect(f, 503, "stopping: fast stop", 503, "stopping: fast stop");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(start_up, setup, teardown),
        cmocka_unit_test_setup_teardown(serving, setup, teardown),
        cmocka_unit_test_setup_teardown(reload_starting, setup, teardown),
        cmocka_unit_test_setup_teardown(no_worker_up, setup, teardown),
        cmocka_unit_test_setup_teardown(quitting, setup, teardown),
        cmocka_unit_test_setup_teardown(quit_delay, setup, teardown),
        cmocka_unit_test_setup_teardown(terminating, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
