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
#include <stdlib.h>
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

/* ---- fault injection (os.h) -------------------------------------------- */

struct fail_point {
	const char *name;
	int errs[6]; /* what its kernel call can return: errs[0] by default; 0 ends */
	_Atomic bool on;
	_Atomic unsigned long nth, every, times, calls, injected;
	_Atomic int err;
};

static struct fail_point points[OS_FAIL_NR] = {
	[OS_FAIL_MEMFD_CREATE] = { "memfd_create", { ENOMEM, EMFILE, ENFILE } },
	[OS_FAIL_MEMFD_PUNCH] = { "punch", { EINTR, EIO } },
	[OS_FAIL_MEMFD_FILL] = { "fill", { ENOSPC, ENOMEM, EINTR, EIO } },
	[OS_FAIL_MEMFD_COPY] = { "memfd_copy", { EIO, EINTR } },
	[OS_FAIL_MEMFD_RESIDENT] = { "resident", { ENOMEM, EOVERFLOW } },
	[OS_FAIL_MEMFD_IS_HOLE] = { "is_hole", { EINVAL } },
	[OS_FAIL_MEMFD_BIND] = { "bind", { ENOMEM, EIO } },
	[OS_FAIL_FILE_READ] = { "file_read", { EIO, EINTR } },
	[OS_FAIL_FILE_WRITE] = { "file_write", { EIO, ENOSPC, EINTR } },
	[OS_FAIL_FILE_COPY] = { "file_copy", { EIO } },
	[OS_FAIL_FILE_ALLOCATE] = { "file_allocate", { ENOSPC, EIO, EINTR } },
	[OS_FAIL_RESERVE] = { "reserve", { ENOMEM } },
	[OS_FAIL_MEMFD_MAP] = { "memfd_map", { ENOMEM } },
	[OS_FAIL_MAP_FRAMES] = { "map_frames", { ENOMEM } },
	[OS_FAIL_MAP_ZERO] = { "map_zero", { ENOMEM } },
	[OS_FAIL_MAP_MISSING] = { "map_missing", { ENOMEM } },
	[OS_FAIL_UNMAP] = { "unmap", { ENOMEM } },
	[OS_FAIL_DONTFORK] = { "dontfork", { ENOMEM, EAGAIN } },
	[OS_FAIL_POPULATE] = { "populate", { ENOMEM, EFAULT, EINTR } },
	[OS_FAIL_DONTNEED] = { "dontneed", { EAGAIN } },
	[OS_FAIL_DONTNEED_BATCH] = { "dontneed_batch", { ENOMEM, EINVAL } },
	[OS_FAIL_MINCORE] = { "mincore", { EAGAIN } },
	[OS_FAIL_PROTECT] = { "protect", { ENOMEM } },
	[OS_FAIL_UFFD_OPEN] = { "uffd_open", { EMFILE, ENFILE, ENOMEM } },
	[OS_FAIL_UFFD_API] = { "uffd_api", { EINVAL } },
	[OS_FAIL_UFFD_REGISTER] = { "uffd_register", { ENOMEM, EBUSY } },
	[OS_FAIL_UFFD_WP] = { "uffd_wp", { ENOENT, EAGAIN, ENOMEM } },
	[OS_FAIL_UFFD_ZEROPAGE] = { "uffd_zeropage", { ENOMEM, EAGAIN, EEXIST, ENOENT } },
	[OS_FAIL_UFFD_POISON] = { "uffd_poison", { ENOMEM, EAGAIN, EEXIST } },
	[OS_FAIL_UFFD_COPY] = { "uffd_copy", { ENOMEM, EAGAIN, EEXIST, ENOENT, EFAULT } },
	[OS_FAIL_UFFD_READ] = { "uffd_read", { EAGAIN } },
	[OS_FAIL_PAGEMAP_OPEN] = { "pagemap_open", { EMFILE, ENFILE, EACCES } },
	[OS_FAIL_PAGEMAP_READ] = { "pagemap_read", { ENOMEM, EINTR } },
	[OS_FAIL_PIDFD_OPEN] = { "pidfd_open", { EMFILE, ENOMEM, ENOSYS } },
	[OS_FAIL_MAX_MAP_COUNT] = { "max_map_count", { EACCES, EMFILE } },
};

static _Atomic bool fail_armed; /* any point on: the one branch when off */
static _Atomic uint64_t fail_seed = 1;

static uint64_t fail_mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Does this call of p fail? Then errno is set. */
static bool fail_hit(enum os_fail_point p)
{
	struct fail_point *f = &points[p];
	unsigned long n, nth, every, times, done;

	if (!atomic_load(&f->on))
		return false;
	n = atomic_fetch_add(&f->calls, 1) + 1;
	nth = atomic_load(&f->nth);
	times = atomic_load(&f->times);
	if (nth) {
		if (n < nth || n - nth >= (times ? times : 1))
			return false;
		atomic_fetch_add(&f->injected, 1);
	} else {
		every = atomic_load(&f->every);
		if (!every || fail_mix(atomic_load(&fail_seed) ^ ((uint64_t)p << 48) ^ n) % every)
			return false;
		done = atomic_load(&f->injected);
		do {
			if (times && done >= times)
				return false;
		} while (!atomic_compare_exchange_weak(&f->injected, &done, done + 1));
	}
	errno = atomic_load(&f->err);
	return true;
}

#define FAIL(p)                                                                          \
	(__builtin_expect(atomic_load_explicit(&fail_armed, memory_order_relaxed), 0) && \
	 fail_hit(p))

static bool fail_err_ok(enum os_fail_point p, int err)
{
	for (int i = 0; i < 6 && points[p].errs[i]; i++)
		if (points[p].errs[i] == err)
			return true;
	return false;
}

static void fail_rearm(void)
{
	bool any = false;

	for (int i = 0; i < OS_FAIL_NR; i++)
		any |= atomic_load(&points[i].on);
	atomic_store(&fail_armed, any);
}

int os_fail_set(enum os_fail_point p, const struct os_fail_attr *a)
{
	struct fail_point *f;

	if ((unsigned)p >= OS_FAIL_NR || (a->err && !fail_err_ok(p, a->err))) {
		errno = EINVAL;
		return -1;
	}
	f = &points[p];
	atomic_store(&f->on, false);
	atomic_store(&f->nth, a->nth);
	atomic_store(&f->every, a->every);
	atomic_store(&f->times, a->times);
	atomic_store(&f->err, a->err ? a->err : f->errs[0]);
	atomic_store(&f->calls, 0);
	atomic_store(&f->injected, 0);
	atomic_store(&f->on, a->nth || a->every);
	fail_rearm();
	return 0;
}

void os_fail_reset(void)
{
	atomic_store(&fail_armed, false);
	for (int i = 0; i < OS_FAIL_NR; i++) {
		atomic_store(&points[i].on, false);
		atomic_store(&points[i].calls, 0);
		atomic_store(&points[i].injected, 0);
	}
}

void os_fail_seed(uint64_t seed)
{
	atomic_store(&fail_seed, seed);
}

unsigned long os_fail_injected(enum os_fail_point p)
{
	return (unsigned)p < OS_FAIL_NR ? atomic_load(&points[p].injected) : 0;
}

unsigned long os_fail_calls(enum os_fail_point p)
{
	return (unsigned)p < OS_FAIL_NR ? atomic_load(&points[p].calls) : 0;
}

const char *os_fail_name(unsigned p)
{
	return p < OS_FAIL_NR ? points[p].name : NULL;
}

static const struct {
	const char *name;
	int err;
} errno_names[] = {
	{ "ENOMEM", ENOMEM }, { "ENOSPC", ENOSPC }, { "EIO", EIO },
	{ "EINTR", EINTR },   { "EAGAIN", EAGAIN }, { "ENOENT", ENOENT },
	{ "EEXIST", EEXIST }, { "EFAULT", EFAULT }, { "EBUSY", EBUSY },
	{ "EINVAL", EINVAL }, { "EMFILE", EMFILE }, { "ENFILE", ENFILE },
	{ "EACCES", EACCES }, { "ENOSYS", ENOSYS }, { "EOVERFLOW", EOVERFLOW },
};

static int parse_errno(const char *s, size_t len)
{
	char *end;
	long v;

	for (size_t i = 0; i < sizeof(errno_names) / sizeof(errno_names[0]); i++)
		if (strlen(errno_names[i].name) == len && !strncmp(s, errno_names[i].name, len))
			return errno_names[i].err;
	v = strtol(s, &end, 10);
	return end == s + len && v > 0 && v < 4096 ? (int)v : -1;
}

/* "key=N" of one item into a; the end of it, or NULL. */
static const char *parse_setting(const char *s, struct os_fail_attr *a)
{
	size_t klen = strcspn(s, "=,:");
	const char *v = s + klen + 1;
	size_t vlen;
	char *end;
	unsigned long n;

	if (s[klen] != '=')
		return NULL;
	vlen = strcspn(v, ",:");
	if (klen == 5 && !strncmp(s, "errno", 5)) {
		a->err = parse_errno(v, vlen);
		return a->err > 0 ? v + vlen : NULL;
	}
	n = strtoul(v, &end, 0);
	if (end != v + vlen || !vlen || *v == '-')
		return NULL;
	if (klen == 3 && !strncmp(s, "nth", 3))
		a->nth = n;
	else if (klen == 5 && !strncmp(s, "every", 5))
		a->every = n;
	else if (klen == 5 && !strncmp(s, "times", 5))
		a->times = n;
	else
		return NULL;
	return v + vlen;
}

/* One pass over spec; apply: set the points, else only check. */
static int parse_spec(const char *spec, bool apply, const char **bad)
{
	const char *s = spec;

	while (*s) {
		size_t nlen = strcspn(s, ":=,");
		struct os_fail_attr a = { 0 };
		const char *item = s;
		int p;

		if (s[nlen] == '=' && nlen == 4 && !strncmp(s, "seed", 4)) {
			char *end;
			unsigned long long seed = strtoull(s + 5, &end, 0);

			if (end == s + 5 || (*end && *end != ','))
				goto out_bad;
			if (apply)
				os_fail_seed(seed);
			s = *end ? end + 1 : end;
			continue;
		}
		for (p = 0; p < OS_FAIL_NR; p++)
			if (strlen(points[p].name) == nlen && !strncmp(s, points[p].name, nlen))
				break;
		if (p == OS_FAIL_NR && !(nlen == 3 && !strncmp(s, "all", 3)))
			goto out_bad;
		for (s += nlen; *s == ':';)
			if (!(s = parse_setting(s + 1, &a)))
				goto out_bad_item;
		if (*s && *s != ',')
			goto out_bad_item;
		if (p < OS_FAIL_NR && a.err && !fail_err_ok(p, a.err))
			goto out_bad_item;
		for (int q = p < OS_FAIL_NR ? p : 0; apply && q < OS_FAIL_NR; q++) {
			struct os_fail_attr qa = a;

			if (!fail_err_ok(q, qa.err))
				qa.err = 0; /* "all" with an errno: where the call can return it */
			os_fail_set(q, &qa);
			if (p < OS_FAIL_NR)
				break;
		}
		s = *s ? s + 1 : s;
		continue;
out_bad_item:
		s = item;
out_bad:
		if (bad)
			*bad = s;
		errno = EINVAL;
		return -1;
	}
	return 0;
}

int os_fail_parse(const char *spec, const char **bad)
{
	if (!spec || parse_spec(spec, false, bad))
		return -1;
	return parse_spec(spec, true, bad);
}

int os_fail_from_env(const char **spec, const char **bad)
{
	static _Atomic bool done;

	if (atomic_exchange(&done, true))
		return 0;
	*spec = getenv("SAMEPAGE_FAIL");
	if (!*spec || !**spec)
		return 0;
	return os_fail_parse(*spec, bad) ? -1 : 1;
}

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
 * Vmas this process may have gained through us, counted high: a mapping
 * made anywhere is one vma; one made over part of a vma splits it (two more);
 * a move of a scratch range over part of one takes the scratch away (one
 * more); an unmap can split one (one more). Never decreases: the pool reads
 * the kernel's own count (os_maps_count) and counts the growth since.
 */
static _Atomic long map_growth;

long os_map_growth(void)
{
	return atomic_load_explicit(&map_growth, memory_order_relaxed);
}

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
	if (p == MAP_FAILED)
		return NULL;
	atomic_fetch_add_explicit(&map_growth, m->from || !over ? 1 : 2, memory_order_relaxed);
	return p;
}

int os_unmap(void *addr, size_t len)
{
	if (FAIL(OS_FAIL_UNMAP))
		return -1;
	atomic_fetch_add_explicit(&map_growth, 1, memory_order_relaxed);
	return munmap(addr, len);
}

/* Is a in one of the n sorted, disjoint ranges? */
static bool in_ranges(uintptr_t a, const struct os_range *r, size_t n)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (a < r[mid].start)
			hi = mid;
		else if (a >= r[mid].end)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

/* One line of /proc/self/maps: count it, and count it in if it starts in a range. */
static void maps_line(const char *line, const struct os_range *r, size_t n, long *total,
		      long *inside)
{
	(*total)++;
	if (n && in_ranges((uintptr_t)strtoull(line, NULL, 16), r, n))
		(*inside)++;
}

long os_maps_count(const struct os_range *r, size_t n, long *inside)
{
	char buf[65536];
	size_t have = 0;
	long total = 0, in = 0;
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	for (;;) {
		ssize_t got = read(fd, buf + have, sizeof(buf) - 1 - have);
		char *line = buf, *nl;

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			break;
		have += (size_t)got;
		buf[have] = 0;
		while ((nl = memchr(line, '\n', have - (size_t)(line - buf)))) {
			maps_line(line, r, n, &total, &in);
			line = nl + 1;
		}
		have -= (size_t)(line - buf);
		memmove(buf, line, have);
	}
	close(fd);
	if (inside)
		*inside = in;
	return total;
}

/* ---- the memfd -------------------------------------------------------- */

int os_memfd_create(const char *name, size_t size)
{
	int fd = FAIL(OS_FAIL_MEMFD_CREATE) ? -1 : memfd_create(name, MFD_CLOEXEC);

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
	if (FAIL(OS_FAIL_MEMFD_PUNCH))
		return -1;
	return fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, off, (off_t)len);
}

/*
 * The whole length, or -1: a short count goes on from where it stopped, and
 * EINTR (a signal before any byte moved) is asked again, injected or not.
 * A read past the end is EIO.
 */
static int write_all(int fd, const void *buf, size_t len, off_t off, enum os_fail_point p)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = FAIL(p) ? -1 :
				      pwrite(fd, (const char *)buf + done, len - done,
					     off + (off_t)done);

		if (n > 0)
			done += (size_t)n;
		else if (n == 0 || errno != EINTR)
			return n ? -1 : (errno = EIO, -1);
	}
	return 0;
}

static int read_all(int fd, void *buf, size_t len, off_t off, enum os_fail_point p)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n =
			FAIL(p) ? -1 : pread(fd, (char *)buf + done, len - done, off + (off_t)done);

		if (n > 0)
			done += (size_t)n;
		else if (n == 0 || errno != EINTR)
			return n ? -1 : (errno = EIO, -1);
	}
	return 0;
}

int os_memfd_fill(int fd, off_t off, const void *buf, size_t len)
{
	return write_all(fd, buf, len, off, OS_FAIL_MEMFD_FILL);
}

void os_memfd_copy(int fd, char *map, off_t from, off_t to, size_t len)
{
	loff_t in = from, out = to;
	size_t left = len;

	while (left) {
		ssize_t got =
			FAIL(OS_FAIL_MEMFD_COPY) ? -1 : copy_file_range(fd, &in, fd, &out, left, 0);

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

	if (FAIL(OS_FAIL_MEMFD_RESIDENT) || fstat(fd, &st))
		return -1;
	return (long)st.st_blocks * 512;
}

bool os_memfd_is_hole(int fd, off_t off)
{
	off_t data;

	if (FAIL(OS_FAIL_MEMFD_IS_HOLE))
		return false;
	data = lseek(fd, off, SEEK_DATA);
	return data != off && (data > off || errno == ENXIO);
}

int os_memfd_bind(void *addr, size_t len, int node)
{
	unsigned long mask = 1ul << node;

	if (node < 0 || node >= (int)(sizeof(mask) * 8)) {
		errno = EINVAL;
		return -1;
	}
	if (FAIL(OS_FAIL_MEMFD_BIND))
		return -1;
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
	return read_all(fd, buf, len, off, OS_FAIL_FILE_READ);
}

int os_file_write(int fd, const void *buf, size_t len, off_t off)
{
	return write_all(fd, buf, len, off, OS_FAIL_FILE_WRITE);
}

int os_file_copy(int fd, off_t from, off_t to, size_t len)
{
	loff_t in = from, out = to;
	ssize_t n = FAIL(OS_FAIL_FILE_COPY) ? -1 : copy_file_range(fd, &in, fd, &out, len, 0);

	if (n == (ssize_t)len)
		return 0;
	errno = EIO;
	return -1;
}

int os_file_allocate(int fd, size_t len)
{
	if (FAIL(OS_FAIL_FILE_ALLOCATE))
		return -1;
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

	if (FAIL(OS_FAIL_RESERVE))
		return NULL;
	return map_install(&m);
}

void *os_memfd_map(int fd, size_t len)
{
	struct map_req m = { .len = len,
			     .prot = PROT_READ | PROT_WRITE,
			     .flags = MAP_SHARED | MAP_NORESERVE,
			     .fd = fd };
	void *p = FAIL(OS_FAIL_MEMFD_MAP) ? NULL : map_install(&m);

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

	if (FAIL(OS_FAIL_MAP_FRAMES))
		return -1;
	return map_install(&m) ? 0 : -1;
}

int os_map_zero(void *addr, size_t len)
{
	struct map_req m = { .addr = addr,
			     .len = len,
			     .prot = PROT_READ | PROT_WRITE,
			     .flags = MAP_PRIVATE | MAP_ANONYMOUS,
			     .fd = -1 };

	if (FAIL(OS_FAIL_MAP_ZERO))
		return -1;
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

	if (FAIL(OS_FAIL_MAP_MISSING))
		return -1;
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
	if (FAIL(OS_FAIL_DONTFORK))
		return -1;
	return madvise(addr, len, MADV_DONTFORK);
}

int os_populate(void *addr, size_t len, bool write)
{
	if (FAIL(OS_FAIL_POPULATE))
		return -1;
	return madvise(addr, len, write ? MADV_POPULATE_WRITE : MADV_POPULATE_READ);
}

int os_dontneed(void *addr, size_t len)
{
	if (FAIL(OS_FAIL_DONTNEED))
		return -1;
	return madvise(addr, len, MADV_DONTNEED);
}

void os_dontneed_batch(int pidfd, const struct iovec *iov, unsigned n)
{
	if (!n || (pidfd >= 0 && !FAIL(OS_FAIL_DONTNEED_BATCH) &&
		   syscall(SYS_process_madvise, pidfd, iov, n, MADV_DONTNEED, 0) >= 0))
		return;
	for (unsigned i = 0; i < n; i++)
		os_dontneed(iov[i].iov_base, iov[i].iov_len);
}

int os_mincore(const void *addr, size_t len, unsigned char *vec)
{
	if (FAIL(OS_FAIL_MINCORE))
		return -1;
	return mincore((void *)addr, len, vec);
}

bool os_all_mapped(const void *addr, size_t len)
{
	const size_t step = 512 * PAGE_SIZE;
	unsigned char vec[512];

	for (size_t off = 0; off < len; off += step) {
		size_t n = len - off < step ? len - off : step;
		int tries = 0;

		/* EAGAIN: the kernel was short of memory for the answer; ask again. */
		while (os_mincore((const char *)addr + off, n, vec)) {
			if (errno == ENOMEM)
				return false;
			if (errno != EAGAIN || ++tries == 100)
				break; /* no answer: as before any unmap, mapped */
			sched_yield();
		}
	}
	return true;
}

static int protect_once(void *addr, size_t len, int prot)
{
	if (FAIL(OS_FAIL_PROTECT))
		return -1;
	return mprotect(addr, len, prot);
}

int os_protect(void *addr, size_t len, bool writable)
{
	int prot = writable ? PROT_READ | PROT_WRITE : PROT_READ;

	if (!protect_once(addr, len, prot))
		return 0;
	if (errno != ENOMEM)
		return -1;
	/*
	 * ENOMEM: a page is unmapped, or a split went past vm.max_map_count.
	 * Page by page, a hole is stepped over; a page that is there and
	 * still cannot change is a failure, never a silent success.
	 */
	for (size_t off = 0; off < len; off += PAGE_SIZE) {
		char *p = (char *)addr + off;

		int err;

		if (!protect_once(p, PAGE_SIZE, prot))
			continue;
		err = errno;
		if (err != ENOMEM || os_all_mapped(p, PAGE_SIZE)) {
			errno = err;
			return -1;
		}
	}
	return 0;
}

/* ---- userfaultfd ------------------------------------------------------ */

int os_uffd_open(void)
{
	int fd, dev;

	if (FAIL(OS_FAIL_UFFD_OPEN))
		return -1;
	fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
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

	if (FAIL(OS_FAIL_UFFD_API) || ioctl(uffd, UFFDIO_API, &api))
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

	if (FAIL(OS_FAIL_UFFD_REGISTER))
		return -1;
	return ioctl(uffd, UFFDIO_REGISTER, &reg);
}

/* A userfaultfd ioctl, again while a remap event is being read (EAGAIN). */
static int uffd_ioctl(int uffd, unsigned long req, void *arg, enum os_fail_point p)
{
	int ret;

	while ((ret = FAIL(p) ? -1 : ioctl(uffd, req, arg)) && errno == EAGAIN)
		sched_yield();
	return ret;
}

/*
 * Lifting write-protection stops at the first vma that is not registered (a
 * page another thread has just remapped, and registers next), and leaves the
 * pages after it protected with no window left to open them: writers there
 * would fault for ever. Such a vma is a new mapping and protects nothing:
 * page by page, everything else is unprotected, and it is stepped over. A
 * page's ENOENT is asked again before it is believed: one that was not so
 * (a moment's, or injected) left a registered page protected for good.
 */
static int uffd_unprotect_registered(int uffd, void *addr, size_t len)
{
	for (size_t off = 0; off < len; off += PAGE_SIZE) {
		struct uffdio_writeprotect prm = {
			.range = { .start = (uintptr_t)addr + off, .len = PAGE_SIZE },
		};

		for (int tries = 0; uffd_ioctl(uffd, UFFDIO_WRITEPROTECT, &prm, OS_FAIL_UFFD_WP);
		     sched_yield())
			if (errno != ENOENT)
				return -1;
			else if (++tries == 4)
				break; /* not registered: a new mapping, nothing protected */
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
		if (!uffd_ioctl(uffd, UFFDIO_WRITEPROTECT, &prm, OS_FAIL_UFFD_WP))
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

	return uffd_ioctl(uffd, UFFDIO_ZEROPAGE, &zero, OS_FAIL_UFFD_ZEROPAGE);
}

int os_uffd_poison(int uffd, void *addr, size_t len)
{
	struct uffdio_poison poison = { .range = { .start = (uintptr_t)addr, .len = len } };

	return uffd_ioctl(uffd, UFFDIO_POISON, &poison, OS_FAIL_UFFD_POISON);
}

int os_uffd_copy(int uffd, void *dst, const void *src, size_t len)
{
	size_t done = 0;

	while (done < len) {
		struct uffdio_copy c = { .dst = (uintptr_t)dst + done,
					 .src = (uintptr_t)src + done,
					 .len = len - done };

		if (!FAIL(OS_FAIL_UFFD_COPY) && !ioctl(uffd, UFFDIO_COPY, &c))
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

	if (FAIL(OS_FAIL_UFFD_READ))
		return -1;
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
	if (FAIL(OS_FAIL_PAGEMAP_OPEN))
		return -1;
	return open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

int os_pagemap_read(int fd, const void *addr, unsigned long n, uint64_t *pm)
{
	off_t off = (off_t)((uintptr_t)addr >> PAGE_SHIFT) * 8;

	if (fd < 0) {
		errno = EBADF;
		goto out_zero;
	}
	if (!read_all(fd, pm, n * 8, off, OS_FAIL_PAGEMAP_READ))
		return 0;
out_zero:
	memset(pm, 0, n * 8);
	return -1;
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
	if (FAIL(OS_FAIL_PIDFD_OPEN))
		return -1;
	return (int)syscall(SYS_pidfd_open, getpid(), 0);
}

long os_max_map_count(void)
{
	long v = -1;
	FILE *f = FAIL(OS_FAIL_MAX_MAP_COUNT) ? NULL : fopen("/proc/sys/vm/max_map_count", "re");

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}
