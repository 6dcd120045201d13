/* SPDX-License-Identifier: MIT */
/*
 * Fault injection for tests (meson -Dfaults=true, which compiles the
 * engine with RP_FAULTS; never on in release or packaged builds). The
 * runtime reads RP_FAULTS="nomem=P,short=P,reset=P,eagain=P,seed=N" at
 * rp_runtime_create (and rearm=P, timer=P); each shard rolls its own PRNG (seeded from seed +
 * shard id: deterministic for one shard's sequence of decisions, no
 * locks). What each fault does, and why it keeps the engine correct,
 * is written where it is injected:
 *   nomem   eng_op_alloc fails as if the pool were empty (op.h)
 *   short   rp_send, rp_send_zc, rp_sendmsg go to the kernel with fewer
 *           bytes (op_basic.c, op_send_zc.c; sendmsg through a pool copy
 *           of the msghdr, faults.c)
 *   reset   receives end with -ECONNRESET (op_basic.c; multishot: faults.c)
 *   eagain  the SQ flush's and the loop's submit report -EAGAIN without
 *           submitting (submit.c, shard.c)
 *   rearm   a multishot op's re-arm from a completion or a buffer put (or an
 *           answered poll's cancel) finds no SQE, as if the SQ stayed full:
 *           the op waits on the shard's re-arm list for the loop's next
 *           turn (op.h eng_rearm_sqe; shard.c)
 *   timer   rp_timer_arm finds no SQE, as if the SQ stayed full: the timer
 *           waits armed on the shard's sh->timers for the loop's next turn,
 *           counted in sq_full_fail (op_basic.c; shard.c)
 * Not installed; docs/reliability.md describes the run that uses it.
 */
#ifndef RP_ENGINE_FAULTS_H
#define RP_ENGINE_FAULTS_H

#include <stdbool.h>
#include <stdint.h>

enum eng_fault_kind {
	FAULT_NOMEM = 0,
	FAULT_SHORT,
	FAULT_RESET,
	FAULT_EAGAIN,
	FAULT_REARM,
	FAULT_TIMER,
	FAULT_KINDS,
};

/* The runtime's setting: per kind, a roll (32 bits) below thresh[k] injects
 * (2^32 for P = 1). */
struct eng_faults_cfg {
	uint64_t thresh[FAULT_KINDS];
	uint64_t seed;
	bool on; /* some P > 0: report at stop */
};

/* A shard's PRNG and counts; only its thread writes them. */
struct eng_faults {
	uint64_t s; /* xorshift64* state, never 0 */
	uint64_t thresh[FAULT_KINDS];
	uint64_t count[FAULT_KINDS];
	bool enter_skipped; /* the loop's last submit was an injected -EAGAIN */
};

/* Parse @spec (NULL or "" = no faults) into @cfg: 0, or -EINVAL with the
 * thread's rp_engine_error() naming the bad key or value. */
int eng_faults_parse(const char *spec, struct eng_faults_cfg *cfg);
void eng_faults_init(struct eng_faults *f, const struct eng_faults_cfg *cfg, unsigned shard);
/* Faults strike from the shard loop's start on: a shard's init (listeners,
 * first timers) runs on a fresh pool, which is never empty, so a fault
 * there would only stop the start, never exercise a recovery. */
void eng_faults_start(struct eng_faults *f, const struct eng_faults_cfg *cfg);

/* Whether fault @k strikes now (not counted: see eng_faults_note). */
static inline bool eng_faults_hit(struct eng_faults *f, enum eng_fault_kind k)
{
	uint64_t x;

	if (!f->thresh[k])
		return false;
	x = f->s;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	f->s = x;
	return ((x * 0x2545F4914F6CDD1Dull) >> 32) < f->thresh[k];
}

/* Count one injection of @k: a relaxed store of the owner's own value,
 * readable by any thread. */
static inline void eng_faults_note(struct eng_faults *f, enum eng_fault_kind k)
{
	__atomic_store_n(&f->count[k], f->count[k] + 1, __ATOMIC_RELAXED);
}

static inline bool eng_faults_roll(struct eng_faults *f, enum eng_fault_kind k)
{
	if (!eng_faults_hit(f, k))
		return false;
	eng_faults_note(f, k);
	return true;
}

/* A length in 1..len-1 for a send the fault shortens (len >= 2). */
static inline unsigned eng_faults_short_len(struct eng_faults *f, uint64_t len)
{
	uint64_t x = f->s;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	f->s = x;
	return (unsigned)(1 + ((x * 0x2545F4914F6CDD1Dull) >> 32) % (len - 1));
}

/* Injections of kind @k on @shard so far (any thread). */
struct rp_runtime;
uint64_t eng_faults_count(const struct rp_runtime *rt, unsigned shard, enum eng_fault_kind k);
/* One stderr line per shard ("faults injected: shard 0 nomem=N ..."), at
 * rp_runtime_wait when faults were set. */
void eng_faults_report(const struct rp_runtime *rt);

#endif /* RP_ENGINE_FAULTS_H */
