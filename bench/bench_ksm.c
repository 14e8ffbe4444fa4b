/* SPDX-License-Identifier: MIT */
/*
 * bench_ksm: samepage's KSM against the kernel's, on the standard workloads
 * W1-W4 of WORKLOADS.md: both sides see exactly the same bytes.
 *
 * Per workload, N interleaved rounds (kernel, samepage, kernel, samepage, ...;
 * --rounds, default 3), each side with the scanner at full speed
 * (pages_to_scan=100000, sleep_millisecs=0):
 *  - t99: seconds from run=1 until the pages merged away reach 99% of the
 *    workload's "pages that merge away" column (kernel: pages_sharing;
 *    samepage: pages_sharing + ksm_zero_pages), polled every millisecond;
 *  - CPU over that interval: the kernel's ksmd thread against the whole
 *    samepage process (every thread: scanner, fault thread, workers; from
 *    getrusage(RUSAGE_SELF), less this program's own polling thread), with
 *    the scanner thread "sp-ksmd" alone beside it. Writing the workload is
 *    before the interval, so it is not counted;
 *  - copy-on-write: with the scanner stopped (run=0, merged pages stay
 *    merged), one byte written to every page whose content appears more than
 *    once (zero pages included), us per page;
 *  - samepage's metadata: the growth of the process's RssAnon (the region
 *    pages themselves are shmem) per region page, after writing the workload
 *    and at t99, with the pool's VMAs counted in /proc/self/maps and their
 *    approximate kernel bytes beside it.
 * Every ratio is samepage/kernel of one round; the median and the spread
 * (min, max) over the rounds are reported, and each side's median.
 *
 * Kernel KSM is the whole machine's: the program holds the flock of
 * /tmp/samepage-kernel-ksm.lock from start to exit. The knobs it writes are
 * saved before anything changes and restored after every kernel measurement,
 * on every error path and on SIGINT/SIGTERM/SIGHUP; so is vm.max_map_count if
 * it had to be raised (samepage maps merged pages one by one: W1 needs ~140k
 * mappings).
 *
 * Only the public API (samepage.h), libc, /proc and /sys are used.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "kernel_ksm_lock.h"
#include "samepage.h"

#define PROG "bench_ksm"
#define USAGE                                                                                 \
	"usage: " PROG " [--workloads W1,W2,W3,W4] [--rounds N] [--json] [--zero-pages 0|1] " \
	"[--timeout S]"
#define MIB (1UL << 20)
#define SECTION_SIZE (64 * MIB)
#define SPARE_SECTIONS 2
#define PAGE_WORDS (SP_PAGE_SIZE / sizeof(uint64_t))
#define XS_SEED 88172645463325252ULL
#define NR_WORKLOADS 4
#define MAX_REGIONS 8
#define SCAN_PAGES 100000
#define DEF_ROUNDS 3U
#define MAX_ROUNDS 20U
#define DEF_TIMEOUT 60.0
#define MAX_TIMEOUT 86400.0
#define UNMERGE_TIMEOUT 30.0
#define POLL_NS 1000000L
#define TTY_EVERY 0.25
#define KSM_DIR "/sys/kernel/mm/ksm/"
#define MAP_COUNT "/proc/sys/vm/max_map_count"
#define MAP_COUNT_WANT 1048576L
#define POOL_MAPS "/memfd:samepage" /* the pool's memfd, as /proc/self/maps names it */
#define VAL_LEN 64
#define PATH_LEN 512
#define LINE_LEN 1024

/* ---- workloads (WORKLOADS.md) ------------------------------------------ */

struct workload {
	const char *name;
	const char *desc;
	unsigned long n; /* pages */
	unsigned nr_regions; /* separate mappings (W2: one per tenant) */
	long merge_away; /* the "pages that merge away" column */
	int zero_pages; /* samepage's use_zero_pages unless --zero-pages */
	void (*fill)(uint64_t *w, unsigned long i, uint64_t *rng);
	bool (*dup)(unsigned long i); /* content of page i appears more than once */
};

static uint64_t xorshift64(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static uint64_t splitmix64(uint64_t x)
{
	uint64_t z = x + 0x9E3779B97F4A7C15ULL;

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
	return z ^ (z >> 31);
}

static void fill_key(uint64_t *w, uint64_t key)
{
	for (unsigned j = 0; j < PAGE_WORDS; j++)
		w[j] = key * 1000003 + j;
}

static void fill_random(uint64_t *w, uint64_t *rng)
{
	for (unsigned j = 0; j < PAGE_WORDS; j++)
		w[j] = xorshift64(rng);
}

static void fill_zero(uint64_t *w)
{
	memset(w, 0, SP_PAGE_SIZE);
}

static void w1_fill(uint64_t *w, unsigned long i, uint64_t *rng)
{
	if (i % 2 == 0)
		fill_key(w, i / 2 % 1024);
	else
		fill_random(w, rng);
}

static bool w1_dup(unsigned long i)
{
	return i % 2 == 0;
}

static void w2_fill(uint64_t *w, unsigned long i, uint64_t *rng)
{
	uint64_t p = i % 16384;

	(void)rng;
	if (p % 10 == 0) {
		fill_zero(w);
		return;
	}
	for (unsigned j = 0; j < PAGE_WORDS; j++)
		w[j] = splitmix64(p * 512 + j);
}

static bool w2_dup(unsigned long i)
{
	(void)i;
	return true; /* every image page is in all 8 images */
}

static void w3_fill(uint64_t *w, unsigned long i, uint64_t *rng)
{
	if (i % 20 == 0)
		fill_key(w, i / 20 % 1024);
	else
		fill_random(w, rng);
}

static bool w3_dup(unsigned long i)
{
	return i % 20 == 0;
}

static void w4_fill(uint64_t *w, unsigned long i, uint64_t *rng)
{
	if (i % 10 < 6)
		fill_zero(w);
	else
		fill_random(w, rng);
}

static bool w4_dup(unsigned long i)
{
	return i % 10 < 6;
}

static const struct workload workloads[NR_WORKLOADS] = {
	{ "W1", "scattered", 131072, 1, 131072 / 2 - 1024, 0, w1_fill, w1_dup },
	{ "W2", "images", 131072, 8, 131072 - 14746, 1, w2_fill, w2_dup },
	{ "W3", "mostly unique", 262144, 1, 13108 - 1024, 0, w3_fill, w3_dup },
	{ "W4", "zeros", 131072, 1, 78644 - 1, 1, w4_fill, w4_dup },
};

static long target_of(const struct workload *wl)
{
	return (wl->merge_away * 99 + 99) / 100; /* 99%, rounded up */
}

/* ---- options and results ----------------------------------------------- */

struct opts {
	bool want[NR_WORKLOADS];
	bool json;
	int zero_pages; /* -1: per workload */
	unsigned rounds;
	double timeout;
};

/* The process's anonymous memory and the pool's mappings at one moment. */
struct meta {
	long rss_anon_kb;
	long vmas;
};

enum { META_START, META_FILLED, META_MERGED, NR_META };

/* One side of one round. */
struct side {
	double t99; /* s; the time waited on timeout */
	bool timed_out;
	long merged; /* pages merged away at t99 or timeout */
	double cpu; /* kernel: ksmd; samepage: the process less the poller, s */
	double scan_cpu; /* samepage: the sp-ksmd thread alone, s */
	double poll_cpu; /* samepage: this program's polling thread, s (not in cpu) */
	double cow_us; /* per page */
	long cow_pages;
	long res_before, res_after; /* samepage: bytes_resident */
	struct meta meta[NR_META]; /* samepage */
};

struct result {
	bool done;
	int zero_pages; /* samepage's use_zero_pages */
	unsigned rounds;
	struct side k[MAX_ROUNDS], s[MAX_ROUNDS];
};

/* A workload's memory: regions of equal size, pages numbered across them. */
struct mem {
	char *reg[MAX_REGIONS];
	unsigned nr;
	unsigned long per; /* pages per region */
	size_t len; /* bytes per region */
};

/* ---- saved kernel state, restored from anywhere (async-signal-safe) ---- */

enum knob { K_RUN, K_PAGES_TO_SCAN, K_SLEEP, K_ZERO_PAGES, NR_KNOBS };

static const char *const knob_path[NR_KNOBS] = {
	KSM_DIR "run",
	KSM_DIR "pages_to_scan",
	KSM_DIR "sleep_millisecs",
	KSM_DIR "use_zero_pages",
};

static struct {
	char knob[NR_KNOBS][VAL_LEN];
	char map_count[VAL_LEN];
	volatile sig_atomic_t knobs_saved;
	volatile sig_atomic_t map_count_raised;
	volatile sig_atomic_t kernel_merging; /* run=2 needed before restoring */
} saved;

static bool verbose;
static long clk_tck;

static int restore_knobs(void)
{
	int ret = 0;

	if (saved.kernel_merging && write_file(knob_path[K_RUN], "2"))
		ret = -1;
	saved.kernel_merging = 0;
	if (!saved.knobs_saved)
		return ret;
	for (int k = 0; k < NR_KNOBS; k++)
		if (write_file(knob_path[k], saved.knob[k]))
			ret = -1;
	return ret;
}

static int restore_all(void)
{
	int ret = restore_knobs();

	if (saved.map_count_raised) {
		if (write_file(MAP_COUNT, saved.map_count))
			ret = -1;
		else
			saved.map_count_raised = 0;
	}
	return ret;
}

static void on_signal(int sig)
{
	exit_on_signal(sig, restore_all(), PROG ": interrupted; KSM knobs restored\n",
		       PROG ": interrupted; restoring KSM knobs FAILED\n");
}

/* ---- errors ------------------------------------------------------------ */

static void bad_arg(const char *what, const char *arg)
{
	fprintf(stderr, PROG ": %s '%s' (" USAGE ")\n", what, arg ? arg : "");
	exit(2);
}

/* A call failed: say which and why, put the kernel's knobs back, exit 1. */
static void die_call(const char *call)
{
	int err = errno;

	fprintf(stderr, PROG ": %s: %s\n", call, strerror(err));
	if (restore_all())
		fprintf(stderr, PROG ": restoring the KSM knobs failed too: %s\n", strerror(errno));
	exit(1);
}

static void die_path(const char *op, const char *path)
{
	char call[PATH_LEN + 16];

	snprintf(call, sizeof(call), "%s %s", op, path);
	die_call(call);
}

static void tty_note(const char *fmt, ...)
{
	va_list ap;

	if (!verbose)
		return;
	va_start(ap, fmt);
	fputs(PROG ": ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ---- /proc and /sys ---------------------------------------------------- */

static long get_long(const char *path)
{
	char buf[VAL_LEN], *end;
	long v;

	if (read_file(path, buf, sizeof(buf)))
		die_path("read", path);
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf) {
		errno = errno ? errno : EPROTO;
		die_path("parse", path);
	}
	return v;
}

static void set_knob(enum knob k, const char *val)
{
	char call[PATH_LEN];

	if (write_file(knob_path[k], val)) {
		snprintf(call, sizeof(call), "write '%s' to %s", val, knob_path[k]);
		die_call(call);
	}
}

/*
 * CPU seconds of the thread (or process) whose /proc directory is dir: its
 * run time in ns from schedstat, or where the kernel has no schedstat,
 * utime+stime from stat (in clock ticks).
 */
static double thread_cpu(const char *dir)
{
	char path[PATH_LEN], buf[LINE_LEN], *p;
	unsigned long long ns;
	unsigned long ut, st;

	snprintf(path, sizeof(path), "%s/schedstat", dir);
	if (!read_file(path, buf, sizeof(buf)) && sscanf(buf, "%llu", &ns) == 1)
		return (double)ns * 1e-9;
	snprintf(path, sizeof(path), "%s/stat", dir);
	if (read_file(path, buf, sizeof(buf)))
		die_path("read", path);
	p = strrchr(buf, ')');
	if (!p ||
	    sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2) {
		errno = EPROTO;
		die_path("parse", path);
	}
	return (double)(ut + st) / (double)clk_tck;
}

/* utime+stime from getrusage: RUSAGE_SELF (every thread) or RUSAGE_THREAD. */
static double rusage_cpu(int who)
{
	struct rusage ru;

	if (getrusage(who, &ru))
		die_call("getrusage");
	return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
	       (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) * 1e-6;
}

/* The first numeric entry of dir (a pid or tid) whose comm is name, or -1. */
static long find_comm(const char *dir, const char *name)
{
	char path[PATH_LEN], comm[VAL_LEN];
	DIR *d = opendir(dir);
	struct dirent *e;
	long id = -1;

	if (!d)
		die_path("opendir", dir);
	while (id < 0 && (e = readdir(d))) {
		if (!isdigit((unsigned char)e->d_name[0]))
			continue;
		if (snprintf(path, sizeof(path), "%s/%.32s/comm", dir, e->d_name) >= PATH_LEN)
			continue;
		if (!read_file(path, comm, sizeof(comm)) && !strcmp(comm, name))
			id = strtol(e->d_name, NULL, 10);
	}
	closedir(d);
	return id;
}

/* The /proc directory of the thread called name under dir; dies if none. */
static void thread_dir_of(const char *dir, const char *name, char *path)
{
	char call[PATH_LEN];
	long id = find_comm(dir, name);

	if (id < 0) {
		errno = ESRCH;
		snprintf(call, sizeof(call), "find the thread named '%s' in %s", name, dir);
		die_call(call);
	}
	snprintf(path, PATH_LEN, "%s/%ld", dir, id);
}

/* RssAnon of this process, kB. */
static long rss_anon_kb(void)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[LINE_LEN];
	long kb = -1;

	if (!f)
		die_path("open", "/proc/self/status");
	while (kb < 0 && fgets(line, sizeof(line), f))
		if (sscanf(line, "RssAnon: %ld kB", &kb) != 1)
			kb = -1;
	fclose(f);
	if (kb < 0) {
		errno = EPROTO;
		die_path("find RssAnon in", "/proc/self/status");
	}
	return kb;
}

/* Mappings of the pool's memfd in /proc/self/maps. */
static long pool_vmas(void)
{
	long n = count_lines("/proc/self/maps", POOL_MAPS);

	if (n < 0)
		die_path("read", "/proc/self/maps");
	return n;
}

static struct meta meta_now(void)
{
	return (struct meta){ rss_anon_kb(), pool_vmas() };
}

/* The object size of a slab cache from /proc/slabinfo (root only), or dflt. */
static long slab_objsize(const char *cache, long dflt)
{
	FILE *f = fopen("/proc/slabinfo", "re");
	char line[LINE_LEN], name[VAL_LEN];
	long active, num, size, v = dflt;

	if (!f)
		return dflt;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%63s %ld %ld %ld", name, &active, &num, &size) == 4 &&
		    !strcmp(name, cache)) {
			v = size;
			break;
		}
	fclose(f);
	return v;
}

/*
 * What one VMA costs the kernel, roughly: its vm_area_struct, and a share of
 * the maple-tree leaf that indexes it (256 bytes for up to 16 entries; about
 * 10 in use on average). Anon_vma chains come only with a write and page
 * tables are there for the region's pages anyway: neither is counted.
 */
static long vma_bytes(void)
{
	return slab_objsize("vm_area_struct", 192) + slab_objsize("maple_node", 256) / 10;
}

/* ---- setup: vm.max_map_count, root, the lock, the kernel's knobs --------- */

static void check_map_count(void)
{
	long cur = get_long(MAP_COUNT);
	char val[VAL_LEN];

	if (cur >= MAP_COUNT_WANT)
		return;
	if (geteuid() != 0) {
		fprintf(stderr,
			PROG ": vm.max_map_count is %ld; samepage maps merged pages one by one "
			     "(W1 needs ~140k mappings): run 'sysctl -w vm.max_map_count=%ld' as "
			     "root, or run " PROG " as root\n",
			cur, MAP_COUNT_WANT);
		exit(1);
	}
	snprintf(saved.map_count, sizeof(saved.map_count), "%ld", cur);
	snprintf(val, sizeof(val), "%ld", MAP_COUNT_WANT);
	saved.map_count_raised = 1;
	if (write_file(MAP_COUNT, val))
		die_path("write", MAP_COUNT);
	fprintf(stderr, PROG ": note: raised vm.max_map_count from %ld to %ld until exit\n", cur,
		MAP_COUNT_WANT);
}

static void check_root(void)
{
	if (access(KSM_DIR "run", F_OK)) {
		fprintf(stderr, PROG ": %s: %s (kernel KSM not available)\n", KSM_DIR "run",
			strerror(errno));
		exit(1);
	}
	if (geteuid() != 0) {
		fprintf(stderr, PROG ": driving kernel KSM (" KSM_DIR ") needs root\n");
		exit(1);
	}
}

/* Held until exit: no other program of the project drives kernel KSM meanwhile. */
static void take_lock(void)
{
	if (kernel_ksm_lock(PROG, -1) < 0)
		die_path("flock", KERNEL_KSM_LOCK);
}

static void save_knobs(void)
{
	for (int k = 0; k < NR_KNOBS; k++)
		if (read_file(knob_path[k], saved.knob[k], sizeof(saved.knob[k])))
			die_path("read", knob_path[k]);
	saved.knobs_saved = 1;
	if (strcmp(saved.knob[K_RUN], "0"))
		fprintf(stderr,
			PROG ": warning: kernel KSM is running (run=%s) before the benchmark: "
			     "someone else's ksmd work will be in the kernel's figures\n",
			saved.knob[K_RUN]);
}

/* After the run: are the knobs what they were? */
static void check_knobs(void)
{
	char now_val[VAL_LEN];

	for (int k = 0; k < NR_KNOBS; k++) {
		if (read_file(knob_path[k], now_val, sizeof(now_val)))
			die_path("read", knob_path[k]);
		if (strcmp(now_val, saved.knob[k]))
			fprintf(stderr, PROG ": warning: %s is %s, was %s before the run\n",
				knob_path[k], now_val, saved.knob[k]);
	}
}

/* ---- time and waiting --------------------------------------------------- */

static void poll_sleep(void)
{
	struct timespec ts = { 0, POLL_NS };

	nanosleep(&ts, NULL);
}

struct probe {
	const char *label; /* "W1 kernel 2/3" */
	long (*merged)(void *ctx); /* pages merged away so far */
	void *ctx;
	long column; /* the workload's pages that merge away */
};

static void tty_progress(const struct probe *pr, long got, double t, bool end)
{
	fprintf(stderr, "\r" PROG ": %s: %ld of %ld pages merged away (%.1f%%), %.2f s%s",
		pr->label, got, pr->column, 100.0 * (double)got / (double)pr->column, t,
		end ? "\n" : "");
}

/* Poll every ms from t0 until target pages have merged away, or timeout. */
static void wait_merged(const struct probe *pr, long target, double timeout, double t0,
			struct side *r)
{
	double t, last = 0;
	long got;

	for (;;) {
		got = pr->merged(pr->ctx);
		t = now() - t0;
		if (got >= target || t >= timeout)
			break;
		if (verbose && t - last >= TTY_EVERY) {
			tty_progress(pr, got, t, false);
			last = t;
		}
		poll_sleep();
	}
	r->t99 = t;
	r->merged = got;
	r->timed_out = got < target;
	if (verbose)
		tty_progress(pr, got, t, true);
}

/* ---- workload memory ---------------------------------------------------- */

static void mem_layout(const struct workload *wl, struct mem *m)
{
	m->nr = wl->nr_regions;
	m->per = wl->n / wl->nr_regions;
	m->len = m->per * SP_PAGE_SIZE;
}

static uint64_t *page_at(const struct mem *m, unsigned long i)
{
	return (uint64_t *)(m->reg[i / m->per] + (i % m->per) * SP_PAGE_SIZE);
}

/* The workload's bytes: one xorshift64 sequence across all pages, in order. */
static void fill_mem(const struct workload *wl, const struct mem *m)
{
	uint64_t rng = XS_SEED;

	for (unsigned long i = 0; i < wl->n; i++)
		wl->fill(page_at(m, i), i, &rng);
}

/* One byte written to every duplicate page; us per page. */
static double cow(const struct workload *wl, const struct mem *m, long *pages)
{
	double t0 = now(), t;
	long nr = 0;

	for (unsigned long i = 0; i < wl->n; i++) {
		if (!wl->dup(i))
			continue;
		*(volatile char *)page_at(m, i) = 1;
		nr++;
	}
	t = now() - t0;
	*pages = nr;
	return nr ? t * 1e6 / (double)nr : 0;
}

/* ---- the kernel's KSM ---------------------------------------------------- */

static long kernel_merged(void *ctx)
{
	return get_long(KSM_DIR "pages_sharing") - *(long *)ctx;
}

static void kernel_map(const struct workload *wl, struct mem *m)
{
	mem_layout(wl, m);
	for (unsigned r = 0; r < m->nr; r++) {
		void *p = mmap(NULL, m->len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
			       -1, 0);

		if (p == MAP_FAILED)
			die_call("mmap(MAP_PRIVATE | MAP_ANONYMOUS)");
		m->reg[r] = p;
	}
}

static void kernel_advise(const struct mem *m)
{
	for (unsigned r = 0; r < m->nr; r++)
		if (madvise(m->reg[r], m->len, MADV_MERGEABLE))
			die_call("madvise(MADV_MERGEABLE)");
}

static void kernel_unmap(const struct mem *m)
{
	for (unsigned r = 0; r < m->nr; r++)
		if (munmap(m->reg[r], m->len))
			die_call("munmap");
}

/* run=2, wait for pages_shared to reach 0, run=0, the saved knobs back. */
static void kernel_unmerge(void)
{
	double t0;

	set_knob(K_RUN, "2");
	t0 = now();
	while (get_long(KSM_DIR "pages_shared") > 0) {
		if (now() - t0 > UNMERGE_TIMEOUT) {
			fprintf(stderr,
				PROG ": warning: pages_shared still %ld after %.0f s of run=2\n",
				get_long(KSM_DIR "pages_shared"), UNMERGE_TIMEOUT);
			break;
		}
		poll_sleep();
	}
	set_knob(K_RUN, "0");
	saved.kernel_merging = 0;
	if (restore_knobs())
		die_call("restore the saved KSM knobs");
}

static void kernel_side(const struct workload *wl, const char *label, double timeout,
			struct side *r)
{
	char ksmd_dir[PATH_LEN];
	struct probe pr = { label, kernel_merged, NULL, wl->merge_away };
	long base;
	double cpu0, t0;
	struct mem m;

	thread_dir_of("/proc", "ksmd", ksmd_dir);
	tty_note("%s: filling %lu MiB", label, wl->n * SP_PAGE_SIZE / MIB);
	kernel_map(wl, &m);
	fill_mem(wl, &m);
	kernel_advise(&m);
	set_knob(K_PAGES_TO_SCAN, "100000");
	set_knob(K_SLEEP, "0");
	set_knob(K_ZERO_PAGES, "0");
	base = get_long(KSM_DIR "pages_sharing");
	if (base)
		fprintf(stderr, PROG ": warning: kernel pages_sharing is %ld before run=1\n", base);
	pr.ctx = &base;
	cpu0 = thread_cpu(ksmd_dir);
	saved.kernel_merging = 1;
	t0 = now();
	set_knob(K_RUN, "1");
	wait_merged(&pr, target_of(wl), timeout, t0, r);
	r->cpu = thread_cpu(ksmd_dir) - cpu0;
	r->scan_cpu = r->cpu;
	set_knob(K_RUN, "0"); /* stop scanning; merged pages stay merged */
	r->cow_us = cow(wl, &m, &r->cow_pages);
	kernel_unmap(&m);
	kernel_unmerge();
}

/* ---- samepage ------------------------------------------------------------ */

static void sp_set(sp_pool *pool, const char *knob, long val)
{
	char call[96];

	if (sp_ksm_set(pool, knob, val)) {
		snprintf(call, sizeof(call), "sp_ksm_set(pool, \"%s\", %ld)", knob, val);
		die_call(call);
	}
}

static long sp_get(sp_pool *pool, const char *name)
{
	char call[96];
	long v;

	if (sp_ksm_get(pool, name, &v)) {
		snprintf(call, sizeof(call), "sp_ksm_get(pool, \"%s\")", name);
		die_call(call);
	}
	return v;
}

static long sp_figure(sp_pool *pool, const char *name)
{
	char call[96];
	long v;

	if (sp_stat(pool, name, &v)) {
		snprintf(call, sizeof(call), "sp_stat(pool, \"%s\")", name);
		die_call(call);
	}
	return v;
}

static long sp_merged(void *ctx)
{
	return sp_get(ctx, "pages_sharing") + sp_get(ctx, "ksm_zero_pages");
}

static sp_pool *sp_create(const struct workload *wl)
{
	struct sp_pool_config cfg = { .section_size = SECTION_SIZE };
	size_t bytes = wl->n * SP_PAGE_SIZE;
	char call[96];
	sp_pool *pool;

	cfg.nr_sections = (unsigned)((bytes + SECTION_SIZE - 1) / SECTION_SIZE + SPARE_SECTIONS);
	pool = sp_pool_create(&cfg);
	if (!pool) {
		snprintf(call, sizeof(call), "sp_pool_create(64 MiB sections x %u)",
			 cfg.nr_sections);
		die_call(call);
	}
	return pool;
}

static void sp_map(sp_pool *pool, const struct workload *wl, struct mem *m)
{
	mem_layout(wl, m);
	for (unsigned r = 0; r < m->nr; r++) {
		m->reg[r] = sp_alloc(pool, m->len, SP_MERGEABLE);
		if (!m->reg[r])
			die_call("sp_alloc(pool, len, SP_MERGEABLE)");
	}
}

/* Knobs before filling: nothing scans until run=1. */
static void sp_knobs(sp_pool *pool, int zero_pages)
{
	sp_set(pool, "run", 0);
	sp_set(pool, "pages_to_scan", SCAN_PAGES);
	sp_set(pool, "sleep_millisecs", 0);
	sp_set(pool, "use_zero_pages", zero_pages);
}

static void sp_side(const struct workload *wl, const char *label, int zero_pages, double timeout,
		    struct side *r)
{
	char scan_dir[PATH_LEN];
	struct probe pr = { label, sp_merged, NULL, wl->merge_away };
	double scan0, self0, poll0, t0;
	sp_pool *pool;
	struct mem m;

	malloc_trim(0); /* what earlier rounds freed is not resident to be reused */
	r->meta[META_START] = meta_now();
	pool = sp_create(wl);
	pr.ctx = pool;
	sp_knobs(pool, zero_pages);
	tty_note("%s: filling %lu MiB (use_zero_pages=%d)", label, wl->n * SP_PAGE_SIZE / MIB,
		 zero_pages);
	sp_map(pool, wl, &m);
	fill_mem(wl, &m);
	r->meta[META_FILLED] = meta_now();
	r->res_before = sp_figure(pool, "bytes_resident");
	thread_dir_of("/proc/self/task", "sp-ksmd", scan_dir);
	scan0 = thread_cpu(scan_dir);
	self0 = rusage_cpu(RUSAGE_SELF);
	poll0 = rusage_cpu(RUSAGE_THREAD);
	t0 = now();
	sp_set(pool, "run", 1);
	wait_merged(&pr, target_of(wl), timeout, t0, r);
	r->poll_cpu = rusage_cpu(RUSAGE_THREAD) - poll0;
	r->cpu = rusage_cpu(RUSAGE_SELF) - self0 - r->poll_cpu;
	r->scan_cpu = thread_cpu(scan_dir) - scan0;
	r->meta[META_MERGED] = meta_now();
	r->res_after = sp_figure(pool, "bytes_resident");
	sp_set(pool, "run", 0); /* stop scanning; merged pages stay merged */
	r->cow_us = cow(wl, &m, &r->cow_pages);
	sp_pool_destroy(pool);
}

/* ---- W1 at the default vm.max_map_count (issue 11) --------------------- */

#define DEFAULT_MAP_COUNT 65530L
#define PLATEAU_S 3.0 /* no merge for this long: merging reached what the limit lets it */
#define MAX_SAMPLES 8192

struct limited {
	bool done;
	long merged, deferred, map_count, map_limit;
	double t99;
};

/*
 * The limit is lowered for this case only, under the lock every test that
 * changes it takes, and put back right after (and from the signal handlers
 * and at exit through saved.map_count, as the raise is).
 */
static int lower_map_count(long *before)
{
	int fd = open("/tmp/samepage-max-map-count.lock", O_RDWR | O_CREAT | O_CLOEXEC, 0666);
	char val[VAL_LEN];

	if (fd < 0 || flock(fd, LOCK_EX))
		die_path("lock", "/tmp/samepage-max-map-count.lock");
	*before = get_long(MAP_COUNT);
	if (!saved.map_count_raised) {
		snprintf(saved.map_count, sizeof(saved.map_count), "%ld", *before);
		saved.map_count_raised = 1;
	}
	snprintf(val, sizeof(val), "%ld", DEFAULT_MAP_COUNT);
	if (write_file(MAP_COUNT, val))
		die_path("write", MAP_COUNT);
	return fd;
}

static void put_map_count(int lock_fd, long before)
{
	char val[VAL_LEN];

	snprintf(val, sizeof(val), "%ld", before);
	if (write_file(MAP_COUNT, val))
		die_path("write", MAP_COUNT);
	close(lock_fd);
}

/* t99: when the merged count first reached 99% of where it settled. */
static double t99_of(const double *t, const long *got, int n, long final)
{
	for (int i = 0; i < n; i++)
		if (got[i] * 100 >= final * 99)
			return t[i];
	return n ? t[n - 1] : 0;
}

/* Merge until no page merged for PLATEAU_S (or the timeout): where it settled, and when. */
static long settle(sp_pool *pool, double timeout, double *t99)
{
	static double ts[MAX_SAMPLES];
	static long got[MAX_SAMPLES];
	double t0 = now(), t = 0, t_best = 0;
	long best = -1;
	int n = 0;

	sp_set(pool, "run", 1);
	while (t < timeout && (best < 0 || t - t_best < PLATEAU_S)) {
		long g = sp_merged(pool);

		t = now() - t0;
		if (g > best) {
			best = g;
			t_best = t;
		}
		if (n < MAX_SAMPLES) {
			ts[n] = t;
			got[n++] = g;
		}
		poll_sleep();
	}
	sp_set(pool, "run", 0);
	*t99 = t99_of(ts, got, n, best);
	return best;
}

static void limited_case(double timeout, struct limited *l)
{
	const struct workload *wl = &workloads[0];
	long before;
	int lock_fd = lower_map_count(&before);
	sp_pool *pool = sp_create(wl);
	struct mem m;

	sp_knobs(pool, wl->zero_pages);
	tty_note("W1 at vm.max_map_count=%ld: filling %lu MiB", DEFAULT_MAP_COUNT,
		 wl->n * SP_PAGE_SIZE / MIB);
	sp_map(pool, wl, &m);
	fill_mem(wl, &m);
	l->merged = settle(pool, timeout, &l->t99);
	l->deferred = sp_figure(pool, "merges_deferred");
	l->map_count = sp_figure(pool, "map_count");
	l->map_limit = sp_figure(pool, "map_limit");
	l->done = true;
	sp_pool_destroy(pool);
	put_map_count(lock_fd, before);
}

static void print_limited(const struct limited *l)
{
	const struct workload *wl = &workloads[0];

	printf("W1 at vm.max_map_count=%ld (samepage): merged away %ld of %ld (%.1f%%), "
	       "t99 %.3f s (to 99%% of that), merges_deferred %ld, map_count %ld of map_limit "
	       "%ld\n",
	       DEFAULT_MAP_COUNT, l->merged, wl->merge_away,
	       100.0 * (double)l->merged / (double)wl->merge_away, l->t99, l->deferred,
	       l->map_count, l->map_limit);
}

static void json_limited(const struct limited *l)
{
	if (l->done)
		printf(", \"w1_default_map_count\": {\"max_map_count\": %ld, \"merged\": %ld, "
		       "\"merge_away\": %ld, \"merges_deferred\": %ld, \"map_count\": %ld, "
		       "\"map_limit\": %ld, \"t99_s\": %.3f}",
		       DEFAULT_MAP_COUNT, l->merged, workloads[0].merge_away, l->deferred,
		       l->map_count, l->map_limit, l->t99);
}

/* ---- figures over the rounds ------------------------------------------------ */

enum fig { F_T99, F_CPU, F_SCAN, F_COW, NR_FIGS };

static const char *const fig_label[NR_FIGS] = { "t99 (s)", "CPU (s)", "scanner CPU (s)",
						"COW (us/page)" };
static const char *const fig_key[NR_FIGS] = { "t99", "cpu", "scanner_cpu", "cow" };

/* One side's figure in one round; NAN where it does not count (a timeout). */
static double fig_of(const struct side *s, enum fig f)
{
	switch (f) {
	case F_T99:
		return s->timed_out ? NAN : s->t99;
	case F_CPU:
		return s->timed_out ? NAN : s->cpu;
	case F_SCAN:
		return s->timed_out ? NAN : s->scan_cpu;
	default:
		return s->cow_us;
	}
}

static struct spread side_spread(const struct result *r, const struct side *sides, enum fig f)
{
	double v[MAX_ROUNDS];

	for (unsigned i = 0; i < r->rounds; i++)
		v[i] = fig_of(&sides[i], f);
	return spread_of(v, r->rounds);
}

/* samepage/kernel per round; the kernel's scanner CPU is ksmd's. */
static struct spread ratio_spread(const struct result *r, enum fig f)
{
	double v[MAX_ROUNDS];

	for (unsigned i = 0; i < r->rounds; i++)
		v[i] = ratio_of(fig_of(&r->s[i], f), fig_of(&r->k[i], f));
	return spread_of(v, r->rounds);
}

static unsigned timeouts(const struct result *r, const struct side *sides)
{
	unsigned n = 0;

	for (unsigned i = 0; i < r->rounds; i++)
		n += sides[i].timed_out;
	return n;
}

/* Metadata: RssAnon growth from the pool's creation to point, bytes per region page. */
static struct spread meta_per_page(const struct workload *wl, const struct result *r, int point)
{
	double v[MAX_ROUNDS];

	for (unsigned i = 0; i < r->rounds; i++) {
		const struct meta *m = r->s[i].meta;

		v[i] = (double)(m[point].rss_anon_kb - m[META_START].rss_anon_kb) * 1024.0 /
		       (double)wl->n;
	}
	return spread_of(v, r->rounds);
}

static struct spread vmas_at(const struct result *r, int point)
{
	double v[MAX_ROUNDS];

	for (unsigned i = 0; i < r->rounds; i++)
		v[i] = (double)r->s[i].meta[point].vmas;
	return spread_of(v, r->rounds);
}

static struct spread side_long(const struct result *r, const struct side *sides, size_t off)
{
	double v[MAX_ROUNDS];

	for (unsigned i = 0; i < r->rounds; i++)
		v[i] = (double)*(const long *)((const char *)&sides[i] + off);
	return spread_of(v, r->rounds);
}

/* ---- output -------------------------------------------------------------- */

static void print_fig_row(const struct result *r, enum fig f)
{
	const char *fmt = f == F_COW ? "%.2f" : "%.3f";
	struct spread k = side_spread(r, r->k, f), s = side_spread(r, r->s, f);
	char kb[24] = "-", sb[24] = "-", rb[64];

	if (k.n)
		snprintf(kb, sizeof(kb), fmt, k.med);
	if (s.n)
		snprintf(sb, sizeof(sb), fmt, s.med);
	printf("  %-16s %9s %9s   %s\n", fig_label[f], kb, sb,
	       spread_str(rb, sizeof(rb), ratio_spread(r, f), "%.2f"));
}

static void print_meta(const struct workload *wl, const struct result *r, long vma_b)
{
	struct spread before = meta_per_page(wl, r, META_FILLED);
	struct spread after = meta_per_page(wl, r, META_MERGED);
	struct spread v0 = vmas_at(r, META_FILLED), v1 = vmas_at(r, META_MERGED);
	char a[64], b[64];

	printf("  samepage metadata (RssAnon growth, B per region page): %s before merging, "
	       "%s at t99\n",
	       spread_str(a, sizeof(a), before, "%.1f"), spread_str(b, sizeof(b), after, "%.1f"));
	printf("  kernel side: %.0f pool VMAs before merging, %.0f at t99, about %.1f MiB "
	       "(%.1f B per region page; %ld B per VMA)\n",
	       v0.med, v1.med, v1.med * (double)vma_b / MIB, v1.med * (double)vma_b / (double)wl->n,
	       vma_b);
}

static void print_counts(const struct workload *wl, const struct result *r)
{
	struct spread km = side_long(r, r->k, offsetof(struct side, merged));
	struct spread sm = side_long(r, r->s, offsetof(struct side, merged));
	unsigned kt = timeouts(r, r->k), st = timeouts(r, r->s);
	double pc[MAX_ROUNDS];

	for (unsigned i = 0; i < r->rounds; i++)
		pc[i] = r->s[i].poll_cpu;
	printf("  merged away (median): kernel %.0f, samepage %.0f of %ld; COW on %ld pages; "
	       "poller CPU %.3f s (not counted)\n",
	       km.med, sm.med, wl->merge_away, r->k[0].cow_pages, median_of(pc, r->rounds));
	if (kt || st)
		printf("  * timed out before 99%%: kernel %u, samepage %u of %u rounds (their t99 "
		       "and CPU left out)\n",
		       kt, st, r->rounds);
}

static void print_workload(const struct workload *wl, const struct result *r, long vma_b)
{
	printf("%s %s: %lu pages in %u mapping%s, %ld merge away (99%%: %ld); samepage "
	       "use_zero_pages=%d\n",
	       wl->name, wl->desc, wl->n, wl->nr_regions, wl->nr_regions > 1 ? "s" : "",
	       wl->merge_away, target_of(wl), r->zero_pages);
	printf("  %-16s %9s %9s   %s\n", "", "kernel", "samepage", "ratio median [min - max]");
	for (int f = 0; f < NR_FIGS; f++)
		print_fig_row(r, f);
	print_meta(wl, r, vma_b);
	print_counts(wl, r);
	printf("\n");
}

static void print_table(const struct opts *o, const struct result *res, long vma_b)
{
	char date[40], c[NR_FIGS][64];

	printf("KSM: kernel vs samepage, %u interleaved rounds (kernel, samepage, kernel, ...), "
	       "%s\n",
	       o->rounds, iso_date(date, sizeof(date)));
	printf("Scanner at full speed on both sides (pages_to_scan=%d, sleep_millisecs=0), "
	       "timeout %g s.\n",
	       SCAN_PAGES, o->timeout);
	printf("t99: s from run=1 until 99%% of the pages that merge away have merged.\n"
	       "CPU, over that time: kernel ksmd's; samepage the whole process's (every thread "
	       "but this\nprogram's poller). Scanner CPU: ksmd against samepage's sp-ksmd thread "
	       "alone.\nCOW: one write to every duplicate page after merging, scanner stopped. "
	       "Kernel use_zero_pages=0.\nSides: medians of the rounds; ratio = samepage/kernel "
	       "per round, median [min - max].\n\n");
	for (int w = 0; w < NR_WORKLOADS; w++)
		if (res[w].done)
			print_workload(&workloads[w], &res[w], vma_b);
	printf("ratios samepage/kernel, median [min - max] of %u rounds\n", o->rounds);
	printf("%-4s", "");
	for (int f = 0; f < NR_FIGS; f++)
		printf("  %-*s", f < NR_FIGS - 1 ? 22 : 0, fig_key[f]);
	printf("\n");
	for (int w = 0; w < NR_WORKLOADS; w++) {
		if (!res[w].done)
			continue;
		printf("%-4s", workloads[w].name);
		for (int f = 0; f < NR_FIGS; f++)
			printf("  %-*s", f < NR_FIGS - 1 ? 22 : 0,
			       spread_str(c[f], sizeof(c[f]), ratio_spread(&res[w], f), "%.2f"));
		printf("\n");
	}
}

/* "key": [v0, v1, ...] of one field of a side over the rounds (a long if fmt is NULL). */
static void json_rounds(const char *key, const struct result *r, const struct side *sides,
			size_t off, const char *fmt)
{
	printf("\"%s\": [", key);
	for (unsigned i = 0; i < r->rounds; i++) {
		const char *p = (const char *)&sides[i] + off;

		printf("%s", i ? ", " : "");
		if (fmt)
			printf(fmt, *(const double *)p);
		else
			printf("%ld", *(const long *)p);
	}
	printf("], ");
}

static void json_timeouts(const struct result *r, const struct side *sides)
{
	printf("\"timed_out\": [");
	for (unsigned i = 0; i < r->rounds; i++)
		printf("%s%s", i ? ", " : "", sides[i].timed_out ? "true" : "false");
	printf("], ");
}

static void json_side(const char *who, const struct result *r, const struct side *sides, bool sp)
{
	printf("\"%s\": {", who);
	json_rounds("t99_s", r, sides, offsetof(struct side, t99), "%.4f");
	json_timeouts(r, sides);
	json_rounds("merged", r, sides, offsetof(struct side, merged), NULL);
	json_rounds("cpu_s", r, sides, offsetof(struct side, cpu), "%.4f");
	if (sp) {
		json_rounds("scanner_cpu_s", r, sides, offsetof(struct side, scan_cpu), "%.4f");
		json_rounds("poller_cpu_s", r, sides, offsetof(struct side, poll_cpu), "%.4f");
		json_rounds("bytes_resident_before", r, sides, offsetof(struct side, res_before),
			    NULL);
		json_rounds("bytes_resident_after", r, sides, offsetof(struct side, res_after),
			    NULL);
	}
	json_rounds("cow_us_per_page", r, sides, offsetof(struct side, cow_us), "%.3f");
	printf("\"cow_pages\": %ld, \"median\": {", sides[0].cow_pages);
	for (int f = 0; f < NR_FIGS; f++) {
		if (f == F_SCAN && !sp)
			continue;
		printf("%s\"%s\": ", f ? ", " : "", fig_key[f]);
		json_number(side_spread(r, sides, f).med, "%.4f");
	}
	printf("}}, ");
}

static void json_meta(const struct workload *wl, const struct result *r, long vma_b)
{
	double vmas = vmas_at(r, META_MERGED).med;

	printf("\"metadata\": {");
	json_spread("rss_anon_bytes_per_page_before", meta_per_page(wl, r, META_FILLED), "%.2f");
	printf(", ");
	json_spread("rss_anon_bytes_per_page_after", meta_per_page(wl, r, META_MERGED), "%.2f");
	printf(", \"pool_vmas_before\": %.0f, \"pool_vmas_after\": %.0f, "
	       "\"kernel_bytes_per_vma\": %ld, \"kernel_vma_bytes_after\": %.0f, "
	       "\"kernel_vma_bytes_per_page_after\": %.2f}, ",
	       vmas_at(r, META_FILLED).med, vmas, vma_b, vmas * (double)vma_b,
	       vmas * (double)vma_b / (double)wl->n);
}

static void json_workload(const struct workload *wl, const struct result *r, long vma_b, bool comma)
{
	printf("{\"name\": \"%s\", \"pages\": %lu, \"merge_away\": %ld, \"target\": %ld, "
	       "\"samepage_use_zero_pages\": %d, \"rounds\": %u, ",
	       wl->name, wl->n, wl->merge_away, target_of(wl), r->zero_pages, r->rounds);
	json_side("kernel", r, r->k, false);
	json_side("samepage", r, r->s, true);
	json_meta(wl, r, vma_b);
	printf("\"ratio\": {");
	for (int f = 0; f < NR_FIGS; f++) {
		printf("%s", f ? ", " : "");
		json_spread(fig_key[f], ratio_spread(r, f), "%.4f");
	}
	printf("}}%s", comma ? ", " : "");
}

static void print_json(const struct opts *o, const struct result *res, long vma_b,
		       const struct limited *l)
{
	char date[40];
	int last = -1;

	for (int w = 0; w < NR_WORKLOADS; w++)
		if (res[w].done)
			last = w;
	printf("{\"date\": \"%s\", \"rounds\": %u, \"pages_to_scan\": %d, \"sleep_millisecs\": 0, "
	       "\"timeout_s\": %g, \"kernel_use_zero_pages\": 0, \"workloads\": [",
	       iso_date(date, sizeof(date)), o->rounds, SCAN_PAGES, o->timeout);
	for (int w = 0; w < NR_WORKLOADS; w++)
		if (res[w].done)
			json_workload(&workloads[w], &res[w], vma_b, w != last);
	printf("]");
	json_limited(l);
	printf("}\n");
}

/* ---- arguments and main --------------------------------------------------- */

static int workload_index(const char *s, size_t len)
{
	for (int w = 0; w < NR_WORKLOADS; w++)
		if (len == strlen(workloads[w].name) && !strncasecmp(s, workloads[w].name, len))
			return w;
	return -1;
}

static void parse_workloads(const char *arg, struct opts *o)
{
	const char *p = arg;

	if (!arg)
		bad_arg("missing value after", "--workloads");
	memset(o->want, 0, sizeof(o->want));
	for (;;) {
		size_t len = strcspn(p, ",");
		int w = workload_index(p, len);

		if (w < 0) {
			fprintf(stderr,
				PROG ": --workloads wants a comma-separated list of W1, W2, "
				     "W3, W4, got '%s'\n",
				arg);
			exit(2);
		}
		o->want[w] = true;
		if (!p[len])
			break;
		p += len + 1;
	}
}

static double parse_timeout(const char *arg)
{
	char *end;
	double v;

	if (!arg)
		bad_arg("missing value after", "--timeout");
	errno = 0;
	v = strtod(arg, &end);
	if (errno || end == arg || *end || !(v > 0 && v <= MAX_TIMEOUT)) {
		fprintf(stderr, PROG ": --timeout wants seconds in (0, %.0f], got '%s'\n",
			MAX_TIMEOUT, arg);
		exit(2);
	}
	return v;
}

static int parse_zero_pages(const char *arg)
{
	if (!arg)
		bad_arg("missing value after", "--zero-pages");
	if (strcmp(arg, "0") && strcmp(arg, "1")) {
		fprintf(stderr, PROG ": --zero-pages wants 0 or 1, got '%s'\n", arg);
		exit(2);
	}
	return arg[0] - '0';
}

static void usage(void)
{
	printf(USAGE "\n"
		     "  --workloads L   comma-separated, of W1 W2 W3 W4 (default all)\n"
		     "  --rounds N      interleaved rounds per workload, medians reported "
		     "(default %u, at most %u)\n"
		     "  --json          one JSON object instead of the table\n"
		     "  --zero-pages N  samepage's use_zero_pages for every workload (default: 1 "
		     "for W2 and W4, 0 otherwise)\n"
		     "  --timeout S     seconds to wait for 99%% merged, per side per round "
		     "(default %.0f)\n",
	       DEF_ROUNDS, MAX_ROUNDS, DEF_TIMEOUT);
	exit(0);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
	memset(o, 0, sizeof(*o));
	for (int w = 0; w < NR_WORKLOADS; w++)
		o->want[w] = true;
	o->zero_pages = -1;
	o->rounds = DEF_ROUNDS;
	o->timeout = DEF_TIMEOUT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json"))
			o->json = true;
		else if (!strcmp(a, "--workloads"))
			parse_workloads(argv[++i], o);
		else if (!strcmp(a, "--rounds"))
			o->rounds = (unsigned)arg_num(a, argv[++i], 1, MAX_ROUNDS);
		else if (!strcmp(a, "--timeout"))
			o->timeout = parse_timeout(argv[++i]);
		else if (!strcmp(a, "--zero-pages"))
			o->zero_pages = parse_zero_pages(argv[++i]);
		else if (!strcmp(a, "-h") || !strcmp(a, "--help"))
			usage();
		else
			bad_arg("unknown argument", a);
	}
}

static void run_workload(const struct workload *wl, const struct opts *o, struct result *r)
{
	char label[48];

	r->zero_pages = o->zero_pages >= 0 ? o->zero_pages : wl->zero_pages;
	r->rounds = o->rounds;
	for (unsigned i = 0; i < o->rounds; i++) {
		snprintf(label, sizeof(label), "%s kernel %u/%u", wl->name, i + 1, o->rounds);
		kernel_side(wl, label, o->timeout, &r->k[i]);
		snprintf(label, sizeof(label), "%s samepage %u/%u", wl->name, i + 1, o->rounds);
		sp_side(wl, label, r->zero_pages, o->timeout, &r->s[i]);
	}
	r->done = true;
}

int main(int argc, char **argv)
{
	static struct result res[NR_WORKLOADS];
	struct limited limited = { 0 };
	struct opts o;
	long vma_b;

	parse_args(argc, argv, &o);
	verbose = isatty(STDERR_FILENO);
	clk_tck = sysconf(_SC_CLK_TCK);
	if (clk_tck <= 0)
		die_call("sysconf(_SC_CLK_TCK)");
	catch_exit_signals(on_signal);
	check_root();
	take_lock();
	check_map_count();
	save_knobs();
	vma_b = vma_bytes();
	for (int w = 0; w < NR_WORKLOADS; w++)
		if (o.want[w])
			run_workload(&workloads[w], &o, &res[w]);
	if (o.want[0])
		limited_case(o.timeout, &limited);
	if (restore_all())
		die_call("restore the saved KSM knobs and vm.max_map_count");
	check_knobs();
	if (o.json) {
		print_json(&o, res, vma_b, &limited);
	} else {
		print_table(&o, res, vma_b);
		if (limited.done)
			print_limited(&limited);
	}
	return 0;
}
