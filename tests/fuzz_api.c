/* SPDX-License-Identifier: MIT */
/*
 * fuzz_api: random sequences of public calls, with random and hostile
 * arguments, on small pools, checking after every step that nothing was
 * lost and the pool's figures still hold together.
 *
 * A hand-rolled, seeded driver rather than libFuzzer: every step has side
 * effects that outlive it (threads, mappings, a swap file, signal handlers:
 * libFuzzer's own SIGSEGV handler fights the pool's SIGSEGV mode), the
 * checks need a model kept across steps (a shadow copy of every region),
 * and one seed must replay a whole run with any compiler under ASan+UBSan,
 * with no corpus to keep. Coverage guidance buys little when the input is a
 * sequence of calls and the depth is in their interleaving; a seed per run
 * and many runs do that job. (docs/design.md, "Testing the bad paths".)
 *
 *   fuzz_api [SEED] [--steps N] [--seconds S] [--mode uffd|sigsegv|both]
 *            [--swap yes|no|both] [--inject N] [--avoid LIST] [--verbose]
 *
 * SEED (or SAMEPAGE_FUZZ_SEED; else the time) is printed first: the same
 * seed and options replay the run (a run by time replays by --steps: the
 * summary says how many). SAMEPAGE_FUZZ_SECONDS overrides --seconds.
 * --inject N: about 1 in N calls of every OS primitive fails, plus a
 * failure aimed at the nth call of one primitive now and then (0: off).
 * --avoid: comma-separated known defects not to walk into while they are
 * fixed elsewhere (see "avoid" below).
 *
 * Invariants, after every step:
 * - every byte of every live region matches the shadow copy (the fuzzer
 *   writes through its own pointers too);
 * - frames_used + frames_free == frames_total == sections_online * pages
 *   per section, and frames_used is exactly the frames pages hold: pages
 *   with a frame that are not merged, plus one per KSM frame (pages_shared;
 *   without swap exactly, with swap between the resident and all of them);
 * - pages_sharing + pages_shared + ksm_zero_pages == the pages for which
 *   sp_page_is_ksm says 1 (a sharer swapped out counts; frames_ksm ==
 *   pages_shared);
 * - every page with a frame names an online section of its node;
 *   pages_committed is the regions' pages;
 * - a call's errno is one samepage(3) documents for it; a call that fails
 *   on bad input (or for lack of room, where the call says it checks
 *   first) changed nothing: figures, page states and bytes;
 * - what a success promises: a swapped-out range has no frames, an
 *   unmerged one no merged page, a strict policy move left no page on a
 *   node the policy forbids, a knob reads back what was set;
 * - no page stays write-protected: every page is written now and then,
 *   under a watchdog that aborts a step that hangs.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"
#include "os.h"

#define PG SP_PAGE_SIZE
#define MAX_REGIONS 10
#define NR_TEMPLATES 6

/* ---- random numbers: one seed decides everything ------------------------ */

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t x = (rng_state += 0x9E3779B97F4A7C15ull);

	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

static unsigned long below(unsigned long n)
{
	return n ? (unsigned long)(rnd() % n) : 0;
}

static bool chance(unsigned pct)
{
	return below(100) < pct;
}

/* ---- options and reporting --------------------------------------------- */

enum avoid {
	AVOID_ZERO =
		1, /* use_zero_pages=1: an unmerge wiped a written zero page (fixed: 30a68a9) */
	AVOID_BIND = 2, /* BIND/INTERLEAVE: no frame on the node for a fault or an unmerge (lost) */
	AVOID_COMMIT = 4, /* overcommit: regions beyond frames+swap, offline below it (lost) */
	AVOID_LOST = 8, /* pages unmapped behind the pool's back (offline batch, lost) */
};

static const struct {
	const char *name;
	unsigned bit;
} avoid_names[] = {
	{ "zero", AVOID_ZERO },
	{ "bind", AVOID_BIND },
	{ "commit", AVOID_COMMIT },
	{ "lost", AVOID_LOST },
};

static struct {
	uint64_t seed;
	unsigned long steps;
	long seconds;
	int modes; /* bit 0 uffd, bit 1 sigsegv */
	int swaps; /* bit 0 without, bit 1 with */
	unsigned long inject;
	const char *inject_only; /* comma-separated point names; NULL: all */
	unsigned avoid;
	bool verbose;
	long hang_secs;
} opt = { .steps = 3000, .modes = 3, .swaps = 3, .hang_secs = 120 };

static unsigned long step_no;
static unsigned long step_injected[OS_FAIL_NR]; /* per point, before the step */
static bool step_bad; /* the step's call had bad arguments */
static bool kswapd_on; /* the watermarks are up: the reclaim thread may work between steps */
static unsigned kswapd_cool; /* steps since they came down */
static unsigned long step_vetoes; /* our notifier vetoed during the step */
static const char *step_op = "start";
static char step_desc[256];
static _Atomic unsigned long progress;
static unsigned long nr_failures_seen, nr_calls, nr_injected_total, nr_pools, nr_moments;

static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vfprintf(stdout, fmt, ap);
	va_end(ap);
	fflush(stdout);
}

/* The run up to this step, again: the seed decides every call, whatever stopped this one. */
static void replay_line(void)
{
	fprintf(stderr,
		"fuzz_api: replay with: fuzz_api %llu --steps %lu --mode %s --swap %s "
		"--inject %lu --avoid 0x%x%s%s\n",
		(unsigned long long)opt.seed, step_no,
		opt.modes == 3 ? "both" :
		opt.modes == 1 ? "uffd" :
				 "sigsegv",
		opt.swaps == 3 ? "both" :
		opt.swaps == 1 ? "no" :
				 "yes",
		opt.inject, opt.avoid, opt.inject_only ? " --inject-only " : "",
		opt.inject_only ? opt.inject_only : "");
}

__attribute__((noreturn, format(printf, 1, 2))) static void fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz_api: FAILED at step %lu (%s: %s%s), seed %llu: ", step_no, step_op,
		step_desc, kswapd_on ? "; reclaim thread on" : "", (unsigned long long)opt.seed);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	for (unsigned p = 0; os_fail_name(p); p++) /* what failed in the kernel meanwhile */
		if (os_fail_injected((enum os_fail_point)p) > step_injected[p])
			fprintf(stderr, "fuzz_api: injected in this step: %s x%lu\n",
				os_fail_name(p),
				os_fail_injected((enum os_fail_point)p) - step_injected[p]);
	replay_line();
	abort();
}

static void crash_handler(int sig)
{
	char buf[256];
	int n = snprintf(buf, sizeof(buf), "fuzz_api: signal %d at step %lu (%s), seed %llu\n", sig,
			 step_no, step_op, (unsigned long long)opt.seed);

	if (write(2, buf, (size_t)n) < 0)
		_exit(3);
	signal(sig, SIG_DFL);
	raise(sig);
}

static void *watchdog(void *arg)
{
	unsigned long last = (unsigned long)-1;
	long still = 0;

	(void)arg;
	for (;;) {
		unsigned long now = atomic_load(&progress);

		sleep(1);
		still = now == last ? still + 1 : 0;
		last = now;
		if (still >= opt.hang_secs) {
			fprintf(stderr,
				"fuzz_api: HANG: step %lu (%s: %s) made no progress for %ld s\n",
				step_no, step_op, step_desc, still);
			replay_line();
			abort();
		}
	}
	return NULL;
}

/* ---- the model --------------------------------------------------------- */

struct region {
	char *p;
	unsigned long npages;
	unsigned char *shadow;
	unsigned char *lost; /* page unmapped behind the pool's back */
	unsigned *domain;
	bool mergeable;
};

static struct {
	sp_pool *pool;
	struct sp_pool_config cfg;
	bool swap, uffd;
	unsigned long section_pages, slots;
	bool online[16];
	struct region r[MAX_REGIONS];
	int nr;
	char swap_path[128];
	char sock_path[128];
	bool exported;
	unsigned veto_pct; /* our notifier vetoes this often */
	unsigned long veto_calls;
} P;

static unsigned char templates[NR_TEMPLATES][PG];
static const void *freed_addrs[16];
static unsigned nr_freed_addrs;

/* The figures that only a call changes (others move on their own). */
static const char *const figure_names[] = {
	"frames_total",	   "frames_free",     "frames_used",	 "frames_ksm",
	"sections_online", "swap_slots_used", "pages_committed",
};
static const char *const ksm_figures[] = { "pages_shared",     "pages_sharing",
					   "ksm_zero_pages",   "stable_node_chains",
					   "stable_node_dups", "run",
					   "pages_to_scan",    "sleep_millisecs",
					   "max_page_sharing", "merge_across_nodes",
					   "use_zero_pages",   "smart_scan" };
#define NR_FIG (sizeof(figure_names) / sizeof(figure_names[0]))
#define NR_KFIG (sizeof(ksm_figures) / sizeof(ksm_figures[0]))

struct snap {
	long fig[NR_FIG], kfig[NR_KFIG];
	long low, high;
	int nr;
	unsigned long npages[MAX_REGIONS];
	signed char *ksm[MAX_REGIONS];
	short *sec[MAX_REGIONS]; /* section, or -ENOENT */
};

static long fig(const char *name)
{
	long v = 0;

	if (sp_stat(P.pool, name, &v))
		fail("sp_stat(%s): %s", name, strerror(errno));
	return v;
}

static long kfig(const char *name)
{
	long v = 0;

	if (sp_ksm_get(P.pool, name, &v))
		fail("sp_ksm_get(%s): %s", name, strerror(errno));
	return v;
}

static void snap_free(struct snap *s)
{
	for (int i = 0; i < MAX_REGIONS; i++) {
		free(s->ksm[i]);
		free(s->sec[i]);
		s->ksm[i] = NULL;
		s->sec[i] = NULL;
	}
}

static void snap_take_once(struct snap *s)
{
	snap_free(s);
	for (size_t i = 0; i < NR_FIG; i++)
		s->fig[i] = fig(figure_names[i]);
	for (size_t i = 0; i < NR_KFIG; i++)
		s->kfig[i] = kfig(ksm_figures[i]);
	sp_tune_get(P.pool, "swap.low_watermark", &s->low);
	sp_tune_get(P.pool, "swap.high_watermark", &s->high);
	s->nr = P.nr;
	for (int i = 0; i < P.nr; i++) {
		struct region *r = &P.r[i];

		s->npages[i] = r->npages;
		s->ksm[i] = malloc(r->npages);
		s->sec[i] = malloc(r->npages * sizeof(short));
		if (!s->ksm[i] || !s->sec[i])
			fail("out of memory");
		for (unsigned long j = 0; j < r->npages; j++) {
			char *a = r->p + j * PG;
			int k = sp_page_is_ksm(P.pool, a), sec;

			if (k < 0)
				fail("sp_page_is_ksm(%p) of a live region: %s", (void *)a,
				     strerror(errno));
			s->ksm[i][j] = (signed char)k;
			sec = sp_page_section(P.pool, a);
			if (sec < 0 && errno != ENOENT)
				fail("sp_page_section(%p) of a live region: %s", (void *)a,
				     strerror(errno));
			s->sec[i][j] = (short)(sec < 0 ? -ENOENT : sec);
		}
	}
}

static bool snap_equal(const struct snap *a, const struct snap *b, char *why, size_t len)
{
	for (size_t i = 0; i < NR_FIG; i++)
		if (a->fig[i] != b->fig[i]) {
			snprintf(why, len, "%s %ld -> %ld", figure_names[i], a->fig[i], b->fig[i]);
			return false;
		}
	for (size_t i = 0; i < NR_KFIG; i++)
		if (a->kfig[i] != b->kfig[i]) {
			snprintf(why, len, "%s %ld -> %ld", ksm_figures[i], a->kfig[i], b->kfig[i]);
			return false;
		}
	if (a->low != b->low || a->high != b->high) {
		snprintf(why, len, "watermarks");
		return false;
	}
	if (a->nr != b->nr) {
		snprintf(why, len, "regions %d -> %d", a->nr, b->nr);
		return false;
	}
	for (int i = 0; i < a->nr; i++) {
		if (a->npages[i] != b->npages[i]) {
			snprintf(why, len, "region %d size", i);
			return false;
		}
		for (unsigned long j = 0; j < a->npages[i]; j++)
			if (a->ksm[i][j] != b->ksm[i][j] || a->sec[i][j] != b->sec[i][j]) {
				snprintf(why, len,
					 "region %d page %lu: ksm %d -> %d, section %d -> %d", i, j,
					 a->ksm[i][j], b->ksm[i][j], a->sec[i][j], b->sec[i][j]);
				return false;
			}
	}
	return true;
}

/*
 * The reclaim thread and the swap-in worker's read-ahead can move things on
 * their own for a moment: a snapshot is one that reads the same twice.
 */
static void snap_take(struct snap *s)
{
	struct snap t = { 0 };
	char why[160];

	snap_take_once(s);
	for (int i = 0; i < 200; i++) {
		/* The worker reads ahead for a sequential reader (check_bytes) for a few ms. */
		if (P.swap && P.uffd)
			usleep(2000);
		snap_take_once(&t);
		if (snap_equal(s, &t, why, sizeof(why)))
			break;
		snap_take_once(s);
		usleep(2000);
	}
	snap_free(&t);
}

/* ---- checks ------------------------------------------------------------- */

static void check_bytes(void)
{
	for (int i = 0; i < P.nr; i++) {
		struct region *r = &P.r[i];

		for (unsigned long j = 0; j < r->npages; j++) {
			const unsigned char *a = (unsigned char *)r->p + j * PG,
					    *s = r->shadow + j * PG;

			if (r->lost[j] || !memcmp(a, s, PG))
				continue;
			for (unsigned k = 0; k < PG; k++)
				if (a[k] != s[k])
					fail("region %d (%p) page %lu byte %u reads %#x, wrote %#x "
					     "(ksm %d, section %d)",
					     i, (void *)r->p, j, k, a[k], s[k],
					     sp_page_is_ksm(P.pool, a), sp_page_section(P.pool, a));
		}
	}
}

static void say_injected(const unsigned long *old);

/* Verbose: say what was injected before the bytes are read, then read them. */
static void check_bytes_verbose(const unsigned long *old)
{
	say_injected(old);
	say("    checking bytes\n");
}

/* The figures and page states hold together. */
__attribute__((format(printf, 3, 4))) static const char *broken(char *why, size_t len,
								const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return why;
}

/* Why the figures and page states do not hold together; NULL if they do. */
static const char *invariants_broken(const struct snap *s, char *why, size_t len)
{
	long total = s->fig[0], freef = s->fig[1], used = s->fig[2], fksm = s->fig[3];
	long online = s->fig[4], committed = s->fig[6];
	long shared = s->kfig[0], sharing = s->kfig[1], zero = s->kfig[2];
	long merged = 0, private = 0, ksm_res = 0, pages = 0, nr_online = 0;

	for (unsigned i = 0; i < P.cfg.max_sections; i++)
		nr_online += P.online[i];
	if (used + freef != total)
		return broken(why, len, "frames_used %ld + frames_free %ld != frames_total %ld",
			      used, freef, total);
	if (online != nr_online || total != online * (long)P.section_pages)
		return broken(why, len,
			      "frames_total %ld, sections_online %ld; the model has %ld online",
			      total, online, nr_online);
	if (fksm != shared)
		return broken(why, len, "frames_ksm %ld != pages_shared %ld", fksm, shared);
	for (int i = 0; i < s->nr; i++) {
		pages += (long)s->npages[i];
		for (unsigned long j = 0; j < s->npages[i]; j++) {
			int sec = s->sec[i][j];

			merged += s->ksm[i][j];
			if (sec >= 0 && !s->ksm[i][j])
			private++;
			if (sec >= 0 && s->ksm[i][j])
				ksm_res++;
			if (sec >= 0 && ((unsigned)sec >= P.cfg.max_sections || !P.online[sec]))
				return broken(
					why, len,
					"region %d page %lu has a frame in section %d, which is "
					"offline",
					i, j, sec);
		}
	}
	if (merged != sharing + shared + zero)
		return broken(why, len,
			      "%ld pages say merged; pages_sharing %ld + pages_shared %ld + "
			      "ksm_zero_pages %ld = %ld",
			      merged, sharing, shared, zero, sharing + shared + zero);
	if (committed != pages)
		return broken(why, len, "pages_committed %ld, the regions have %ld", committed,
			      pages);
	if (!P.swap) {
		if (used != private + shared)
			return broken(
				why, len,
				"frames_used %ld; pages hold %ld private frames + %ld KSM frames",
				used, private, shared);
	} else if (used < private + (ksm_res ? 1 : 0) || used > private + shared) {
		return broken(
			why, len,
			"frames_used %ld; pages hold %ld private frames and %ld KSM frames (%ld "
			"pages on them)",
			used, private, shared, ksm_res);
	}
	if (s->fig[5] < 0 || (unsigned long)s->fig[5] > P.slots)
		return broken(why, len, "swap_slots_used %ld of %lu", s->fig[5], P.slots);
	return NULL;
}

/*
 * Threads of the pool's own may be at work between steps: the reclaim thread
 * when the watermarks are up (and for a while after they came down), the
 * swap-in worker reading ahead.
 */
static bool background(void)
{
	return kswapd_on || kswapd_cool || (P.swap && P.uffd);
}

/*
 * The figures and page states hold together. While the reclaim thread works
 * between steps, a look can fall inside one of its steps (pages gone to swap
 * whose frames are freed at the step's end): then the same look with the
 * thread stopped must hold. When they do not hold, the look a second later
 * says whether that was a moment or a state that stays.
 */
static void check_invariants(const struct snap *s)
{
	char why[300], again[300];
	struct snap t = { 0 };
	long low = 0, high = 0;
	bool held;

	if (!invariants_broken(s, why, sizeof(why)))
		return;
	sp_tune_get(P.pool, "swap.low_watermark", &low);
	sp_tune_get(P.pool, "swap.high_watermark", &high);
	sp_tune(P.pool, "swap.low_watermark", 0);
	sp_tune(P.pool, "swap.high_watermark", 0);
	usleep(kswapd_on ? 200000 : 1000000);
	snap_take(&t);
	held = !invariants_broken(&t, again, sizeof(again));
	snap_free(&t);
	if (held && background()) {
		sp_tune(P.pool, "swap.low_watermark", low);
		sp_tune(P.pool, "swap.high_watermark", high);
		nr_moments++;
		return;
	}
	if (held)
		fail("%s (a moment: it holds again a second later)", why);
	fail("%s (and a second later: %s)", why, again);
}

/* Every page writable: a page left write-protected hangs here (the watchdog). */
static void check_writable(void)
{
	for (int i = 0; i < P.nr; i++)
		for (unsigned long j = 0; j < P.r[i].npages; j++) {
			volatile unsigned char *a = (unsigned char *)P.r[i].p + j * PG;

			if (P.r[i].lost[j])
				continue;
			a[j % PG] = P.r[i].shadow[j * PG + j % PG];
			atomic_fetch_add(&progress, 1);
		}
}

/* ---- errno sets (samepage(3)) -------------------------------------------- */

typedef unsigned __int128 errset; /* bit e: errno e allowed */
#define E(x) ((errset)1 << (x))

static void check_errno(const char *call, int err, errset allowed)
{
	if (err <= 0 || err >= 128 || !(allowed & E(err)))
		fail("%s failed with errno %d (%s), which samepage(3) does not document for it",
		     call, err, strerror(err));
}

/* ---- picking arguments ------------------------------------------------- */

static struct region *pick_region(void)
{
	return P.nr ? &P.r[below((unsigned long)P.nr)] : NULL;
}

static int region_index_of(const struct region *r)
{
	return (int)(r - P.r);
}

/* The live region that holds a (the model's view), and the page of a in it. */
static struct region *find_region(const char *a, unsigned long *page)
{
	for (int i = 0; i < P.nr; i++)
		if (a >= P.r[i].p && a < P.r[i].p + P.r[i].npages * PG) {
			*page = (unsigned long)(a - P.r[i].p) / PG;
			return &P.r[i];
		}
	*page = 0;
	return NULL;
}

static char *pick_addr_raw(void)
{
	static char stack_byte;
	struct region *r = pick_region();
	unsigned long page;

	if (!r || chance(8)) {
		switch (below(6)) {
		case 0:
			return NULL;
		case 1:
			return (char *)(uintptr_t)PG;
		case 2:
			return &stack_byte;
		case 3:
			return (char *)templates[0];
		case 4:
			return nr_freed_addrs ? (char *)freed_addrs[below(nr_freed_addrs)] : NULL;
		default:
			return (char *)(uintptr_t)(~(uintptr_t)0 & ~(uintptr_t)(PG - 1));
		}
	}
	page = below(r->npages);
	if (chance(5))
		return r->p + page * PG + 1 + below(PG - 1); /* unaligned */
	if (chance(3))
		return r->p + r->npages * PG; /* just past it: nothing, or the next region */
	return r->p + page * PG;
}

/* An address: mostly in a region, sometimes anything but; *rp its region, if any. */
static char *pick_addr(struct region **rp, unsigned long *page)
{
	char *a = pick_addr_raw();

	*rp = find_region(a, page);
	return a;
}

/* A range the pool must refuse: not page-aligned, empty, or not inside one region. */
static bool bad_range(const struct region *r, const char *a, unsigned long page, size_t len)
{
	return !r || (uintptr_t)a % PG || !len || len > (r->npages - page) * PG;
}

/* A length from page of r: within it mostly, else across its end, 0, or absurd. */
static size_t pick_len(const struct region *r, unsigned long page)
{
	unsigned long left = r ? r->npages - page : 4;

	switch (below(20)) {
	case 0:
		return 0;
	case 1:
		return SIZE_MAX;
	case 2:
		return (left + 1 + below(3)) * PG; /* across the end */
	case 3:
		return 1 + below(PG * left); /* unaligned */
	default:
		return (1 + below(left)) * PG;
	}
}

static void fill_page(unsigned char *dst, unsigned kind)
{
	switch (kind) {
	case 0:
		memset(dst, 0, PG);
		break;
	case 1:
		memcpy(dst, templates[below(NR_TEMPLATES)], PG);
		break;
	default:
		for (unsigned k = 0; k < PG; k += 8) {
			uint64_t v = rnd();

			memcpy(dst + k, &v, 8);
		}
	}
}

/* ---- pools -------------------------------------------------------------- */

static unsigned long injected_now(void);

static int notifier(sp_pool *pool, enum sp_mem_action action, const struct sp_memory_notify *arg,
		    void *priv)
{
	(void)pool;
	(void)arg;
	(void)priv;
	P.veto_calls++;
	if (action != SP_MEM_GOING_OFFLINE && action != SP_MEM_GOING_ONLINE)
		return 0;
	/* Decided by the run's own generator: the call happens inside the step. */
	if (!chance(P.veto_pct))
		return 0;
	step_vetoes++;
	return 1;
}

/* A configuration that is wrong on purpose: EINVAL, EEXIST, or what creating the file says. */
static void hostile_create(void)
{
	struct sp_pool_config c = { .section_size = 64 << 10, .nr_sections = 2 };
	char long_path[5000];
	unsigned long inj;
	sp_pool *p;

	step_op = "sp_pool_create(bad)";
	switch (below(9)) {
	case 0:
		c.section_size = PG + 1;
		break;
	case 1:
		c.max_sections = 1;
		break;
	case 2:
		c.nr_nodes = 65;
		break;
	case 3:
		c.flags = 0x80;
		break;
	case 4:
		c.swap_size = 16 * PG;
		break;
	case 5:
		c.swap_path = "";
		break;
	case 6:
		c.swap_path = "/tmp"; /* a directory */
		break;
	case 7:
		c.swap_path = "/nonexistent-fuzz-dir/swap";
		break;
	default:
		memset(long_path, 'x', sizeof(long_path) - 1);
		long_path[0] = '/';
		long_path[sizeof(long_path) - 1] = 0;
		c.swap_path = long_path;
		c.swap_size = 16 * PG;
		break;
	}
	snprintf(step_desc, sizeof(step_desc), "section_size %zu nr %u max %u nodes %u flags %#x",
		 c.section_size, c.nr_sections, c.max_sections, c.nr_nodes, c.flags);
	inj = injected_now();
	p = sp_pool_create(&c);
	if (p)
		fail("a bad configuration made a pool");
	/* A kernel call that failed first (injected) may say so instead. */
	check_errno("sp_pool_create", errno,
		    E(EINVAL) | E(EEXIST) | E(ENOENT) | E(ENAMETOOLONG) | E(EISDIR) | E(EACCES) |
			    E(ENOTDIR) |
			    (injected_now() != inj ?
				     E(ENOMEM) | E(EMFILE) | E(ENFILE) | E(ENOSPC) | E(EIO) :
				     0));
}

static void pool_open(void)
{
	int mode;

	memset(&P, 0, sizeof(P));
	do
		mode = (int)below(2);
	while (!(opt.modes >> mode & 1));
	do
		P.swap = below(2);
	while (!(opt.swaps >> P.swap & 1));
	P.section_pages = 16u << below(4); /* 16 .. 128 pages */
	P.cfg.section_size = P.section_pages * PG;
	P.cfg.nr_sections = 1 + (unsigned)below(3);
	P.cfg.max_sections = P.cfg.nr_sections + (unsigned)below(3);
	P.cfg.nr_nodes = 1 + (unsigned)below(2);
	P.cfg.flags = SP_POOL_NO_KSMD | (mode ? SP_POOL_SIGSEGV : 0);
	if (P.swap) {
		P.slots = P.section_pages * (1 + below(4));
		snprintf(P.swap_path, sizeof(P.swap_path), "/tmp/fuzz_api.%d.%lu.swap", getpid(),
			 nr_pools);
		unlink(P.swap_path);
		P.cfg.swap_path = P.swap_path;
		P.cfg.swap_size = P.slots * PG;
	}
	step_op = "sp_pool_create";
	snprintf(step_desc, sizeof(step_desc), "%lu pages x %u (max %u), %u nodes, %s, swap %lu",
		 P.section_pages, P.cfg.nr_sections, P.cfg.max_sections, P.cfg.nr_nodes,
		 mode ? "sigsegv" : "uffd", P.slots);
	for (int tries = 0; !P.pool; tries++) {
		P.pool = sp_pool_create(&P.cfg);
		if (P.pool)
			break;
		/* Injected failures may make a creation fail: that must be clean, then again. */
		check_errno("sp_pool_create", errno,
			    E(ENOMEM) | E(EMFILE) | E(ENFILE) | E(ENOSPC) | E(EIO) | E(EINTR) |
				    E(EACCES));
		if (access(P.swap_path, F_OK) == 0 && P.swap)
			fail("a failed sp_pool_create left its swap file");
		if (tries == 50)
			fail("sp_pool_create keeps failing: %s", strerror(errno));
	}
	nr_pools++;
	for (unsigned i = 0; i < P.cfg.nr_sections; i++)
		P.online[i] = true;
	P.uffd = fig("fault_mode") == SP_FAULT_UFFD;
	if (!P.uffd)
		P.slots = P.swap ? P.slots : 0;
	if (!P.swap)
		P.slots = 0;
	/* The reclaim thread works on its own only when a test raises the watermarks. */
	sp_tune(P.pool, "swap.low_watermark", 0);
	sp_tune(P.pool, "swap.high_watermark", 0);
	kswapd_on = false;
	kswapd_cool = 0;
	if (chance(40)) {
		P.veto_pct = (unsigned)below(40);
		if (sp_register_memory_notifier(P.pool, notifier, NULL, (int)below(300) - 100))
			fail("sp_register_memory_notifier: %s", strerror(errno));
	}
	if (opt.verbose)
		say("pool %lu: %s\n", nr_pools, step_desc);
}

static void region_drop(int i)
{
	struct region *r = &P.r[i];

	if (nr_freed_addrs < 16)
		freed_addrs[nr_freed_addrs++] = r->p;
	else
		freed_addrs[below(16)] = r->p;
	free(r->shadow);
	free(r->lost);
	free(r->domain);
	P.r[i] = P.r[--P.nr];
}

static void pool_close(void)
{
	step_op = "sp_pool_destroy";
	check_bytes();
	if (P.exported)
		unlink(P.sock_path);
	sp_pool_destroy(P.pool);
	while (P.nr)
		region_drop(P.nr - 1);
	if (P.swap && access(P.swap_path, F_OK) == 0)
		fail("sp_pool_destroy left the swap file %s", P.swap_path);
	P.pool = NULL;
	nr_freed_addrs = 0;
}

/* ---- the operations ------------------------------------------------------ */

static unsigned long nr_online(void)
{
	unsigned long n = 0;

	for (unsigned i = 0; i < P.cfg.max_sections; i++)
		n += P.online[i];
	return n;
}

static long pages_of_regions(void)
{
	long n = 0;

	for (int i = 0; i < P.nr; i++)
		n += (long)P.r[i].npages;
	return n;
}

static void op_alloc(void)
{
	unsigned long pages = 1 + below(P.section_pages * 2), room;

	(void)room;
	unsigned flags = (chance(80) ? SP_MERGEABLE : 0) | (chance(10) ? SP_POPULATE : 0);
	size_t len = pages * PG - (chance(20) ? below(PG) : 0);
	bool bad = false;
	char *p;

	if (chance(3)) {
		len = chance(50) ? 0 : SIZE_MAX - below(PG);
		bad = true;
	} else if (chance(3)) {
		flags |= 0x100;
		bad = true;
	} else if (chance(3)) {
		len = (size_t)(P.section_pages * P.cfg.max_sections + P.slots + 1) * PG;
		bad = true; /* more than the pool and swap hold */
	}
	/* Far from overcommit while it is fixed elsewhere: the regions fit in frames alone. */
	room = P.section_pages * nr_online();
	if (!bad && (opt.avoid & AVOID_COMMIT) && (unsigned long)pages_of_regions() + pages > room)
		return;
	if (P.nr == MAX_REGIONS)
		return;
	step_op = "sp_alloc";
	snprintf(step_desc, sizeof(step_desc), "len %zu flags %#x", len, flags);
	p = sp_alloc(chance(2) ? NULL : P.pool, len, flags);
	nr_calls++;
	step_bad = bad;
	if (!p) {
		check_errno("sp_alloc", errno, E(EINVAL) | E(ENOMEM));
		nr_failures_seen++;
		return;
	}
	if (bad)
		fail("sp_alloc(%zu, %#x) succeeded", len, flags);
	if ((uintptr_t)p % PG)
		fail("sp_alloc returned %p, not page-aligned", (void *)p);
	pages = (len + PG - 1) / PG;
	for (int i = 0; i < P.nr; i++)
		if (p < P.r[i].p + P.r[i].npages * PG && P.r[i].p < p + pages * PG)
			fail("sp_alloc returned %p, inside region %p", (void *)p, (void *)P.r[i].p);
	P.r[P.nr] = (struct region){ .p = p,
				     .npages = pages,
				     .shadow = calloc(pages, PG),
				     .lost = calloc(pages, 1),
				     .domain = calloc(pages, sizeof(unsigned)),
				     .mergeable = flags & SP_MERGEABLE };
	if (!P.r[P.nr].shadow || !P.r[P.nr].lost || !P.r[P.nr].domain)
		fail("out of memory");
	P.nr++;
	for (unsigned long j = 0; j < pages; j++)
		for (unsigned k = 0; k < PG; k += 512)
			if (p[j * PG + k])
				fail("a new region is not zero-filled at page %lu", j);
}

static void op_free(void)
{
	struct region *r;
	unsigned long page = 0;
	char *a = pick_addr(&r, &page);
	bool valid = r && a == r->p;
	int i = r ? region_index_of(r) : -1;

	if (!valid && chance(70) && P.nr) {
		r = pick_region();
		a = r->p;
		i = region_index_of(r);
		valid = true;
	}
	step_op = "sp_free";
	step_bad = !valid;
	snprintf(step_desc, sizeof(step_desc), "%p%s", (void *)a, valid ? "" : " (not a region)");
	nr_calls++;
	if (sp_free(P.pool, a)) {
		check_errno("sp_free", errno, E(EINVAL));
		if (valid)
			fail("sp_free of a region failed: %s", strerror(errno));
		nr_failures_seen++;
		return;
	}
	if (!valid)
		fail("sp_free(%p) of no region succeeded", (void *)a);
	region_drop(i);
}

static void op_write(void)
{
	struct region *r = pick_region();
	unsigned long n, j;

	if (!r)
		return;
	n = 1 + below(chance(20) ? r->npages : 4);
	j = below(r->npages);
	step_op = "write";
	snprintf(step_desc, sizeof(step_desc), "%lu pages at %p", n, (void *)(r->p + j * PG));
	for (unsigned long k = j; k < j + n && k < r->npages; k++) {
		unsigned char *s = r->shadow + k * PG;

		if (r->lost[k])
			continue;
		if (chance(25)) { /* a few bytes */
			unsigned off = (unsigned)below(PG - 16);

			for (unsigned b = 0; b < 1 + below(16); b++)
				s[off + b] = (unsigned char)rnd();
			memcpy(r->p + k * PG + off, s + off, 16);
		} else {
			fill_page(s, (unsigned)(chance(20) ? 0 : chance(70) ? 1 : 2));
			memcpy(r->p + k * PG, s, PG);
		}
	}
}

static void op_madvise(void)
{
	struct region *r;
	unsigned long page = 0, first, last;
	char *a = pick_addr(&r, &page);
	size_t len = pick_len(r, page);
	int advice = chance(5)	? (int)below(5) :
		     chance(50) ? SP_MADV_MERGEABLE :
				  SP_MADV_UNMERGEABLE;
	bool bad = bad_range(r, a, page, len) || advice < 1 || advice > 2;
	int ret;

	step_bad = bad;
	step_op = "sp_madvise";
	snprintf(step_desc, sizeof(step_desc), "%p+%zu advice %d", (void *)a, len, advice);
	nr_calls++;
	ret = sp_madvise(P.pool, a, len, advice);
	if (ret) {
		check_errno("sp_madvise", errno, E(EINVAL) | E(ENOMEM));
		nr_failures_seen++;
		return;
	}
	if (bad)
		fail("sp_madvise on a bad range succeeded");
	if (advice != SP_MADV_UNMERGEABLE)
		return;
	first = page;
	last = page + (len + PG - 1) / PG;
	for (unsigned long j = first; j < last; j++)
		if (sp_page_is_ksm(P.pool, r->p + j * PG) == 1)
			fail("page %lu is merged after SP_MADV_UNMERGEABLE succeeded", j);
}

static unsigned long node_mask_all(void)
{
	return (1ul << P.cfg.nr_nodes) - 1;
}

static void op_mbind(void)
{
	struct region *r;
	unsigned long page = 0, mask;
	char *a = pick_addr(&r, &page);
	size_t len = pick_len(r, page);
	int mode = (int)below(4);
	unsigned flags = (unsigned)below(4);
	bool bad;

	if (chance(5))
		mode = chance(50) ? -1 : 4 + (int)below(10);
	mask = chance(80) ? 1 + below(node_mask_all()) : rnd();
	if (mode == SP_MPOL_DEFAULT && chance(80))
		mask = 0;
	if (chance(3))
		flags |= 0x10;
	if ((opt.avoid & AVOID_BIND) && (mode == SP_MPOL_BIND || mode == SP_MPOL_INTERLEAVE))
		mode = SP_MPOL_PREFERRED;
	bad = bad_range(r, a, page, len) || mode < 0 || mode > 3 || (flags & ~3u) ||
	      (mode == 0 ? mask != 0 : !mask || (mask & ~node_mask_all()));
	step_bad = bad;
	step_op = "sp_mbind";
	snprintf(step_desc, sizeof(step_desc), "%p+%zu mode %d mask %#lx flags %#x", (void *)a, len,
		 mode, mask, flags);
	nr_calls++;
	if (sp_mbind(P.pool, a, len, mode, mask, flags)) {
		check_errno("sp_mbind", errno, E(EINVAL) | E(ENOMEM) | E(EIO));
		if (errno == EIO && !(flags & SP_MPOL_MF_STRICT))
			fail("EIO without SP_MPOL_MF_STRICT");
		nr_failures_seen++;
		return;
	}
	if (bad)
		fail("sp_mbind with bad arguments succeeded");
	/*
	 * STRICT|MOVE succeeded: no page with a frame on a node the policy
	 * forbids. (PREFERRED forbids none: a move falls back, as mbind(2)'s.)
	 */
	if ((flags & 3) != 3 || mode == SP_MPOL_DEFAULT || mode == SP_MPOL_PREFERRED)
		return;
	for (unsigned long j = page; j < page + (len + PG - 1) / PG; j++) {
		int node = sp_page_node(P.pool, r->p + j * PG);

		if (node >= 0 && !(mask >> node & 1) && !r->lost[j])
			fail("page %lu is on node %d after a strict move to %#lx", j, node, mask);
	}
}

static void op_query(void)
{
	struct region *r;
	unsigned long page = 0;
	char *a = pick_addr(&r, &page);
	bool inside = r != NULL;
	int v;

	step_op = "sp_page_*";
	snprintf(step_desc, sizeof(step_desc), "%p", (void *)a);
	nr_calls += 3;
	v = sp_page_node(P.pool, a);
	if (v < 0)
		check_errno("sp_page_node", errno, inside ? E(ENOENT) : E(EINVAL));
	else if (!inside || v >= (int)P.cfg.nr_nodes)
		fail("sp_page_node(%p) = %d", (void *)a, v);
	v = sp_page_section(P.pool, a);
	if (v < 0)
		check_errno("sp_page_section", errno, inside ? E(ENOENT) : E(EINVAL));
	else if (!inside || v >= (int)P.cfg.max_sections)
		fail("sp_page_section(%p) = %d", (void *)a, v);
	v = sp_page_is_ksm(chance(3) ? NULL : P.pool, a);
	if (v < 0)
		check_errno("sp_page_is_ksm", errno, E(EINVAL));
	else if (!inside || v > 1)
		fail("sp_page_is_ksm(%p) = %d", (void *)a, v);
}

static void op_hotplug(bool offline)
{
	unsigned s = (unsigned)below(P.cfg.max_sections + 2);
	bool bad = s >= P.cfg.max_sections || P.online[s] != offline;
	int ret;

	step_bad = bad;
	if (offline && !bad && (opt.avoid & AVOID_COMMIT) &&
	    (unsigned long)pages_of_regions() > P.section_pages * (nr_online() - 1))
		return;
	step_op = offline ? "sp_section_offline" : "sp_section_online";
	snprintf(step_desc, sizeof(step_desc), "section %u", s);
	nr_calls++;
	ret = offline ? sp_section_offline(P.pool, s) : sp_section_online(P.pool, s);
	if (ret) {
		check_errno(step_op, errno,
			    E(EINVAL) | E(EBUSY) | (offline ? E(ENOMEM) : E(ENOMEM)));
		if (!bad && errno == EINVAL)
			fail("EINVAL for section %u, %s", s, P.online[s] ? "online" : "offline");
		nr_failures_seen++;
		return;
	}
	if (bad)
		fail("section %u out of range or already so: succeeded", s);
	P.online[s] = !offline;
}

static void op_ksm_set(void)
{
	static const struct {
		const char *name;
		long min, max;
	} knobs[] = {
		{ "run", 0, 2 },
		{ "pages_to_scan", 0, UINT_MAX },
		{ "sleep_millisecs", 0, UINT_MAX },
		{ "max_page_sharing", 2, INT_MAX },
		{ "merge_across_nodes", 0, 1 },
		{ "use_zero_pages", 0, 1 },
		{ "smart_scan", 0, 1 },
		{ "pages_shared", 0, 0 }, /* a counter: EPERM */
		{ "no_such_knob", 0, 0 },
	};
	unsigned k = (unsigned)below(sizeof(knobs) / sizeof(knobs[0]));
	long v;
	int ret;

	switch (below(6)) {
	case 0:
		v = knobs[k].min - 1;
		break;
	case 1:
		v = knobs[k].max + (knobs[k].max < LONG_MAX);
		break;
	case 2:
		v = knobs[k].max;
		break;
	case 3:
		v = chance(50) ? LONG_MIN : LONG_MAX;
		break;
	default:
		v = knobs[k].min + (long)below((unsigned long)(knobs[k].max - knobs[k].min) + 1);
		if (k == 3 && chance(80))
			v = 2 + (long)below(8);
	}
	if (k == 0 && v == 1 && chance(50))
		v = 2; /* unmerge everything */
	if ((opt.avoid & AVOID_ZERO) && k == 5 && v == 1)
		v = 0;
	step_op = "sp_ksm_set";
	step_bad = k >= 7 || v < knobs[k].min || v > knobs[k].max;
	snprintf(step_desc, sizeof(step_desc), "%s = %ld", knobs[k].name, v);
	nr_calls++;
	ret = sp_ksm_set(P.pool, knobs[k].name, v);
	if (ret) {
		check_errno("sp_ksm_set", errno,
			    k == 7 ? E(EPERM) : E(EINVAL) | E(EBUSY) | (k == 0 ? E(ENOMEM) : 0));
		if (k < 7 && v >= knobs[k].min && v <= knobs[k].max && errno == EINVAL)
			fail("EINVAL for a value in range");
		nr_failures_seen++;
		return;
	}
	if (k >= 7 || v < knobs[k].min || v > knobs[k].max)
		fail("sp_ksm_set(%s, %ld) succeeded", knobs[k].name, v);
	if (kfig(knobs[k].name) != v)
		fail("%s reads %ld after it was set to %ld", knobs[k].name, kfig(knobs[k].name), v);
	if (k == 0 && v == 2)
		for (int i = 0; i < P.nr; i++)
			for (unsigned long j = 0; j < P.r[i].npages; j++)
				if (sp_page_is_ksm(P.pool, P.r[i].p + j * PG) == 1)
					fail("run=2 left page %lu of region %d merged", j, i);
}

static void op_scan(void)
{
	unsigned long n = chance(5) ? 0 : 1 + below((unsigned long)pages_of_regions() * 3 + 1);
	long got;

	step_op = "sp_ksm_scan";
	snprintf(step_desc, sizeof(step_desc), "%lu pages", n);
	nr_calls++;
	got = sp_ksm_scan(chance(2) ? NULL : P.pool, n);
	if (got < 0) {
		check_errno("sp_ksm_scan", errno, E(EINVAL));
		nr_failures_seen++;
		return;
	}
	if ((unsigned long)got > n)
		fail("sp_ksm_scan(%lu) scanned %ld", n, got);
}

static void op_domain(void)
{
	struct region *r;
	unsigned long page = 0;
	char *a = pick_addr(&r, &page);
	size_t len = pick_len(r, page);
	unsigned d = chance(5) ? (unsigned)rnd() : (unsigned)below(3);
	bool bad = bad_range(r, a, page, len);
	unsigned long n;

	step_bad = bad;
	step_op = "sp_set_merge_domain";
	snprintf(step_desc, sizeof(step_desc), "%p+%zu domain %u", (void *)a, len, d);
	nr_calls++;
	if (sp_set_merge_domain(P.pool, a, len, d)) {
		check_errno("sp_set_merge_domain", errno, E(EINVAL) | E(ENOMEM));
		nr_failures_seen++;
		return;
	}
	if (bad)
		fail("sp_set_merge_domain on a bad range succeeded");
	n = (len + PG - 1) / PG;
	for (unsigned long j = page; j < page + n; j++) {
		if (r->domain[j] != d && sp_page_is_ksm(P.pool, r->p + j * PG) == 1)
			fail("page %lu moved to domain %u and is still merged", j, d);
		r->domain[j] = d;
	}
}

static void op_swap_out(void)
{
	struct region *r;
	unsigned long page = 0, n;
	char *a = pick_addr(&r, &page);
	size_t len = pick_len(r, page);
	bool bad = bad_range(r, a, page, len);

	long swapins = fig("faults_swapin");

	step_bad = bad || !P.swap || !P.uffd;
	step_op = "sp_swap_out";
	snprintf(step_desc, sizeof(step_desc), "%p+%zu", (void *)a, len);
	nr_calls++;
	if (sp_swap_out(P.pool, a, len)) {
		check_errno("sp_swap_out", errno,
			    E(EINVAL) | E(ENOMEM) | E(ENOSPC) | E(ENOTSUP) | E(EIO));
		if (errno == ENOTSUP && P.uffd && P.swap)
			fail("ENOTSUP in userfaultfd mode with swap");
		nr_failures_seen++;
		return;
	}
	if (bad || !P.swap || !P.uffd)
		fail("sp_swap_out succeeded (bad range %d, swap %d, uffd %d)", bad, P.swap, P.uffd);
	n = (len + PG - 1) / PG;
	for (unsigned long j = page; j < page + n; j++) {
		int sec = sp_page_section(P.pool, r->p + j * PG);

		/* Unless the worker's read-ahead (of an earlier sequential read) brought it back. */
		if (sec >= 0 && !r->lost[j] && fig("faults_swapin") == swapins)
			fail("page %lu still has a frame (section %d) after sp_swap_out", j, sec);
	}
}

static void op_reclaim(void)
{
	unsigned long n = below((unsigned long)pages_of_regions() + 2);
	long got;

	step_op = "sp_reclaim";
	snprintf(step_desc, sizeof(step_desc), "%lu", n);
	nr_calls++;
	got = sp_reclaim(P.pool, n);
	if (got < 0) {
		check_errno("sp_reclaim", errno, E(ENOSPC) | E(ENOTSUP) | E(EINVAL));
		if (P.swap && P.uffd)
			fail("sp_reclaim failed with swap in userfaultfd mode: %s",
			     strerror(errno));
		nr_failures_seen++;
		return;
	}
	if (!P.swap || !P.uffd)
		fail("sp_reclaim succeeded without swap or in SIGSEGV mode");
}

static void kswapd_update(void)
{
	long low = 0;

	sp_tune_get(P.pool, "swap.low_watermark", &low);
	kswapd_on = P.swap && P.uffd && low > 0;
	kswapd_cool = P.swap && P.uffd ? 3 : 0; /* a shrink it started runs on */
}

static void op_tune(void)
{
	static const char *const names[] = { "swap.low_watermark", "swap.high_watermark",
					     "ksm.pages_to_scan",  "ksm.no_such",
					     "swap.nope",	   NULL };
	unsigned k = (unsigned)below(6);
	const char *name = names[k];
	long v = chance(50) ? (long)below(P.section_pages * 4) - 2 : chance(50) ? LONG_MAX : -1;
	bool ok = k < 2	 ? v >= -1 && v <= (1l << 28) :
		  k == 2 ? v >= 0 && v <= (long)UINT_MAX :
			   false;
	long got;

	step_op = "sp_tune";
	step_bad = !ok;
	snprintf(step_desc, sizeof(step_desc), "%s = %ld", name ? name : "(null)", v);
	nr_calls++;
	if (sp_tune(P.pool, name, v)) {
		check_errno("sp_tune", errno, E(EINVAL));
		if (ok)
			fail("sp_tune(%s, %ld) failed: %s", name, v, strerror(errno));
		nr_failures_seen++;
		return;
	}
	if (!ok)
		fail("sp_tune(%s, %ld) succeeded", name ? name : "(null)", v);
	if (sp_tune_get(P.pool, name, &got))
		fail("sp_tune_get(%s): %s", name, strerror(errno));
	if (k != 1 && v >= 0 && got != v)
		fail("%s reads %ld after it was set to %ld", name, got, v);
	/* Mostly quiet again: the reclaim thread at work moves pages between steps. */
	if (k < 2 && chance(70)) {
		sp_tune(P.pool, "swap.low_watermark", 0);
		sp_tune(P.pool, "swap.high_watermark", 0);
	}
	kswapd_update();
}

static void op_figures(void)
{
	static const char *const names[] = { "frames_total", "no_such_figure", "", NULL };
	const char *name = names[below(4)];
	long v;

	step_op = "sp_stat";
	snprintf(step_desc, sizeof(step_desc), "%s", name ? name : "(null)");
	nr_calls += 2;
	if (sp_stat(P.pool, name, &v)) {
		check_errno("sp_stat", errno, E(EINVAL));
		if (name == names[0])
			fail("sp_stat(frames_total) failed");
	} else if (name != names[0]) {
		fail("sp_stat(%s) succeeded", name ? name : "(null)");
	}
	if (!sp_ksm_get(P.pool, name, &v) || errno != EINVAL)
		fail("sp_ksm_get(%s) did not fail with EINVAL", name ? name : "(null)");
	for (unsigned i = 0; sp_stat_name(i); i++)
		if (sp_stat(P.pool, sp_stat_name(i), &v))
			fail("sp_stat(%s) failed", sp_stat_name(i));
	for (unsigned i = 0; sp_ksm_name(i); i++)
		if (sp_ksm_get(P.pool, sp_ksm_name(i), &v))
			fail("sp_ksm_get(%s) failed", sp_ksm_name(i));
}

static void op_export(void)
{
	step_op = P.exported ? "sp_pool_unexport" : "sp_pool_export";
	nr_calls++;
	if (P.exported) {
		if (sp_pool_unexport(P.pool))
			fail("sp_pool_unexport: %s", strerror(errno));
		P.exported = false;
		return;
	}
	if (chance(30)) {
		const char *bad = chance(50) ? "/nonexistent-fuzz-dir/sock" : "";

		snprintf(step_desc, sizeof(step_desc), "%s", bad);
		if (!sp_pool_export(P.pool, bad))
			fail("sp_pool_export(%s) succeeded", bad);
		check_errno("sp_pool_export", errno, E(EINVAL) | E(ENOENT) | E(ENAMETOOLONG));
		return;
	}
	snprintf(P.sock_path, sizeof(P.sock_path), "/tmp/fuzz_api.%d.sock", getpid());
	snprintf(step_desc, sizeof(step_desc), "%s", P.sock_path);
	if (sp_pool_export(P.pool, P.sock_path)) {
		check_errno("sp_pool_export", errno, E(EADDRINUSE) | E(EEXIST) | E(ENOMEM));
		return;
	}
	P.exported = true;
}

/* The program unmaps a page behind the pool's back: documented as supported, the page is lost. */
static void op_unmap_behind(void)
{
	struct region *r = pick_region();
	unsigned long j;

	if (!r || r->npages < 2)
		return;
	j = below(r->npages);
	step_op = "munmap (behind the pool's back)";
	snprintf(step_desc, sizeof(step_desc), "%p", (void *)(r->p + j * PG));
	if (r->lost[j] || munmap(r->p + j * PG, PG))
		return;
	r->lost[j] = 1;
}

/* ---- injection ---------------------------------------------------------- */

static bool point_chosen(unsigned p)
{
	const char *s = opt.inject_only;
	size_t n = strlen(os_fail_name(p));

	if (!s)
		return true;
	for (; *s; s += strcspn(s, ","), s += *s == ',')
		if (strcspn(s, ",") == n && !strncmp(s, os_fail_name(p), n))
			return true;
	return false;
}

static unsigned long injected_retired; /* counts of points set again since */

/* Now and then, the nth call of one primitive from here fails (some times in a row). */
static void inject_aimed(void)
{
	struct os_fail_attr a = { .nth = 1 + below(4), .times = 1 + below(2) };
	unsigned p, eligible[OS_FAIL_NR], n = 0;

	/* Not the pool's creation calls: a pool that never comes is no test. */
	for (p = 0; p < OS_FAIL_NR; p++)
		if (p != OS_FAIL_MEMFD_CREATE && p != OS_FAIL_UFFD_OPEN && point_chosen(p))
			eligible[n++] = p;
	if (!n)
		return;
	p = eligible[below(n)];
	if (p == OS_FAIL_UFFD_WP && chance(30))
		a.times = 1000; /* past the retries */
	injected_retired += os_fail_injected((enum os_fail_point)p);
	os_fail_set((enum os_fail_point)p, &a);
}

static void inject_background(void)
{
	if (!opt.inject)
		return;
	for (unsigned p = 0; p < OS_FAIL_NR; p++) {
		struct os_fail_attr a = { .every = opt.inject };

		if (point_chosen(p) && os_fail_set((enum os_fail_point)p, &a))
			fail("os_fail_set(%s)", os_fail_name(p));
	}
}

/* Verbose: which points failed during the step (os_fail_injected before it in old). */
static void say_injected(const unsigned long *old)
{
	for (unsigned p = 0; p < OS_FAIL_NR; p++) {
		unsigned long n = os_fail_injected((enum os_fail_point)p);

		if (n > old[p])
			say("    injected: %s x%lu\n", os_fail_name(p), n - old[p]);
	}
}

static unsigned long injected_now(void)
{
	unsigned long n = injected_retired;

	for (unsigned p = 0; p < OS_FAIL_NR; p++)
		n += os_fail_injected((enum os_fail_point)p);
	return n;
}

/* ---- the loop ----------------------------------------------------------- */

enum {
	OP_ALLOC,
	OP_FREE,
	OP_WRITE,
	OP_MADVISE,
	OP_MBIND,
	OP_QUERY,
	OP_OFFLINE,
	OP_ONLINE,
	OP_KSM_SET,
	OP_SCAN,
	OP_DOMAIN,
	OP_SWAP,
	OP_RECLAIM,
	OP_TUNE,
	OP_FIGURES,
	OP_EXPORT,
	OP_UNMAP,
	OP_CREATE_BAD,
	OP_NR
};

static const unsigned weights[OP_NR] = {
	[OP_ALLOC] = 8,	 [OP_FREE] = 3,	   [OP_WRITE] = 20,	[OP_MADVISE] = 5, [OP_MBIND] = 5,
	[OP_QUERY] = 4,	 [OP_OFFLINE] = 5, [OP_ONLINE] = 4,	[OP_KSM_SET] = 5, [OP_SCAN] = 15,
	[OP_DOMAIN] = 3, [OP_SWAP] = 6,	   [OP_RECLAIM] = 3,	[OP_TUNE] = 2,	  [OP_FIGURES] = 1,
	[OP_EXPORT] = 1, [OP_UNMAP] = 1,   [OP_CREATE_BAD] = 1,
};

/*
 * Calls that, failing, must have changed nothing at all (samepage(3)): bad
 * arguments always; no room where the call counts before it acts (unmerge,
 * run=2, an offline without swap to make room); a veto.
 */
static bool atomic_failure(int op, int err, bool vetoed)
{
	if (step_bad || vetoed)
		return true;
	switch (op) {
	case OP_ALLOC:
	case OP_FREE:
	case OP_QUERY:
	case OP_KSM_SET:
	case OP_TUNE:
	case OP_FIGURES:
	case OP_DOMAIN:
	case OP_ONLINE:
	case OP_MADVISE:
		return true;
	case OP_MBIND:
		return err != EIO; /* EIO: the rest moved */
	case OP_OFFLINE:
		return err == EINVAL || (err == ENOMEM && !P.swap);
	default:
		return false;
	}
}

static int pick_op(void)
{
	unsigned total = 0, x;
	int op;

	for (op = 0; op < OP_NR; op++)
		total += weights[op];
	x = (unsigned)below(total);
	for (op = 0; x >= weights[op]; op++)
		x -= weights[op];
	return op;
}

static void run_op(int op)
{
	switch (op) {
	case OP_ALLOC:
		op_alloc();
		break;
	case OP_FREE:
		if (P.nr)
			op_free();
		break;
	case OP_WRITE:
		op_write();
		break;
	case OP_MADVISE:
		op_madvise();
		break;
	case OP_MBIND:
		op_mbind();
		break;
	case OP_QUERY:
		op_query();
		break;
	case OP_OFFLINE:
	case OP_ONLINE:
		op_hotplug(op == OP_OFFLINE);
		break;
	case OP_KSM_SET:
		op_ksm_set();
		break;
	case OP_SCAN:
		op_scan();
		break;
	case OP_DOMAIN:
		op_domain();
		break;
	case OP_SWAP:
		op_swap_out();
		break;
	case OP_RECLAIM:
		op_reclaim();
		break;
	case OP_TUNE:
		op_tune();
		break;
	case OP_FIGURES:
		op_figures();
		break;
	case OP_EXPORT:
		op_export();
		break;
	case OP_UNMAP:
		if (!(opt.avoid & AVOID_LOST))
			op_unmap_behind();
		break;
	case OP_CREATE_BAD:
		hostile_create();
		break;
	}
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One step: an operation, then every check. */
static void step(struct snap *before, struct snap *after)
{
	unsigned long failures = nr_failures_seen, inj, vetoes = step_vetoes;
	unsigned long *old = step_injected;
	int op = pick_op(), err;
	char why[200];

	step_op = "?";
	step_desc[0] = 0;
	step_bad = false;
	if (kswapd_cool)
		kswapd_cool--;
	errno = 0;
	if (opt.inject && chance(10))
		inject_aimed();
	inj = injected_now();
	for (unsigned p = 0; p < OS_FAIL_NR; p++)
		old[p] = os_fail_injected((enum os_fail_point)p);
	run_op(op);
	err = errno;
	if (opt.verbose) {
		say("%lu: %s %s%s\n", step_no, step_op, step_desc,
		    nr_failures_seen != failures ? " -> failed" : "");
		say_injected(old);
		for (unsigned p = 0; p < OS_FAIL_NR; p++)
			old[p] = os_fail_injected((enum os_fail_point)p);
	}
	snap_take(after);
	/* A failure on bad input, with nothing injected meanwhile, changed nothing. */
	if (nr_failures_seen != failures && injected_now() == inj && !kswapd_on && !kswapd_cool &&
	    atomic_failure(op, err, step_vetoes != vetoes) &&
	    !snap_equal(before, after, why, sizeof(why)))
		fail("a failed %s (%s) changed %s", step_op, strerror(err), why);
	check_invariants(after);
	if (opt.verbose)
		say("    total %ld free %ld used %ld swap %ld/%lu committed %ld shared %ld sharing %ld\n",
		    after->fig[0], after->fig[1], after->fig[2], after->fig[5], P.slots,
		    after->fig[6], after->kfig[0], after->kfig[1]);
	step_op = "check_bytes";
	if (opt.verbose) /* the checks fault pages in: the faults meet injections too */
		check_bytes_verbose(old);
	check_bytes();
	if (step_no % 64 == 0)
		check_writable();
	snap_take(before); /* reading the bytes may have faulted pages in */
	atomic_fetch_add(&progress, 1);
}

static void usage(void)
{
	fprintf(stderr,
		"usage: fuzz_api [SEED] [--steps N] [--seconds S] [--mode uffd|sigsegv|both]\n"
		"                [--swap yes|no|both] [--inject N] [--avoid zero,bind,commit,lost|none]\n"
		"                [--hang S] [--verbose]\n");
	exit(2);
}

static void parse_args(int argc, char **argv)
{
	const char *env = getenv("SAMEPAGE_FUZZ_SEED"), *secs = getenv("SAMEPAGE_FUZZ_SECONDS");
	const char *steps = getenv("SAMEPAGE_FUZZ_STEPS");

	opt.seed = env ? strtoull(env, NULL, 0) : (uint64_t)time(NULL) ^ (uint64_t)getpid() << 32;
	opt.avoid = AVOID_BIND | AVOID_COMMIT | AVOID_LOST; /* issue 16's, still open */
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (a[0] != '-') {
			opt.seed = strtoull(a, NULL, 0);
			continue;
		}
		if (!strcmp(a, "--verbose")) {
			opt.verbose = true;
			continue;
		}
		if (!v)
			usage();
		i++;
		if (!strcmp(a, "--steps")) {
			opt.steps = strtoul(v, NULL, 0);
		} else if (!strcmp(a, "--seconds")) {
			opt.seconds = strtol(v, NULL, 0);
		} else if (!strcmp(a, "--hang")) {
			opt.hang_secs = strtol(v, NULL, 0);
		} else if (!strcmp(a, "--inject")) {
			opt.inject = strtoul(v, NULL, 0);
		} else if (!strcmp(a, "--inject-only")) {
			opt.inject_only = v;
		} else if (!strcmp(a, "--mode")) {
			opt.modes = !strcmp(v, "uffd") ? 1 : !strcmp(v, "sigsegv") ? 2 : 3;
		} else if (!strcmp(a, "--swap")) {
			opt.swaps = !strcmp(v, "no") ? 1 : !strcmp(v, "yes") ? 2 : 3;
		} else if (!strcmp(a, "--avoid")) {
			char *end;

			opt.avoid = (unsigned)strtoul(v, &end, 0);
			if (*end) {
				opt.avoid = 0;
				for (size_t k = 0; k < sizeof(avoid_names) / sizeof(avoid_names[0]);
				     k++)
					if (strstr(v, avoid_names[k].name))
						opt.avoid |= avoid_names[k].bit;
			}
		} else {
			usage();
		}
	}
	/* make fuzz SECONDS=N: over the --seconds of the meson test. */
	if (secs && *secs)
		opt.seconds = strtol(secs, NULL, 0);
	/* make fuzz STEPS=N (CI): so many steps, however fast the machine is. */
	if (steps && *steps) {
		opt.steps = strtoul(steps, NULL, 0);
		opt.seconds = 0;
	}
}

int main(int argc, char **argv)
{
	struct snap before = { 0 }, after = { 0 };
	unsigned long episode_left = 0;
	double t0 = now_s();
	pthread_t wd;

	parse_args(argc, argv);
	say("fuzz_api: seed %llu (steps %lu, seconds %ld, inject 1/%lu, avoid 0x%x)\n",
	    (unsigned long long)opt.seed, opt.steps, opt.seconds, opt.inject, opt.avoid);
	rng_state = opt.seed;
	os_fail_seed(opt.seed);
	signal(SIGBUS, crash_handler);
	signal(SIGSEGV, crash_handler);
	signal(SIGPIPE, SIG_IGN);
	sp_set_log(NULL, NULL);
	for (int t = 0; t < NR_TEMPLATES; t++)
		fill_page(templates[t], 2);
	pthread_create(&wd, NULL, watchdog, NULL);
	pthread_detach(wd);

	for (step_no = 1; step_no <= opt.steps || opt.seconds; step_no++) {
		if (opt.seconds && now_s() - t0 > (double)opt.seconds)
			break;
		if (!episode_left) {
			if (P.pool)
				pool_close();
			injected_retired = injected_now();
			os_fail_reset();
			os_fail_seed(opt.seed + nr_pools);
			inject_background();
			pool_open();
			episode_left = 50 + below(400);
			snap_take(&before);
			check_invariants(&before);
		}
		step(&before, &after);
		episode_left--;
	}
	step_no--;
	if (P.pool) {
		check_writable();
		pool_close();
	}
	snap_free(&before);
	snap_free(&after);
	nr_injected_total = injected_now();
	os_fail_reset();
	say("fuzz_api: seed %llu: %lu steps, %lu pools, %lu calls (%lu failed cleanly), %lu "
	    "injected failures, %lu looks inside a background step, %.0f s: OK\n",
	    (unsigned long long)opt.seed, step_no, nr_pools, nr_calls, nr_failures_seen,
	    nr_injected_total, nr_moments, now_s() - t0);
	return 0;
}
