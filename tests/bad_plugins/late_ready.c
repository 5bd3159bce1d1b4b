/* A test plugin whose workers other than worker 0 report ready late, or
 * crash before they do: for the promises about starting a generation (the
 * old one drains only once every new worker is ready; a new one with a
 * worker that crashes or is not ready within 10 s is refused).  It serves
 * nothing: it waits for stop_fd and returns. */
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "ioserve/plugin.h"

static const struct ios_knob late_ready_knobs[] = {
    {"ready_delay_ms", IOS_KNOB_INT, 0, NULL, 0, 600000,
     "how long workers other than worker 0 wait before reporting ready"},
    {"crash", IOS_KNOB_BOOL, 0, NULL, 0, 1,
     "workers other than worker 0 die of SIGKILL instead of reporting ready"},
    IOS_KNOB_END,
};

IOS_MODEL("late_ready", "test plugin: late or crashing workers, serves nothing",
          late_ready_knobs);

int model_run(int listen_fd, const struct ios_handler *h)
{
    (void)listen_fd;
    long long delay_ms = 0;
    int crash = 0;
    h->knob_int(h, "ready_delay_ms", &delay_ms);
    h->knob_bool(h, "crash", &crash);
    struct pollfd stop = {.fd = h->stop_fd, .events = POLLIN};
    if (h->worker_id > 0) {
        if (crash)
            raise(SIGKILL);
        if (poll(&stop, 1, (int)delay_ms) > 0)
            return 0; /* told to stop before it was ready */
    }
    h->ready(h);
    while (poll(&stop, 1, -1) < 0)
        ;
    return 0;
}
