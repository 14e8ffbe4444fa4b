/* SPDX-License-Identifier: MIT */
/*
 * What every benchmark program needs: a clock, a way to stop on an error, and
 * the min/median/max of a figure over interleaved rounds.
 */
#ifndef SP_BENCH_H
#define SP_BENCH_H

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define BENCH_MAX_ROUNDS 99U

/* Seconds on the monotonic clock. */
static inline double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* "PROGRAM: what: strerror(errno)" on stderr, and exit 1. */
static inline void die(const char *what)
{
	extern char *program_invocation_short_name;

	fprintf(stderr, "%s: %s: %s\n", program_invocation_short_name, what, strerror(errno));
	exit(1);
}

/*
 * The number after option opt (arg, NULL if there was none), in [lo, hi];
 * else says so and exits 2.
 */
static inline unsigned long arg_num(const char *opt, const char *arg, unsigned long lo,
				    unsigned long hi)
{
	extern char *program_invocation_short_name;
	unsigned long v = 0;
	char *end = NULL;

	errno = 0;
	if (arg)
		v = strtoul(arg, &end, 10);
	if (!arg || *arg < '0' || *arg > '9' || errno || *end || v < lo || v > hi) {
		fprintf(stderr, "%s: %s wants a number from %lu to %lu, got '%s'\n",
			program_invocation_short_name, opt, lo, hi, arg ? arg : "");
		exit(2);
	}
	return v;
}

/* val written to a /proc, /sys or cgroup file; only system calls (signal handlers). */
static inline int write_file(const char *path, const char *val)
{
	size_t len = strlen(val);
	int fd = open(path, O_WRONLY | O_CLOEXEC), err;
	ssize_t n;

	if (fd < 0)
		return -1;
	n = write(fd, val, len);
	err = n < 0 ? errno : 0;
	if (close(fd) && !err)
		err = errno;
	if (!err && n != (ssize_t)len)
		err = EIO;
	errno = err ? err : errno;
	return err ? -1 : 0;
}

/* The first line of a small file into buf, without its newline. */
static inline int read_file(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	return 0;
}

/* Lines of a file that contain with (every line if with is NULL); -1 if unreadable. */
static inline long count_lines(const char *path, const char *with)
{
	FILE *f = fopen(path, "re");
	char line[4096]; /* longer than a line of /proc/PID/maps */
	long n = 0;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		n += !with || strstr(line, with);
	fclose(f);
	return n;
}

/* SIGINT, SIGTERM and SIGHUP to handler, which runs with every signal blocked. */
static inline void catch_exit_signals(void (*handler)(int))
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sigfillset(&sa.sa_mask);
	for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
		sigaction(sigs[i], &sa, NULL);
}

/* The end of such a handler, after undoing: say how that went and exit 128 + sig. */
static inline void exit_on_signal(int sig, int failed, const char *ok, const char *bad)
{
	const char *msg = failed ? bad : ok;
	ssize_t n = write(STDERR_FILENO, msg, strlen(msg));

	(void)n;
	_exit(128 + sig);
}

/* A figure over rounds: n of them had it (NAN: a round without it). */
struct spread {
	double min, med, max;
	unsigned n;
};

static inline int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* min, median and max of the values of v[0..n) that are not NAN. */
static inline struct spread spread_of(const double *v, unsigned n)
{
	struct spread s = { NAN, NAN, NAN, 0 };
	double tmp[BENCH_MAX_ROUNDS + 1];

	for (unsigned i = 0; i < n && s.n < BENCH_MAX_ROUNDS + 1; i++)
		if (!isnan(v[i]))
			tmp[s.n++] = v[i];
	if (!s.n)
		return s;
	qsort(tmp, s.n, sizeof(*tmp), bench_cmp_double);
	s.min = tmp[0];
	s.max = tmp[s.n - 1];
	s.med = s.n % 2 ? tmp[s.n / 2] : (tmp[s.n / 2 - 1] + tmp[s.n / 2]) / 2;
	return s;
}

static inline double median_of(const double *v, unsigned n)
{
	return spread_of(v, n).med;
}

/* a / b, or NAN when either is missing or b is not positive. */
static inline double ratio_of(double a, double b)
{
	return isnan(a) || isnan(b) || b <= 0 ? NAN : a / b;
}

/* A number for JSON: null when NAN. */
static inline void json_number(double v, const char *fmt)
{
	if (isnan(v))
		fputs("null", stdout);
	else
		printf(fmt, v);
}

/* "key": {"min": .., "median": .., "max": .., "n": ..}, or null if no round had it. */
static inline void json_spread(const char *key, struct spread s, const char *fmt)
{
	printf("\"%s\": ", key);
	if (!s.n) {
		fputs("null", stdout);
		return;
	}
	fputs("{\"min\": ", stdout);
	json_number(s.min, fmt);
	fputs(", \"median\": ", stdout);
	json_number(s.med, fmt);
	fputs(", \"max\": ", stdout);
	json_number(s.max, fmt);
	printf(", \"n\": %u}", s.n);
}

/* "1.23 [1.10 - 1.40]" into buf (width-padded median first); "-" if no round had it. */
static inline const char *spread_str(char *buf, size_t len, struct spread s, const char *fmt)
{
	char a[24], b[24], c[24];

	if (!s.n) {
		snprintf(buf, len, "-");
		return buf;
	}
	snprintf(a, sizeof(a), fmt, s.med);
	snprintf(b, sizeof(b), fmt, s.min);
	snprintf(c, sizeof(c), fmt, s.max);
	if ((size_t)snprintf(buf, len, "%s [%s - %s]", a, b, c) >= len)
		buf[len - 1] = '\0'; /* cut short, still a string */
	return buf;
}

/* The local date and time, ISO 8601 ("2026-11-26T14:03:12+0100"). */
static inline const char *iso_date(char *buf, size_t len)
{
	time_t t = time(NULL);
	struct tm tm;

	if (!localtime_r(&t, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%S%z", &tm))
		snprintf(buf, len, "unknown");
	return buf;
}

#endif
