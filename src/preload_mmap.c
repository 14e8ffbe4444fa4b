/* SPDX-License-Identifier: MIT */
/*
 * Direct anonymous mappings of a program under `samepage run` (Python's
 * small-object arenas, jemalloc's chunks): mmap(NULL, len, PROT_READ |
 * PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS[ | MAP_NORESERVE], -1, 0) is served
 * by zeroed, page-aligned blocks of the pool's arenas; anything else, and
 * every call made by mimalloc or samepage itself, goes to the kernel
 * untouched. On a served mapping:
 *
 *   munmap    frees just that part: zeroes it, and the block goes back to
 *             mimalloc when none of it is left (a read of a part already
 *             unmapped sees zeros rather than SIGSEGV);
 *   mremap    shrinks in place, grows or moves by copying (MREMAP_FIXED:
 *             into a kernel mapping at the address asked for);
 *   madvise   MADV_DONTNEED, MADV_FREE, MADV_REMOVE make it read zeros;
 *             other advice is accepted and ignored;
 *   mprotect  read-write is what it is; any other protection makes the
 *             range unmergeable (unmerged, never merged again) and is then
 *             passed to the kernel.
 *
 * This file defines the names scripts/check-syscalls.sh watches for: it is
 * the one other place allowed to, and calls the kernel's only through the
 * real_* pointers below.
 */
/* mmap, not mmap64 under another name: both are defined below (LP64: alike). */
#undef _FILE_OFFSET_BITS
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "preload.h"

#define PUBLIC __attribute__((visibility("default")))
#define PAGE_ALIGN(x) (((x) + SP_PAGE_SIZE - 1) & ~(size_t)(SP_PAGE_SIZE - 1))

void *__libc_realloc(void *p, size_t size);
void __libc_free(void *p);

/* A served mapping, or what is left of one: [start, end) of block base. */
struct piece {
	uintptr_t start, end;
	void *base;
};

static struct {
	void *(*mmap)(void *, size_t, int, int, int, off_t);
	int (*munmap)(void *, size_t);
	void *(*mremap)(void *, size_t, size_t, int, ...);
	int (*madvise)(void *, size_t, int);
	int (*mprotect)(void *, size_t, int);
	struct piece *piece; /* sorted by start, glibc's memory */
	size_t nr, cap;
	pthread_mutex_t lock;
} mm = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void resolve(void)
{
	if (mm.mprotect)
		return;
	mm.mmap = (void *(*)(void *, size_t, int, int, int, off_t))dlsym(RTLD_NEXT, "mmap");
	mm.munmap = (int (*)(void *, size_t))dlsym(RTLD_NEXT, "munmap");
	mm.mremap = (void *(*)(void *, size_t, size_t, int, ...))dlsym(RTLD_NEXT, "mremap");
	mm.madvise = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "madvise");
	mm.mprotect = (int (*)(void *, size_t, int))dlsym(RTLD_NEXT, "mprotect");
}

/* The first piece that ends after a; mm.lock held. */
static size_t piece_after(uintptr_t a)
{
	size_t lo = 0, hi = mm.nr;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (mm.piece[mid].end <= a)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int piece_insert(size_t at, struct piece p)
{
	if (mm.nr == mm.cap) {
		size_t cap = mm.cap ? mm.cap * 2 : 64;
		struct piece *n = __libc_realloc(mm.piece, cap * sizeof(*n));

		if (!n)
			return -1;
		mm.piece = n;
		mm.cap = cap;
	}
	memmove(&mm.piece[at + 1], &mm.piece[at], (mm.nr - at) * sizeof(*mm.piece));
	mm.piece[at] = p;
	mm.nr++;
	return 0;
}

/* Remove piece at; its block goes back to mimalloc if no piece is left of it. */
static void piece_remove(size_t at)
{
	void *base = mm.piece[at].base;

	memmove(&mm.piece[at], &mm.piece[at + 1], (mm.nr - at - 1) * sizeof(*mm.piece));
	mm.nr--;
	for (size_t i = 0; i < mm.nr; i++)
		if (mm.piece[i].base == base)
			return;
	free(base);
}

static bool servable(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int anon = MAP_PRIVATE | MAP_ANONYMOUS;

	return !addr && len && prot == (PROT_READ | PROT_WRITE) &&
	       (flags & ~MAP_NORESERVE) == anon && fd == -1 && !off;
}

/* len bytes from the pool, recorded as a piece; NULL: the kernel's turn. */
static void *pool_map(size_t len)
{
	size_t l = PAGE_ALIGN(len);
	void *p = l >= len ? preload_pool_zalloc(l) : NULL;
	struct piece np = { (uintptr_t)p, (uintptr_t)p + l, p };
	int err;

	if (!p)
		return NULL;
	pthread_mutex_lock(&mm.lock);
	err = piece_insert(piece_after((uintptr_t)p), np);
	pthread_mutex_unlock(&mm.lock);
	if (!err)
		return p;
	free(p);
	return NULL;
}

PUBLIC void *mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	void *p = NULL;

	resolve();
	if (servable(addr, len, prot, flags, fd, off) &&
	    !preload_own_code(__builtin_return_address(0)))
		p = pool_map(len);
	return p ? p : mm.mmap(addr, len, prot, flags, fd, off);
}

PUBLIC void *mmap64(void *addr, size_t len, int prot, int flags, int fd, off64_t off)
{
	return mmap(addr, len, prot, flags, fd, off);
}

/* Zero [a, b) of the pieces it overlaps (not in a child: not ours there). */
static void zero_range(uintptr_t a, uintptr_t b)
{
	if (preload_forked())
		return;
	pthread_mutex_lock(&mm.lock);
	for (size_t i = piece_after(a); i < mm.nr && mm.piece[i].start < b; i++) {
		uintptr_t s = mm.piece[i].start > a ? mm.piece[i].start : a;
		uintptr_t e = mm.piece[i].end < b ? mm.piece[i].end : b;

		memset((void *)s, 0, e - s);
	}
	pthread_mutex_unlock(&mm.lock);
}

/* Unmap [a, b) of the served pieces; mm.lock held. */
static int unmap_pieces(uintptr_t a, uintptr_t b)
{
	size_t i = piece_after(a);

	while (i < mm.nr && mm.piece[i].start < b) {
		struct piece *p = &mm.piece[i];

		if (!preload_forked()) {
			uintptr_t s = p->start > a ? p->start : a;
			uintptr_t e = p->end < b ? p->end : b;

			memset((void *)s, 0, e - s); /* a new mapping reads zeros */
		}
		if (a <= p->start && b >= p->end) {
			piece_remove(i);
			continue;
		}
		if (a > p->start && b < p->end) { /* the middle: two pieces */
			struct piece tail = { b, p->end, p->base };

			p->end = a;
			if (piece_insert(i + 1, tail))
				return -1;
			return 0;
		}
		if (a <= p->start)
			p->start = b;
		else
			p->end = a;
		i++;
	}
	return 0;
}

/* munmap of pool memory; -1 with errno as the kernel's. */
static int pool_unmap(uintptr_t a, size_t len)
{
	int ret;

	if ((a & (SP_PAGE_SIZE - 1)) || !len || PAGE_ALIGN(len) < len) {
		errno = EINVAL;
		return -1;
	}
	pthread_mutex_lock(&mm.lock);
	ret = unmap_pieces(a, a + PAGE_ALIGN(len));
	pthread_mutex_unlock(&mm.lock);
	if (ret)
		errno = ENOMEM; /* as the kernel, out of room to split a mapping */
	return ret;
}

/* samepage's own calls (os.c remapping pool pages) are the kernel's. */
PUBLIC int munmap(void *addr, size_t len)
{
	resolve();
	if (!preload_in_pool(addr) || preload_own_code(__builtin_return_address(0)))
		return mm.munmap(addr, len);
	return pool_unmap((uintptr_t)addr, len);
}

/* The piece that is exactly [a, a + len); -1 if none. */
static long piece_exact(uintptr_t a, size_t len)
{
	long found = -1;
	size_t i;

	pthread_mutex_lock(&mm.lock);
	i = piece_after(a);
	if (i < mm.nr && mm.piece[i].start == a && mm.piece[i].end - a >= len)
		found = (long)i;
	pthread_mutex_unlock(&mm.lock);
	return found;
}

PUBLIC void *mremap(void *old, size_t old_len, size_t new_len, int flags, ...)
{
	size_t ol = PAGE_ALIGN(old_len), nl = PAGE_ALIGN(new_len);
	void *fixed = NULL, *to;
	va_list ap;

	resolve();
	if (flags & MREMAP_FIXED) {
		va_start(ap, flags);
		fixed = va_arg(ap, void *);
		va_end(ap);
	}
	if (!preload_in_pool(old) || preload_own_code(__builtin_return_address(0)))
		return mm.mremap(old, old_len, new_len, flags, fixed);
	if (!old_len || !new_len || (flags & MREMAP_DONTUNMAP) || preload_forked() ||
	    piece_exact((uintptr_t)old, ol) < 0) {
		errno = EINVAL;
		return MAP_FAILED;
	}
	if (!(flags & MREMAP_FIXED) && nl <= ol) {
		if (nl < ol)
			pool_unmap((uintptr_t)old + nl, ol - nl);
		return old;
	}
	if (!(flags & MREMAP_MAYMOVE)) {
		errno = ENOMEM; /* as the kernel, when the next pages are taken */
		return MAP_FAILED;
	}
	if (fixed)
		to = mm.mmap(fixed, nl, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
	else if (!(to = pool_map(nl)))
		to = mm.mmap(NULL, nl, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (to == MAP_FAILED)
		return MAP_FAILED;
	memcpy(to, old, ol < nl ? ol : nl);
	pool_unmap((uintptr_t)old, ol);
	return to;
}

PUBLIC int madvise(void *addr, size_t len, int advice)
{
	uintptr_t a = (uintptr_t)addr;

	resolve();
	if (!preload_in_pool(addr) || preload_own_code(__builtin_return_address(0)))
		return mm.madvise(addr, len, advice);
	if ((a & (SP_PAGE_SIZE - 1)) || PAGE_ALIGN(len) < len) {
		errno = EINVAL;
		return -1;
	}
	if (advice == MADV_DONTNEED || advice == MADV_FREE || advice == MADV_REMOVE)
		zero_range(a, a + PAGE_ALIGN(len));
	return 0;
}

PUBLIC int mprotect(void *addr, size_t len, int prot)
{
	bool was;
	int err;

	resolve();
	if (!preload_in_pool(addr) || preload_own_code(__builtin_return_address(0)) ||
	    preload_forked() || ((uintptr_t)addr & (SP_PAGE_SIZE - 1)))
		return mm.mprotect(addr, len, prot);
	if (prot == (PROT_READ | PROT_WRITE))
		return mm.mprotect(addr, len, prot); /* undoes an earlier one, else nothing */
	/* ksmd must not map a merged page over it: out of merging for good */
	was = preload_internal(true);
	err = sp_madvise(preload_pool(), addr, PAGE_ALIGN(len), SP_MADV_UNMERGEABLE);
	preload_internal(was);
	if (err)
		return -1;
	return mm.mprotect(addr, len, prot);
}
