/* SPDX-License-Identifier: MIT */
/*
 * ringplane.h - the whole public API in one include.
 *
 * Each module has its own header; include only the one you need if you
 * care about compile times. Every function is prefixed rp_, and functions
 * that can fail return a negative errno value (or NULL with errno set where
 * they return a pointer; the header of each says which).
 */
#ifndef RINGPLANE_RINGPLANE_H
#define RINGPLANE_RINGPLANE_H

#include <ringplane/simd.h>	/* CRC32C, XOR, XOR-delta codec */
#include <ringplane/spsc.h>	/* single-producer single-consumer ring */
#include <ringplane/mpsc.h>	/* bounded MPSC queue for non-shard threads */
#include <ringplane/pool.h>	/* NUMA-local huge-page slab pools */
#include <ringplane/topo.h>	/* topology, shard placement, pinning */
#include <ringplane/engine.h>	/* shard runtime on io_uring */
#include <ringplane/relay.h>	/* relay of two connected sockets on a shard */
#include <ringplane/filesend.h>	/* header + file range to a socket as one operation */
#include <ringplane/filecache.h>	/* open files beneath a root, LRU, revalidated */
#include <ringplane/proxy.h>	/* PROXY protocol v1/v2 writer and parser */
#include <ringplane/http.h>	/* HTTP/1.1 request heads, paths, ranges, response heads */
#include <ringplane/zc.h>	/* synchronous sendfile/splice/copy_file_range with fallbacks */
#include <ringplane/outq.h>	/* per-connection output queues, adaptive SEND_ZC */

#endif /* RINGPLANE_RINGPLANE_H */
