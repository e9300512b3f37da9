/* SPDX-License-Identifier: Apache-2.0 OR GPL-2.0-or-later */
/*
 * A small work queue: jobs handed over in order and done by a few
 * threads, with at most a given weight (files, bytes) waiting. Its
 * errors read as if one thread had done the jobs in order: of the jobs
 * that fail, the error (and message) of the one handed over first is
 * kept, and a job handed over after a failed one is not run, only
 * released. Where no thread can be started the jobs run in the caller's
 * thread, as they are pushed.
 */
#ifndef CFS_WORKQ_H
#define CFS_WORKQ_H

#include <stddef.h>

struct cfs_workq;

struct cfs_workq_ops {
	/* Do @job with @scratch (scratch_size bytes, the thread's own):
	 * 0, or a negative errno with the cfs_error message set. */
	int (*run)(void *ctx, void *job, void *scratch);
	/* Optional: called once for every job pushed, run or not, in the
	 * thread that ran or dropped it, with no lock of the queue held. */
	void (*release)(void *ctx, void *job);
	size_t scratch_size;
};

/* Start up to @threads threads. @max_weight: what push() lets wait
 * before it blocks (one heavier job still goes in alone). 0 or
 * -ENOMEM. */
int cfs_workq_new(struct cfs_workq **out, const struct cfs_workq_ops *ops,
		  void *ctx, int threads, size_t max_weight);
/* Hand @job over; it is the queue's from now on. Blocks while the
 * waiting weight would pass the bound. Once a job has failed, returns
 * that error (the job is released, not run), so the caller may stop
 * early; the final word is cfs_workq_wait()'s. */
int cfs_workq_push(struct cfs_workq *q, void *job, size_t weight);
/* Wait until every job pushed is done: 0 or the error kept, with its
 * message set in this thread. */
int cfs_workq_wait(struct cfs_workq *q);
/* Drop (release) the jobs not started, let those in hand finish, end
 * the threads and free @q. NULL is fine. */
void cfs_workq_free(struct cfs_workq *q);

#endif
