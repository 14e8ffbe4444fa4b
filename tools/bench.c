/* SPDX-License-Identifier: MIT */
/*
 * samepage bench [--json] [--quick] [--rounds N] [--workloads W1,..]
 *
 * Runs the four benchmark programs (bench_ksm, bench_hotplug, bench_region,
 * bench_swap) one after the other with --json, reads their JSON from a pipe
 * (their stderr passes through), and prints one table of ratios against the
 * targets of issue 13, each as the median [min - max] of the program's
 * interleaved rounds, or one JSON object holding the four programs' objects
 * and a summary.
 *
 * The programs are looked for in $SAMEPAGE_BENCH_DIR, or else in ../bench/
 * next to the directory of this executable (build/tools/samepage ->
 * build/bench/). bench_ksm drives /sys/kernel/mm/ksm and needs root: without
 * it the KSM part is skipped; bench_swap then leaves out the kernel's swap.
 * Exit status: 0 when every program ran (missed targets included), 1 when one
 * could not be found, run or read, 2 on bad arguments.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cmds.h"

#define PROG "samepage bench"
#define NR_WL 4
#define MAX_ROUNDS 20

enum prog { P_KSM, P_HOTPLUG, P_REGION, P_SWAP, NR_PROGS };

static const char *const prog_name[NR_PROGS] = { "bench_ksm", "bench_hotplug", "bench_region",
						 "bench_swap" };
static const char *const prog_key[NR_PROGS] = { "ksm", "hotplug", "region", "swap" };

/* The workloads of WORKLOADS.md and their targets (ratio = samepage/kernel). */
static const struct {
	const char *name, *desc;
	double t99, cpu, cow;
} wl[NR_WL] = {
	{ "W1", "scattered", 0.5, 0.5, 1.0 },
	{ "W2", "images", 0.25, 0.15, 1.0 },
	{ "W3", "mostly unique", 0.25, 0.2, 1.0 },
	{ "W4", "zeros", 0.3, 0.3, 1.0 },
};

#define META_MAX_B 32.0 /* samepage metadata per region page after merging W1 */
#define HOTPLUG_RATIO_MIN 1.0
#define HOTPLUG_STALL_MAX_MS 10.0
#define REGION_TOUCH_MAX 2.0
#define REGION_BW_MIN 0.95
#define SWAP_RATIO_MIN 0.7
#define SWAP_FAULT_MAX 1.0 /* random swap-in fault / the kernel's major fault */
#define SWAP_WS_MAX 1.0 /* working-set slowdown / the kernel's */

/* How a figure is held to its target. */
enum cmp { LE, LT, GE };

static const char *const cmp_op[] = { "<=", "<", ">=" };

struct bench_opts {
	bool json, quick;
	const char *workloads;
	const char *rounds; /* for bench_ksm and bench_swap */
};

/* What one program gave: its JSON (NULL if it did not run or failed). */
struct run {
	bool skipped, failed;
	char why[80]; /* how it failed */
	char *out;
};

/* A figure over rounds: NAN where absent. */
struct fig {
	double min, med, max;
};

/* The figures the table and the summary show. */
struct figures {
	bool ksm_run[NR_WL], meta, sw_kernel;
	struct fig t99[NR_WL], cpu[NR_WL], scan[NR_WL], cow[NR_WL];
	struct fig meta_before, meta_after;
	double meta_vmas, meta_vma_pp; /* W1 at t99: pool VMAs, their kernel bytes per page */
	double hp_section, hp_mibs, hp_ref, hp_stall_ms;
	struct fig hp_ratio;
	double fault_mode;
	struct fig touch, read, write;
	struct fig sw_out, sw_in, sw_fault, sw_ws;
	double rand_us, k_rand_us, ws_slowdown, k_ws_slowdown, ws_pool, ws_mib;
	int met, total;
};

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: samepage bench [--json] [--quick] [--rounds N] [--workloads W1,W2,W3,W4]\n"
		"  --json           one JSON object: the programs' objects under \"ksm\", \"hotplug\",\n"
		"                   \"region\", \"swap\", and a \"summary\" of the ratios, each as\n"
		"                   min, median and max over the rounds, with the date\n"
		"  --quick          a short run: KSM workloads W1,W4 only, one 64 MiB hot-remove\n"
		"                   round, 3 region rounds, 1 swap round\n"
		"  --rounds N       interleaved rounds of bench_ksm and bench_swap (default 3)\n"
		"  --workloads L    KSM workloads to run, passed to bench_ksm (default all)\n"
		"  --version        print samepage's version\n"
		"runs bench_ksm (needs root; skipped otherwise), bench_hotplug, bench_region and\n"
		"bench_swap (the kernel's swap beside samepage's needs root), found in\n"
		"$SAMEPAGE_BENCH_DIR, or else in ../bench/ from this executable's directory\n"
		"(build/tools/samepage -> build/bench/)\n");
}

/* A comma-separated list of W1..W4, as bench_ksm takes it. */
static bool workloads_ok(const char *arg)
{
	const char *p = arg;

	for (;;) {
		size_t len = strcspn(p, ",");
		bool known = false;

		for (int w = 0; w < NR_WL; w++)
			known |= len == strlen(wl[w].name) && !strncasecmp(p, wl[w].name, len);
		if (!known)
			return false;
		if (!p[len])
			return true;
		p += len + 1;
	}
}

static bool rounds_ok(const char *arg)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(arg, &end, 10);
	return !errno && end != arg && !*end && v >= 1 && v <= MAX_ROUNDS;
}

static int parse_bench(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "quick", no_argument, NULL, 'q' },
					      { "rounds", required_argument, NULL, 'r' },
					      { "workloads", required_argument, NULL, 'w' },
					      { "help", no_argument, NULL, 'h' },
					      OPT_VERSION,
					      { 0 } };
	int c;

	*o = (struct bench_opts){ 0 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			bench_usage(stdout);
			exit(0);
		case 'V':
			exit(print_version());
		case 'j':
			o->json = true;
			break;
		case 'q':
			o->quick = true;
			break;
		case 'r':
			o->rounds = optarg;
			if (rounds_ok(optarg))
				break;
			fprintf(stderr, PROG ": --rounds wants a number from 1 to %d, got '%s'\n",
				MAX_ROUNDS, optarg);
			return -1;
		case 'w':
			o->workloads = optarg;
			if (workloads_ok(optarg))
				break;
			fprintf(stderr,
				PROG
				": --workloads wants a comma-separated list of W1, W2, W3, W4, "
				"got '%s'\n",
				optarg);
			return -1;
		default:
			option_error("bench", c, argv);
			bench_usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, PROG ": unexpected argument: %s\n", argv[optind]);
		bench_usage(stderr);
		return -1;
	}
	return 0;
}

/* ---- finding and running the programs ----------------------------------- */

/* The directory holding the programs, into dir; -1 (said why) if not there. */
static int find_bench_dir(char *dir, size_t len, bool need_ksm)
{
	const char *env = getenv("SAMEPAGE_BENCH_DIR");
	char exe[PATH_MAX], path[PATH_MAX + 32], from[PATH_MAX + 64], *slash;
	bool missing = false;
	ssize_t n;

	if (env && *env) {
		if ((size_t)snprintf(dir, len, "%s", env) >= len) {
			fprintf(stderr, PROG ": $SAMEPAGE_BENCH_DIR is too long\n");
			return -1;
		}
		snprintf(from, sizeof(from), "$SAMEPAGE_BENCH_DIR");
	} else {
		n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
		if (n < 0) {
			fprintf(stderr,
				PROG ": readlink /proc/self/exe: %s (set SAMEPAGE_BENCH_DIR)\n",
				strerror(errno));
			return -1;
		}
		exe[n] = '\0';
		if ((size_t)snprintf(from, sizeof(from), "../bench beside the directory of %s",
				     exe) >= sizeof(from))
			from[sizeof(from) - 1] = '\0';
		/* .../build/tools/samepage -> .../build/bench */
		for (int up = 0; up < 2; up++) {
			slash = strrchr(exe, '/');
			if (slash)
				*slash = '\0';
		}
		if ((size_t)snprintf(dir, len, "%s/bench", exe) >= len) {
			fprintf(stderr, PROG ": %s/bench: path too long\n", exe);
			return -1;
		}
		/* Installed: PREFIX/bin/samepage -> PREFIX/libexec/samepage. */
		snprintf(path, sizeof(path), "%s/bench_region", dir);
		if (access(path, X_OK) &&
		    (size_t)snprintf(path, sizeof(path), "%s/libexec/samepage", exe) < len &&
		    !access(path, X_OK))
			memcpy(dir, path, strlen(path) + 1); /* fits: checked just above */
	}
	for (int p = need_ksm ? P_KSM : P_HOTPLUG; p < NR_PROGS; p++) {
		snprintf(path, sizeof(path), "%s/%s", dir, prog_name[p]);
		if (access(path, X_OK)) {
			fprintf(stderr, PROG ": %s: %s\n", path, strerror(errno));
			missing = true;
		}
	}
	if (missing) {
		fprintf(stderr,
			PROG ": the benchmark programs are not in %s (%s); build them "
			     "(ninja -C build) or set SAMEPAGE_BENCH_DIR to their directory\n",
			dir, from);
		return -1;
	}
	return 0;
}

/*
 * Run dir/argv[0] with its stdout into a pipe, read to the end; stderr passes
 * through. Returns the wait status (-1: could not run) and the output in *out.
 */
static int run_prog(const char *dir, char *const argv[], char **out)
{
	struct sigaction ign = { .sa_handler = SIG_IGN }, old_int, old_quit;
	char path[PATH_MAX + 32], *buf = NULL;
	size_t len = 0, cap = 0;
	int fd[2], status;
	pid_t pid;
	ssize_t n;

	*out = NULL;
	snprintf(path, sizeof(path), "%s/%s", dir, argv[0]);
	if (pipe2(fd, O_CLOEXEC)) {
		fprintf(stderr, PROG ": pipe: %s\n", strerror(errno));
		return -1;
	}
	fflush(NULL);
	/* Like system(): ^C goes to the program, which restores what it changed. */
	sigemptyset(&ign.sa_mask);
	sigaction(SIGINT, &ign, &old_int);
	sigaction(SIGQUIT, &ign, &old_quit);
	pid = fork();
	if (pid == 0) {
		sigaction(SIGINT, &old_int, NULL);
		sigaction(SIGQUIT, &old_quit, NULL);
		if (dup2(fd[1], STDOUT_FILENO) < 0)
			_exit(127);
		execv(path, argv);
		fprintf(stderr, PROG ": exec %s: %s\n", path, strerror(errno));
		_exit(127);
	}
	close(fd[1]);
	if (pid < 0) {
		fprintf(stderr, PROG ": fork: %s\n", strerror(errno));
		close(fd[0]);
		status = -1;
		goto out;
	}
	for (;;) {
		if (cap - len < 4096) {
			char *nbuf = realloc(buf, cap ? cap * 2 : 65536);

			if (!nbuf) {
				fprintf(stderr, PROG ": reading %s: out of memory\n", argv[0]);
				break;
			}
			buf = nbuf;
			cap = cap ? cap * 2 : 65536;
		}
		n = read(fd[0], buf + len, cap - len - 1);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR) {
			fprintf(stderr, PROG ": waitpid %s: %s\n", argv[0], strerror(errno));
			status = -1;
			break;
		}
	if (buf) {
		buf[len] = '\0';
		*out = buf;
	}
out:
	sigaction(SIGINT, &old_int, NULL);
	sigaction(SIGQUIT, &old_quit, NULL);
	return status;
}

/* The output with surrounding white space trimmed, if it looks like an object. */
static char *json_object(char *s)
{
	size_t len;

	if (!s)
		return NULL;
	s += strspn(s, " \t\r\n");
	len = strlen(s);
	while (len && strchr(" \t\r\n", s[len - 1]))
		s[--len] = '\0';
	return len >= 2 && s[0] == '{' && s[len - 1] == '}' ? s : NULL;
}

/*
 * Run one program with --json plus args; false if it failed (said how).
 * *stop: it was interrupted, run no more.
 */
static bool run_one(const char *dir, enum prog p, const char *const args[], struct run *r,
		    bool *stop)
{
	char *argv[12];
	int i = 0, status;

	argv[i++] = (char *)prog_name[p];
	argv[i++] = (char *)"--json";
	for (int a = 0; args[a] && i < 11; a++)
		argv[i++] = (char *)args[a];
	argv[i] = NULL;
	fprintf(stderr, PROG ": running");
	for (int a = 0; argv[a]; a++)
		fprintf(stderr, " %s", argv[a]);
	fprintf(stderr, "\n");
	status = run_prog(dir, argv, &r->out);
	if (status == -1) {
		snprintf(r->why, sizeof(r->why), "could not be run");
	} else if (WIFSIGNALED(status)) {
		snprintf(r->why, sizeof(r->why), "was killed by signal %d (%s)", WTERMSIG(status),
			 strsignal(WTERMSIG(status)));
		*stop = WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGTERM ||
			WTERMSIG(status) == SIGQUIT;
	} else if (WEXITSTATUS(status)) {
		snprintf(r->why, sizeof(r->why), "exited with status %d", WEXITSTATUS(status));
		/* 128 + the signal: caught it, cleaned up, exited */
		*stop = WEXITSTATUS(status) == 128 + SIGINT || WEXITSTATUS(status) == 128 + SIGTERM;
	} else if (!json_object(r->out)) {
		snprintf(r->why, sizeof(r->why), "printed no JSON object on its standard output");
	} else {
		return true;
	}
	fprintf(stderr, PROG ": %s %s\n", prog_name[p], r->why);
	r->failed = true;
	free(r->out);
	r->out = NULL;
	return false;
}

/* ---- reading the JSON ---------------------------------------------------- */

/*
 * The number after "key": in [s, end); NAN if it is null or not there. Enough
 * for the objects the benchmark programs print.
 */
static double json_get(const char *s, const char *end, const char *key)
{
	char pat[64];
	size_t plen;
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	plen = strlen(pat);
	for (p = s; p && p + plen <= end; p = strstr(p + 1, pat)) {
		if (strncmp(p, pat, plen))
			continue;
		p += plen;
		p += strspn(p, " \t\r\n");
		if (p < end && (*p == '-' || *p == '.' || (*p >= '0' && *p <= '9')))
			return strtod(p, NULL);
		return NAN;
	}
	return NAN;
}

/* Where "key": is in [s, end), or NULL. */
static const char *json_at(const char *s, const char *end, const char *key)
{
	char pat[64];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(s, pat);
	return p && p < end ? p : NULL;
}

/* A spread the programs print: "key": {"min": a, "median": b, "max": c, "n": k}. */
static struct fig json_spread_get(const char *s, const char *end, const char *key)
{
	struct fig f = { NAN, NAN, NAN };
	const char *p = json_at(s, end, key), *close;

	if (!p)
		return f;
	p += strlen(key) + 3;
	p += strspn(p, " \t\r\n");
	close = *p == '{' ? strchr(p, '}') : NULL;
	if (!close || close > end)
		return f;
	f.min = json_get(p, close, "min");
	f.med = json_get(p, close, "median");
	f.max = json_get(p, close, "max");
	return f;
}

static void read_ksm(const char *s, struct figures *f)
{
	const char *end = s + strlen(s);

	for (int w = 0; w < NR_WL; w++) {
		char pat[32];
		const char *o, *next, *ratio, *meta;

		snprintf(pat, sizeof(pat), "\"name\": \"%s\"", wl[w].name);
		o = strstr(s, pat);
		if (!o)
			continue;
		next = strstr(o + 1, "\"name\": \"");
		if (!next)
			next = end;
		ratio = json_at(o, next, "ratio");
		if (!ratio)
			continue;
		f->ksm_run[w] = true;
		f->t99[w] = json_spread_get(ratio, next, "t99");
		f->cpu[w] = json_spread_get(ratio, next, "cpu");
		f->scan[w] = json_spread_get(ratio, next, "scanner_cpu");
		f->cow[w] = json_spread_get(ratio, next, "cow");
		meta = json_at(o, next, "metadata");
		if (w || !meta)
			continue; /* the metadata figure is W1's */
		f->meta = true;
		f->meta_before = json_spread_get(meta, next, "rss_anon_bytes_per_page_before");
		f->meta_after = json_spread_get(meta, next, "rss_anon_bytes_per_page_after");
		f->meta_vmas = json_get(meta, next, "pool_vmas_after");
		f->meta_vma_pp = json_get(meta, next, "kernel_vma_bytes_per_page_after");
	}
}

static void read_swap(const char *s, struct figures *f)
{
	const char *end = s + strlen(s), *k = json_at(s, end, "kernel");

	f->sw_out = json_spread_get(s, end, "out_ratio");
	f->sw_in = json_spread_get(s, end, "in_ratio");
	f->sw_fault = json_spread_get(s, end, "random_fault_ratio");
	f->sw_ws = json_spread_get(s, end, "ws_ratio");
	f->rand_us = json_spread_get(s, end, "random_swapin_us").med;
	f->k_rand_us = json_spread_get(s, end, "kernel_major_fault_us").med;
	f->ws_slowdown = json_spread_get(s, end, "ws_slowdown").med;
	f->k_ws_slowdown = json_spread_get(s, end, "kernel_ws_slowdown").med;
	f->ws_pool = json_get(s, end, "ws_pool_mib");
	f->ws_mib = json_get(s, end, "ws_mib");
	f->sw_kernel = k && strstr(k, "\"measured\": true");
}

static void read_figures(struct run *runs, struct figures *f)
{
	const struct fig none = { NAN, NAN, NAN };
	const char *s, *end;

	*f = (struct figures){ .meta_before = none, .meta_after = none };
	for (int w = 0; w < NR_WL; w++)
		f->t99[w] = f->cpu[w] = f->scan[w] = f->cow[w] = none;
	f->hp_ratio = f->touch = f->read = f->write = none;
	f->sw_out = f->sw_in = f->sw_fault = f->sw_ws = none;
	f->meta_vmas = f->meta_vma_pp = NAN;
	f->hp_section = f->hp_mibs = f->hp_ref = f->hp_stall_ms = f->fault_mode = NAN;
	f->rand_us = f->k_rand_us = f->ws_slowdown = f->k_ws_slowdown = NAN;
	f->ws_pool = f->ws_mib = NAN;
	if ((s = json_object(runs[P_KSM].out)))
		read_ksm(s, f);
	if ((s = json_object(runs[P_HOTPLUG].out))) {
		end = s + strlen(s);
		f->hp_section = json_get(s, end, "section_mib");
		f->hp_mibs = json_get(s, end, "mib_per_s");
		f->hp_ref = json_get(s, end, "kernel_ref_mib_per_s");
		f->hp_ratio = json_spread_get(s, end, "ratios");
		f->hp_stall_ms = json_get(s, end, "worst_stall_ms");
	}
	if ((s = json_object(runs[P_REGION].out))) {
		const char *r;

		end = s + strlen(s);
		f->fault_mode = json_get(s, end, "fault_mode");
		if ((r = json_at(s, end, "ratios"))) {
			f->touch = json_spread_get(r, end, "first_touch");
			f->read = json_spread_get(r, end, "read");
			f->write = json_spread_get(r, end, "write");
		}
	}
	if ((s = json_object(runs[P_SWAP].out)))
		read_swap(s, f);
}

/* Whether the median meets the target; counted into f. */
static bool meets(struct figures *f, struct fig v, enum cmp cmp, double target)
{
	double m = v.med;
	bool ok = !isnan(m) && (cmp == LE ? m <= target : cmp == LT ? m < target : m >= target);

	if (!isnan(m)) {
		f->total++;
		f->met += ok;
	}
	return ok;
}

/* A single value as a figure (no spread: one number). */
static struct fig one(double v)
{
	return (struct fig){ v, v, v };
}

/* ---- the table ------------------------------------------------------------ */

#define LABEL 22
#define COL 29

/* A target as people write it: 0.5, 0.25, 1.0, 10. */
static const char *target_str(char *buf, size_t len, double t)
{
	snprintf(buf, len, t == (double)(long)t && t < 10 ? "%.1f" : "%g", t);
	return buf;
}

/* "0.94 [0.90-0.99] <= 0.5 *" into buf: median, spread, target, a star when missed. */
static const char *cell(char *buf, size_t len, struct figures *f, struct fig v, enum cmp cmp,
			double target, const char *fmt, const char *unit)
{
	char med[16], lo[16], hi[16], spread[40] = "", tgt[16];
	bool ok;

	if (isnan(v.med)) {
		snprintf(buf, len, "-");
		return buf;
	}
	snprintf(med, sizeof(med), fmt, v.med);
	if (v.min != v.max) {
		snprintf(lo, sizeof(lo), fmt, v.min);
		snprintf(hi, sizeof(hi), fmt, v.max);
		snprintf(spread, sizeof(spread), " [%s-%s]", lo, hi);
	}
	ok = meets(f, v, cmp, target);
	if ((size_t)snprintf(buf, len, "%s%s %s %s%s%s", med, spread, cmp_op[cmp],
			     target_str(tgt, sizeof(tgt), target), unit, ok ? "" : " *") >= len)
		buf[len - 1] = '\0';
	return buf;
}

/* A label and up to three columns; the last one not padded. */
static void row(const char *label, const char *a, const char *b, const char *c)
{
	if (*c)
		printf("%-*s  %-*s  %-*s  %s\n", LABEL, label, COL, a, COL, b, c);
	else
		printf("%-*s  %-*s  %s\n", LABEL, label, COL, a, b);
}

static void print_ksm(const struct run *runs, struct figures *f)
{
	char c[3][64], label[48];
	int not_run = 0;

	row("KSM: samepage/kernel", "t99", "CPU (whole process)", "copy-on-write");
	if (runs[P_KSM].skipped)
		printf("  skipped: bench_ksm drives /sys/kernel/mm/ksm and needs root\n");
	else if (runs[P_KSM].failed)
		printf("  bench_ksm %s\n", runs[P_KSM].why);
	for (int w = 0; w < NR_WL; w++) {
		if (!f->ksm_run[w]) {
			not_run++;
			continue;
		}
		snprintf(label, sizeof(label), "  %s %s", wl[w].name, wl[w].desc);
		row(label, cell(c[0], sizeof(c[0]), f, f->t99[w], LE, wl[w].t99, "%.2f", ""),
		    cell(c[1], sizeof(c[1]), f, f->cpu[w], LE, wl[w].cpu, "%.2f", ""),
		    cell(c[2], sizeof(c[2]), f, f->cow[w], LE, wl[w].cow, "%.2f", ""));
	}
	if (runs[P_KSM].out && not_run) {
		printf("  not run:");
		for (int w = 0; w < NR_WL; w++)
			if (!f->ksm_run[w])
				printf(" %s", wl[w].name);
		printf("\n");
	}
	if (runs[P_KSM].out && not_run < NR_WL) {
		printf("  scanner thread alone against ksmd (CPU):");
		for (int w = 0; w < NR_WL; w++)
			if (f->ksm_run[w])
				printf(" %s %.2f", wl[w].name, f->scan[w].med);
		printf("\n");
	}
	if (!f->meta)
		return;
	snprintf(c[0], sizeof(c[0]), "%.1f B/page before merging", f->meta_before.med);
	row("  metadata, W1", c[0],
	    cell(c[1], sizeof(c[1]), f, f->meta_after, LE, META_MAX_B, "%.1f", " B"),
	    "at t99 (RssAnon growth)");
	printf("  kernel side at t99: %.0f pool VMAs, about %.0f B per region page\n", f->meta_vmas,
	       f->meta_vma_pp);
}

static void print_swap(const struct run *runs, struct figures *f)
{
	char c[3][64];

	row("swap: pool/file I/O", "swap-out", "swap-in", "");
	if (runs[P_SWAP].failed) {
		printf("  bench_swap %s\n", runs[P_SWAP].why);
		return;
	}
	row("", cell(c[0], sizeof(c[0]), f, f->sw_out, GE, SWAP_RATIO_MIN, "%.2f", ""),
	    cell(c[1], sizeof(c[1]), f, f->sw_in, GE, SWAP_RATIO_MIN, "%.2f", ""), "");
	row("swap: samepage/kernel", "random swap-in fault", "1.5x working set slowdown", "");
	if (!f->sw_kernel) {
		printf("  the kernel's swap not measured (root makes a memory cgroup and a swap "
		       "file); samepage: %.1f us per random fault, %.1fx slower (%.0f MiB in %.0f)\n",
		       f->rand_us, f->ws_slowdown, f->ws_mib, f->ws_pool);
		return;
	}
	row("", cell(c[0], sizeof(c[0]), f, f->sw_fault, LE, SWAP_FAULT_MAX, "%.2f", ""),
	    cell(c[1], sizeof(c[1]), f, f->sw_ws, LE, SWAP_WS_MAX, "%.2f", ""), "");
	printf("  samepage %.1f us, kernel %.1f us per fault; %.0f MiB in %.0f: samepage %.1fx, "
	       "kernel %.1fx slower\n",
	       f->rand_us, f->k_rand_us, f->ws_mib, f->ws_pool, f->ws_slowdown, f->k_ws_slowdown);
}

static void print_table(const struct bench_opts *o, const struct run *runs, struct figures *f)
{
	char c[3][64], label[48], date[40];
	time_t t = time(NULL);
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(date, sizeof(date), "%Y-%m-%d %H:%M %z", &tm))
		snprintf(date, sizeof(date), "date unknown");
	printf("samepage bench%s, %s: ratio = samepage/baseline, median [min-max] of "
	       "interleaved rounds;\n* = target missed (judged on the median)\n\n",
	       o->quick ? " --quick" : "", date);
	print_ksm(runs, f);

	if (isnan(f->hp_ref))
		snprintf(label, sizeof(label), "x kernel reference");
	else
		snprintf(label, sizeof(label), "x kernel (%.0f MiB/s)", f->hp_ref);
	printf("\n");
	row("hot-remove", "MiB/s (best round)", label, "worst write stall");
	if (runs[P_HOTPLUG].failed) {
		printf("  bench_hotplug %s\n", runs[P_HOTPLUG].why);
	} else {
		snprintf(label, sizeof(label), "  %.0f MiB section", f->hp_section);
		snprintf(c[0], sizeof(c[0]), "%.0f", f->hp_mibs);
		row(label, c[0],
		    cell(c[1], sizeof(c[1]), f, f->hp_ratio, GE, HOTPLUG_RATIO_MIN, "%.2f", ""),
		    cell(c[2], sizeof(c[2]), f, one(f->hp_stall_ms), LT, HOTPLUG_STALL_MAX_MS,
			 "%.2f", " ms"));
	}

	printf("\n");
	row("region: pool/plain", "first touch", "read bandwidth", "write bandwidth");
	if (runs[P_REGION].failed) {
		printf("  bench_region %s\n", runs[P_REGION].why);
	} else {
		const char *mode = "";

		if (f->fault_mode == 1)
			mode = "  userfaultfd mode";
		else if (f->fault_mode == 2)
			mode = "  SIGSEGV mode";
		row(mode, cell(c[0], sizeof(c[0]), f, f->touch, LE, REGION_TOUCH_MAX, "%.2f", ""),
		    cell(c[1], sizeof(c[1]), f, f->read, GE, REGION_BW_MIN, "%.2f", ""),
		    cell(c[2], sizeof(c[2]), f, f->write, GE, REGION_BW_MIN, "%.2f", ""));
	}

	printf("\n");
	print_swap(runs, f);
	printf("\ntargets met: %d of %d\n", f->met, f->total);
}

/* ---- the JSON ------------------------------------------------------------- */

static void json_num_or_null(const char *key, double v)
{
	printf("\"%s\": ", key);
	if (isnan(v))
		printf("null");
	else
		printf("%.6g", v);
}

/* sep, then "key": {min, median, max} with its target and whether it is met (counted). */
static void json_ratio(struct figures *f, const char *sep, const char *key, struct fig v,
		       enum cmp cmp, double target)
{
	bool ok = meets(f, v, cmp, target);

	printf("%s\"%s\": ", sep, key);
	if (isnan(v.med)) {
		printf("null");
	} else {
		printf("{");
		json_num_or_null("min", v.min);
		printf(", ");
		json_num_or_null("median", v.med);
		printf(", ");
		json_num_or_null("max", v.max);
		printf("}");
	}
	printf(", \"%s_target\": \"%s %g\", \"%s_ok\": ", key, cmp_op[cmp], target, key);
	if (isnan(v.med))
		printf("null");
	else
		printf("%s", ok ? "true" : "false");
}

static void json_ksm(const struct run *runs, struct figures *f)
{
	bool first = true;

	if (runs[P_KSM].skipped) {
		printf("null, \"ksm_skipped\": \"bench_ksm needs root\"");
		return;
	}
	if (runs[P_KSM].failed) {
		printf("null");
		return;
	}
	printf("{");
	for (int w = 0; w < NR_WL; w++) {
		if (!f->ksm_run[w])
			continue;
		printf("%s\"%s\": {", first ? "" : ", ", wl[w].name);
		first = false;
		json_ratio(f, "", "t99", f->t99[w], LE, wl[w].t99);
		json_ratio(f, ", ", "cpu", f->cpu[w], LE, wl[w].cpu);
		json_ratio(f, ", ", "cow", f->cow[w], LE, wl[w].cow);
		printf(", \"scanner_cpu\": ");
		if (isnan(f->scan[w].med))
			printf("null");
		else
			printf("{\"min\": %.6g, \"median\": %.6g, \"max\": %.6g}", f->scan[w].min,
			       f->scan[w].med, f->scan[w].max);
		printf("}");
	}
	if (f->meta) {
		printf("%s\"metadata\": {", first ? "" : ", ");
		json_num_or_null("bytes_per_page_before", f->meta_before.med);
		json_ratio(f, ", ", "bytes_per_page_after", f->meta_after, LE, META_MAX_B);
		printf(", ");
		json_num_or_null("pool_vmas_after", f->meta_vmas);
		printf(", ");
		json_num_or_null("kernel_vma_bytes_per_page_after", f->meta_vma_pp);
		printf("}");
	}
	printf("}");
}

static void json_swap(const struct run *runs, struct figures *f)
{
	if (runs[P_SWAP].failed) {
		printf("null");
		return;
	}
	printf("{");
	json_ratio(f, "", "swap_out", f->sw_out, GE, SWAP_RATIO_MIN);
	json_ratio(f, ", ", "swap_in", f->sw_in, GE, SWAP_RATIO_MIN);
	if (f->sw_kernel) {
		json_ratio(f, ", ", "random_fault_vs_kernel", f->sw_fault, LE, SWAP_FAULT_MAX);
		json_ratio(f, ", ", "working_set_vs_kernel", f->sw_ws, LE, SWAP_WS_MAX);
	}
	printf(", ");
	json_num_or_null("random_swapin_us", f->rand_us);
	printf(", ");
	json_num_or_null("kernel_major_fault_us", f->k_rand_us);
	printf(", ");
	json_num_or_null("working_set_slowdown", f->ws_slowdown);
	printf(", ");
	json_num_or_null("kernel_working_set_slowdown", f->k_ws_slowdown);
	printf("}");
}

static void print_json(const struct bench_opts *o, const struct run *runs, struct figures *f)
{
	char date[40];
	time_t t = time(NULL);
	struct tm tm;
	bool first = true;

	if (!localtime_r(&t, &tm) || !strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S%z", &tm))
		snprintf(date, sizeof(date), "unknown");
	printf("{");
	for (int p = 0; p < NR_PROGS; p++) {
		const char *s = json_object(runs[p].out);

		printf("\"%s\": %s, ", prog_key[p], s ? s : "null");
	}
	printf("\"summary\": {\"date\": \"%s\", \"quick\": %s, \"ksm\": ", date,
	       o->quick ? "true" : "false");
	json_ksm(runs, f);
	printf(", \"hotplug\": ");
	if (runs[P_HOTPLUG].failed) {
		printf("null");
	} else {
		printf("{");
		json_num_or_null("mib_per_s", f->hp_mibs);
		printf(", ");
		json_num_or_null("kernel_ref_mib_per_s", f->hp_ref);
		json_ratio(f, ", ", "ratio", f->hp_ratio, GE, HOTPLUG_RATIO_MIN);
		json_ratio(f, ", ", "worst_stall_ms", one(f->hp_stall_ms), LT,
			   HOTPLUG_STALL_MAX_MS);
		printf("}");
	}
	printf(", \"region\": ");
	if (runs[P_REGION].failed) {
		printf("null");
	} else {
		printf("{");
		json_ratio(f, "", "first_touch", f->touch, LE, REGION_TOUCH_MAX);
		json_ratio(f, ", ", "read", f->read, GE, REGION_BW_MIN);
		json_ratio(f, ", ", "write", f->write, GE, REGION_BW_MIN);
		printf("}");
	}
	printf(", \"swap\": ");
	json_swap(runs, f);
	/* The reasons are our own words: nothing to escape. */
	printf(", \"targets_met\": %d, \"targets_total\": %d, \"failed\": {", f->met, f->total);
	for (int p = 0; p < NR_PROGS; p++)
		if (runs[p].failed) {
			printf("%s\"%s\": \"%s\"", first ? "" : ", ", prog_name[p], runs[p].why);
			first = false;
		}
	printf("}}}\n");
}

/* The programs' arguments: --quick's, --rounds and --workloads. */
static void prog_args(const struct bench_opts *o, const char *args[NR_PROGS][7])
{
	int n[NR_PROGS] = { 0 };

	if (o->workloads || o->quick) {
		args[P_KSM][n[P_KSM]++] = "--workloads";
		args[P_KSM][n[P_KSM]++] = o->workloads ? o->workloads : "W1,W4";
	}
	if (o->quick) {
		args[P_HOTPLUG][n[P_HOTPLUG]++] = "--rounds";
		args[P_HOTPLUG][n[P_HOTPLUG]++] = "1";
		args[P_HOTPLUG][n[P_HOTPLUG]++] = "--section";
		args[P_HOTPLUG][n[P_HOTPLUG]++] = "64";
		args[P_REGION][n[P_REGION]++] = "--rounds";
		args[P_REGION][n[P_REGION]++] = "3";
	}
	if (o->rounds || o->quick) {
		args[P_KSM][n[P_KSM]++] = "--rounds";
		args[P_KSM][n[P_KSM]++] = o->rounds ? o->rounds : "3";
		args[P_SWAP][n[P_SWAP]++] = "--rounds";
		args[P_SWAP][n[P_SWAP]++] = o->rounds ? o->rounds : "1";
	}
}

int cmd_bench(int argc, char **argv)
{
	const char *args[NR_PROGS][7] = { { NULL } };
	struct run runs[NR_PROGS] = { 0 };
	struct bench_opts o;
	struct figures f;
	char dir[PATH_MAX];
	bool stop = false, failed = false;

	if (parse_bench(argc, argv, &o))
		return 2;
	runs[P_KSM].skipped = geteuid() != 0;
	if (find_bench_dir(dir, sizeof(dir), !runs[P_KSM].skipped))
		return 1;
	prog_args(&o, args);
	if (runs[P_KSM].skipped)
		fprintf(stderr, PROG ": note: not root: skipping bench_ksm (it drives "
				     "/sys/kernel/mm/ksm and needs root); running the others\n");
	for (int p = 0; p < NR_PROGS; p++) {
		if (runs[p].skipped)
			continue;
		if (stop) {
			runs[p].failed = true;
			snprintf(runs[p].why, sizeof(runs[p].why), "not run: interrupted");
			continue;
		}
		failed |= !run_one(dir, p, args[p], &runs[p], &stop);
	}

	read_figures(runs, &f);
	if (o.json)
		print_json(&o, runs, &f);
	else
		print_table(&o, runs, &f);
	for (int p = 0; p < NR_PROGS; p++)
		free(runs[p].out);
	if (failed)
		fprintf(stderr, PROG ": %s\n",
			stop ? "interrupted" : "a benchmark program failed (see above)");
	return failed ? 1 : 0;
}
