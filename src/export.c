/* SPDX-License-Identifier: MIT */
/*
 * The control socket: a pool's /sys/kernel/mm/ksm, served over a Unix socket
 * so that `samepage stats|set|top` can look at a running program's pool.
 *
 * Protocol: one request per line (at most 255 bytes), one reply each, in the
 * order asked; a client may send several requests before it reads.
 *   stats            -> "name value" per line, every KSM knob and counter,
 *                       every pool figure and both reclaim watermarks, then
 *                       a line "."
 *   get NAME         -> "NAME value", one of the lines of stats
 *   domain N         -> "NAME value" per line, merge domain N's figures
 *                       (sp_domain_stat), then a line "."
 *   domains          -> "N NAME value" per line, the figures of every domain
 *                       sp_domain_list gives, then a line "."
 *   set KNOB VALUE   -> "ok"; a dotted knob (swap.low_watermark) is sp_tune's;
 *                       advisor_mode takes "none" and "scan-time" too
 * A request that fails gets one line "error ERRNO-NAME message" instead
 * (EINVAL for an unknown request or name, a line with a NUL byte). A line of
 * 256 bytes or more gets "error E2BIG ..." and the connection is closed. A
 * peer whose uid is neither ours nor root (SO_PEERCRED) gets "error EACCES
 * ...", and a connection over MAX_CLIENTS "error EBUSY too many connections",
 * before a byte is read; then it is closed.
 *
 * Serving: one thread per exported pool polls the listening socket, a stop
 * eventfd and every connection, all non-blocking, so that no client waits
 * for another and no call waits for a client. A connection alternates between
 * sending requests and taking replies, and has CLIENT_MS for each step: to
 * complete a request line from the moment it connected or its replies were
 * all taken, and to take the replies queued from the moment they were.
 * Requests are served while less than OUT_CAP of replies waits; past that the
 * connection is not read. A client that never reads therefore costs at most
 * OUT_CAP of memory and is closed when its CLIENT_MS runs out. When accept4
 * fails for another reason than no connection waiting (EMFILE or ENFILE at
 * the fd limit, ENOBUFS, ENOMEM), the pending connection stays queued and
 * would wake poll at once: the listening socket then rests ACCEPT_PAUSE_MS.
 * sp_pool_unexport wakes the thread through the eventfd and joins it, which
 * waits at most for the request being served (`set run 2` unmerges the whole
 * pool).
 *
 * The thread calls only sp_stat, sp_ksm_get/sp_ksm_set, sp_tune_get/sp_tune
 * and the per-domain walk (ksm_domain_all, sp_domain_stat's), and takes no
 * lock of the pool's itself: a slow or hostile client cannot stall the pool
 * (the pool waits only for the walks asked for, some 14 ms per million
 * pages under the KSM mutex), nor the other clients.
 *
 * The socket file: mode 0600 from its creation without touching the umask,
 * which is the whole process's: Linux creates the inode bind() makes with the
 * socket's own mode less the umask, so the socket is fchmod-ed before bind
 * (a umask that clears the owner's bits narrows it, nothing widens it).
 * No path is chmod-ed (chmod after bind follows a symlink swapped in
 * meanwhile). A relative path is made absolute against the working directory
 * of the call, and unexport removes what is at that path only if it is still
 * the inode bind() made (lstat, same device and inode): anything else there
 * stays, with one log line.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "pool.h"

#define LINE_MAX_BYTES 256
#define MAX_CLIENTS 64
#define CLIENT_MS 2000
#define OUT_CAP (64 << 10)
#define ACCEPT_PAUSE_MS 100
#define ACCEPTS_PER_WAKE 16 /* then the clients get their turn */

struct client {
	int fd;
	bool drop; /* close it now */
	bool hangup; /* close it once its replies are taken */
	long deadline; /* ms: closed if the current step is not done by then */
	size_t in_len;
	char *out; /* replies not yet taken: [out_sent, out_len) */
	size_t out_len, out_sent, out_size;
	char in[LINE_MAX_BYTES];
};

struct export_srv {
	struct sp_pool *pool;
	int fd, stopfd;
	char *path; /* absolute */
	dev_t dev; /* of the inode bind() made */
	ino_t ino;
	pthread_t thread;
	long accept_at; /* ms: the listening socket rests until then */
	bool accept_logged; /* a failing accept4 was logged, none succeeded since */
	unsigned nr;
	struct client client[MAX_CLIENTS];
};

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

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

/* Queue bytes for the client; out of memory, it is dropped. */
static void out_add(struct client *c, const char *buf, size_t len)
{
	if (c->out_len + len > c->out_size) {
		size_t size = c->out_size ? c->out_size : 4096;
		char *p;

		while (size < c->out_len + len)
			size *= 2;
		p = realloc(c->out, size);
		if (!p) {
			c->drop = true;
			return;
		}
		c->out = p;
		c->out_size = size;
	}
	memcpy(c->out + c->out_len, buf, len);
	c->out_len += len;
}

static void __attribute__((format(printf, 2, 3))) out_fmt(struct client *c, const char *fmt, ...)
{
	char line[192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n >= (int)sizeof(line)) { /* cut, but still a line */
		n = sizeof(line) - 1;
		line[n - 1] = '\n';
	}
	if (n > 0)
		out_add(c, line, (size_t)n);
}

static void reply_error(struct client *c, int e, const char *what)
{
	out_fmt(c, "error %s %s\n", err_name(e), what);
}

static void reply_stats(struct sp_pool *pool, struct client *c)
{
	const char *name;
	long v;

	for (unsigned i = 0; (name = sp_ksm_name(i)); i++)
		if (!sp_ksm_get(pool, name, &v))
			out_fmt(c, "%s %ld\n", name, v);
	for (unsigned i = 0; (name = sp_stat_name(i)); i++)
		if (!sp_stat(pool, name, &v))
			out_fmt(c, "%s %ld\n", name, v);
	for (unsigned i = 0; i < 2; i++) {
		name = i ? "swap.high_watermark" : "swap.low_watermark";
		if (!sp_tune_get(pool, name, &v))
			out_fmt(c, "%s %ld\n", name, v);
	}
	out_add(c, ".\n", 2);
}

/* Dotted names (swap.low_watermark) are sp_tune's; the rest are KSM's or figures. */
static void handle_get(struct sp_pool *pool, struct client *c, char *args)
{
	char name[64], extra;
	long v;
	int err;

	if (sscanf(args, "%63s %c", name, &extra) != 1)
		return reply_error(c, EINVAL, "usage: get NAME");
	if (strchr(name, '.'))
		err = sp_tune_get(pool, name, &v);
	else
		err = sp_ksm_get(pool, name, &v) && sp_stat(pool, name, &v);
	if (err)
		return reply_error(c, errno, errno == EINVAL ? "no such name" : strerror(errno));
	out_fmt(c, "%s %ld\n", name, v);
}

/* advisor_mode also takes the kernel's words, as its sysfs file does. */
static bool knob_word(const char *knob, const char *word, long *value)
{
	if (strcmp(knob, "advisor_mode") && strcmp(knob, "ksm.advisor_mode"))
		return false;
	if (!strcmp(word, "none"))
		*value = SP_KSM_ADVISOR_NONE;
	else if (!strcmp(word, "scan-time"))
		*value = SP_KSM_ADVISOR_SCAN_TIME;
	else
		return false;
	return true;
}

static void handle_domain(struct sp_pool *pool, struct client *c, char *args)
{
	char extra;
	unsigned long d;
	long v[DOM_NR];

	if (sscanf(args, "%lu %c", &d, &extra) != 1 || d > UINT_MAX || *args == '-')
		return reply_error(c, EINVAL, "usage: domain N (0..4294967295)");
	ksm_domain_figures(pool, (unsigned)d, v);
	for (unsigned i = 0; i < DOM_NR; i++)
		out_fmt(c, "%s %ld\n", sp_domain_stat_name(i), v[i]);
	out_add(c, ".\n", 2);
}

static void reply_domains(struct sp_pool *pool, struct client *c)
{
	size_t nr;
	struct ksm_domain_fig *all = ksm_domain_all(pool, &nr);

	if (!all)
		return reply_error(c, errno, strerror(errno));
	for (size_t k = 0; k < nr; k++)
		for (unsigned i = 0; i < DOM_NR; i++)
			out_fmt(c, "%u %s %ld\n", all[k].domain, sp_domain_stat_name(i),
				all[k].v[i]);
	free(all);
	out_add(c, ".\n", 2);
}

static void handle_set(struct sp_pool *pool, struct client *c, char *args)
{
	char knob[64], word[64], extra;
	long value;

	if (sscanf(args, "%63s %63s %c", knob, word, &extra) == 2 && knob_word(knob, word, &value))
		;
	else if (sscanf(args, "%63s %ld %c", knob, &value, &extra) != 2)
		return reply_error(c, EINVAL, "usage: set KNOB VALUE");
	if (strchr(knob, '.') ? sp_tune(pool, knob, value) : sp_ksm_set(pool, knob, value))
		return reply_error(c, errno, strerror(errno));
	out_add(c, "ok\n", 3);
}

static void handle_line(struct sp_pool *pool, struct client *c, char *line)
{
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\r' || line[n - 1] == ' '))
		line[--n] = 0;
	if (!strcmp(line, "stats"))
		reply_stats(pool, c);
	else if (!strncmp(line, "get ", 4))
		handle_get(pool, c, line + 4);
	else if (!strncmp(line, "set ", 4))
		handle_set(pool, c, line + 4);
	else if (!strncmp(line, "domain ", 7))
		handle_domain(pool, c, line + 7);
	else if (!strcmp(line, "domains"))
		reply_domains(pool, c);
	else
		reply_error(c, EINVAL,
			    "unknown request (stats, get NAME, set KNOB VALUE, domain N, domains)");
}

/* Serve the complete lines the client sent, while its replies fit. */
static void serve_lines(struct sp_pool *pool, struct client *c)
{
	char *nl;

	while (!c->drop && !c->hangup && c->out_len < OUT_CAP &&
	       (nl = memchr(c->in, '\n', c->in_len))) {
		*nl = 0;
		if (memchr(c->in, 0, (size_t)(nl - c->in)))
			reply_error(c, EINVAL, "binary request");
		else
			handle_line(pool, c, c->in);
		c->in_len -= (size_t)(nl + 1 - c->in);
		memmove(c->in, nl + 1, c->in_len);
	}
	if (c->in_len == sizeof(c->in) - 1 && !memchr(c->in, '\n', c->in_len)) {
		reply_error(c, E2BIG, "request line too long");
		c->hangup = true;
	}
}

/* Send what the socket takes; all taken, the client is back to asking. */
static void client_send(struct client *c, long now)
{
	while (c->out_sent < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_sent, c->out_len - c->out_sent,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				c->drop = true;
			if (errno != EINTR)
				return;
			continue;
		}
		c->out_sent += (size_t)n;
	}
	c->out_len = c->out_sent = 0;
	c->deadline = now + CLIENT_MS;
	if (c->hangup)
		c->drop = true;
}

static void client_recv(struct client *c)
{
	ssize_t n = recv(c->fd, c->in + c->in_len, sizeof(c->in) - 1 - c->in_len, MSG_DONTWAIT);

	if (n > 0)
		c->in_len += (size_t)n;
	else if (!n || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR))
		c->drop = true; /* gone; it has no reply waiting (it was asking) */
}

/* One poll result for a client: take its bytes or send it its replies, serve. */
static void client_event(struct sp_pool *pool, struct client *c, short revents, long now)
{
	if (c->out_len) {
		if (revents)
			client_send(c, now);
	} else if (revents) {
		client_recv(c);
	}
	while (!c->drop && !c->out_len) {
		serve_lines(pool, c);
		if (!c->out_len)
			break;
		c->deadline = now + CLIENT_MS; /* time to take these replies */
		client_send(c, now);
	}
}

static void client_close(struct export_srv *s, unsigned i)
{
	close(s->client[i].fd);
	free(s->client[i].out);
	s->client[i] = s->client[--s->nr];
}

static bool peer_allowed(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len))
		return false;
	return cred.uid == 0 || cred.uid == geteuid();
}

/* One line to a connection not served, then close: its buffer is empty. */
static void refuse(int fd, int e, const char *what)
{
	char line[96];
	int n = snprintf(line, sizeof(line), "error %s %s\n", err_name(e), what);

	send(fd, line, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT); /* gone already: no matter */
	close(fd);
}

static void accept_some(struct export_srv *s, long now)
{
	for (unsigned k = 0; k < ACCEPTS_PER_WAKE; k++) {
		int fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			/* Out of fds or memory: the connection stays queued. */
			if (!s->accept_logged)
				sp_log(SP_LOG_WARN,
				       "control socket %s: accept: %s; retrying every %d ms",
				       s->path, strerror(errno), ACCEPT_PAUSE_MS);
			s->accept_logged = true;
			s->accept_at = now + ACCEPT_PAUSE_MS;
			return;
		}
		s->accept_logged = false;
		if (!peer_allowed(fd)) {
			refuse(fd, EACCES, "not the pool owner's uid");
		} else if (s->nr == MAX_CLIENTS) {
			refuse(fd, EBUSY, "too many connections");
		} else {
			s->client[s->nr++] =
				(struct client){ .fd = fd, .deadline = now + CLIENT_MS };
		}
	}
}

static void *export_thread(void *arg)
{
	struct export_srv *s = arg;
	struct pollfd p[2 + MAX_CLIENTS];

	for (;;) {
		long now = now_ms(), timeout = -1;
		unsigned nr;

		for (unsigned i = s->nr; i--;) /* downwards: closing moves the last one in */
			if (s->client[i].deadline <= now)
				client_close(s, i);
		p[0] = (struct pollfd){ .fd = s->stopfd, .events = POLLIN };
		p[1] = (struct pollfd){ .fd = s->fd, .events = POLLIN };
		if (s->accept_at > now) {
			p[1].fd = -1;
			timeout = s->accept_at - now;
		}
		nr = s->nr;
		for (unsigned i = 0; i < nr; i++) {
			struct client *c = &s->client[i];

			p[2 + i] = (struct pollfd){ .fd = c->fd,
						    .events = c->out_len ? POLLOUT : POLLIN };
			if (timeout < 0 || c->deadline - now < timeout)
				timeout = c->deadline - now;
		}
		if (poll(p, 2 + nr, (int)timeout) < 0)
			continue;
		if (p[0].revents)
			break;
		now = now_ms();
		for (unsigned i = nr; i--;) {
			client_event(s->pool, &s->client[i], p[2 + i].revents, now);
			if (s->client[i].drop)
				client_close(s, i);
		}
		if (p[1].revents)
			accept_some(s, now);
	}
	while (s->nr)
		client_close(s, s->nr - 1);
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
	/* Non-blocking: a live server with a full backlog says EAGAIN, not wait. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	ret = connect(fd, (const struct sockaddr *)addr, sizeof(*addr));
	if (ret)
		ret = errno == EAGAIN ? 0 : -1;
	close(fd);
	if (!ret) {
		errno = EADDRINUSE; /* someone serves it */
		return -1;
	}
	return unlink(path);
}

/* Remove the socket file, if what is at the path is still the one bind() made. */
static void unlink_own(struct export_srv *s)
{
	struct stat st;

	if (lstat(s->path, &st))
		return;
	if (st.st_dev != s->dev || st.st_ino != s->ino) {
		sp_log(SP_LOG_WARN, "control socket %s was replaced by another file: left in place",
		       s->path);
		return;
	}
	unlink(s->path);
}

static char *absolute(const char *path)
{
	char *cwd, *abs;

	if (path[0] == '/')
		return strdup(path);
	cwd = getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	if (asprintf(&abs, "%s/%s", cwd, path) < 0)
		abs = NULL;
	free(cwd);
	return abs;
}

/*
 * Bind and listen at path, 0600 from the start (see the top), and note the
 * inode made. Between bind and lstat someone able to write the directory
 * could swap the file: what lstat finds is then not a socket of our uid
 * (unless it moved another of ours there), and the export fails without
 * removing it.
 */
static int export_listen(struct export_srv *s, const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	struct stat st;
	int err;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	if (clear_stale(path, &addr))
		return -1;
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		return -1;
	if (fchmod(s->fd, 0600) || bind(s->fd, (struct sockaddr *)&addr, sizeof(addr)))
		goto out_close;
	if (lstat(s->path, &st))
		goto out_close;
	if (!S_ISSOCK(st.st_mode) || st.st_uid != geteuid()) {
		errno = EEXIST;
		goto out_close;
	}
	s->dev = st.st_dev;
	s->ino = st.st_ino;
	if (listen(s->fd, SOMAXCONN)) {
		err = errno;
		unlink_own(s);
		errno = err;
		goto out_close;
	}
	return 0;

out_close:
	err = errno;
	close(s->fd);
	s->fd = -1;
	errno = err;
	return -1;
}

static void srv_free(struct export_srv *s)
{
	if (s->fd >= 0) {
		unlink_own(s);
		close(s->fd);
	}
	if (s->stopfd >= 0)
		close(s->stopfd);
	free(s->path);
	free(s);
}

int sp_pool_export(sp_pool *pool, const char *path)
{
	struct sp_export *x;
	struct export_srv *s;
	int err;

	if (!pool || !path || !*path) {
		errno = EINVAL;
		return -1;
	}
	x = &pool->export;
	mutex_lock(&x->lock);
	if (x->srv) {
		err = EBUSY; /* exported already */
		goto out_unlock;
	}
	s = malloc(sizeof(*s));
	if (!s) {
		err = ENOMEM;
		goto out_unlock;
	}
	*s = (struct export_srv){ .pool = pool, .fd = -1, .stopfd = -1, .path = absolute(path) };
	if (!s->path || export_listen(s, path))
		goto out_free;
	s->stopfd = eventfd(0, EFD_CLOEXEC);
	if (s->stopfd < 0)
		goto out_free;
	err = pthread_create(&s->thread, NULL, export_thread, s);
	if (err) {
		errno = err;
		goto out_free;
	}
	x->srv = s;
	mutex_unlock(&x->lock);
	return 0;

out_free:
	err = errno;
	srv_free(s);
out_unlock:
	mutex_unlock(&x->lock);
	errno = err;
	return -1;
}

int sp_pool_unexport(sp_pool *pool)
{
	struct export_srv *s;
	uint64_t one = 1;

	if (!pool) {
		errno = EINVAL;
		return -1;
	}
	mutex_lock(&pool->export.lock);
	s = pool->export.srv;
	if (!s) {
		mutex_unlock(&pool->export.lock);
		errno = EINVAL;
		return -1;
	}
	if (write(s->stopfd, &one, sizeof(one)) != sizeof(one))
		sp_log(SP_LOG_ERR, "stopping the control socket: %s", strerror(errno));
	pthread_join(s->thread, NULL);
	srv_free(s);
	pool->export.srv = NULL;
	mutex_unlock(&pool->export.lock);
	return 0;
}

void export_init(struct sp_pool *pool)
{
	mutex_init(&pool->export.lock, LOCK_EXPORT);
	pool->export.srv = NULL;
}

void export_exit(struct sp_pool *pool)
{
	if (pool->export.srv)
		sp_pool_unexport(pool);
	mutex_destroy(&pool->export.lock);
}
