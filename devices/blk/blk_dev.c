/* SPDX-License-Identifier: MIT */
/*
 * vhu-blk's device: virtio-blk requests served from a file or block device
 * through an I/O engine: io_uring (one ring per queue, its completion
 * eventfd watched by the queue's worker), synchronous preadv/pwritev in the
 * worker, or null (no I/O, for benchmarks; reads return zeroes).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <liburing.h>
#include <poll.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "blk_dev.h"
#include "blk_pool.h"

#define POP_IOV BLK_MAX_IOV
/* chains taken from the ring per call */
#define POP_BURST 32

struct blk_queue;

struct blk_slot {
	struct blk_pool_job job;  /* first: the pool hands it back */
	struct blk_queue *bq;
	uint8_t result;
	struct blk_slot *done_next;
	struct vhu_vq_elem e;
	struct iovec iov[POP_IOV];
	struct blk_req r;
	uint64_t done;            /* bytes transferred so far (short I/O) */
	uint64_t submit_tick;     /* io_uring: the watchdog's tick when it went to the kernel */
	bool in_uring, cancel_sent;
};

struct blk_queue {
	struct blk_dev *dev;
	struct vhu_queue *q;
	struct blk_slot *slots;
	uint16_t *free;
	unsigned nslots, nfree, inflight;
	/* answered requests not yet returned: one burst to the ring, one
	 * release store, before the handler decides on a notification */
	struct vhu_vq_used *used;
	unsigned nused;
	bool uring;
	struct io_uring ring;
	bool timer_armed;         /* the watchdog's timeout is in the ring */
	uint64_t tick;            /* how often it fired */
	struct __kernel_timespec timer_ts;
	int efd;                  /* io_uring or pool completions */
	pthread_mutex_t done_lock;  /* pool: finished slots */
	struct blk_slot *done;
};

const char *blk_engine_name(enum blk_engine e)
{
	static const char *const names[] = { "io_uring", "threads", "sync", "null" };
	return names[e];
}

/* Answer a request: status byte, used length, back to the driver. */
static void complete(struct blk_queue *bq, struct blk_slot *s, uint8_t status)
{
	uint32_t len = 0;

	if (s->r.status) {
		*s->r.status = status;
		/* as QEMU does: the whole writable part counts as written
		 * (the status byte is its last byte) */
		len = (uint32_t)s->e.in_len;
	}
	bq->used[bq->nused++] = (struct vhu_vq_used){ s->e.id, len };
	bq->free[bq->nfree++] = (uint16_t)(s - bq->slots);
}

/* Return the answered requests to the ring: visible to a driver that
 * polls it, one release store for all of them. */
static void return_used(struct blk_queue *bq)
{
	if (!bq->nused)
		return;
	int r = vhu_queue_push_burst(bq->q, bq->used, bq->nused);
	if (r != (int)bq->nused && !vhu_dev_vq_broken(vhu_queue_vq(bq->q)))
		vhu_device_log(vhu_queue_device(bq->q), VHU_LOG_ERROR,
			       "queue %u: %u of %u answers refused by the ring", vhu_queue_index(bq->q),
			       bq->nused - (unsigned)(r < 0 ? 0 : r), bq->nused);
	bq->nused = 0;
}

/* ... and tell the driver if it wants to hear. */
static void publish(struct blk_queue *bq)
{
	return_used(bq);
	vhu_queue_notify(bq->q);
}

static uint8_t sync_rw(struct blk_dev *d, struct blk_slot *s)
{
	struct iovec *iov = s->r.data;
	unsigned n = s->r.ndata;
	/* from where a short io_uring transfer left it (0 otherwise) */
	off_t off = (off_t)(s->r.hdr.sector * VHU_BLK_SECTOR_SIZE + s->done);
	bool write = s->r.hdr.type == VHU_BLK_T_OUT;
	uint64_t left = s->r.data_len - s->done;

	while (left) {
		ssize_t k = write ? pwritev(d->fd, iov, (int)(n > IOV_MAX ? IOV_MAX : n), off)
				  : preadv(d->fd, iov, (int)(n > IOV_MAX ? IOV_MAX : n), off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return VHU_BLK_S_IOERR;
		left -= (uint64_t)k;
		off += k;
		/* advance past what was done (short transfer) */
		while (k > 0 && n) {
			if ((size_t)k >= iov->iov_len) {
				k -= (ssize_t)iov->iov_len;
				iov++;
				n--;
			} else {
				iov->iov_base = (char *)iov->iov_base + k;
				iov->iov_len -= (size_t)k;
				k = 0;
			}
		}
	}
	return VHU_BLK_S_OK;
}

/* DISCARD / WRITE_ZEROES, synchronously: rare, and fallocate is quick.
 * The segments are checked with every engine; the null engine stops there. */
static uint8_t discard_wz(struct blk_dev *d, struct blk_slot *s)
{
	struct vhu_blk_discard_wz seg[BLK_MAX_DWZ_SEG];
	unsigned nseg = (unsigned)(s->r.data_len / sizeof(seg[0]));
	bool wz = s->r.hdr.type == VHU_BLK_T_WRITE_ZEROES;

	blk_iov_copy_from(s->r.data, s->r.ndata, seg, s->r.data_len);
	for (unsigned i = 0; i < nseg; i++) {
		uint64_t sector = le64toh(seg[i].sector), num = le32toh(seg[i].num_sectors);
		uint32_t flags = le32toh(seg[i].flags);
		/* §5.2.6.2: unmap only for write zeroes; reserved bits unsupported */
		if ((flags & ~1u) || (!wz && (flags & 1u)))
			return VHU_BLK_S_UNSUPP;
		if (sector > d->capacity || num > d->capacity - sector ||
		    num > le32toh(wz ? d->cfg.max_write_zeroes_sectors : d->cfg.max_discard_sectors))
			return VHU_BLK_S_IOERR;
		if (d->engine == BLK_ENGINE_NULL)
			continue;
		off_t off = (off_t)(sector * VHU_BLK_SECTOR_SIZE), len = (off_t)(num * VHU_BLK_SECTOR_SIZE);
		int r;
		if (d->is_blockdev) {
			uint64_t range[2] = { (uint64_t)off, (uint64_t)len };
			r = ioctl(d->fd, wz ? BLKZEROOUT : BLKDISCARD, range);
		} else if (wz) {
			/* unmap allowed: punching a hole reads back as zeroes */
			r = fallocate(d->fd, FALLOC_FL_KEEP_SIZE | ((flags & 1u) ? FALLOC_FL_PUNCH_HOLE
									    : FALLOC_FL_ZERO_RANGE), off, len);
			if (r < 0 && errno == EOPNOTSUPP)
				r = fallocate(d->fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, off, len);
		} else {
			r = fallocate(d->fd, FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE, off, len);
			if (r < 0 && errno == EOPNOTSUPP)
				r = 0;   /* discard is a hint */
		}
		if (r < 0)
			return VHU_BLK_S_IOERR;
	}
	return VHU_BLK_S_OK;
}

/* Thread-pool engine: the I/O runs in a pool thread, which hands the slot
 * back through the queue's done list and wakes the worker (aux fd). */
static void pool_run(struct blk_pool_job *job)
{
	struct blk_slot *s = (struct blk_slot *)job;
	struct blk_queue *bq = s->bq;
	uint64_t one = 1;

	if (s->r.hdr.type == VHU_BLK_T_FLUSH)
		s->result = fdatasync(bq->dev->fd) ? VHU_BLK_S_IOERR : VHU_BLK_S_OK;
	else
		s->result = sync_rw(bq->dev, s);
	pthread_mutex_lock(&bq->done_lock);
	s->done_next = bq->done;
	bq->done = s;
	pthread_mutex_unlock(&bq->done_lock);
	(void)!write(bq->efd, &one, sizeof(one));
}

static void pool_reap(struct blk_queue *bq)
{
	pthread_mutex_lock(&bq->done_lock);
	struct blk_slot *s = bq->done;
	bq->done = NULL;
	pthread_mutex_unlock(&bq->done_lock);
	while (s) {
		struct blk_slot *next = s->done_next;
		bq->inflight--;
		complete(bq, s, s->result);
		s = next;
	}
}

/*
 * The watchdog. Seen on this project's machines (Linux 6.18, ext4): now and
 * then a buffered write handed to io_uring is punted to the kernel's io-wq
 * and no worker ever takes it: no completion, ever, and a drain that waits
 * for it hangs the session (tests/test_soak found it). While requests are in
 * flight a 1 s timeout rides in the ring; when it fires, each request in the
 * kernel since before the previous firing (over a second, without taking the
 * time per request) is cancelled: a cancel only
 * succeeds (-ECANCELED) for work not yet begun, so it is then done here,
 * synchronously, exactly once. A request that is running (a slow disk)
 * answers -EALREADY and is left alone.
 */
#define URING_TIMER_TAG 1ull
#define URING_CANCEL_TAG 2ull

static void uring_arm_timer(struct blk_queue *bq)
{
	if (bq->timer_armed || !bq->inflight)
		return;
	struct io_uring_sqe *sqe = io_uring_get_sqe(&bq->ring);
	if (!sqe)
		return;   /* the next submit arms it */
	bq->timer_ts = (struct __kernel_timespec){ .tv_sec = 1 };
	io_uring_prep_timeout(sqe, &bq->timer_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, URING_TIMER_TAG);
	bq->timer_armed = true;
}

static void uring_watchdog(struct blk_queue *bq)
{
	bq->tick++;
	for (unsigned i = 0; i < bq->nslots; i++) {
		struct blk_slot *s = &bq->slots[i];
		if (!s->in_uring || s->cancel_sent || bq->tick - s->submit_tick < 2)
			continue;
		struct io_uring_sqe *sqe = io_uring_get_sqe(&bq->ring);
		if (!sqe)
			break;   /* the next round */
		io_uring_prep_cancel64(sqe, (uint64_t)(uintptr_t)s, 0);
		io_uring_sqe_set_data64(sqe, URING_CANCEL_TAG);
		s->cancel_sent = true;
	}
	uring_arm_timer(bq);
}

static bool uring_submit(struct blk_queue *bq, struct blk_slot *s)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&bq->ring);
	off_t off = (off_t)(s->r.hdr.sector * VHU_BLK_SECTOR_SIZE + s->done);

	if (!sqe)
		return false;
	s->submit_tick = bq->tick;
	s->in_uring = true;
	s->cancel_sent = false;
	if (s->r.hdr.type == VHU_BLK_T_IN)
		io_uring_prep_readv(sqe, bq->dev->fd, s->r.data, s->r.ndata, off);
	else if (s->r.hdr.type == VHU_BLK_T_OUT)
		io_uring_prep_writev(sqe, bq->dev->fd, s->r.data, s->r.ndata, off);
	else
		io_uring_prep_fsync(sqe, bq->dev->fd, IORING_FSYNC_DATASYNC);
	io_uring_sqe_set_data(sqe, s);
	bq->inflight++;
	uring_arm_timer(bq);
	return true;
}

/* One completion: done, or resubmit the rest of a short transfer. */
static void uring_done(struct blk_queue *bq, struct blk_slot *s, int res)
{
	bq->inflight--;
	s->in_uring = false;
	if (res == -ECANCELED && s->cancel_sent) {
		/* the watchdog took it back before anything ran: do it here */
		struct blk_dev *d = bq->dev;
		vhu_device_log(vhu_queue_device(bq->q), VHU_LOG_WARN,
			       "queue %u: a request the kernel did not start in 1 s is done synchronously",
			       vhu_queue_index(bq->q));
		complete(bq, s, s->r.hdr.type == VHU_BLK_T_FLUSH ? (fdatasync(d->fd) ? VHU_BLK_S_IOERR : VHU_BLK_S_OK)
								   : sync_rw(d, s));
		return;
	}
	if (res < 0 || (res == 0 && s->r.hdr.type != VHU_BLK_T_FLUSH)) {
		complete(bq, s, VHU_BLK_S_IOERR);
		return;
	}
	if (s->r.hdr.type == VHU_BLK_T_FLUSH) {
		complete(bq, s, VHU_BLK_S_OK);
		return;
	}
	s->done += (uint64_t)res;
	if (s->done >= s->r.data_len) {
		complete(bq, s, VHU_BLK_S_OK);
		return;
	}
	size_t k = (size_t)res;
	while (k && s->r.ndata) {
		if (k >= s->r.data[0].iov_len) {
			k -= s->r.data[0].iov_len;
			memmove(s->r.data, s->r.data + 1, --s->r.ndata * sizeof(struct iovec));
		} else {
			s->r.data[0].iov_base = (char *)s->r.data[0].iov_base + k;
			s->r.data[0].iov_len -= k;
			k = 0;
		}
	}
	if (!uring_submit(bq, s))
		complete(bq, s, VHU_BLK_S_IOERR);
}

/*
 * Every completion waiting; a short transfer's rest, which uring_done queues
 * as a new SQE, is submitted here before returning. (Callers submitted
 * before reaping, so a rest queued by the reap was left unsubmitted: the
 * request hung until some other event, and blk_drain waited for it for ever.)
 */
static unsigned uring_reap(struct blk_queue *bq)
{
	struct io_uring_cqe *cqe;
	unsigned n = 0;

	while (io_uring_peek_cqe(&bq->ring, &cqe) == 0) {
		uint64_t tag = io_uring_cqe_get_data64(cqe);
		int res = cqe->res;
		io_uring_cqe_seen(&bq->ring, cqe);
		if (tag == URING_TIMER_TAG) {
			bq->timer_armed = false;
			uring_watchdog(bq);
			continue;
		}
		if (tag == URING_CANCEL_TAG)
			continue;   /* what it cancelled answers for itself */
		uring_done(bq, (struct blk_slot *)(uintptr_t)tag, res);
		n++;
	}
	if (io_uring_sq_ready(&bq->ring))
		io_uring_submit(&bq->ring);
	return n;
}

/* Start one parsed request; completes it at once unless io_uring took it. */
static void start(struct blk_queue *bq, struct blk_slot *s)
{
	struct blk_dev *d = bq->dev;
	uint8_t st = (uint8_t)blk_req_parse(&s->e, d->capacity, d->read_only, &s->r);

	if (st != VHU_BLK_S_OK) {
		complete(bq, s, st);
		return;
	}
	s->done = 0;
	switch (s->r.hdr.type) {
	case VHU_BLK_T_GET_ID: {
		/* NUL-padded, no terminator when 20 bytes long (§5.2.6) */
		char id[VHU_BLK_ID_BYTES] = { 0 };
		size_t l = strlen(d->serial);
		memcpy(id, d->serial, l < sizeof(id) ? l : sizeof(id));
		blk_iov_copy_to(s->r.data, s->r.ndata, id, sizeof(id));
		complete(bq, s, VHU_BLK_S_OK);
		return;
	}
	case VHU_BLK_T_DISCARD:
	case VHU_BLK_T_WRITE_ZEROES:
		complete(bq, s, discard_wz(d, s));
		return;
	}
	if (d->engine == BLK_ENGINE_NULL) {
		if (s->r.hdr.type == VHU_BLK_T_IN)
			for (unsigned i = 0; i < s->r.ndata; i++)
				memset(s->r.data[i].iov_base, 0, s->r.data[i].iov_len);
		complete(bq, s, VHU_BLK_S_OK);
	} else if (d->engine == BLK_ENGINE_THREADS) {
		s->bq = bq;
		s->job.run = pool_run;
		bq->inflight++;
		blk_pool_submit(d->pool, &s->job);
	} else if (d->engine == BLK_ENGINE_SYNC) {
		uint8_t r = s->r.hdr.type == VHU_BLK_T_FLUSH ? (fdatasync(d->fd) ? VHU_BLK_S_IOERR : VHU_BLK_S_OK)
							     : sync_rw(d, s);
		complete(bq, s, r);
	} else if (!uring_submit(bq, s)) {
		/* SQ full: submit what is queued and try once more */
		io_uring_submit(&bq->ring);
		if (!uring_submit(bq, s))
			complete(bq, s, VHU_BLK_S_IOERR);
	}
}

static void blk_handle(struct vhu_device *dev, struct vhu_queue *q, unsigned events)
{
	struct blk_queue *bq = vhu_queue_priv(q);
	(void)dev;

	if (!bq)
		return;
	if ((events & VHU_QUEUE_EV_AUX) && bq->efd >= 0) {
		uint64_t v;
		(void)!read(bq->efd, &v, sizeof(v));
		if (bq->uring)
			uring_reap(bq);
		else
			pool_reap(bq);
	}
	while (bq->nfree) {
		/* the free slots on top of the stack, each chain into its own
		 * slot's iovecs */
		struct vhu_vq_elem es[POP_BURST];
		struct blk_slot *ss[POP_BURST];
		unsigned want = bq->nfree < POP_BURST ? bq->nfree : POP_BURST;
		for (unsigned i = 0; i < want; i++) {
			ss[i] = &bq->slots[bq->free[bq->nfree - 1 - i]];
			es[i].iov = ss[i]->iov;
		}
		int r = vhu_queue_pop_burst(q, es, want, NULL, 0, POP_IOV);
		if (r == 0 || (r < 0 && vhu_dev_vq_broken(vhu_queue_vq(q))))
			break;
		if (r < 0) {
			/* a bad buffer: taken, so answer it (§2.7.8 allows 0) */
			bq->nfree--;
			ss[0]->e = es[0];
			ss[0]->r.status = NULL;
			complete(bq, ss[0], VHU_BLK_S_IOERR);
			continue;
		}
		bq->nfree -= (unsigned)r;
		for (int i = 0; i < r; i++) {
			ss[i]->e = es[i];
			start(bq, ss[i]);
		}
		/* what the burst answered at once (null, sync engines) goes
		 * back now, so a polling driver refills while we take the
		 * next burst; the notification waits for the round's end */
		return_used(bq);
	}
	if (bq->uring && bq->inflight) {
		io_uring_submit(&bq->ring);
		uring_reap(bq);
	}
	publish(bq);
}

static int blk_queue_start(struct vhu_device *dev, struct vhu_queue *q)
{
	struct blk_dev *d = vhu_device_priv(dev);
	struct blk_queue *bq = calloc(1, sizeof(*bq));
	unsigned n = vhu_queue_size(q);
	int err = -ENOMEM;

	if (!bq)
		goto fail;
	bq->dev = d;
	bq->q = q;
	bq->efd = -1;
	bq->nslots = n;
	bq->slots = calloc(n, sizeof(*bq->slots));
	bq->free = calloc(n, sizeof(*bq->free));
	bq->used = calloc(n, sizeof(*bq->used));
	if (!bq->slots || !bq->free || !bq->used)
		goto fail;
	for (unsigned i = 0; i < n; i++)
		bq->free[bq->nfree++] = (uint16_t)i;
	pthread_mutex_init(&bq->done_lock, NULL);
	if (d->engine == BLK_ENGINE_THREADS) {
		bq->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (bq->efd < 0) {
			err = -errno;
			goto fail;
		}
		vhu_queue_set_aux_fd(q, bq->efd);
	}
	if (d->engine == BLK_ENGINE_URING) {
		int r = io_uring_queue_init(n, &bq->ring, 0);
		if (r < 0) {
			vhu_device_log(dev, VHU_LOG_ERROR, "queue %u: io_uring: %s", vhu_queue_index(q), strerror(-r));
			err = r;
			goto fail;
		}
		bq->uring = true;
		bq->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (bq->efd < 0 || (r = io_uring_register_eventfd(&bq->ring, bq->efd)) < 0) {
			err = bq->efd < 0 ? -errno : r;
			goto fail;
		}
		vhu_queue_set_aux_fd(q, bq->efd);
	}
	vhu_queue_set_priv(q, bq);
	return 0;
fail:
	vhu_device_log(dev, VHU_LOG_ERROR, "queue %u: cannot start the device side", vhu_queue_index(q));
	if (bq) {
		if (bq->uring)
			io_uring_queue_exit(&bq->ring);
		if (bq->efd >= 0)
			close(bq->efd);
		free(bq->slots);
		free(bq->free);
		free(bq->used);
		free(bq);
	}
	vhu_queue_set_priv(q, NULL);
	return err;
}

/* Finish every request in flight: the ring or guest memory is about to
 * change, or the queue stops. */
static void blk_drain(struct vhu_device *dev, struct vhu_queue *q)
{
	struct blk_queue *bq = vhu_queue_priv(q);
	(void)dev;

	if (!bq)
		return;
	if (bq->uring && bq->inflight) {
		io_uring_submit(&bq->ring);
		for (unsigned waited = 0; bq->inflight;) {
			/* Requests the device took are finished, never dropped:
			 * a drain waits for them, however long, but says so. */
			struct io_uring_cqe *cqe;
			struct __kernel_timespec ts = { .tv_sec = 5 };
			int r = io_uring_wait_cqe_timeout(&bq->ring, &cqe, &ts);
			if (r == -ETIME) {
				waited += 5;
				vhu_device_log(dev, VHU_LOG_WARN, "queue %u: %u request(s) still in flight after %u s",
					       vhu_queue_index(q), bq->inflight, waited);
				continue;
			}
			if (r < 0 && r != -EINTR)
				break;
			uring_reap(bq);
		}
	} else if (bq->inflight) {
		while (bq->inflight) {
			struct pollfd p = { .fd = bq->efd, .events = POLLIN };
			uint64_t v;
			poll(&p, 1, 100);
			(void)!read(bq->efd, &v, sizeof(v));
			pool_reap(bq);
		}
	}
	publish(bq);
}

static void blk_queue_stop(struct vhu_device *dev, struct vhu_queue *q)
{
	struct blk_queue *bq = vhu_queue_priv(q);
	(void)dev;

	if (!bq)
		return;
	if (bq->uring)
		io_uring_queue_exit(&bq->ring);
	if (bq->efd >= 0)
		close(bq->efd);
	pthread_mutex_destroy(&bq->done_lock);
	free(bq->slots);
	free(bq->free);
	free(bq->used);
	free(bq);
	vhu_queue_set_priv(q, NULL);
}

static int blk_get_config(struct vhu_device *dev, uint8_t *buf, uint32_t offset, uint32_t len)
{
	struct blk_dev *d = vhu_device_priv(dev);
	memcpy(buf, (const uint8_t *)&d->cfg + offset, len);
	return 0;
}

static int blk_set_config(struct vhu_device *dev, const uint8_t *buf, uint32_t offset, uint32_t len,
			  uint32_t flags)
{
	(void)dev;
	(void)buf;
	/* Nothing is writable without CONFIG_WCE, which vhu-blk does not
	 * offer; a migration write of the same values is accepted. */
	if (flags == VHU_CONFIG_WRITE_MIGRATION)
		return 0;
	(void)offset;
	(void)len;
	return -EPERM;
}

/* Completions waiting, seen without a system call (for busy-polling). */
static bool blk_poll(struct vhu_device *dev, struct vhu_queue *q)
{
	struct blk_queue *bq = vhu_queue_priv(q);
	(void)dev;
	if (!bq || !bq->inflight)
		return false;
	if (bq->uring)
		return io_uring_cq_ready(&bq->ring) > 0;
	return __atomic_load_n(&bq->done, __ATOMIC_ACQUIRE) != NULL;
}

const struct vhu_device_ops blk_ops = {
	.poll = blk_poll,
	.handle = blk_handle,
	.queue_start = blk_queue_start,
	.queue_stop = blk_queue_stop,
	.drain = blk_drain,
	.get_config = blk_get_config,
	.set_config = blk_set_config,
};

int blk_dev_open(struct blk_dev *d)
{
	struct stat st;

	d->fd = open(d->path, (d->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	if (d->fd < 0)
		return -errno;
	if (fstat(d->fd, &st) < 0)
		return -errno;
	uint64_t bytes = (uint64_t)st.st_size;
	if (S_ISBLK(st.st_mode)) {
		d->is_blockdev = true;
		if (ioctl(d->fd, BLKGETSIZE64, &bytes) < 0)
			return -errno;
	} else if (!S_ISREG(st.st_mode)) {
		return -EINVAL;
	}
	d->capacity = bytes / VHU_BLK_SECTOR_SIZE;
	if (d->capacity == 0)
		return -EINVAL;
	return 0;
}

void blk_dev_fill_config(struct blk_dev *d)
{
	struct vhu_blk_config *c = &d->cfg;

	memset(c, 0, sizeof(*c));
	c->capacity = htole64(d->capacity);
	c->size_max = htole32(1u << 20);
	/* The front-end reads the config before it tells us its queue size.
	 * A Linux driver without indirect descriptors (6.1 does not clamp)
	 * builds chains of seg_max + 2 descriptors and waits for ever if the
	 * ring is smaller; QEMU's default vhost-user-blk queue-size is 128, so
	 * the default is 126 (--seg-max raises it for bigger rings). */
	c->seg_max = htole32(d->seg_max);
	c->blk_size = htole32(VHU_BLK_SECTOR_SIZE);
	c->topology.min_io_size = htole16(1);
	c->writeback = 1;
	c->num_queues = htole16(d->num_queues);
	c->max_discard_sectors = htole32(UINT32_MAX >> 9);
	c->max_discard_seg = htole32(BLK_MAX_DWZ_SEG);
	c->discard_sector_alignment = htole32(1);
	c->max_write_zeroes_sectors = htole32(UINT32_MAX >> 9);
	c->max_write_zeroes_seg = htole32(BLK_MAX_DWZ_SEG);
	c->write_zeroes_may_unmap = 1;
}

uint64_t blk_dev_features(const struct blk_dev *d)
{
	uint64_t f = VHU_BIT(VHU_F_VERSION_1) | VHU_BIT(VHU_F_RING_PACKED) | VHU_BIT(VHU_F_EVENT_IDX) |
		     VHU_BIT(VHU_F_INDIRECT_DESC) | VHU_BIT(VHU_BLK_F_SIZE_MAX) | VHU_BIT(VHU_BLK_F_SEG_MAX) |
		     VHU_BIT(VHU_BLK_F_BLK_SIZE) | VHU_BIT(VHU_BLK_F_FLUSH) | VHU_BIT(VHU_BLK_F_TOPOLOGY) |
		     VHU_BIT(VHU_BLK_F_MQ) | VHU_BIT(VHU_BLK_F_DISCARD) | VHU_BIT(VHU_BLK_F_WRITE_ZEROES) |
		     VHU_BIT(VHU_F_ACCESS_PLATFORM);
	if (d->read_only)
		f |= VHU_BIT(VHU_BLK_F_RO);
	/* only a doorbell's store can carry notification data */
	if (d->doorbell)
		f |= VHU_BIT(VHU_F_NOTIFICATION_DATA);
	return f;
}
