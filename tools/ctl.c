/* SPDX-License-Identifier: MIT */
/*
 * samepage stats|set: talk to a running pool's control socket
 * (sp_pool_export). The protocol is in src/export.c: `stats` answers
 * "name value" lines and a line ".", `set KNOB VALUE` answers "ok" or
 * "error ERRNO-NAME message". Nothing else is asked of the server, so these
 * commands work with any server that speaks that much.
 *
 * What can be checked here is checked before anything is sent, with the
 * library's own table of knobs (sp_knob_range): an unknown knob, a counter,
 * a value that is not a number or out of range are usage errors (exit 2)
 * that name the knob, the value and the range. What only the pool can tell
 * (it is busy, it has no room) is a failure (exit 1) that says why.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"

#include "cmds.h"
#include "ctl.h"

#define REPLY_MAX (1 << 20) /* `domains` of DOM_MAX domains fit with room */
#define REPLY_TIMEOUT_MS 5000

void ctl_error(struct ctl *c, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(c->err, sizeof(c->err), "samepage %s: ", c->cmd);

	va_start(ap, fmt);
	vsnprintf(c->err + n, sizeof(c->err) - (size_t)n, fmt, ap);
	va_end(ap);
	if (!c->defer_errors)
		fputs(c->err, stderr);
}

void ctl_name_pool(struct ctl *c)
{
	const char *base = strrchr(c->socket, '/');
	size_t len;

	if (c->pool)
		return;
	base = base ? base + 1 : c->socket;
	len = strlen(base);
	if (len > 5 && !strcmp(base + len - 5, ".sock"))
		len -= 5;
	if (len >= sizeof(c->pool_buf))
		len = sizeof(c->pool_buf) - 1;
	memcpy(c->pool_buf, base, len);
	c->pool_buf[len] = 0;
	c->pool = c->pool_buf;
}

/* Before connecting: a path that is missing or not a socket says so plainly. */
static int check_path(struct ctl *c)
{
	struct stat st;

	if (stat(c->socket, &st)) {
		if (errno == ENOENT)
			ctl_error(c,
				  "%s: no such file (is the program running, and did "
				  "it call sp_pool_export?)\n",
				  c->socket);
		else
			ctl_error(c, "%s: %s\n", c->socket, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		ctl_error(c, "%s is not a socket\n", c->socket);
		return -1;
	}
	return 0;
}

static void connect_error(struct ctl *c, int err)
{
	if (err == ECONNREFUSED)
		ctl_error(c,
			  "%s: nobody serves this socket (the program exited or "
			  "unexported its pool)\n",
			  c->socket);
	else if (err == EACCES || err == EPERM)
		ctl_error(c, "%s: %s: only the pool owner's uid and root may use it\n", c->socket,
			  strerror(err));
	else
		ctl_error(c, "%s: %s\n", c->socket, strerror(err));
}

static int ctl_connect(struct ctl *c)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	int fd, err;

	if (check_path(c))
		return -1;
	if (strlen(c->socket) >= sizeof(addr.sun_path)) {
		ctl_error(c, "%s: path too long for a Unix socket (%zu bytes at most)\n", c->socket,
			  sizeof(addr.sun_path) - 1);
		return -1;
	}
	strcpy(addr.sun_path, c->socket);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		err = errno;
		if (fd >= 0)
			close(fd);
		connect_error(c, err);
		return -1;
	}
	/* The server's pid: for top's uptime, and the one thing it cannot fake. */
	if (!getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		c->pid = cred.pid;
	return fd;
}

/* Read until the reply ends with `end` or is an error line; 0, or -1 said why. */
static int read_reply(struct ctl *c, int fd, const char *end, char *reply)
{
	size_t have = 0, elen = strlen(end);

	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, REPLY_TIMEOUT_MS) <= 0) {
			ctl_error(c, "%s: no reply within %d s\n", c->socket,
				  REPLY_TIMEOUT_MS / 1000);
			return -1;
		}
		n = recv(fd, reply + have, REPLY_MAX - 1 - have, 0);
		if (n <= 0)
			break;
		have += (size_t)n;
		reply[have] = 0;
		if (!strncmp(reply, "error ", 6) && strchr(reply, '\n'))
			return 0;
		if (have >= elen && !strcmp(reply + have - elen, end))
			return 0;
		if (have == REPLY_MAX - 1)
			break;
	}
	reply[have] = 0;
	ctl_error(c, "%s: %s\n", c->socket,
		  have ? "the reply was cut short" : "the server closed the connection");
	return -1;
}

/* One request line, its reply in reply[REPLY_MAX]; -1 having said why. */
static int ctl_request(struct ctl *c, const char *req, const char *end, char *reply)
{
	int fd = ctl_connect(c), ret = -1;
	size_t len = strlen(req);

	if (fd < 0)
		return -1;
	if (send(fd, req, len, MSG_NOSIGNAL) != (ssize_t)len)
		ctl_error(c, "%s: %s\n", c->socket, strerror(errno));
	else
		ret = read_reply(c, fd, end, reply);
	close(fd);
	return ret;
}

/* "error ENAME message\n": the errno name and the message, split in place. */
static void split_error(char *reply, char **ename, char **msg)
{
	char *sp;

	reply[strcspn(reply, "\n")] = 0;
	*ename = reply + 6;
	sp = strchr(*ename, ' ');
	*msg = sp ? sp + 1 : *ename;
	if (sp)
		*sp = 0;
}

static void parse_snapshot(const char *reply, struct snapshot *s)
{
	const char *line = reply;
	struct timespec ts;

	s->n = 0;
	while (*line && strncmp(line, ".\n", 2) && s->n < FIG_MAX) {
		struct figure *f = &s->fig[s->n];

		if (sscanf(line, "%63s %ld", f->name, &f->value) == 2)
			s->n++;
		line = strchr(line, '\n');
		if (!line)
			break;
		line++;
	}
	clock_gettime(CLOCK_REALTIME, &ts);
	s->wall = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
	s->mono = now();
}

/* A request answered by "name value" lines and ".", into s->fig; -1 having said why. */
static int ctl_figures(struct ctl *c, const char *req, struct snapshot *s)
{
	static char reply[REPLY_MAX];
	char *ename, *msg;

	if (ctl_request(c, req, "\n.\n", reply))
		return -1;
	if (!strncmp(reply, "error ", 6)) {
		split_error(reply, &ename, &msg);
		ctl_error(c, "%s: the pool refused: %s (%s)\n", c->socket, msg, ename);
		return -1;
	}
	parse_snapshot(reply, s);
	return 0;
}

int ctl_stats(struct ctl *c, struct snapshot *s)
{
	return ctl_figures(c, "stats\n", s);
}

/* "N NAME value" lines into s->dom (ascending, as the server sends them). */
static void parse_domains(const char *line, struct snapshot *s)
{
	s->nr_dom = 0;
	s->more_dom = false;
	while (*line && strncmp(line, ".\n", 2)) {
		char name[FIG_NAME];
		unsigned long d;
		long v;

		if (sscanf(line, "%lu %63s %ld", &d, name, &v) == 3) {
			struct domain_figs *f = s->nr_dom ? &s->dom[s->nr_dom - 1] : NULL;

			if (!f || f->domain != d) {
				if (s->nr_dom == DOM_MAX) {
					s->more_dom = true;
					return;
				}
				f = &s->dom[s->nr_dom++];
				*f = (struct domain_figs){ .domain = (unsigned)d };
			}
			for (unsigned i = 0; i < DOM_FIGS; i++)
				if (sp_domain_stat_name(i) && !strcmp(name, sp_domain_stat_name(i)))
					f->v[i] = v;
		}
		line = strchr(line, '\n');
		if (!line)
			break;
		line++;
	}
}

int ctl_domains(struct ctl *c, struct snapshot *s)
{
	static char reply[REPLY_MAX];

	s->nr_dom = 0;
	s->more_dom = false;
	if (ctl_request(c, "domains\n", "\n.\n", reply))
		return -1;
	if (!strncmp(reply, "error ", 6))
		return 0; /* an older server: no domain figures */
	parse_domains(reply, s);
	return 0;
}

int ctl_domain(struct ctl *c, unsigned domain, struct snapshot *s)
{
	char req[64];

	snprintf(req, sizeof(req), "domain %u\n", domain);
	if (ctl_figures(c, req, s))
		return -1;
	s->nr_dom = 1;
	s->more_dom = false;
	s->dom[0] = (struct domain_figs){ .domain = domain };
	for (unsigned i = 0; i < DOM_FIGS; i++)
		snap_get(s, sp_domain_stat_name(i), &s->dom[0].v[i]);
	return 0;
}

bool snap_get(const struct snapshot *s, const char *name, long *value)
{
	for (unsigned i = 0; i < s->n; i++)
		if (!strcmp(s->fig[i].name, name)) {
			*value = s->fig[i].value;
			return true;
		}
	return false;
}

/* ---- samepage stats ---------------------------------------------------- */

static void stats_usage(FILE *f)
{
	fprintf(f, "usage: samepage stats --socket PATH [--json | --prometheus] [--pool NAME]\n"
		   "                      [--domain N]\n"
		   "       samepage stats --pid PID [...]\n"
		   "  print the knobs, counters and figures of the pool served at PATH\n"
		   "  --domain N      only merge domain N's figures, as /proc/PID/ksm_stat:\n"
		   "                  ksm_rmap_items, ksm_zero_pages, ksm_merging_pages,\n"
		   "                  ksm_process_profit\n"
		   "  --socket PATH   the pool's control socket (sp_pool_export)\n"
		   "  --pid PID       the socket of a program under `samepage run`\n"
		   "  --json          one JSON object instead of \"name value\" lines\n"
		   "  --prometheus    the Prometheus text format (for node_exporter's textfile\n"
		   "                  collector), every metric labelled pool=\"NAME\"\n"
		   "  --pool NAME     the pool label (default: PATH's file name without .sock)\n"
		   "  --version       print samepage's version\n");
}

static void print_json(const struct snapshot *s)
{
	printf("{");
	for (unsigned i = 0; i < s->n; i++)
		printf("%s\"%s\": %ld", i ? ", " : "", s->fig[i].name, s->fig[i].value);
	printf("}\n");
}

/* A merge domain: 0..UINT_MAX; -1 having said why not (a usage error). */
static long parse_domain(const char *arg)
{
	char *end;
	unsigned long d;

	errno = 0;
	d = strtoul(arg, &end, 10);
	if (end == arg || *end || *arg == '-' || errno || d > UINT_MAX) {
		fprintf(stderr, "samepage stats: --domain: '%s' is not a domain (0..%u)\n", arg,
			UINT_MAX);
		stats_usage(stderr);
		return -1;
	}
	return (long)d;
}

int cmd_stats(int argc, char **argv)
{
	static const struct option opts[] = { { "socket", required_argument, NULL, 's' },
					      { "pid", required_argument, NULL, 'P' },
					      { "json", no_argument, NULL, 'j' },
					      { "prometheus", no_argument, NULL, 'p' },
					      { "pool", required_argument, NULL, 'n' },
					      { "domain", required_argument, NULL, 'd' },
					      { "help", no_argument, NULL, 'h' },
					      OPT_VERSION,
					      { 0 } };
	static struct snapshot snap;
	struct ctl c = { .cmd = "stats" };
	int json = 0, prom = 0, opt;
	long domain = -1;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			stats_usage(stdout);
			return 0;
		case 'V':
			return print_version();
		case 's':
			c.socket = optarg;
			break;
		case 'P':
			c.socket = run_pid_socket("stats", optarg);
			if (!c.socket)
				return EXIT_USAGE;
			break;
		case 'j':
			json = 1;
			break;
		case 'p':
			prom = 1;
			break;
		case 'n':
			c.pool = optarg;
			break;
		case 'd':
			domain = parse_domain(optarg);
			if (domain < 0)
				return EXIT_USAGE;
			break;
		default:
			option_error("stats", opt, argv);
			stats_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc || !c.socket || (json && prom)) {
		fprintf(stderr, "samepage stats: %s%s\n",
			optind < argc ? "unexpected argument: " :
			!c.socket     ? "--socket PATH is required" :
					"--json and --prometheus exclude each other",
			optind < argc ? argv[optind] : "");
		stats_usage(stderr);
		return EXIT_USAGE;
	}
	ctl_name_pool(&c);
	if (domain >= 0 ? ctl_domain(&c, (unsigned)domain, &snap) :
			  ctl_stats(&c, &snap) || (prom && ctl_domains(&c, &snap)))
		return 1;
	if (json) {
		print_json(&snap);
	} else if (prom && domain >= 0) {
		print_prometheus_domains(&c, &snap);
	} else if (prom) {
		print_prometheus(&c, &snap);
		print_prometheus_domains(&c, &snap);
	} else {
		for (unsigned i = 0; i < snap.n; i++)
			printf("%s %ld\n", snap.fig[i].name, snap.fig[i].value);
	}
	return fflush(stdout) ? 1 : 0;
}

/* ---- samepage set ------------------------------------------------------ */

/* One line each, for `set --help`; a knob the table lacks is listed bare. */
static const struct {
	const char *name, *what;
} knob_help[] = {
	{ "run", "0 stops ksmd, 1 runs it, 2 unmerges every page and stops" },
	{ "pages_to_scan", "pages ksmd scans per batch" },
	{ "sleep_millisecs", "milliseconds ksmd sleeps between batches" },
	{ "max_page_sharing", "most pages on one KSM frame (only while nothing is merged)" },
	{ "merge_across_nodes", "1: pages of any node merge (only while nothing is merged)" },
	{ "use_zero_pages", "1: zero pages map the kernel's zero page" },
	{ "smart_scan", "1: pages that stay unique are hashed every other scan" },
	{ "advisor_mode", "none (0) or scan-time (1): the advisor sets pages_to_scan" },
	{ "advisor_target_scan_time", "seconds a full scan should take under the advisor" },
	{ "advisor_max_cpu", "most CPU ksmd may use under the advisor, % of one CPU" },
	{ "advisor_min_pages_to_scan", "pages_to_scan the advisor starts from" },
	{ "advisor_max_pages_to_scan", "most pages_to_scan the advisor sets" },
	{ "swap.low_watermark", "free frames below which reclaim starts; -1 automatic" },
	{ "swap.high_watermark", "free frames at which reclaim stops; -1 automatic" },
};

static void set_usage(FILE *f)
{
	long min, max, def;
	const char *name;

	fprintf(f, "usage: samepage set --socket PATH KNOB VALUE\n"
		   "  set a knob of the pool served at PATH and print its new value\n"
		   "  --socket PATH   the pool's control socket (sp_pool_export)\n"
		   "  --pid PID       the socket of a program under `samepage run`\n"
		   "  --knobs         print the knob names, one a line\n"
		   "  --version       print samepage's version\n"
		   "knobs (range, default):\n");
	for (unsigned i = 0; (name = sp_knob_name(i)); i++) {
		const char *what = "";

		if (sp_knob_range(name, &min, &max, &def))
			continue;
		for (size_t k = 0; k < sizeof(knob_help) / sizeof(knob_help[0]); k++)
			if (!strcmp(knob_help[k].name, name))
				what = knob_help[k].what;
		fprintf(f, "  %-20s %ld..%ld, default %ld\n", name, min, max, def);
		if (*what)
			fprintf(f, "  %-20s %s\n", "", what);
	}
}

/* advisor_mode's words, as the kernel's sysfs file takes and shows them. */
static const char *const advisor_words[] = { "none", "scan-time" };

static bool is_advisor_mode(const char *knob)
{
	return !strcmp(knob, "advisor_mode") || !strcmp(knob, "ksm.advisor_mode");
}

/* A whole number; one too large for a long reads as LONG_MIN or LONG_MAX. */
static int parse_value(const char *knob, const char *arg, long *value)
{
	char *end;

	for (long i = 0; is_advisor_mode(knob) && i < 2; i++)
		if (!strcmp(arg, advisor_words[i])) {
			*value = i;
			return 0;
		}
	errno = 0;
	*value = strtol(arg, &end, 10);
	if (end == arg || *end) {
		if (is_advisor_mode(knob))
			fprintf(stderr, "samepage set: %s: '%s' is not none or scan-time\n", knob,
				arg);
		else
			fprintf(stderr, "samepage set: %s: '%s' is not a whole number\n", knob,
				arg);
		return -1;
	}
	return 0;
}

static bool is_pool_figure(const char *name)
{
	const char *n;

	for (unsigned i = 0; (n = sp_stat_name(i)); i++)
		if (!strcmp(n, name))
			return true;
	return false;
}

static void say_not_a_knob(const char *knob, int err)
{
	if (err == EPERM)
		fprintf(stderr, "samepage set: %s is a %s, not a knob\n", knob,
			is_pool_figure(knob) ? "pool figure" : "counter");
	else
		fprintf(stderr, "samepage set: %s is not a knob (samepage set --help lists them)\n",
			knob);
}

/*
 * What the library here knows of the knob: 0 fine or unknown here (the
 * pool may know it), -1 having said why not (a usage error).
 */
static int check_knob(const char *knob, const char *arg, long value)
{
	long min, max;

	if (!sp_knob_range(knob, &min, &max, NULL)) {
		if (value >= min && value <= max && value != LONG_MAX && value != LONG_MIN)
			return 0;
		fprintf(stderr, "samepage set: %s: %s is out of range (%ld..%ld)\n", knob, arg, min,
			max);
		return -1;
	}
	if (errno == EPERM) {
		say_not_a_knob(knob, EPERM);
		return -1;
	}
	return 0;
}

/* The pool said "error ENAME msg" to `set knob value`: why, in its terms. */
static int set_refused(const char *knob, long value, char *reply)
{
	char *ename, *msg;
	long min, max;

	split_error(reply, &ename, &msg);
	if (!strcmp(ename, "EBUSY") && strstr(knob, "pages_to_scan")) {
		fprintf(stderr,
			"samepage set: %s is the advisor's while advisor_mode is scan-time: "
			"set advisor_mode none first\n",
			knob);
		return 1;
	}
	if (!strcmp(ename, "EBUSY")) {
		fprintf(stderr,
			"samepage set: %s can change only while nothing is merged: run=2 first\n",
			knob);
		return 1;
	}
	if (!strcmp(ename, "ENOMEM") && !strcmp(knob, "run") && value == 2) {
		fprintf(stderr, "samepage set: run=2: the pool has too few free frames to unmerge "
				"every page; nothing changed\n");
		return 1;
	}
	if (!strcmp(ename, "EPERM")) {
		say_not_a_knob(knob, EPERM);
		return EXIT_USAGE;
	}
	if (!strcmp(ename, "EINVAL")) {
		if (sp_knob_range(knob, &min, &max, NULL))
			say_not_a_knob(knob, EINVAL);
		else /* the pool's samepage is not this one */
			fprintf(stderr, "samepage set: the pool refused %s=%ld: %s\n", knob, value,
				msg);
		return EXIT_USAGE;
	}
	fprintf(stderr, "samepage set: %s=%ld: the pool refused: %s (%s)\n", knob, value, msg,
		ename);
	return 1;
}

/* After "ok": the value in force, as `stats` reads it back. */
static int print_new_value(struct ctl *c, const char *knob, long value)
{
	static struct snapshot snap;
	const char *name = strncmp(knob, "ksm.", 4) ? knob : knob + 4;
	long now_v;

	if (ctl_stats(c, &snap))
		return 1;
	if (!snap_get(&snap, name, &now_v)) {
		fprintf(stderr, "samepage set: %s was set, but the pool does not report it\n",
			knob);
		return 1;
	}
	if (value == -1 && strchr(name, '.'))
		printf("%s %ld (automatic)\n", name, now_v);
	else if (is_advisor_mode(name) && now_v >= 0 && now_v < 2)
		printf("%s %s\n", name, advisor_words[now_v]);
	else
		printf("%s %ld\n", name, now_v);
	return fflush(stdout) ? 1 : 0;
}

static int list_knobs(void)
{
	const char *name;

	for (unsigned i = 0; (name = sp_knob_name(i)); i++)
		printf("%s\n", name);
	return 0;
}

int cmd_set(int argc, char **argv)
{
	static const struct option opts[] = { { "socket", required_argument, NULL, 's' },
					      { "pid", required_argument, NULL, 'P' },
					      { "knobs", no_argument, NULL, 'k' },
					      { "help", no_argument, NULL, 'h' },
					      OPT_VERSION,
					      { 0 } };
	static char reply[REPLY_MAX];
	struct ctl c = { .cmd = "set" };
	const char *knob;
	char req[256];
	long value;
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (opt) {
		case 'h':
			set_usage(stdout);
			return 0;
		case 'V':
			return print_version();
		case 'k':
			return list_knobs();
		case 's':
			c.socket = optarg;
			break;
		case 'P':
			c.socket = run_pid_socket("set", optarg);
			if (!c.socket)
				return EXIT_USAGE;
			break;
		default:
			option_error("set", opt, argv);
			fprintf(stderr, "usage: samepage set --socket PATH KNOB VALUE "
					"(samepage set --help lists the knobs)\n");
			return EXIT_USAGE;
		}
	}
	if (!c.socket || argc - optind != 2) {
		fprintf(stderr,
			"samepage set: %s\nusage: samepage set --socket PATH KNOB VALUE "
			"(samepage set --help lists the knobs)\n",
			!c.socket	  ? "--socket PATH is required" :
			argc - optind < 2 ? "KNOB and VALUE are required" :
					    "too many arguments");
		return EXIT_USAGE;
	}
	knob = argv[optind];
	if (!*knob || strlen(knob) >= FIG_NAME || strpbrk(knob, " \t\r\n")) {
		fprintf(stderr, "samepage set: '%s' is not a knob name\n", knob);
		return EXIT_USAGE;
	}
	if (parse_value(knob, argv[optind + 1], &value) ||
	    check_knob(knob, argv[optind + 1], value))
		return EXIT_USAGE;
	snprintf(req, sizeof(req), "set %s %ld\n", knob, value);
	if (ctl_request(&c, req, "ok\n", reply))
		return 1;
	if (!strncmp(reply, "error ", 6))
		return set_refused(knob, value, reply);
	return print_new_value(&c, knob, value);
}
