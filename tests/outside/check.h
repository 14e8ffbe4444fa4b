/* SPDX-License-Identifier: MIT */
/*
 * What the outside-user programs share: TAP-like reporting and the calls
 * they check with. Only libc and <samepage.h>, as an outside user has.
 */
#ifndef SP_OUTSIDE_CHECK_H
#define SP_OUTSIDE_CHECK_H

#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <unistd.h>

#include <samepage.h>

static unsigned nr_checks, nr_failed;

static inline const char *errname(int e)
{
	static char buf[16];

	switch (e) {
	case 0:
		return "0";
	case EINVAL:
		return "EINVAL";
	case ENOMEM:
		return "ENOMEM";
	case EPERM:
		return "EPERM";
	case ENOSYS:
		return "ENOSYS";
	case EBUSY:
		return "EBUSY";
	case ENOENT:
		return "ENOENT";
	case EIO:
		return "EIO";
	case EFAULT:
		return "EFAULT";
	}
	snprintf(buf, sizeof(buf), "%d", e);
	return buf;
}

__attribute__((format(printf, 4, 5))) static inline bool report(bool pass, long got, int err,
								const char *fmt, ...)
{
	char desc[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(desc, sizeof(desc), fmt, ap);
	va_end(ap);
	nr_checks++;
	if (pass) {
		printf("ok %u - %s\n", nr_checks, desc);
	} else {
		nr_failed++;
		printf("not ok %u - %s (details: got %ld, errno %s)\n", nr_checks, desc, got,
		       errname(err));
	}
	fflush(stdout);
	return pass;
}

/* Run call, then then with its result in rc_ and the errno it left in e_. */
#define WITH_CALL(call, then)       \
	do {                        \
		long rc_;           \
		int e_;             \
		errno = 0;          \
		rc_ = (long)(call); \
		e_ = errno;         \
		then;               \
	} while (0)

/* The call must return -1 with errno want. errno is read right after it. */
#define EXPECT_ERR(call, want, ...) \
	WITH_CALL(call, report(rc_ == -1 && e_ == (want), rc_, e_, __VA_ARGS__))

/* The call must return 0. */
#define EXPECT_OK(call, ...) WITH_CALL(call, report(rc_ == 0, rc_, e_, __VA_ARGS__))

static inline long stat_of(sp_pool *pool, const char *name)
{
	long v = -1;

	if (sp_stat(pool, name, &v))
		return -1;
	return v;
}

static inline long ksm_of(sp_pool *pool, const char *name)
{
	long v = -1;

	if (sp_ksm_get(pool, name, &v))
		return -1;
	return v;
}

/* read(2) until len bytes or the end: how many it got, or -1. */
static inline ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, (char *)buf + done, len - done);

		if (n <= 0)
			return n < 0 ? -1 : (ssize_t)done;
		done += (size_t)n;
	}
	return (ssize_t)done;
}

#endif
