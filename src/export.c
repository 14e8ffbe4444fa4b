/* SPDX-License-Identifier: MIT */
/*
 * The control socket: a pool's /sys/kernel/mm/ksm, served over a Unix socket
 * so that `samepage stats|set|top` can look at a running program's pool.
 *
 * Protocol, one request per line (at most 255 bytes), one reply each:
 *   stats            -> "name value" per line, every KSM knob and counter and
 *                       every pool figure, then a line "."
 *   set KNOB VALUE   -> "ok", or "error ERRNO-NAME message"
 * Anything else gets an error line; an over-long line gets one and the
 * connection is closed. A peer whose uid is neither ours nor root is refused
 * (SO_PEERCRED) before it is read. The socket is created mode 0600.
 *
 * One thread serves one connection at a time; a connection that says nothing
 * for two seconds is closed, so no client can hold it. The thread calls only
 * sp_stat, sp_ksm_get and sp_ksm_set, and takes no lock of the pool's itself:
 * a slow or hostile client cannot stall the pool, only the socket.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"

#define LINE_MAX_BYTES 256
#define IDLE_MS 2000

static const char *err_name(int e)
{
	switch (e) {
	case EINVAL:
		return "EINVAL";
	case EPERM:
		return "EPERM";
	case EBUSY:
		return "EBUSY";
	case ENOMEM:
		return "ENOMEM";
	case EACCES:
		return "EACCES";
	case E2BIG:
		return "E2BIG";
	default:
		return "EIO";
	}
}

static void send_all(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n <= 0)
			return;
		buf += n;
		len -= (size_t)n;
	}
}

static void reply_error(int fd, int e, const char *what)
{
	char line[128];

	snprintf(line, sizeof(line), "error %s %s\n", err_name(e), what);
	send_all(fd, line, strlen(line));
}

static void reply_stats(struct sp_pool *pool, int fd)
{
	char *buf = malloc(8192), *p = buf;
	const char *name;
	long v;

	if (!buf)
		return reply_error(fd, ENOMEM, "out of memory");
	for (unsigned i = 0; (name = sp_ksm_name(i)); i++)
		if (!sp_ksm_get(pool, name, &v))
			p += sprintf(p, "%s %ld\n", name, v);
	for (unsigned i = 0; (name = sp_stat_name(i)); i++)
		if (!sp_stat(pool, name, &v))
			p += sprintf(p, "%s %ld\n", name, v);
	for (unsigned i = 0; i < 2; i++) {
		name = i ? "swap.high_watermark" : "swap.low_watermark";
		if (!sp_tune_get(pool, name, &v))
			p += sprintf(p, "%s %ld\n", name, v);
	}
	p += sprintf(p, ".\n");
	send_all(fd, buf, (size_t)(p - buf));
	free(buf);
}

static void handle_set(struct sp_pool *pool, int fd, char *args)
{
	char knob[64], extra;
	long value;

	if (sscanf(args, "%63s %ld %c", knob, &value, &extra) != 2)
		return reply_error(fd, EINVAL, "usage: set KNOB VALUE");
	/* Dotted names (swap.low_watermark) are sp_tune's; the rest are KSM's. */
	if (strchr(knob, '.') ? sp_tune(pool, knob, value) : sp_ksm_set(pool, knob, value))
		return reply_error(fd, errno, strerror(errno));
	send_all(fd, "ok\n", 3);
}

static void handle_line(struct sp_pool *pool, int fd, char *line)
{
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
		line[--n] = 0;
	if (!strcmp(line, "stats"))
		reply_stats(pool, fd);
	else if (!strncmp(line, "set ", 4))
		handle_set(pool, fd, line + 4);
	else
		reply_error(fd, EINVAL, "unknown request (stats, set KNOB VALUE)");
}

static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

/* One connection: lines until it closes, idles, or sends one too long. */
static void serve(struct sp_pool *pool, int fd)
{
	char buf[LINE_MAX_BYTES];
	size_t have = 0;

	if (!peer_allowed(fd))
		return reply_error(fd, EACCES, "not the pool owner's uid");
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		char *nl;
		ssize_t n;

		if (poll(&p, 1, IDLE_MS) <= 0)
			return;
		n = recv(fd, buf + have, sizeof(buf) - 1 - have, 0);
		if (n <= 0)
			return;
		have += (size_t)n;
		buf[have] = 0;
		while ((nl = memchr(buf, '\n', have))) {
			*nl = 0;
			if (memchr(buf, 0, (size_t)(nl - buf)) == NULL)
				handle_line(pool, fd, buf);
			else
				reply_error(fd, EINVAL, "binary request");
			have -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, have);
			buf[have] = 0;
		}
		if (have == sizeof(buf) - 1)
			return reply_error(fd, E2BIG, "request line too long");
	}
}

static void *export_thread(void *arg)
{
	struct sp_pool *pool = arg;
	struct sp_export *x = &pool->export;
	struct pollfd p[2] = { { .fd = x->fd, .events = POLLIN },
			       { .fd = x->stopfd, .events = POLLIN } };

	for (;;) {
		int c;

		if (poll(p, 2, -1) < 0)
			continue;
		if (p[1].revents)
			break;
		c = accept4(x->fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0)
			continue;
		serve(pool, c);
		close(c);
	}
	return NULL;
}

/* A socket at path that nobody serves any more may go; anything else stays. */
static int clear_stale(const char *path, const struct sockaddr_un *addr)
{
	struct stat st;
	int fd, ret;

	if (lstat(path, &st))
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	ret = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	close(fd);
	if (!ret) {
		errno = EADDRINUSE; /* someone serves it */
		return -1;
	}
	return unlink(path);
}

static int export_listen(struct sp_export *x, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	mode_t old;
	int err;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	if (clear_stale(path, &addr))
		return -1;
	x->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (x->fd < 0)
		return -1;
	old = umask(0177); /* 0600 from the start: no window with a wider mode */
	err = bind(x->fd, (struct sockaddr *)&addr, sizeof(addr));
	umask(old);
	if (err || chmod(path, 0600) || listen(x->fd, 8)) {
		err = errno;
		close(x->fd);
		x->fd = -1;
		errno = err;
		return -1;
	}
	return 0;
}

int sp_pool_export(sp_pool *pool, const char *path)
{
	struct sp_export *x;
	int err;

	if (!pool || !path || !*path) {
		errno = EINVAL;
		return -1;
	}
	x = &pool->export;
	pthread_mutex_lock(&x->lock);
	if (x->path) {
		err = EBUSY; /* exported already */
		goto out_unlock;
	}
	if (export_listen(x, path)) {
		err = errno;
		goto out_unlock;
	}
	x->stopfd = eventfd(0, EFD_CLOEXEC);
	x->path = strdup(path);
	if (x->stopfd < 0 || !x->path ||
	    (err = pthread_create(&x->thread, NULL, export_thread, pool))) {
		err = x->stopfd < 0 || !x->path ? ENOMEM : err;
		goto out_close;
	}
	pthread_mutex_unlock(&x->lock);
	return 0;

out_close:
	unlink(path);
	close(x->fd);
	if (x->stopfd >= 0)
		close(x->stopfd);
	free(x->path);
	x->path = NULL;
	x->fd = x->stopfd = -1;
out_unlock:
	pthread_mutex_unlock(&x->lock);
	errno = err;
	return -1;
}

int sp_pool_unexport(sp_pool *pool)
{
	struct sp_export *x;
	uint64_t one = 1;

	if (!pool) {
		errno = EINVAL;
		return -1;
	}
	x = &pool->export;
	pthread_mutex_lock(&x->lock);
	if (!x->path) {
		pthread_mutex_unlock(&x->lock);
		errno = EINVAL;
		return -1;
	}
	if (write(x->stopfd, &one, sizeof(one)) != sizeof(one))
		sp_log(SP_LOG_ERR, "stopping the control socket: %s", strerror(errno));
	pthread_join(x->thread, NULL);
	unlink(x->path);
	close(x->fd);
	close(x->stopfd);
	free(x->path);
	x->path = NULL;
	x->fd = x->stopfd = -1;
	pthread_mutex_unlock(&x->lock);
	return 0;
}

void export_init(struct sp_pool *pool)
{
	pthread_mutex_init(&pool->export.lock, NULL);
	pool->export.fd = pool->export.stopfd = -1;
}

void export_exit(struct sp_pool *pool)
{
	if (pool->export.path)
		sp_pool_unexport(pool);
	pthread_mutex_destroy(&pool->export.lock);
}
