/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/* The work queue: the error of the job handed over first, jobs after a
 * failed one skipped, the bound on what waits, the caller's thread when
 * there are no threads, and free() dropping what is not started. */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>

#include "common/error.h"
#include "common/workq.h"
#include "test.h"

#define JOBS 20

struct ctx {
	int ran[JOBS], released[JOBS];
	int pushed; /* jobs whose push() returned */
	int max_ahead; /* most jobs pushed and not started, seen at a start */
	int started;
	pthread_t caller;
	bool other_thread;
	bool gate_timeout; /* job 0 was never let go */
	sem_t gate, began;
	pthread_mutex_t lock;
};

static struct ctx *ctx_new(void)
{
	struct ctx *c = calloc(1, sizeof(*c));

	c->caller = pthread_self();
	sem_init(&c->gate, 0, 0);
	sem_init(&c->began, 0, 0);
	pthread_mutex_init(&c->lock, NULL);
	return c;
}

static void ctx_free(struct ctx *c)
{
	sem_destroy(&c->gate);
	sem_destroy(&c->began);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static int count(const int *a)
{
	int n = 0;

	for (int i = 0; i < JOBS; i++)
		n += a[i];
	return n;
}

/* Job 0 fails late, job 1 at once; the others succeed. */
static int run_two_failures(void *opaque, void *job, void *scratch)
{
	struct ctx *c = opaque;
	int i = (int)(intptr_t)job;

	memset(scratch, 0xa5, 64); /* the thread's own: ASan sees misuse */
	pthread_mutex_lock(&c->lock);
	c->ran[i]++;
	pthread_mutex_unlock(&c->lock);
	if (i == 0) {
		usleep(200 * 1000);
		return cfs_error(EIO, "job 0 failed");
	}
	if (i == 1)
		return cfs_error(ENOSPC, "job 1 failed");
	return 0;
}

static void release(void *opaque, void *job)
{
	struct ctx *c = opaque;

	pthread_mutex_lock(&c->lock);
	c->released[(intptr_t)job]++;
	pthread_mutex_unlock(&c->lock);
}

/* @bound JOBS: all are queued before job 1 fails, and those after it
 * are skipped; 2: the pushes after job 1's failure are refused. */
static void first_error(size_t bound)
{
	const struct cfs_workq_ops ops = { run_two_failures, release, 64 };
	struct ctx *c = ctx_new();
	struct cfs_workq *q = NULL;
	bool stopped = false;

	CHECK_OK(cfs_workq_new(&q, &ops, c, 2, bound));
	for (intptr_t i = 0; i < JOBS; i++)
		if (cfs_workq_push(q, (void *)i, 1) < 0)
			stopped = true;
	/* job 1 failed first in time, job 0 was handed over first */
	CHECK_ERR(cfs_workq_wait(q), EIO);
	CHECK(strcmp(cfs_error_message(), "job 0 failed") == 0);
	/* said again, with the same answer */
	CHECK_ERR(cfs_workq_wait(q), EIO);
	cfs_workq_free(q);
	CHECK(c->ran[0] == 1 && c->ran[1] == 1);
	CHECK(count(c->ran) == 2);
	for (int i = 0; i < JOBS; i++)
		CHECK(c->released[i] == 1);
	if (bound < JOBS)
		CHECK(stopped); /* a push after job 1's failure said so */
	ctx_free(c);
}

static void test_first_error(void)
{
	first_error(JOBS);
	first_error(2);
}

/* Slow jobs: what the caller has pushed ahead of them stays bounded. */
static int run_slow(void *opaque, void *job, void *scratch)
{
	struct ctx *c = opaque;
	int ahead;

	(void)job;
	(void)scratch;
	pthread_mutex_lock(&c->lock);
	ahead = __atomic_load_n(&c->pushed, __ATOMIC_SEQ_CST) - c->started;
	if (ahead > c->max_ahead)
		c->max_ahead = ahead;
	c->started++;
	if (!pthread_equal(pthread_self(), c->caller))
		c->other_thread = true;
	pthread_mutex_unlock(&c->lock);
	usleep(2000);
	return 0;
}

static void test_bound(void)
{
	const struct cfs_workq_ops ops = { .run = run_slow };
	struct ctx *c = ctx_new();
	struct cfs_workq *q = NULL;

	CHECK_OK(cfs_workq_new(&q, &ops, c, 1, 3));
	for (intptr_t i = 0; i < JOBS; i++) {
		CHECK_OK(cfs_workq_push(q, (void *)i, 1));
		__atomic_add_fetch(&c->pushed, 1, __ATOMIC_SEQ_CST);
	}
	CHECK_OK(cfs_workq_wait(q));
	cfs_workq_free(q);
	CHECK(c->started == JOBS);
	CHECK(c->max_ahead <= 3);
	CHECK(c->other_thread);
	ctx_free(c);

	/* one job heavier than the bound still goes in */
	c = ctx_new();
	CHECK_OK(cfs_workq_new(&q, &ops, c, 1, 3));
	CHECK_OK(cfs_workq_push(q, NULL, 100));
	CHECK_OK(cfs_workq_push(q, NULL, 1));
	CHECK_OK(cfs_workq_wait(q));
	cfs_workq_free(q);
	CHECK(c->started == 2);
	ctx_free(c);
}

/* No threads: each job runs in push(), whose answer is its error. */
static void test_inline(void)
{
	const struct cfs_workq_ops ops = { run_two_failures, release, 64 };
	const struct cfs_workq_ops slow = { .run = run_slow };
	struct ctx *c = ctx_new();
	struct cfs_workq *q = NULL;

	CHECK_OK(cfs_workq_new(&q, &slow, c, 0, 1));
	CHECK_OK(cfs_workq_push(q, NULL, 1));
	CHECK(c->started == 1 && !c->other_thread);
	cfs_workq_free(q);
	ctx_free(c);

	c = ctx_new();
	CHECK_OK(cfs_workq_new(&q, &ops, c, 0, 1));
	CHECK_OK(cfs_workq_push(q, (void *)(intptr_t)2, 1));
	CHECK(c->ran[2] == 1 && c->released[2] == 1);
	cfs_error(EINVAL, "something else");
	CHECK_ERR(cfs_workq_push(q, (void *)(intptr_t)0, 1), EIO);
	CHECK(strcmp(cfs_error_message(), "job 0 failed") == 0);
	CHECK_ERR(cfs_workq_push(q, (void *)(intptr_t)1, 1), EIO);
	CHECK(c->ran[1] == 0 && c->released[1] == 1);
	CHECK_ERR(cfs_workq_wait(q), EIO);
	cfs_workq_free(q);
	ctx_free(c);
}

/* Job 0 holds the only thread until free() has dropped job 1. */
static int run_gated(void *opaque, void *job, void *scratch)
{
	struct ctx *c = opaque;
	struct timespec ts;

	(void)scratch;
	pthread_mutex_lock(&c->lock);
	c->ran[(intptr_t)job]++;
	pthread_mutex_unlock(&c->lock);
	if ((intptr_t)job == 0) {
		sem_post(&c->began);
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_sec += 10;
		c->gate_timeout = sem_timedwait(&c->gate, &ts) != 0;
	}
	return 0;
}

static void release_gated(void *opaque, void *job)
{
	struct ctx *c = opaque;

	release(c, job);
	if ((intptr_t)job == 1)
		sem_post(&c->gate);
}

static void test_free_drops(void)
{
	const struct cfs_workq_ops ops = { run_gated, release_gated, 0 };
	struct ctx *c = ctx_new();
	struct cfs_workq *q = NULL;

	CHECK_OK(cfs_workq_new(&q, &ops, c, 1, JOBS));
	for (intptr_t i = 0; i < 5; i++)
		CHECK_OK(cfs_workq_push(q, (void *)i, 1));
	sem_wait(&c->began); /* job 0 is in hand, the others wait */
	cfs_workq_free(q);
	CHECK(c->ran[0] == 1 && !c->gate_timeout);
	CHECK(count(c->ran) == 1);
	CHECK(count(c->released) == 5);
	cfs_workq_free(NULL);
	ctx_free(c);
}

int main(int argc, char **argv)
{
	TEST_RUN(argc, argv, test_first_error);
	TEST_RUN(argc, argv, test_bound);
	TEST_RUN(argc, argv, test_inline);
	TEST_RUN(argc, argv, test_free_drops);
	return test_done();
}
