/* SPDX-License-Identifier: MIT */
/*
 * samepage run [OPTIONS] -- CMD [ARGS...]: CMD with libsamepage-preload.so
 * in LD_PRELOAD and the options as SAMEPAGE_* variables (src/preload_env.h),
 * then exec: CMD keeps samepage's pid, so its socket is PID.sock.
 * samepage ps: the programs whose sockets are in the run directory.
 *
 * Exit status of run, as env(1) and nice(1) have it: CMD's own; 125 a bad
 * option or samepage's own failure before CMD started; 126 CMD found but
 * not runnable; 127 CMD not found, or its pool could not be set up.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "samepage.h"

#include "cmds.h"
#include "ctl.h"
#include "preload_env.h"

#define EXIT_RUN_FAIL 125
#define EXIT_CANNOT_RUN 126
#define EXIT_NOT_FOUND 127

#ifndef SP_PRELOAD_PATH
#define SP_PRELOAD_PATH "/usr/local/lib/" SP_PRELOAD_NAME
#endif

const char *run_pid_socket(const char *cmd, const char *arg)
{
	static char path[256];
	long pid;

	if (option_long(cmd, "--pid", arg, 1, INT_MAX, &pid))
		return NULL;
	if (sp_run_socket((pid_t)pid, path, sizeof(path))) {
		fprintf(stderr, "samepage %s: the socket of %ld: %s\n", cmd, pid, strerror(errno));
		return NULL;
	}
	return path;
}

/* ---- samepage run ------------------------------------------------------- */

static void run_usage(FILE *f)
{
	fprintf(f,
		"usage: samepage run [OPTIONS] [--] CMD [ARGS...]\n"
		"  run CMD with its malloc family served from a samepage pool\n"
		"  --pool-size SIZE    bytes of pool for the heap (K, M, G; default 1G)\n"
		"  --min-alloc SIZE    smaller requests stay with glibc's malloc (default 0)\n"
		"  --swap PATH         swap file (unlinked once open)\n"
		"  --swap-size SIZE    bytes of swap (default 1G with --swap)\n"
		"  --knob NAME=VALUE   a KSM knob, as samepage set takes it (repeatable)\n"
		"  --no-ksmd           no scanner thread\n"
		"  --socket PATH       the control socket (default DIR/PID.sock, see samepage(1))\n"
		"  --no-socket         no control socket\n"
		"  --children          the programs CMD execs run under samepage too\n"
		"  --version           print samepage's version\n"
		"exit status: CMD's; 125 samepage failed before CMD ran; 126 CMD not runnable;\n"
		"  127 CMD not found or its pool could not be set up\n");
}

/* The preload beside the build tree's samepage, else the installed one. */
static int find_preload(char *buf, size_t len)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	char *slash;

	if (n > 0) {
		self[n] = 0;
		slash = strrchr(self, '/');
		if (slash) {
			*slash = 0;
			if ((size_t)snprintf(buf, len, "%.*s/../%s", (int)(len - 32), self,
					     SP_PRELOAD_NAME) < len &&
			    !access(buf, R_OK))
				return 0;
		}
	}
	snprintf(buf, len, "%s", SP_PRELOAD_PATH);
	if (!access(buf, R_OK))
		return 0;
	fprintf(stderr, "samepage run: %s: %s\n", buf, strerror(errno));
	return -1;
}

struct run_opts {
	char knobs[1024];
	size_t knobs_len;
};

static int check_size(const char *opt, const char *arg)
{
	size_t v;

	if (!sp_parse_size(arg, &v))
		return 0;
	fprintf(stderr, "samepage run: %s: '%s' is not a size (bytes, or with K, M, G, T)\n", opt,
		arg);
	return -1;
}

/* NAME=VALUE, checked against the knobs' table as `samepage set` does. */
static int add_knob(struct run_opts *o, const char *arg)
{
	const char *eq = strchr(arg, '=');
	long min, max, value;
	char name[FIG_NAME];
	int n;

	if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof(name)) {
		fprintf(stderr, "samepage run: --knob: '%s' is not NAME=VALUE\n", arg);
		return -1;
	}
	memcpy(name, arg, (size_t)(eq - arg));
	name[eq - arg] = 0;
	if (sp_knob_range(name, &min, &max, NULL) || !strncmp(name, "swap.", 5)) {
		fprintf(stderr, "samepage run: --knob: '%s' is not a KSM knob\n", name);
		return -1;
	}
	if (option_long("run", name, eq + 1, min, max, &value))
		return -1;
	n = snprintf(o->knobs + o->knobs_len, sizeof(o->knobs) - o->knobs_len, "%s%s=%ld",
		     o->knobs_len ? "," : "", name, value);
	if (n < 0 || (size_t)n >= sizeof(o->knobs) - o->knobs_len) {
		fprintf(stderr, "samepage run: --knob: too many knobs\n");
		return -1;
	}
	o->knobs_len += (size_t)n;
	return 0;
}

/* 0 go on, 1 done (--help, --version), else the exit status. */
static int parse_run(int argc, char **argv, struct run_opts *o)
{
	static const struct option opts[] = { { "pool-size", required_argument, NULL, 'p' },
					      { "min-alloc", required_argument, NULL, 'm' },
					      { "swap", required_argument, NULL, 'w' },
					      { "swap-size", required_argument, NULL, 'z' },
					      { "knob", required_argument, NULL, 'k' },
					      { "no-ksmd", no_argument, NULL, 'K' },
					      { "socket", required_argument, NULL, 's' },
					      { "no-socket", no_argument, NULL, 'S' },
					      { "children", no_argument, NULL, 'C' },
					      { "help", no_argument, NULL, 'h' },
					      OPT_VERSION,
					      { 0 } };
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			run_usage(stdout);
			return 1;
		case 'V':
			print_version();
			return 1;
		case 'p':
		case 'm':
		case 'z':
			if (check_size(argv[optind - 1], optarg))
				return EXIT_RUN_FAIL;
			setenv(c == 'p' ? SP_ENV_POOL_SIZE :
			       c == 'm' ? SP_ENV_MIN_ALLOC :
					  SP_ENV_SWAP_SIZE,
			       optarg, 1);
			break;
		case 'w':
			setenv(SP_ENV_SWAP, optarg, 1);
			break;
		case 'k':
			if (add_knob(o, optarg))
				return EXIT_RUN_FAIL;
			setenv(SP_ENV_KNOBS, o->knobs, 1);
			break;
		case 'K':
			setenv(SP_ENV_NO_KSMD, "1", 1);
			break;
		case 's':
			setenv(SP_ENV_SOCKET, optarg, 1);
			break;
		case 'S':
			setenv(SP_ENV_SOCKET, "", 1);
			break;
		case 'C':
			setenv(SP_ENV_CHILDREN, "1", 1);
			break;
		default:
			option_error("run", c, argv);
			run_usage(stderr);
			return EXIT_RUN_FAIL;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "samepage run: CMD is required\n");
		run_usage(stderr);
		return EXIT_RUN_FAIL;
	}
	return 0;
}

/* Ours first, then whatever LD_PRELOAD held. */
static int set_preload(void)
{
	const char *old = getenv("LD_PRELOAD");
	char lib[PATH_MAX], val[PATH_MAX * 2];
	char pid[16];

	if (find_preload(lib, sizeof(lib)))
		return -1;
	if ((size_t)snprintf(val, sizeof(val), "%s%s%s", lib, old && *old ? ":" : "",
			     old ? old : "") >= sizeof(val)) {
		fprintf(stderr, "samepage run: LD_PRELOAD too long\n");
		return -1;
	}
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	if (setenv("LD_PRELOAD", val, 1) || setenv(SP_ENV_STRICT, pid, 1)) {
		fprintf(stderr, "samepage run: %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

int cmd_run(int argc, char **argv)
{
	struct run_opts o = { .knobs_len = 0 };
	int ret = parse_run(argc, argv, &o);

	if (ret)
		return ret == 1 ? 0 : ret;
	if (set_preload())
		return EXIT_RUN_FAIL;
	execvp(argv[optind], argv + optind);
	ret = errno;
	fprintf(stderr, "samepage run: %s: %s\n", argv[optind], strerror(ret));
	return ret == ENOENT ? EXIT_NOT_FOUND : EXIT_CANNOT_RUN;
}

/* ---- samepage ps --------------------------------------------------------- */

static void ps_usage(FILE *f)
{
	fprintf(f, "usage: samepage ps\n"
		   "  list the programs running under `samepage run` (their sockets in the\n"
		   "  run directory, see samepage(1)) with the memory their pools save\n");
}

static void comm_of(long pid, char *buf, size_t len)
{
	char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/comm", pid);
	f = fopen(path, "r");
	if (!f || !fgets(buf, (int)len, f))
		snprintf(buf, len, "?");
	if (f)
		fclose(f);
	buf[strcspn(buf, "\n")] = 0;
}

/* One line for dir/name; stale sockets (their program gone) are skipped, then removed. */
static void ps_one(const char *dir, const char *name)
{
	static struct snapshot snap;
	struct ctl c = { .cmd = "ps", .defer_errors = true };
	long pid, saved = 0, resident = 0, sharing = 0;
	char path[512], comm[64], *end;

	pid = strtol(name, &end, 10);
	if (end == name || strcmp(end, ".sock") || pid <= 0)
		return;
	if (kill((pid_t)pid, 0) && errno == ESRCH)
		return;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	c.socket = path;
	comm_of(pid, comm, sizeof(comm));
	if (ctl_stats(&c, &snap)) {
		printf("%7ld %-16s %s\n", pid, comm, "(no answer)");
		return;
	}
	snap_get(&snap, "general_profit", &saved);
	snap_get(&snap, "bytes_resident", &resident);
	snap_get(&snap, "pages_sharing", &sharing);
	printf("%7ld %-16s %12ld %12ld %12ld\n", pid, comm, resident >> 10, saved >> 10, sharing);
}

int cmd_ps(int argc, char **argv)
{
	char dir[256];
	struct dirent *e;
	DIR *d;

	if (argc > 1) {
		if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
			ps_usage(stdout);
			return 0;
		}
		if (!strcmp(argv[1], "--version"))
			return print_version();
		fprintf(stderr, "samepage ps: unexpected argument: %s\n", argv[1]);
		ps_usage(stderr);
		return EXIT_USAGE;
	}
	if (sp_run_dir(dir, sizeof(dir))) {
		fprintf(stderr, "samepage ps: %s\n", strerror(errno));
		return 1;
	}
	printf("%7s %-16s %12s %12s %12s\n", "PID", "COMMAND", "RESIDENT_KB", "SAVED_KB",
	       "PAGES_SHARING");
	d = opendir(dir);
	if (!d && errno == ENOENT)
		return 0; /* nothing ever ran */
	if (!d) {
		fprintf(stderr, "samepage ps: %s: %s\n", dir, strerror(errno));
		return 1;
	}
	while ((e = readdir(d)))
		ps_one(dir, e->d_name);
	closedir(d);
	sp_run_sweep(dir);
	return fflush(stdout) ? 1 : 0;
}
