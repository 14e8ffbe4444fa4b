/* SPDX-License-Identifier: MIT */
/*
 * The lock every program of this project that drives kernel KSM holds while
 * it changes /sys/kernel/mm/ksm: the knobs are the whole machine's, and two
 * programs saving and restoring them at once would leave one's values behind.
 * A flock(2) on a file, so `flock /tmp/samepage-kernel-ksm.lock CMD` from a
 * shell takes the same lock.
 */
#ifndef SP_KERNEL_KSM_LOCK_H
#define SP_KERNEL_KSM_LOCK_H

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#define KERNEL_KSM_LOCK "/tmp/samepage-kernel-ksm.lock"

/*
 * Take the lock, waiting up to wait_s seconds (< 0: as long as it takes) and
 * saying once on stderr, as who, that it waits. Returns the file descriptor,
 * to be left open: the lock goes when the process ends. -1 with errno on
 * failure (ETIMEDOUT: still held by someone else after wait_s).
 */
static inline int kernel_ksm_lock(const char *who, double wait_s)
{
	struct timespec pause = { 0, 100 * 1000 * 1000 };
	double waited = 0;
	int fd = open(KERNEL_KSM_LOCK, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0)
		return -1;
	while (flock(fd, LOCK_EX | LOCK_NB)) {
		if (errno != EWOULDBLOCK && errno != EINTR)
			goto out_close;
		if (wait_s >= 0 && waited >= wait_s) {
			errno = ETIMEDOUT;
			goto out_close;
		}
		if (waited == 0)
			fprintf(stderr,
				"%s: waiting for " KERNEL_KSM_LOCK
				" (another program drives kernel KSM)\n",
				who);
		nanosleep(&pause, NULL);
		waited += 0.1;
	}
	return fd;

out_close:
	close(fd);
	return -1;
}

#endif
