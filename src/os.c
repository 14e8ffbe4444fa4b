/* SPDX-License-Identifier: MIT */
/*
 * The OS layer on Linux: every system call samepage makes about memory.
 * Contracts are in os.h. Nothing here logs or takes a lock of ours; errno is
 * the kernel's unless a contract says otherwise.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/futex.h>
#include <numa.h>
#include <numaif.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "os.h"

/*
 * ThreadSanitizer models mmap() as a write to the whole range, and cannot see
 * that a writer of the page is held in the kernel (userfaultfd or SIGSEGV)
 * until the window closes after the remap: a happens-before edge it misses.
 * Inside an ignore section its mmap interceptor resets the range instead.
 */
#if defined(__SANITIZE_THREAD__)
void AnnotateIgnoreWritesBegin(const char *file, int line);
void AnnotateIgnoreWritesEnd(const char *file, int line);
#define remap_begin() AnnotateIgnoreWritesBegin(__FILE__, __LINE__)
#define remap_end() AnnotateIgnoreWritesEnd(__FILE__, __LINE__)
#else
#define remap_begin() ((void)0)
#define remap_end() ((void)0)
#endif

/* ---- the one place a mapping is made ---------------------------------- */

/*
 * What map_install makes: a new mapping (at addr with MAP_FIXED, or
 * anywhere when addr is NULL), or, when from is set, the mapping at from
 * moved over addr (mremap: it replaces what was there, under the mmap lock).
 */
struct map_req {
	void *addr;
	size_t len;
	int prot, flags, fd;
	off_t off;
	void *from;
};

/*
 * Every mapping of os.c comes from here (see os.h): the mapping budget
 * counts here. The mapping's address, or NULL with errno.
 */
static void *map_install(const struct map_req *m)
{
	bool over = m->addr != NULL; /* replacing what the program may be touching */
	void *p;

	if (over)
		remap_begin();
	if (m->from)
		p = mremap(m->from, m->len, m->len, MREMAP_MAYMOVE | MREMAP_FIXED, m->addr);
	else
		p = mmap(m->addr, m->len, m->prot, m->flags | (over ? MAP_FIXED : 0), m->fd,
			 m->off);
	if (over)
		remap_end();
	return p == MAP_FAILED ? NULL : p;
}

int os_unmap(void *addr, size_t len)
{
	return munmap(addr, len);
}

/* ---- the memfd -------------------------------------------------------- */

int os_memfd_create(const char *name, size_t size)
{
	int fd = memfd_create(name, MFD_CLOEXEC);

	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size)) {
		int err = errno;

		close(fd);
		errno = err;
		return -1;
	}
	return fd;
}

int os_memfd_punch(int fd, off_t off, size_t len)
{
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)len);
}

int os_memfd_fill(int fd, off_t off, const void *buf, size_t len)
{
	return os_file_write(fd, buf, len, off);
}

void os_memfd_copy(int fd, char *map, off_t from, off_t to, size_t len)
{
	loff_t in = from, out = to;
	size_t left = len;

	while (left) {
		ssize_t got = copy_file_range(fd, &in, fd, &out, left, 0);

		if (got <= 0)
			break;
		left -= (size_t)got;
	}
	if (left) /* no copy_file_range here: through the mapping */
		memcpy(map + to + (len - left), map + from + (len - left), left);
}

long os_memfd_resident(int fd)
{
	struct stat st;

	if (fstat(fd, &st))
		return -1;
	return (long)st.st_blocks * 512;
}

bool os_memfd_is_hole(int fd, off_t off)
{
	off_t data = lseek(fd, off, SEEK_DATA);

	return data != off && (data > off || errno == ENXIO);
}

int os_memfd_bind(void *addr, size_t len, int node)
{
	unsigned long mask = 1ul << node;

	if (node < 0 || node >= (int)(sizeof(mask) * 8)) {
		errno = EINVAL;
		return -1;
	}
	return (int)mbind(addr, len, MPOL_BIND, &mask, sizeof(mask) * 8, 0);
}

int os_nr_nodes(void)
{
	if (numa_available() < 0)
		return 1;
	return numa_num_configured_nodes() > 0 ? numa_num_configured_nodes() : 1;
}

/* ---- files ------------------------------------------------------------ */

int os_file_read(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n = pread(fd, buf, len, off);

	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		errno = EIO;
	return -1;
}

int os_file_write(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	if (n == (ssize_t)len)
		return 0;
	if (n >= 0)
		errno = EIO;
	return -1;
}

int os_file_copy(int fd, off_t from, off_t to, size_t len)
{
	loff_t in = from, out = to;
	ssize_t n = copy_file_range(fd, &in, fd, &out, len, 0);

	if (n == (ssize_t)len)
		return 0;
	errno = EIO;
	return -1;
}

int os_file_allocate(int fd, size_t len)
{
	if (!fallocate(fd, 0, 0, (off_t)len))
		return 0;
	if (errno != EOPNOTSUPP)
		return -1;
	return ftruncate(fd, (off_t)len);
}

/* ---- address space ---------------------------------------------------- */

void *os_reserve(size_t len)
{
	struct map_req m = { .len = len,
			     .prot = PROT_NONE,
			     .flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			     .fd = -1 };

	return map_install(&m);
}

void *os_memfd_map(int fd, size_t len)
{
	struct map_req m = { .len = len,
			     .prot = PROT_READ | PROT_WRITE,
			     .flags = MAP_SHARED | MAP_NORESERVE,
			     .fd = fd };
	void *p = map_install(&m);

	/* A child must not inherit a writable view of every frame. */
	if (p && os_dontfork(p, len)) {
		int err = errno;

		os_unmap(p, len);
		errno = err;
		return NULL;
	}
	return p;
}

int os_map_frames(void *addr, size_t len, int fd, off_t off, bool shared)
{
	struct map_req m = { .addr = addr,
			     .len = len,
			     .prot = PROT_READ | PROT_WRITE,
			     .flags = shared ? MAP_SHARED : MAP_PRIVATE,
			     .fd = fd,
			     .off = off };

	return map_install(&m) ? 0 : -1;
}

int os_map_zero(void *addr, size_t len)
{
	struct map_req m = { .addr = addr,
			     .len = len,
			     .prot = PROT_READ | PROT_WRITE,
			     .flags = MAP_PRIVATE | MAP_ANONYMOUS,
			     .fd = -1 };

	return map_install(&m) ? 0 : -1;
}

int os_map_none(void *addr, size_t len)
{
	struct map_req m = { .addr = addr,
			     .len = len,
			     .prot = PROT_NONE,
			     .flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
			     .fd = -1 };

	return map_install(&m) ? 0 : -1;
}

int os_map_missing(int uffd, void *addr, size_t len)
{
	struct map_req scratch = { .len = len,
				   .prot = PROT_READ | PROT_WRITE,
				   .flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
				   .fd = -1 };
	struct map_req move = { .addr = addr, .len = len };
	int err;

	move.from = map_install(&scratch);
	if (!move.from)
		return -1;
	if (os_dontfork(move.from, len) || os_uffd_register(uffd, move.from, len, true))
		goto out_unmap;
	if (map_install(&move))
		return 0;
out_unmap:
	err = errno;
	os_unmap(move.from, len);
	errno = err;
	return -1;
}

int os_dontfork(void *addr, size_t len)
{
	return madvise(addr, len, MADV_DONTFORK);
}

int os_populate(void *addr, size_t len, bool write)
{
	return madvise(addr, len, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}

int os_dontneed(void *addr, size_t len)
{
	return madvise(addr, len, MADV_DONTNEED);
}

void os_dontneed_batch(int pidfd, const struct iovec *iov, unsigned n)
{
	if (!n ||
	    (pidfd >= 0 && syscall(SYS_process_madvise, pidfd, iov, n, MADV_DONTNEED, 0) >= 0))
		return;
	for (unsigned i = 0; i < n; i++)
		os_dontneed(iov[i].iov_base, iov[i].iov_len);
}

int os_mincore(const void *addr, size_t len, unsigned char *vec)
{
	return mincore((void *)addr, len, vec);
}

bool os_all_mapped(const void *addr, size_t len)
{
	const size_t step = 512 * PAGE_SIZE;
	unsigned char vec[512];

	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;

		if (os_mincore((const char *)addr + off, n, vec) && errno == ENOMEM)
			return false;
	}
	return true;
}

int os_protect(void *addr, size_t len, bool writable)
{
	int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;

	if (!mprotect(addr, len, prot))
		return 0;
	if (errno != ENOMEM)
		return -1;
	for (size_t off = 0; off < len; off += PAGE_SIZE)
		if (mprotect((char *)addr + off, PAGE_SIZE, prot) && errno != ENOMEM)
			return -1;
	return 0;
}

/* ---- userfaultfd ------------------------------------------------------ */

int os_uffd_open(void)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	int dev;

	if (fd >= 0 || errno != EPERM)
		return fd;
	/* Unprivileged userfaultfd is off; the device may still be allowed. */
	dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
	if (dev < 0) {
		errno = EPERM;
		return -1;
	}
	fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
	close(dev);
	return fd;
}

int os_uffd_api(int uffd, uint64_t *features)
{
	struct uffdio_api api = { .api = UFFD_API, .features = *features };

	if (ioctl(uffd, UFFDIO_API, &api))
		return -1;
	*features = api.features;
	return 0;
}

int os_uffd_probe(uint64_t *features)
{
	int fd = os_uffd_open(), ret, err;

	if (fd < 0)
		return -1;
	*features = 0;
	ret = os_uffd_api(fd, features);
	err = errno;
	close(fd);
	errno = err;
	return ret;
}

int os_uffd_register(int uffd, void *addr, size_t len, bool missing)
{
	struct uffdio_register reg = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = UFFDIO_REGISTER_MODE_WP | (missing ? UFFDIO_REGISTER_MODE_MISSING : 0),
	};

	return ioctl(uffd, UFFDIO_REGISTER, &reg);
}

/* A userfaultfd ioctl, again while a remap event is being read (EAGAIN). */
static int uffd_ioctl(int uffd, unsigned long req, void *arg)
{
	int ret;

	while ((ret = ioctl(uffd, req, arg)) && errno == EAGAIN)
		sched_yield();
	return ret;
}

/*
 * Lifting write-protection stops at the first vma that is not registered (a
 * page another thread has just remapped, and registers next), and leaves the
 * pages after it protected with no window left to open them: writers there
 * would fault for ever. Such a vma is a new mapping and protects nothing:
 * page by page, everything else is unprotected, and it is stepped over.
 */
static int uffd_unprotect_registered(int uffd, void *addr, size_t len)
{
	for (size_t off = 0; off < len; off += PAGE_SIZE) {
		struct uffdio_writeprotect prm = {
			.range = { .start = (uintptr_t)addr + off, .len = PAGE_SIZE },
		};

		if (uffd_ioctl(uffd, UFFDIO_WRITEPROTECT, &prm) && errno != ENOENT)
			return -1;
	}
	return 0;
}

int os_uffd_wp(int uffd, void *addr, size_t len, bool wp)
{
	struct uffdio_writeprotect prm = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};

	for (int tries = 0; tries < 1000;) {
		if (!uffd_ioctl(uffd, UFFDIO_WRITEPROTECT, &prm))
			return 0;
		if (errno != ENOENT)
			return -1;
		if (!wp)
			return uffd_unprotect_registered(uffd, addr, len);
		tries++;
		sched_yield();
	}
	return -1;
}

void os_uffd_wake(int uffd, void *addr, size_t len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	ioctl(uffd, UFFDIO_WAKE, &r);
}

int os_uffd_zeropage(int uffd, void *addr, size_t len)
{
	struct uffdio_zeropage zero = { .range = { .start = (uintptr_t)addr, .len = len } };

	return uffd_ioctl(uffd, UFFDIO_ZEROPAGE, &zero);
}

int os_uffd_poison(int uffd, void *addr, size_t len)
{
	struct uffdio_poison poison = { .range = { .start = (uintptr_t)addr, .len = len } };

	return uffd_ioctl(uffd, UFFDIO_POISON, &poison);
}

int os_uffd_copy(int uffd, void *dst, const void *src, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_copy c = { .dst = (uintptr_t)dst + done,
					 .src = (uintptr_t)src + done,
					 .len = len - done };

		if (!ioctl(uffd, UFFDIO_COPY, &c))
			return 0;
		if (errno != EAGAIN)
			return -1;
		/* Cut short by a remap event being read: go on from where it stopped. */
		if (c.copy > 0)
			done += (size_t)c.copy;
		else
			sched_yield();
	}
	return 0;
}

int os_uffd_read(int uffd, struct os_fault *out, unsigned max)
{
	struct uffd_msg msg[16];
	ssize_t n;
	int got = 0;

	if (max > 16)
		max = 16;
	n = read(uffd, msg, max * sizeof(msg[0]));
	if (n < 0)
		return -1;
	for (size_t i = 0; i < (size_t)n / sizeof(msg[0]); i++) {
		if (msg[i].event != UFFD_EVENT_PAGEFAULT)
			continue;
		out[got++] = (struct os_fault){
			.addr = (uintptr_t)msg[i].arg.pagefault.address &
				~(uintptr_t)(PAGE_SIZE - 1),
			.tid = (pid_t)msg[i].arg.pagefault.feat.ptid,
			.wp = msg[i].arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP,
		};
	}
	return got;
}

/* ---- pagemap ---------------------------------------------------------- */

int os_pagemap_open(void)
{
	return open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

void os_pagemap_read(int fd, const void *addr, unsigned long n, uint64_t *pm)
{
	off_t off = (off_t)((uintptr_t)addr >> PAGE_SHIFT) * 8;

	if (fd < 0 || os_file_read(fd, pm, n * 8, off))
		memset(pm, 0, n * 8);
}

/* ---- threads and the process ------------------------------------------ */

void os_futex_wait(_Atomic uint32_t *word, uint32_t val)
{
	syscall(SYS_futex, word, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

void os_futex_wake(_Atomic uint32_t *word, int n)
{
	syscall(SYS_futex, word, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
}

int os_tgkill(pid_t tid, int sig)
{
	return (int)syscall(SYS_tgkill, getpid(), tid, sig);
}

int os_pidfd_open(void)
{
	return (int)syscall(SYS_pidfd_open, getpid(), 0);
}

long os_max_map_count(void)
{
	long v = -1;
	FILE *f = fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}
