/* SPDX-License-Identifier: MIT */
/*
 * What `samepage run` and libsamepage-preload.so agree on: the SAMEPAGE_*
 * environment variables (samepage(1) documents them) and how a size is
 * written in them. Header-only so that both sides parse alike.
 */
#ifndef SP_PRELOAD_ENV_H
#define SP_PRELOAD_ENV_H

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

#define SP_ENV_POOL_SIZE "SAMEPAGE_POOL_SIZE" /* bytes of pool arena; default 1G */
#define SP_ENV_MIN_ALLOC "SAMEPAGE_MIN_ALLOC" /* smaller requests go to glibc; default 0 */
#define SP_ENV_SWAP "SAMEPAGE_SWAP" /* swap file path */
#define SP_ENV_SWAP_SIZE "SAMEPAGE_SWAP_SIZE" /* swap bytes */
#define SP_ENV_KNOBS "SAMEPAGE_KNOBS" /* "name=value,name=value" */
#define SP_ENV_NO_KSMD "SAMEPAGE_NO_KSMD" /* "1": no scanner thread */
#define SP_ENV_SOCKET "SAMEPAGE_SOCKET" /* socket path; "" none; unset default */
#define SP_ENV_STRICT "SAMEPAGE_STRICT" /* PID that must get a pool or exit 127 */
#define SP_ENV_FAULT_MODE "SAMEPAGE_FAULT_MODE" /* "sigsegv": force that mode */
#define SP_ENV_CHILDREN "SAMEPAGE_CHILDREN" /* "1": exec'd descendants too */
#define SP_PRELOAD_NAME "libsamepage-preload.so"

#define SP_DEFAULT_POOL_SIZE (1UL << 30)

/* "123", "64K", "512M", "2G" (powers of 1024); -1 with EINVAL otherwise. */
static inline int sp_parse_size(const char *s, size_t *out)
{
	unsigned shift = 0;
	unsigned long long v;
	char *end;

	if (!s || *s < '0' || *s > '9')
		goto out_inval;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		goto out_inval;
	switch (*end) {
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	case 0:
		break;
	default:
		goto out_inval;
	}
	if (*end && end[1])
		goto out_inval;
	if (v > (SIZE_MAX >> shift))
		goto out_inval;
	*out = (size_t)v << shift;
	return 0;
out_inval:
	errno = EINVAL;
	return -1;
}

/*
 * The directory of the default control sockets: /run/samepage as root,
 * $XDG_RUNTIME_DIR/samepage otherwise, /tmp/samepage-UID without it.
 * -1 with ENAMETOOLONG if it does not fit.
 */
static inline int sp_run_dir(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;

	if (geteuid() == 0)
		n = snprintf(buf, len, "/run/samepage");
	else if (xdg && *xdg == '/')
		n = snprintf(buf, len, "%s/samepage", xdg);
	else
		n = snprintf(buf, len, "/tmp/samepage-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/* DIR/PID.sock, the socket a process under `samepage run` exports. */
static inline int sp_run_socket(pid_t pid, char *buf, size_t len)
{
	size_t n;

	if (sp_run_dir(buf, len))
		return -1;
	for (n = 0; buf[n]; n++)
		;
	if ((size_t)snprintf(buf + n, len - n, "/%d.sock", (int)pid) >= len - n) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

/*
 * Remove the sockets in dir of programs that are gone: one that left by
 * _exit() or a signal could not remove its own. A pid that is alive keeps
 * its socket, whoever it is now; a socket not named PID.sock is left alone.
 */
static inline void sp_run_sweep(const char *dir)
{
	char path[512];
	struct dirent *e;
	DIR *d = opendir(dir);

	if (!d)
		return;
	while ((e = readdir(d))) {
		char *end;
		long pid = strtol(e->d_name, &end, 10);

		if (end == e->d_name || pid <= 0 || end[0] != '.' || end[1] != 's' ||
		    end[2] != 'o' || end[3] != 'c' || end[4] != 'k' || end[5])
			continue;
		if (kill((pid_t)pid, 0) && errno == ESRCH &&
		    (size_t)snprintf(path, sizeof(path), "%s/%s", dir, e->d_name) < sizeof(path))
			unlink(path);
	}
	closedir(d);
}

#endif
