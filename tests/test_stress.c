/* SPDX-License-Identifier: MIT */
/*
 * Stress: writer threads write disjoint pages of mergeable regions and check
 * every read against a shadow copy, while a control thread makes every
 * state-changing call at random: offline and online of sections, sp_mbind
 * with MOVE to node 0 or 1, SP_MADV_UNMERGEABLE and MERGEABLE, sp_swap_out
 * of random ranges, run flips (0, 1, 2), small region churn, sp_reclaim,
 * sp_set_merge_domain, the KSM knobs that change what merges
 * (use_zero_pages, merge_across_nodes, max_page_sharing, smart_scan) and
 * sp_ksm_scan. ksmd
 * merges all along (pages often repeat across regions, or are zero).
 *
 * Three configurations: userfaultfd with swap, userfaultfd without, and
 * SIGSEGV mode (no swap there). SP_STRESS_SECONDS is the whole run's time
 * (default 24): the one with swap gets half, the others a quarter each.
 * SP_STRESS_CONFIG=swap|noswap|sigsegv runs only that one, for all of it.
 * `make stress SECONDS=600` is the long soak.
 *
 * It stops at the first wrong byte, SIGBUS or unexpected errno, saying
 * where, with the pool's figures and the control thread's last calls; it
 * ends with its own figures: calls made (per kind, and how each failure
 * was handled, per errno), page writes, pages and bytes checked.
 *
 * Not a cmocka test (only its page patterns, common.c): a failure in any
 * thread must stop everything at once.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define PAGE SP_PAGE_SIZE
#define SECTION_PAGES 256 /* 1 MiB sections */
#define MAX_SECTIONS 12
#define START_SECTIONS 10
#define NR_WRITERS 3
#define WRITER_PAGES 512
#define SWAP_PAGES 2048
#define NR_CHURN 8
#define CHURN_MAX_PAGES 48
#define NR_DUPS 24 /* contents that repeat across pages and regions */

/* ---- failing loudly ---------------------------------------------------- */

enum op {
	OP_OFFLINE,
	OP_ONLINE,
	OP_MBIND,
	OP_UNMERGEABLE,
	OP_MERGEABLE,
	OP_SWAP_OUT,
	OP_RUN,
	OP_ALLOC,
	OP_FREE,
	OP_RECLAIM,
	OP_DOMAIN,
	OP_KNOB,
	OP_SCAN,
	NR_OPS
};

static const char *const op_names[NR_OPS] = {
	[OP_OFFLINE] = "sp_section_offline",
	[OP_ONLINE] = "sp_section_online",
	[OP_MBIND] = "sp_mbind MOVE",
	[OP_UNMERGEABLE] = "SP_MADV_UNMERGEABLE",
	[OP_MERGEABLE] = "SP_MADV_MERGEABLE",
	[OP_SWAP_OUT] = "sp_swap_out",
	[OP_RUN] = "run flip",
	[OP_ALLOC] = "sp_alloc (churn)",
	[OP_FREE] = "sp_free (churn)",
	[OP_RECLAIM] = "sp_reclaim",
	[OP_DOMAIN] = "sp_set_merge_domain",
	[OP_KNOB] = "sp_ksm_set (knob)",
	[OP_SCAN] = "sp_ksm_scan",
};

/* The errnos each call may fail with here, as documented; any other is a failure. */
static const int op_expected[NR_OPS][3] = {
	[OP_OFFLINE] = { EBUSY, ENOMEM }, /* busy frames; no room, or the commitment */
	[OP_UNMERGEABLE] = { ENOMEM }, /* not enough free frames to unmerge */
	[OP_SWAP_OUT] = { ENOSPC }, /* swap full */
	[OP_RUN] = { ENOMEM }, /* run=2 without the frames */
	[OP_ALLOC] = { ENOMEM }, /* frames and swap committed */
	[OP_DOMAIN] = { ENOMEM }, /* leaving a domain unmerges */
	[OP_KNOB] = { EBUSY }, /* max_page_sharing, merge_across_nodes while merged */
};

#define NR_ERRNO 160

struct figures {
	_Atomic long ops[NR_OPS], failed[NR_OPS][NR_ERRNO];
	_Atomic long writes, checks, bytes;
};

static struct figures fig;
static sp_pool *pool;
static const char *config_name;

/* The control thread's last calls, for the post-mortem. */
#define HISTORY 32
static struct {
	enum op op;
	long a, b, ret;
	int err;
	double t;
} history[HISTORY];
static _Atomic unsigned history_n;
static struct timespec t0;

static double elapsed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)(ts.tv_sec - t0.tv_sec) + (double)(ts.tv_nsec - t0.tv_nsec) / 1e9;
}

static long pstat(const char *name)
{
	long v = -1;

	sp_stat(pool, name, &v);
	return v;
}

static void post_mortem(void)
{
	static const char *const names[] = { "frames_total",	"frames_free",
					     "frames_used",	"sections_online",
					     "swap_slots_used", "pages_committed",
					     "pages_migrated",	"faults_swapin",
					     "reclaim_direct" };
	unsigned n = atomic_load(&history_n);

	fprintf(stderr, "stress [%s] at %.2f s:", config_name, elapsed());
	for (unsigned i = 0; pool && i < sizeof(names) / sizeof(names[0]); i++)
		fprintf(stderr, " %s=%ld", names[i], pstat(names[i]));
	fprintf(stderr, "\nlast control calls, oldest first:\n");
	for (unsigned i = n > HISTORY ? n - HISTORY : 0; i < n; i++) {
		unsigned k = i % HISTORY;

		fprintf(stderr, "  %8.3f s %s(%ld, %ld) = %ld%s%s\n", history[k].t,
			op_names[history[k].op], history[k].a, history[k].b, history[k].ret,
			history[k].ret < 0 ? " " : "",
			history[k].ret < 0 ? strerror(history[k].err) : "");
	}
}

static void die(const char *fmt, ...)
{
	static pthread_mutex_t once = PTHREAD_MUTEX_INITIALIZER;
	va_list ap;

	pthread_mutex_lock(&once); /* the first failure tells; the others wait for the end */
	va_start(ap, fmt);
	fprintf(stderr, "\nSTRESS FAILURE: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	post_mortem();
	abort();
}

/* Every thread's state and where it sleeps: for a hang. */
static void dump_threads(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;

	while (d && (e = readdir(d))) {
		char path[300], buf[256] = "", wchan[64] = "";
		FILE *f;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
		if ((f = fopen(path, "r"))) {
			if (!fgets(buf, sizeof(buf), f))
				buf[0] = 0;
			fclose(f);
		}
		snprintf(path, sizeof(path), "/proc/self/task/%s/wchan", e->d_name);
		if ((f = fopen(path, "r"))) {
			if (!fgets(wchan, sizeof(wchan), f))
				wchan[0] = 0;
			fclose(f);
		}
		buf[strcspn(buf, "\n")] = 0;
		fprintf(stderr, "  thread %.60s wchan %s\n", buf, wchan);
	}
	if (d)
		closedir(d);
}

static long progress(void)
{
	long n = atomic_load(&fig.writes) + atomic_load(&fig.checks);

	for (int op = 0; op < NR_OPS; op++)
		n += atomic_load(&fig.ops[op]);
	return n;
}

/* Nothing written, checked or called for STALL_SECONDS: a hang, and a failure. */
#define STALL_SECONDS 60

static void *watchdog_main(void *arg)
{
	long last = -1;
	int still = 0;

	(void)arg;
	for (;;) {
		long now = progress();

		sleep(1);
		still = now == last ? still + 1 : 0;
		last = now;
		if (still < STALL_SECONDS)
			continue;
		fprintf(stderr, "\nSTRESS FAILURE: no progress for %d s; threads:\n",
			STALL_SECONDS);
		dump_threads();
		die("hang");
	}
	return NULL;
}

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
	(void)ctx;
	die("signal %d (%s) at %p", sig, strsignal(sig), si->si_addr);
}

/* ---- contents and the shadow ------------------------------------------- */

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

struct writer {
	int id;
	char *mem;
	unsigned char *shadow;
	uint64_t rng;
	pthread_t thread;
};

static struct writer writers[NR_WRITERS];
static _Atomic bool stop_writers, stop_control;

static void check(const char *who, const char *page, const unsigned char *want, unsigned long idx)
{
	if (!memcmp(page, want, PAGE)) {
		atomic_fetch_add(&fig.checks, 1);
		atomic_fetch_add(&fig.bytes, PAGE);
		return;
	}
	for (unsigned off = 0; off < PAGE; off += 8)
		if (memcmp(page + off, want + off, 8)) {
			uint64_t got, exp;

			memcpy(&got, page + off, 8);
			memcpy(&exp, want + off, 8);
			die("%s: wrong bytes in page %lu at %p, offset %u: %#llx, want %#llx "
			    "(ksm %d, section %d, node %d)",
			    who, idx, (void *)page, off, (unsigned long long)got,
			    (unsigned long long)exp, sp_page_is_ksm(pool, page),
			    sp_page_section(pool, page), sp_page_node(pool, page));
		}
}

/* One step of a writer on one of its pages: check it, or write it one of five ways. */
static void writer_step(struct writer *w)
{
	unsigned long idx = rnd(&w->rng) % WRITER_PAGES;
	char *page = w->mem + idx * PAGE;
	unsigned char *sh = w->shadow + idx * PAGE;
	unsigned kind = (unsigned)(rnd(&w->rng) % 100);

	if (kind < 45) {
		check("writer", page, sh, idx);
		return;
	}
	if (kind < 75) { /* a content other pages have too: it merges */
		fill_page(sh, rnd(&w->rng) % NR_DUPS);
	} else if (kind < 82) { /* zeros */
		memset(sh, 0, PAGE);
	} else if (kind < 90) { /* a content of its own */
		fill_page(sh, rnd(&w->rng) | 1ull << 63);
	} else { /* one word: copy-on-write of a merged page */
		uint64_t v = rnd(&w->rng);
		unsigned off = (unsigned)(rnd(&w->rng) % (PAGE / 8)) * 8;

		memcpy(sh + off, &v, 8);
		memcpy(page + off, &v, 8);
		atomic_fetch_add(&fig.writes, 1);
		return;
	}
	memcpy(page, sh, PAGE);
	atomic_fetch_add(&fig.writes, 1);
}

static void *writer_main(void *arg)
{
	struct writer *w = arg;

	while (!atomic_load(&stop_writers))
		for (int i = 0; i < 64; i++)
			writer_step(w);
	/* Every page, a last time. */
	for (unsigned long i = 0; i < WRITER_PAGES; i++)
		check("final check", w->mem + i * PAGE, w->shadow + i * PAGE, i);
	return NULL;
}

/* ---- the control thread ------------------------------------------------ */

struct churn {
	char *mem;
	unsigned long pages;
	uint64_t seed;
};

struct control {
	bool swap;
	uint64_t rng;
	bool online[MAX_SECTIONS];
	struct churn churn[NR_CHURN];
};

/* Record a call's outcome; an errno the call may not fail with here is a failure. */
static void account(enum op op, long a, long b, long ret, int err)
{
	unsigned k = atomic_fetch_add(&history_n, 1) % HISTORY;

	history[k].op = op;
	history[k].a = a;
	history[k].b = b;
	history[k].ret = ret;
	history[k].err = err;
	history[k].t = elapsed();
	atomic_fetch_add(&fig.ops[op], 1);
	if (ret >= 0)
		return;
	for (int i = 0; i < 3 && op_expected[op][i]; i++)
		if (op_expected[op][i] == err) {
			atomic_fetch_add(&fig.failed[op][err < NR_ERRNO ? err : 0], 1);
			return;
		}
	die("%s(%ld, %ld): unexpected error %d (%s)", op_names[op], a, b, err, strerror(err));
}

/* A random page range of a random writer region. */
static char *pick_range(struct control *c, size_t *len, long *first)
{
	struct writer *w = &writers[rnd(&c->rng) % NR_WRITERS];
	unsigned long n = 1 + rnd(&c->rng) % (rnd(&c->rng) % 4 ? 32 : WRITER_PAGES);
	unsigned long idx = rnd(&c->rng) % (WRITER_PAGES - n + 1);

	*len = n * PAGE;
	*first = (long)idx;
	return w->mem + idx * PAGE;
}

static void churn_fill(struct churn *ch)
{
	for (unsigned long i = 0; i < ch->pages; i++) {
		uint64_t *p = (uint64_t *)(ch->mem + i * PAGE);

		/* Half of them alike, so that churn regions merge too. */
		fill_page(p, i % 2 ? ch->seed + i : i % NR_DUPS);
		atomic_fetch_add(&fig.writes, 1);
	}
}

static void churn_check(struct churn *ch)
{
	uint64_t want[PAGE / 8];

	for (unsigned long i = 0; i < ch->pages; i++) {
		fill_page(want, i % 2 ? ch->seed + i : i % NR_DUPS);
		check("churn", ch->mem + i * PAGE, (unsigned char *)want, i);
	}
}

static void do_churn(struct control *c)
{
	struct churn *ch = &c->churn[rnd(&c->rng) % NR_CHURN];
	long ret;

	if (ch->mem) {
		churn_check(ch);
		ret = sp_free(pool, ch->mem);
		account(OP_FREE, (long)ch->pages, 0, ret, errno);
		ch->mem = NULL;
		return;
	}
	ch->pages = 1 + rnd(&c->rng) % CHURN_MAX_PAGES;
	ch->seed = rnd(&c->rng) << 16;
	ch->mem = sp_alloc(pool, ch->pages * PAGE, rnd(&c->rng) % 4 ? SP_MERGEABLE : 0);
	account(OP_ALLOC, (long)ch->pages, 0, ch->mem ? 0 : -1, errno);
	if (ch->mem)
		churn_fill(ch);
}

static void do_section(struct control *c)
{
	unsigned s = (unsigned)(rnd(&c->rng) % MAX_SECTIONS), online = 0;
	long ret;

	for (unsigned i = 0; i < MAX_SECTIONS; i++)
		online += c->online[i];
	if (c->online[s]) {
		if (online <= 2) /* one section per node at least: the pool stays usable */
			return;
		ret = sp_section_offline(pool, s);
		account(OP_OFFLINE, s, 0, ret, errno);
		c->online[s] = ret < 0;
	} else {
		ret = sp_section_online(pool, s);
		account(OP_ONLINE, s, 0, ret, errno);
		c->online[s] = !ret;
	}
}

/* A KSM knob that changes what merges and how, to a value in its range. */
static void do_knob(struct control *c)
{
	static const struct {
		const char *name;
		long values[4];
	} knobs[] = {
		{ "use_zero_pages", { 0, 1, 1, 0 } },
		{ "merge_across_nodes", { 0, 1, 1, 1 } },
		{ "max_page_sharing", { 2, 3, 16, 256 } },
		{ "smart_scan", { 0, 1, 1, 1 } },
	};
	unsigned k = (unsigned)(rnd(&c->rng) % (sizeof(knobs) / sizeof(knobs[0])));
	long v = knobs[k].values[rnd(&c->rng) % 4];
	int ret = sp_ksm_set(pool, knobs[k].name, v);

	account(OP_KNOB, k, v, ret, errno);
}

static void control_step(struct control *c)
{
	unsigned kind = (unsigned)(rnd(&c->rng) % 100);
	size_t len;
	long first, ret;
	char *p;

	if (kind < 14) {
		do_section(c);
	} else if (kind < 32) {
		static const int modes[] = { SP_MPOL_BIND, SP_MPOL_PREFERRED, SP_MPOL_INTERLEAVE,
					     SP_MPOL_DEFAULT };
		int mode = modes[rnd(&c->rng) % 4];
		unsigned long mask = mode == SP_MPOL_DEFAULT	? 0 :
				     mode == SP_MPOL_INTERLEAVE ? 3 :
								  1ul << (rnd(&c->rng) % 2);

		p = pick_range(c, &len, &first);
		ret = sp_mbind(pool, p, len, mode, mask, mode ? SP_MPOL_MF_MOVE : 0);
		account(OP_MBIND, first, (long)mask, ret, errno);
	} else if (kind < 44) {
		p = pick_range(c, &len, &first);
		ret = sp_madvise(pool, p, len, SP_MADV_UNMERGEABLE);
		account(OP_UNMERGEABLE, first, (long)(len / PAGE), ret, errno);
	} else if (kind < 58) {
		p = pick_range(c, &len, &first);
		ret = sp_madvise(pool, p, len, SP_MADV_MERGEABLE);
		account(OP_MERGEABLE, first, (long)(len / PAGE), ret, errno);
	} else if (kind < 74) {
		if (!c->swap)
			return;
		p = pick_range(c, &len, &first);
		ret = sp_swap_out(pool, p, len);
		account(OP_SWAP_OUT, first, (long)(len / PAGE), ret, errno);
	} else if (kind < 80) {
		long run = (long)(rnd(&c->rng) % 8);

		run = run < 5 ? 1 : run - 5; /* mostly running: ksmd merges the most */
		ret = sp_ksm_set(pool, "run", run);
		account(OP_RUN, run, 0, ret, errno);
	} else if (kind < 88) {
		do_churn(c);
	} else if (kind < 92) {
		unsigned domain = (unsigned)(rnd(&c->rng) % 2);

		p = pick_range(c, &len, &first);
		ret = sp_set_merge_domain(pool, p, len, domain);
		account(OP_DOMAIN, first, domain, ret, errno);
	} else if (kind < 95) {
		do_knob(c);
	} else if (kind < 96) {
		long n = (long)(1 + rnd(&c->rng) % 1024);

		ret = sp_ksm_scan(pool, (unsigned long)n);
		account(OP_SCAN, n, 0, ret < 0 ? -1 : 0, errno);
	} else {
		long n = (long)(1 + rnd(&c->rng) % 512);

		if (!c->swap)
			return;
		ret = sp_reclaim(pool, (unsigned long)n);
		account(OP_RECLAIM, n, 0, ret < 0 ? -1 : 0, errno);
	}
}

static void *control_main(void *arg)
{
	struct control *c = arg;

	while (!atomic_load(&stop_control)) {
		control_step(c);
		if (rnd(&c->rng) % 4 == 0)
			usleep((useconds_t)(rnd(&c->rng) %
					    2000)); /* writers get the pool alone too */
	}
	for (int i = 0; i < NR_CHURN; i++)
		if (c->churn[i].mem) {
			churn_check(&c->churn[i]);
			if (sp_free(pool, c->churn[i].mem))
				die("sp_free of a churn region: %s", strerror(errno));
		}
	if (sp_ksm_set(pool, "run", 1))
		die("run=1: %s", strerror(errno));
	return NULL;
}

/* ---- one configuration ------------------------------------------------- */

static void run_config(const char *name, unsigned flags, bool swap, double seconds, uint64_t seed)
{
	char path[64];
	struct sp_pool_config cfg = { .section_size = SECTION_PAGES * PAGE,
				      .nr_sections = START_SECTIONS,
				      .max_sections = MAX_SECTIONS,
				      .nr_nodes = 2,
				      .swap_path = swap ? path : NULL,
				      .swap_size = swap ? SWAP_PAGES * PAGE : 0,
				      .flags = flags };
	struct control c = { .swap = swap, .rng = seed * 7 + 1 };
	pthread_t control;

	config_name = name;
	snprintf(path, sizeof(path), "/tmp/sp-stress-%d", getpid());
	unlink(path);
	pool = sp_pool_create(&cfg);
	if (!pool)
		die("sp_pool_create: %s", strerror(errno));
	if (sp_ksm_set(pool, "pages_to_scan", 1000) || sp_ksm_set(pool, "sleep_millisecs", 5))
		die("sp_ksm_set: %s", strerror(errno));
	for (unsigned s = 0; s < MAX_SECTIONS; s++)
		c.online[s] = s < START_SECTIONS;
	for (int i = 0; i < NR_WRITERS; i++) {
		struct writer *w = &writers[i];

		w->id = i;
		w->rng = seed * 31 + (uint64_t)i + 1;
		w->mem = sp_alloc(pool, WRITER_PAGES * PAGE, SP_MERGEABLE);
		w->shadow = calloc(WRITER_PAGES, PAGE);
		if (!w->mem || !w->shadow)
			die("setting up writer %d: %s", i, strerror(errno));
	}
	atomic_store(&stop_writers, false);
	atomic_store(&stop_control, false);
	for (int i = 0; i < NR_WRITERS; i++)
		pthread_create(&writers[i].thread, NULL, writer_main, &writers[i]);
	pthread_create(&control, NULL, control_main, &c);
	usleep((useconds_t)(seconds * 1e6));
	atomic_store(&stop_control, true);
	pthread_join(control, NULL);
	atomic_store(&stop_writers, true);
	for (int i = 0; i < NR_WRITERS; i++)
		pthread_join(writers[i].thread, NULL);
	if (pstat("frames_used") + pstat("frames_free") != pstat("frames_total"))
		die("frames_used %ld + frames_free %ld != frames_total %ld", pstat("frames_used"),
		    pstat("frames_free"), pstat("frames_total"));
	printf("[%s] %.0f s: sections online %ld, pages_migrated %ld, faults_swapin %ld, "
	       "swap_pages_out %ld, reclaim_direct %ld, faults_cow %ld, full_scans %ld\n",
	       name, seconds, pstat("sections_online"), pstat("pages_migrated"),
	       pstat("faults_swapin"), pstat("swap_pages_out"), pstat("reclaim_direct"),
	       pstat("faults_cow"), ({
		       long v = -1;
		       sp_ksm_get(pool, "full_scans", &v);
		       v;
	       }));
	for (int i = 0; i < NR_WRITERS; i++) {
		sp_free(pool, writers[i].mem);
		free(writers[i].shadow);
	}
	sp_pool_destroy(pool);
	pool = NULL;
}

static void print_figures(double seconds)
{
	long total = 0;

	printf("stress: %.0f s in all\ncontrol calls:\n", seconds);
	for (int op = 0; op < NR_OPS; op++) {
		long failed = 0;

		total += atomic_load(&fig.ops[op]);
		for (int e = 0; e < NR_ERRNO; e++)
			failed += atomic_load(&fig.failed[op][e]);
		printf("  %-20s %8ld", op_names[op], atomic_load(&fig.ops[op]));
		if (failed) {
			printf("  failed, handled:");
			for (int e = 0; e < NR_ERRNO; e++)
				if (atomic_load(&fig.failed[op][e]))
					printf(" %s %ld", strerrorname_np(e),
					       atomic_load(&fig.failed[op][e]));
		}
		printf("\n");
	}
	printf("  %-20s %8ld\n", "all", total);
	printf("page writes %ld, pages checked %ld, bytes checked %ld (%.1f GiB)\n",
	       atomic_load(&fig.writes), atomic_load(&fig.checks), atomic_load(&fig.bytes),
	       (double)atomic_load(&fig.bytes) / (1 << 30));
}

int main(void)
{
	const char *env = getenv("SP_STRESS_SECONDS"), *only = getenv("SP_STRESS_CONFIG");
	double seconds = env ? atof(env) : 24;
	struct sigaction sa = { .sa_sigaction = on_sigbus, .sa_flags = SA_SIGINFO };
	static const struct {
		const char *name;
		unsigned flags;
		bool swap;
		double share;
	} configs[] = {
		{ "swap", 0, true, 0.5 },
		{ "noswap", 0, false, 0.25 },
		{ "sigsegv", SP_POOL_SIGSEGV, false, 0.25 },
	};
	uint64_t seed = (uint64_t)time(NULL);
	pthread_t watchdog;

	if (only && !*only) /* make stress passes CONFIG= when none is asked */
		only = NULL;
	if (getenv("SP_STRESS_SEED"))
		seed = strtoull(getenv("SP_STRESS_SEED"), NULL, 0);
	printf("stress: seed %llu (SP_STRESS_SEED replays the choices, not the timing)\n",
	       (unsigned long long)seed);
	fflush(stdout);
	sigemptyset(&sa.sa_mask);
	sigaction(SIGBUS, &sa, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	pthread_create(&watchdog, NULL, watchdog_main, NULL);
	for (unsigned i = 0; i < sizeof(configs) / sizeof(configs[0]); i++) {
		if (only && strcmp(only, configs[i].name))
			continue;
		run_config(configs[i].name, configs[i].flags, configs[i].swap,
			   only ? seconds : seconds * configs[i].share, seed + i);
		fflush(stdout);
	}
	print_figures(elapsed());
	return 0;
}
