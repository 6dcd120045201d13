/* SPDX-License-Identifier: MIT */
/*
 * Synchronous zero-copy calls (include/ringplane/zc.h): the chooser. Each
 * public call walks an ordered list of strategies (sendfile -> splice ->
 * read/write; copy_file_range -> read/write) and moves to the next one
 * when the kernel refuses the fds, counting the reason; the strategies live
 * in zc_sendfile.c, zc_splice.c, zc_cfr.c and zc_copy.c (as Redis keeps
 * one file per ae backend) and, like this file, build on zc_core.c.
 * File -> socket may also start at the copy path instead: asked by the
 * caller (RP_ZC_F2S_COPY), or for a peer on this host (LOCAL_COPY).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "peer.h"
#include "zc_impl.h"

/* ---- the chooser ---- */

enum { S_SENDFILE, S_SPLICE, S_COPY };

/* Calls per strategy: once per public call in which it ran. */
static void count_call(bool *seen, int strat)
{
	if (seen[strat])
		return;
	seen[strat] = true;
	if (strat == S_SENDFILE)
		ZC_ADD(sendfile_calls, 1);
	else if (strat == S_SPLICE)
		ZC_ADD(splice_calls, 1);
	else
		ZC_ADD(copy_calls, 1);
}

static int next_after_sendfile(void)
{
	return atomic_load_explicit(&zc_have_splice, memory_order_relaxed) ? S_SPLICE : S_COPY;
}

/* What the source is, found with fstat(2) only when a strategy other than
 * sendfile is about to run: a sendfile that moves bytes needs none of it,
 * and at 4 KB the fstat was a second syscall per call (0.76-0.79x a
 * pread/write loop before it went). */
struct zc_src {
	bool known, fifo, seekable;
};

static int src_learn(struct zc_src *s, int sock, int file, const off_t *off)
{
	struct stat st;

	if (s->known)
		return 0;
	if (fstat(file, &st) < 0)
		return -errno;
	s->known = true;
	s->fifo = S_ISFIFO(st.st_mode);
	s->seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
	if (off && !s->seekable && !S_ISCHR(st.st_mode))
		return -ESPIPE;
	/* an unseekable source cannot be moved back: a short send keeps the
	 * rest for sock, which needs a free slot */
	if (!s->seekable && !zc_hold_room(sock)) {
		ZC_ADD(held_busy, 1);
		return -EBUSY;
	}
	return 0;
}

/* ---- file -> socket for a peer on this host ---- */

/* What RP_ZC_F2S_AUTO means without RP_ZC_F2S in the environment: copy
 * for a peer reached through the loopback, sendfile for the rest. In three quiet sets
 * on loopback TCP the copy (1 MB buffer) moved 1.26-1.54x sendfile's
 * Gbit/s from 1 MB to 64 MB, reader on either CPU; docs/zc.md "Local
 * peers". */
#define ZC_F2S_BUILTIN RP_ZC_F2S_LOCAL_COPY
/* LOCAL_COPY looks the peer up (three syscalls with the fstat) only for
 * counts this big: at 64 KB and 256 KB the copy lost to sendfile
 * (0.70-0.98x) with the reader on another CPU. */
#define ZC_LOCAL_MIN ((size_t)1 << 20)
/* The route's answer per peer address, per thread: a route lookup is
 * nine syscalls (a netlink and an ioctl socket; ETHTOOL_GDRVINFO takes
 * RTNL); routes rarely change, and a stale answer picks the slower path,
 * never a wrong byte. 64 slots, opened at the address's hash and probed
 * in turn: a server whose threads each serve many client addresses looks
 * each up once per 10 s (4 slots replaced in turn missed on almost every
 * call with 5 addresses taking turns). */
#define ROUTE_TTL_NS (10ull * 1000 * 1000 * 1000)
#define ROUTE_SLOTS  64u

struct route_ent {
	uint64_t t; /* 0: never used (a used slot is never emptied again) */
	uint32_t scope;
	sa_family_t fam;
	int8_t kind; /* PEER_ROUTE_* */
	uint8_t addr[16];
};

static _Thread_local struct route_ent route_cache[ROUTE_SLOTS];

static uint64_t coarse_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts); /* vDSO: no syscall */
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec + 1;
}

static unsigned route_hash(const struct route_ent *k)
{
	uint32_t w[4], h = k->scope ^ k->fam;

	memcpy(w, k->addr, sizeof(w));
	for (unsigned i = 0; i < 4; i++)
		h = (h ^ w[i]) * 0x9e3779b1u; /* Fibonacci hashing */
	return (h >> 26) & (ROUTE_SLOTS - 1);
}

/*
 * Linear probing from the hash: a key sits before the first never-used
 * slot of its probe (slots are filled at the first never-used one, or
 * reused in place, and never emptied), so a lookup stops there. A miss
 * takes that slot, the key's own expired one, or, with all 64 in use, the
 * oldest.
 */
static int route_kind_cached(const struct sockaddr_storage *peer)
{
	struct route_ent key = {.fam = peer->ss_family}, *e;
	uint64_t now = coarse_ns();
	unsigned h, victim;

	if (peer->ss_family == AF_INET) {
		memcpy(key.addr, &((const struct sockaddr_in *)(const void *)peer)->sin_addr, 4);
	} else {
		const struct sockaddr_in6 *p6 = (const void *)peer;

		memcpy(key.addr, &p6->sin6_addr, 16);
		key.scope = p6->sin6_scope_id;
	}
	h = route_hash(&key);
	victim = h;
	for (unsigned i = 0; i < ROUTE_SLOTS; i++) {
		unsigned at = (h + i) & (ROUTE_SLOTS - 1);

		e = &route_cache[at];
		if (!e->t) {
			victim = at;
			break;
		}
		if (e->fam == key.fam && e->scope == key.scope &&
		    !memcmp(e->addr, key.addr, sizeof(key.addr))) {
			if (now - e->t < ROUTE_TTL_NS)
				return e->kind;
			victim = at;
			break;
		}
		if (e->t < route_cache[victim].t)
			victim = at;
	}
	ZC_ADD(f2s_route_lookups, 1);
	key.kind = (int8_t)peer_route_kind(peer);
	key.t = now;
	route_cache[victim] = key;
	return key.kind;
}

/* rp_peer_is_local's rule, the route part cached: 1 a peer this host
 * delivers to through the loopback (127/8, ::1, its own address, a route
 * that is RTN_LOCAL or leaves by lo): the copy pays there; 0 remote; -1
 * on this host but sendfile pays (three quiet sets each, docs/zc.md):
 * - AF_UNIX: sendfile hands page references straight to the reader,
 *   whose one copy is all (sendfile 2.1-2.6x the loop with the reader on
 *   the sender's CPU, the copy 0.53-0.63x of sendfile);
 * - a veth into another namespace: the copy 0.66-1.51x of sendfile,
 *   below it in 7 of 9 cells. */
static int sock_peer_local(int sock)
{
	struct peer_addrs a;
	int r;

	if (peer_addrs_get(sock, &a))
		return 0;
	if (a.peer.ss_family == AF_UNIX)
		return -1;
	r = peer_addrs_kind(&a, route_kind_cached);
	return r == PEER_ROUTE_LO ? 1 : r == PEER_ROUTE_VETH ? -1 : 0;
}

ssize_t rp_zc_file_to_socket(int sock, int file, off_t *off, size_t count)
{
	return rp_zc_file_to_socket_flags(sock, file, off, count, RP_ZC_F2S_AUTO);
}

ssize_t rp_zc_file_to_socket_flags(int sock, int file, off_t *off, size_t count,
				   unsigned flags)
{
	bool seen[3] = {false, false, false};
	struct zc_src src = { false, false, false };
	unsigned mode = flags & RP_ZC_F2S_MASK;
	bool asked = mode != RP_ZC_F2S_AUTO, copy = false, local = false, full = false, lookup;
	char *cbuf = NULL;
	size_t cbufsz = 0, done = 0;
	ssize_t n = 0;
	int strat, r;

	if (sock < 0 || file < 0)
		return -EBADF;
	if ((off && *off < 0) || (flags & ~RP_ZC_F2S_MASK))
		return -EINVAL;
	zc_probe();
	r = zc_held_flush(sock); /* bytes held for sock go before any new ones */
	if (r < 0)
		return r;
	if (count == 0)
		return 0;

	if (mode == RP_ZC_F2S_AUTO) {
		mode = zc_env_f2s ? zc_env_f2s : ZC_F2S_BUILTIN;
		asked = zc_env_f2s != 0;
	}
	lookup = mode == RP_ZC_F2S_LOCAL_COPY && count >= ZC_LOCAL_MIN;
	if (mode == RP_ZC_F2S_COPY) {
		copy = true;
	} else if (lookup) {
		r = sock_peer_local(sock);
		local = r != 0;
		copy = r > 0;
	}
	if (copy) {
		/* only a source that can be read again at an offset: the
		 * rest of a short send is read again, never held */
		r = src_learn(&src, sock, file, off);
		if (r < 0)
			return r;
		copy = src.seekable;
	}
	if (copy) {
		ZC_ADD(f2s_local_copy, local);
		ZC_ADD(f2s_forced_copy, !local);
		cbuf = zc_lbuf_get();
		cbufsz = zc_lbuf_bytes;
		strat = S_COPY;
	} else if (local) {
		ZC_ADD(f2s_local_sendfile, 1);
	} else if (lookup) {
		ZC_ADD(f2s_remote_sendfile, 1);
	} else if (asked && mode == RP_ZC_F2S_SENDFILE) {
		ZC_ADD(f2s_forced_sendfile, 1);
	}

	if (copy) {
		/* strat is S_COPY */
	} else if (atomic_load_explicit(&zc_have_sendfile, memory_order_relaxed)) {
		strat = S_SENDFILE;
	} else {
		strat = next_after_sendfile();
		r = src_learn(&src, sock, file, off);
		if (r < 0)
			return r;
	}
	while (done < count) {
		size_t chunk = count - done < ZC_CHUNK_MAX ? count - done : ZC_CHUNK_MAX;

		count_call(seen, strat);
		switch (strat) {
		case S_SENDFILE:
			n = zc_sendfile_step(sock, file, off, chunk);
			if (n > 0 || n == -EAGAIN || n == -EWOULDBLOCK)
				break;
			/* a refusal, an error or 0 on the first call: learn the
			 * source now; what it says (ESPIPE, EBUSY) comes first,
			 * as it did when fstat ran before any sendfile */
			r = src_learn(&src, sock, file, off);
			if (r < 0) {
				n = r;
				break;
			}
			if (n == -EINVAL) {
				ZC_ADD(sendfile_einval, 1);
				strat = next_after_sendfile();
				continue;
			}
			if (n == -ENOSYS) {
				ZC_ADD(sendfile_enosys, 1);
				atomic_store_explicit(&zc_have_sendfile, false,
						      memory_order_relaxed);
				strat = next_after_sendfile();
				continue;
			}
			break;
		case S_SPLICE:
			n = zc_splice_file_step(sock, file, off, chunk, src.fifo);
			if (n == -EINVAL || n == -ENOSYS || n == ZC_NOPIPE) {
				if (n == -EINVAL)
					ZC_ADD(splice_einval, 1);
				if (n == -ENOSYS) {
					ZC_ADD(splice_enosys, 1);
					atomic_store_explicit(&zc_have_splice, false,
							      memory_order_relaxed);
				}
				strat = S_COPY;
				continue;
			}
			break;
		default:
			/* the copy path's buffer, else (a fallback, or no
			 * memory for it) the 64 KB one, taken only now */
			if (!cbuf) {
				cbuf = zc_buf_get();
				cbufsz = ZC_BUF_BYTES;
			}
			n = zc_copy_file_step(sock, file, off, chunk, src.seekable, cbuf, cbufsz,
					      &full);
			break;
		}
		if (n <= 0)
			break;
		done += (size_t)n;
		/* a short send: sock is full, and reading the next buffer now
		 * would only be read again next time (the offset says where) */
		if (full)
			break;
		/* an unseekable source that left bytes held: sock is full */
		if (src.known && !src.seekable && rp_zc_held(sock))
			break;
	}
	zc_buf_put(cbuf); /* freed if the call's own (zc_buf_get) */
	if (n < 0 && (n == -EAGAIN || n == -EWOULDBLOCK))
		return done ? (ssize_t)done : -EAGAIN;
	if (n < 0)
		return done && (n == -ESPIPE || n == -EBUSY) ? (ssize_t)done : n;
	return (ssize_t)done;
}

ssize_t rp_zc_socket_relay(int dst, int src, size_t count)
{
	ssize_t n;
	int r;

	if (dst < 0 || src < 0)
		return -EBADF;
	zc_probe();
	r = zc_held_flush(dst);
	if (r < 0)
		return r;
	if (count == 0)
		return 0;
	/* dst before anything reads src: a blocking src with nothing to read
	 * would hold the call until it had data, and only then would the
	 * write find dst closed or read-only (one fcntl, no blocking) */
	r = fcntl(dst, F_GETFL);
	if (r < 0)
		return -errno;
	if ((r & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	if (!zc_hold_room(dst)) {
		ZC_ADD(held_busy, 1);
		return -EBUSY;
	}
	if (atomic_load_explicit(&zc_have_splice, memory_order_relaxed)) {
		ZC_ADD(splice_calls, 1);
		n = zc_splice_relay_step(dst, src, count);
		if (n == -EINVAL) {
			ZC_ADD(splice_einval, 1);
		} else if (n == -ENOSYS) {
			ZC_ADD(splice_enosys, 1);
			atomic_store_explicit(&zc_have_splice, false, memory_order_relaxed);
		} else if (n != ZC_NOPIPE && n != ZC_URGENT) {
			return n == -EWOULDBLOCK ? -EAGAIN : n;
		}
	}
	ZC_ADD(copy_calls, 1);
	n = zc_copy_relay_step(dst, src, count);
	return n == -EWOULDBLOCK ? -EAGAIN : n;
}

/* ---- file -> file ---- */

/*
 * rp_zc_file_copy on one file gives memmove's result (zc.h). The kernel
 * refuses overlapping ranges of one file (copy_file_range: EINVAL), and
 * the read/write fallback copies forward in 64 KB chunks, which rereads
 * bytes it has already overwritten when dst lies after src: that case is
 * copied backwards. Whether the two fds are one file is an fstat(2) of
 * each (st_dev, st_ino), asked only where it can matter, never on a call
 * that copy_file_range serves at once: before the first read/write chunk;
 * before a count over ZC_CHUNK_MAX where the source has more than that
 * left (several copy_file_range calls, each within the kernel's own
 * overlap check, can still overlap one another); after a copy_file_range
 * that stopped short of its count, where the source's fstat comes first:
 * at the end it saw the call is done (one file or two), so the
 * copy_file_range and read(2) that used to confirm EOF are not made, and
 * a count past EOF costs one syscall fewer than before.
 */
struct fc_pos {
	bool reg;   /* the source is a regular file */
	bool same;  /* the destination is that file (where fc_look_dst ran) */
	dev_t dev;
	ino_t ino;
	off_t size; /* the source's st_size */
	off_t eof;  /* where it ends: its size where it reports one (not /proc's 0), else -1 */
	off_t in;   /* the source's offset or position, where reg */
	off_t out;  /* the destination's, where same */
};

/* The source: 0 with *@p filled (same false), or a negative errno. */
static int fc_look_src(int src, const off_t *off_in, struct fc_pos *p)
{
	struct stat si;

	if (fstat(src, &si) < 0)
		return -errno;
	p->reg = S_ISREG(si.st_mode);
	p->same = false;
	p->dev = si.st_dev;
	p->ino = si.st_ino;
	p->size = si.st_size;
	p->eof = p->reg && si.st_size > 0 ? si.st_size : -1;
	p->in = p->out = 0;
	if (!p->reg)
		return 0;
	p->in = off_in ? *off_in : lseek(src, 0, SEEK_CUR);
	return p->in < 0 ? -errno : 0;
}

/* After fc_look_src: whether @dst is the same regular file, and where it
 * writes. 0 or a negative errno. */
static int fc_look_dst(int dst, const off_t *off_out, struct fc_pos *p)
{
	struct stat so;

	if (!p->reg)
		return 0;
	if (fstat(dst, &so) < 0)
		return -errno;
	p->same = so.st_dev == p->dev && so.st_ino == p->ino;
	if (!p->same)
		return 0;
	p->out = off_out ? *off_out : lseek(dst, 0, SEEK_CUR);
	return p->out < 0 ? -errno : 0;
}

/* Both, now: 0 or a negative errno. An O_APPEND @dst is -EBADF here as
 * copy_file_range(2) would say: the kernel checks the source's type first
 * (a pipe, socket or /proc source gets -EINVAL, not -EBADF), and pwrite(2)
 * on it would append wherever @off_out points. */
static int fc_look(int dst, int src, const off_t *off_in, const off_t *off_out, struct fc_pos *p)
{
	int fl = fcntl(dst, F_GETFL);
	int r;

	if (fl < 0)
		return -errno;
	if (fl & O_APPEND)
		return -EBADF;
	r = fc_look_src(src, off_in, p);

	return r < 0 ? r : fc_look_dst(dst, off_out, p);
}

/* Whether @a and @b, both at @pos, share one file position (the same fd,
 * or one open file description through dup(2)): move @a's and look at
 * @b's, then put @a's back. 1, 0 or a negative errno. */
static int fc_one_position(int a, int b, off_t pos)
{
	off_t seen;
	int err;

	if (a == b)
		return 1;
	if (lseek(a, pos + 1, SEEK_SET) < 0)
		return -errno;
	seen = lseek(b, 0, SEEK_CUR);
	err = seen < 0 ? errno : 0;
	if (lseek(a, pos, SEEK_SET) < 0)
		return -errno;
	return err ? -err : seen == pos + 1;
}

/*
 * Before a forward copy of up to @count bytes, with what fc_look saw: 0
 * where forward is right (two files; dst before src, memmove's forward
 * case; no overlap), with *@count cut, on one file with dst after src, to
 * what the source had (what follows is this call's own output); 1 where
 * this call is done with *@res its result: the range copied backwards
 * (the offsets or positions moved past it), -EINVAL for both offsets NULL
 * on one file position, or the errno of a failed lseek or copy.
 */
static int fc_overlap(int dst, int src, off_t *off_in, off_t *off_out, const struct fc_pos *p,
		      size_t *count, ssize_t *res)
{
	size_t len;
	int r;

	*res = 0;
	if (!p->same || p->size <= p->in)
		return 0; /* two files, or at EOF: the forward step reads 0 */
	len = (uint64_t)(p->size - p->in) < *count ? (size_t)(p->size - p->in) : *count;
	if (!off_in && !off_out && p->in == p->out) {
		r = fc_one_position(src, dst, p->in);
		if (r) {
			*res = r < 0 ? r : -EINVAL;
			return 1;
		}
	}
	if (p->out <= p->in)
		return 0;
	*count = len;
	if (p->out - p->in >= (off_t)len)
		return 0;
	*res = zc_copy_fcopy_back(dst, src, p->in, p->out, len);
	if (*res < 0)
		return 1;
	if (off_in)
		*off_in = p->in + (off_t)len;
	else if (lseek(src, p->in + (off_t)len, SEEK_SET) < 0)
		*res = -errno;
	if (off_out)
		*off_out = p->out + (off_t)len;
	else if (*res >= 0 && lseek(dst, p->out + (off_t)len, SEEK_SET) < 0)
		*res = -errno;
	return 1;
}

ssize_t rp_zc_file_copy(int dst, int src, off_t *off_in, off_t *off_out, size_t count)
{
	bool cfr_seen = false, copy_seen = false, cfr_short = false, cfr, zero;
	/* looked: p has the source (base + done is where it reads); checked:
	 * the overlap check ran (fc_overlap); dst_seen: p.same says */
	bool looked = false, checked = false, dst_seen = false;
	struct fc_pos p;
	size_t done = 0, rest;
	off_t base = 0;
	ssize_t n = 0;

	if (dst < 0 || src < 0)
		return -EBADF;
	if ((off_in && *off_in < 0) || (off_out && *off_out < 0))
		return -EINVAL;
	zc_probe();
	cfr = atomic_load_explicit(&zc_have_cfr, memory_order_relaxed);
	if (count > ZC_CHUNK_MAX) {
		n = fc_look_src(src, off_in, &p);
		if (n < 0)
			goto out;
		looked = true;
		base = p.in;
		if (p.reg && p.size - p.in > (off_t)ZC_CHUNK_MAX) {
			/* more than one copy_file_range: on one file their
			 * order matters */
			n = fc_look_dst(dst, off_out, &p);
			if (n < 0)
				goto out;
			dst_seen = checked = true;
			rest = count;
			if (fc_overlap(dst, src, off_in, off_out, &p, &rest, &n))
				goto back;
			count = rest;
		}
	}
	while (done < count) {
		size_t chunk = count - done < ZC_CHUNK_MAX ? count - done : ZC_CHUNK_MAX;

		if (cfr && cfr_short) {
			/* short of its count: the source's end (or a signal) */
			if (!looked) {
				n = fc_look_src(src, off_in, &p);
				if (n < 0)
					goto out;
				looked = true;
				base = p.in - (off_t)done;
			}
			if (p.eof >= 0 && base + (off_t)done >= p.eof)
				break; /* the end fstat saw: no call to confirm it */
			if (!dst_seen) {
				/* one file, dst after src: what follows is this
				 * call's own output (memmove copies the source
				 * as it was) */
				n = fc_look_dst(dst, off_out, &p);
				if (n < 0)
					goto out;
				dst_seen = true;
				if (p.same && p.out > base + (off_t)done)
					break;
			}
		}
		if (cfr) {
			if (!cfr_seen)
				ZC_ADD(cfr_calls, 1);
			cfr_seen = true;
			n = zc_cfr_step(dst, src, off_in, off_out, chunk);
			if (n > 0) {
				done += (size_t)n;
				cfr_short = (size_t)n < chunk;
				continue;
			}
			switch (n) {
			case 0:
				/* EOF, or a file that reports size 0 (/proc,
				 * sysfs): read(2) decides, below */
				break;
			case -EXDEV:
				ZC_ADD(cfr_exdev, 1);
				break;
			case -ENOSYS:
				ZC_ADD(cfr_enosys, 1);
				atomic_store_explicit(&zc_have_cfr, false, memory_order_relaxed);
				break;
			case -EOPNOTSUPP:
				ZC_ADD(cfr_eopnotsupp, 1);
				break;
			case -EINVAL:
				/* not regular files, or overlapping ranges of one */
				ZC_ADD(cfr_einval, 1);
				break;
			default:
				goto out;
			}
			cfr = false;
			zero = n == 0;
		} else {
			zero = false;
		}
		if (!checked) {
			/* the first read/write chunk: one file? (looked now) */
			n = fc_look(dst, src, off_in, off_out, &p);
			if (n < 0)
				goto out;
			looked = dst_seen = checked = true;
			base = p.in - (off_t)done;
			rest = count - done;
			if (fc_overlap(dst, src, off_in, off_out, &p, &rest, &n))
				goto back;
			count = done + rest;
			if (done == count)
				break;
			chunk = count - done < ZC_CHUNK_MAX ? count - done : ZC_CHUNK_MAX;
		}
		if (!copy_seen)
			ZC_ADD(copy_calls, 1);
		copy_seen = true;
		n = zc_copy_fcopy_step(dst, src, off_in, off_out, chunk);
		if (n > 0 && zero)
			ZC_ADD(cfr_zero, 1); /* read(2) found what cfr did not */
		if (n <= 0)
			goto out;
		done += (size_t)n;
	}
	n = 0;
	goto out;
back:
	/* fc_overlap ended the call: a backward copy (read/write) or an error */
	if (n > 0 && !copy_seen)
		ZC_ADD(copy_calls, 1);
	if (n > 0)
		done += (size_t)n;
out:
	if (n < 0 && (n == -EAGAIN || n == -EWOULDBLOCK))
		return done ? (ssize_t)done : -EAGAIN;
	if (n < 0)
		return n;
	return (ssize_t)done;
}
