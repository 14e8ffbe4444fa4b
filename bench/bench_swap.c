/* SPDX-License-Identifier: MIT */
/*
 * bench_swap: swap-out and swap-in throughput of a pool region against a
 * plain pwrite/pread of the same bytes to a file in the same directory, in
 * the same run (target: at least 0.7x); then a working set 1.5 times the
 * pool running through reclaim, against the same workload in a pool big
 * enough for it, in the same run (its slowdown).
 *
 *   bench_swap [--size MiB] [--pool MiB] [--dir DIR] [--rounds N] [--json]
 *
 * The working set: regions of 1.5x --pool MiB written in order; then 4M
 * (scaled to the size) touches, 90% of them to a hot third of the pages and
 * 10% anywhere, each reading a page and writing a word of it; then every
 * page read back and checked. Also the time of a random swap-in fault
 * (one page: random faults get no read-ahead).
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

#include "bench.h"
#include "samepage.h"

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

/*
 * A pool with len bytes of swap and a region of len bytes in it, filled and
 * then swapped out; the seconds the swap-out took in *out_s. The swap file
 * is dir/bench_swap_TAG.PID.
 */
static char *swapped_region(const char *dir, const char *tag, size_t len, sp_pool **pool,
			    double *out_s)
{
	static char path[512];
	struct sp_pool_config cfg = { .section_size = 64 << 20,
				      .nr_sections = (unsigned)(len / (64 << 20) + 1),
				      .swap_path = path,
				      .swap_size = len,
				      .flags = SP_POOL_NO_KSMD };
	char *r;

	snprintf(path, sizeof(path), "%s/bench_swap_%s.%d", dir, tag, getpid());
	*pool = sp_pool_create(&cfg);
	if (!*pool)
		die("sp_pool_create");
	r = sp_alloc(*pool, len, 0);
	if (!r)
		die("sp_alloc");
	fill(r, len, 7);
	*out_s = now();
	if (sp_swap_out(*pool, r, len))
		die("sp_swap_out");
	*out_s = now() - *out_s;
	return r;
}

static void pooled(const char *dir, size_t len, double *out_s, double *in_s)
{
	volatile uint64_t sink = 0;
	sp_pool *pool;
	char *r = swapped_region(dir, "pool", len, &pool, out_s);

	*in_s = now();
	for (size_t off = 0; off < len; off += SP_PAGE_SIZE)
		sink += *(volatile uint64_t *)(r + off);
	*in_s = now() - *in_s;
	(void)sink;
	sp_pool_destroy(pool);
}

/* Random touches of a swapped-out region: microseconds per swap-in fault. */
static double random_swapin_us(const char *dir, size_t len)
{
	uint64_t x = 88172645463325252ull, sink = 0;
	size_t pages = len / SP_PAGE_SIZE, n = 2000;
	long faults;
	sp_pool *pool;
	double t;
	char *r = swapped_region(dir, "rand", len, &pool, &t);

	t = now();
	for (size_t i = 0; i < n; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		sink += *(volatile uint64_t *)(r + (x >> 20) % pages * SP_PAGE_SIZE);
	}
	t = now() - t;
	sp_stat(pool, "faults_swapin", &faults);
	(void)sink;
	sp_pool_destroy(pool);
	return t / (double)(faults ? faults : 1) * 1e6;
}

/* The working set's run: seconds of each phase; bad pages counted. */
struct ws_result {
	double write_s, touch_s, check_s;
	long bad, reclaimed, swapped_in, direct;
};

static uint64_t ws_word(size_t page, unsigned gen)
{
	return (page + 1) * 0x9E3779B97F4A7C15ull + gen;
}

static void working_set(const char *dir, size_t pool_mib, size_t ws_mib, struct ws_result *res)
{
	const size_t sec = 16 << 20, pages = (ws_mib << 20) / SP_PAGE_SIZE;
	const size_t per = 4096, nr = (pages + per - 1) / per; /* 16 MiB regions */
	struct sp_pool_config cfg = { .section_size = sec,
				      .nr_sections = (unsigned)((pool_mib << 20) / sec),
				      .swap_size = (ws_mib << 20) + (16 << 20),
				      .flags = SP_POOL_NO_KSMD };
	unsigned *gen = calloc(pages, sizeof(*gen));
	char **r = calloc(nr, sizeof(*r)), path[512];
	uint64_t x = 88172645463325252ull;
	size_t touches = pages * 32;
	sp_pool *pool;
	double t;

	snprintf(path, sizeof(path), "%s/bench_swap_ws.%d", dir, getpid());
	cfg.swap_path = path;
	pool = sp_pool_create(&cfg);
	if (!pool || !gen || !r)
		die("working set pool");
	for (size_t k = 0; k < nr; k++)
		if (!(r[k] = sp_alloc(pool, per * SP_PAGE_SIZE, 0)))
			die("sp_alloc (working set)");
#define WS_PAGE(i) (r[(i) / per] + ((i) % per) * SP_PAGE_SIZE)
	t = now();
	for (size_t i = 0; i < pages; i++) {
		fill(WS_PAGE(i), SP_PAGE_SIZE, ws_word(i, 0));
		*(uint64_t *)WS_PAGE(i) = ws_word(i, 0);
	}
	res->write_s = now() - t;
	t = now();
	for (size_t n = 0; n < touches; n++) {
		size_t i;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		i = (x >> 8) % 10 ? (x >> 20) % (pages / 3) : (x >> 20) % pages;
		if (*(volatile uint64_t *)WS_PAGE(i) != ws_word(i, gen[i]))
			res->bad++;
		/* The first word carries the generation; the rest stay as filled. */
		*(uint64_t *)WS_PAGE(i) = ws_word(i, ++gen[i]);
	}
	res->touch_s = now() - t;
	t = now();
	for (size_t i = 0; i < pages; i++) {
		uint64_t *w = (uint64_t *)WS_PAGE(i);

		res->bad += w[0] != ws_word(i, gen[i]);
		for (size_t j = 1; j < SP_PAGE_SIZE / 8; j++)
			res->bad += w[j] != (ws_word(i, 0) + j) * 0x9E3779B97F4A7C15ull;
	}
	res->check_s = now() - t;
#undef WS_PAGE
	sp_stat(pool, "reclaim_pages", &res->reclaimed);
	sp_stat(pool, "faults_swapin", &res->swapped_in);
	sp_stat(pool, "reclaim_direct", &res->direct);
	sp_pool_destroy(pool);
	free(gen);
	free(r);
}

static double ws_total(const struct ws_result *w)
{
	return w->write_s + w->touch_s + w->check_s;
}

static struct ws_result ws_tight, ws_roomy;
static double rand_us = 1e9;

/* t: best pwrite, pread, swap-out, swap-in seconds. */
static int report(int json, unsigned long mib, size_t pool_mib, size_t ws_mib, unsigned long rounds,
		  const char *dir, const double *t)
{
	const struct ws_result *w = &ws_tight, *o = &ws_roomy;

	if (json) {
		printf("{\"mib\": %lu, \"swap_out_mibs\": %.0f, \"pwrite_mibs\": %.0f, "
		       "\"out_ratio\": %.2f, \"swap_in_mibs\": %.0f, \"pread_mibs\": %.0f, "
		       "\"in_ratio\": %.2f, \"ws_pool_mib\": %zu, \"ws_mib\": %zu, "
		       "\"ws_slowdown\": %.2f, \"ws_touch_slowdown\": %.2f, "
		       "\"ws_reclaimed\": %ld, \"ws_swapped_in\": %ld, \"random_swapin_us\": %.1f}\n",
		       mib, mib / t[2], mib / t[0], t[0] / t[2], mib / t[3], mib / t[1],
		       t[1] / t[3], pool_mib, ws_mib, ws_total(w) / ws_total(o),
		       w->touch_s / o->touch_s, w->reclaimed, w->swapped_in, rand_us);
		return 0;
	}
	printf("swap of %lu MiB in %s, best of %lu interleaved rounds (target >= 0.7x)\n", mib, dir,
	       rounds);
	printf("  out: sp_swap_out %7.0f MiB/s   pwrite %7.0f MiB/s   ratio %.2f\n", mib / t[2],
	       mib / t[0], t[0] / t[2]);
	printf("  in:  on access   %7.0f MiB/s   pread  %7.0f MiB/s   ratio %.2f\n", mib / t[3],
	       mib / t[1], t[1] / t[3]);
	printf("  random swap-in (one page, no read-ahead): %.1f us per fault\n", rand_us);
	printf("working set of %zu MiB: in a %zu MiB pool (through reclaim) / in a %zu MiB pool\n",
	       ws_mib, pool_mib, 2 * pool_mib);
	printf("  write all   %6.3f s / %6.3f s   %5.2fx\n", w->write_s, o->write_s,
	       w->write_s / o->write_s);
	printf("  90/10 touch %6.3f s / %6.3f s   %5.2fx\n", w->touch_s, o->touch_s,
	       w->touch_s / o->touch_s);
	printf("  read all    %6.3f s / %6.3f s   %5.2fx\n", w->check_s, o->check_s,
	       w->check_s / o->check_s);
	printf("  in all      %6.3f s / %6.3f s   %5.2fx slowdown; %ld pages reclaimed, %ld "
	       "swapped in, %ld direct reclaims, every byte checked\n",
	       ws_total(w), ws_total(o), ws_total(w) / ws_total(o), w->reclaimed, w->swapped_in,
	       w->direct);
	return 0;
}

int main(int argc, char **argv)
{
	unsigned long mib = 64, rounds = 3, pool_mib = 64, ws_mib;
	const char *dir = "/tmp";
	double po = 1e9, pi = 1e9, so = 1e9, si = 1e9;
	int json = 0;
	char *buf;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json"))
			json = 1;
		else if (!strcmp(argv[i], "--size") && i + 1 < argc)
			mib = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--pool") && i + 1 < argc)
			pool_mib = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--rounds") && i + 1 < argc)
			rounds = strtoul(argv[++i], NULL, 10);
		else if (!strcmp(argv[i], "--dir") && i + 1 < argc)
			dir = argv[++i];
		else {
			fprintf(stderr, "usage: bench_swap [--size MiB] [--pool MiB] [--dir DIR] "
					"[--rounds N] [--json]\n");
			return strcmp(argv[i], "--help") ? 2 : 0;
		}
	}
	if (!mib || mib > 4096 || !rounds || rounds > 20 || pool_mib < 32 || pool_mib > 4096 ||
	    pool_mib % 32) {
		fprintf(stderr, "bench_swap: --size 1-4096, --pool 32-4096 in steps of 32, "
				"--rounds 1-20\n");
		return 2;
	}
	buf = malloc(mib << 20);
	if (!buf)
		die("malloc");
	fill(buf, mib << 20, 7);
	ws_mib = pool_mib * 3 / 2;
	for (unsigned long k = 0; k < rounds; k++) { /* best of each, interleaved */
		struct ws_result tight = { 0 }, roomy = { 0 };
		double a, b;

		plain(dir, buf, mib << 20, &a, &b);
		po = a < po ? a : po;
		pi = b < pi ? b : pi;
		pooled(dir, mib << 20, &a, &b);
		so = a < so ? a : so;
		si = b < si ? b : si;
		a = random_swapin_us(dir, mib << 20);
		rand_us = a < rand_us ? a : rand_us;
		/* The same workload with room for it, and in a pool of 2/3 of it. */
		working_set(dir, 2 * pool_mib, ws_mib, &roomy);
		working_set(dir, pool_mib, ws_mib, &tight);
		if (tight.bad || roomy.bad) {
			fprintf(stderr, "bench_swap: %ld wrong pages in the working set\n",
				tight.bad + roomy.bad);
			return 1;
		}
		if (!k || tight.write_s + tight.touch_s + tight.check_s <
				  ws_tight.write_s + ws_tight.touch_s + ws_tight.check_s)
			ws_tight = tight;
		if (!k || roomy.write_s + roomy.touch_s + roomy.check_s <
				  ws_roomy.write_s + ws_roomy.touch_s + ws_roomy.check_s)
			ws_roomy = roomy;
	}
	free(buf);
	return report(json, mib, pool_mib, ws_mib, rounds, dir, (double[]){ po, pi, so, si });
}
