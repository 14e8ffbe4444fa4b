/* SPDX-License-Identifier: MIT */
/*
 * `samepage run` with real, unmodified programs: Debian's python3 (many
 * copies of the same data, threads, shell-outs, fork), two small C programs
 * that know nothing of samepage (tests/run/), exit statuses and start-up
 * failures, the control socket (stats/top --pid, ps), LD_PRELOAD by hand,
 * and a user that is not root.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "preload_env.h"

#define OUT_MAX 65536
#define PYTHON "/usr/bin/python3"

static char out[OUT_MAX];
static char dir[64];

static const char *env(const char *name)
{
	const char *v = getenv(name);

	assert_non_null(v);
	return v;
}

/* A shell command, stdout and stderr into out; its exit status (-1 killed). */
static int __attribute__((format(printf, 1, 2))) shell(const char *fmt, ...)
{
	va_list ap;
	int status;

	va_start(ap, fmt);
	status = vshell(out, OUT_MAX, fmt, ap);
	va_end(ap);
	return status;
}

/* `samepage run ARGS` must exit with status and say want (NULL: anything). */
static void __attribute__((format(printf, 3, 4)))
expect(int status, const char *want, const char *fmt, ...)
{
	char args[2048];
	va_list ap;
	int got;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	got = shell("%s run %s", env("SAMEPAGE_BIN"), args);
	if (got != status || (want && !strstr(out, want)))
		fail_msg("samepage run %s: status %d (want %d), output:\n%s\n(want \"%s\")", args,
			 got, status, out, want ? want : "");
}

static bool have_python(void)
{
	if (!access(PYTHON, X_OK))
		return true;
	fprintf(stderr, "skip: %s is not installed (apt-get install python3)\n", PYTHON);
	return false;
}

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sp-run-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd);
}

/* CMD's status, and 125/126/127 for what went wrong before it ran. */
static void exit_status(void **state)
{
	(void)state;
	expect(0, NULL, "-- true");
	expect(7, NULL, "-- sh -c 'exit 7'");
	expect(0, "usage: samepage run", "--help");
	expect(0, "samepage ", "--version");
	expect(127, "no-such-program: No such file or directory", "-- no-such-program");
	expect(126, "Permission denied", "-- /etc/passwd");
	expect(125, "CMD is required", "%s", "");
	expect(125, "unknown option --frobnicate", "--frobnicate -- true");
	expect(125, "'12Q' is not a size", "--pool-size 12Q -- true");
	expect(125, "'nosuch' is not a KSM knob", "--knob nosuch=1 -- true");
	expect(125, "-1 is out of range", "--knob pages_to_scan=-1 -- true");
	expect(125, "not NAME=VALUE", "--knob pages_to_scan -- true");
	/* the pool cannot be set up in CMD: it says why and does not run */
	assert_int_equal(shell("SAMEPAGE_MIN_ALLOC=x %s run -- echo ran", env("SAMEPAGE_BIN")),
			 127);
	assert_non_null(strstr(out, "SAMEPAGE_MIN_ALLOC=x: not a size"));
	assert_null(strstr(out, "ran"));
	expect(127, "/nonexistent/dir/x.sock: No such file",
	       "--socket /nonexistent/dir/x.sock -- echo ran");
	assert_null(strstr(out, "ran"));
}

/*
 * Anonymous private read-write mappings come from the pool and keep their
 * contract: partial munmap, mremap, MADV_DONTNEED, mprotect; the rest is the
 * kernel's (tests/run/mmap_family.c).
 */
static void mmap_family(void **state)
{
	const char *b = env("SAMEPAGE_BUILD");

	(void)state;
	expect(0, "ok", "-- %s/tests/mmap_family", b);
	expect(0, "ok", "--pool-size 32M -- %s/tests/mmap_family", b);
	/* Without samepage the mappings are the kernel's: the check can fail. */
	assert_int_not_equal(shell("%s/tests/mmap_family", b), 0);
	assert_non_null(strstr(out, "not in the pool"));
}

/* Each function of the malloc family keeps its contract, its blocks in the pool. */
static void malloc_family(void **state)
{
	const char *b = env("SAMEPAGE_BUILD");

	(void)state;
	expect(0, "ok", "--pool-size 64M -- %s/tests/malloc_family 0 300000000", b);
	assert_non_null(
		strstr(out, "allocations were served by glibc's malloc: the pool was full"));
	expect(0, "ok", "--min-alloc 1K -- %s/tests/malloc_family 1024", b);
	/* Without samepage the same program finds nothing in a pool: the check can fail. */
	assert_int_not_equal(shell("%s/tests/malloc_family 0", b), 0);
	assert_non_null(strstr(out, "not in the pool"));
}

static long figure(pid_t pid, const char *name)
{
	char want[64], *at;

	if (shell("%s stats --pid %d", env("SAMEPAGE_BIN"), (int)pid))
		fail_msg("samepage stats --pid %d: %s", (int)pid, out);
	snprintf(want, sizeof(want), "\n%s ", name);
	at = strstr(out, want);
	assert_non_null(at);
	return strtol(at + strlen(want), NULL, 10);
}

static bool socket_exists(pid_t pid)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "%s stats --pid %d >/dev/null 2>&1", env("SAMEPAGE_BIN"),
		 (int)pid);
	return system(cmd) == 0;
}

/*
 * Many copies of the same data in python3: the pages merge (seen through
 * `samepage stats --pid`, `top --pid` and `ps`), the program's own checks
 * pass after writes into merged pages, and the socket goes at exit.
 */
static void python_equal(void **state)
{
	char cmd[1024], go[128], line[256];
	long sharing = 0;
	int pid = 0, status;
	FILE *p;

	(void)state;
	if (!have_python())
		return;
	snprintf(go, sizeof(go), "%s/go", dir);
	snprintf(cmd, sizeof(cmd),
		 "%s run --knob pages_to_scan=20000 --knob sleep_millisecs=10 -- %s "
		 "%s/tests/run/equal.py %s",
		 env("SAMEPAGE_BIN"), PYTHON, env("SAMEPAGE_SRC"), go);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(sscanf(line, "built %d", &pid), 1);
	/* 8000 blobs of 16 KiB in 4 values: 32768 pages, nearly all alike */
	for (int i = 0; i < 600 && sharing < 24000; i++) {
		usleep(100 * 1000);
		sharing = figure(pid, "pages_sharing");
	}
	if (sharing < 24000)
		fail_msg("pages_sharing %ld after 60 s (want 24000 of 32768 pages)", sharing);
	assert_true(figure(pid, "general_profit") > 24000L * 4096 / 2);
	assert_int_equal(shell("%s top --pid %d --count 1", env("SAMEPAGE_BIN"), pid), 0);
	assert_non_null(strstr(out, "pages_sharing"));
	assert_int_equal(shell("%s ps", env("SAMEPAGE_BIN")), 0);
	snprintf(line, sizeof(line), "%7d python3", pid);
	if (!strstr(out, line))
		fail_msg("samepage ps does not list %d:\n%s", pid, out);
	fclose(fopen(go, "w"));
	assert_non_null(fgets(line, sizeof(line), p));
	assert_string_equal(line, "ok 131072000\n");
	status = pclose(p);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	assert_false(socket_exists(pid)); /* removed at exit */
}

/*
 * A program that installs its own SIGSEGV handler after samepage's, in the
 * mprotect+SIGSEGV fault mode: both get their faults (tests/run/own_segv.c;
 * without the interposed sigaction it exits 3). Python's faulthandler too.
 */
static void own_sigsegv_handler(void **state)
{
	char cmd[1024], go[128], line[256];
	long sharing = 0;
	int pid = 0, status;
	FILE *p;

	(void)state;
	snprintf(go, sizeof(go), "%s/go-segv", dir);
	snprintf(cmd, sizeof(cmd),
		 "SAMEPAGE_FAULT_MODE=sigsegv %s run --knob pages_to_scan=20000 "
		 "--knob sleep_millisecs=10 -- %s/tests/own_segv %s",
		 env("SAMEPAGE_BIN"), env("SAMEPAGE_BUILD"), go);
	p = popen(cmd, "r");
	assert_non_null(p);
	assert_non_null(fgets(line, sizeof(line), p));
	assert_int_equal(sscanf(line, "pid %d", &pid), 1);
	for (int i = 0; i < 600 && sharing < 7000; i++) {
		usleep(100 * 1000);
		sharing = figure(pid, "pages_sharing");
	}
	assert_true(sharing >= 7000); /* 2000 blocks of 4 pages in 2 values */
	assert_int_equal(figure(pid, "fault_mode"), SP_FAULT_SIGSEGV);
	fclose(fopen(go, "w"));
	assert_non_null(fgets(line, sizeof(line), p));
	assert_string_equal(line, "ok\n");
	status = pclose(p);
	assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	if (have_python() &&
	    (shell("SAMEPAGE_FAULT_MODE=sigsegv %s run -- %s -X faulthandler %s/tests/run/threads.py",
		   env("SAMEPAGE_BIN"), PYTHON, env("SAMEPAGE_SRC")) ||
	     !strstr(out, "ok 80000000")))
		fail_msg("python3 -X faulthandler in SIGSEGV mode: %s", out);
}

static void python_script(const char *script, const char *want)
{
	expect(0, want, "-- %s %s/tests/run/%s", PYTHON, env("SAMEPAGE_SRC"), script);
}

static void python_threads(void **state)
{
	(void)state;
	if (have_python())
		python_script("threads.py", "ok 80000000");
}

static void python_shellout(void **state)
{
	(void)state;
	if (have_python())
		python_script("shellout.py", "ok");
}

/* os.fork(): the child dies as samepage(1) says, the parent is unaffected. */
static void python_fork(void **state)
{
	(void)state;
	if (!have_python())
		return;
	python_script("fork.py", "ok");
	assert_non_null(strstr(out, "samepage: a child of fork() touched memory"));
}

/* A child that leaves the pool alone exits normally and keeps the parent's socket. */
static void fork_child(void **state)
{
	(void)state;
	expect(0, "ok", "--socket %s/fork.sock -- %s/tests/fork_child %s/fork.sock", dir,
	       env("SAMEPAGE_BUILD"), dir);
}

/* The socket of the pid that the last `sh -c 'echo $$ > DIR/pid'` wrote. */
static void socket_of_pid_file(char *buf, size_t len)
{
	char path[300];
	int pid = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/pid", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_int_equal(fscanf(f, "%d", &pid), 1);
	fclose(f);
	assert_int_equal(sp_run_socket(pid, buf, len), 0);
}

/* A program that leaves by _exit cannot remove its socket: the next start, or ps, does. */
static void stale_sockets(void **state)
{
	char stale[300];
	struct stat st;

	(void)state;
	expect(0, NULL, "-- sh -c 'echo $$ > %s/pid; exit 0'", dir); /* dash: _exit() */
	socket_of_pid_file(stale, sizeof(stale));
	assert_int_equal(stat(stale, &st), 0); /* left behind */
	expect(0, NULL, "-- true");
	assert_int_equal(stat(stale, &st), -1); /* swept at the next start */
	expect(0, NULL, "-- sh -c 'echo $$ > %s/pid; exit 0'", dir);
	socket_of_pid_file(stale, sizeof(stale));
	assert_int_equal(stat(stale, &st), 0);
	assert_int_equal(shell("%s ps", env("SAMEPAGE_BIN")), 0);
	assert_int_equal(stat(stale, &st), -1); /* and by ps */
}

/* Descendants run without samepage unless --children (a shell forks for a pipe). */
static void children(void **state)
{
	(void)state;
	if (have_python()) {
		expect(0, "piped\n", "-- %s -c 'import os; os.system(\"echo piped | cat\")'",
		       PYTHON);
		assert_null(strstr(out, "fork()"));
	}
	/* CMD itself forks for the pipe: its child dies as samepage(1) says */
	expect(128 + SIGSEGV, "a child of fork() touched memory", "-- sh -c 'echo piped | cat'");
	expect(0, "libsamepage-preload.so", "--children -- sh -c 'echo $LD_PRELOAD'");
	expect(0, NULL, "-- sh -c 'echo \"[$LD_PRELOAD]\"'");
	assert_non_null(strstr(out, "[]"));
}

/* LD_PRELOAD by hand: a bad setting warns, and the program runs without samepage. */
static void by_hand(void **state)
{
	int status;

	(void)state;
	status = shell("LD_PRELOAD=%s/libsamepage-preload.so SAMEPAGE_POOL_SIZE=lots "
		       "sh -c 'echo ran'",
		       env("SAMEPAGE_BUILD"));
	assert_int_equal(status, 0);
	assert_non_null(strstr(out, "SAMEPAGE_POOL_SIZE=lots: not a size"));
	assert_non_null(strstr(out, "running without samepage"));
	assert_non_null(strstr(out, "ran\n"));
	status = shell("LD_PRELOAD=%s/libsamepage-preload.so SAMEPAGE_SOCKET= "
		       "%s/tests/malloc_family 0",
		       env("SAMEPAGE_BUILD"), env("SAMEPAGE_BUILD"));
	if (status)
		fail_msg("malloc_family under LD_PRELOAD: %s", out);
}

/* As nobody: userfaultfd in user-mode-only mode, the socket under /tmp. */
static void not_root(void **state)
{
	(void)state;
	if (geteuid() != 0 || access("/usr/bin/setpriv", X_OK) || !have_python()) {
		fprintf(stderr, "skip: needs root and setpriv to become nobody\n");
		return;
	}
	if (shell("setpriv --reuid=65534 --regid=65534 --clear-groups test -r %s/tests/run/"
		  "threads.py -a -x %s/tools/samepage",
		  env("SAMEPAGE_SRC"), env("SAMEPAGE_BUILD"))) {
		fprintf(stderr, "skip: nobody cannot read the build tree\n");
		return;
	}
	if (shell("cd / && env -u XDG_RUNTIME_DIR setpriv --reuid=65534 --regid=65534 "
		  "--clear-groups %s run -- %s %s/tests/run/threads.py",
		  env("SAMEPAGE_BIN"), PYTHON, env("SAMEPAGE_SRC")) ||
	    !strstr(out, "ok 80000000"))
		fail_msg("as nobody: %s", out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(exit_status),
		cmocka_unit_test(malloc_family),
		cmocka_unit_test(mmap_family),
		cmocka_unit_test(python_equal),
		cmocka_unit_test(python_threads),
		cmocka_unit_test(python_shellout),
		cmocka_unit_test(python_fork),
		cmocka_unit_test(fork_child),
		cmocka_unit_test(children),
		cmocka_unit_test(stale_sockets),
		cmocka_unit_test(by_hand),
		cmocka_unit_test(not_root),
		cmocka_unit_test(own_sigsegv_handler),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
