/* The hand-over relay (host/handover.c) between the worker ends
 * (host/worker_handover.c), with real socketpairs and descriptors: what a
 * draining worker gives reaches an adopter with its input, the master's
 * copy lives until the ACK, a dead adopter's connections go to another,
 * adopters are chosen round-robin, a 1.1 worker is never chosen, and in a
 * binary upgrade two relays in a chain keep the old master's copy until
 * the new master's worker has adopted it. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <poll.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "handler.h"
#include "handover.h"
#include "handover_wire.h"
#include "split.h"
#include "worker_handover.h"

#define MAX_WORKERS 6

/* One worker: the master's end and the worker's. */
struct wk {
    struct ho_end end;
    struct worker_ho ho;
    int fd; /* the worker's end */
};

struct fx {
    struct ho_relay relay;
    struct wk w[MAX_WORKERS];
    unsigned n;
    struct ho_end *adopters[MAX_WORKERS];
    struct ho_end *canary[MAX_WORKERS];
    struct ho_targets t;
    int flag;
};

static void wk_open(struct fx *f, const char *model, unsigned abi_minor)
{
    struct wk *w = &f->w[f->n++];
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp), 0);
    assert_int_equal(fcntl(sp[0], F_SETFL, O_NONBLOCK), 0);
    w->end = (struct ho_end){
        .fd = sp[0], .model = model, .protocol = "echo", .abi_minor = abi_minor};
    w->fd = sp[1];
    assert_int_equal(wh_init(&w->ho, sp[1], &f->flag), 0);
}

/* The worker dies: its end closes. */
static void wk_die(struct wk *w)
{
    close(w->fd);
    w->fd = -1;
}

static void fx_init(struct fx *f)
{
    memset(f, 0, sizeof(*f));
    ho_relay_init(&f->relay);
}

static void fx_adopters(struct fx *f, unsigned from);

/* Worker 0 (model epoll) gives; one adopter per entry of `minors`, of
 * model poll, or "old" for a minor below 2. */
static void fx_start(struct fx *f, const unsigned *minors, unsigned n)
{
    fx_init(f);
    wk_open(f, "epoll", 2);
    for (unsigned i = 0; i < n; i++)
        wk_open(f, minors[i] >= 2 ? "poll" : "old", minors[i]);
    fx_adopters(f, 1);
}

/* Worker 0 gives; workers from..n-1 are the active generation. */
static void fx_adopters(struct fx *f, unsigned from)
{
    f->t = (struct ho_targets){.main = f->adopters, .canary = f->canary};
    for (unsigned i = from; i < f->n; i++)
        f->adopters[f->t.n_main++] = &f->w[i].end;
}

static void fx_done(struct fx *f)
{
    ho_relay_fini(&f->relay);
    for (unsigned i = 0; i < f->n; i++) {
        close(f->w[i].end.fd);
        if (f->w[i].fd >= 0)
            close(f->w[i].fd);
    }
}

/* A connected pair standing for a TCP connection: *client, *server. */
static void conn_pair(int *client, int *server)
{
    int sp[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp), 0);
    *client = sp[0];
    *server = sp[1];
}

static void relay_read(struct fx *f, struct wk *w)
{
    assert_int_equal(ho_relay_read(&f->relay, &w->end, &f->t), 0);
}

/* The worker's give, then the relay's read: the giver's copy closed. */
static void give(struct fx *f, int server, const char *in)
{
    assert_int_equal(wh_give(&f->w[0].ho, server, in, strlen(in)), 0);
    close(server);
    relay_read(f, &f->w[0]);
}

/* Gives a connection whose client has gone: for counting where it goes. */
static void give_fresh(struct fx *f, const char *in)
{
    int client, server;
    conn_pair(&client, &server);
    give(f, server, in);
    close(client);
}

/* Bytes pass both ways between client and adopted. */
static void assert_connected(int client, int adopted)
{
    char c;
    assert_int_equal(write(client, "x", 1), 1);
    assert_int_equal(read(adopted, &c, 1), 1);
    assert_int_equal(c, 'x');
    assert_int_equal(write(adopted, "y", 1), 1);
    assert_int_equal(read(client, &c, 1), 1);
    assert_int_equal(c, 'y');
}

static void test_round_trip_with_input(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, (const unsigned[]){2}, 1);
    int client, server;
    conn_pair(&client, &server);

    give(&f, server, "GET / HTTP/1.1\r\nHost");
    assert_int_equal(ho_relay_in_transit(&f.relay), 1);

    int fd = -1;
    struct ios_buf in = {0};
    ios_buf_append(&in, "kept", 4); /* adopt appends */
    assert_int_equal(wh_adopt(&f.w[1].ho, &fd, &in), 0);
    assert_int_equal(in.len, 4 + 20);
    assert_memory_equal(in.data, "keptGET / HTTP/1.1\r\nHost", in.len);
    assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
    assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
    assert_int_equal(wh_adopt(&f.w[1].ho, &fd, &in), -EAGAIN);

    /* Until the ACK is read the master holds its copy; then it is gone. */
    assert_int_equal(ho_relay_in_transit(&f.relay), 1);
    relay_read(&f, &f.w[1]);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    assert_int_equal(f.relay.n_counts, 1);
    assert_string_equal(f.relay.counts[0].from, "epoll");
    assert_string_equal(f.relay.counts[0].to, "poll");
    assert_int_equal(f.relay.counts[0].n, 1);

    assert_connected(client, fd);
    close(fd); /* the adopter's copy was the last: the client sees the end */
    char c;
    assert_int_equal(read(client, &c, 1), 0);
    close(client);
    ios_buf_free(&in);
    fx_done(&f);
}

static void test_round_trip_without_input(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, (const unsigned[]){2}, 1);
    int client, server;
    conn_pair(&client, &server);
    give(&f, server, "");
    int fd = -1;
    struct ios_buf in = {0};
    assert_int_equal(wh_adopt(&f.w[1].ho, &fd, &in), 0);
    assert_int_equal(in.len, 0);
    relay_read(&f, &f.w[1]);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    assert_connected(client, fd);
    close(fd);
    close(client);
    fx_done(&f);
}

/* The master's copy keeps the connection open while no adopter has it. */
static void test_copy_held_until_ack(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, NULL, 0); /* no adopter at all yet */
    int client, server;
    conn_pair(&client, &server);
    give(&f, server, "");
    assert_int_equal(ho_relay_in_transit(&f.relay), 1);
    assert_int_equal(write(client, "z", 1), 1); /* not EPIPE: still open */

    wk_open(&f, "poll", 2); /* a worker becomes ready */
    fx_adopters(&f, 1);
    ho_relay_place(&f.relay, &f.t);
    int fd = -1;
    struct ios_buf in = {0};
    assert_int_equal(wh_adopt(&f.w[1].ho, &fd, &in), 0);
    char c;
    assert_int_equal(read(fd, &c, 1), 1); /* the byte waited in the kernel */
    assert_int_equal(c, 'z');
    relay_read(&f, &f.w[1]);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    close(fd);
    close(client);
    fx_done(&f);
}

/* An adopter dies before adopting: its end reads as closed, and what it
 * was sent goes to the next adopter, input included. */
static void test_dead_adopter_resends(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, (const unsigned[]){2, 2}, 2);
    int client[2], server[2];
    conn_pair(&client[0], &server[0]);
    conn_pair(&client[1], &server[1]);
    give(&f, server[0], "one"); /* round-robin: worker 1 */
    give(&f, server[1], "two"); /* worker 2 */

    wk_die(&f.w[1]);
    assert_int_equal(ho_relay_read(&f.relay, &f.w[1].end, &f.t), -EPIPE);
    /* What the generation does when it reaps the worker: harmless twice. */
    ho_relay_end_gone(&f.relay, &f.w[1].end, &f.t);
    assert_int_equal(ho_relay_in_transit(&f.relay), 2);

    int fd[2];
    struct ios_buf in[2] = {{0}, {0}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(wh_adopt(&f.w[2].ho, &fd[i], &in[i]), 0);
    relay_read(&f, &f.w[2]);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    /* Either order; each connection with its own input. */
    int first_is_two = in[0].len == 3 && memcmp(in[0].data, "two", 3) == 0;
    for (int i = 0; i < 2; i++) {
        int k = first_is_two ? 1 - i : i;
        assert_memory_equal(in[i].data, k == 0 ? "one" : "two", 3);
        assert_connected(client[k], fd[i]);
        close(fd[i]);
        close(client[k]);
        ios_buf_free(&in[i]);
    }
    fx_done(&f);
}

/* Adopts everything waiting at worker w, returning how many. */
static unsigned adopt_all(struct fx *f, struct wk *w)
{
    unsigned n = 0;
    int fd;
    struct ios_buf in = {0};
    while (wh_adopt(&w->ho, &fd, &in) == 0) {
        close(fd);
        n++;
    }
    ios_buf_free(&in);
    relay_read(f, w);
    return n;
}

static void test_round_robin_spread(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, (const unsigned[]){2, 2, 2, 2}, 4);
    unsigned got[MAX_WORKERS] = {0};
    for (int batch = 0; batch < 20; batch++) {
        for (int i = 0; i < 50; i++)
            give_fresh(&f, i % 3 ? "" : "abc");
        for (unsigned w = 1; w < f.n; w++)
            got[w] += adopt_all(&f, &f.w[w]);
    }
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    unsigned total = 0;
    for (unsigned w = 1; w < f.n; w++) {
        total += got[w];
        assert_in_range(got[w], 225, 275); /* an even share of 250, +-10 % */
    }
    assert_int_equal(total, 1000);
    assert_int_equal(f.relay.counts[0].n, 1000);
    fx_done(&f);
}

static void test_old_abi_never_chosen(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, (const unsigned[]){1, 2, 1}, 3);
    for (int i = 0; i < 20; i++)
        give_fresh(&f, "");
    assert_int_equal(adopt_all(&f, &f.w[1]), 0);
    assert_int_equal(adopt_all(&f, &f.w[3]), 0);
    assert_int_equal(adopt_all(&f, &f.w[2]), 20);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    fx_done(&f);
}

/* A later reload changed the handler while a connection waited for an
 * adopter: it cannot continue under http, so the master lets it go. */
static void test_other_protocol_closes(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, NULL, 0);
    int client, server;
    conn_pair(&client, &server);
    give(&f, server, "");
    assert_int_equal(ho_relay_in_transit(&f.relay), 1);
    wk_open(&f, "poll", 2);
    f.w[1].end.protocol = "http";
    fx_adopters(&f, 1);
    ho_relay_place(&f.relay, &f.t);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    char c;
    assert_int_equal(read(client, &c, 1), 0); /* the client sees the end */
    assert_int_equal(adopt_all(&f, &f.w[1]), 0);
    close(client);
    fx_done(&f);
}

/* An adopter that does not keep up: the master never blocks, the ADOPTs
 * wait for POLLOUT and all arrive once it reads. */
static void test_full_adopter_queues(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, (const unsigned[]){2}, 1);
    int n = 0;
    for (; !f.w[1].end.want_write && n < 400; n++)
        give_fresh(&f, "q");
    assert_true(f.w[1].end.want_write);
    unsigned got = 0;
    for (int round = 0; round < 100 && got < (unsigned)n; round++) {
        got += adopt_all(&f, &f.w[1]);
        ho_relay_writable(&f.relay, &f.w[1].end);
    }
    assert_int_equal(got, n);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    fx_done(&f);
}

/* What test_no_spare_descriptors_waits takes, given back even when it
 * fails: the other tests need descriptors. */
static struct rlimit saved_nofile;
static int fill[256], n_fill;

static int give_back_descriptors(void **st)
{
    (void)st;
    while (n_fill > 0)
        close(fill[--n_fill]);
    return saved_nofile.rlim_max ? setrlimit(RLIMIT_NOFILE, &saved_nofile) : 0;
}

/* Out of descriptors: the master leaves a GIVE in the socket rather than
 * receive it with its descriptors cut off (the kernel would drop them, and
 * the connection with them), and takes it once two are free. */
static void test_no_spare_descriptors_waits(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, (const unsigned[]){2}, 1);
    int client, server;
    conn_pair(&client, &server);
    assert_int_equal(wh_give(&f.w[0].ho, server, "", 0), 0);
    close(server);

    assert_int_equal(getrlimit(RLIMIT_NOFILE, &saved_nofile), 0);
    struct rlimit low = saved_nofile;
    low.rlim_cur = 256;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    /* every number below the limit taken but one */
    while (n_fill < 256 && (fill[n_fill] = dup(0)) >= 0)
        n_fill++;
    assert_true(n_fill > 0 && n_fill < 256);
    close(fill[--n_fill]);

    assert_int_equal(ho_relay_read(&f.relay, &f.w[0].end, &f.t), 0);
    assert_true(f.w[0].end.throttled);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0); /* still in the socket */

    close(fill[--n_fill]); /* two free: it is read (and, holding one, pauses again) */
    relay_read(&f, &f.w[0]);
    assert_int_equal(ho_relay_in_transit(&f.relay), 1);
    assert_int_equal(give_back_descriptors(NULL), 0);
    assert_int_equal(adopt_all(&f, &f.w[1]), 1);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    close(client);
    fx_done(&f);
}

/* The flag the master sets before it closes stop_wr. */

/* Worker 0 (generation 1, main side) routes one new connection. */
static void route_fresh(struct fx *f)
{
    int client, server;
    conn_pair(&client, &server);
    assert_int_equal(wh_route(&f->w[0].ho, server), 0);
    close(server);
    relay_read(f, &f->w[0]);
    close(client);
}

/* Workers 1..2 are generation 1's main side, 3..4 its canary side. */
static void fx_split(struct fx *f)
{
    fx_init(f);
    for (unsigned i = 0; i < 5; i++)
        wk_open(f, i < 3 ? "epoll" : "uring", 2);
    for (unsigned i = 0; i < 5; i++)
        f->w[i].end.gen_id = 1;
    fx_adopters(f, 1);
    f->t.n_main = 2;
    f->canary[f->t.n_canary++] = &f->w[3].end;
    f->canary[f->t.n_canary++] = &f->w[4].end;
    f->t.gen_id = 1;
}

static void test_route_goes_to_canary(void **st)
{
    (void)st;
    struct fx f;
    fx_split(&f);
    for (int i = 0; i < 10; i++)
        route_fresh(&f);
    assert_int_equal(adopt_all(&f, &f.w[1]) + adopt_all(&f, &f.w[2]), 0);
    assert_int_equal(adopt_all(&f, &f.w[3]), 5); /* round-robin over the canary side */
    assert_int_equal(adopt_all(&f, &f.w[4]), 5);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    assert_int_equal(f.relay.n_counts, 0); /* a route is not a hand-over */
    /* ... and a hand-over of the same generation goes to its main side */
    give_fresh(&f, "");
    assert_int_equal(adopt_all(&f, &f.w[3]) + adopt_all(&f, &f.w[4]), 0);
    assert_int_equal(adopt_all(&f, &f.w[1]) + adopt_all(&f, &f.w[2]), 1);
    fx_done(&f);
}

static void test_route_without_canary_stays_main(void **st)
{
    (void)st;
    struct fx f;
    fx_split(&f);
    f.t.n_canary = 0; /* the canary did not start, or died */
    route_fresh(&f);
    assert_int_equal(adopt_all(&f, &f.w[1]) + adopt_all(&f, &f.w[2]), 1);
    f.t.n_canary = 2;
    f.t.gen_id = 2; /* generation 1 drains now: its routes are hand-overs */
    route_fresh(&f);
    assert_int_equal(adopt_all(&f, &f.w[3]) + adopt_all(&f, &f.w[4]), 0);
    assert_int_equal(adopt_all(&f, &f.w[1]) + adopt_all(&f, &f.w[2]), 1);
    fx_done(&f);
}

static void test_split_share_exact(void **st)
{
    (void)st;
    for (unsigned share = 1; share <= 99; share++) {
        struct split_state s = {0};
        split_set(&s, share);
        unsigned canary = 0, run = 0;
        for (unsigned n = 0; n < 10000; n++) {
            canary += split_take(&s);
            /* of any 100 consecutive ones exactly `share` */
            if (n % 100 == 99) {
                assert_int_equal(canary - run, share);
                run = canary;
            }
        }
        assert_int_equal(canary, share * 100);
    }
    struct split_state off = {0};
    for (int n = 0; n < 100; n++)
        assert_false(split_take(&off));
    assert_int_equal(off.next, 0); /* nothing numbered while off */
}

static void test_requested_follows_flag(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, NULL, 0);
    assert_int_equal(wh_requested(&f.w[0].ho), 0);
    __atomic_store_n(&f.flag, 1, __ATOMIC_RELEASE);
    assert_int_equal(wh_requested(&f.w[0].ho), 1);
    struct worker_ho none;
    assert_int_equal(wh_init(&none, -1, &f.flag), 0); /* the dry run */
    assert_int_equal(wh_requested(&none), 0);
    assert_int_equal(wh_give(&none, 0, "", 0), -ENOTCONN);
    fx_done(&f);
}

/* The master's end closes (it died): adopt says none waits, a give fails
 * (the connection drains where it is), and the worker's socket number no
 * longer reads as readable. */
static void test_master_gone(void **st)
{
    (void)st;
    struct fx f;
    fx_start(&f, NULL, 0);
    close(f.w[0].end.fd);
    f.w[0].end.fd = socket(AF_UNIX, SOCK_SEQPACKET, 0); /* for fx_done */
    int fd;
    struct ios_buf in = {0};
    assert_int_equal(wh_adopt(&f.w[0].ho, &fd, &in), -EAGAIN);
    struct pollfd p = {.fd = f.w[0].fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 0);
    int client, server;
    conn_pair(&client, &server);
    assert_true(wh_give(&f.w[0].ho, server, "", 0) < 0);
    close(client);
    close(server);
    fx_done(&f);
}

/*
 * Binary upgrade: the old master's relay sends to the new master's end as
 * to an adopter; the new master's relay takes each ADOPT from its upstream
 * end as a give, places it on its own workers (re-sending when one dies
 * before adopting) and acknowledges it upstream only once a worker has: the
 * old master's copy lives until then.  f (the old master): worker 0 gives,
 * w[1] is the master-to-master socket; g (the new master): w[0] is its end
 * of that socket, w[1] and w[2] its workers.
 */
static void test_upgrade_chain_acks_once_adopted(void **st)
{
    (void)st;
    struct fx f, g;
    fx_start(&f, (const unsigned[]){2}, 1);
    fx_start(&g, (const unsigned[]){2, 2}, 2);
    /* The master-to-master socket replaces the adopter end of f and the
     * giver end of g: f.w[1].end and g.w[0].end are its two sides. */
    int mm[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, mm), 0);
    assert_int_equal(fcntl(mm[0], F_SETFL, O_NONBLOCK), 0);
    close(f.w[1].end.fd);
    f.w[1].end.fd = mm[0];
    f.w[1].end.model = "new master";
    close(g.w[0].end.fd);
    g.w[0].end.fd = mm[1];
    g.w[0].end.upstream = true;
    g.w[0].end.abi_minor = 0;

    int client, server;
    conn_pair(&client, &server);
    give(&f, server, "half a line");
    assert_int_equal(ho_relay_in_transit(&f.relay), 1);
    relay_read(&g, &g.w[0]); /* the new master takes it, sends it to worker 1 */
    assert_int_equal(ho_relay_in_transit(&g.relay), 1);

    /* Worker 1 dies before adopting: the new master sends it to worker 2;
     * the old master hears nothing yet and keeps its copy. */
    wk_die(&g.w[1]);
    assert_int_equal(ho_relay_read(&g.relay, &g.w[1].end, &g.t), -EPIPE);
    relay_read(&f, &f.w[1]);
    assert_int_equal(ho_relay_in_transit(&f.relay), 1);

    int fd = -1;
    struct ios_buf in = {0};
    assert_int_equal(wh_adopt(&g.w[2].ho, &fd, &in), 0);
    assert_memory_equal(in.data, "half a line", in.len);
    relay_read(&f, &f.w[1]);
    assert_int_equal(ho_relay_in_transit(&f.relay), 1); /* adopted, not yet acknowledged */
    relay_read(&g, &g.w[2]); /* the worker's ACK: the new master acknowledges upstream */
    assert_int_equal(ho_relay_in_transit(&g.relay), 0);
    assert_int_equal(ho_relay_in_transit(&f.relay), 1);
    relay_read(&f, &f.w[1]);
    assert_int_equal(ho_relay_in_transit(&f.relay), 0);
    /* Counted by the new master from the upstream end's model. */
    assert_int_equal(g.relay.n_counts, 1);
    assert_string_equal(g.relay.counts[0].from, "epoll");
    assert_string_equal(g.relay.counts[0].to, "poll");

    assert_connected(client, fd);
    close(fd);
    close(client);
    ios_buf_free(&in);
    fx_done(&g);
    fx_done(&f);
}

/* The protocols' side of the hand-over. */
static void test_handler_boundaries(void **st)
{
    (void)st;
    struct ios_config cfg;
    cfg_defaults(&cfg);
    struct hnd_host host;
    struct ios_handler h = {.struct_size = sizeof(h), .host = &host};
    const char *names[] = {"echo", "upper", "http"};
    for (int i = 0; i < 3; i++) {
        free(cfg.handler);
        cfg.handler = strdup(names[i]);
        assert_int_equal(hnd_setup(&h, &cfg), 0);
        assert_non_null(h.at_boundary);
        assert_int_equal(h.close_idle_on_drain, i == 2);
        char state[256] = {0};
        assert_true(h.conn_state_size <= sizeof(state));
        assert_int_equal(h.open(&h, state), 0);
        assert_int_equal(h.at_boundary(&h, state), 1);
        if (i == 2) {
            struct ios_buf out = {0};
            const char *req = "GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc";
            assert_int_equal(h.data(&h, state, req, strlen(req), &out), (ssize_t)strlen(req));
            assert_int_equal(h.at_boundary(&h, state), 0); /* 7 body bytes to come */
            assert_int_equal(h.data(&h, state, "defghij", 7, &out), 7);
            assert_int_equal(h.at_boundary(&h, state), 1);
            ios_buf_free(&out);
        }
        h.close(&h, state);
        hnd_teardown(&h);
    }
    cfg_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_with_input),
        cmocka_unit_test(test_round_trip_without_input),
        cmocka_unit_test(test_copy_held_until_ack),
        cmocka_unit_test(test_dead_adopter_resends),
        cmocka_unit_test(test_round_robin_spread),
        cmocka_unit_test(test_old_abi_never_chosen),
        cmocka_unit_test(test_other_protocol_closes),
        cmocka_unit_test(test_full_adopter_queues),
        cmocka_unit_test_teardown(test_no_spare_descriptors_waits, give_back_descriptors),
        cmocka_unit_test(test_route_goes_to_canary),
        cmocka_unit_test(test_route_without_canary_stays_main),
        cmocka_unit_test(test_split_share_exact),
        cmocka_unit_test(test_requested_follows_flag),
        cmocka_unit_test(test_master_gone),
        cmocka_unit_test(test_upgrade_chain_acks_once_adopted),
        cmocka_unit_test(test_handler_boundaries),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
