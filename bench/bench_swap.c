/* SPDX-License-Identifier: MIT */
/*
 * bench_swap: swap-out and swap-in throughput of a pool region against a
 * plain pwrite/pread of the same bytes to a file in the same directory, in
 * the same run (target: at least 0.7x).
 *
 *   bench_swap [--size MiB] [--dir DIR] [--rounds N] [--json]
 *
 * Only the public API (samepage.h) and libc are used.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what)
{
	fprintf(stderr, "bench_swap: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void fill(char *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)p)[i] = (seed + i) * 0x9E3779B97F4A7C15ull;
}

/* Plain I/O of the same bytes: the baseline. */
static void plain(const char *dir, char *buf, size_t len, double *out_s, double *in_s)
{
	char path[512];
	int fd;

	snprintf(path, sizeof(path), "%s/bench_swap_plain.%d", dir, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	if (fd < 0)
		die(path);
	*out_s = now();
	for (size_t off = 0; off < len; off += SP_PAGE_SIZE)
		if (pwrite(fd, buf + off, SP_PAGE_SIZE, (off_t)off) != SP_PAGE_SIZE)
			die("pwrite");
	*out_s = now() - *out_s;
	*in_s = now();
	for (size_t off = 0; off < len; off += SP_PAGE_SIZE)
		if (pread(fd, buf + off, SP_PAGE_SIZE, (off_t)off) != SP_PAGE_SIZE)
			die("pread");
	*in_s = now() - *in_s;
	close(fd);
	unlink(path);
}

static void pooled(const char *dir, size_t len, double *out_s, double *in_s)
{
	char path[512];
	struct sp_pool_config cfg = { .section_size = 64 << 20,
				      .nr_sections = (unsigned)(len / (64 << 20) + 1),
				      .swap_path = path,
				      .swap_size = len,
				      .flags = SP_POOL_NO_KSMD };
	volatile uint64_t sink = 0;
	sp_pool *pool;
	char *r;

	snprintf(path, sizeof(path), "%s/bench_swap_pool.%d", dir, getpid());
	pool = sp_pool_create(&cfg);
	if (!pool)
		die("sp_pool_create");
	r = sp_alloc(pool, len, 0);
	if (!r)
		die("sp_alloc");
	fill(r, len, 7);
	*out_s = now();
	if (sp_swap_out(pool, r, len))
		die("sp_swap_out");
	*out_s = now() - *out_s;
	*in_s = now();
	for (size_t off = 0; off < len; off += SP_PAGE_SIZE)
		sink += *(volatile uint64_t *)(r + off);
	*in_s = now() - *in_s;
	(void)sink;
	sp_pool_destroy(pool);
}

int main(int argc, char **argv)
{
	unsigned long mib = 64, rounds = 3;
	const char *dir = "/tmp";
	double po = 1e9, pi = 1e9, so = 1e9, si = 1e9;
	int json = 0;
	char *buf;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			mib = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else {
			fprintf(stderr, "usage: bench_swap [--size MiB] [--dir DIR] [--rounds N] "
					"[--json]\n");
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}
	if (!mib || mib > 4096 || !rounds || rounds > 20) {
		fprintf(stderr, "bench_swap: --size 1-4096, --rounds 1-20\n");
		return 2;
	}
	buf = malloc(mib << 20);
	if (!buf)
		die("malloc");
	fill(buf, mib << 20, 7);
	for (unsigned long k = 0; k < rounds; k++) { /* best of each, interleaved */
		double a, b;

		plain(dir, buf, mib << 20, &a, &b);
		po = a < po ? a : po;
		pi = b < pi ? b : pi;
		pooled(dir, mib << 20, &a, &b);
		so = a < so ? a : so;
		si = b < si ? b : si;
	}
	free(buf);
	if (json) {
		printf("{\"mib\": %lu, \"swap_out_mibs\": %.0f, \"pwrite_mibs\": %.0f, "
		       "\"out_ratio\": %.2f, \"swap_in_mibs\": %.0f, \"pread_mibs\": %.0f, "
		       "\"in_ratio\": %.2f}\n",
		       mib, mib / so, mib / po, po / so, mib / si, mib / pi, pi / si);
		return 0;
	}
	printf("swap of %lu MiB in %s, best of %lu interleaved rounds (target >= 0.7x)\n", mib, dir,
	       rounds);
	printf("  out: sp_swap_out %7.0f MiB/s   pwrite %7.0f MiB/s   ratio %.2f\n", mib / so,
	       mib / po, po / so);
	printf("  in:  on access   %7.0f MiB/s   pread  %7.0f MiB/s   ratio %.2f\n", mib / si,
	       mib / pi, pi / si);
	return 0;
}
