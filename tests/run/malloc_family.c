/* SPDX-License-Identifier: MIT */
/*
 * A program that knows nothing of samepage, run by test_run under
 * `samepage run`: every function of the malloc family keeps its contract,
 * and its blocks lie in the pool (a mapping of the pool's memfd) unless
 * they are smaller than --min-alloc (argv[1]: that size) or larger than the
 * pool (argv[2]: a size the pool cannot hold). Prints "ok" or what failed.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers.h"

static size_t min_alloc;
static volatile size_t huge = SIZE_MAX; /* not a constant: no compile-time warning */

static void where(void *p, size_t size)
{
	if (in_pool(p) != (size >= min_alloc)) {
		fprintf(stderr, "malloc_family: %zu bytes at %p: %s the pool\n", size, p,
			in_pool(p) ? "in" : "not in");
		exit(1);
	}
}

static bool all(const unsigned char *p, size_t n, unsigned char v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return false;
	return true;
}

static void *thread_alloc(void *arg)
{
	void **blocks = arg;

	for (int i = 0; i < 10000; i++) {
		blocks[i] = malloc(64 + (size_t)i % 4000);
		CHECK(blocks[i]);
		memset(blocks[i], i, 64);
	}
	return NULL;
}

static void threads(void)
{
	static void *blocks[4][10000];
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		CHECK(!pthread_create(&t[i], NULL, thread_alloc, blocks[i]));
	for (int i = 0; i < 4; i++)
		CHECK(!pthread_join(t[i], NULL));
	for (int i = 0; i < 4; i++) /* freed by another thread than their own */
		for (int j = 0; j < 10000; j++) {
			CHECK(all(blocks[i][j], 64, (unsigned char)j));
			free(blocks[i][j]);
		}
}

static void aligned(void)
{
	void *p;

	for (size_t a = sizeof(void *); a <= 65536; a *= 4) {
		CHECK(!posix_memalign(&p, a, 5000));
		CHECK((uintptr_t)p % a == 0);
		where(p, 5000);
		free(p);
	}
	CHECK(posix_memalign(&p, 3, 64) == EINVAL);
	p = aligned_alloc(256, 1024);
	CHECK(p && (uintptr_t)p % 256 == 0);
	where(p, 1024);
	free(p);
	p = memalign(128, 10);
	CHECK(p && (uintptr_t)p % 128 == 0);
	free(p);
	p = valloc(10);
	CHECK(p && (uintptr_t)p % 4096 == 0);
	free(p);
	p = pvalloc(1);
	CHECK(p && (uintptr_t)p % 4096 == 0 && malloc_usable_size(p) >= 4096);
	free(p);
}

static void resize(void)
{
	unsigned char *p = malloc(64), *q;

	memset(p, 0x5a, 64);
	q = realloc(p, 1 << 20); /* grows: moves, keeps its bytes */
	CHECK(q && all(q, 64, 0x5a));
	where(q, 1 << 20);
	memset(q, 0x33, 1 << 20);
	p = realloc(q, 10); /* shrinks */
	CHECK(p && all(p, 10, 0x33));
	CHECK(realloc(p, 0) == NULL); /* frees, as glibc's does */
	p = realloc(NULL, 5000);
	CHECK(p && malloc_usable_size(p) >= 5000);
	free(p);
	errno = 0;
	CHECK(!reallocarray(NULL, huge, 2) && errno == ENOMEM);
	errno = 0;
	CHECK(!malloc(huge) && errno == ENOMEM);
	CHECK(malloc_usable_size(NULL) == 0);
}

int main(int argc, char **argv)
{
	size_t big = argc > 2 ? strtoull(argv[2], NULL, 0) : 0;
	unsigned char *p;
	char *s;

	min_alloc = argc > 1 ? strtoull(argv[1], NULL, 0) : 0;
	p = malloc(100);
	CHECK(p);
	where(p, 100);
	free(p);
	p = malloc(300000);
	where(p, 300000);
	memset(p, 0xff, 300000);
	free(p);
	p = calloc(1000, 300); /* may reuse the block just freed: zeros all the same */
	CHECK(p && all(p, 300000, 0));
	where(p, 300000);
	free(p);
	CHECK(!calloc(huge / 2, 4));
	s = strdup("glibc calls our malloc too"); /* freed by free, below */
	where(s, 27);
	free(s);
	aligned();
	resize();
	threads();
	if (big) { /* more than the pool holds: glibc serves it */
		p = malloc(big);
		CHECK(p && !in_pool(p));
		p[0] = p[big - 1] = 1;
		free(p);
	}
	puts("ok");
	return 0;
}
