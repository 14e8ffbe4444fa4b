/* SPDX-License-Identifier: MIT */
/*
 * bench_gup: what declaring a pin costs, so that a program can wrap every
 * O_DIRECT call in sp_pin/sp_unpin (target: under 100 ns a pair).
 *
 * One sp_pin/sp_unpin pair on a 64 KiB buffer (16 pages, at an offset that
 * straddles a word of pin counts), in a loop of ITERS pairs per round; ns per
 * pair, min/median/max over rounds. No mover runs meanwhile: this is the
 * fast path every call takes when nothing moves.
 *
 * Time is the thread's CPU time, not the wall clock: on a shared machine the
 * wall clock also counts the time other processes hold the CPU, which is
 * not what a pin costs. For scale, one uncontended compare-and-swap is
 * timed the same way.
 *
 * Only the public API (samepage.h) and libc are used.
 */
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "samepage.h"

#define PROG "bench_gup"
#define USAGE "usage: " PROG " [--json] [--rounds N]"
#define BUF (64 << 10)
#define ITERS 200000
#define DEF_ROUNDS 11U

/* This thread's CPU time, in seconds. */
static double cpu_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ns per pin/unpin pair of the 64 KiB at buf, over ITERS pairs. */
static double pair_ns(sp_pool *pool, char *buf)
{
	double t0 = cpu_now();

	for (int i = 0; i < ITERS; i++)
		if (sp_pin(pool, buf, BUF) || sp_unpin(pool, buf, BUF))
			die("sp_pin/sp_unpin");
	return (cpu_now() - t0) * 1e9 / ITERS;
}

/* ns per compare-and-swap, for scale. */
static double cas_ns(void)
{
	static _Atomic unsigned long w;
	double t0 = cpu_now();

	for (int i = 0; i < ITERS; i++) {
		unsigned long old = atomic_load(&w);

		atomic_compare_exchange_strong(&w, &old, old + 1);
	}
	return (cpu_now() - t0) * 1e9 / ITERS;
}

int main(int argc, char **argv)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 2,
				      .flags = SP_POOL_NO_KSMD };
	double al[BENCH_MAX_ROUNDS], st[BENCH_MAX_ROUNDS], cas[BENCH_MAX_ROUNDS];
	unsigned rounds = DEF_ROUNDS;
	bool json = false;
	struct spread a, s, c;
	sp_pool *pool;
	char *buf;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json")) {
			json = true;
		} else if (!strcmp(argv[i], "--rounds")) {
			rounds = (unsigned)arg_num("--rounds", argv[i + 1], 1, BENCH_MAX_ROUNDS);
			i++;
		} else {
			fprintf(stderr, "%s\n", USAGE);
			return 2;
		}
	}
	pool = sp_pool_create(&cfg);
	if (!pool)
		die("sp_pool_create");
	buf = sp_alloc(pool, 4 * BUF, 0);
	if (!buf)
		die("sp_alloc");
	memset(buf, 1, 4 * BUF);
	for (unsigned r = 0; r <= rounds; r++) {
		/* Aligned to 32 KiB: two words of counts; 12 KiB in: three. */
		double x = pair_ns(pool, buf), y = pair_ns(pool, buf + 3 * SP_PAGE_SIZE);
		double z = cas_ns();

		if (r) { /* round 0 warms up */
			al[r - 1] = x;
			st[r - 1] = y;
			cas[r - 1] = z;
		}
	}
	a = spread_of(al, rounds);
	s = spread_of(st, rounds);
	c = spread_of(cas, rounds);
	if (json) {
		printf("{");
		json_spread("pin_unpin_64k_ns", a, "%.1f");
		printf(", ");
		json_spread("pin_unpin_64k_straddling_ns", s, "%.1f");
		printf(", ");
		json_spread("cas_ns", c, "%.1f");
		printf("}\n");
	} else {
		printf("sp_pin+sp_unpin, 64 KiB: %.1f ns a pair (median of %u rounds; min %.1f, max %.1f; target < 100)\n",
		       a.med, a.n, a.min, a.max);
		printf("  straddling a third word of counts: %.1f ns (min %.1f, max %.1f)\n", s.med,
		       s.min, s.max);
		printf("  for scale, one compare-and-swap: %.1f ns\n", c.med);
	}
	sp_pool_destroy(pool);
	return 0;
}
