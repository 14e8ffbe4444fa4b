/* SPDX-License-Identifier: MIT */
/*
 * The control socket: the protocol, 0600 and peer credentials, garbage that
 * must not crash or stall anything (the samepage command: test_cli).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common.h"

static char dir[64], path[128];

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

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

/* Connect to the socket; flags SOCK_NONBLOCK: fail rather than wait for a full backlog. */
static int dial_flags(int flags)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | flags, 0);

	strcpy(a.sun_path, path);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a))) {
		close(fd);
		return -1;
	}
	return fd;
}

static int dial(void)
{
	return dial_flags(0);
}

/* Read on fd until the reply ends with end (or an error line, EOF, ms pass). */
static size_t read_until(int fd, const char *end, char *out, size_t max, int ms)
{
	double t0 = now();
	size_t have = 0;

	out[0] = 0;
	while ((now() - t0) * 1000 < ms && have < max - 1) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = recv(fd, out + have, max - 1 - have, MSG_DONTWAIT);
		if (n <= 0)
			break;
		have += (size_t)n;
		out[have] = 0;
		if ((have >= strlen(end) && !strcmp(out + have - strlen(end), end)) ||
		    (!strncmp(out, "error ", 6) && strchr(out, '\n')))
			break;
	}
	return have;
}

/* Read and drop what comes until EOF: seconds it took, -1 if ms passed first. */
static double wait_eof(int fd, int ms)
{
	double t0 = now();
	char buf[65536];

	while ((now() - t0) * 1000 < ms) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 50) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == 0 || (n < 0 && errno != EAGAIN))
			return now() - t0;
	}
	return -1;
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

/* A request (a C string) and its reply: want whole if it ends a line, else its start. */
static void expect(const char *req, const char *want)
{
	size_t len = strlen(want);
	char reply[16384];

	ask(req, strlen(req), reply, sizeof(reply));
	if (want[len - 1] == '\n' ? strcmp(reply, want) : strncmp(reply, want, len))
		fail_msg("%s-> \"%s\", not \"%s\"", req, reply, want);
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
	expect("set pages_to_scan 555\n", "ok\n");
	assert_int_equal(ksm_of(pool, "pages_to_scan"), 555);
	/* Dotted names are sp_tune's: the reclaim watermarks. */
	expect("set swap.low_watermark 100\n", "ok\n");
	assert_int_equal(sp_tune_get(pool, "swap.low_watermark", &v), 0);
	assert_int_equal(v, 100);
	expect("set swap.nonsense 1\n", "error EINVAL");
	ask("stats\n", 6, reply, sizeof(reply));
	assert_non_null(strstr(reply, "\nswap.low_watermark 100\n"));
	/* get: one line of stats, of any kind of name. */
	expect("get pages_to_scan\n", "pages_to_scan 555\n");
	expect("get frames_total\n", "frames_total 1024\n");
	expect("get swap.low_watermark\n", "swap.low_watermark 100\n");
	expect("get no_such_name\n", "error EINVAL no such name\n");
	expect("get swap.nonsense\n", "error EINVAL");
	expect("get\n", "error EINVAL");
	expect("get run smart_scan\n", "error EINVAL");
	expect("set no_such_knob 1\n", "error EINVAL");
	expect("set run 9\n", "error EINVAL");
	assert_int_equal(ksm_of(pool, "run"), 1);
	expect("set pages_shared 1\n", "error EPERM");
	expect("set run\n", "error EINVAL");
	expect("hello\n", "error EINVAL");
	/* Requests in a row on one connection, answered in order. */
	expect("set sleep_millisecs 7\nset smart_scan 0\nget smart_scan\n",
	       "ok\nok\nsmart_scan 0\n");
	assert_int_equal(ksm_of(pool, "smart_scan"), 0);
	sp_pool_destroy(pool); /* and the socket goes with it */
	assert_int_equal(access(path, F_OK), -1);
}

/* The advisor's words and the per-domain requests. */
static void protocol_advisor_domains(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char *r = alloc_alike(pool, 8), *d = sp_alloc(pool, 4 * SP_PAGE_SIZE, SP_MERGEABLE);

	(void)state;
	assert_non_null(d);
	assert_int_equal(sp_set_merge_domain(pool, d, 4 * SP_PAGE_SIZE, 3), 0);
	memcpy(d, r, SP_PAGE_SIZE);
	memcpy(d + SP_PAGE_SIZE, r, SP_PAGE_SIZE);
	memcpy(d + 2 * SP_PAGE_SIZE, r + SP_PAGE_SIZE, SP_PAGE_SIZE);
	memcpy(d + 3 * SP_PAGE_SIZE, r + 2 * SP_PAGE_SIZE, SP_PAGE_SIZE);
	full_scan(pool);
	full_scan(pool);
	assert_int_equal(sp_pool_export(pool, path), 0);
	expect("set advisor_mode scan-time\n", "ok\n");
	expect("get advisor_mode\n", "advisor_mode 1\n");
	expect("get pages_to_scan\n", "pages_to_scan 500\n");
	expect("set pages_to_scan 5\n", "error EBUSY");
	expect("set advisor_mode none\n", "ok\n");
	expect("set advisor_mode sometimes\n", "error EINVAL");
	expect("set ksm.advisor_mode 1\n", "ok\n");
	expect("set advisor_mode 0\n", "ok\n");
	expect("set run none\n", "error EINVAL");
	/* Domain 0: 8 pages, none merged (distinct); domain 3: a pair merged, two alone. */
	expect("domain 3\n", "ksm_rmap_items 4\nksm_zero_pages 0\nksm_merging_pages 2\n"
			     "ksm_process_profit 8144\n.\n");
	expect("domain 4294967295\n", "ksm_rmap_items 0\nksm_zero_pages 0\n"
				      "ksm_merging_pages 0\nksm_process_profit 0\n.\n");
	expect("domains\n", "0 ksm_rmap_items 8\n0 ksm_zero_pages 0\n0 ksm_merging_pages 0\n"
			    "0 ksm_process_profit -64\n3 ksm_rmap_items 4\n3 ksm_zero_pages 0\n"
			    "3 ksm_merging_pages 2\n3 ksm_process_profit 8144\n.\n");
	expect("domain -1\n", "error EINVAL");
	expect("domain 4294967296\n", "error EINVAL");
	expect("domain\n", "error EINVAL");
	expect("domain 3 4\n", "error EINVAL");
	sp_pool_destroy(pool);
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
	ask("st\0ts\n", 6, reply, sizeof(reply)); /* a NUL byte: not a C string */
	assert_int_equal(strncmp(reply, "error EINVAL", 12), 0);
	for (int i = 0; i < 200; i++) /* random bytes, newlines and all */
		big[i] = (char)(rand() & 0xff);
	ask(big, 200, reply, sizeof(reply));
	/*
	 * A client that says nothing, or half a line, holds nobody up, and is
	 * closed after its two seconds (EOF; give a loaded machine some more).
	 */
	idle = dial();
	assert_true(idle >= 0);
	assert_int_equal(send(idle, "sta", 3, MSG_NOSIGNAL), 3);
	t0 = now();
	ask("stats\n", 6, reply, sizeof(reply));
	assert_non_null(strstr(reply, "pages_shared 0\n"));
	assert_true(wait_eof(idle, 6000) >= 0);
	assert_true(now() - t0 > 1.5);
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

/* A client that sends 12 KB of "stats" requests (about 2 MB of replies) and never reads. */
static int flood(void)
{
	int fd = dial();

	assert_true(fd >= 0);
	for (int i = 0; i < 2000; i++)
		send(fd, "stats\n", 6, MSG_DONTWAIT | MSG_NOSIGNAL);
	usleep(300000); /* the server has filled both socket buffers */
	return fd;
}

/* While a client does not read its replies, others are served; it is closed after its time. */
static void flooder_served(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char reply[16384];
	int fd;

	(void)state;
	assert_int_equal(sp_pool_export(pool, path), 0);
	fd = flood();
	ask("stats\n", 6, reply, sizeof(reply));
	assert_non_null(strstr(reply, "pages_shared 0\n"));
	assert_true(wait_eof(fd, 8000) >= 0); /* what was sent, then EOF */
	close(fd);
	sp_pool_destroy(pool);
}

struct destroyer {
	sp_pool *pool;
	double took;
};

static void *destroy_thread(void *arg)
{
	struct destroyer *d = arg;
	double t0 = now();

	sp_pool_destroy(d->pool);
	d->took = now() - t0;
	return NULL;
}

/*
 * sp_pool_destroy returns within 100 ms with a client that sends requests and
 * never reads (../shared/repro/destroy_hang.c). In a thread, so that a hang
 * fails the test instead of holding it; the best of three rounds.
 */
static void flooder_destroy(void **state)
{
	double best = 1e9;

	(void)state;
	for (int round = 0; round < 3 && best >= 0.1; round++) {
		sp_pool *pool = pool_small(0, 1);
		struct destroyer d = { .pool = pool };
		struct timespec until;
		pthread_t t;
		int fd, joined;

		assert_int_equal(sp_pool_export(pool, path), 0);
		fd = flood();
		assert_int_equal(pthread_create(&t, NULL, destroy_thread, &d), 0);
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += 3;
		joined = pthread_timedjoin_np(t, NULL, &until);
		close(fd); /* lets a stuck destroy go on: its send fails at last */
		if (joined) {
			pthread_join(t, NULL);
			fail_msg("sp_pool_destroy did not return in 3 s with a non-reading client");
		}
		if (d.took < best)
			best = d.took;
	}
	printf("sp_pool_destroy with a non-reading client: %.1f ms\n", best * 1000);
	assert_true(best < 0.1);
}

/*
 * At the fd limit a pending connection makes accept4 fail with EMFILE and
 * stay pending (../shared/repro/emfile_spin.c): the thread must rest, not
 * spin, and serve the connection once fds are free. In a child, whose limit
 * and fds can go as they please.
 */
static int emfile_child(void)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 1,
				      .flags = SP_POOL_NO_KSMD };
	struct rlimit rl = { 256, 256 };
	struct timespec c0, c1;
	char reply[16384];
	int fd, first = -1, last = -1, f;
	sp_pool *pool = sp_pool_create(&cfg);
	double cpu;

	if (!pool || sp_pool_export(pool, path))
		return 10;
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || setrlimit(RLIMIT_NOFILE, &rl))
		return 11;
	while ((f = open("/dev/null", O_RDONLY)) >= 0) {
		if (first < 0)
			first = f;
		last = f;
	}
	if (errno != EMFILE || first < 0)
		return 12;
	{
		struct sockaddr_un a = { .sun_family = AF_UNIX };

		strcpy(a.sun_path, path);
		if (connect(fd, (struct sockaddr *)&a, sizeof(a)))
			return 13;
	}
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c0);
	usleep(1000000);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &c1);
	cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) / 1e9;
	printf("CPU time of the process in 1 s at the fd limit: %.3f s\n", cpu);
	fflush(stdout);
	for (f = first; f <= last; f++)
		close(f);
	if (cpu > 0.2)
		return 14;
	/* Fds again: the connection that waited is served. */
	if (send(fd, "get run\n", 8, MSG_NOSIGNAL) != 8)
		return 15;
	read_until(fd, "\n", reply, sizeof(reply), 3000);
	if (strcmp(reply, "run 1\n"))
		return 16;
	close(fd);
	sp_pool_destroy(pool);
	return 0;
}

static void emfile(void **state)
{
	int status;
	pid_t pid;

	(void)state;
	fflush(NULL);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid)
		_exit(emfile_child());
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static atomic_int creating;

/* Files created 0644 under umask 022 the whole time: how many were not 0644. */
static void *creator(void *arg)
{
	long bad = 0;
	char name[160];

	(void)arg;
	snprintf(name, sizeof(name), "%s/file", dir);
	while (atomic_load(&creating)) {
		struct stat st;
		int fd = open(name, O_CREAT | O_RDWR | O_TRUNC, 0644);

		if (fd < 0 || fstat(fd, &st))
			bad++;
		else if ((st.st_mode & 0777) != 0644)
			bad++;
		if (fd >= 0)
			close(fd);
		unlink(name);
	}
	return (void *)bad;
}

/* sp_pool_export leaves the process umask alone (../shared/repro/umask_race.c). */
static void umask_untouched(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	mode_t old = umask(022);
	struct stat st;
	pthread_t t;
	void *bad;

	(void)state;
	atomic_store(&creating, 1);
	assert_int_equal(pthread_create(&t, NULL, creator, NULL), 0);
	for (int i = 0; i < 2000; i++) {
		assert_int_equal(sp_pool_export(pool, path), 0);
		assert_int_equal(sp_pool_unexport(pool), 0);
	}
	atomic_store(&creating, 0);
	pthread_join(t, &bad);
	assert_int_equal((long)bad, 0);
	/* 0600 whatever the umask, and the umask as it was. */
	umask(0);
	assert_int_equal(sp_pool_export(pool, path), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(umask(022), 0);
	sp_pool_unexport(pool);
	umask(old);
	sp_pool_destroy(pool);
}

/*
 * Exported at a relative path, then the program chdir-s
 * (../shared/repro/relpath.c): destroy removes the socket it made and not the
 * file of that name in the new working directory.
 */
static void relative_path(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char a[160], b[160], sock[200], other[200], cwd[4096];
	struct stat st;
	int fd;

	(void)state;
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(a, sizeof(a), "%s/a", dir);
	snprintf(b, sizeof(b), "%s/b", dir);
	snprintf(sock, sizeof(sock), "%s/ctl", a);
	snprintf(other, sizeof(other), "%s/ctl", b);
	assert_int_equal(mkdir(a, 0700), 0);
	assert_int_equal(mkdir(b, 0700), 0);
	fd = open(other, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "precious\n", 9), 9);
	close(fd);
	assert_int_equal(chdir(a), 0);
	assert_int_equal(sp_pool_export(pool, "ctl"), 0);
	assert_int_equal(chdir(b), 0);
	/* It serves at the path it was given, wherever the program went. */
	strcpy(path, sock);
	{
		char reply[16384];

		ask("stats\n", 6, reply, sizeof(reply));
		assert_non_null(strstr(reply, "pages_shared 0\n"));
	}
	sp_pool_destroy(pool);
	assert_int_equal(chdir(cwd), 0);
	assert_int_equal(lstat(sock, &st), -1);
	assert_int_equal(errno, ENOENT);
	assert_int_equal(stat(other, &st), 0);
	assert_true(S_ISREG(st.st_mode) && st.st_size == 9);
	unlink(other);
	rmdir(a);
	rmdir(b);
}

static int log_lines;
static char log_last[512];

static void count_log(enum sp_log_level level, const char *msg, void *priv)
{
	(void)level;
	(void)priv;
	log_lines++;
	snprintf(log_last, sizeof(log_last), "%s", msg);
}

static atomic_int swapping;

/* What an attacker with write access to the directory does: a symlink where the socket was. */
static void *swapper(void *arg)
{
	const char *victim = arg;

	while (atomic_load(&swapping)) {
		unlink(path);
		if (symlink(victim, path))
			continue;
	}
	return NULL;
}

static void make_victim(char *victim, size_t len)
{
	int fd;

	snprintf(victim, len, "%s/victim", dir);
	fd = open(victim, O_CREAT | O_WRONLY, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "mine\n", 5), 5);
	close(fd);
	assert_int_equal(chmod(victim, 0644), 0);
}

/*
 * Something else at the socket's path by unexport time (here a symlink to a
 * file of ours, the socket renamed away): unexport leaves it and what it
 * points to alone, and says so once.
 */
static void symlink_unexport(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char victim[160], moved[160];
	struct stat st;

	(void)state;
	make_victim(victim, sizeof(victim));
	snprintf(moved, sizeof(moved), "%s/moved", dir);
	assert_int_equal(sp_pool_export(pool, path), 0);
	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(symlink(victim, path), 0);
	log_lines = 0;
	sp_set_log(count_log, NULL);
	assert_int_equal(sp_pool_unexport(pool), 0);
	sp_set_log(NULL, NULL);
	assert_int_equal(lstat(path, &st), 0);
	assert_true(S_ISLNK(st.st_mode));
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(st.st_size, 5);
	assert_int_equal(log_lines, 1);
	assert_non_null(strstr(log_last, "replaced"));
	unlink(moved);
	unlink(path);
	unlink(victim);
	sp_pool_destroy(pool);
}

/*
 * A symlink swapped in between bind and what follows it, export after
 * export, as another user with write access to the directory would: the
 * file it points to keeps its mode (a chmod of the path after bind followed
 * the link).
 */
static void symlink_race(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char victim[160];
	struct stat st;
	pthread_t t;
	int exported = 0;

	(void)state;
	make_victim(victim, sizeof(victim));
	atomic_store(&swapping, 1);
	assert_int_equal(pthread_create(&t, NULL, swapper, victim), 0);
	sp_set_log(count_log, NULL); /* the races lost say "replaced" */
	for (int i = 0; i < 3000; i++) {
		if (!sp_pool_export(pool, path)) {
			exported++;
			sp_pool_unexport(pool);
		}
		assert_int_equal(stat(victim, &st), 0);
		if ((st.st_mode & 0777) != 0644)
			break;
	}
	sp_set_log(NULL, NULL);
	atomic_store(&swapping, 0);
	pthread_join(t, NULL);
	printf("%d of 3000 exports won the race\n", exported);
	assert_int_equal(stat(victim, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0644);
	assert_int_equal(st.st_size, 5);
	unlink(path);
	unlink(victim);
	sp_pool_destroy(pool);
}

/* Stats within 100 ms while 50 clients hold connections and say nothing. */
static void idle_clients(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	int idle[50];
	double best = 1e9;
	char reply[16384];

	(void)state;
	assert_int_equal(sp_pool_export(pool, path), 0);
	for (int i = 0; i < 50; i++) {
		idle[i] = dial_flags(SOCK_NONBLOCK);
		assert_true(idle[i] >= 0);
	}
	for (int i = 0; i < 5; i++) { /* the best of five: the machine is shared */
		int fd = dial_flags(SOCK_NONBLOCK);
		double t0 = now();

		assert_true(fd >= 0);
		assert_int_equal(send(fd, "stats\n", 6, MSG_NOSIGNAL), 6);
		read_until(fd, "\n.\n", reply, sizeof(reply), 5000);
		if (now() - t0 < best)
			best = now() - t0;
		close(fd);
		assert_non_null(strstr(reply, "pages_shared 0\n"));
	}
	printf("stats with 50 idle clients: %.3f ms\n", best * 1000);
	assert_true(best < 0.1);
	/* And the command itself (a process to start: timed loosely). */
	{
		char args[256];
		double t0 = now();

		snprintf(args, sizeof(args), "stats --socket %s", path);
		assert_int_equal(run(args, reply, sizeof(reply)), 0);
		assert_non_null(strstr(reply, "pages_shared 0\n"));
		printf("samepage stats with 50 idle clients: %.1f ms\n", (now() - t0) * 1000);
		assert_true(now() - t0 < 1);
	}
	for (int i = 0; i < 50; i++)
		close(idle[i]);
	sp_pool_destroy(pool);
}

/* 64 connections at most: the next gets one error line, then EOF. */
static void connection_cap(void **state)
{
	sp_pool *pool = pool_small(0, 1);
	char reply[16384];
	int fd[64], over;
	double t0;

	(void)state;
	assert_int_equal(sp_pool_export(pool, path), 0);
	for (int i = 0; i < 64; i++) {
		fd[i] = dial_flags(SOCK_NONBLOCK);
		assert_true(fd[i] >= 0);
	}
	over = dial_flags(SOCK_NONBLOCK);
	assert_true(over >= 0);
	read_until(over, "\n", reply, sizeof(reply), 3000);
	assert_string_equal(reply, "error EBUSY too many connections\n");
	assert_true(wait_eof(over, 3000) >= 0);
	close(over);
	/* The 64 are served. */
	assert_int_equal(send(fd[63], "get run\n", 8, MSG_NOSIGNAL), 8);
	read_until(fd[63], "\n", reply, sizeof(reply), 3000);
	assert_string_equal(reply, "run 1\n");
	/* One leaves: a place for another. */
	close(fd[0]);
	t0 = now();
	do {
		over = dial_flags(SOCK_NONBLOCK);
		assert_true(over >= 0);
		assert_int_equal(send(over, "get run\n", 8, MSG_NOSIGNAL), 8);
		read_until(over, "\n", reply, sizeof(reply), 3000);
		close(over);
	} while (strcmp(reply, "run 1\n") && now() - t0 < 1.5);
	assert_string_equal(reply, "run 1\n");
	for (int i = 1; i < 64; i++)
		close(fd[i]);
	sp_pool_destroy(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(protocol, setup, teardown),
		cmocka_unit_test_setup_teardown(protocol_advisor_domains, setup, teardown),
		cmocka_unit_test_setup_teardown(garbage, setup, teardown),
		cmocka_unit_test_setup_teardown(other_uid, setup, teardown),
		cmocka_unit_test_setup_teardown(errors, setup, teardown),
		cmocka_unit_test_setup_teardown(flooder_served, setup, teardown),
		cmocka_unit_test_setup_teardown(flooder_destroy, setup, teardown),
		cmocka_unit_test_setup_teardown(emfile, setup, teardown),
		cmocka_unit_test_setup_teardown(umask_untouched, setup, teardown),
		cmocka_unit_test_setup_teardown(relative_path, setup, teardown),
		cmocka_unit_test_setup_teardown(symlink_unexport, setup, teardown),
		cmocka_unit_test_setup_teardown(symlink_race, setup, teardown),
		cmocka_unit_test_setup_teardown(idle_clients, setup, teardown),
		cmocka_unit_test_setup_teardown(connection_cap, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
