/* SPDX-License-Identifier: MIT */
/*
 * A scripted vhost-user front-end for tests: raw requests with any payload
 * and fds, QEMU-like negotiation, guest memory in a memfd, one ring driven
 * by vhu's own driver-side engine, and the back-end channel served while
 * waiting for replies (as an in-band front-end must). Failures are cmocka
 * assertions. (The front-end library proper is issue 4.)
 */
#ifndef VHU_TEST_MINIFE_H
#define VHU_TEST_MINIFE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "fdcount.h"
#include "vhu/vq.h"
#include "vhu/vu_socket.h"

#define FE_MEM_SIZE (1u << 20)
#define FE_MAX_RINGS 2
#define FE_MAX_REGIONS 4

/* A piece of the memfd at a guest physical address. */
struct fe_region {
	uint64_t gpa, size, offset;
};

struct fe_ring {
	uint16_t qsize;
	struct vhu_vq_layout layout;  /* offsets from the ring's guest address */
	unsigned char *base;          /* our view of that address */
	struct vhu_drv_vq drv;
	int kick, call, err;
	unsigned inband_calls;        /* VRING_CALLs received and not yet consumed */
	uint32_t *doorbell;           /* the back-end's doorbell page, mapped, or NULL */
	unsigned doorbell_msgs;       /* HOST_NOTIFIER messages received for it */
	unsigned doorbell_gone;       /* of them, withdrawals (the "no fd" form) */
};

/* How the scripted front-end answers a doorbell (HOST_NOTIFIER) page. */
enum fe_doorbell_answer {
	FE_DOORBELL_USE,      /* map it, reply 0, kick by a store into it */
	FE_DOORBELL_REFUSE,   /* reply 1 (QEMU without page-per-vq) */
	FE_DOORBELL_IGNORE,   /* reply 0, but never map it: kicks stay on the eventfd */
};

struct fe {
	int sock;
	int memfd;
	unsigned char *mem;        /* our view of the memfd; addresses in it are the "user addresses" */
	size_t mem_size;
	struct fe_region regions[FE_MAX_REGIONS];   /* default: the whole memfd at guest address 0 */
	unsigned nregions;
	uint64_t features;
	struct fe_ring q[FE_MAX_RINGS];
	int chan;                  /* our end of the back-end channel, or -1 */
	enum fe_doorbell_answer doorbell_answer;
	FILE *seed;                /* the session as a fuzz_backend input, or NULL */
};


/* Guest memory and the fds; sock is the connection to the back-end.
 * With VHU_FUZZ_SEED_DIR set in the environment, every request the session
 * sends is also written to a file there in fuzz_backend's input encoding:
 * the tests make that fuzzer's seed corpus (scripts/fuzz-seeds.sh). */
void fe_init(struct fe *f, int sock, size_t mem_size);
void fe_close(struct fe *f);

/* Send a request; with need_reply (or a request that replies) wait for the
 * answer, serving the back-end channel meanwhile. Returns the reply's u64
 * (or 0), and the whole reply in *out, whose fds the caller then owns. */
uint64_t fe_req(struct fe *f, uint32_t req, const void *payload, uint32_t size,
		const int *fds, unsigned nfds, bool need_reply, struct vhu_user_msg *out);
uint64_t fe_u64(struct fe *f, uint32_t req, uint64_t v, bool ack);
uint64_t fe_state(struct fe *f, uint32_t req, uint32_t index, uint32_t num, bool ack);

/* QEMU's order: GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM,
 * SET_OWNER, SET_FEATURES (want & offered). Returns the queue count. */
uint64_t fe_negotiate(struct fe *f, uint64_t want, uint64_t pf);
/* Our view of a guest physical address (NULL outside f->regions). */
unsigned char *fe_gpa(struct fe *f, uint64_t gpa);
/* SET_MEM_TABLE with f->regions, one dup of the memfd each. */
void fe_mem_table(struct fe *f);
/* Ring qi at guest address 0 (ring 0) or gpa, size qsize; eventfds or in-band. */
void fe_setup_ring(struct fe *f, uint16_t qsize, bool eventfds);
void fe_setup_ring_at(struct fe *f, unsigned qi, uint64_t gpa, uint16_t qsize, bool eventfds);
/* Kick ring qi if the engine says so (doorbell store, eventfd, or in-band VRING_KICK). */
void fe_kick(struct fe *f, unsigned qi);
/* Serve what the back-end channel holds (waiting up to timeout_ms for the first). */
void fe_serve_backend_channel(struct fe *f, int timeout_ms);
/* Take a used buffer from ring qi, re-arming notifications and sleeping on
 * them as a driver does; fails after 10 s without one. */
void fe_wait_used(struct fe *f, unsigned qi, void **token, uint32_t *len);

#endif
