/* SPDX-License-Identifier: MIT */
/*
 * bench_run: `samepage run` against kernel KSM with PR_SET_MEMORY_MERGE on
 * the same unmodified python3 program, many copies of the same data, in the
 * same run. Rounds alternate which goes first; medians and spreads of the
 * memory saved (each side's general_profit: samepage's socket, the kernel's
 * /proc/PID/ksm_stat ksm_process_profit), the program's Pss once merged, and
 * the time from "built" until 90% of the final saving. Both scanners get the
 * same pages_to_scan and sleep_millisecs; the kernel's knobs are changed
 * under the project's kernel KSM flock and restored, on a signal too.
 *
 *   bench_run [--rounds N] [--mib N] [--pages-to-scan N] [--sleep-ms N]
 *             [--samepage PATH]
 */
#include <limits.h>
#include <stdbool.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "bench.h"
#include "kernel_ksm_lock.h"

#ifndef PR_SET_MEMORY_MERGE
#define PR_SET_MEMORY_MERGE 67
#endif

#define PYTHON "/usr/bin/python3"
#define KSM "/sys/kernel/mm/ksm/"
#define SETTLE_S 3.0 /* the saving grew by under 1% for this long: merged */
#define LIMIT_S 180.0

/* The program: N copies of 16 KiB in 4 values, lists of them; waits for EOF. */
static const char workload[] =
	"import sys\n"
	"n = int(sys.argv[1]) * 64\n"
	"blobs = [bytes([65 + i % 4]) * 16384 for i in range(n)]\n"
	"rows = [list(blobs[:64]) for _ in range(n // 64)]\n"
	"print('built', flush=True)\n"
	"sys.stdin.read()\n"
	"assert all(b == bytes([65 + i % 4]) * 16384 for i, b in enumerate(blobs))\n"
	"assert all(r == blobs[:64] for r in rows)\n"
	"print('ok', flush=True)\n";

static const char *const knobs[] = { "run", "pages_to_scan", "sleep_millisecs" };
static char saved_knobs[3][32];
static volatile sig_atomic_t knobs_changed;

static int restore_knobs(void)
{
	int failed = 0;

	for (int i = 2; i >= 0; i--) {
		char path[128];

		snprintf(path, sizeof(path), KSM "%s", knobs[i]);
		failed |= write_file(path, saved_knobs[i]);
	}
	return failed;
}

static void on_signal(int sig)
{
	int failed = knobs_changed ? restore_knobs() : 0;

	exit_on_signal(sig, failed, "bench_run: kernel KSM knobs restored\n",
		       "bench_run: could not restore the kernel KSM knobs\n");
}

static void kernel_knobs(unsigned long pages, unsigned long sleep_ms)
{
	char path[128], val[32];

	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof(path), KSM "%s", knobs[i]);
		if (read_file(path, saved_knobs[i], sizeof(saved_knobs[i])))
			die(path);
	}
	knobs_changed = 1;
	snprintf(val, sizeof(val), "%lu", pages);
	if (write_file(KSM "pages_to_scan", val))
		die(KSM "pages_to_scan");
	snprintf(val, sizeof(val), "%lu", sleep_ms);
	if (write_file(KSM "sleep_millisecs", val) || write_file(KSM "run", "1"))
		die(KSM "run");
}

struct side {
	const char *name;
	bool kernel;
	double saved[BENCH_MAX_ROUNDS], t90[BENCH_MAX_ROUNDS], pss[BENCH_MAX_ROUNDS];
};

static struct {
	const char *samepage;
	unsigned long mib, pages, sleep_ms;
	char mib_arg[16], knob_pages[48], knob_sleep[48];
} cfg = { .mib = 128, .pages = 5000, .sleep_ms = 20 };

/* "name value" from a file of such lines (ksm_stat, stats output); -1 if absent. */
static long field_of(FILE *f, const char *name)
{
	char line[256];
	size_t len = strlen(name);

	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, name, len) && line[len] == ' ')
			return strtol(line + len + 1, NULL, 10);
	return -1;
}

/* The bytes this side says it saves for pid now. */
static long saving(const struct side *s, pid_t pid)
{
	char cmd[PATH_MAX + 64];
	FILE *f;
	long v;

	if (s->kernel) {
		snprintf(cmd, sizeof(cmd), "/proc/%d/ksm_stat", (int)pid);
		f = fopen(cmd, "re");
	} else {
		snprintf(cmd, sizeof(cmd), "%s stats --pid %d 2>/dev/null", cfg.samepage, (int)pid);
		f = popen(cmd, "r");
	}
	if (!f)
		return -1;
	v = field_of(f, s->kernel ? "ksm_process_profit" : "general_profit");
	if (s->kernel)
		fclose(f);
	else
		pclose(f);
	return v;
}

static double pss_mib(pid_t pid)
{
	char path[64];
	FILE *f;
	long kb;

	snprintf(path, sizeof(path), "/proc/%d/smaps_rollup", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return NAN;
	kb = -1;
	for (char line[256]; fgets(line, sizeof(line), f);)
		if (sscanf(line, "Pss: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb < 0 ? NAN : (double)kb / 1024;
}

static pid_t start(const struct side *s, int *in, FILE **out)
{
	int to[2], from[2];
	pid_t pid;

	if (pipe2(to, O_CLOEXEC) || pipe2(from, O_CLOEXEC))
		die("pipe");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid) {
		dup2(to[0], 0);
		dup2(from[1], 1);
		if (s->kernel) {
			if (prctl(PR_SET_MEMORY_MERGE, 1, 0, 0, 0))
				die("prctl(PR_SET_MEMORY_MERGE)");
			execl(PYTHON, PYTHON, "-c", workload, cfg.mib_arg, (char *)NULL);
		} else {
			execl(cfg.samepage, "samepage", "run", "--knob", cfg.knob_pages, "--knob",
			      cfg.knob_sleep, "--", PYTHON, "-c", workload, cfg.mib_arg,
			      (char *)NULL);
		}
		die("exec");
	}
	close(to[0]);
	close(from[1]);
	*in = to[1];
	*out = fdopen(from[0], "r");
	return pid;
}

/* One round of one side: its figures into round r. */
static void round_of(struct side *s, unsigned r)
{
	double t0, t = 0, last_growth, *when = malloc(sizeof(double) * 4096);
	long best = 0, *val = malloc(sizeof(long) * 4096);
	unsigned n = 0;
	char line[64];
	FILE *out;
	int in, status;
	pid_t pid = start(s, &in, &out);

	if (!when || !val || !fgets(line, sizeof(line), out) || strcmp(line, "built\n"))
		die("the program did not build its data");
	t0 = last_growth = now();
	while (t < LIMIT_S && n < 4096 && (best <= 0 || t - (last_growth - t0) < SETTLE_S)) {
		long v;

		usleep(50 * 1000);
		t = now() - t0;
		v = saving(s, pid);
		if (v > best + best / 100)
			last_growth = now();
		if (v > best)
			best = v;
		when[n] = t;
		val[n++] = v;
	}
	s->saved[r] = (double)best / (1 << 20);
	s->t90[r] = NAN;
	for (unsigned i = 0; i < n && best > 0; i++)
		if (val[i] >= best * 9 / 10) {
			s->t90[r] = when[i];
			break;
		}
	s->pss[r] = pss_mib(pid);
	close(in);
	if (!fgets(line, sizeof(line), out) || strcmp(line, "ok\n"))
		fprintf(stderr, "bench_run: %s: the program's own check failed\n", s->name);
	fclose(out);
	waitpid(pid, &status, 0);
	if (!WIFEXITED(status) || WEXITSTATUS(status))
		fprintf(stderr, "bench_run: %s: the program exited with %#x\n", s->name, status);
	free(when);
	free(val);
}

static void print_side(const struct side *s, unsigned rounds)
{
	char a[64], b[64], c[64];

	printf("%-34s %-24s %-22s %s\n", s->name,
	       spread_str(a, sizeof(a), spread_of(s->saved, rounds), "%.1f"),
	       spread_str(b, sizeof(b), spread_of(s->t90, rounds), "%.2f"),
	       spread_str(c, sizeof(c), spread_of(s->pss, rounds), "%.1f"));
}

static const char *default_samepage(void)
{
	static char path[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 32);
	char *slash;

	if (n > 0) {
		path[n] = 0;
		slash = strrchr(path, '/');
		if (slash) {
			strcpy(slash, "/../tools/samepage");
			if (!access(path, X_OK))
				return path;
		}
	}
	return "samepage";
}

int main(int argc, char **argv)
{
	struct side sp = { .name = "samepage run" },
		    k = { .name = "kernel KSM, PR_SET_MEMORY_MERGE", .kernel = true };
	unsigned long rounds = 3;

	cfg.samepage = default_samepage();
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds"))
			rounds = arg_num("--rounds", argv[++i], 1, BENCH_MAX_ROUNDS);
		else if (!strcmp(argv[i], "--mib"))
			cfg.mib = arg_num("--mib", argv[++i], 1, 8192);
		else if (!strcmp(argv[i], "--pages-to-scan"))
			cfg.pages = arg_num("--pages-to-scan", argv[++i], 1, 1000000);
		else if (!strcmp(argv[i], "--sleep-ms"))
			cfg.sleep_ms = arg_num("--sleep-ms", argv[++i], 0, 10000);
		else if (!strcmp(argv[i], "--samepage") && i + 1 < argc)
			cfg.samepage = argv[++i];
		else {
			fprintf(stderr, "usage: bench_run [--rounds N] [--mib N] "
					"[--pages-to-scan N] [--sleep-ms N] [--samepage PATH]\n");
			return 2;
		}
	}
	if (access(PYTHON, X_OK)) {
		fprintf(stderr, "bench_run: %s is not installed (apt-get install python3)\n",
			PYTHON);
		return 1;
	}
	snprintf(cfg.mib_arg, sizeof(cfg.mib_arg), "%lu", cfg.mib);
	snprintf(cfg.knob_pages, sizeof(cfg.knob_pages), "pages_to_scan=%lu", cfg.pages);
	snprintf(cfg.knob_sleep, sizeof(cfg.knob_sleep), "sleep_millisecs=%lu", cfg.sleep_ms);
	if (kernel_ksm_lock("bench_run", -1) < 0)
		die(KERNEL_KSM_LOCK);
	catch_exit_signals(on_signal);
	kernel_knobs(cfg.pages, cfg.sleep_ms);
	for (unsigned r = 0; r < rounds; r++) {
		round_of(r % 2 ? &k : &sp, r);
		round_of(r % 2 ? &sp : &k, r);
	}
	if (restore_knobs())
		fprintf(stderr, "bench_run: could not restore the kernel KSM knobs\n");
	printf("python3 holding %lu MiB as %lu copies of 4 values of 16 KiB, and lists of them;\n"
	       "pages_to_scan %lu, sleep_millisecs %lu for both; %lu rounds, median [min - max]\n\n",
	       cfg.mib, cfg.mib * 64, cfg.pages, cfg.sleep_ms, rounds);
	printf("%-34s %-24s %-22s %s\n", "", "saved MiB (profit)", "time to 90% (s)",
	       "Pss MiB merged");
	print_side(&sp, (unsigned)rounds);
	print_side(&k, (unsigned)rounds);
	printf("\nsamepage / kernel: saved %.2fx, time to 90%% %.2fx\n",
	       ratio_of(median_of(sp.saved, rounds), median_of(k.saved, rounds)),
	       ratio_of(median_of(sp.t90, rounds), median_of(k.t90, rounds)));
	return 0;
}
