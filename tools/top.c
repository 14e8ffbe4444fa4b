/* SPDX-License-Identifier: MIT */
/*
 * samepage top: a running pool at a glance, refreshed every interval.
 *
 * On a terminal it is a screen that fits 80x24: a header (pool, pid,
 * uptime, fault mode, memory saved), the knobs on one line, per-second rates
 * (pages scanned and merged, copy-on-write faults, swap in and out, pages
 * reclaimed), a line per merge domain that has merged pages (at most
 * DOM_LINES), then every other figure in a grid. `q` quits. The terminal is
 * put in non-canonical mode without echo for the keys, on the alternate
 * screen, and given back as it was on every way out: q, an error, a signal
 * that ends it, ^Z (and set up again on fg).
 *
 * Elsewhere (a pipe, a file) it prints the same screen as text, one after
 * another; with --json, one JSON object per snapshot per line and nothing
 * else (JSON Lines: `jq -c .` takes every line).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"

#include "cmds.h"
#include "ctl.h"

#define COLS 80
#define ROWS 24
#define CELL 26 /* grid: three cells of 26 columns, after 2 of indent */
#define INTERVAL_MIN 50
#define INTERVAL_MAX 3600000

struct top {
	struct ctl c;
	long interval_ms, count;
	bool json, screen, keys;
	struct snapshot snap[2];
	int cur; /* snap[cur] is the latest, snap[!cur] the one before */
	unsigned long taken;
	int width, height;
};

/* ---- the terminal --------------------------------------------------------- */

#define ENTER_SCREEN "\033[?1049h\033[?25l" /* alternate screen, cursor hidden */
#define LEAVE_SCREEN "\033[?25h\033[?1049l"

static struct termios saved_tio;
static volatile sig_atomic_t term_state; /* 0 as found, 1 screen, 2 screen and keys */
static volatile sig_atomic_t resized, resumed;
static bool want_keys;

/* Async-signal-safe: called from the handlers as well as at exit. */
static void term_restore(void)
{
	if (term_state == 2)
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
	if (term_state && write(STDOUT_FILENO, LEAVE_SCREEN, sizeof(LEAVE_SCREEN) - 1) < 0)
		term_state = 0;
	term_state = 0;
}

static void term_setup(void)
{
	struct termios t = saved_tio;

	if (write(STDOUT_FILENO, ENTER_SCREEN, sizeof(ENTER_SCREEN) - 1) < 0)
		return;
	term_state = 1;
	if (!want_keys)
		return;
	t.c_lflag &= ~(tcflag_t)(ICANON | ECHO); /* keys one by one, unechoed; ^C still works */
	t.c_cc[VMIN] = 0;
	t.c_cc[VTIME] = 0;
	if (!tcsetattr(STDIN_FILENO, TCSANOW, &t))
		term_state = 2;
}

static void on_fatal(int sig)
{
	term_restore();
	signal(sig, SIG_DFL);
	raise(sig); /* delivered on return: the status says which signal ended us */
}

static void on_stop(int sig)
{
	(void)sig;
	term_restore();
	signal(SIGTSTP, SIG_DFL);
	raise(SIGTSTP); /* stops us on return; SIGCONT (fg) resumes */
}

static void on_cont(int sig)
{
	(void)sig;
	signal(SIGTSTP, on_stop);
	resumed = 1;
}

static void on_winch(int sig)
{
	(void)sig;
	resized = 1;
}

static void catch_signals(void)
{
	static const int fatal[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGPIPE };
	struct sigaction sa = { .sa_handler = on_fatal };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		sigaction(fatal[i], &sa, NULL);
	sa.sa_handler = on_stop;
	sigaction(SIGTSTP, &sa, NULL);
	sa.sa_handler = on_cont;
	sigaction(SIGCONT, &sa, NULL);
	sa.sa_handler = on_winch;
	sigaction(SIGWINCH, &sa, NULL);
}

static void term_size(struct top *t)
{
	struct winsize ws;

	t->width = COLS;
	t->height = ROWS;
	if (!ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) && ws.ws_col && ws.ws_row) {
		t->width = ws.ws_col < COLS ? ws.ws_col : COLS;
		t->height = ws.ws_row < ROWS ? ws.ws_row : ROWS;
	}
}

/* ---- the screen ----------------------------------------------------------- */

struct screen {
	char line[ROWS][COLS + 1];
	int n, width, height;
};

static void put(struct screen *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(struct screen *s, const char *fmt, ...)
{
	char buf[512];
	va_list ap;

	if (s->n >= s->height)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	buf[s->width] = 0; /* cut, never wrapped */
	strcpy(s->line[s->n++], buf);
}

/* v in at most `room` characters: as is, or scaled with k, M, G, T. */
static void fit(char *out, size_t size, double v, int room)
{
	static const char sfx[] = " kMGTPE";
	int i = 0;

	snprintf(out, size, "%.0f", v);
	if ((int)strlen(out) <= room)
		return;
	while (i < 6 && (v >= 1000 || v <= -1000)) {
		v /= 1000;
		i++;
	}
	snprintf(out, size, "%.1f%c", v, sfx[i]);
	if ((int)strlen(out) > room)
		snprintf(out, size, "%.0f%c", v, sfx[i]);
}

static bool get(const struct top *t, const char *name, long *v)
{
	return snap_get(&t->snap[t->cur], name, v);
}

/* The serving program's uptime, from /proc/PID/stat; false if unknown. */
static bool uptime_of(pid_t pid, long *secs)
{
	char path[64], buf[1024];
	unsigned long long start;
	double up;
	FILE *f;
	char *p;
	bool ok;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = pid > 0 ? fopen(path, "re") : NULL;
	if (!f)
		return false;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	p = ok ? strrchr(buf, ')') : NULL;
	/* After the name: state, then 18 fields, then starttime (field 22) in ticks. */
	if (!p || sscanf(p + 2,
			 "%*c %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s "
			 "%*s %*s %*s %llu",
			 &start) != 1)
		return false;
	f = fopen("/proc/uptime", "re");
	if (!f)
		return false;
	ok = fscanf(f, "%lf", &up) == 1;
	fclose(f);
	*secs = (long)(up - (double)start / (double)sysconf(_SC_CLK_TCK));
	return ok && *secs >= 0;
}

static void header(struct top *t, struct screen *s)
{
	long mode = 0, profit, resident = 0, sharing = 0, zero = 0, up;
	char upbuf[32] = "?", name[40];
	double pct = 0;

	if (!get(t, "general_profit", &profit)) { /* an older pool: what merging freed */
		get(t, "pages_sharing", &sharing);
		get(t, "ksm_zero_pages", &zero);
		profit = (sharing + zero) * SP_PAGE_SIZE;
	}
	get(t, "bytes_resident", &resident);
	get(t, "fault_mode", &mode);
	/* Of what the pages would take unmerged: what the pool holds plus what it saved. */
	if (resident + profit > 0)
		pct = 100.0 * (double)profit / (double)(resident + profit);
	if (uptime_of(t->c.pid, &up)) {
		if (up >= 86400)
			snprintf(upbuf, sizeof(upbuf), "%ldd %02ld:%02ld", up / 86400,
				 up / 3600 % 24, up / 60 % 60);
		else
			snprintf(upbuf, sizeof(upbuf), "%02ld:%02ld:%02ld", up / 3600, up / 60 % 60,
				 up % 60);
	}
	snprintf(name, sizeof(name), "%s", t->c.pool);
	if (strlen(name) > 16)
		strcpy(name + 13, "...");
	put(s, "pool %s  pid %d  up %s  %s  saved %.1f MiB (%.1f%%)", name, (int)t->c.pid, upbuf,
	    mode == SP_FAULT_UFFD    ? "userfaultfd" :
	    mode == SP_FAULT_SIGSEGV ? "SIGSEGV" :
				       "?",
	    (double)profit / 1048576.0, pct);
}

/* The knobs' short names on the one line; anything else goes to the grid. */
static const struct {
	const char *name, *label, *unit;
} knob_label[] = {
	{ "run", "run", "" },
	{ "pages_to_scan", "scan", "" },
	{ "sleep_millisecs", "sleep", "ms" },
	{ "max_page_sharing", "share", "" },
	{ "merge_across_nodes", "across", "" },
	{ "use_zero_pages", "zero", "" },
	{ "smart_scan", "smart", "" },
	{ "swap.low_watermark", "low_wm", "" },
	{ "swap.high_watermark", "high_wm", "" },
};

/* Figures shown above the grid: on the knobs line, or in the header. */
static bool shown[FIG_MAX];

/* The index of a figure in the snapshot, or -1. */
static int fig_index(const struct snapshot *sn, const char *name)
{
	for (unsigned i = 0; i < sn->n; i++)
		if (!strcmp(sn->fig[i].name, name))
			return (int)i;
	return -1;
}

/*
 * The advisor as one item: "adv=none", or "adv=TARGETs,CPU%" while it sets
 * pages_to_scan (its page limits are in the grid); false if not a knob of
 * this pool (the item is empty).
 */
static bool advisor_item(const struct snapshot *sn, char *item, size_t size, bool mark[FIG_MAX])
{
	int m = fig_index(sn, "advisor_mode"), tt = fig_index(sn, "advisor_target_scan_time"),
	    c = fig_index(sn, "advisor_max_cpu");

	*item = 0;
	if (m < 0)
		return false;
	mark[m] = true;
	if (sn->fig[m].value != SP_KSM_ADVISOR_SCAN_TIME || tt < 0 || c < 0) {
		snprintf(item, size, " adv=%s", sn->fig[m].value ? "scan-time" : "none");
		return true;
	}
	snprintf(item, size, " adv=%lds,%ld%%", sn->fig[tt].value, sn->fig[c].value);
	mark[tt] = mark[c] = true;
	return true;
}

static void knobs_line(struct top *t, struct screen *s)
{
	const struct snapshot *sn = &t->snap[t->cur];
	char line[COLS * 2] = "knobs", adv[64];
	bool adv_marks[FIG_MAX] = { false };
	size_t len = strlen(line);

	/* KSM's knobs, the advisor as one item, then sp_tune's (dotted). */
	for (unsigned k = 0; k < 2 * sn->n; k++) {
		unsigned i = k % sn->n;
		const char *label = sn->fig[i].name, *unit = "";
		char item[96], val[24];

		if (k == sn->n && advisor_item(sn, adv, sizeof(adv), adv_marks) &&
		    len + strlen(adv) <= (size_t)s->width) {
			strcpy(line + len, adv);
			len += strlen(adv);
			for (unsigned j = 0; j < sn->n; j++)
				shown[j] |= adv_marks[j];
		}
		if (sp_knob_range(label, NULL, NULL, NULL) || !strncmp(label, "advisor_", 8) ||
		    (k < sn->n) == (strchr(label, '.') != NULL))
			continue; /* not a knob, the advisor's, or not in this turn */
		for (size_t k = 0; k < sizeof(knob_label) / sizeof(knob_label[0]); k++)
			if (!strcmp(knob_label[k].name, label)) {
				label = knob_label[k].label;
				unit = knob_label[k].unit;
			}
		fit(val, sizeof(val), (double)sn->fig[i].value, 6);
		snprintf(item, sizeof(item), " %s=%s%s", label, val, unit);
		if (len + strlen(item) > (size_t)s->width)
			continue; /* no room: the grid shows it */
		strcpy(line + len, item);
		len += strlen(item);
		shown[i] = true;
	}
	put(s, "%s", line);
}

#define DOM_LINES 4 /* domain lines at most, so that the grid keeps its room */

/* One line per merge domain that has merged pages (/proc/PID/ksm_stat's figures). */
static void domains(struct top *t, struct screen *s)
{
	const struct snapshot *sn = &t->snap[t->cur];
	unsigned with = 0, shown_dom = 0;

	for (unsigned k = 0; k < sn->nr_dom; k++)
		with += sn->dom[k].v[2] > 0; /* ksm_merging_pages */
	if (!with)
		return;
	put(s, "%-10s %12s %12s %12s %14s", "domain", "merging", "zero pages", "rmap items",
	    "saved");
	for (unsigned k = 0; k < sn->nr_dom; k++) {
		const struct domain_figs *d = &sn->dom[k];
		char m[16], z[16], r[16];

		if (d->v[2] <= 0)
			continue;
		if (shown_dom == DOM_LINES - 1 && with > DOM_LINES) {
			put(s, "  (%u more domains with merged pages: samepage stats --domain N)",
			    with - shown_dom);
			break;
		}
		fit(m, sizeof(m), (double)d->v[2], 12);
		fit(z, sizeof(z), (double)d->v[1], 12);
		fit(r, sizeof(r), (double)d->v[0], 12);
		put(s, "%-10u %12s %12s %12s %10.1f MiB", d->domain, m, z, r,
		    (double)d->v[3] / 1048576.0);
		shown_dom++;
	}
	put(s, "%s", "");
}

static const struct {
	const char *name, *label;
} rate_col[] = {
	{ "pages_scanned", "scanned" },	  { "pages_sharing", "merged" },
	{ "faults_cow", "cow faults" },	  { "faults_swapin", "swap in" },
	{ "swap_pages_out", "swap out" }, { "reclaim_pages", "reclaimed" },
};
#define NR_RATES (sizeof(rate_col) / sizeof(rate_col[0]))

/* Per second since the last snapshot; false before there are two. */
static bool rate(const struct top *t, const char *name, double *r)
{
	const struct snapshot *a = &t->snap[!t->cur], *b = &t->snap[t->cur];
	long va, vb;

	if (t->taken < 2 || b->mono <= a->mono || !snap_get(a, name, &va) ||
	    !snap_get(b, name, &vb))
		return false;
	*r = (double)(vb - va) / (b->mono - a->mono);
	return true;
}

static void rates(struct top *t, struct screen *s)
{
	char head[COLS + 1], vals[COLS + 1];
	int hl = snprintf(head, sizeof(head), "%-8s", "per sec.");
	int vl = snprintf(vals, sizeof(vals), "%-8s", "");

	for (size_t i = 0; i < NR_RATES; i++) {
		char v[16] = "-";
		double r;

		if (rate(t, rate_col[i].name, &r)) {
			if (r > -10 && r < 10 && r != (long)r)
				snprintf(v, sizeof(v), "%.1f", r);
			else
				fit(v, sizeof(v), r, 11);
		}
		hl += snprintf(head + hl, sizeof(head) - (size_t)hl, "%12s", rate_col[i].label);
		vl += snprintf(vals + vl, sizeof(vals) - (size_t)vl, "%12s", v);
	}
	put(s, "%s", head);
	put(s, "%s", vals);
}

/* Figures in the header: not repeated in the grid. */
static bool in_header(const char *name)
{
	return !strcmp(name, "fault_mode") || !strcmp(name, "general_profit");
}

/* "name value" in CELL columns: the value whole (scaled to fit), the name cut if need be. */
static void cell(char *out, const struct figure *f)
{
	char val[24];
	size_t nl;

	if (strstr(f->name, "bytes") && f->value < (1l << 40))
		snprintf(val, sizeof(val), "%.1f MiB", (double)f->value / 1048576.0);
	else if (strstr(f->name, "bytes"))
		snprintf(val, sizeof(val), "%.1f GiB", (double)f->value / 1073741824.0);
	else
		fit(val, sizeof(val), (double)f->value, 8);
	nl = CELL - 2 - strlen(val); /* a space between, one after */
	if (strlen(f->name) < nl)
		nl = strlen(f->name);
	snprintf(out, CELL + 1, "%.*s%*s ", (int)nl, f->name, CELL - 1 - (int)nl, val);
}

static void grid(struct top *t, struct screen *s, int rows)
{
	const struct snapshot *sn = &t->snap[t->cur];
	unsigned idx[FIG_MAX], n = 0, per_row = (unsigned)(s->width - 2) / CELL;

	for (unsigned i = 0; i < sn->n; i++)
		if (!shown[i] && !in_header(sn->fig[i].name))
			idx[n++] = i;
	if (!per_row)
		per_row = 1;
	for (unsigned r = 0; r * per_row < n; r++) {
		char line[COLS + CELL + 1] = "  ";
		size_t len = 2;

		if ((int)r == rows - 1 && (r + 1) * per_row < n) {
			put(s, "  (%u more figures: samepage stats --socket ...)", n - r * per_row);
			return;
		}
		for (unsigned k = 0; k < per_row && r * per_row + k < n; k++) {
			cell(line + len, &sn->fig[idx[r * per_row + k]]);
			len += CELL;
		}
		while (len && line[len - 1] == ' ')
			line[--len] = 0;
		put(s, "%s", line);
	}
}

static void render(struct top *t, struct screen *s)
{
	struct tm tm;
	time_t wall = (time_t)t->snap[t->cur].wall;

	memset(shown, 0, sizeof(shown));
	s->n = 0;
	header(t, s);
	knobs_line(t, s);
	put(s, "%s", "");
	rates(t, s);
	put(s, "%s", "");
	domains(t, s);
	grid(t, s, s->height - s->n - 2);
	put(s, "%s", "");
	localtime_r(&wall, &tm);
	put(s, "%s every %ld ms, at %02d:%02d:%02d",
	    t->screen ? "q quits;" : "samepage top:", t->interval_ms, tm.tm_hour, tm.tm_min,
	    tm.tm_sec);
}

static void draw(struct top *t)
{
	struct screen s = { .width = t->width, .height = t->height };

	render(t, &s);
	if (t->screen) {
		fputs("\033[H", stdout);
		for (int i = 0; i < s.n; i++)
			printf("%s\033[K%s", s.line[i], i + 1 < s.n ? "\r\n" : "");
		fputs("\033[J", stdout);
	} else {
		for (int i = 0; i < s.n; i++)
			printf("%s\n", s.line[i]);
		putchar('\n');
	}
	fflush(stdout);
}

/* ---- JSON Lines ----------------------------------------------------------- */

static void json_string(const char *v)
{
	putchar('"');
	for (; *v; v++) {
		if (*v == '"' || *v == '\\')
			printf("\\%c", *v);
		else if ((unsigned char)*v < 0x20)
			printf("\\u%04x", *v);
		else
			putchar(*v);
	}
	putchar('"');
}

static void print_json(struct top *t)
{
	const struct snapshot *sn = &t->snap[t->cur];
	double r;

	printf("{\"timestamp\":%.3f,\"pool\":", sn->wall);
	json_string(t->c.pool);
	printf(",\"pid\":%d", (int)t->c.pid);
	for (unsigned i = 0; i < sn->n; i++) {
		printf(",");
		json_string(sn->fig[i].name);
		printf(":%ld", sn->fig[i].value);
	}
	printf(",\"domains\":[");
	for (unsigned k = 0; k < sn->nr_dom; k++) {
		printf("%s{\"domain\":%u", k ? "," : "", sn->dom[k].domain);
		for (unsigned i = 0; i < DOM_FIGS; i++)
			printf(",\"%s\":%ld", sp_domain_stat_name(i), sn->dom[k].v[i]);
		printf("}");
	}
	printf("]");
	printf(",\"rates\":");
	if (t->taken < 2) {
		printf("null");
	} else {
		for (size_t i = 0; i < NR_RATES; i++)
			printf("%s\"%s\":%.3f", i ? "," : "{", rate_col[i].name,
			       rate(t, rate_col[i].name, &r) ? r : 0.0);
		printf("}");
	}
	printf("}\n");
	fflush(stdout);
}

/* ---- the loop ------------------------------------------------------------- */

/* Until `until` (monotonic): 1 quit asked, 0 time to refresh. */
static int wait_keys(struct top *t, double until)
{
	for (;;) {
		double left = until - now();
		struct pollfd p = { .fd = STDIN_FILENO, .events = POLLIN };
		char c;

		if (resumed) {
			resumed = 0;
			term_setup();
			draw(t);
		}
		if (resized) {
			resized = 0;
			term_size(t);
			draw(t);
		}
		if (left <= 0)
			return 0;
		if (!t->keys) {
			struct timespec ts = { (time_t)left, (long)((left - (long)left) * 1e9) };

			nanosleep(&ts, NULL); /* a signal cuts it short: look again */
			continue;
		}
		if (poll(&p, 1, (int)(left * 1000) + 1) <= 0)
			continue;
		if (read(STDIN_FILENO, &c, 1) != 1) {
			t->keys = false; /* end of input: go on without keys */
			continue;
		}
		if (c == 'q' || c == 'Q')
			return 1;
		if (c == ' ')
			return 0; /* refresh now */
	}
}

static void top_usage(FILE *f)
{
	fprintf(f,
		"usage: samepage top --socket PATH [--interval MS] [--count N] [--json]\n"
		"                    [--pool NAME]\n"
		"  watch the pool served at PATH: on a terminal a screen (80x24) that q quits,\n"
		"  otherwise that screen as text once per interval\n"
		"  --socket PATH   the pool's control socket (sp_pool_export)\n"
		"  --pid PID       the socket of a program under `samepage run`\n"
		"  --interval MS   milliseconds between updates, %d..%d (default 1000)\n"
		"  --count N       stop after N updates (default: until q or interrupted)\n"
		"  --json          one JSON object per update per line (JSON Lines), with a\n"
		"                  timestamp, every figure and the rates per second\n"
		"  --pool NAME     the pool's name (default: PATH's file name without .sock)\n"
		"  --version       print samepage's version\n",
		INTERVAL_MIN, INTERVAL_MAX);
}

/* 0 go on, 1 done (--help, --version), 2 usage error. */
static int parse_top(int argc, char **argv, struct top *t)
{
	static const struct option opts[] = { { "socket", required_argument, NULL, 's' },
					      { "pid", required_argument, NULL, 'P' },
					      { "interval", required_argument, NULL, 'i' },
					      { "count", required_argument, NULL, 'c' },
					      { "json", no_argument, NULL, 'j' },
					      { "pool", required_argument, NULL, 'n' },
					      { "help", no_argument, NULL, 'h' },
					      OPT_VERSION,
					      { 0 } };
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			top_usage(stdout);
			return 1;
		case 'V':
			print_version();
			return 1;
		case 's':
			t->c.socket = optarg;
			break;
		case 'P':
			t->c.socket = run_pid_socket("top", optarg);
			if (!t->c.socket)
				return EXIT_USAGE;
			break;
		case 'i':
			if (option_long("top", "--interval", optarg, INTERVAL_MIN, INTERVAL_MAX,
					&t->interval_ms))
				return EXIT_USAGE;
			break;
		case 'c':
			if (option_long("top", "--count", optarg, 1, LONG_MAX, &t->count))
				return EXIT_USAGE;
			break;
		case 'j':
			t->json = true;
			break;
		case 'n':
			t->c.pool = optarg;
			break;
		default:
			option_error("top", opt, argv);
			top_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc || !t->c.socket) {
		fprintf(stderr, "samepage top: %s%s\n",
			optind < argc ? "unexpected argument: " : "--socket PATH is required",
			optind < argc ? argv[optind] : "");
		top_usage(stderr);
		return EXIT_USAGE;
	}
	return 0;
}

int cmd_top(int argc, char **argv)
{
	static struct top t = { .c.cmd = "top", .interval_ms = 1000, .count = -1 };
	int ret = parse_top(argc, argv, &t);

	if (ret)
		return ret == 1 ? 0 : ret;
	ctl_name_pool(&t.c);
	t.screen = !t.json && isatty(STDOUT_FILENO);
	want_keys = t.screen && isatty(STDIN_FILENO) && !tcgetattr(STDIN_FILENO, &saved_tio);
	t.keys = want_keys;
	term_size(&t);
	if (!t.screen)
		t.width = COLS, t.height = ROWS;
	/* Before the screen: the error stays visible. */
	if (ctl_stats(&t.c, &t.snap[0]) || ctl_domains(&t.c, &t.snap[0]))
		return 1;
	t.taken = 1;
	if (t.screen) {
		t.c.defer_errors = true;
		atexit(term_restore);
		catch_signals();
		term_setup();
	}
	for (;;) {
		if (t.json)
			print_json(&t);
		else
			draw(&t);
		if (t.count > 0 && (long)t.taken >= t.count)
			return 0;
		if (wait_keys(&t, t.snap[t.cur].mono + (double)t.interval_ms / 1000.0))
			return 0;
		if (ctl_stats(&t.c, &t.snap[!t.cur]) || ctl_domains(&t.c, &t.snap[!t.cur])) {
			term_restore(); /* the message must be seen on the normal screen */
			fputs(t.c.err, stderr);
			return 1;
		}
		t.cur = !t.cur;
		t.taken++;
	}
}
