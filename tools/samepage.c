/* SPDX-License-Identifier: MIT */
/*
 * samepage: the command-line face of libsamepage.
 *
 *   samepage demo [--size MiB] [--threads N]
 *
 * The demo creates a pool, lets several threads fill regions of it with known
 * content (half of it duplicate pages, a tenth zeros), checks every byte,
 * and prints the pool's figures before and after. It exits 0 only if every
 * byte read back as written.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "samepage.h"

struct tenant {
	sp_pool *pool;
	int id;
	size_t len;
	char *mem;
	long bad_pages;
	int err;
};

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Page i of tenant t: zeros, a content every tenant has, or its own. */
static uint64_t page_word(int t, size_t i, int j)
{
	if (i % 10 == 0)
		return 0;
	if (i % 2)
		return mix(i * 512 + (uint64_t)j);
	return mix(((uint64_t)t << 40) + i * 512 + (uint64_t)j);
}

static void *tenant_main(void *arg)
{
	struct tenant *t = arg;
	size_t pages = t->len / SP_PAGE_SIZE;

	t->mem = sp_alloc(t->pool, t->len, SP_MERGEABLE);
	if (!t->mem) {
		t->err = errno;
		return NULL;
	}
	for (size_t i = 0; i < pages; i++) {
		uint64_t *w = (uint64_t *)(t->mem + i * SP_PAGE_SIZE);

		for (int j = 0; j < 512; j++)
			w[j] = page_word(t->id, i, j);
	}
	for (size_t i = 0; i < pages; i++) {
		uint64_t *w = (uint64_t *)(t->mem + i * SP_PAGE_SIZE);

		for (int j = 0; j < 512; j++) {
			if (w[j] != page_word(t->id, i, j)) {
				t->bad_pages++;
				break;
			}
		}
	}
	return NULL;
}

static void print_figures(sp_pool *pool, const char *when)
{
	static const char *const show[] = { "frames_total",   "frames_used", "frames_free",
					    "bytes_resident", "frames_ksm",  "sections_online",
					    "fault_mode" };
	long v;

	printf("%s:\n", when);
	for (unsigned i = 0; i < sizeof(show) / sizeof(show[0]); i++) {
		if (sp_stat(pool, show[i], &v))
			continue;
		if (!strcmp(show[i], "bytes_resident"))
			printf("  %-16s %ld (%.1f MiB)\n", show[i], v, v / 1048576.0);
		else if (!strcmp(show[i], "fault_mode"))
			printf("  %-16s %ld (%s)\n", show[i], v,
			       v == SP_FAULT_UFFD ? "userfaultfd" : "mprotect+SIGSEGV");
		else
			printf("  %-16s %ld\n", show[i], v);
	}
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void demo_usage(FILE *f)
{
	fprintf(f, "usage: samepage demo [--size MiB] [--tenants N]\n"
		   "  --size MiB    memory per tenant (default 64)\n"
		   "  --tenants N   tenant threads, 1-64 (default 4)\n");
}

static int parse_long(const char *s, long min, long max, long *out)
{
	char *end;

	errno = 0;
	*out = strtol(s, &end, 10);
	return errno || *end || end == s || *out < min || *out > max ? -1 : 0;
}

static int cmd_demo(int argc, char **argv)
{
	static const struct option opts[] = { { "size", required_argument, NULL, 's' },
					      { "tenants", required_argument, NULL, 't' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	struct tenant t[64] = { 0 };
	pthread_t th[64];
	long size = 64, tenants = 4, bad = 0;
	struct sp_pool_config cfg = { 0 };
	sp_pool *pool;
	double t0;
	int c;

	while ((c = getopt_long(argc, argv, "s:t:h", opts, NULL)) != -1) {
		if (c == 'h') {
			demo_usage(stdout);
			return 0;
		}
		if ((c == 's' && parse_long(optarg, 1, 4096, &size)) ||
		    (c == 't' && parse_long(optarg, 1, 64, &tenants)) || c == '?') {
			fprintf(stderr, "samepage demo: bad argument%s%s\n", optarg ? ": " : "",
				optarg ? optarg : "");
			demo_usage(stderr);
			return 2;
		}
	}
	cfg.section_size = 64ul << 20;
	cfg.nr_sections = (unsigned)((size * tenants + 63) / 64 + 1);
	pool = sp_pool_create(&cfg);
	if (!pool) {
		fprintf(stderr, "samepage demo: creating the pool: %s\n", strerror(errno));
		return 1;
	}
	print_figures(pool, "pool created");
	t0 = now();
	for (long i = 0; i < tenants; i++) {
		t[i] = (struct tenant){ .pool = pool, .id = (int)i, .len = (size_t)size << 20 };
		pthread_create(&th[i], NULL, tenant_main, &t[i]);
	}
	for (long i = 0; i < tenants; i++) {
		pthread_join(th[i], NULL);
		if (t[i].err) {
			fprintf(stderr, "samepage demo: tenant %ld: sp_alloc: %s\n", i,
				strerror(t[i].err));
			bad++;
		}
		bad += t[i].bad_pages;
	}
	printf("%ld tenants wrote and verified %ld MiB each in %.2f s\n", tenants, size,
	       now() - t0);
	print_figures(pool, "after writing");
	for (long i = 0; i < tenants; i++)
		if (t[i].mem)
			sp_free(pool, t[i].mem);
	print_figures(pool, "after freeing");
	sp_pool_destroy(pool);
	printf("verification: %s (%ld bad pages)\n", bad ? "FAILED" : "passed", bad);
	return bad ? 1 : 0;
}

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage COMMAND [ARGS]\n"
		   "commands:\n"
		   "  demo     fill a pool from several threads, verify it, show its figures\n"
		   "  help     this text; 'samepage COMMAND --help' for a command\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "demo"))
		return cmd_demo(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	fprintf(stderr, "samepage: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
