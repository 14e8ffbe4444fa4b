/* SPDX-License-Identifier: MIT */
/*
 * samepage bench [--json] [--quick] [--workloads W1,..]
 *
 * Runs the four benchmark programs (bench_ksm, bench_hotplug, bench_region, bench_swap)
 * one after the other with --json, reads their JSON from a pipe (their stderr
 * passes through), and prints one table of ratios against the targets, or one
 * JSON object holding the three programs' objects and a summary.
 *
 * The programs are looked for in $SAMEPAGE_BENCH_DIR, or else in ../bench/
 * next to the directory of this executable (build/tools/samepage ->
 * build/bench/). bench_ksm drives /sys/kernel/mm/ksm and needs root: without
 * it the KSM part is skipped. Exit status: 0 when every program ran (missed
 * targets included), 1 when one could not be found, run or read, 2 on bad
 * arguments.
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
#include <unistd.h>

#include "cmds.h"

#define PROG "samepage bench"
#define NR_WL 4

enum prog { P_KSM, P_HOTPLUG, P_REGION, P_SWAP, NR_PROGS };

static const char *const prog_name[NR_PROGS] = { "bench_ksm", "bench_hotplug", "bench_region",
						 "bench_swap" };
static const char *const prog_key[NR_PROGS] = { "ksm", "hotplug", "region", "swap" };

/* The workloads of WORKLOADS.md and their targets (ratio = samepage/kernel). */
static const struct {
	const char *name, *desc;
	double t99, cpu, cow;
} wl[NR_WL] = {
	{ "W1", "scattered", 0.5, 1.0, 0.6 },
	{ "W2", "images", 0.5, 0.25, 0.6 },
	{ "W3", "mostly unique", 0.5, 0.25, 0.6 },
	{ "W4", "zeros", 0.5, 1.0, 0.6 },
};

#define HOTPLUG_RATIO_MIN 1.0
#define HOTPLUG_STALL_MAX_MS 10.0
#define REGION_TOUCH_MAX 2.0
#define REGION_BW_MIN 0.95
#define SWAP_RATIO_MIN 0.7

/* How a figure is held to its target. */
enum cmp { LE, LT, GE };

static const char *const cmp_op[] = { "<=", "<", ">=" };

struct bench_opts {
	bool json, quick;
	const char *workloads;
};

/* What one program gave: its JSON (NULL if it did not run or failed). */
struct run {
	bool skipped, failed;
	char why[80]; /* how it failed */
	char *out;
};

/* The figures the table and the summary show; NAN when absent. */
struct figures {
	bool ksm_run[NR_WL];
	double t99[NR_WL], cpu[NR_WL], cow[NR_WL];
	double hp_section, hp_mibs, hp_ref, hp_ratio, hp_stall_ms;
	double fault_mode, touch, read, write;
	double sw_out, sw_in, ws_slowdown, ws_pool, ws_mib;
	int met, total;
};

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: samepage bench [--json] [--quick] [--workloads W1,W2,W3,W4]\n"
		"  --json           one JSON object: the programs' objects under \"ksm\", \"hotplug\",\n"
		"                   \"region\", \"swap\", and a \"summary\" of the ratios\n"
		"  --quick          a short run: KSM workloads W3,W4 only, one 64 MiB hot-remove\n"
		"                   round, 3 region rounds, 1 swap round\n"
		"  --workloads L    KSM workloads to run, passed to bench_ksm (default all)\n"
		"  --version        print samepage's version\n"
		"runs bench_ksm (needs root; skipped otherwise), bench_hotplug, bench_region and\n"
		"bench_swap, found in $SAMEPAGE_BENCH_DIR, or else in ../bench/ from this executable's\n"
		"directory (build/tools/samepage -> build/bench/)\n");
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

static int parse_bench(int argc, char **argv, struct bench_opts *o)
{
	static const struct option opts[] = { { "json", no_argument, NULL, 'j' },
					      { "quick", no_argument, NULL, 'q' },
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
 * for the flat objects the benchmark programs print.
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

static void read_ksm(const char *s, struct figures *f)
{
	const char *end = s + strlen(s);

	for (int w = 0; w < NR_WL; w++) {
		char pat[32];
		const char *o, *next, *ratio;

		snprintf(pat, sizeof(pat), "\"name\": \"%s\"", wl[w].name);
		o = strstr(s, pat);
		if (!o)
			continue;
		next = strstr(o + 1, "\"name\": \"");
		if (!next)
			next = end;
		ratio = strstr(o, "\"ratio\":");
		if (!ratio || ratio > next)
			continue;
		f->ksm_run[w] = true;
		f->t99[w] = json_get(ratio, next, "t99");
		f->cpu[w] = json_get(ratio, next, "cpu");
		f->cow[w] = json_get(ratio, next, "cow");
	}
}

static void read_figures(struct run *runs, struct figures *f)
{
	const char *s;

	*f = (struct figures){ 0 };
	for (int w = 0; w < NR_WL; w++)
		f->t99[w] = f->cpu[w] = f->cow[w] = NAN;
	f->hp_section = f->hp_mibs = f->hp_ref = f->hp_ratio = f->hp_stall_ms = NAN;
	f->fault_mode = f->touch = f->read = f->write = NAN;
	f->sw_out = f->sw_in = f->ws_slowdown = f->ws_pool = f->ws_mib = NAN;
	if ((s = json_object(runs[P_KSM].out)))
		read_ksm(s, f);
	if ((s = json_object(runs[P_HOTPLUG].out))) {
		const char *end = s + strlen(s);

		f->hp_section = json_get(s, end, "section_mib");
		f->hp_mibs = json_get(s, end, "mib_per_s");
		f->hp_ref = json_get(s, end, "kernel_ref_mib_per_s");
		f->hp_ratio = json_get(s, end, "ratio");
		f->hp_stall_ms = json_get(s, end, "worst_stall_ms");
	}
	if ((s = json_object(runs[P_REGION].out))) {
		const char *end = s + strlen(s);

		f->fault_mode = json_get(s, end, "fault_mode");
		f->touch = json_get(s, end, "first_touch_ratio");
		f->read = json_get(s, end, "read_ratio");
		f->write = json_get(s, end, "write_ratio");
	}
	if ((s = json_object(runs[P_SWAP].out))) {
		const char *end = s + strlen(s);

		f->sw_out = json_get(s, end, "out_ratio");
		f->sw_in = json_get(s, end, "in_ratio");
		f->ws_slowdown = json_get(s, end, "ws_slowdown");
		f->ws_pool = json_get(s, end, "ws_pool_mib");
		f->ws_mib = json_get(s, end, "ws_mib");
	}
}

/* Whether v meets the target; counted into f. */
static bool meets(struct figures *f, double v, enum cmp cmp, double target)
{
	bool ok = !isnan(v) && (cmp == LE ? v <= target : cmp == LT ? v < target : v >= target);

	if (!isnan(v)) {
		f->total++;
		f->met += ok;
	}
	return ok;
}

/* ---- the table ------------------------------------------------------------ */

#define COL 20

/* A target as people write it: 0.5, 0.25, 1.0, 10. */
static const char *target_str(char *buf, size_t len, double t)
{
	snprintf(buf, len, t == (double)(long)t && t < 10 ? "%.1f" : "%g", t);
	return buf;
}

/* "0.940  <= 0.5 *" into buf: value, target, a star when missed. */
static const char *cell(char *buf, size_t len, struct figures *f, double v, enum cmp cmp,
			double target, const char *fmt, const char *unit)
{
	char num[16], tgt[16];
	bool ok;

	if (isnan(v)) {
		snprintf(buf, len, "-");
		return buf;
	}
	snprintf(num, sizeof(num), fmt, v);
	ok = meets(f, v, cmp, target);
	if ((size_t)snprintf(buf, len, "%-6s %s %s%s%s", num, cmp_op[cmp],
			     target_str(tgt, sizeof(tgt), target), unit, ok ? "" : " *") >= len)
		buf[len - 1] = '\0';
	return buf;
}

/* A label and three columns; the last one not padded. */
static void row(const char *label, const char *a, const char *b, const char *c)
{
	printf("%-24s  %-*s  %-*s  %s\n", label, COL, a, COL, b, c);
}

static void print_table(const struct bench_opts *o, const struct run *runs, struct figures *f)
{
	char c[3][48], label[48];
	int not_run = 0;

	printf("samepage bench%s: ratio = samepage/baseline (kernel KSM, or plain memory for "
	       "regions); * = target missed\n\n",
	       o->quick ? " --quick" : "");
	row("KSM: samepage/kernel", "t99", "scanner CPU", "copy-on-write");
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
		row(label, cell(c[0], sizeof(c[0]), f, f->t99[w], LE, wl[w].t99, "%.3f", ""),
		    cell(c[1], sizeof(c[1]), f, f->cpu[w], LE, wl[w].cpu, "%.3f", ""),
		    cell(c[2], sizeof(c[2]), f, f->cow[w], LE, wl[w].cow, "%.3f", ""));
	}
	if (runs[P_KSM].out && not_run) {
		printf("  not run:");
		for (int w = 0; w < NR_WL; w++)
			if (!f->ksm_run[w])
				printf(" %s", wl[w].name);
		printf("\n");
	}

	if (isnan(f->hp_ref))
		snprintf(label, sizeof(label), "x kernel reference");
	else
		snprintf(label, sizeof(label), "x kernel (%.0f MiB/s)", f->hp_ref);
	printf("\n");
	row("hot-remove", "MiB/s", label, "worst write stall");
	if (runs[P_HOTPLUG].failed) {
		printf("  bench_hotplug %s\n", runs[P_HOTPLUG].why);
	} else {
		snprintf(label, sizeof(label), "  %.0f MiB section", f->hp_section);
		snprintf(c[0], sizeof(c[0]), "%.0f", f->hp_mibs);
		row(label, c[0],
		    cell(c[1], sizeof(c[1]), f, f->hp_ratio, GE, HOTPLUG_RATIO_MIN, "%.2fx", "x"),
		    cell(c[2], sizeof(c[2]), f, f->hp_stall_ms, LT, HOTPLUG_STALL_MAX_MS, "%.2f",
			 " ms"));
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
		row(mode, cell(c[0], sizeof(c[0]), f, f->touch, LE, REGION_TOUCH_MAX, "%.3f", ""),
		    cell(c[1], sizeof(c[1]), f, f->read, GE, REGION_BW_MIN, "%.3f", ""),
		    cell(c[2], sizeof(c[2]), f, f->write, GE, REGION_BW_MIN, "%.3f", ""));
	}

	printf("\n");
	row("swap: pool/file I/O", "swap-out", "swap-in", "1.5x working set");
	if (runs[P_SWAP].failed) {
		printf("  bench_swap %s\n", runs[P_SWAP].why);
	} else {
		/* The working set has no target: its slowdown against enough memory. */
		snprintf(c[2], sizeof(c[2]), "%.1fx slower (%.0f MiB in %.0f)", f->ws_slowdown,
			 f->ws_mib, f->ws_pool);
		row("  userfaultfd mode",
		    cell(c[0], sizeof(c[0]), f, f->sw_out, GE, SWAP_RATIO_MIN, "%.3f", ""),
		    cell(c[1], sizeof(c[1]), f, f->sw_in, GE, SWAP_RATIO_MIN, "%.3f", ""), c[2]);
	}
	printf("\ntargets met: %d of %d\n", f->met, f->total);
}

/* ---- the JSON ------------------------------------------------------------- */

/* sep, then "key": v with its target and whether it is met (counted into f). */
static void json_ratio(struct figures *f, const char *sep, const char *key, double v, enum cmp cmp,
		       double target)
{
	bool ok = meets(f, v, cmp, target);

	printf("%s\"%s\": ", sep, key);
	if (isnan(v))
		printf("null");
	else
		printf("%.6g", v);
	printf(", \"%s_target\": \"%s %g\", \"%s_ok\": ", key, cmp_op[cmp], target, key);
	if (isnan(v))
		printf("null");
	else
		printf("%s", ok ? "true" : "false");
}

static void json_num_or_null(const char *key, double v)
{
	printf("\"%s\": ", key);
	if (isnan(v))
		printf("null");
	else
		printf("%.6g", v);
}

static void print_json(const struct bench_opts *o, const struct run *runs, struct figures *f)
{
	bool first = true;

	printf("{");
	for (int p = 0; p < NR_PROGS; p++) {
		const char *s = json_object(runs[p].out);

		printf("\"%s\": %s, ", prog_key[p], s ? s : "null");
	}
	printf("\"summary\": {\"quick\": %s, \"ksm\": ", o->quick ? "true" : "false");
	if (runs[P_KSM].skipped) {
		printf("null, \"ksm_skipped\": \"bench_ksm needs root\"");
	} else if (runs[P_KSM].failed) {
		printf("null");
	} else {
		printf("{");
		for (int w = 0; w < NR_WL; w++) {
			if (!f->ksm_run[w])
				continue;
			printf("%s\"%s\": {", first ? "" : ", ", wl[w].name);
			first = false;
			json_ratio(f, "", "t99", f->t99[w], LE, wl[w].t99);
			json_ratio(f, ", ", "cpu", f->cpu[w], LE, wl[w].cpu);
			json_ratio(f, ", ", "cow", f->cow[w], LE, wl[w].cow);
			printf("}");
		}
		printf("}");
	}
	printf(", \"hotplug\": ");
	if (runs[P_HOTPLUG].failed) {
		printf("null");
	} else {
		printf("{");
		json_num_or_null("mib_per_s", f->hp_mibs);
		printf(", ");
		json_num_or_null("kernel_ref_mib_per_s", f->hp_ref);
		json_ratio(f, ", ", "ratio", f->hp_ratio, GE, HOTPLUG_RATIO_MIN);
		json_ratio(f, ", ", "worst_stall_ms", f->hp_stall_ms, LT, HOTPLUG_STALL_MAX_MS);
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
	if (runs[P_SWAP].failed) {
		printf("null");
	} else {
		printf("{");
		json_ratio(f, "", "swap_out", f->sw_out, GE, SWAP_RATIO_MIN);
		json_ratio(f, ", ", "swap_in", f->sw_in, GE, SWAP_RATIO_MIN);
		printf(", ");
		json_num_or_null("working_set_slowdown", f->ws_slowdown);
		printf("}");
	}
	/* The reasons are our own words: nothing to escape. */
	printf(", \"targets_met\": %d, \"targets_total\": %d, \"failed\": {", f->met, f->total);
	first = true;
	for (int p = 0; p < NR_PROGS; p++)
		if (runs[p].failed) {
			printf("%s\"%s\": \"%s\"", first ? "" : ", ", prog_name[p], runs[p].why);
			first = false;
		}
	printf("}}}\n");
}

int cmd_bench(int argc, char **argv)
{
	const char *args[NR_PROGS][5] = { { NULL } };
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
	if (o.workloads || o.quick) {
		args[P_KSM][0] = "--workloads";
		args[P_KSM][1] = o.workloads ? o.workloads : "W3,W4";
	}
	if (o.quick) {
		args[P_HOTPLUG][0] = "--rounds";
		args[P_HOTPLUG][1] = "1";
		args[P_HOTPLUG][2] = "--section";
		args[P_HOTPLUG][3] = "64";
		args[P_REGION][0] = "--rounds";
		args[P_REGION][1] = "3";
		args[P_SWAP][0] = "--rounds";
		args[P_SWAP][1] = "1";
	}
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
