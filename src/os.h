/* SPDX-License-Identifier: MIT */
/*
 * The OS layer: the only code in samepage that asks the kernel about memory.
 * Everything above it (pool, region, fault, the engines) calls these
 * primitives and never mmap, madvise, ioctl, syscall and the like itself;
 * scripts/check-syscalls.sh fails the build when one does.
 *
 * One function per primitive, with its contract at the declaration: what it
 * does, its errors (errno), its preconditions. Common to all of them unless
 * said otherwise:
 * - addresses and lengths of mappings are page-aligned, lengths non-zero;
 *   file offsets of frames are multiples of PAGE_SIZE;
 * - a primitive returns 0 (or a count, a pointer) on success and -1 (NULL)
 *   with errno set on failure, and a failure changes nothing that the call
 *   did not say it may have changed;
 * - no primitive logs or takes a lock of samepage's: they are safe in any
 *   thread, and those marked signal-safe in a signal handler too.
 *
 * Every mapping made over an address (regions, merged pages, zero pages,
 * missing-mode ranges, the direct map, the scratch ranges that move into
 * place) is made by one internal function of os.c, map_install(), and every
 * one removed by os_unmap(): the pool's count of the mappings it holds (the
 * kernel's vm.max_map_count counts them) belongs there, nowhere else.
 */
#ifndef SP_OS_H
#define SP_OS_H

#include <linux/userfaultfd.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define PAGE_SHIFT 12
#define PAGE_SIZE ((size_t)1 << PAGE_SHIFT)

/* Debian 12's uapi headers are from 6.1: what later kernels added, once. */
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
#ifndef UFFDIO_POISON
struct uffdio_poison {
	struct uffdio_range range;
	__u64 mode;
	__s64 updated;
};
#define UFFDIO_POISON _IOWR(UFFDIO, 0x08, struct uffdio_poison)
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif

/* ---- the memfd: frames as file offsets -------------------------------- */

/* A new memfd of size bytes (sparse: all holes), close-on-exec. fd, or -1. */
int os_memfd_create(const char *name, size_t size);
/*
 * Give [off, off+len) of the memfd back to the OS: it reads zeros and holds
 * no memory afterwards; the size stays. Every mapping of it loses its pages
 * (a TLB flush each, unless os_dontneed dropped them first). -1: EBADF,
 * EINVAL (unaligned), EOPNOTSUPP (not a file that can punch), EINTR (a
 * signal), EIO; the range may then be partly punched.
 */
int os_memfd_punch(int fd, off_t off, size_t len);
/*
 * Write buf into [off, off+len) of the memfd through the file, not through a
 * mapping: no page fault, and no zeroing of a hole before it is filled. 0
 * when every byte went; -1 with errno (ENOSPC, ENOMEM), EIO when the write
 * stopped short. A short write goes on, and EINTR is asked again, here.
 */
int os_memfd_fill(int fd, off_t off, const void *buf, size_t len);
/*
 * Copy [from, from+len) of the memfd to [to, to+len) (not overlapping). The
 * kernel copies file to file where it can (copy_file_range: new pages are
 * not zeroed first, no fault each); what it cannot is copied through map,
 * the memfd's own mapping of offset 0 (the direct map). Cannot fail.
 */
void os_memfd_copy(int fd, char *map, off_t from, off_t to, size_t len);
/* Bytes of the memfd that hold memory (st_blocks), or -1 (EBADF). */
long os_memfd_resident(int fd);
/*
 * Does the page at off read zeros because it holds no memory (never written,
 * or punched)? Asks the file (SEEK_DATA), never a mapping, which would fill
 * it; a page the kernel swapped out counts as data. False on error.
 */
bool os_memfd_is_hole(int fd, off_t off);
/*
 * Memory of [addr, addr+len), a MAP_SHARED mapping of a memfd, comes from
 * NUMA node node from now on: the policy is the file's (shared policy), so
 * every mapping of those offsets gets it. -1: EINVAL (no such node), EFAULT.
 */
int os_memfd_bind(void *addr, size_t len, int node);
/* NUMA nodes the machine has (configured), at least 1. */
int os_nr_nodes(void);

/* ---- other files: the swap area --------------------------------------- */

/*
 * All of [off, off+len) of fd into buf: 0, or -1 with errno (EIO: an error,
 * or the end of the file). Short reads go on, and EINTR is asked again, here.
 */
int os_file_read(int fd, void *buf, size_t len, off_t off);
/* All of buf to [off, off+len) of fd: 0, or -1 with errno (EIO, ENOSPC); as os_file_read. */
int os_file_write(int fd, const void *buf, size_t len, off_t off);
/*
 * Copy [from, from+len) of fd to [to, to+len) of the same file, inside the
 * kernel. 0, or -1 with errno (EIO: the kernel copied less, or not at all).
 */
int os_file_copy(int fd, off_t from, off_t to, size_t len);
/*
 * Blocks for [0, len) of fd, now (a full disk says so here, not at a later
 * write). Where the file system cannot allocate ahead, the file is only
 * sized (sparse). -1: ENOSPC, EBADF, EFBIG.
 */
int os_file_allocate(int fd, size_t len);

/* ---- address space ---------------------------------------------------- */

/*
 * Reserve len bytes of address space: no access, no memory, not counted
 * against overcommit. The address, or NULL with errno (ENOMEM).
 */
void *os_reserve(size_t len);
/*
 * The whole memfd (len bytes) mapped once MAP_SHARED read-write, and not
 * inherited by fork(): the direct map. The address, or NULL with errno.
 */
void *os_memfd_map(int fd, size_t len);
/*
 * Map frames [off, off+len) of the memfd at addr, read-write, replacing
 * whatever is mapped there (MAP_FIXED). shared: writes land in the memfd
 * (MAP_SHARED); else the kernel copies a page on its first write (MAP_PRIVATE:
 * pagemap then shows it present and not file-backed, pm_copied). The new
 * mapping is a new vma: registered with no userfaultfd and inherited by
 * fork() until os_uffd_register and os_dontfork say otherwise. -1: ENOMEM
 * (out of mappings: vm.max_map_count), EBADF, EINVAL (unaligned); after a
 * failure the range may be unmapped.
 */
int os_map_frames(void *addr, size_t len, int fd, off_t off, bool shared);
/*
 * Map anonymous private memory at addr (MAP_FIXED): reads see the kernel's
 * zero page, a write gets the page its own memory (pm_written). Errors as
 * os_map_frames.
 */
int os_map_zero(void *addr, size_t len);
/*
 * Replace [addr, addr+len) with an inaccessible reservation (MAP_FIXED,
 * PROT_NONE, no memory): every access faults (SIGSEGV), and no userfaultfd
 * serves it (a destroyed pool's regions; the addresses a child of fork()
 * did not inherit, so no new mapping lands there). Errors as os_map_frames.
 */
int os_map_none(void *addr, size_t len);
/*
 * Replace [addr, addr+len) with an anonymous range that is never populated
 * and is registered with uffd for missing and write-protect faults from its
 * first instant: every access, read or write, is a missing fault. The range
 * is made and registered at a scratch address and moved into place with
 * mremap() (registration moves with it), so that no reader can slip in
 * between a mapping and its registration and read zeros. Preconditions: uffd
 * has UFFD_FEATURE_EVENT_REMAP, and a thread other than the caller reads its
 * events, since the move waits until the remap event is read. -1: ENOMEM
 * (out of mappings), EINVAL; on failure the old mapping is intact unless the
 * move itself failed.
 */
int os_map_missing(int uffd, void *addr, size_t len);
/*
 * Unmap [addr, addr+len); holes in it are fine. -1: EINVAL (unaligned),
 * ENOMEM (it would split a mapping past vm.max_map_count: nothing unmapped).
 */
int os_unmap(void *addr, size_t len);
/*
 * Not inherited by fork() (MADV_DONTFORK). -1: ENOMEM (unmapped, or a split
 * past vm.max_map_count), EAGAIN, EINVAL.
 */
int os_dontfork(void *addr, size_t len);
/*
 * Fault every page of [addr, addr+len) in now, for reading or for writing,
 * as a touch would (a memfd hole gets memory either way: shmem has no zero
 * page). -1: ENOMEM (unmapped, or out of memory), EFAULT (a fault failed),
 * EINTR (a fatal signal), EINVAL (kernel before 5.14). Precondition: no page of it is in missing mode, or the call
 * waits for whoever resolves those faults.
 */
int os_populate(void *addr, size_t len, bool write);
/*
 * Drop the page table entries of [addr, addr+len) (MADV_DONTNEED): a
 * MAP_SHARED page keeps its data in the file and refaults from it; a
 * MAP_PRIVATE page's copy is lost. -1: ENOMEM (unmapped), EAGAIN, EINVAL.
 */
int os_dontneed(void *addr, size_t len);
/*
 * os_dontneed over n ranges of this process, in one call with one TLB flush
 * (process_madvise, Linux 6.15) when pidfd (os_pidfd_open) is usable; else,
 * or when the kernel refuses, one madvise per range. Cannot fail.
 */
void os_dontneed_batch(int pidfd, const struct iovec *iov, unsigned n);
/*
 * Which pages of [addr, addr+len) are resident: bit 0 of vec[i] for page i
 * (len / PAGE_SIZE bytes of vec). -1: ENOMEM (part of the range unmapped),
 * EAGAIN (the kernel is short of memory for the answer: ask again).
 */
int os_mincore(const void *addr, size_t len, unsigned char *vec);
/* Is every page of [addr, addr+len) mapped? The program may have unmapped some. */
bool os_all_mapped(const void *addr, size_t len);
/*
 * Read-only (writable false) or read-write again. Pages the program unmapped
 * are stepped over (page by page, once the whole range failed with ENOMEM).
 * -1: EACCES (a mapping that cannot be made writable), EINVAL, ENOMEM (a
 * page that is mapped could not change: a split past vm.max_map_count);
 * pages before it may have changed.
 */
int os_protect(void *addr, size_t len, bool writable);

/* ---- userfaultfd ------------------------------------------------------ */

/*
 * A userfaultfd, non-blocking, close-on-exec. Where unprivileged
 * userfaultfd is off (EPERM), through /dev/userfaultfd if it lets us. fd, or
 * -1: EPERM, ENOSYS, EMFILE.
 */
int os_uffd_open(void);
/*
 * The features this kernel offers, asked of a throwaway userfaultfd (a
 * userfaultfd's features can be set only once). -1: as os_uffd_open.
 */
int os_uffd_probe(uint64_t *features);
/*
 * Enable *features on a new uffd (once per fd); *features is then what the
 * kernel granted. -1: EINVAL (asked for what it has not, or done once).
 */
int os_uffd_api(int uffd, uint64_t *features);
/*
 * Register [addr, addr+len) for write-protect faults, and missing faults as
 * well when missing. A registration replaces the modes of every vma in the
 * range. -1: EINVAL (not a mapping userfaultfd takes; unaligned), ENOMEM
 * (unmapped, or a split past vm.max_map_count), EBUSY (registered with
 * another uffd).
 */
int os_uffd_register(int uffd, void *addr, size_t len, bool missing);
/*
 * Write-protect [addr, addr+len) (wp) or lift it. Holes are skipped. A vma
 * that another thread has just remapped and not yet registered fails with
 * ENOENT: that thread registers it within microseconds, so it is tried again,
 * up to 1000 times (registering it here could register a mapping that is
 * not the pool's). Lifting it does not wait: it steps over such a vma (a
 * fresh mapping protects nothing), page by page. EAGAIN (a remap event not
 * read yet) is tried again until it clears. -1: ENOENT (still unregistered),
 * ENOMEM (no memory for page tables), EINVAL.
 */
int os_uffd_wp(int uffd, void *addr, size_t len, bool wp);
/* Wake the threads waiting on faults in [addr, addr+len). Cannot fail. */
void os_uffd_wake(int uffd, void *addr, size_t len);
/*
 * Resolve missing faults on [addr, addr+len) with the zero page, and wake.
 * EAGAIN is tried again. -1: EEXIST (mapped meanwhile), ENOENT, EINVAL.
 */
int os_uffd_zeropage(int uffd, void *addr, size_t len);
/*
 * Poison [addr, addr+len): every access is SIGBUS from now on; wakes.
 * Needs UFFD_FEATURE_POISON. EAGAIN is tried again. -1: EEXIST, EINVAL.
 */
int os_uffd_poison(int uffd, void *addr, size_t len);
/*
 * Resolve missing faults on [dst, dst+len) with a copy of src, and wake.
 * EAGAIN is tried again from where it stopped. -1: EEXIST (mapped
 * meanwhile), ENOMEM, EFAULT (src), EINVAL.
 */
int os_uffd_copy(int uffd, void *dst, const void *src, size_t len);

/* A page fault read from a userfaultfd. */
struct os_fault {
	uintptr_t addr; /* page-aligned */
	pid_t tid; /* the faulting thread (UFFD_FEATURE_THREAD_ID), else 0 */
	bool wp; /* a write into a write-protected page; else missing */
};

/*
 * The page faults of up to max messages waiting on uffd, in out[]: how
 * many. Other events (remap, ...) are read and dropped: reading them is all
 * their senders wait for. -1: EAGAIN (nothing waiting), EBADF.
 */
int os_uffd_read(int uffd, struct os_fault *out, unsigned max);

/* ---- /proc/self/pagemap ----------------------------------------------- */

#define PM_PRESENT (1ull << 63)
#define PM_FILE (1ull << 61) /* file-backed (or the shared zero page) */
#define PM_EXCLUSIVE (1ull << 56) /* mapped exclusively (anonymous) */

/* This process's pagemap, close-on-exec: fd, or -1 (ENOENT, EACCES). */
int os_pagemap_open(void);
/*
 * The entries of n pages from addr into pm: 0, or -1 with errno (EBADF: no
 * pagemap; ENOMEM) and pm all 0. All 0 reads "not present, not
 * copied": a caller that would act on "not copied" must not take it from a
 * failed read.
 */
int os_pagemap_read(int fd, const void *addr, unsigned long n, uint64_t *pm);

/* The page is mapped in the program's page table (the reclaim clock's bit). */
static inline bool pm_present(uint64_t pm)
{
	return pm & PM_PRESENT;
}

/* A page of a MAP_PRIVATE file mapping that the kernel has copied on write. */
static inline bool pm_copied(uint64_t pm)
{
	return (pm & PM_PRESENT) && !(pm & PM_FILE);
}

/* An anonymous zero-page mapping that has been written: a page of its own. */
static inline bool pm_written(uint64_t pm)
{
	return (pm & PM_PRESENT) && (pm & PM_EXCLUSIVE);
}

/* ---- threads and the process ------------------------------------------ */

/*
 * Sleep while *word == val (FUTEX_WAIT, process-private), until a wake, a
 * signal or a spurious return: callers re-check. Signal-safe.
 */
void os_futex_wait(_Atomic uint32_t *word, uint32_t val);
/* Wake up to n sleepers on word (INT_MAX: all). Signal-safe. */
void os_futex_wake(_Atomic uint32_t *word, int n);
/* Send sig to thread tid of this process. -1: ESRCH (gone), EINVAL. Signal-safe. */
int os_tgkill(pid_t tid, int sig);
/* A pidfd of this process (for os_dontneed_batch), or -1 (ENOSYS). */
int os_pidfd_open(void);
/* vm.max_map_count: how many mappings a process may have; -1 if unknown. */
long os_max_map_count(void);

/* ---- fault injection -------------------------------------------------- */

/*
 * After the kernel's fail_page_alloc and failslab: any primitive above that
 * can fail can be told to, so that tests reach the error paths of the
 * library. A primitive fails only with an errno its real kernel call can
 * return, and where the primitive retries (the ENOENT and EAGAIN loops of
 * userfaultfd, the page-by-page mprotect) or falls back (copy_file_range,
 * process_madvise) each kernel call inside it counts as a call, so those
 * paths run too. Primitives whose contract says "cannot fail" never do:
 * their points force the fallback instead (memfd_copy, dontneed_batch).
 *
 * Compiled in every build; off, it costs one predictable branch per call.
 * Turned on by os_fail_set() (tests), or by the environment variable
 * SAMEPAGE_FAIL, read once when the first pool is created:
 *
 *   SAMEPAGE_FAIL="map_frames:every=50,punch:nth=3,uffd_wp:nth=1:times=1000,seed=7"
 *
 * items separated by ',', each a point name (or "all") with ':'-separated
 * settings, or seed=N. See os_fail_parse().
 */
enum os_fail_point {
	OS_FAIL_MEMFD_CREATE,
	OS_FAIL_MEMFD_PUNCH,
	OS_FAIL_MEMFD_FILL,
	OS_FAIL_MEMFD_COPY, /* cannot fail: forces the copy through the map */
	OS_FAIL_MEMFD_RESIDENT,
	OS_FAIL_MEMFD_IS_HOLE, /* answers "data", as on error */
	OS_FAIL_MEMFD_BIND,
	OS_FAIL_FILE_READ,
	OS_FAIL_FILE_WRITE,
	OS_FAIL_FILE_COPY,
	OS_FAIL_FILE_ALLOCATE,
	OS_FAIL_RESERVE,
	OS_FAIL_MEMFD_MAP,
	OS_FAIL_MAP_FRAMES,
	OS_FAIL_MAP_ZERO,
	OS_FAIL_MAP_MISSING,
	OS_FAIL_UNMAP,
	OS_FAIL_DONTFORK,
	OS_FAIL_POPULATE,
	OS_FAIL_DONTNEED,
	OS_FAIL_DONTNEED_BATCH, /* cannot fail: forces one madvise per range */
	OS_FAIL_MINCORE,
	OS_FAIL_PROTECT, /* each mprotect, the page-by-page ones too */
	OS_FAIL_UFFD_OPEN,
	OS_FAIL_UFFD_API,
	OS_FAIL_UFFD_REGISTER,
	OS_FAIL_UFFD_WP, /* each ioctl: ENOENT and EAGAIN are retried */
	OS_FAIL_UFFD_ZEROPAGE, /* each ioctl: EAGAIN is retried */
	OS_FAIL_UFFD_POISON, /* each ioctl: EAGAIN is retried */
	OS_FAIL_UFFD_COPY, /* each ioctl: EAGAIN is retried */
	OS_FAIL_UFFD_READ,
	OS_FAIL_PAGEMAP_OPEN,
	OS_FAIL_PAGEMAP_READ,
	OS_FAIL_PIDFD_OPEN,
	OS_FAIL_MAX_MAP_COUNT,
	OS_FAIL_NR
};

/*
 * When a point fails. Calls are counted from os_fail_set(), from 1.
 * nth: calls nth .. nth+times-1 fail (times 0 counts as 1). Else every: each
 * call fails with probability 1/every, decided by a hash of the seed, the
 * point and the call's number (deterministic for one sequence of calls),
 * at most times times (0: no limit). err: the errno, one the point's kernel
 * call can return; 0 for the point's usual one.
 */
struct os_fail_attr {
	unsigned long nth, every, times;
	int err;
};

/* 0, or -1 with EINVAL (no such point; err not one its call can return). */
int os_fail_set(enum os_fail_point p, const struct os_fail_attr *attr);
/* Every point off and its counts back to 0; the seed stays. */
void os_fail_reset(void);
void os_fail_seed(uint64_t seed);
/* Failures injected at p since it was set; calls made to it. */
unsigned long os_fail_injected(enum os_fail_point p);
unsigned long os_fail_calls(enum os_fail_point p);
/* The point's name in SAMEPAGE_FAIL ("map_frames"), NULL past the end. */
const char *os_fail_name(unsigned p);
/*
 * Apply a SAMEPAGE_FAIL string: "NAME[:nth=N][:every=N][:times=N][:errno=E]"
 * items and "seed=N", separated by ','; NAME "all" sets every point that
 * can fail; E a name (EIO) or a number. 0, or -1 with EINVAL, and *bad (if
 * not NULL) where the string stopped making sense; nothing is applied then.
 */
int os_fail_parse(const char *spec, const char **bad);
/* SAMEPAGE_FAIL, applied the first time only: 1 applied, 0 unset or done, -1 as parse. */
int os_fail_from_env(const char **spec, const char **bad);
/*
 * The mapping count. os_map_growth: how many vmas the process may have
 * gained through map_install and os_unmap since it began, counted high (see
 * os.c); it never decreases. os_maps_count: the process's vmas now, from
 * /proc/self/maps, and in *inside (if not NULL) those that begin in one of
 * the n ranges, sorted and disjoint ([start, end)). -1 if maps is unreadable.
 */
struct os_range {
	uintptr_t start, end;
};

long os_map_growth(void);
long os_maps_count(const struct os_range *r, size_t n, long *inside);

#endif
