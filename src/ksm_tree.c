/* SPDX-License-Identifier: MIT */
/*
 * The stable and unstable indexes of KSM. The kernel keeps red-black trees
 * ordered by memcmp; a hash index keyed by the page's XXH3 finds the same
 * candidates in O(1), and every merge still compares the full page under the
 * write-protect window, so a collision costs a compare, never a wrong merge.
 *
 * Everything here runs under the KSM mutex (ksm.c), and nothing here takes a
 * lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ksm.h"

/* ---- stable ----------------------------------------------------------- */

static uint32_t bucket_of(const struct stable_tree *t, uint32_t hash)
{
	return (uint32_t)(((uint64_t)hash * 0x9E3779B97F4A7C15ull) >> 32) & (t->nr_buckets - 1);
}

int stable_init(struct stable_tree *t)
{
	memset(t, 0, sizeof(*t));
	t->free_head = STABLE_NONE;
	t->nr_buckets = 1024;
	t->buckets = malloc(t->nr_buckets * sizeof(*t->buckets));
	if (!t->buckets)
		return -1;
	memset(t->buckets, 0xff, t->nr_buckets * sizeof(*t->buckets));
	return 0;
}

void stable_exit(struct stable_tree *t)
{
	for (uint32_t i = 0; i < t->nr_ids; i++)
		free(t->nodes[i].rmap);
	free(t->nodes);
	free(t->buckets);
	memset(t, 0, sizeof(*t));
}

uint32_t stable_first(struct stable_tree *t, uint32_t hash)
{
	return t->buckets[bucket_of(t, hash)];
}

static void rehash(struct stable_tree *t)
{
	uint32_t n = t->nr_buckets * 2, *b = malloc(n * sizeof(*b));

	if (!b)
		return; /* longer chains, still correct */
	memset(b, 0xff, n * sizeof(*b));
	free(t->buckets);
	t->buckets = b;
	t->nr_buckets = n;
	for (uint32_t i = 0; i < t->nr_ids; i++) {
		struct stable_node *s = &t->nodes[i];
		uint32_t h;

		if (!s->live)
			continue;
		h = bucket_of(t, s->hash);
		s->next = b[h];
		b[h] = i;
	}
}

/* Nodes with this content's key already: a chain of dups when more than one. */
static uint32_t same_key(struct stable_tree *t, const struct stable_node *s, uint32_t skip)
{
	uint32_t n = 0;

	for (uint32_t id = stable_first(t, s->hash); id != STABLE_NONE; id = t->nodes[id].next) {
		const struct stable_node *o = &t->nodes[id];

		n += id != skip && o->hash == s->hash && o->domain == s->domain &&
		     o->node == s->node;
	}
	return n;
}

static void chain_account(struct stable_tree *t, uint32_t others, int delta)
{
	/* others: nodes of the same content besides the one coming or going */
	if (others == 1) {
		t->chains += delta;
		t->dups += 2 * delta;
	} else if (others > 1) {
		t->dups += delta;
	}
}

static uint32_t id_alloc(struct stable_tree *t)
{
	uint32_t id;

	if (t->free_head != STABLE_NONE) {
		id = t->free_head;
		t->free_head = t->nodes[id].next;
		return id;
	}
	if (t->nr_ids == t->cap) {
		uint32_t cap = t->cap ? t->cap * 2 : 256;
		struct stable_node *n = realloc(t->nodes, cap * sizeof(*n));

		if (!n)
			return STABLE_NONE;
		t->nodes = n;
		t->cap = cap;
	}
	t->nodes[t->nr_ids].rmap = NULL;
	return t->nr_ids++;
}

uint32_t stable_new(struct stable_tree *t, uint32_t hash, uint32_t kpfn, uint32_t domain, int node)
{
	uint32_t id = id_alloc(t), h;
	struct stable_node *s;

	if (id == STABLE_NONE)
		return STABLE_NONE;
	s = &t->nodes[id];
	free(s->rmap);
	*s = (struct stable_node){
		.hash = hash, .kpfn = kpfn, .domain = domain, .node = node, .live = true
	};
	chain_account(t, same_key(t, s, STABLE_NONE), 1);
	h = bucket_of(t, hash);
	s->next = t->buckets[h];
	t->buckets[h] = id;
	if (++t->nr_live > t->nr_buckets)
		rehash(t);
	return id;
}

void stable_delete(struct stable_tree *t, uint32_t id)
{
	struct stable_node *s = &t->nodes[id];
	uint32_t *link = &t->buckets[bucket_of(t, s->hash)];

	while (*link != id)
		link = &t->nodes[*link].next;
	*link = s->next;
	chain_account(t, same_key(t, s, id), -1);
	t->rmap_slots -= s->cap;
	free(s->rmap);
	s->rmap = NULL;
	s->nr = s->cap = 0;
	s->live = false;
	s->next = t->free_head;
	t->free_head = id;
	t->nr_live--;
}

/* Room for extra more sharers, so that adding them later cannot fail. */
int stable_reserve(struct stable_tree *t, uint32_t id, uint32_t extra)
{
	struct stable_node *s = &t->nodes[id];
	uint32_t cap = s->cap ? s->cap : 4;
	struct ksm_rmap *n;

	while (cap < s->nr + extra)
		cap *= 2;
	if (cap == s->cap)
		return 0;
	n = realloc(s->rmap, cap * sizeof(*n));
	if (!n)
		return -1;
	t->rmap_slots += cap - s->cap;
	s->rmap = n;
	s->cap = cap;
	return 0;
}

int stable_add_rmap(struct stable_tree *t, uint32_t id, uint32_t rid, uint32_t idx)
{
	struct stable_node *s = &t->nodes[id];

	if (s->nr == s->cap) {
		uint32_t cap = s->cap ? s->cap * 2 : 4;
		struct ksm_rmap *n = realloc(s->rmap, cap * sizeof(*n));

		if (!n)
			return -1;
		t->rmap_slots += cap - s->cap;
		s->rmap = n;
		s->cap = cap;
	}
	s->rmap[s->nr++] = (struct ksm_rmap){ rid, idx };
	return 0;
}

uint32_t stable_remove_rmap(struct stable_tree *t, uint32_t id, uint32_t rid, uint32_t idx)
{
	struct stable_node *s = &t->nodes[id];

	for (uint32_t i = 0; i < s->nr; i++) {
		if (s->rmap[i].rid == rid && s->rmap[i].idx == idx) {
			s->rmap[i] = s->rmap[--s->nr];
			break;
		}
	}
	return s->nr;
}

size_t stable_bytes(const struct stable_tree *t)
{
	return t->cap * sizeof(struct stable_node) + t->nr_buckets * sizeof(uint32_t) +
	       t->rmap_slots * sizeof(struct ksm_rmap);
}

/* ---- unstable --------------------------------------------------------- */

/* Range reduction instead of a power of two: the table is exactly 4/3 full. */
static size_t slot_of(const struct unstable_tree *t, uint32_t hash)
{
	uint32_t mixed = (uint32_t)(((uint64_t)hash * 0x9E3779B97F4A7C15ull) >> 32);

	return (size_t)(((uint64_t)mixed * t->size) >> 32);
}

int unstable_reset(struct unstable_tree *t, size_t expect)
{
	size_t n = expect + expect / 3 + 64;

	if (n != t->size || !t->slots) {
		uint64_t *s = calloc(n, sizeof(*s));

		if (!s)
			return -1;
		free(t->slots);
		t->slots = s;
		t->size = n;
	} else {
		memset(t->slots, 0, n * sizeof(*t->slots));
	}
	t->count = 0;
	return 0;
}

void unstable_exit(struct unstable_tree *t)
{
	free(t->slots);
	memset(t, 0, sizeof(*t));
}

/*
 * Open addressing on the checksum; the slot keeps the page,
 * and the page's ksm_item keeps the checksum. Full at 3/4: the page is just
 * not a candidate this scan.
 */
int unstable_insert(struct unstable_tree *t, uint32_t hash, uint32_t rid, uint32_t idx)
{
	size_t i = slot_of(t, hash);

	if (!t->slots || 4 * (t->count + 1) > 3 * t->size) {
		errno = ENOSPC;
		return -1;
	}
	while (t->slots[i])
		i = i + 1 == t->size ? 0 : i + 1;
	t->slots[i] = ((uint64_t)(rid + 1) << 32) | idx;
	t->count++;
	return 0;
}

/* Twice the room; each page's checksum comes from its ksm_item, through hash_of. */
int unstable_grow(struct unstable_tree *t, uint32_t (*hash_of)(void *ctx, uint64_t ref), void *ctx)
{
	struct unstable_tree n = { .size = 2 * t->size + 64 };

	n.slots = calloc(n.size, sizeof(*n.slots));
	if (!n.slots)
		return -1;
	for (size_t i = 0; i < t->size; i++) {
		size_t j;

		if (!t->slots[i])
			continue;
		for (j = slot_of(&n, hash_of(ctx, t->slots[i])); n.slots[j];)
			j = j + 1 == n.size ? 0 : j + 1;
		n.slots[j] = t->slots[i];
		n.count++;
	}
	free(t->slots);
	*t = n;
	return 0;
}

uint64_t unstable_next(struct unstable_tree *t, uint32_t hash, size_t *pos)
{
	size_t i;

	if (!t->slots)
		return 0;
	/* *pos is the next slot plus one, so that 0 can mean "start". */
	i = *pos ? *pos - 1 : slot_of(t, hash);
	/* Candidates of any checksum share the probe run: the caller filters. */
	if (!t->slots[i])
		return 0;
	*pos = (i + 1 == t->size ? 0 : i + 1) + 1;
	return t->slots[i];
}
