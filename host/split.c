/* The A/B split's counter (split.h). */
#include "split.h"

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
