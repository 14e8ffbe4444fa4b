/* SPDX-License-Identifier: MIT */
/*
 * The samepage command against a real pool this test exports: what it
 * prints, what it says when something is wrong, its exit status (0, 1
 * failure, 2 usage), --version, the Prometheus format (a lint of our own,
 * and promtool when installed), top as text, as JSON Lines and on a
 * terminal (under tmux when installed), the bash completion, and what
 * `meson install` puts in place (man pages per function, completion).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

#define OUT_MAX 65536

static char dir[64], sock[128];
static sp_pool *pool;
static char out[OUT_MAX];

/* A pool with merged pages (max_page_sharing is then busy), exported at sock. */
static int setup(void **state)
{
	char *r;

	(void)state;
	strcpy(dir, "/tmp/sp-cli-XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/app.sock", dir);
	pool = pool_small(0, 2);
	r = sp_alloc(pool, 64 * SP_PAGE_SIZE, SP_MERGEABLE);
	for (int i = 0; r && i < 64; i++)
		fill_page(r + i * SP_PAGE_SIZE, (uint64_t)(i % 8));
	for (int i = 0; r && i < 4 && ksm_of(pool, "pages_sharing") < 56; i++)
		full_scan(pool);
	if (!r || ksm_of(pool, "pages_sharing") != 56 || sp_pool_export(pool, sock))
		return -1;
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	sp_pool_destroy(pool);
	rmdir(dir);
	return 0;
}

/* A shell command, stdout and stderr into out; its exit status (-1 if killed). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int sh(const char *fmt, ...)
{
	va_list ap;
	int status;

	va_start(ap, fmt);
	status = vshell(out, OUT_MAX, fmt, ap);
	va_end(ap);
	return status;
}

static const char *bin(void)
{
	const char *b = getenv("SAMEPAGE_BIN");

	assert_non_null(b);
	return b;
}

static bool have(const char *program)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", program);
	return system(cmd) == 0;
}

/* `samepage ARGS` must exit with status and say want (NULL: anything). */
static void expect(int status, const char *want, const char *args)
{
	int got = sh("%s %s", bin(), args);

	if (got != status || (want && !strstr(out, want)))
		fail_msg("samepage %s: status %d (want %d), output:\n%s\n(want \"%s\")", args, got,
			 status, out, want ? want : "");
}

static void version(void **state)
{
	static const char *const cmds[] = {
		"", "demo", "stats", "set", "top", "estimate", "bench"
	};
	char first[128];

	(void)state;
	expect(0, "samepage ", "--version");
	assert_int_equal(strncmp(out, "samepage ", 9), 0);
	assert_null(strstr(out, "unknown"));
	assert_int_equal(strchr(out, '\n') - out + 1, (long)strlen(out)); /* one line */
	strcpy(first, out);
	for (size_t i = 1; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
		char args[64];

		snprintf(args, sizeof(args), "%s --version", cmds[i]);
		expect(0, NULL, args);
		assert_string_equal(out, first);
	}
}

static void help(void **state)
{
	static const char *const top_opts[] = { "--socket", "--interval", "--count",
						"--json",   "--pool",	  "--version" };
	const char *name;
	long min, max, def;

	(void)state;
	expect(0, "usage: samepage COMMAND", "--help");
	expect(0, "usage: samepage demo", "demo --help");
	expect(0, "--prometheus", "stats --help");
	expect(0, "usage: samepage estimate", "estimate --help");
	expect(0, "usage: samepage bench", "bench --help");
	expect(0, "usage: samepage top", "top --help");
	for (size_t i = 0; i < sizeof(top_opts) / sizeof(top_opts[0]); i++)
		if (!strstr(out, top_opts[i]))
			fail_msg("top --help does not list %s:\n%s", top_opts[i], out);
	/* set --help: every knob, with its range and default from the library. */
	expect(0, "usage: samepage set", "set --help");
	for (unsigned i = 0; (name = sp_knob_name(i)); i++) {
		char want[160];

		assert_int_equal(sp_knob_range(name, &min, &max, &def), 0);
		snprintf(want, sizeof(want), "%-20s %ld..%ld, default %ld", name, min, max, def);
		if (!strstr(out, want))
			fail_msg("set --help lacks \"%s\":\n%s", want, out);
	}
	expect(0, "swap.low_watermark\n", "set --knobs");
}

/* Exit status and message for each way a command can go wrong. */
static void errors(void **state)
{
	static const struct {
		int status;
		const char *args, *want;
	} cases[] = {
		{ 2, "", "usage: samepage COMMAND" },
		{ 2, "nosuchcommand", "unknown command 'nosuchcommand'" },
		{ 2, "stats", "--socket PATH is required" },
		{ 2, "stats --bogus", "unknown option --bogus" },
		{ 2, "stats --socket", "option --socket needs a value" },
		{ 2, "stats --socket S --json --prometheus", "exclude each other" },
		{ 2, "set --socket S", "KNOB and VALUE are required" },
		{ 2, "set --socket S run 1 2", "too many arguments" },
		{ 2, "set --socket S nonsense 1", "nonsense is not a knob" },
		{ 2, "set --socket S pages_to_scan -5",
		  "pages_to_scan: -5 is out of range (0..4294967295)" },
		{ 2, "set --socket S pages_to_scan 99999999999999999999",
		  "pages_to_scan: 99999999999999999999 is out of range (0..4294967295)" },
		{ 2, "set --socket S pages_to_scan abc",
		  "pages_to_scan: 'abc' is not a whole number" },
		{ 2, "set --socket S run 9", "run: 9 is out of range (0..2)" },
		{ 2, "set --socket S pages_sharing 5", "pages_sharing is a counter, not a knob" },
		{ 2, "set --socket S frames_free 5", "frames_free is a pool figure, not a knob" },
		{ 1, "set --socket S max_page_sharing 10",
		  "max_page_sharing can change only while nothing is merged: run=2 first" },
		{ 1, "set --socket S merge_across_nodes 0",
		  "merge_across_nodes can change only while nothing is merged: run=2 first" },
		{ 2, "top --socket S --interval 10",
		  "top: --interval: 10 is out of range (50..3600000)" },
		{ 2, "top --socket S --count 0", "top: --count: 0 is out of range (1 or more)" },
		{ 2, "top --socket S --count x", "top: --count: 'x' is not a whole number" },
		{ 2, "demo --size 1", "demo: --size: 1 is out of range (8..1024)" },
		{ 2, "demo --tenants", "option --tenants needs a value" },
		{ 2, "estimate", "--pid is required" },
		{ 2, "estimate --pid abc", "bad pid: abc" },
		{ 2, "estimate --bogus", "unknown option --bogus" },
		{ 2, "bench --bogus", "unknown option --bogus" },
		{ 2, "bench --workloads W9", "--workloads wants" },
	};
	long before = ksm_of(pool, "pages_to_scan");

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char args[512], *s;

		/* S stands for the socket's path. */
		snprintf(args, sizeof(args), "%s", cases[i].args);
		s = strstr(args, " S");
		if (s && (s[2] == ' ' || !s[2])) {
			char rest[256];

			snprintf(rest, sizeof(rest), "%s", s + 2);
			snprintf(s, sizeof(args) - (size_t)(s - args), " %s%s", sock, rest);
		}
		expect(cases[i].status, cases[i].want, args);
	}
	/* Nothing refused changed anything. */
	assert_int_equal(ksm_of(pool, "pages_to_scan"), before);
	assert_int_equal(ksm_of(pool, "max_page_sharing"), 256);
	assert_int_equal(ksm_of(pool, "run"), 1);
}

/* A path that is no pool's socket: said plainly, status 1. */
static void bad_sockets(void **state)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char path[160], args[256], want[256];
	int fd;

	(void)state;
	snprintf(path, sizeof(path), "%s/file", dir);
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	snprintf(args, sizeof(args), "stats --socket %s", path);
	snprintf(want, sizeof(want), "samepage stats: %s is not a socket\n", path);
	expect(1, want, args);
	snprintf(args, sizeof(args), "set --socket %s run 1", path);
	expect(1, "is not a socket", args);
	unlink(path);
	snprintf(args, sizeof(args), "top --socket %s/none", dir);
	expect(1, "no such file (is the program running", args);
	/* A socket nobody listens on any more. */
	snprintf(path, sizeof(path), "%s/stale.sock", dir);
	strcpy(a.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	close(fd);
	snprintf(args, sizeof(args), "stats --socket %s", path);
	expect(1, "nobody serves this socket", args);
	unlink(path);
}

static void set_prints_value(void **state)
{
	char args[256];
	long v;

	(void)state;
	snprintf(args, sizeof(args), "set --socket %s pages_to_scan 4321", sock);
	expect(0, NULL, args);
	assert_string_equal(out, "pages_to_scan 4321\n");
	assert_int_equal(ksm_of(pool, "pages_to_scan"), 4321);
	snprintf(args, sizeof(args), "set --socket %s ksm.sleep_millisecs 7", sock);
	expect(0, NULL, args);
	assert_string_equal(out, "sleep_millisecs 7\n");
	snprintf(args, sizeof(args), "set --socket %s swap.low_watermark 100", sock);
	expect(0, NULL, args);
	assert_string_equal(out, "swap.low_watermark 100\n");
	snprintf(args, sizeof(args), "set --socket %s swap.low_watermark -1", sock);
	expect(0, "(automatic)", args);
	assert_int_equal(sp_tune_get(pool, "swap.low_watermark", &v), 0);
	snprintf(args, sizeof(args), "swap.low_watermark %ld (automatic)\n", v);
	assert_string_equal(out, args);
	snprintf(args, sizeof(args), "set --socket %s pages_to_scan 100", sock);
	expect(0, "pages_to_scan 100\n", args);
	snprintf(args, sizeof(args), "set --socket %s sleep_millisecs 20", sock);
	expect(0, "sleep_millisecs 20\n", args);
}

static void stats_formats(void **state)
{
	char args[256];

	(void)state;
	snprintf(args, sizeof(args), "stats --socket %s", sock);
	expect(0, "\npages_sharing 56\n", args);
	snprintf(args, sizeof(args), "stats --socket %s --json", sock);
	expect(0, "{\"run\": 1, ", args);
	assert_non_null(strstr(out, "\"pages_sharing\": 56"));
	if (have("jq")) {
		snprintf(args, sizeof(args),
			 "stats --socket %s --json | jq -e '.pages_sharing == 56'", sock);
		expect(0, "true", args);
	}
}

/*
 * The text format's rules, as promtool checks them: HELP and TYPE before
 * each metric, counters end in _total and only they do, no _count, _sum or
 * _bucket outside histograms, the pool label on every sample (and a domain
 * label on the per-domain ones).
 */
static void lint_prometheus(const char *text, const char *label)
{
	char help[128][96] = { { 0 } }, type[128][96] = { { 0 } }, kind[128][16] = { { 0 } };
	int nh = 0, nt = 0, samples = 0, dom_samples = 0, dom_families = 0;
	const char *line = text;

	while (*line) {
		char name[96], word[16];
		size_t len = strcspn(line, "\n");

		if (sscanf(line, "# HELP %95s", name) == 1) {
			for (int i = 0; i < nh; i++)
				if (!strcmp(help[i], name))
					fail_msg("HELP twice for %s", name);
			assert_true(nh < 128);
			strcpy(help[nh++], name);
			if (strstr(line, "undescribed"))
				fail_msg("a figure with no description: %.*s", (int)len, line);
		} else if (sscanf(line, "# TYPE %95s %15s", name, word) == 2) {
			assert_true(nt < 128);
			strcpy(type[nt], name);
			strcpy(kind[nt++], word);
		} else if (sscanf(line, "%95[a-z_0-9]{", name) == 1) {
			const char *t = NULL;
			size_t n = strlen(name);
			bool described = false;

			for (int i = 0; i < nh; i++)
				described |= !strcmp(help[i], name);
			for (int i = 0; i < nt; i++)
				if (!strcmp(type[i], name))
					t = kind[i];
			if (!described || !t)
				fail_msg("%s has no HELP or no TYPE", name);
			if (!strcmp(t, "counter") != (n > 6 && !strcmp(name + n - 6, "_total")))
				fail_msg("%s: a %s %s _total", name, t,
					 strcmp(t, "counter") ? "ends in" : "must end in");
			if ((n > 6 && !strcmp(name + n - 6, "_count")) ||
			    (n > 4 && !strcmp(name + n - 4, "_sum")) ||
			    (n > 7 && !strcmp(name + n - 7, "_bucket")))
				fail_msg("%s: a histogram's suffix on a %s", name, t);
			/* label, or label with a domain (the per-domain figures). */
			if (strncmp(line + n, label, strlen(label)) &&
			    (strncmp(line + n, label, strlen(label) - 1) ||
			     strncmp(line + n + strlen(label) - 1, ",domain=\"", 9)))
				fail_msg("%.*s: not labelled %s", (int)len, line, label);
			samples++;
			dom_samples += !strncmp(name, "samepage_domain_", 16);
		} else if (len) {
			fail_msg("not Prometheus text: %.*s", (int)len, line);
		}
		line += len + (line[len] == '\n');
	}
	assert_true(samples >= 30);
	/* One sample per metric, but per merge domain: one per domain. */
	for (int i = 0; i < nh; i++)
		dom_families += !strncmp(help[i], "samepage_domain_", 16);
	assert_int_equal(samples - dom_samples, nh - dom_families);
	assert_true(dom_samples >= dom_families);
}

static void prometheus(void **state)
{
	char args[256];

	(void)state;
	snprintf(args, sizeof(args), "stats --socket %s --prometheus", sock);
	expect(0, "\nsamepage_pages_sharing{pool=\"app\"} 56\n", args);
	lint_prometheus(out, "{pool=\"app\"}");
	assert_non_null(strstr(out, "# TYPE samepage_pages_scanned_total counter\n"));
	assert_non_null(strstr(out, "# TYPE samepage_frames_online gauge\n"));
	assert_non_null(strstr(out, "\nsamepage_resident_bytes{"));
	assert_non_null(strstr(out, "\nsamepage_sleep_seconds{pool=\"app\"} 0.02\n"));
	assert_null(strstr(out, "samepage_frames_total"));
	assert_null(strstr(out, "samepage_max_map_count"));
	/* --pool names it; a quote or backslash in the name is escaped. */
	snprintf(args, sizeof(args), "stats --socket %s --prometheus --pool 'db \"1\"\\x'", sock);
	expect(0, "\nsamepage_run{pool=\"db \\\"1\\\"\\\\x\"} 1\n", args);
	if (!have("promtool")) {
		print_message("promtool not installed: checked by our own lint only\n");
		return;
	}
	snprintf(args, sizeof(args), "stats --socket %s --prometheus | promtool check metrics",
		 sock);
	expect(0, NULL, args);
}

/* top's text screens: each within 80 columns and 24 rows, in the layout. */
static void top_text(void **state)
{
	char args[256], *line, *save = NULL;
	int screens = 0, rows = 0;

	(void)state;
	snprintf(args, sizeof(args), "top --socket %s --count 2 --interval 50 --pool shop", sock);
	expect(0, NULL, args);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (strlen(line) > 80)
			fail_msg("wider than 80 columns: %s", line);
		if (!strncmp(line, "pool ", 5)) {
			screens++;
			rows = 0;
			assert_non_null(strstr(line, "pool shop  pid "));
			assert_non_null(strstr(line, " up "));
			assert_non_null(strstr(line, " saved 0."));
			assert_non_null(strstr(line, " MiB ("));
			assert_true(strstr(line, "userfaultfd") || strstr(line, "SIGSEGV"));
		}
		if (!strncmp(line, "knobs ", 6))
			assert_non_null(strstr(line,
					       "knobs run=1 scan=100 sleep=20ms share=256 across=1 "
					       "zero=0 smart=1 adv=none"));
		if (!strncmp(line, "per sec.", 8)) {
			assert_non_null(strstr(line, "scanned"));
			assert_non_null(strstr(line, "merged"));
			assert_non_null(strstr(line, "cow faults"));
			assert_non_null(strstr(line, "swap in"));
			assert_non_null(strstr(line, "swap out"));
			assert_non_null(strstr(line, "reclaimed"));
		}
		assert_true(++rows <= 24 - 2); /* strtok skips the blank rows: 2 at least */
	}
	assert_int_equal(screens, 2);
}

/* --json: JSON Lines, one object per snapshot, each with a timestamp. */
static void top_json(void **state)
{
	char args[256], *line, *save = NULL;
	double last = 0;
	int n = 0;

	(void)state;
	snprintf(args, sizeof(args), "top --socket %s --count 3 --interval 50 --json", sock);
	expect(0, NULL, args);
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
		char *ts = strstr(line, "\"timestamp\":");
		double t;

		assert_int_equal(line[0], '{');
		assert_int_equal(line[strlen(line) - 1], '}');
		assert_non_null(ts);
		t = strtod(ts + 12, NULL);
		assert_true(t > 1e9 && t >= last);
		last = t;
		assert_non_null(strstr(line, "\"pages_sharing\":56"));
		assert_non_null(
			strstr(line, n ? "\"rates\":{\"pages_scanned\":" : "\"rates\":null"));
	}
	assert_int_equal(n, 3);
	if (have("jq")) {
		snprintf(args, sizeof(args),
			 "top --socket %s --count 2 --interval 50 --json | jq -c . | wc -l", sock);
		expect(0, "2\n", args);
	}
}

/* Until the pane shows want (10 s at most); the pane's text in out. */
static bool pane_shows(const char *tmux, const char *want)
{
	for (int i = 0; i < 100; i++) {
		if (sh("%s capture-pane -p -t top", tmux) == 0 && strstr(out, want))
			return true;
		usleep(100000);
	}
	return false;
}

/* On a terminal of 80x24 (tmux): the screen, and q quits with status 0. */
static void top_terminal(void **state)
{
	char tmux[160], status[160], *line, *save = NULL;
	int rows = 0, fd, got = -1;

	(void)state;
	if (!have("tmux")) {
		print_message("tmux not installed: top on a terminal not tested\n");
		return;
	}
	/* A tmux server of our own, its socket in our directory (gone with it). */
	snprintf(tmux, sizeof(tmux), "tmux -S %s/tmux", dir);
	snprintf(status, sizeof(status), "%s/status", dir);
	assert_int_equal(sh("%s new-session -d -s top -x 80 -y 24 "
			    "\"%s top --socket %s --interval 200; echo \\$? > %s; sleep 60\"",
			    tmux, bin(), sock, status),
			 0);
	if (!pane_shows(tmux, "q quits")) {
		sh("%s kill-server; rm -f %s/tmux", tmux, dir);
		fail_msg("top's screen did not show:\n%s", out);
	}
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!rows) {
			assert_int_equal(strncmp(line, "pool app  pid ", 14), 0);
			assert_non_null(strstr(line, " saved "));
		}
		if (rows == 1)
			assert_int_equal(strncmp(line, "knobs run=1 ", 12), 0);
		rows++;
	}
	assert_true(rows >= 8 && rows <= 24);
	sh("%s send-keys -t top q", tmux);
	for (int i = 0; i < 100 && got < 0; i++) {
		char buf[16] = { 0 };

		usleep(100000);
		fd = open(status, O_RDONLY);
		if (fd >= 0 && read(fd, buf, sizeof(buf) - 1) > 0)
			got = atoi(buf);
		if (fd >= 0)
			close(fd);
	}
	sh("%s kill-server; rm -f %s/tmux", tmux, dir);
	unlink(status);
	assert_int_equal(got, 0); /* q quit it, and it exited 0 */
}

static void completion(void **state)
{
	const char *src = getenv("SAMEPAGE_SRC");
	char script[512];

	(void)state;
	assert_non_null(src);
	snprintf(script, sizeof(script), "%s/tools/samepage.bash-completion", src);
	assert_int_equal(sh("bash -n %s", script), 0);
	/* comp WORDS...: what completing the last word offers. */
	assert_int_equal(sh("bash -c 'source %s; comp() { COMP_WORDS=(\"$@\"); "
			    "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); _samepage; "
			    "echo \"${COMPREPLY[*]}\"; }; "
			    "comp samepage se; comp samepage stats --pro; comp samepage top --i; "
			    "comp %s set --socket %s pages_to; comp %s set --socket %s swap.h; "
			    "comp samepage stats --socket %s/ap; comp samepage stats --dom; "
			    "comp %s set --socket %s advisor_mode s; comp %s set advisor_mo; "
			    "complete -p samepage'",
			    script, bin(), sock, bin(), sock, dir, bin(), sock, bin()),
			 0);
	{
		char want[512];

		snprintf(want, sizeof(want),
			 "set\n--prometheus\n--interval\npages_to_scan\nswap.high_watermark\n"
			 "%s\n--domain\nscan-time\nadvisor_mode\ncomplete -F _samepage samepage\n",
			 sock);
		assert_string_equal(out, want);
	}
}

/* The public header's functions, each with a page `man` finds. */
static void installed(void **state)
{
	const char *src = getenv("SAMEPAGE_SRC"), *build = getenv("SAMEPAGE_BUILD");
	char path[1024], dest[128], man3[1024 * 64];
	char *h, *p;
	size_t n;
	FILE *f;
	int funcs = 0;

	(void)state;
	assert_non_null(src);
	assert_non_null(build);
	snprintf(dest, sizeof(dest), "%s/dest", dir);
	if (sh("meson install -C %s --destdir %s --no-rebuild --quiet", build, dest))
		fail_msg("meson install: %s", out);
	snprintf(path, sizeof(path), "%s/docs/samepage.3", src);
	f = fopen(path, "re");
	assert_non_null(f);
	n = fread(man3, 1, sizeof(man3) - 1, f);
	man3[n] = 0;
	fclose(f);
	snprintf(path, sizeof(path), "%s/include/samepage.h", src);
	f = fopen(path, "re");
	assert_non_null(f);
	h = calloc(1, 1 << 20);
	n = fread(h, 1, (1 << 20) - 1, f);
	fclose(f);
	/* Declarations: " sp_name(" or "*sp_name(". */
	for (p = strstr(h, "sp_"); p; p = strstr(p + 1, "sp_")) {
		char name[64], page[96];
		size_t len = strspn(p, "abcdefghijklmnopqrstuvwxyz_0123456789");

		if ((p[-1] != ' ' && p[-1] != '*') || p[len] != '(' || len >= sizeof(name))
			continue;
		memcpy(name, p, len);
		name[len] = 0;
		snprintf(path, sizeof(path), "%s/usr/local/share/man/man3/%s.3", dest, name);
		if (access(path, R_OK))
			fail_msg("no man page %s for %s", path, name);
		snprintf(page, sizeof(page), ".BR %s (", name);
		if (!strstr(man3, page))
			fail_msg("samepage(3) does not describe %s (no \"%s\")", name, page);
		funcs++;
	}
	free(h);
	assert_true(funcs >= 28);
	snprintf(path, sizeof(path), "%s/usr/local/share/bash-completion/completions/samepage",
		 dest);
	assert_int_equal(access(path, R_OK), 0);
	if (have("man")) {
		assert_int_equal(
			sh("MANPAGER=cat MANWIDTH=80 man -M %s/usr/local/share/man sp_alloc", dest),
			0);
		assert_non_null(strstr(out, "SAMEPAGE(3)"));
	}
	sh("rm -rf %s", dest);
}

/* The demo says what happened in plain words, and keeps the table below. */
static void demo_words(void **state)
{
	char *words, *table;
	double written, held, saved, pct;
	long tenants;

	(void)state;
	expect(0, NULL, "demo --size 8 --tenants 2 --seconds 10");
	words = strstr(out, " MiB written by ");
	table = strstr(out, "\ndetails ");
	if (!words || !table || table < words)
		fail_msg("no plain-words summary before the table:\n%s", out);
	while (words > out && words[-1] != '\n')
		words--;
	assert_int_equal(sscanf(words,
				"%lf MiB written by %ld tenants; after merging they hold %lf MiB: "
				"%lf MiB (%lf%%) saved.",
				&written, &tenants, &held, &saved, &pct),
			 5);
	assert_true(written == 16 && tenants == 2);
	assert_true(held > 0 && held < written && saved > 0);
	/* Each rounded to a whole MiB or percent: they agree within that. */
	assert_true(written - held - saved <= 1 && written - held - saved >= -1);
	assert_true(100 * saved / written - pct <= 100 / written + 1 &&
		    pct - 100 * saved / written <= 100 / written + 1);
	assert_non_null(strstr(out, "was hot-removed while they wrote: "));
	assert_non_null(strstr(out, "\nEvery byte checked: nothing lost (0 bad pages).\n"));
	assert_non_null(strstr(table, "pool bytes_resident (MiB)"));
	assert_non_null(strstr(table, "verification: passed"));
}

/* The advisor through `set`: the kernel's words in and out, and why pages_to_scan is busy. */
static void set_advisor(void **state)
{
	char args[256];

	(void)state;
	snprintf(args, sizeof(args), "set --socket %s advisor_mode scan-time", sock);
	expect(0, NULL, args);
	assert_string_equal(out, "advisor_mode scan-time\n");
	assert_int_equal(ksm_of(pool, "advisor_mode"), SP_KSM_ADVISOR_SCAN_TIME);
	assert_int_equal(ksm_of(pool, "pages_to_scan"), 500);
	snprintf(args, sizeof(args), "set --socket %s pages_to_scan 100", sock);
	expect(1,
	       "pages_to_scan is the advisor's while advisor_mode is scan-time: set "
	       "advisor_mode none first\n",
	       args);
	snprintf(args, sizeof(args), "set --socket %s advisor_mode often", sock);
	expect(2, "advisor_mode: 'often' is not none or scan-time\n", args);
	snprintf(args, sizeof(args), "set --socket %s advisor_max_cpu 101", sock);
	expect(2, "advisor_max_cpu: 101 is out of range (1..100)\n", args);
	snprintf(args, sizeof(args), "set --socket %s advisor_mode 0", sock);
	expect(0, NULL, args);
	assert_string_equal(out, "advisor_mode none\n");
	assert_int_equal(ksm_of(pool, "pages_to_scan"), 100);
	snprintf(args, sizeof(args), "stats --socket %s --prometheus", sock);
	expect(0, "\nsamepage_advisor_max_cpu_ratio{pool=\"app\"} 0.7\n", args);
	assert_non_null(strstr(out, "\nsamepage_advisor_mode{pool=\"app\"} 0\n"));
	assert_non_null(
		strstr(out, "\nsamepage_advisor_target_scan_time_seconds{pool=\"app\"} 200\n"));
	snprintf(args, sizeof(args), "set --help");
	expect(0, "  advisor_target_scan_time 1..4294967295, default 200\n", args);
	assert_non_null(strstr(out, "  advisor_mode         0..1, default 0\n"));
}

/*
 * Per-domain figures: 16 pages of domain 7 on 2 KSM frames beside the 64 of
 * domain 0 on 8, by `stats --domain`, in Prometheus with a domain label, and
 * on top's screen.
 */
static void domains(void **state)
{
	char args[256], *r = sp_alloc(pool, 16 * SP_PAGE_SIZE, SP_MERGEABLE);
	long v = 0;

	(void)state;
	assert_non_null(r);
	assert_int_equal(sp_set_merge_domain(pool, r, 16 * SP_PAGE_SIZE, 7), 0);
	for (int i = 0; i < 16; i++)
		fill_page(r + i * SP_PAGE_SIZE, 100 + (uint64_t)(i % 2));
	for (int i = 0; i < 4 && v < 16; i++) {
		full_scan(pool);
		assert_int_equal(sp_domain_stat(pool, 7, "ksm_merging_pages", &v), 0);
	}
	assert_int_equal(v, 16);
	snprintf(args, sizeof(args), "stats --socket %s --domain 7", sock);
	expect(0, NULL, args);
	/* profit: 16 pages less 8 bytes of ksm_item and 8 of rmap entry each */
	assert_string_equal(out, "ksm_rmap_items 16\nksm_zero_pages 0\nksm_merging_pages 16\n"
				 "ksm_process_profit 65280\n");
	snprintf(args, sizeof(args), "stats --socket %s --domain 7 --json", sock);
	expect(0, "\"ksm_merging_pages\": 16", args);
	snprintf(args, sizeof(args), "stats --socket %s --domain 3", sock);
	expect(0, "ksm_merging_pages 0\n", args);
	snprintf(args, sizeof(args), "stats --socket %s --domain -1", sock);
	expect(2, "--domain: '-1' is not a domain (0..4294967295)", args);
	snprintf(args, sizeof(args), "stats --socket %s --domain 4294967296", sock);
	expect(2, "is not a domain", args);

	snprintf(args, sizeof(args), "stats --socket %s --prometheus", sock);
	expect(0,
	       "\nsamepage_domain_ksm_merging_pages{pool=\"app\",domain=\"0\"} 64\n"
	       "samepage_domain_ksm_merging_pages{pool=\"app\",domain=\"7\"} 16\n",
	       args);
	assert_non_null(strstr(out, "# TYPE samepage_domain_ksm_profit_bytes gauge\n"));
	lint_prometheus(out, "{pool=\"app\"}");
	snprintf(args, sizeof(args), "stats --socket %s --prometheus --domain 7", sock);
	expect(0, "samepage_domain_ksm_profit_bytes{pool=\"app\",domain=\"7\"} 65280\n", args);
	if (have("promtool")) {
		snprintf(args, sizeof(args),
			 "stats --socket %s --prometheus | promtool check metrics", sock);
		expect(0, NULL, args);
	}

	snprintf(args, sizeof(args), "top --socket %s --count 1", sock);
	{
		char want[256];

		snprintf(want, sizeof(want),
			 "\n%-10s %12s %12s %12s %14s\n%-10d %12d %12d %12d %14s\n"
			 "%-10d %12d %12d %12d %14s\n",
			 "domain", "merging", "zero pages", "rmap items", "saved", 0, 64, 0, 64,
			 "0.2 MiB", 7, 16, 0, 16, "0.1 MiB");
		expect(0, want, args);
	}
	{
		int rows = 0;

		for (char *line = out; *line; rows++) {
			size_t len = strcspn(line, "\n");

			if (len > 80)
				fail_msg("wider than 80 columns: %.*s", (int)len, line);
			line += len + (line[len] == '\n');
		}
		assert_true(rows <= 24 + 1); /* the screen, then a blank line */
	}
	snprintf(args, sizeof(args), "top --socket %s --count 1 --json", sock);
	expect(0, "\"domains\":[{\"domain\":0,\"ksm_rmap_items\":64,", args);
	assert_int_equal(sp_free(pool, r), 0);
	assert_int_equal(sp_domain_list(pool, NULL, 0), 1); /* domain 0 left */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(version),	    cmocka_unit_test(help),
		cmocka_unit_test(errors),	    cmocka_unit_test(bad_sockets),
		cmocka_unit_test(set_prints_value), cmocka_unit_test(stats_formats),
		cmocka_unit_test(prometheus),	    cmocka_unit_test(top_text),
		cmocka_unit_test(top_json),	    cmocka_unit_test(top_terminal),
		cmocka_unit_test(completion),	    cmocka_unit_test(installed),
		cmocka_unit_test(demo_words),	    cmocka_unit_test(set_advisor),
		cmocka_unit_test(domains),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
