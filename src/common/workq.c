/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
#include "common/workq.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

#define WORKQ_THREADS_MAX 8

struct workq_item {
	struct workq_item *next;
	void *job;
	size_t weight;
	uint64_t seq;
};

struct cfs_workq {
	struct cfs_workq_ops ops;
	void *ctx;
	size_t max_weight;
	pthread_t threads[WORKQ_THREADS_MAX];
	int n_threads;
	void *scratch[WORKQ_THREADS_MAX]; /* one a thread; [0] inline */

	/* what the lock guards */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct workq_item *head, *tail;
	size_t weight; /* of the jobs waiting and in hand */
	int running; /* jobs in hand */
	bool stop;
	uint64_t next_seq;
	/* the failed job handed over first: its seq, error, message */
	uint64_t err_seq;
	int err;
	char *err_msg;
};

struct worker_arg {
	struct cfs_workq *q;
	void *scratch;
};

static void release(struct cfs_workq *q, void *job)
{
	if (q->ops.release)
		q->ops.release(q->ctx, job);
}

/* Keep @err of job @seq if it is the first failed one (lock held). */
static void keep_error(struct cfs_workq *q, uint64_t seq, int err)
{
	if (q->err && q->err_seq <= seq)
		return;
	free(q->err_msg);
	q->err_msg = strdup(cfs_error_message());
	q->err = err;
	q->err_seq = seq;
}

/* The error kept, said again in this thread (lock held). */
static int kept_error(struct cfs_workq *q)
{
	if (!q->err_msg)
		return cfs_error(-q->err, "out of memory");
	return cfs_error(-q->err, "%s", q->err_msg);
}

/* Run @it (lock held on entry and on return; dropped meanwhile). */
static void run_item(struct cfs_workq *q, struct workq_item *it, void *scratch)
{
	bool skip = q->err && q->err_seq < it->seq;
	int r = 0;

	q->running++;
	pthread_mutex_unlock(&q->lock);
	if (!skip)
		r = q->ops.run(q->ctx, it->job, scratch);
	release(q, it->job);
	pthread_mutex_lock(&q->lock);
	if (r < 0)
		keep_error(q, it->seq, r);
	q->running--;
	q->weight -= it->weight;
	free(it);
	pthread_cond_broadcast(&q->cond);
}

static void *worker(void *opaque)
{
	struct cfs_workq *q = ((struct worker_arg *)opaque)->q;
	void *scratch = ((struct worker_arg *)opaque)->scratch;

	free(opaque);
	pthread_mutex_lock(&q->lock);
	for (;;) {
		struct workq_item *it;

		while (!q->head && !q->stop)
			pthread_cond_wait(&q->cond, &q->lock);
		it = q->head;
		if (!it)
			break;
		q->head = it->next;
		if (!q->head)
			q->tail = NULL;
		run_item(q, it, scratch);
	}
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

int cfs_workq_new(struct cfs_workq **out, const struct cfs_workq_ops *ops,
		  void *ctx, int threads, size_t max_weight)
{
	struct cfs_workq *q = calloc(1, sizeof(*q));
	int n = threads < 1 ? 1 : threads;

	if (!q)
		return -ENOMEM;
	if (n > WORKQ_THREADS_MAX)
		n = WORKQ_THREADS_MAX;
	q->ops = *ops;
	q->ctx = ctx;
	q->max_weight = max_weight;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->cond, NULL);
	for (int i = 0; i < n && ops->scratch_size; i++) {
		q->scratch[i] = malloc(ops->scratch_size);
		if (!q->scratch[i]) {
			cfs_workq_free(q);
			return -ENOMEM;
		}
	}
	for (int i = 0; i < threads && i < n; i++) {
		struct worker_arg *a = malloc(sizeof(*a));

		if (!a)
			break;
		*a = (struct worker_arg){ q, q->scratch[i] };
		if (pthread_create(&q->threads[i], NULL, worker, a) != 0) {
			free(a);
			break; /* fewer will do; none: the caller's thread */
		}
		q->n_threads++;
	}
	*out = q;
	return 0;
}

int cfs_workq_push(struct cfs_workq *q, void *job, size_t weight)
{
	struct workq_item *it = malloc(sizeof(*it));
	int r = 0;

	if (!it) {
		release(q, job);
		return -ENOMEM;
	}
	*it = (struct workq_item){ .job = job, .weight = weight };
	pthread_mutex_lock(&q->lock);
	while (q->n_threads > 0 && q->weight > 0 &&
	       q->weight + weight > q->max_weight && !q->err)
		pthread_cond_wait(&q->cond, &q->lock);
	if (q->err) {
		r = kept_error(q);
		pthread_mutex_unlock(&q->lock);
		release(q, job);
		free(it);
		return r;
	}
	it->seq = q->next_seq++;
	q->weight += weight;
	if (q->n_threads == 0) {
		run_item(q, it, q->scratch[0]);
		if (q->err)
			r = kept_error(q);
	} else {
		if (q->tail)
			q->tail->next = it;
		else
			q->head = it;
		q->tail = it;
		pthread_cond_broadcast(&q->cond);
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

int cfs_workq_wait(struct cfs_workq *q)
{
	int r = 0;

	pthread_mutex_lock(&q->lock);
	while (q->head || q->running)
		pthread_cond_wait(&q->cond, &q->lock);
	if (q->err)
		r = kept_error(q);
	pthread_mutex_unlock(&q->lock);
	return r;
}

void cfs_workq_free(struct cfs_workq *q)
{
	struct workq_item *it;

	if (!q)
		return;
	pthread_mutex_lock(&q->lock);
	it = q->head;
	q->head = q->tail = NULL;
	q->stop = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	while (it) {
		struct workq_item *next = it->next;

		release(q, it->job);
		free(it);
		it = next;
	}
	for (int i = 0; i < q->n_threads; i++)
		pthread_join(q->threads[i], NULL);
	for (int i = 0; i < WORKQ_THREADS_MAX; i++)
		free(q->scratch[i]);
	free(q->err_msg);
	pthread_mutex_destroy(&q->lock);
	pthread_cond_destroy(&q->cond);
	free(q);
}
