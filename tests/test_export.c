/* SPDX-License-Identifier: MIT */
/*
 * The control socket: the protocol, 0600 and peer credentials, garbage that
 * must not crash or stall anything, and the samepage command against it.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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

static char dir[64], path[128];

static int setup(void **state)
{
	(void)state;
	strcpy(dir, "/tmp/sp-export-XXXXXX");
	assert_non_null(mkdtemp(dir));
	chmod(dir, 0755); /* another uid must reach the socket to be refused by it */
	snprintf(path, sizeof(path), "%s/ctl", dir);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	unlink(path);
	rmdir(dir);
	return 0;
}

static int dial(void)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);

	strcpy(a.sun_path, path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

/* One request, the reply (until the server stops talking for a while). */
static void ask(const char *req, size_t len, char *out, size_t max)
{
	int fd = dial();
	size_t have = 0;

	assert_true(fd >= 0);
	assert_int_equal(send(fd, req, len, MSG_NOSIGNAL), (ssize_t)len);
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 300) <= 0)
			break;
		n = recv(fd, out + have, max - 1 - have, 0);
		if (n <= 0)
			break;
		have += (size_t)n;
	}
	out[have] = 0;
	close(fd);
}

static void protocol(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char reply[16384];
	long v;
	struct stat st;

	(void)state;
	assert_int_equal(sp_pool_export(pool, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_true(S_ISSOCK(st.st_mode));
	assert_int_equal(st.st_mode & 0777, 0600);
	ask("stats\n", 6, reply, sizeof(reply));
	assert_non_null(strstr(reply, "pages_shared 0\n"));
	assert_non_null(strstr(reply, "fault_mode 1\n"));
	assert_non_null(strstr(reply, "frames_total 1024\n"));
	assert_string_equal(reply + strlen(reply) - 3, "\n.\n");
	ask("set pages_to_scan 555\n", 22, reply, sizeof(reply));
	assert_string_equal(reply, "ok\n");
	assert_int_equal(ksm_of(pool, "pages_to_scan"), 555);
	/* Dotted names are sp_tune's: the reclaim watermarks. */
	ask("set swap.low_watermark 100\n", 27, reply, sizeof(reply));
	assert_string_equal(reply, "ok\n");
	assert_int_equal(sp_tune_get(pool, "swap.low_watermark", &v), 0);
	assert_int_equal(v, 100);
	ask("set swap.nonsense 1\n", 20, reply, sizeof(reply));
	assert_int_equal(strncmp(reply, "error EINVAL", 12), 0);
	ask("stats\n", 6, reply, sizeof(reply));
	assert_non_null(strstr(reply, "\nswap.low_watermark 100\n"));
	ask("set no_such_knob 1\n", 19, reply, sizeof(reply));
	assert_int_equal(strncmp(reply, "error EINVAL", 12), 0);
	ask("set run 9\n", 10, reply, sizeof(reply));
	assert_int_equal(strncmp(reply, "error EINVAL", 12), 0);
	assert_int_equal(ksm_of(pool, "run"), 1);
	ask("set pages_shared 1\n", 19, reply, sizeof(reply));
	assert_int_equal(strncmp(reply, "error EPERM", 11), 0);
	ask("set run\n", 8, reply, sizeof(reply));
	assert_int_equal(strncmp(reply, "error EINVAL", 12), 0);
	ask("hello\n", 6, reply, sizeof(reply));
	assert_int_equal(strncmp(reply, "error EINVAL", 12), 0);
	/* Two requests on one connection, the second split across sends. */
	ask("set sleep_millisecs 7\nset smart_scan 0\n", 39, reply, sizeof(reply));
	assert_string_equal(reply, "ok\nok\n");
	assert_int_equal(ksm_of(pool, "smart_scan"), 0);
	sp_pool_destroy(pool); /* and the socket goes with it */
	assert_int_equal(access(path, F_OK), -1);
}

static void garbage(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char big[10000], reply[16384];
	double t0;
	int idle;

	(void)state;
	assert_int_equal(sp_pool_export(pool, path), 0);
	memset(big, 'x', sizeof(big));
	ask(big, sizeof(big), reply, sizeof(reply));
	assert_int_equal(strncmp(reply, "error E2BIG", 11), 0);
	ask("st\0ts\n", 6, reply, sizeof(reply));
	assert_int_equal(strncmp(reply, "error EINVAL", 12), 0);
	for (int i = 0; i < 200; i++) /* random bytes, newlines and all */
		big[i] = (char)(rand() & 0xff);
	ask(big, 200, reply, sizeof(reply));
	/* A client that says nothing holds the socket at most two seconds. */
	idle = dial();
	assert_true(idle >= 0);
	t0 = (double)time(NULL);
	ask("stats\n", 6, reply, sizeof(reply));
	if (!strstr(reply, "pages_shared")) { /* served after the idle one timed out */
		struct timespec ts = { 2, 500000000 };

		nanosleep(&ts, NULL);
		ask("stats\n", 6, reply, sizeof(reply));
	}
	assert_non_null(strstr(reply, "pages_shared 0\n"));
	assert_true((double)time(NULL) - t0 < 5);
	close(idle);
	/* The pool went on as if nothing happened. */
	assert_non_null(sp_alloc(pool, SP_PAGE_SIZE, SP_MERGEABLE));
	assert_int_equal(sp_ksm_scan(pool, 1), 1);
	sp_pool_destroy(pool);
}

/* A child of another uid: refused by the socket's mode, and by SO_PEERCRED. */
static void other_uid(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	int status;
	pid_t pid;

	(void)state;
	assert_int_equal(sp_pool_export(pool, path), 0);
	for (int wide = 0; wide < 2; wide++) {
		if (wide)
			chmod(path, 0666); /* past the file mode: the credential check remains */
		pid = fork();
		if (!pid) {
			char reply[256] = { 0 };
			int fd;

			if (setgid(65534) || setuid(65534))
				_exit(10);
			fd = dial();
			if (fd < 0)
				_exit(errno == EACCES ? 20 : 11);
			send(fd, "stats\n", 6, MSG_NOSIGNAL);
			if (recv(fd, reply, sizeof(reply) - 1, 0) > 0 &&
			    !strncmp(reply, "error EACCES", 12))
				_exit(21);
			_exit(12);
		}
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), wide ? 21 : 20);
	}
	assert_int_equal(ksm_of(pool, "run"), 1);
	sp_pool_destroy(pool);
}

static void errors(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char longpath[200];
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd;

	(void)state;
	memset(longpath, 'a', sizeof(longpath) - 1);
	longpath[sizeof(longpath) - 1] = 0;
	errno = 0;
	assert_int_equal(sp_pool_export(pool, longpath), -1);
	assert_int_equal(errno, ENAMETOOLONG);
	assert_int_equal(sp_pool_export(NULL, path), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_pool_export(pool, ""), -1);
	assert_int_equal(errno, EINVAL);
	assert_int_equal(sp_pool_unexport(pool), -1); /* not exported */
	assert_int_equal(errno, EINVAL);
	/* Something else at the path is not ours to remove. */
	fd = open(path, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "keep", 4), 4);
	close(fd);
	assert_int_equal(sp_pool_export(pool, path), -1);
	assert_int_equal(errno, EEXIST);
	assert_int_equal(access(path, F_OK), 0);
	unlink(path);
	/* A stale socket (its server gone) is. */
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	strcpy(a.sun_path, path);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	close(fd);
	assert_int_equal(sp_pool_export(pool, path), 0);
	assert_int_equal(sp_pool_export(pool, path), -1);
	assert_int_equal(errno, EBUSY);
	assert_int_equal(sp_pool_unexport(pool), 0);
	assert_int_equal(access(path, F_OK), -1);
	sp_pool_destroy(pool);
}

static int run(const char *args, char *out, size_t max)
{
	char cmd[512];
	FILE *p;
	size_t n;
	int status;

	snprintf(cmd, sizeof(cmd), "%s %s 2>&1", getenv("SAMEPAGE_BIN"), args);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, max - 1, p);
	out[n] = 0;
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void command(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char out[16384], args[256];

	(void)state;
	assert_non_null(getenv("SAMEPAGE_BIN"));
	assert_int_equal(sp_pool_export(pool, path), 0);
	snprintf(args, sizeof(args), "stats --socket %s", path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "pages_sharing 0\n"));
	snprintf(args, sizeof(args), "stats --socket %s --json", path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "{\"run\": 1, "));
	snprintf(args, sizeof(args), "stats --socket %s --prometheus", path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "\nsamepage_pages_shared 0\n"));
	assert_non_null(strstr(out, "\nsamepage_swap_high_watermark "));
	snprintf(args, sizeof(args), "set --socket %s pages_to_scan 4321", path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_int_equal(ksm_of(pool, "pages_to_scan"), 4321);
	snprintf(args, sizeof(args), "set --socket %s run 9", path);
	assert_int_equal(run(args, out, sizeof(out)), 1);
	assert_non_null(strstr(out, "samepage set: "));
	snprintf(args, sizeof(args), "top --socket %s --count 2 --interval 50", path);
	assert_int_equal(run(args, out, sizeof(out)), 0);
	assert_non_null(strstr(out, "pages_to_scan 4321"));
	assert_int_equal(run("stats", out, sizeof(out)), 2);
	assert_int_equal(run("stats --socket /nonexistent/sock", out, sizeof(out)), 1);
	assert_non_null(strstr(out, "No such file"));
	sp_pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(other_uid, setup, teardown),
		cmocka_unit_test_setup_teardown(errors, setup, teardown),
		cmocka_unit_test_setup_teardown(command, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
