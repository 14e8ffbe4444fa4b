/* SPDX-License-Identifier: MIT */
/*
 * bench_region: what a samepage region costs against plain anonymous memory.
 *
 * 1. First touch: one byte written to each page of a fresh sp_alloc() region
 *    and of a fresh mmap(MAP_PRIVATE | MAP_ANONYMOUS), us per page.
 * 2. SP_POPULATE: sp_alloc() with every frame backed, us per page, then the
 *    same first-touch loop over the populated region.
 * 3. Read and write bandwidth of touched memory: a uint64_t sum and memset().
 *
 * The machine is shared and noisy, so the two sides are interleaved in every
 * round (the side that goes first alternates) and medians are reported.
 *
 * Where the machine is a VM, memory the guest has not touched since boot costs
 * a host fault too (several us per page) and reads at a different speed from
 * memory it has. So the bandwidth buffers are touched chunk by chunk in turn,
 * to give both sides the same mix of memory, and one warm-up round, not
 * counted, takes the host faults before first touch is measured.
 *
 * Only the public API (samepage.h) and libc are used.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "bench.h"
#include "samepage.h"

#define PROG "bench_region"
#define USAGE "usage: " PROG " [--json] [--size MiB] [--rounds N]"
#define MIB (1UL << 20)
#define SECTION_SIZE (64 * MIB)
#define MIN_SECTIONS 16
#define DEF_SIZE_MIB 256UL
#define MAX_SIZE_MIB 4096UL
#define MAX_FT_MIB 64UL
#define DEF_ROUNDS 5U
#define MAX_ROUNDS 99U
#define BW_PASSES 4
#define TOUCH_CHUNK (2 * MIB)
#define FT_TARGET 2.0
#define BW_TARGET 0.95

enum metric {
	FT_POOL,
	FT_PLAIN,
	POPULATE,
	POP_TOUCH,
	RD_POOL,
	RD_PLAIN,
	WR_POOL,
	WR_PLAIN,
	NR_METRICS,
};

struct opts {
	bool json;
	unsigned long size_mib; /* bandwidth buffers */
	unsigned rounds;
};

struct bench {
	struct opts o;
	sp_pool *pool;
	long fault_mode;
	size_t bw_len; /* bandwidth buffers, each side */
	size_t ft_len; /* first-touch regions */
	char *bw_pool;
	char *bw_plain;
	double s[NR_METRICS][MAX_ROUNDS + 1]; /* one sample per round, the warm-up last */
	double med[NR_METRICS];
};

static volatile uint64_t sink;

static void bad_arg(const char *what, const char *arg)
{
	fprintf(stderr, PROG ": %s '%s' (" USAGE ")\n", what, arg ? arg : "");
	exit(2);
}

/* A samepage call (or the mmap beside it) failed: say which, and why. */
static void die_call(const char *call)
{
	fprintf(stderr, PROG ": %s: %s\n", call, strerror(errno));
	exit(1);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	o->json = false;
	o->size_mib = DEF_SIZE_MIB;
	o->rounds = DEF_ROUNDS;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json")) {
			o->json = true;
		} else if (!strcmp(a, "--size")) {
			o->size_mib = arg_num("--size", argv[++i], 1, MAX_SIZE_MIB);
		} else if (!strcmp(a, "--rounds")) {
			o->rounds = (unsigned)arg_num("--rounds", argv[++i], 1, MAX_ROUNDS);
		} else if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
			printf(USAGE
			       "\n  --size MiB  bandwidth buffers (default %lu, at most %lu);"
			       " first-touch regions are a quarter of it, at most %lu MiB\n"
			       "  --rounds N  rounds, medians reported (default %u, at most %u)\n",
			       DEF_SIZE_MIB, MAX_SIZE_MIB, MAX_FT_MIB, DEF_ROUNDS, MAX_ROUNDS);
			exit(0);
		} else {
			bad_arg("unknown argument", a);
		}
	}
}

/* pool/plain of one pair of metrics in every round: min, median, max. */
static struct spread ratio_spread(const struct bench *b, enum metric pool, enum metric plain)
{
	double v[MAX_ROUNDS];

	for (unsigned r = 0; r < b->o.rounds; r++)
		v[r] = ratio_of(b->s[pool][r], b->s[plain][r]);
	return spread_of(v, b->o.rounds);
}

static double pages(size_t len)
{
	return (double)(len / SP_PAGE_SIZE);
}

/* Write one byte to each page; seconds taken. */
static double touch_pages(char *p, size_t len)
{
	volatile char *v = p;
	double t0 = now();

	for (size_t off = 0; off < len; off += SP_PAGE_SIZE)
		v[off] = 1;
	return now() - t0;
}

static char *plain_map(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		die_call("mmap(MAP_PRIVATE | MAP_ANONYMOUS)");
	return p;
}

static char *pool_alloc(struct bench *b, size_t len, unsigned flags)
{
	char *p = sp_alloc(b->pool, len, flags);

	if (!p)
		die_call(flags & SP_POPULATE ? "sp_alloc(pool, len, SP_POPULATE)" :
					       "sp_alloc(pool, len, 0)");
	return p;
}

static void pool_free(struct bench *b, void *p)
{
	if (sp_free(b->pool, p))
		die_call("sp_free(pool, addr)");
}

static double first_touch_pool(struct bench *b)
{
	char *p = pool_alloc(b, b->ft_len, 0);
	double t = touch_pages(p, b->ft_len);

	pool_free(b, p);
	return t * 1e6 / pages(b->ft_len);
}

static double first_touch_plain(struct bench *b)
{
	char *p = plain_map(b->ft_len);
	double t = touch_pages(p, b->ft_len);

	if (munmap(p, b->ft_len))
		die_call("munmap");
	return t * 1e6 / pages(b->ft_len);
}

static void populate_round(struct bench *b, unsigned r)
{
	double t0 = now(), t;
	char *p = pool_alloc(b, b->ft_len, SP_POPULATE);

	t = now() - t0;
	b->s[POPULATE][r] = t * 1e6 / pages(b->ft_len);
	b->s[POP_TOUCH][r] = touch_pages(p, b->ft_len) * 1e6 / pages(b->ft_len);
	pool_free(b, p);
}

/* GB/s (1e9 bytes) of BW_PASSES memset()s. */
static double write_gbs(char *p, size_t len)
{
	double t0 = now();

	for (int pass = 0; pass < BW_PASSES; pass++)
		memset(p, 0x11 * (pass + 1), len);
	return (double)len * BW_PASSES / (now() - t0) / 1e9;
}

/* GB/s (1e9 bytes) of BW_PASSES sums over uint64_t words. */
static double read_gbs(const char *p, size_t len)
{
	const uint64_t *w = (const uint64_t *)p;
	size_t n = len / sizeof(*w);
	uint64_t sum = 0;
	double t0 = now();

	for (int pass = 0; pass < BW_PASSES; pass++)
		for (size_t i = 0; i < n; i++)
			sum += w[i];
	sink = sum;
	return (double)len * BW_PASSES / (now() - t0) / 1e9;
}

/* One round: each pair measured back to back, the first side alternating. */
static void run_round(struct bench *b, unsigned r)
{
	bool pool_first = !(r % 2);

	for (int k = 0; k < 2; k++) {
		if ((k == 0) == pool_first) {
			b->s[FT_POOL][r] = first_touch_pool(b);
			b->s[WR_POOL][r] = write_gbs(b->bw_pool, b->bw_len);
			b->s[RD_POOL][r] = read_gbs(b->bw_pool, b->bw_len);
		} else {
			b->s[FT_PLAIN][r] = first_touch_plain(b);
			b->s[WR_PLAIN][r] = write_gbs(b->bw_plain, b->bw_len);
			b->s[RD_PLAIN][r] = read_gbs(b->bw_plain, b->bw_len);
		}
	}
	populate_round(b, r);
}

/* Both buffers touched in TOUCH_CHUNK pieces, in turn: the same mix of memory each. */
static void touch_both(char *a, char *b, size_t len)
{
	for (size_t off = 0; off < len; off += TOUCH_CHUNK) {
		size_t n = len - off < TOUCH_CHUNK ? len - off : TOUCH_CHUNK;

		memset(a + off, 1, n);
		memset(b + off, 1, n);
	}
}

static void setup(struct bench *b)
{
	struct sp_pool_config cfg = { .section_size = SECTION_SIZE };
	size_t need;

	b->bw_len = b->o.size_mib * MIB;
	b->ft_len = (b->o.size_mib / 4 ? b->o.size_mib / 4 : 1) * MIB;
	if (b->ft_len > MAX_FT_MIB * MIB)
		b->ft_len = MAX_FT_MIB * MIB;
	/* Live at once: the bandwidth region and one first-touch region; one spare. */
	need = (b->bw_len + b->ft_len + SECTION_SIZE - 1) / SECTION_SIZE + 1;
	cfg.nr_sections = need > MIN_SECTIONS ? (unsigned)need : MIN_SECTIONS;

	b->pool = sp_pool_create(&cfg);
	if (!b->pool)
		die_call("sp_pool_create(64 MiB sections)");
	if (sp_stat(b->pool, "fault_mode", &b->fault_mode))
		die_call("sp_stat(pool, \"fault_mode\")");
	b->bw_pool = pool_alloc(b, b->bw_len, 0);
	b->bw_plain = plain_map(b->bw_len);
	touch_both(b->bw_pool, b->bw_plain, b->bw_len);
	run_round(b, MAX_ROUNDS); /* warm-up, not counted */
}

static void teardown(struct bench *b)
{
	pool_free(b, b->bw_pool);
	if (munmap(b->bw_plain, b->bw_len))
		die_call("munmap");
	sp_pool_destroy(b->pool);
}

static const char *mode_name(long mode)
{
	if (mode == SP_FAULT_UFFD)
		return "userfaultfd";
	if (mode == SP_FAULT_SIGSEGV)
		return "sigsegv";
	return "unknown";
}

static void print_json(const struct bench *b)
{
	const double *m = b->med;
	char date[40];

	printf("{\"fault_mode\": %ld, \"fault_mode_name\": \"%s\", \"rounds\": %u, "
	       "\"first_touch_mib\": %zu, \"bandwidth_mib\": %zu, ",
	       b->fault_mode, mode_name(b->fault_mode), b->o.rounds, b->ft_len / MIB,
	       b->bw_len / MIB);
	printf("\"first_touch_pool_us\": %.4f, \"first_touch_plain_us\": %.4f, "
	       "\"first_touch_ratio\": %.3f, \"populate_us\": %.4f, "
	       "\"touch_after_populate_us\": %.4f, ",
	       m[FT_POOL], m[FT_PLAIN], m[FT_POOL] / m[FT_PLAIN], m[POPULATE], m[POP_TOUCH]);
	printf("\"read_pool_gbs\": %.3f, \"read_plain_gbs\": %.3f, \"read_ratio\": %.3f, "
	       "\"write_pool_gbs\": %.3f, \"write_plain_gbs\": %.3f, \"write_ratio\": %.3f, ",
	       m[RD_POOL], m[RD_PLAIN], m[RD_POOL] / m[RD_PLAIN], m[WR_POOL], m[WR_PLAIN],
	       m[WR_POOL] / m[WR_PLAIN]);
	/* The ratios above are of the medians; these are of each round's pair. */
	printf("\"date\": \"%s\", \"ratios\": {", iso_date(date, sizeof(date)));
	json_spread("first_touch", ratio_spread(b, FT_POOL, FT_PLAIN), "%.3f");
	printf(", ");
	json_spread("read", ratio_spread(b, RD_POOL, RD_PLAIN), "%.3f");
	printf(", ");
	json_spread("write", ratio_spread(b, WR_POOL, WR_PLAIN), "%.3f");
	printf("}}\n");
}

static void print_row(const struct bench *b, const char *name, enum metric pool, enum metric plain,
		      bool le, double target)
{
	struct spread r = ratio_spread(b, pool, plain);
	bool ok = le ? r.med <= target : r.med >= target;
	char spread[64];

	printf("%-24s %10.3f %10.3f   %-22s %s %.2f  %s\n", name, b->med[pool], b->med[plain],
	       spread_str(spread, sizeof(spread), r, "%.3f"), le ? "<=" : ">=", target,
	       ok ? "ok" : "MISSED");
}

static void print_table(const struct bench *b)
{
	const double *m = b->med;

	printf("samepage region bench: fault_mode %ld (%s), medians of %u rounds; ratios per round\n",
	       b->fault_mode, mode_name(b->fault_mode), b->o.rounds);
	printf("first touch on %zu MiB regions, bandwidth on %zu MiB buffers x %d passes\n\n",
	       b->ft_len / MIB, b->bw_len / MIB, BW_PASSES);
	printf("%-24s %10s %10s   %-22s %s\n", "", "pool", "plain", "pool/plain [min - max]",
	       "target");
	print_row(b, "first touch (us/page)", FT_POOL, FT_PLAIN, true, FT_TARGET);
	print_row(b, "read (GB/s)", RD_POOL, RD_PLAIN, false, BW_TARGET);
	print_row(b, "write (GB/s)", WR_POOL, WR_PLAIN, false, BW_TARGET);
	printf("\nSP_POPULATE (us/page): sp_alloc+populate %.3f, touch afterwards %.3f"
	       " (eager %.3f vs first touch %.3f)\n",
	       m[POPULATE], m[POP_TOUCH], m[POPULATE] + m[POP_TOUCH], m[FT_POOL]);
}

int main(int argc, char **argv)
{
	static struct bench b;

	parse_args(argc, argv, &b.o);
	setup(&b);
	for (unsigned r = 0; r < b.o.rounds; r++)
		run_round(&b, r);
	for (int k = 0; k < NR_METRICS; k++)
		b.med[k] = median_of(b.s[k], b.o.rounds);
	teardown(&b);
	if (b.o.json)
		print_json(&b);
	else
		print_table(&b);
	return 0;
}
