/* SPDX-License-Identifier: MIT */
/*
 * samepage stats|set|top: talk to a running pool's control socket
 * (sp_pool_export). The protocol is in src/export.c.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "cmds.h"

#define REPLY_MAX 16384

struct ctl_opts {
	const char *socket;
	int json, prometheus;
	long interval_ms, count;
};

static int ctl_connect(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	strcpy(addr.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (connect(fd, (struct sockaddr *)&addr, sizeof(addr))) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

/* Send one request line, read the reply until `end` (a full last line). */
static int ctl_request(const char *path, const char *req, const char *end, char *reply)
{
	size_t have = 0;
	int fd = ctl_connect(path);

	if (fd < 0)
		return -1;
	if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req))
		goto out_err;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 5000) <= 0) {
			errno = ETIMEDOUT;
			goto out_err;
		}
		n = recv(fd, reply + have, REPLY_MAX - 1 - have, 0);
		if (n <= 0)
			break;
		have += (size_t)n;
		reply[have] = 0;
		if (!strncmp(reply, "error ", 6) && strchr(reply, '\n'))
			break;
		if (have >= strlen(end) && !strcmp(reply + have - strlen(end), end))
			break;
		if (have == REPLY_MAX - 1)
			break;
	}
	reply[have] = 0;
	close(fd);
	return 0;

out_err:
	close(fd);
	return -1;
}

static int fail(const char *cmd, const char *what)
{
	fprintf(stderr, "samepage %s: %s: %s\n", cmd, what, strerror(errno));
	return 1;
}

/* The server said "error ERRNO message": show the message. */
static int server_error(const char *cmd, const char *reply)
{
	const char *msg = strchr(reply + 6, ' ');

	fprintf(stderr, "samepage %s: %.*s", cmd, (int)strcspn(msg ? msg + 1 : reply, "\n") + 1,
		msg ? msg + 1 : reply);
	if (!strchr(reply, '\n'))
		fputc('\n', stderr);
	return 1;
}

/* A metric name has no dots: swap.low_watermark is samepage_swap_low_watermark. */
static void print_prometheus(char *name, long v)
{
	for (char *c = name; *c; c++)
		if (*c == '.')
			*c = '_';
	printf("# TYPE samepage_%s gauge\nsamepage_%s %ld\n", name, name, v);
}

static void print_stats(const char *reply, const struct ctl_opts *o)
{
	const char *line = reply;
	bool first = true;

	if (o->json)
		printf("{");
	while (*line && strncmp(line, ".\n", 2)) {
		char name[64];
		long v;

		if (sscanf(line, "%63s %ld", name, &v) == 2) {
			if (o->json)
				printf("%s\"%s\": %ld", first ? "" : ", ", name, v);
			else if (o->prometheus)
				print_prometheus(name, v);
			else
				printf("%s %ld\n", name, v);
			first = false;
		}
		line = strchr(line, '\n');
		if (!line)
			break;
		line++;
	}
	if (o->json)
		printf("}\n");
}

static void ctl_usage(FILE *f, const char *cmd)
{
	if (!strcmp(cmd, "set"))
		fprintf(f, "usage: samepage set --socket PATH KNOB VALUE\n");
	else if (!strcmp(cmd, "top"))
		fprintf(f, "usage: samepage top --socket PATH [--interval MS] [--count N]\n");
	else
		fprintf(f, "usage: samepage stats --socket PATH [--json | --prometheus]\n");
}

/* Options common to the three; the rest of argv stays for `set`. */
static int parse(int argc, char **argv, const char *cmd, struct ctl_opts *o)
{
	static const struct option opts[] = { { "socket", required_argument, NULL, 's' },
					      { "json", no_argument, NULL, 'j' },
					      { "prometheus", no_argument, NULL, 'p' },
					      { "interval", required_argument, NULL, 'i' },
					      { "count", required_argument, NULL, 'c' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	int c;

	*o = (struct ctl_opts){ .interval_ms = 1000, .count = -1 };
	while ((c = getopt_long(argc, argv, "+", opts, NULL)) != -1) {
		char *end = NULL;

		if (c == 'h') {
			ctl_usage(stdout, cmd);
			exit(0);
		} else if (c == 's') {
			o->socket = optarg;
		} else if (c == 'j' && strcmp(cmd, "set")) {
			o->json = 1;
		} else if (c == 'p' && !strcmp(cmd, "stats")) {
			o->prometheus = 1;
		} else if (c == 'i' && !strcmp(cmd, "top")) {
			o->interval_ms = strtol(optarg, &end, 10);
			if (*end || o->interval_ms < 50 || o->interval_ms > 3600000)
				goto out_bad;
		} else if (c == 'c' && !strcmp(cmd, "top")) {
			o->count = strtol(optarg, &end, 10);
			if (*end || o->count < 1)
				goto out_bad;
		} else {
			goto out_bad;
		}
	}
	if (!o->socket || (o->json && o->prometheus)) {
		fprintf(stderr, "samepage %s: %s\n", cmd,
			o->socket ? "--json and --prometheus exclude each other" :
				    "--socket PATH is required");
		ctl_usage(stderr, cmd);
		return -1;
	}
	return 0;

out_bad:
	fprintf(stderr, "samepage %s: bad argument%s%s\n", cmd, optarg ? ": " : "",
		optarg ? optarg : "");
	ctl_usage(stderr, cmd);
	return -1;
}

int cmd_stats(int argc, char **argv)
{
	static char reply[REPLY_MAX];
	struct ctl_opts o;

	if (parse(argc, argv, "stats", &o))
		return 2;
	if (optind < argc) {
		fprintf(stderr, "samepage stats: unexpected argument: %s\n", argv[optind]);
		return 2;
	}
	if (ctl_request(o.socket, "stats\n", "\n.\n", reply))
		return fail("stats", o.socket);
	if (!strncmp(reply, "error ", 6))
		return server_error("stats", reply);
	print_stats(reply, &o);
	return 0;
}

int cmd_set(int argc, char **argv)
{
	static char reply[REPLY_MAX];
	char req[256];
	struct ctl_opts o;

	if (parse(argc, argv, "set", &o))
		return 2;
	if (argc - optind != 2) {
		ctl_usage(stderr, "set");
		return 2;
	}
	if (strlen(argv[optind]) > 63 || strpbrk(argv[optind], " \n") ||
	    strpbrk(argv[optind + 1], " \n")) {
		fprintf(stderr, "samepage set: bad knob or value\n");
		return 2;
	}
	snprintf(req, sizeof(req), "set %s %s\n", argv[optind], argv[optind + 1]);
	if (ctl_request(o.socket, req, "ok\n", reply))
		return fail("set", o.socket);
	if (!strncmp(reply, "error ", 6))
		return server_error("set", reply);
	return 0;
}

int cmd_top(int argc, char **argv)
{
	static char reply[REPLY_MAX];
	bool tty = isatty(1);
	struct ctl_opts o;

	if (parse(argc, argv, "top", &o))
		return 2;
	for (long n = 0; o.count < 0 || n < o.count; n++) {
		struct timespec ts = { o.interval_ms / 1000, (o.interval_ms % 1000) * 1000000 };

		if (n)
			nanosleep(&ts, NULL);
		if (ctl_request(o.socket, "stats\n", "\n.\n", reply))
			return fail("top", o.socket);
		if (!strncmp(reply, "error ", 6))
			return server_error("top", reply);
		if (tty)
			printf("\033[H\033[2J"); /* a live screen on a terminal, snapshots otherwise */
		printf("samepage top: %s (every %ld ms)\n", o.socket, o.interval_ms);
		print_stats(reply, &o);
		printf("\n");
		fflush(stdout);
	}
	return 0;
}
