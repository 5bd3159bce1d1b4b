/* The A/B split's counter (split.h). */
#include "split.h"

#include <stdio.h>

bool split_take(struct split_state *s)
{
    unsigned share = __atomic_load_n(&s->share, __ATOMIC_ACQUIRE);
    if (share == 0)
        return false;
    return split_is_canary(__atomic_fetch_add(&s->next, 1, __ATOMIC_RELAXED), share);
}

void split_set(struct split_state *s, unsigned share)
{
    __atomic_store_n(&s->share, share, __ATOMIC_RELEASE);
}

void split_describe(const char *canary_model, unsigned share, unsigned canary_workers,
                    char *out, size_t len)
{
    snprintf(out, len, "canary %s for %u%% of new connections (%u worker%s)", canary_model,
             share, canary_workers, canary_workers == 1 ? "" : "s");
}
