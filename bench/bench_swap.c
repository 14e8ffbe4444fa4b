/* SPDX-License-Identifier: MIT */
/*
 * bench_swap: samepage's swap against file I/O and against the kernel's own
 * swap, in the same run, in interleaved rounds (medians and min/max spreads).
 *
 *   bench_swap [--size MiB] [--pool MiB] [--dir DIR] [--rounds N] [--json]
 *              [--no-kernel]
 *
 * Per round:
 *  1. swap-out and swap-in throughput of a pool region of --size MiB against
 *     pwrite/pread of the same bytes, 4 KiB at a time, to a file in --dir
 *     (target: at least 0.7x);
 *  2. a random swap-in fault: pages of a swapped-out region touched at
 *     random, samepage's (one page, no read-ahead) against the kernel's major
 *     fault from a swap file (a child in a memory cgroup, its region pushed
 *     out with memory.force_empty or memory.reclaim; only the touches that
 *     were major faults are timed, so read-ahead hits are left out);
 *  3. a working set 1.5 times the memory it has: samepage's in a pool of
 *     --pool MiB against a pool of twice that; the kernel's as anonymous
 *     memory of a child in a memory cgroup limited to --pool MiB against the
 *     same child without a limit. The phases, the same on every side: the
 *     regions written in order; 32 touches per page at random, 90% of them to
 *     a hot third, each reading a page and writing a word of it; every page
 *     read back and checked. The figure is each side's slowdown (limited over
 *     roomy) and samepage's slowdown over the kernel's.
 *
 * The kernel's side needs root: it makes a memory cgroup (v1 or v2, whichever
 * has the memory controller) and, if no swap is active, a swap file in --dir
 * (so on the same disk as samepage's; mkswap, swapon). Both are removed on
 * every way out: at exit, on a failed call, and on SIGINT, SIGTERM or SIGHUP.
 * Without root, or with --no-kernel, it is left out and says why.
 *
 * Only the public API (samepage.h), libc, /proc, /sys and mkswap are used.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/swap.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "samepage.h"

#define PROG "bench_swap"
#define USAGE \
	"usage: " PROG " [--size MiB] [--pool MiB] [--dir DIR] [--rounds N] [--json] [--no-kernel]"
#define MIB (1UL << 20)
#define MAX_ROUNDS 20U
#define PATH_LEN 512
#define RAND_TOUCHES 2000
#define WS_REGION_PAGES 4096 /* 16 MiB regions */
#define WS_TOUCHES_PER_PAGE 32
#define SWAPFILE_MIN_MIB 256
#define XS_SEED 88172645463325252ull
#define PM_SWAPPED (1ull << 62) /* /proc/PID/pagemap: the page is in swap */

extern char **environ;

/* ---- what this program changed, undone from anywhere (async-signal-safe) -- */

static struct {
	char cg[PATH_LEN]; /* the memory cgroup made for the kernel's side */
	char swapfile[PATH_LEN]; /* the swap file made for it */
	char files[4][PATH_LEN]; /* samepage's swap files and the plain file */
	volatile sig_atomic_t cg_made, swapfile_made, swap_on;
	volatile pid_t child; /* a child to kill first */
} undo;

static void cleanup(void)
{
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	pid_t child = undo.child;

	if (child > 0) {
		kill(child, SIGKILL);
		waitpid(child, NULL, 0);
		undo.child = 0;
	}
	/* A cgroup whose last task just went may be busy for a moment. */
	for (int i = 0; undo.cg_made && i < 100; i++) {
		if (!rmdir(undo.cg) || errno == ENOENT)
			undo.cg_made = 0;
		else
			nanosleep(&pause, NULL);
	}
	if (undo.swap_on && (!swapoff(undo.swapfile) || errno == EINVAL))
		undo.swap_on = 0;
	if (undo.swapfile_made && !undo.swap_on && (!unlink(undo.swapfile) || errno == ENOENT))
		undo.swapfile_made = 0;
	for (int i = 0; i < 4; i++)
		if (undo.files[i][0])
			unlink(undo.files[i]);
}

static void on_signal(int sig)
{
	cleanup();
	exit_on_signal(sig, undo.cg_made || undo.swap_on || undo.swapfile_made,
		       PROG ": interrupted; cgroup, swap file and files removed\n",
		       PROG ": interrupted; REMOVING the cgroup or swap file FAILED\n");
}

/* In a child: the parent's handlers and cleanup are not its own. */
static void child_signals(void)
{
	sigset_t none;

	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* ---- helpers ---------------------------------------------------- */

/* dir/name into buf; false if it does not fit. */
static bool path_in(char *buf, const char *dir, const char *name)
{
	return (size_t)snprintf(buf, PATH_LEN, "%s/%s", dir, name) < PATH_LEN;
}

static void fill(char *p, size_t len, uint64_t seed)
{
	for (size_t i = 0; i < len / 8; i++)
		((uint64_t *)p)[i] = (seed + i) * 0x9E3779B97F4A7C15ull;
}

static uint64_t xorshift64(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* ---- samepage against file I/O -------------------------------------------- */

/* Plain I/O of the same bytes: the baseline. */
static void plain(const char *dir, char *buf, size_t len, double *out_s, double *in_s)
{
	const char *path = undo.files[0];
	int fd;

	snprintf(undo.files[0], PATH_LEN, "%s/bench_swap_plain.%d", dir, getpid());
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
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

/* The swap file of a pool: dir/bench_swap_TAG.PID, known to cleanup(). */
static const char *pool_swap_path(int slot, const char *dir, const char *tag)
{
	snprintf(undo.files[slot], PATH_LEN, "%s/bench_swap_%s.%d", dir, tag, getpid());
	return undo.files[slot];
}

/*
 * A pool with len bytes of swap and a region of len bytes in it, filled and
 * then swapped out; the seconds the swap-out took in *out_s.
 */
static char *swapped_region(const char *path, size_t len, sp_pool **pool, double *out_s)
{
	struct sp_pool_config cfg = { .section_size = 64 << 20,
				      .nr_sections = (unsigned)(len / (64 << 20) + 1),
				      .swap_path = path,
				      .swap_size = len,
				      .flags = SP_POOL_NO_KSMD };
	char *r;

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
	char *r = swapped_region(pool_swap_path(1, dir, "pool"), len, &pool, out_s);

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
	uint64_t x = XS_SEED, sink = 0;
	size_t pages = len / SP_PAGE_SIZE;
	long faults;
	sp_pool *pool;
	double t;
	char *r = swapped_region(pool_swap_path(2, dir, "rand"), len, &pool, &t);

	t = now();
	for (size_t i = 0; i < RAND_TOUCHES; i++)
		sink += *(volatile uint64_t *)(r + (xorshift64(&x) >> 20) % pages * SP_PAGE_SIZE);
	t = now() - t;
	sp_stat(pool, "faults_swapin", &faults);
	(void)sink;
	sp_pool_destroy(pool);
	return t / (double)(faults ? faults : 1) * 1e6;
}

/* ---- the working set, the same on every side -------------------------------- */

/* Seconds of each phase; bad pages counted; what each side says it did. */
struct ws_result {
	double write_s, touch_s, check_s;
	long bad;
	long reclaimed, swapped_in, direct; /* samepage */
	long major; /* kernel: major faults */
};

/* pages of memory in regions of per pages each; gen: each page's generation. */
struct ws_mem {
	char **r;
	size_t per, pages;
	unsigned *gen;
};

static uint64_t ws_word(size_t page, unsigned gen)
{
	return (page + 1) * 0x9E3779B97F4A7C15ull + gen;
}

static char *ws_page(const struct ws_mem *w, size_t i)
{
	return w->r[i / w->per] + i % w->per * SP_PAGE_SIZE;
}

static void ws_phases(const struct ws_mem *w, struct ws_result *res)
{
	size_t touches = w->pages * WS_TOUCHES_PER_PAGE;
	uint64_t x = XS_SEED;
	double t = now();

	for (size_t i = 0; i < w->pages; i++) {
		fill(ws_page(w, i), SP_PAGE_SIZE, ws_word(i, 0));
		*(uint64_t *)ws_page(w, i) = ws_word(i, 0);
	}
	res->write_s = now() - t;
	t = now();
	for (size_t n = 0; n < touches; n++) {
		size_t i;

		xorshift64(&x);
		i = (x >> 8) % 10 ? (x >> 20) % (w->pages / 3) : (x >> 20) % w->pages;
		if (*(volatile uint64_t *)ws_page(w, i) != ws_word(i, w->gen[i]))
			res->bad++;
		/* The first word carries the generation; the rest stay as filled. */
		*(uint64_t *)ws_page(w, i) = ws_word(i, ++w->gen[i]);
	}
	res->touch_s = now() - t;
	t = now();
	for (size_t i = 0; i < w->pages; i++) {
		uint64_t *p = (uint64_t *)ws_page(w, i);

		res->bad += p[0] != ws_word(i, w->gen[i]);
		for (size_t j = 1; j < SP_PAGE_SIZE / 8; j++)
			res->bad += p[j] != (ws_word(i, 0) + j) * 0x9E3779B97F4A7C15ull;
	}
	res->check_s = now() - t;
}

static bool ws_alloc(struct ws_mem *w, size_t ws_mib)
{
	w->pages = (ws_mib << 20) / SP_PAGE_SIZE;
	w->per = WS_REGION_PAGES;
	w->gen = calloc(w->pages, sizeof(*w->gen));
	w->r = calloc((w->pages + w->per - 1) / w->per, sizeof(*w->r));
	return w->gen && w->r;
}

static void ws_free(struct ws_mem *w)
{
	free(w->gen);
	free(w->r);
}

/* samepage: the working set in a pool of pool_mib. */
static void ws_samepage(const char *dir, size_t pool_mib, size_t ws_mib, struct ws_result *res)
{
	const size_t sec = 16 << 20;
	struct sp_pool_config cfg = { .section_size = sec,
				      .nr_sections = (unsigned)((pool_mib << 20) / sec),
				      .swap_path = pool_swap_path(3, dir, "ws"),
				      .swap_size = (ws_mib << 20) + (16 << 20),
				      .flags = SP_POOL_NO_KSMD };
	struct ws_mem w;
	sp_pool *pool;

	pool = sp_pool_create(&cfg);
	if (!pool || !ws_alloc(&w, ws_mib))
		die("working set pool");
	for (size_t k = 0; k * w.per < w.pages; k++)
		if (!(w.r[k] = sp_alloc(pool, w.per * SP_PAGE_SIZE, 0)))
			die("sp_alloc (working set)");
	ws_phases(&w, res);
	sp_stat(pool, "reclaim_pages", &res->reclaimed);
	sp_stat(pool, "faults_swapin", &res->swapped_in);
	sp_stat(pool, "reclaim_direct", &res->direct);
	sp_pool_destroy(pool);
	ws_free(&w);
}

static double ws_total(const struct ws_result *w)
{
	return w->write_s + w->touch_s + w->check_s;
}

/* ---- the kernel's side: a memory cgroup and a swap file ------------------------ */

struct kernel {
	bool on; /* measured */
	char why[160]; /* why not */
	int cg_version; /* 1 or 2 */
	bool swap_made; /* a swap file of our own (else an active swap was used) */
	size_t swap_mib;
	char swappiness[16]; /* the cgroup's (v1) or the machine's */
};

/* The mount point of the memory cgroup controller; its version in *v. */
static bool find_memcg(char *mnt, int *v)
{
	char dev[256], dir[PATH_LEN], type[64], opts[1024], ctl[256], path[PATH_LEN];
	FILE *f = fopen("/proc/self/mounts", "re");
	bool found = false, v2 = false;
	char v2dir[PATH_LEN] = "";

	if (!f)
		return false;
	while (!found && fscanf(f, "%255s %511s %63s %1023s %*d %*d", dev, dir, type, opts) == 4) {
		char *o, *save = NULL;

		if (!strcmp(type, "cgroup2") && !v2) {
			snprintf(v2dir, sizeof(v2dir), "%s", dir);
			v2 = true;
		}
		if (strcmp(type, "cgroup"))
			continue;
		for (o = strtok_r(opts, ",", &save); o; o = strtok_r(NULL, ",", &save))
			found |= !strcmp(o, "memory");
		if (found)
			snprintf(mnt, PATH_LEN, "%s", dir);
	}
	fclose(f);
	if (found) {
		*v = 1;
		return true;
	}
	/* v2: the controller must be there and enabled for the root's children. */
	if (!v2 || !path_in(path, v2dir, "cgroup.subtree_control") ||
	    read_file(path, ctl, sizeof(ctl)) || !strstr(ctl, "memory"))
		return false;
	snprintf(mnt, PATH_LEN, "%s", v2dir);
	*v = 2;
	return true;
}

static const struct kernel *kern; /* the kernel's side, for the children too */

/* A file of the cgroup: its v1 name or its v2 name. */
static const char *cg_file(const char *v1, const char *v2)
{
	static char path[PATH_LEN];

	if (!path_in(path, undo.cg, kern->cg_version == 1 ? v1 : v2))
		path[0] = '\0';
	return path;
}

/* The cgroup's memory limit in bytes; 0: none. */
static int cg_limit(size_t bytes)
{
	char val[32];

	if (bytes)
		snprintf(val, sizeof(val), "%zu", bytes);
	else
		snprintf(val, sizeof(val), "%s", kern->cg_version == 1 ? "-1" : "max");
	return write_file(cg_file("memory.limit_in_bytes", "memory.max"), val);
}

static bool make_cgroup(struct kernel *k)
{
	char mnt[PATH_LEN], name[64], path[PATH_LEN];

	if (!find_memcg(mnt, &k->cg_version)) {
		snprintf(k->why, sizeof(k->why),
			 "no memory cgroup controller mounted (v1) or enabled (v2)");
		return false;
	}
	snprintf(name, sizeof(name), "samepage-bench-swap.%d", getpid());
	if (!path_in(undo.cg, mnt, name)) {
		snprintf(k->why, sizeof(k->why), "cgroup path too long");
		return false;
	}
	undo.cg_made = 1; /* before: a signal right after mkdir finds it */
	if (mkdir(undo.cg, 0755)) {
		undo.cg_made = 0;
		snprintf(k->why, sizeof(k->why), "mkdir %.100s: %s", undo.cg, strerror(errno));
		return false;
	}
	/* The swappiness the cgroup's reclaim uses: its own (v1), else the machine's. */
	if ((k->cg_version != 1 || !path_in(path, undo.cg, "memory.swappiness") ||
	     read_file(path, k->swappiness, sizeof(k->swappiness))) &&
	    read_file("/proc/sys/vm/swappiness", k->swappiness, sizeof(k->swappiness)))
		snprintf(k->swappiness, sizeof(k->swappiness), "?");
	return true;
}

/* Whether /proc/swaps lists a swap area below its header line. */
static bool swap_active(void)
{
	return count_lines("/proc/swaps", NULL) > 1;
}

/* Run mkswap on path; 0 if it said so. */
static int run_mkswap(const char *path)
{
	static const char *const where[] = { "/usr/sbin/mkswap", "/sbin/mkswap", "mkswap" };
	char *argv[] = { (char *)"mkswap", (char *)"-q", (char *)path, NULL };
	int status = -1;
	pid_t pid;

	for (unsigned i = 0; i < sizeof(where) / sizeof(where[0]); i++) {
		if (posix_spawnp(&pid, where[i], NULL, NULL, argv, environ))
			continue;
		undo.child = pid;
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		undo.child = 0;
		return WIFEXITED(status) && !WEXITSTATUS(status) ? 0 : -1;
	}
	errno = ENOENT;
	return -1;
}

/* A swap file of mib MiB in dir, written out (no holes), mkswap'd, swapon'd. */
static bool make_swap(struct kernel *k, const char *dir, size_t mib)
{
	static char zeros[1 << 20];
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "bench_swap_kernel.%d", getpid());
	if (!path_in(undo.swapfile, dir, name)) {
		snprintf(k->why, sizeof(k->why), "swap file path too long");
		return false;
	}
	undo.swapfile_made = 1;
	fd = open(undo.swapfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		undo.swapfile_made = 0;
		goto out_err;
	}
	for (size_t i = 0; i < mib; i++)
		if (write(fd, zeros, sizeof(zeros)) != (ssize_t)sizeof(zeros)) {
			close(fd);
			goto out_err;
		}
	if (fsync(fd) | close(fd)) /* both, whatever the first says */
		goto out_err;
	if (run_mkswap(undo.swapfile)) {
		snprintf(k->why, sizeof(k->why), "mkswap %.100s failed", undo.swapfile);
		return false;
	}
	undo.swap_on = 1;
	if (swapon(undo.swapfile, 0)) {
		undo.swap_on = 0;
		goto out_err;
	}
	k->swap_made = true;
	k->swap_mib = mib;
	return true;

out_err:
	snprintf(k->why, sizeof(k->why), "swap file %.100s: %s", undo.swapfile, strerror(errno));
	return false;
}

static void kernel_setup(struct kernel *k, const char *dir, size_t swap_mib, bool skip)
{
	if (skip) {
		snprintf(k->why, sizeof(k->why), "--no-kernel");
		return;
	}
	if (geteuid() != 0) {
		snprintf(k->why, sizeof(k->why), "needs root (a memory cgroup and a swap file)");
		return;
	}
	if (!make_cgroup(k))
		goto out_undo;
	if (!swap_active() && !make_swap(k, dir, swap_mib))
		goto out_undo;
	k->on = true;
	return;

out_undo:
	cleanup();
	fprintf(stderr, PROG ": note: the kernel's swap is not measured: %s\n", k->why);
}

/*
 * Run fn in a child placed in the cgroup; its result (len bytes) in out.
 * Returns 0, or -1 (said why) if the child failed or died.
 */
static int in_child(void (*fn)(const void *arg, void *out), const void *arg, void *out, size_t len)
{
	sigset_t all, old;
	int fd[2], status;
	ssize_t n = 0, got;
	pid_t pid;

	if (pipe2(fd, O_CLOEXEC))
		die("pipe");
	memset(out, 0, len); /* the child counts from zero in its copy */
	fflush(NULL);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, &old); /* no handler of ours runs in the child */
	pid = fork();
	if (pid == 0) {
		char val[32];

		child_signals();
		close(fd[0]);
		snprintf(val, sizeof(val), "%d", getpid());
		if (write_file(cg_file("cgroup.procs", "cgroup.procs"), val))
			_exit(3);
		fn(arg, out);
		_exit(write(fd[1], out, len) == (ssize_t)len ? 0 : 4);
	}
	undo.child = pid > 0 ? pid : 0;
	sigprocmask(SIG_SETMASK, &old, NULL);
	close(fd[1]);
	if (pid < 0)
		die("fork");
	while (n < (ssize_t)len) {
		got = read(fd[0], (char *)out + n, len - (size_t)n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		n += got;
	}
	close(fd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	undo.child = 0;
	if (n == (ssize_t)len && WIFEXITED(status) && !WEXITSTATUS(status))
		return 0;
	if (WIFSIGNALED(status))
		fprintf(stderr, PROG ": the kernel's child was killed by signal %d%s\n",
			WTERMSIG(status), WTERMSIG(status) == SIGKILL ? " (out of memory?)" : "");
	else
		fprintf(stderr, PROG ": the kernel's child failed (status %d)\n",
			WEXITSTATUS(status));
	return -1;
}

/* Anonymous memory of 4 KiB pages, as samepage's regions are. */
static char *anon(size_t len)
{
	char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		_exit(5);
	madvise(p, len, MADV_NOHUGEPAGE);
	return p;
}

static long major_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_majflt;
}

/* In the child: the working set in anonymous memory. */
static void ws_kernel_child(const void *arg, void *out)
{
	struct ws_result *res = out;
	size_t ws_mib = *(const size_t *)arg;
	struct ws_mem w;
	char *mem;
	long maj0;

	if (!ws_alloc(&w, ws_mib))
		_exit(5);
	mem = anon(w.pages * SP_PAGE_SIZE);
	for (size_t k = 0; k * w.per < w.pages; k++)
		w.r[k] = mem + k * w.per * SP_PAGE_SIZE;
	maj0 = major_faults();
	ws_phases(&w, res);
	res->major = major_faults() - maj0;
}

/* The kernel's random fault, and its swap-out and swap-in of a whole region. */
struct kfault {
	double out_s, in_s; /* reclaim of the region, sequential touch of it */
	double major_us; /* mean time of a touch that was a major fault */
	long major, minor; /* touches that were major faults, read-ahead hits */
	long swapped; /* pages in swap after the reclaim */
};

/* Push the whole cgroup out to swap: v1 force_empty, v2 memory.reclaim. */
static void reclaim_all(size_t bytes)
{
	char val[32];

	snprintf(val, sizeof(val), "%zu", bytes);
	/* EBUSY/EAGAIN: not all of it went; the pagemap says what did. */
	write_file(cg_file("memory.force_empty", "memory.reclaim"),
		   kern->cg_version == 1 ? "0" : val);
}

static bool swapped(int pm, const char *p)
{
	uint64_t e = 0;

	return pread(pm, &e, sizeof(e), (off_t)((uintptr_t)p / SP_PAGE_SIZE * sizeof(e))) ==
		       (ssize_t)sizeof(e) &&
	       (e & PM_SWAPPED);
}

static void kfault_child(const void *arg, void *out)
{
	size_t len = *(const size_t *)arg, pages = len / SP_PAGE_SIZE;
	struct kfault *f = out;
	uint64_t x = XS_SEED, sink = 0;
	int pm = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
	char *r = anon(len);
	double t, sum = 0;

	if (pm < 0)
		_exit(6);
	fill(r, len, 7);
	f->out_s = now();
	reclaim_all(len + (8 << 20));
	f->out_s = now() - f->out_s;
	for (size_t i = 0; i < pages; i++)
		f->swapped += swapped(pm, r + i * SP_PAGE_SIZE);
	for (size_t n = 0; n < RAND_TOUCHES * 4 && f->major + f->minor < RAND_TOUCHES; n++) {
		char *p = r + (xorshift64(&x) >> 20) % pages * SP_PAGE_SIZE;
		long maj = major_faults();

		if (!swapped(pm, p))
			continue;
		t = now();
		sink += *(volatile uint64_t *)p;
		t = now() - t;
		if (major_faults() > maj) {
			f->major++;
			sum += t;
		} else {
			f->minor++;
		}
	}
	f->major_us = f->major ? sum / (double)f->major * 1e6 : NAN;
	reclaim_all(len + (8 << 20));
	t = now();
	for (size_t off = 0; off < len; off += SP_PAGE_SIZE)
		sink += *(volatile uint64_t *)(r + off);
	f->in_s = now() - t;
	(void)sink;
	close(pm);
}

/* ---- rounds and figures --------------------------------------------------------- */

struct opts {
	unsigned long mib, pool_mib, rounds;
	const char *dir;
	bool json, no_kernel;
};

enum {
	PWRITE_S,
	PREAD_S,
	OUT_S,
	IN_S, /* samepage and plain I/O, seconds */
	RAND_US,
	K_RAND_US,
	K_OUT_S,
	K_IN_S, /* the random fault; the kernel's region */
	NR_TIMES,
};

struct rounds {
	double t[NR_TIMES][MAX_ROUNDS];
	struct ws_result tight[MAX_ROUNDS], roomy[MAX_ROUNDS]; /* samepage */
	struct ws_result ktight[MAX_ROUNDS], kroomy[MAX_ROUNDS]; /* kernel */
	struct kfault kf[MAX_ROUNDS];
	bool kernel_ok[MAX_ROUNDS];
};

static void kernel_round(const struct opts *o, size_t ws_mib, struct rounds *rs, unsigned i)
{
	size_t len = o->mib << 20;
	struct kfault *f = &rs->kf[i];

	rs->kernel_ok[i] =
		!cg_limit(0) && !in_child(kfault_child, &len, f, sizeof(*f)) &&
		!in_child(ws_kernel_child, &ws_mib, &rs->kroomy[i], sizeof(rs->kroomy[i])) &&
		!cg_limit(o->pool_mib << 20) &&
		!in_child(ws_kernel_child, &ws_mib, &rs->ktight[i], sizeof(rs->ktight[i]));
	if (!rs->kernel_ok[i]) {
		fprintf(stderr, PROG ": round %u: the kernel's side failed: left out\n", i + 1);
		return;
	}
	if (rs->ktight[i].bad || rs->kroomy[i].bad) {
		fprintf(stderr, PROG ": %ld wrong pages in the kernel's working set\n",
			rs->ktight[i].bad + rs->kroomy[i].bad);
		exit(1);
	}
	rs->t[K_RAND_US][i] = f->major_us;
	rs->t[K_OUT_S][i] = f->out_s;
	rs->t[K_IN_S][i] = f->in_s;
}

static void one_round(const struct opts *o, char *buf, bool kernel, struct rounds *rs, unsigned i)
{
	size_t len = o->mib << 20, ws_mib = o->pool_mib * 3 / 2;

	plain(o->dir, buf, len, &rs->t[PWRITE_S][i], &rs->t[PREAD_S][i]);
	pooled(o->dir, len, &rs->t[OUT_S][i], &rs->t[IN_S][i]);
	rs->t[RAND_US][i] = random_swapin_us(o->dir, len);
	/* The same workload with room for it, and in a pool of 2/3 of it. */
	ws_samepage(o->dir, 2 * o->pool_mib, ws_mib, &rs->roomy[i]);
	ws_samepage(o->dir, o->pool_mib, ws_mib, &rs->tight[i]);
	if (rs->tight[i].bad || rs->roomy[i].bad) {
		fprintf(stderr, PROG ": %ld wrong pages in the working set\n",
			rs->tight[i].bad + rs->roomy[i].bad);
		exit(1);
	}
	for (int k = K_RAND_US; k <= K_IN_S; k++)
		rs->t[k][i] = NAN;
	if (kernel)
		kernel_round(o, ws_mib, rs, i);
}

/* Every figure over the rounds. */
enum fig {
	F_OUT_RATIO, /* samepage's swap-out rate / pwrite's */
	F_IN_RATIO,
	F_RAND_US,
	F_K_RAND_US,
	F_RAND_RATIO, /* samepage's random fault / the kernel's major fault */
	F_SLOWDOWN, /* samepage, tight/roomy */
	F_K_SLOWDOWN,
	F_WS_RATIO, /* samepage's slowdown / the kernel's */
	F_TOUCH_SLOWDOWN,
	NR_FIGS
};

static double fig_round(const struct rounds *rs, enum fig f, unsigned i)
{
	double sd = ws_total(&rs->tight[i]) / ws_total(&rs->roomy[i]);
	double ksd = rs->kernel_ok[i] ? ws_total(&rs->ktight[i]) / ws_total(&rs->kroomy[i]) : NAN;

	switch (f) {
	case F_OUT_RATIO:
		return ratio_of(rs->t[PWRITE_S][i], rs->t[OUT_S][i]);
	case F_IN_RATIO:
		return ratio_of(rs->t[PREAD_S][i], rs->t[IN_S][i]);
	case F_RAND_US:
		return rs->t[RAND_US][i];
	case F_K_RAND_US:
		return rs->t[K_RAND_US][i];
	case F_RAND_RATIO:
		return ratio_of(rs->t[RAND_US][i], rs->t[K_RAND_US][i]);
	case F_SLOWDOWN:
		return sd;
	case F_K_SLOWDOWN:
		return ksd;
	case F_WS_RATIO:
		return ratio_of(sd, ksd);
	default:
		return rs->tight[i].touch_s / rs->roomy[i].touch_s;
	}
}

static struct spread fig(const struct rounds *rs, unsigned n, enum fig f)
{
	double v[MAX_ROUNDS];

	for (unsigned i = 0; i < n; i++)
		v[i] = fig_round(rs, f, i);
	return spread_of(v, n);
}

static double med_time(const struct rounds *rs, unsigned n, int k)
{
	return median_of(rs->t[k], n);
}

/* The median of one field of the working set's results over the rounds. */
static double ws_med(const struct ws_result *w, unsigned n, const struct rounds *rs, size_t off,
		     bool is_long)
{
	double v[MAX_ROUNDS];

	for (unsigned i = 0; i < n; i++) {
		const char *p = (const char *)&w[i] + off;

		v[i] = (w == rs->ktight || w == rs->kroomy) && !rs->kernel_ok[i] ? NAN :
		       is_long ? (double)*(const long *)p :
				 (double)*(const double *)p;
	}
	return median_of(v, n);
}

static double ws_total_med(const struct ws_result *w, unsigned n, const struct rounds *rs)
{
	double v[MAX_ROUNDS];

	for (unsigned i = 0; i < n; i++)
		v[i] = (w == rs->ktight || w == rs->kroomy) && !rs->kernel_ok[i] ? NAN :
										   ws_total(&w[i]);
	return median_of(v, n);
}

static double kf_med(const struct rounds *rs, unsigned n, size_t off)
{
	double v[MAX_ROUNDS];

	for (unsigned i = 0; i < n; i++)
		v[i] = rs->kernel_ok[i] ? (double)*(const long *)((const char *)&rs->kf[i] + off) :
					  NAN;
	return median_of(v, n);
}

/* ---- output ---------------------------------------------------------------------- */

#define WS_MED(w, field) ws_med(w, n, rs, offsetof(struct ws_result, field), true)

/* A phase: limited / roomy seconds and their quotient, samepage's and the kernel's. */
static void print_ws_row(const char *label, double t, double r, double kt, double kr)
{
	printf("  %-12s %7.3f s / %7.3f s %8.2fx     ", label, t, r, t / r);
	if (isnan(kt))
		printf("-\n");
	else
		printf("%7.3f s / %7.3f s %8.2fx\n", kt, kr, kt / kr);
}

static void print_ws_phase(const char *label, const struct rounds *rs, unsigned n, size_t off)
{
	print_ws_row(label, ws_med(rs->tight, n, rs, off, false),
		     ws_med(rs->roomy, n, rs, off, false), ws_med(rs->ktight, n, rs, off, false),
		     ws_med(rs->kroomy, n, rs, off, false));
}

static void print_table(const struct opts *o, const struct kernel *k, const struct rounds *rs)
{
	unsigned n = (unsigned)o->rounds;
	size_t ws_mib = o->pool_mib * 3 / 2;
	double mib = (double)o->mib;
	char date[40], a[64], b[64], c[64];

	printf("swap: %u interleaved rounds, %s; files in %s; ratios per round, "
	       "median [min - max]\n\n",
	       n, iso_date(date, sizeof(date)), o->dir);
	printf("swap of %lu MiB against file I/O of the same bytes (target >= 0.7x)\n", o->mib);
	printf("  out: sp_swap_out %6.0f MiB/s   pwrite %6.0f MiB/s   ratio %s\n",
	       mib / med_time(rs, n, OUT_S), mib / med_time(rs, n, PWRITE_S),
	       spread_str(a, sizeof(a), fig(rs, n, F_OUT_RATIO), "%.2f"));
	printf("  in:  on access   %6.0f MiB/s   pread  %6.0f MiB/s   ratio %s\n",
	       mib / med_time(rs, n, IN_S), mib / med_time(rs, n, PREAD_S),
	       spread_str(b, sizeof(b), fig(rs, n, F_IN_RATIO), "%.2f"));
	if (k->on)
		printf("  the kernel's swap of the same size: out %.0f MiB/s (%s), in %.0f MiB/s "
		       "(every page touched in order)\n",
		       mib / med_time(rs, n, K_OUT_S),
		       k->cg_version == 1 ? "memory.force_empty" : "memory.reclaim",
		       mib / med_time(rs, n, K_IN_S));
	printf("\nrandom swap-in fault, us (pages of a swapped-out %lu MiB region touched at "
	       "random)\n",
	       o->mib);
	printf("  samepage (one page, no read-ahead)   %s\n",
	       spread_str(a, sizeof(a), fig(rs, n, F_RAND_US), "%.1f"));
	if (k->on) {
		printf("  kernel major fault from swap file    %s  (%.0f major of %.0f touches; "
		       "%.0f of %lu pages were out)\n",
		       spread_str(b, sizeof(b), fig(rs, n, F_K_RAND_US), "%.1f"),
		       kf_med(rs, n, offsetof(struct kfault, major)),
		       kf_med(rs, n, offsetof(struct kfault, major)) +
			       kf_med(rs, n, offsetof(struct kfault, minor)),
		       kf_med(rs, n, offsetof(struct kfault, swapped)), o->mib * 256);
		printf("  samepage/kernel                      %s  (target <= 1.0)\n",
		       spread_str(c, sizeof(c), fig(rs, n, F_RAND_RATIO), "%.2f"));
	}
	printf("\nworking set of %zu MiB with memory for %lu MiB, against the same with room "
	       "(medians)\n",
	       ws_mib, o->pool_mib);
	snprintf(a, sizeof(a), "samepage: pool of %lu / %lu MiB", o->pool_mib, 2 * o->pool_mib);
	snprintf(b, sizeof(b), "kernel: cgroup limit %lu MiB / none", o->pool_mib);
	printf("  %-12s %-36s%s\n", "", a, b);
	print_ws_phase("write all", rs, n, offsetof(struct ws_result, write_s));
	print_ws_phase("90/10 touch", rs, n, offsetof(struct ws_result, touch_s));
	print_ws_phase("read all", rs, n, offsetof(struct ws_result, check_s));
	print_ws_row("in all", ws_total_med(rs->tight, n, rs), ws_total_med(rs->roomy, n, rs),
		     ws_total_med(rs->ktight, n, rs), ws_total_med(rs->kroomy, n, rs));
	printf("  %-12s %-35s %s\n", "slowdown",
	       spread_str(a, sizeof(a), fig(rs, n, F_SLOWDOWN), "%.1fx"),
	       k->on ? spread_str(b, sizeof(b), fig(rs, n, F_K_SLOWDOWN), "%.1fx") : "-");
	if (k->on)
		printf("  samepage's slowdown / the kernel's: %s (target <= 1.0, aim 0.5)\n",
		       spread_str(c, sizeof(c), fig(rs, n, F_WS_RATIO), "%.2f"));
	printf("  samepage: %.0f pages reclaimed, %.0f swapped in, %.0f direct reclaims",
	       WS_MED(rs->tight, reclaimed), WS_MED(rs->tight, swapped_in),
	       WS_MED(rs->tight, direct));
	if (k->on)
		printf("; kernel: %.0f major faults", WS_MED(rs->ktight, major));
	printf("; every byte checked\n");
	printf("\nkernel side: ");
	if (!k->on)
		printf("not measured: %s\n", k->why);
	else
		printf("memory cgroup v%d (swappiness %s), swap %s; removed afterwards\n",
		       k->cg_version, k->swappiness,
		       k->swap_made ? "file of our own in the same directory" : "already active");
}

static void print_json(const struct opts *o, const struct kernel *k, const struct rounds *rs)
{
	static const struct {
		const char *key, *fmt;
	} figs[NR_FIGS] = {
		[F_OUT_RATIO] = { "out_ratio", "%.3f" },
		[F_IN_RATIO] = { "in_ratio", "%.3f" },
		[F_RAND_US] = { "random_swapin_us", "%.2f" },
		[F_K_RAND_US] = { "kernel_major_fault_us", "%.2f" },
		[F_RAND_RATIO] = { "random_fault_ratio", "%.3f" },
		[F_SLOWDOWN] = { "ws_slowdown", "%.3f" },
		[F_K_SLOWDOWN] = { "kernel_ws_slowdown", "%.3f" },
		[F_WS_RATIO] = { "ws_ratio", "%.3f" },
		[F_TOUCH_SLOWDOWN] = { "ws_touch_slowdown", "%.3f" },
	};
	unsigned n = (unsigned)o->rounds;
	double mib = (double)o->mib;
	char date[40];

	printf("{\"date\": \"%s\", \"rounds\": %u, \"mib\": %lu, \"ws_pool_mib\": %lu, "
	       "\"ws_mib\": %lu, ",
	       iso_date(date, sizeof(date)), n, o->mib, o->pool_mib, o->pool_mib * 3 / 2);
	printf("\"swap_out_mibs\": %.0f, \"pwrite_mibs\": %.0f, \"swap_in_mibs\": %.0f, "
	       "\"pread_mibs\": %.0f, ",
	       mib / med_time(rs, n, OUT_S), mib / med_time(rs, n, PWRITE_S),
	       mib / med_time(rs, n, IN_S), mib / med_time(rs, n, PREAD_S));
	for (int f = 0; f < NR_FIGS; f++) {
		json_spread(figs[f].key, fig(rs, n, f), figs[f].fmt);
		printf(", ");
	}
	printf("\"ws_reclaimed\": %.0f, \"ws_swapped_in\": %.0f, \"ws_direct\": %.0f, ",
	       ws_med(rs->tight, n, rs, offsetof(struct ws_result, reclaimed), true),
	       ws_med(rs->tight, n, rs, offsetof(struct ws_result, swapped_in), true),
	       ws_med(rs->tight, n, rs, offsetof(struct ws_result, direct), true));
	printf("\"kernel\": {\"measured\": %s", k->on ? "true" : "false");
	if (!k->on) {
		printf(", \"why\": \"%s\"}}\n", k->why);
		return;
	}
	printf(", \"cgroup\": %d, \"swappiness\": \"%s\", \"swap_file\": %s, "
	       "\"swap_out_mibs\": ",
	       k->cg_version, k->swappiness, k->swap_made ? "\"made\"" : "\"already active\"");
	json_number(mib / med_time(rs, n, K_OUT_S), "%.0f");
	printf(", \"swap_in_mibs\": ");
	json_number(mib / med_time(rs, n, K_IN_S), "%.0f");
	printf(", \"major_faults\": %.0f, \"readahead_hits\": %.0f, \"ws_major_faults\": %.0f}}\n",
	       kf_med(rs, n, offsetof(struct kfault, major)),
	       kf_med(rs, n, offsetof(struct kfault, minor)),
	       ws_med(rs->ktight, n, rs, offsetof(struct ws_result, major), true));
}

/* ---- arguments and main ------------------------------------------------------------ */

static void parse_args(int argc, char **argv, struct opts *o)
{
	*o = (struct opts){ .mib = 64, .pool_mib = 64, .rounds = 3, .dir = "/tmp" };
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--json"))
			o->json = true;
		else if (!strcmp(a, "--no-kernel"))
			o->no_kernel = true;
		else if (!strcmp(a, "--size"))
			o->mib = arg_num(a, argv[++i], 1, 4096);
		else if (!strcmp(a, "--pool"))
			o->pool_mib = arg_num(a, argv[++i], 32, 4096);
		else if (!strcmp(a, "--rounds"))
			o->rounds = arg_num(a, argv[++i], 1, MAX_ROUNDS);
		else if (!strcmp(a, "--dir") && i + 1 < argc)
			o->dir = argv[++i];
		else {
			fprintf(stderr, USAGE "\n");
			exit(strcmp(a, "--help") ? 2 : 0);
		}
	}
	if (o->pool_mib % 32) {
		fprintf(stderr, PROG ": --pool wants a multiple of 32 MiB\n");
		exit(2);
	}
}

int main(int argc, char **argv)
{
	static struct rounds rs;
	struct kernel k = { 0 };
	struct opts o;
	size_t swap_mib;
	char *buf;

	parse_args(argc, argv, &o);
	catch_exit_signals(on_signal);
	atexit(cleanup); /* die() and every other exit() */
	kern = &k;
	swap_mib = o.pool_mib * 3 / 2 + o.mib + 64;
	kernel_setup(&k, o.dir, swap_mib > SWAPFILE_MIN_MIB ? swap_mib : SWAPFILE_MIN_MIB,
		     o.no_kernel);
	buf = malloc(o.mib << 20);
	if (!buf)
		die("malloc");
	fill(buf, o.mib << 20, 7);
	for (unsigned i = 0; i < o.rounds; i++) {
		if (!o.json && isatty(STDERR_FILENO))
			fprintf(stderr, PROG ": round %u of %lu\n", i + 1, o.rounds);
		one_round(&o, buf, k.on, &rs, i);
	}
	free(buf);
	cleanup();
	if (undo.cg_made || undo.swap_on || undo.swapfile_made) {
		fprintf(stderr, PROG ": removing the cgroup %s or the swap file %s failed\n",
			undo.cg, undo.swapfile);
		return 1;
	}
	if (o.json)
		print_json(&o, &k, &rs);
	else
		print_table(&o, &k, &rs);
	return 0;
}
