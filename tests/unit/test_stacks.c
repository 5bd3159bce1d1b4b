/* plugins/common/ioc_stacks.c: the blocking model's pool of thread stacks. */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "ioc_stacks.h"

#define STACK (64 * 1024 + 100) /* not a page multiple: rounded up */

static size_t page(void)
{
    return (size_t)sysconf(_SC_PAGESIZE);
}

/* Every stack is its own, writable over its whole size, page-aligned, and
 * the pool says no once all are taken. */
static void test_take_until_empty(void **state)
{
    (void)state;
    struct ioc_stacks s;
    assert_int_equal(ioc_stacks_init(&s, 3, STACK), 0);
    assert_true(s.size >= STACK && s.size % page() == 0);
    char *stack[3];
    for (int i = 0; i < 3; i++) {
        int slot = ioc_stacks_take(&s, (void **)&stack[i]);
        assert_int_equal(slot, i);
        assert_int_equal((uintptr_t)stack[i] % page(), 0);
        memset(stack[i], 0xa5, s.size);
        for (int j = 0; j < i; j++)
            assert_true(stack[i] >= stack[j] + s.size || stack[j] >= stack[i] + s.size);
    }
    void *none;
    assert_int_equal(ioc_stacks_take(&s, &none), -1);
    ioc_stacks_fini(&s);
}

/* A slot given back is the next one taken, and keeps its memory. */
static void test_put_reuses_last_freed(void **state)
{
    (void)state;
    struct ioc_stacks s;
    assert_int_equal(ioc_stacks_init(&s, 4, STACK), 0);
    void *a, *b, *again;
    int sa = ioc_stacks_take(&s, &a);
    int sb = ioc_stacks_take(&s, &b);
    ioc_stacks_put(&s, sa);
    ioc_stacks_put(&s, sb);
    assert_int_equal(ioc_stacks_take(&s, &again), sb);
    assert_ptr_equal(again, b);
    assert_int_equal(ioc_stacks_take(&s, &again), sa);
    assert_ptr_equal(again, a);
    assert_int_equal(ioc_stacks_take(&s, &again), 2); /* then a fresh one */
    ioc_stacks_put(&s, -1); /* a thread on a default stack: nothing */
    ioc_stacks_fini(&s);
}

/* The page below each stack faults: a thread overflowing its stack dies
 * rather than writing over its neighbour's. */
static void test_guard_page_faults(void **state)
{
    (void)state;
    struct ioc_stacks s;
    assert_int_equal(ioc_stacks_init(&s, 2, STACK), 0);
    char *first, *second;
    ioc_stacks_take(&s, (void **)&first);
    ioc_stacks_take(&s, (void **)&second);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGSEGV, SIG_DFL);
        *(volatile char *)(second - 1) = 1; /* just past the first one's top */
        _exit(0);
    }
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGSEGV);
    ioc_stacks_fini(&s);
}

/* The address of one of the thread's locals, as a number. */
static void *where_am_i(void *arg)
{
    char local;
    *(uintptr_t *)arg = (uintptr_t)&local;
    return NULL;
}

/* A thread started on a pool stack runs there and is joined. */
static void test_thread_runs_on_pool_stack(void **state)
{
    (void)state;
    struct ioc_stacks s;
    assert_int_equal(ioc_stacks_init(&s, 1, 256 * 1024), 0);
    char *stack;
    uintptr_t local = 0;
    assert_int_equal(ioc_stacks_take(&s, (void **)&stack), 0);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    assert_int_equal(pthread_attr_setstack(&attr, stack, s.size), 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, &attr, where_am_i, &local), 0);
    pthread_attr_destroy(&attr);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_true(local > (uintptr_t)stack && local < (uintptr_t)stack + s.size);
    ioc_stacks_fini(&s);
}

/* No pool: every take says so, and the model falls back to default
 * stacks. */
static void test_no_pool_takes_nothing(void **state)
{
    (void)state;
    struct ioc_stacks s;
    void *stack;
    assert_int_equal(ioc_stacks_init(&s, 0, STACK), -EINVAL);
    assert_int_equal(ioc_stacks_take(&s, &stack), -1);
    ioc_stacks_fini(&s);

    /* more address space than there is: refused before any mmap */
    assert_int_equal(ioc_stacks_init(&s, 1u << 31, SIZE_MAX / 1024), -EINVAL);
    assert_int_equal(ioc_stacks_take(&s, &stack), -1);
    ioc_stacks_fini(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_take_until_empty),
        cmocka_unit_test(test_put_reuses_last_freed),
        cmocka_unit_test(test_guard_page_faults),
        cmocka_unit_test(test_thread_runs_on_pool_stack),
        cmocka_unit_test(test_no_pool_takes_nothing),
    };
    return cmocka_run_group_tests_name("stacks", tests, NULL, NULL);
}
