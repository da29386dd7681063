/* SPDX-License-Identifier: MIT */
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

#include "blk_pool.h"

struct blk_pool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct blk_pool_job *head, *tail;
	bool quit;
	unsigned n;
	pthread_t th[];
};

static void *pool_thread(void *arg)
{
	struct blk_pool *p = arg;

	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (!p->head && !p->quit)
			pthread_cond_wait(&p->cond, &p->lock);
		struct blk_pool_job *j = p->head;
		if (!j)
			break;   /* quitting and nothing left */
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		pthread_mutex_unlock(&p->lock);
		j->run(j);
		pthread_mutex_lock(&p->lock);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

struct blk_pool *blk_pool_new(unsigned threads)
{
	struct blk_pool *p = calloc(1, sizeof(*p) + threads * sizeof(pthread_t));

	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->cond, NULL);
	for (; p->n < threads; p->n++)
		if (pthread_create(&p->th[p->n], NULL, pool_thread, p)) {
			blk_pool_free(p);
			return NULL;
		}
	return p;
}

void blk_pool_free(struct blk_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->quit = true;
	pthread_cond_broadcast(&p->cond);
	pthread_mutex_unlock(&p->lock);
	for (unsigned i = 0; i < p->n; i++)
		pthread_join(p->th[i], NULL);
	pthread_cond_destroy(&p->cond);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

void blk_pool_submit(struct blk_pool *p, struct blk_pool_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->next = job;
	else
		p->head = job;
	p->tail = job;
	pthread_cond_signal(&p->cond);
	pthread_mutex_unlock(&p->lock);
}
