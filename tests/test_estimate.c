/* SPDX-License-Identifier: MIT */
/*
 * samepage estimate against a process of known content, then against what
 * kernel KSM really merges in that process. Needs root and kernel KSM with
 * PR_SET_MEMORY_MERGE (6.4+). The kernel knobs are saved before and restored
 * in the teardown, which runs also when a check fails; the whole test holds
 * the lock of the project's programs that drive kernel KSM (bench_ksm).
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../bench/kernel_ksm_lock.h"
#include "common.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

#define KSM_DIR "/sys/kernel/mm/ksm/"
#define PAGE 4096
#define NR_PAGES 16384 /* 64 MiB in the child */
#define NR_PATTERN 14336 /* page i (i < NR_PATTERN) holds content i % NR_CONTENTS */
#define NR_CONTENTS 1000
#define NR_ZERO 1000 /* then zero pages (not 1 mod max_page_sharing=256) */
#define NR_UNIQUE (NR_PAGES - NR_PATTERN - NR_ZERO) /* then pages of their own */
#define SEED_PATTERN 1000000
#define SEED_UNIQUE 2000000

/* Pages merging frees: per content found n >= 2 times, n - 1. */
#define EXPECT_SHARING ((NR_PATTERN - NR_CONTENTS) + (NR_ZERO - 1))
#define SLACK_PAGES 256 /* the child's own libc, heap and stack pages */
#define LOCK_WAIT_S 200 /* for a benchmark to finish: within meson's 300 s */

enum { RUN, PAGES_TO_SCAN, SLEEP_MILLISECS, USE_ZERO_PAGES, NR_KNOBS };

static const char *const knob_names[NR_KNOBS] = { "run", "pages_to_scan", "sleep_millisecs",
						  "use_zero_pages" };

struct fixture {
	long saved[NR_KNOBS];
	int knobs_changed;
	pid_t child;
	int cmd, ack; /* pipes: the parent writes commands, reads acknowledgements */
};

static struct fixture fix;

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The knobs with open, read and write only: also used from a signal handler. */
static long knob_get(const char *name)
{
	char path[128], buf[32];
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	return strtol(buf, NULL, 10);
}

static int knob_set(const char *name, long v)
{
	char path[128], buf[32];
	int fd, len, ret;

	snprintf(path, sizeof(path), KSM_DIR "%s", name);
	len = snprintf(buf, sizeof(buf), "%ld\n", v);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ret = write(fd, buf, (size_t)len) == len ? 0 : -1;
	close(fd);
	return ret;
}

static int setup(void **state)
{
	fix = (struct fixture){ .child = -1, .cmd = -1, .ack = -1 };
	if (geteuid() != 0) {
		print_error("test_estimate: needs root (kernel KSM knobs, /proc/PID/mem)\n");
		return -1;
	}
	for (int i = 0; i < NR_KNOBS; i++) {
		fix.saved[i] = knob_get(knob_names[i]);
		if (fix.saved[i] < 0) {
			print_error("test_estimate: kernel KSM unavailable: " KSM_DIR "%s: %s\n",
				    knob_names[i], strerror(errno));
			return -1;
		}
	}
	*state = &fix;
	alarm(180); /* from here on ksmd may run: a hang must not leave it running */
	return 0;
}

static void stop_child(struct fixture *f)
{
	if (f->child > 0) {
		kill(f->child, SIGKILL);
		waitpid(f->child, NULL, 0);
		f->child = -1;
	}
	if (f->cmd >= 0)
		close(f->cmd);
	if (f->ack >= 0)
		close(f->ack);
	f->cmd = f->ack = -1;
}

/* Unmerge what is left (run=2), then every knob back as it was. */
static int restore_knobs(struct fixture *f)
{
	double t0 = now();
	int err = 0;

	if (!f->knobs_changed)
		return 0;
	if (knob_get("pages_shared") > 0) {
		err |= knob_set("run", 2);
		while (knob_get("pages_shared") > 0 && now() - t0 < 10)
			usleep(20000);
		err |= knob_get("pages_shared") != 0;
	}
	err |= knob_set("run", 0);
	for (int i = NR_KNOBS - 1; i >= 0; i--)
		err |= knob_set(knob_names[i], f->saved[i]);
	f->knobs_changed = 0;
	return err;
}

static int cleanup(void)
{
	stop_child(&fix);
	return restore_knobs(&fix);
}

/*
 * cmocka 1.1 runs a test's teardown only when the test passed: main() cleans
 * up again after the run (a no-op if done), and so does a signal that ends
 * the test (a timeout's SIGTERM, ^C, or our own alarm).
 */
static int teardown(void **state)
{
	(void)state;
	if (cleanup()) {
		print_error("test_estimate: restoring " KSM_DIR " failed: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

static void on_signal(int sig)
{
	static const char msg[] = "test_estimate: killed by a signal; KSM knobs restored\n";

	cleanup();
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
		_exit(128 + sig);
	_exit(128 + sig);
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal };

	sigfillset(&sa.sa_mask);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGALRM, &sa, NULL);
}

static void child_fill(char *mem)
{
	for (long i = 0; i < NR_PAGES; i++) {
		char *p = mem + i * PAGE;

		if (i < NR_PATTERN)
			fill_page(p, SEED_PATTERN + (uint64_t)(i % NR_CONTENTS));
		else if (i < NR_PATTERN + NR_ZERO)
			memset(p, 0, PAGE); /* written: present, not the shared zero page */
		else
			fill_page(p, SEED_UNIQUE + (uint64_t)i);
	}
}

/* The child: fill, say 'r', then on 'm' enable merging for the whole process. */
static void child_main(int cmd, int ack)
{
	char *mem = mmap(NULL, (size_t)NR_PAGES * PAGE, PROT_READ | PROT_WRITE,
			 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	char c;

	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	signal(SIGALRM, SIG_DFL);
	alarm(0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (mem == MAP_FAILED)
		_exit(1);
	child_fill(mem);
	if (write(ack, "r", 1) != 1)
		_exit(1);
	while (read(cmd, &c, 1) == 1) {
		int r = c == 'm' ? prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0) : -1;
		char reply = r ? (char)errno : 0;

		if (write(ack, &reply, 1) != 1)
			_exit(1);
	}
	_exit(0);
}

static void start_child(struct fixture *f)
{
	int cmd[2], ack[2];
	char c = 0;

	assert_int_equal(pipe2(cmd, O_CLOEXEC), 0);
	assert_int_equal(pipe2(ack, O_CLOEXEC), 0);
	f->child = fork();
	assert_true(f->child >= 0);
	if (!f->child) {
		close(cmd[1]);
		close(ack[0]);
		child_main(cmd[0], ack[1]);
	}
	close(cmd[0]);
	close(ack[1]);
	f->cmd = cmd[1];
	f->ack = ack[0];
	assert_int_equal(read(f->ack, &c, 1), 1);
	assert_int_equal(c, 'r');
}

static long json_field(const char *json, const char *name)
{
	char key[64];
	const char *p;

	snprintf(key, sizeof(key), "\"%s\":", name);
	p = strstr(json, key);
	if (!p)
		fail_msg("estimate output has no %s: %s", name, json);
	return strtol(p + strlen(key), NULL, 10);
}

/* $SAMEPAGE_BIN, or else tools/samepage next to this test in the build tree. */
static const char *samepage_bin(char *buf, size_t size)
{
	const char *bin = getenv("SAMEPAGE_BIN");
	ssize_t n;
	char *slash;

	if (bin && *bin)
		return bin;
	n = readlink("/proc/self/exe", buf, size - 1);
	if (n <= 0)
		fail_msg("SAMEPAGE_BIN is not set and /proc/self/exe unreadable");
	buf[n] = '\0';
	slash = strrchr(buf, '/');
	if (slash)
		*slash = '\0';
	strncat(buf, "/../tools/samepage", size - strlen(buf) - 1);
	return buf;
}

/* Run samepage estimate --json on the child; its output in out. */
static void run_estimate(pid_t pid, char *out, size_t size)
{
	char cmd[1200], path[1024];
	const char *bin = samepage_bin(path, sizeof(path));
	size_t n;
	FILE *p;
	int status;

	snprintf(cmd, sizeof(cmd), "'%s' estimate --pid %d --json", bin, (int)pid);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, size - 1, p);
	out[n] = '\0';
	status = pclose(p);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fail_msg("%s: status %#x, output: %s", cmd, status, out);
}

static long ksm_merging_pages(pid_t pid)
{
	char path[64], line[128];
	long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/ksm_stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		fail_msg("%s: %s", path, strerror(errno));
	while (fgets(line, sizeof(line), f))
		sscanf(line, "ksm_merging_pages %ld", &v);
	fclose(f);
	return v;
}

/* Until ksm_merging_pages has grown and then stayed put for 1.5 s (30 s at most). */
static long wait_merged(pid_t pid)
{
	double t0 = now(), changed = t0;
	long last = -1, v;

	while (now() - t0 < 30) {
		v = ksm_merging_pages(pid);
		if (v != last) {
			last = v;
			changed = now();
		} else if (v > 0 && now() - changed >= 1.5) {
			break;
		}
		usleep(50000);
	}
	print_message("kernel KSM: ksm_merging_pages %ld after %.1f s\n", last, now() - t0);
	return last;
}

static void enable_merging(struct fixture *f)
{
	char c = 'm';

	assert_int_equal(write(f->cmd, &c, 1), 1);
	assert_int_equal(read(f->ack, &c, 1), 1);
	if (c)
		fail_msg("prctl(PR_SET_MEMORY_MERGE): %s (needs Linux 6.4+)", strerror(c));
}

/*
 * The knobs are the whole machine's: if someone else's ksmd is running (a
 * benchmark, say), wait a while for it to end rather than take it over.
 */
static void wait_ksm_idle(void)
{
	double t0 = now();

	while (knob_get("run") != 0 && now() - t0 < 15)
		usleep(100000);
	if (knob_get("run") != 0)
		fail_msg("kernel KSM is in use by someone else (run=%ld for 15 s)",
			 knob_get("run"));
}

static void start_ksmd(struct fixture *f)
{
	wait_ksm_idle();
	for (int i = 0; i < NR_KNOBS; i++)
		f->saved[i] = knob_get(knob_names[i]);
	f->knobs_changed = 1;
	assert_int_equal(knob_set("run", 0), 0);
	assert_int_equal(knob_set("use_zero_pages", 0), 0);
	assert_int_equal(knob_set("pages_to_scan", 100000), 0);
	assert_int_equal(knob_set("sleep_millisecs", 0), 0);
	assert_int_equal(knob_set("run", 1), 0);
}

static void estimate_vs_ksm(void **state)
{
	struct fixture *f = *state;
	long shared, sharing, zero, merging;
	char out[4096];

	start_child(f);
	run_estimate(f->child, out, sizeof(out));
	shared = json_field(out, "pages_shared");
	sharing = json_field(out, "pages_sharing");
	zero = json_field(out, "zero_pages");
	print_message("estimate: pages_scanned %ld pages_shared %ld pages_sharing %ld "
		      "zero_pages %ld (expected pages_sharing >= %d)\n",
		      json_field(out, "pages_scanned"), shared, sharing, zero, EXPECT_SHARING);
	assert_non_null(strstr(out, "\"by_kind\":{"));
	assert_true(zero >= NR_ZERO);
	assert_true(sharing >= EXPECT_SHARING);
	assert_true(sharing <= EXPECT_SHARING + EXPECT_SHARING / 20 + SLACK_PAGES);

	enable_merging(f);
	start_ksmd(f);
	merging = wait_merged(f->child);
	/*
	 * ksm_merging_pages counts the process's pages that map a KSM page: for a
	 * content on n pages, all n of them, the page kept (pages_shared) as well as
	 * the ones freed (pages_sharing). Like with like: the estimate's
	 * pages_shared + pages_sharing. (The kernel's max_page_sharing chains split
	 * a content over several KSM pages; that moves pages from sharing to shared
	 * but leaves their sum alone.)
	 */
	print_message("estimate pages_shared + pages_sharing %ld vs kernel ksm_merging_pages %ld\n",
		      shared + sharing, merging);
	assert_true(merging > 0);
	assert_true(labs(shared + sharing - merging) * 20 <= merging);
}

/* ---- a target that exits: a zombie not yet reaped is as gone as a reaped one ---- */

#define BIG_PAGES (128 * 1024) /* 512 MiB: a scan long enough to die in */

/* A child that fills its memory with pages of its own, says 'r', and waits. */
static pid_t start_big_child(int *ready)
{
	int p[2];
	pid_t pid;
	char c;

	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		char *mem = mmap(NULL, (size_t)BIG_PAGES * PAGE, PROT_READ | PROT_WRITE,
				 MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(0);
		if (mem == MAP_FAILED)
			_exit(1);
		for (long i = 0; i < BIG_PAGES; i++)
			fill_page(mem + i * PAGE, SEED_UNIQUE + (uint64_t)i);
		if (write(p[1], "r", 1) != 1)
			_exit(1);
		for (;;)
			pause();
	}
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 1);
	*ready = p[0];
	return pid;
}

/* Kill the child and wait until it is a zombie, without reaping it. */
static void make_zombie(pid_t pid)
{
	siginfo_t info;

	assert_int_equal(kill(pid, SIGKILL), 0);
	assert_int_equal(waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT), 0);
}

/* `samepage estimate --pid PID` started; its pid, its merged output on *out. */
static pid_t spawn_estimate(pid_t target, int *out)
{
	char path[1024], arg[32];
	const char *bin = samepage_bin(path, sizeof(path));
	int p[2];
	pid_t pid;

	snprintf(arg, sizeof(arg), "%d", (int)target);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		dup2(p[1], STDOUT_FILENO);
		dup2(p[1], STDERR_FILENO);
		execl(bin, bin, "estimate", "--pid", arg, "--json", (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	*out = p[0];
	return pid;
}

/* Bytes the process has read (rchar): how far the estimate has got. */
static long long bytes_read(pid_t pid)
{
	char path[64], line[128];
	long long v = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/io", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		sscanf(line, "rchar: %lld", &v);
	fclose(f);
	return v;
}

/*
 * The estimate ends: it must have failed (status 1) saying `want`, with no
 * report; then the zombie is reaped.
 */
static void expect_exited(pid_t est, int out, pid_t child, int ready, const char *want)
{
	char buf[4096];
	size_t have = 0;
	ssize_t n;
	int status;

	while (have < sizeof(buf) - 1 && (n = read(out, buf + have, sizeof(buf) - 1 - have)) > 0)
		have += (size_t)n;
	buf[have] = '\0';
	close(out);
	assert_int_equal(waitpid(est, &status, 0), est);
	print_message("estimate: %s", buf);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 1);
	assert_non_null(strstr(buf, want));
	assert_null(strstr(buf, "pages_scanned"));
	waitpid(child, NULL, 0);
	close(ready);
}

static void estimate_zombie(void **state)
{
	int ready, fd;
	pid_t child, est;

	(void)state;
	child = start_big_child(&ready);
	make_zombie(child);
	est = spawn_estimate(child, &fd);
	expect_exited(est, fd, child, ready, "has exited");
}

static void estimate_dies_mid_scan(void **state)
{
	double t0 = now();
	long long got = 0;
	int ready, fd;
	pid_t child, est;

	(void)state;
	child = start_big_child(&ready);
	est = spawn_estimate(child, &fd);
	/* A quarter of the target read (its 512 MiB and the pagemap): mid-scan. */
	while ((got = bytes_read(est)) < (long long)BIG_PAGES * PAGE / 4 && got >= 0 &&
	       now() - t0 < 30)
		usleep(1000);
	make_zombie(child);
	print_message("target killed after the estimate read %lld bytes\n", got);
	expect_exited(est, fd, child, ready, "exited during the scan");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(estimate_zombie),
		cmocka_unit_test(estimate_dies_mid_scan),
		cmocka_unit_test_setup_teardown(estimate_vs_ksm, setup, teardown),
	};
	sigset_t all;
	int ret;

	fix = (struct fixture){ .child = -1, .cmd = -1, .ack = -1 };
	catch_signals();
	if (kernel_ksm_lock("test_estimate", LOCK_WAIT_S) < 0) {
		fprintf(stderr, "test_estimate: flock " KERNEL_KSM_LOCK ": %s\n", strerror(errno));
		return 1;
	}
	alarm(280); /* under meson's 300 s: a hang must not leave ksmd running */
	ret = cmocka_run_group_tests(tests, NULL, NULL);
	alarm(0);
	sigfillset(&all);
	sigprocmask(SIG_BLOCK, &all, NULL);
	if (cleanup()) {
		fprintf(stderr, "test_estimate: restoring " KSM_DIR " failed: %s\n",
			strerror(errno));
		ret = 1;
	}
	return ret;
}
