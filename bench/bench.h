/* SPDX-License-Identifier: MIT */
/*
 * What every benchmark program needs: a clock, a way to stop on an error, and
 * the min/median/max of a figure over interleaved rounds.
 */
#ifndef SP_BENCH_H
#define SP_BENCH_H

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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
