/* SPDX-License-Identifier: MIT */
/* The front-end's state, shared by its connection code and its IOMMU. */
#ifndef VHU_FRONTEND_INTERNAL_H
#define VHU_FRONTEND_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vhu/frontend.h"
#include "vhu/frontend_vmm.h"
#include "vhu/iotlb.h"

/* Protocol features this front-end knows how to use. */
#define FE_PF_KNOWN                                                             \
	((1ull << VHU_USER_PROTOCOL_F_MQ) | (1ull << VHU_USER_PROTOCOL_F_REPLY_ACK) | \
	 (1ull << VHU_USER_PROTOCOL_F_BACKEND_REQ) | (1ull << VHU_USER_PROTOCOL_F_CONFIG) | \
	 (1ull << VHU_USER_PROTOCOL_F_RESET_DEVICE) |                           \
	 (1ull << VHU_USER_PROTOCOL_F_INBAND_NOTIFICATIONS) |                   \
	 (1ull << VHU_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS) | (1ull << VHU_USER_PROTOCOL_F_STATUS) | \
	 (1ull << VHU_USER_PROTOCOL_F_INFLIGHT_SHMFD) | (1ull << VHU_USER_PROTOCOL_F_LOG_SHMFD))

struct vhu_fe_queue {
	struct vhu_fe *fe;
	unsigned index;
	struct vhu_drv_vq drv;
	struct vhu_vq_config ring;  /* where its ring is, to hand it again on a reconnect */
	int kick, call;
	atomic_uint inband_calls;
	atomic_bool error;
	/* Doorbell (HOST_NOTIFIER, doorbell.c): the page the channel mapped,
	 * taken up by the queue's own thread at its next kick (which unmaps
	 * the one it replaces: only that thread ever stores into it). */
	_Atomic(void *) db_next;    /* NULL: no change; FE_DB_GONE: withdrawn */
	void *db_cur;
	/* A VMM's queue (vmm.c): stores may come from any thread, so the
	 * page in use is db_live, and a page replaced is unmapped only once
	 * no store is between its load and its store (db_readers). */
	_Atomic(void *) db_live;
	atomic_uint db_readers;
	atomic_int vmm_kick;        /* the caller's kick eventfd, -1 */
	atomic_bool vmm_started;
	_Atomic uint64_t kicks_doorbell, kicks_eventfd, kicks_inband, db_mapped, db_refused;
};

#define FE_DB_GONE ((void *)1)

/* A miss the back-end sent, answered once no lock of the channel or of
 * the connection is held (the answer is a request on the connection). */
struct fe_iommu_miss {
	uint64_t iova;
	uint8_t perm;
	bool need_reply;
};

#define FE_IOMMU_MISSES_PENDING 64u
#define FE_IOMMU_MAX_MAPPINGS 65536u

struct fe_iommu {
	enum vhu_fe_iommu mode;
	/* Taken around a change of the table and the message that tells the
	 * back-end, so an answer to a miss can never overtake an unmap. */
	pthread_mutex_t lock;
	struct vhu_iotlb map;      /* the IOMMU's state: IOVA -> our user address */
	/* under chan_lock: filled by the channel, emptied by the answer */
	struct fe_iommu_miss pending[FE_IOMMU_MISSES_PENDING];
	unsigned npending;
	/* Signalled when a miss waits: a thread asleep in a queue's wait
	 * answers it even if another thread's request took it. */
	int wake_fd;
	/* Misses for what was not mapped (under lock): a later map that
	 * covers one is pushed, since the back-end will not ask again for a
	 * ring it stopped, and a request waiting on it would time out. */
	uint64_t unanswered[FE_IOMMU_MISSES_PENDING];
	unsigned nunanswered, next_unanswered;
	struct vhu_fe_iommu_stats st;  /* under lock (misses, dropped: chan_lock) */
};

struct vhu_fe {
	struct vhu_fe_config cfg;
	int sock, chan;
	pthread_mutex_t lock;       /* requests on sock */
	pthread_mutex_t chan_lock;  /* the back-end channel */
	uint64_t offered, offered_pf, pf, features, queue_num, max_slots;
	atomic_bool config_changed;
	int memfd;
	unsigned char *mem;
	size_t mem_size, alloc_off;
	pthread_mutex_t alloc_lock;
	struct vhu_fe_queue *q;
	unsigned nq;
	enum vhu_fe_notify notify;
	uint32_t spin_ns;
	int listen_fd;              /* server role: kept to accept a restarted back-end */
	/* The inflight region (INFLIGHT_SHMFD): the back-end made it; we
	 * keep it alive across its restarts and hand it back, as QEMU does. */
	int inflight_fd;
	struct vhu_user_inflight inflight;
	unsigned reconnects;
	/* The dirty log while it is on: a memfd bitmap shared with the back-end. */
	int log_fd;
	struct vhu_dirty_log log;
	struct fe_iommu iommu;
	/* A VMM's connection (vmm.c): the guest's memory table, fds not kept. */
	bool vmm;
	struct vhu_fe_vmm_region *regions;
	unsigned nregions;
};

void fe_log(struct vhu_fe *fe, enum vhu_log_level l, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static inline bool fe_has_pf(const struct vhu_fe *fe, unsigned bit) { return fe->pf >> bit & 1; }
/* A request on the connection, its reply or acknowledgement checked. */
int fe_request(struct vhu_fe *fe, uint32_t req, const void *payload, uint32_t size, const int *fds,
	       unsigned nfds, struct vhu_user_msg *reply, uint32_t reply_size);
/* The u64 reply to a back-end channel request that asked for one (chan_lock held). */
int fe_chan_reply(struct vhu_fe *fe, uint32_t request, uint64_t result);
int fe_get_u64(struct vhu_fe *fe, uint32_t req, uint64_t *v);
int fe_set_u64(struct vhu_fe *fe, uint32_t req, uint64_t v);
int fe_set_state(struct vhu_fe *fe, uint32_t req, uint32_t index, uint32_t num);

/* The address the device uses for a guest address: itself, or behind the
 * IOMMU its IOVA in the front-end's window. */
static inline uint64_t fe_dev_addr(const struct vhu_fe *fe, uint64_t gpa)
{
	return fe->iommu.mode == VHU_FE_IOMMU_OFF ? gpa : VHU_FE_IOVA_BASE + gpa;
}

/* doorbells (doorbell.c) */
/* BACKEND_VRING_HOST_NOTIFIER_MSG (chan_lock held; takes m's fds): 0, or 1 refused. */
int fe_doorbell_msg(struct vhu_fe *fe, struct vhu_user_msg *m);
/* The queue's thread: its doorbell, the newest the channel mapped (or NULL). */
void *fe_doorbell_current(struct vhu_fe_queue *q);
/* A VMM's notification: true if it went as a store into the queue's page
 * (value whole with NOTIFICATION_DATA, else the queue index); any thread. */
bool fe_doorbell_store(struct vhu_fe_queue *q, uint32_t value);
/* Every doorbell withdrawn (a new back-end session), or unmapped (close). */
void fe_doorbell_drop_all(struct vhu_fe *fe, bool unmap_now);

/* IOMMU (iommu.c) */
void fe_iommu_init(struct vhu_fe *fe);
void fe_iommu_free(struct vhu_fe *fe);
/* At start: what the setup asks for is possible; the static window. */
int fe_iommu_setup(struct vhu_fe *fe, enum vhu_fe_iommu mode);
/* BACKEND_IOTLB_MSG from the channel (chan_lock held): 0 or 1 to reply
 * now, 2 when the reply comes with the answer. */
int fe_iommu_backend_msg(struct vhu_fe *fe, const struct vhu_user_msg *m);
/* Answer the misses the channel took (no lock held). */
void fe_iommu_answer_misses(struct vhu_fe *fe);
/* Readable while misses wait for an answer; -1 without the IOMMU. */
int fe_iommu_wake_fd(const struct vhu_fe *fe);

#endif
