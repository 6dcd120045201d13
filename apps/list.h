/* SPDX-License-Identifier: MIT */
/*
 * An intrusive doubly linked list, oldest first, for the apps' per-shard
 * lists: relay's upstream connects in flight and its clients waiting for
 * a descriptor (apps/cmd_relay.c), serve's lingering connections
 * (apps/cmd_serve.c). The element holds a struct rp_app_link, its owner a
 * struct rp_app_list; rp_app_list_entry gives the element of a link.
 *
 * All zero is an empty list and a link on no list (rp_app_list_init and
 * rp_app_list_unlink leave them so), so owners and elements that come
 * zeroed (calloc, a memset after rp_pool_alloc) need no call. Push at the
 * tail and unlink anywhere are O(1); nothing allocates, nothing locks:
 * one shard thread owns a list and its elements. A link is on one list at
 * a time, and unlink takes it off the list it is on (not checked).
 */
#ifndef RP_APPS_LIST_H
#define RP_APPS_LIST_H

#include <stdbool.h>
#include <stddef.h>

struct rp_app_link {
	struct rp_app_link *prev, *next; /* NULL at the list's ends */
};

struct rp_app_list {
	struct rp_app_link *first, *last; /* the oldest, the newest; NULL: empty */
};

/* The element of type @type whose member @member is the link @link. */
#define rp_app_list_entry(link, type, member) \
	((type *)(void *)((char *)(link) - offsetof(type, member)))

static inline void rp_app_list_init(struct rp_app_list *l)
{
	l->first = l->last = NULL;
}

static inline bool rp_app_list_empty(const struct rp_app_list *l)
{
	return !l->first;
}

/* @n (on no list) becomes @l's newest. */
static inline void rp_app_list_push(struct rp_app_list *l, struct rp_app_link *n)
{
	n->prev = l->last;
	n->next = NULL;
	if (l->last)
		l->last->next = n;
	else
		l->first = n;
	l->last = n;
}

/* @n (on @l) off @l, its links cleared. */
static inline void rp_app_list_unlink(struct rp_app_list *l, struct rp_app_link *n)
{
	if (n->prev)
		n->prev->next = n->next;
	else
		l->first = n->next;
	if (n->next)
		n->next->prev = n->prev;
	else
		l->last = n->prev;
	n->prev = n->next = NULL;
}

#endif
