/* SPDX-License-Identifier: MIT */
/* A fixed pool of threads running jobs in submission order. */
#ifndef VHU_BLK_POOL_H
#define VHU_BLK_POOL_H

struct blk_pool_job {
	struct blk_pool_job *next;
	void (*run)(struct blk_pool_job *job);   /* in a pool thread */
};

struct blk_pool;
struct blk_pool *blk_pool_new(unsigned threads);
/* Runs every queued job, then joins the threads. */
void blk_pool_free(struct blk_pool *p);
void blk_pool_submit(struct blk_pool *p, struct blk_pool_job *job);

#endif
