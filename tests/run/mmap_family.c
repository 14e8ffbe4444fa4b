/* SPDX-License-Identifier: MIT */
/*
 * A program that maps memory itself, run by test_run under `samepage run`:
 * anonymous private read-write mappings come from the pool (a mapping of
 * its memfd) and keep their contract (zero-filled; partial munmap; mremap
 * shrinks, grows, moves, MREMAP_FIXED; MADV_DONTNEED reads zeros; mprotect
 * read-only faults on a write and read-write again works); every other kind
 * of mapping is the kernel's. Prints "ok" or what failed.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "helpers.h"

#define PAGE 4096UL
#define RW (PROT_READ | PROT_WRITE)
#define ANON (MAP_PRIVATE | MAP_ANONYMOUS)

static bool all(const char *p, size_t n, char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static char *map(size_t len)
{
	char *p = mmap(NULL, len, RW, ANON, -1, 0);

	CHECK(p != MAP_FAILED);
	if (!in_pool(p)) {
		fprintf(stderr, "mmap_family: %zu bytes at %p: not in the pool\n", len, p);
		exit(1);
	}
	CHECK(all(p, len, 0) && (uintptr_t)p % PAGE == 0);
	return p;
}

static sigjmp_buf back;

static void on_segv(int sig)
{
	(void)sig;
	siglongjmp(back, 1);
}

static bool write_faults(volatile char *p)
{
	if (sigsetjmp(back, 1))
		return true;
	*p = 1;
	return false;
}

int main(void)
{
	char *p = map(64 * PAGE), *q, *r;

	/* munmap of the middle, the head, the tail: the rest keeps its bytes */
	memset(p, 'a', 64 * PAGE);
	CHECK(!munmap(p + 16 * PAGE, 16 * PAGE));
	CHECK(!munmap(p, 4 * PAGE));
	CHECK(!munmap(p + 60 * PAGE, 4 * PAGE));
	CHECK(all(p + 4 * PAGE, 12 * PAGE, 'a') && all(p + 32 * PAGE, 28 * PAGE, 'a'));
	CHECK(munmap(p + 1, PAGE) == -1 && errno == EINVAL);
	CHECK(!munmap(p + 4 * PAGE, 12 * PAGE));
	CHECK(!munmap(p + 32 * PAGE, 28 * PAGE)); /* the last of it */

	/* mremap: shrink in place, grow by moving, not without MAYMOVE, to a fixed place */
	p = map(8 * PAGE);
	memset(p, 'b', 8 * PAGE);
	CHECK(mremap(p, 8 * PAGE, 4 * PAGE, 0) == p && all(p, 4 * PAGE, 'b'));
	CHECK(mremap(p, 4 * PAGE, 64 * PAGE, 0) == MAP_FAILED && errno == ENOMEM);
	q = mremap(p, 4 * PAGE, 64 * PAGE, MREMAP_MAYMOVE);
	CHECK(q != MAP_FAILED && in_pool(q) && all(q, 4 * PAGE, 'b') &&
	      all(q + 4 * PAGE, 60 * PAGE, 0));
	r = mmap(NULL, 64 * PAGE, PROT_NONE, ANON, -1, 0); /* not read-write: the kernel's */
	CHECK(r != MAP_FAILED && !in_pool(r));
	CHECK(mremap(q, 64 * PAGE, 64 * PAGE, MREMAP_MAYMOVE | MREMAP_FIXED, r) == r);
	CHECK(!in_pool(r) && all(r, 4 * PAGE, 'b') && all(r + 4 * PAGE, 60 * PAGE, 0));
	CHECK(!munmap(r, 64 * PAGE));

	/* MADV_DONTNEED reads zeros; other advice is taken */
	p = map(16 * PAGE);
	memset(p, 'c', 16 * PAGE);
	CHECK(!madvise(p + 4 * PAGE, 4 * PAGE, MADV_DONTNEED));
	CHECK(all(p + 4 * PAGE, 4 * PAGE, 0) && all(p, 4 * PAGE, 'c') &&
	      all(p + 8 * PAGE, 8 * PAGE, 'c'));
	CHECK(!madvise(p, 16 * PAGE, MADV_WILLNEED) && all(p, 4 * PAGE, 'c'));
	CHECK(!madvise(p, 16 * PAGE, MADV_HUGEPAGE));

	/* mprotect: read-only faults on a write; read-write works again */
	signal(SIGSEGV, on_segv);
	CHECK(!mprotect(p, 4 * PAGE, PROT_READ));
	CHECK(p[0] == 'c' && write_faults(p + PAGE));
	CHECK(!mprotect(p, 4 * PAGE, RW));
	CHECK(!write_faults(p + PAGE) && p[PAGE] == 1);
	CHECK(!munmap(p, 16 * PAGE));

	/* the kernel's: shared, executable, stacks, fixed, files */
	p = mmap(NULL, PAGE, RW, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED && !in_pool(p) && !munmap(p, PAGE));
	p = mmap(NULL, PAGE, RW | PROT_EXEC, ANON, -1, 0);
	CHECK(p != MAP_FAILED && !in_pool(p) && !munmap(p, PAGE));
	p = mmap(NULL, PAGE, RW, ANON | MAP_STACK, -1, 0);
	CHECK(p != MAP_FAILED && !in_pool(p) && !munmap(p, PAGE));
	puts("ok");
	return 0;
}
