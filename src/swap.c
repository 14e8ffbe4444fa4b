/* SPDX-License-Identifier: MIT */
/*
 * Swap: pages out to a file of slots and back on access.
 *
 * A private page that goes out gives its frame up: its page table entry
 * becomes PTE_SWAP(slot), and its address becomes an anonymous range in
 * userfaultfd missing mode that is never populated (fault_remap_missing, and
 * why it must be moved into place with mremap), so that any access, from
 * user code or from the kernel in read(2), is a missing fault. The swap-in
 * worker reads the slot, checks its XXH3, writes the data into a new frame
 * through the memfd, maps the frame there and wakes the thread; read-ahead
 * brings the swapped neighbours of a sequential reader in the same go. A
 * page never touched needs no slot: it becomes PTE_NONE and gets a frame at
 * its first touch the same way. That is what lets reclaim (vmscan.c), and
 * sp_alloc under pressure, give frames to whoever needs them.
 *
 * A KSM frame swaps as one slot too, and gives its frame up: ksm.c does
 * that part (ksm_swap_out, ksm_fault), since the slot lives in the stable
 * node.
 *
 * Who changes what: a private page goes out under its frame lock and a
 * write-protect window, and its entry turns PTE_SWAP last. PTE_SWAP and
 * PTE_NONE entries are turned back only by the worker (with rt.lock read)
 * and dropped only by sp_free (rt.lock write): no engine path acts on them,
 * so they need no lock of their own; the entries of a swapped KSM frame's
 * sharers change only under the KSM mutex.
 *
 * Locks (the order is in lock.h): swap.lock guards the slot map only and is
 * a leaf. sp_swap_out takes
 * the KSM mutex (no merge or unmerge meanwhile), the region table lock
 * (read) and each frame's lock. The worker takes the KSM mutex (for a KSM
 * slot, first), the region table lock (read), reclaim.lock (direct reclaim,
 * vmscan.c) and the locks of new frames; the read-ahead state is the
 * worker's alone. The fault thread takes none of these.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "gup.h"
#include "log.h"
#include "pool.h"

/*
 * Pages a missing fault brings back with it, at most (256 measured no
 * faster: the time is in the per-page work, not in the faults).
 */
#define READAHEAD 64
#define READAHEAD_MIN 1
#define FAULT_AROUND 16 /* pages a first touch gives frames to, aligned */

/*
 * The swap file's last page is its label: what it is and which process made
 * it. Only a file with a label is ever taken over, so a swap_path naming
 * someone's own file by mistake is refused (EEXIST), never truncated.
 */
#define SWAP_LABEL "samepage swap file\n"

/* The file at the pool's path is still the one its fd has open. */
static bool swap_file_is_ours(struct sp_swap *sw)
{
	struct stat a, b;

	return !fstat(sw->fd, &a) && !fstatat(sw->dirfd, sw->name, &b, AT_SYMLINK_NOFOLLOW) &&
	       a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

/* Removes the file at the path only if it is still ours (see trunc.c in the tests). */
static void swap_file_remove(struct sp_swap *sw)
{
	if (swap_file_is_ours(sw))
		unlinkat(sw->dirfd, sw->name, 0);
}

/*
 * The pid in fd's label, 0 when it has none (not a swap file of ours). A
 * label is written by the pool that holds the file's lock, once it has it.
 */
static long label_pid(int fd)
{
	char buf[64] = { 0 };
	struct stat st;
	long pid;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_size < (off_t)PAGE_SIZE ||
	    st.st_size % PAGE_SIZE ||
	    os_file_read(fd, buf, sizeof(buf) - 1, st.st_size - PAGE_SIZE) ||
	    strncmp(buf, SWAP_LABEL, strlen(SWAP_LABEL)) ||
	    sscanf(buf + strlen(SWAP_LABEL), "pid %ld", &pid) != 1 || pid <= 0)
		return 0;
	return pid;
}

/* The lock a pool holds on its swap file while it lives: 0, or -1 (held: EAGAIN). */
static int swap_file_lock(int fd)
{
	/*
	 * An open file description lock: it conflicts with another pool's in
	 * this process too (a classic fcntl lock would not), no close of another
	 * fd of the file drops it, and the kernel drops it when the process
	 * dies however it dies. It cannot say who holds it (F_OFD_GETLK gives
	 * l_pid -1): the label does.
	 */
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

	if (!fcntl(fd, F_OFD_SETLK, &fl))
		return 0;
	if (errno == EACCES)
		errno = EAGAIN;
	return -1;
}

static void log_busy(struct sp_swap *sw, int fd)
{
	long pid = label_pid(fd);

	if (pid > 0 && kill((pid_t)pid, 0) && errno == ESRCH)
		sp_log(SP_LOG_ERR,
		       "swap file %s is held by a process that pid %ld (gone) forked: not "
		       "using it",
		       sw->path, pid);
	else if (pid > 0)
		sp_log(SP_LOG_ERR, "swap file %s is in use by a pool of pid %ld: not using it",
		       sw->path, pid);
	else
		sp_log(SP_LOG_ERR, "swap file %s is in use by another pool: not using it",
		       sw->path);
}

/*
 * The file as a fresh swap area of size bytes plus its label, allocated
 * now, as swapon(8) wants a swap file without holes: a full disk says so
 * here, not at a swap-out, and writes to it do not allocate blocks. Where
 * fallocate is not supported, a sparse file.
 */
static int swap_file_fill(int fd, size_t size)
{
	char label[64];
	int len = snprintf(label, sizeof(label), SWAP_LABEL "pid %ld\n", (long)getpid());

	if (ftruncate(fd, 0) || os_file_allocate(fd, size + PAGE_SIZE))
		return -1;
	return os_file_write(fd, label, (size_t)len, (off_t)size);
}

/*
 * Opens and locks the file at the pool's path: a new one, or one a pool
 * that is gone left (a label, and no lock), which it takes over with one
 * line in the log. fd, or -1: EBUSY when a live pool holds it, EEXIST when
 * it is not a swap file.
 */
static int swap_file_open(struct sp_swap *sw)
{
	for (int tries = 0; tries < 16; tries++) {
		bool created = true;
		long pid;
		int fd = openat(sw->dirfd, sw->name,
				O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);

		if (fd < 0 && errno == EEXIST) {
			created = false;
			fd = openat(sw->dirfd, sw->name, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
			if (fd < 0 && errno == ENOENT)
				continue; /* removed meanwhile: create it */
			if (fd < 0 && errno == ELOOP)
				errno = EEXIST; /* a symbolic link: not ours */
		}
		if (fd < 0)
			return -1;
		if (swap_file_lock(fd)) {
			/*
			 * A live pool's. (Or, rarely, one that came between our
			 * creating the file and locking it: the same to us.)
			 */
			log_busy(sw, fd);
			close(fd);
			errno = EBUSY;
			return -1;
		}
		sw->fd = fd;
		if (!swap_file_is_ours(sw)) { /* unlinked or replaced before we had it locked */
			close(fd);
			sw->fd = -1;
			continue;
		}
		sw->fd = -1;
		if (created)
			return fd;
		pid = label_pid(fd);
		if (!pid) {
			sp_log(SP_LOG_ERR,
			       "%s exists and is not a samepage swap file: not using it", sw->path);
			close(fd);
			errno = EEXIST;
			return -1;
		}
		sp_log(SP_LOG_WARN,
		       "swap file %s was left by a pool that is gone (pid %ld): taking it over",
		       sw->path, pid);
		return fd;
	}
	errno = EBUSY; /* it keeps changing under us */
	return -1;
}

/* The directory of path, opened, and where the file's name starts in it. */
static int swap_dir_open(struct sp_swap *sw)
{
	char *slash = strrchr(sw->path, '/');

	if (!slash) {
		sw->name = sw->path;
		sw->dirfd = open(".", O_PATH | O_DIRECTORY | O_CLOEXEC);
	} else {
		char *dir = strndup(sw->path, slash == sw->path ? 1 : (size_t)(slash - sw->path));

		if (!dir)
			return -1;
		sw->name = slash + 1;
		sw->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
		free(dir);
	}
	return sw->dirfd < 0 ? -1 : 0;
}

int swap_init(struct sp_pool *pool, const char *path, size_t size)
{
	struct sp_swap *sw = &pool->swap;
	int err;

	memset(sw, 0, sizeof(*sw));
	sw->fd = sw->dirfd = -1;
	mutex_init(&sw->lock, LOCK_SWAP);
	if (!path)
		return 0;
	sw->nr_slots = size / PAGE_SIZE;
	sw->map = calloc((sw->nr_slots + 63) / 64, sizeof(*sw->map));
	sw->sum = calloc(sw->nr_slots, sizeof(*sw->sum));
	sw->path = strdup(path);
	sw->readahead = malloc(READAHEAD * PAGE_SIZE);
	if (!sw->map || !sw->sum || !sw->path || !sw->readahead)
		goto out_nomem;
	if (swap_dir_open(sw))
		goto out_free;
	sw->fd = swap_file_open(sw);
	if (sw->fd < 0)
		goto out_free;
	if (swap_file_fill(sw->fd, size)) {
		err = errno;
		swap_file_remove(sw);
		close(sw->fd);
		sw->fd = -1;
		errno = err;
		goto out_free;
	}
	return 0;

out_nomem:
	errno = ENOMEM;
out_free:
	err = errno;
	if (sw->dirfd >= 0)
		close(sw->dirfd);
	sw->dirfd = -1;
	free(sw->readahead);
	sw->readahead = NULL;
	free(sw->map);
	free(sw->sum);
	free(sw->path);
	sw->map = NULL;
	sw->sum = NULL;
	sw->path = NULL;
	errno = err;
	return -1;
}

void swap_exit(struct sp_pool *pool)
{
	struct sp_swap *sw = &pool->swap;

	if (sw->fd >= 0) {
		/* Removed while we still hold the lock: nobody can take it over in between. */
		swap_file_remove(sw);
		close(sw->fd);
	}
	if (sw->dirfd >= 0)
		close(sw->dirfd);
	free(sw->map);
	free(sw->sum);
	free(sw->path);
	free(sw->readahead);
	mutex_destroy(&sw->lock);
}

static bool slot_used(const struct sp_swap *sw, unsigned long i)
{
	return sw->map[i / 64] >> (i % 64) & 1;
}

/* Up to want consecutive free slots (at least one): how many, first in *slot. */
static unsigned long slots_alloc(struct sp_swap *sw, unsigned long want, unsigned long *slot)
{
	unsigned long best = 0, best_at = 0;

	mutex_lock(&sw->lock);
	for (unsigned long i = 0; i < sw->nr_slots && best < want;) {
		unsigned long n = 0;

		while (i + n < sw->nr_slots && n < want && !slot_used(sw, i + n))
			n++;
		if (n > best) {
			best = n;
			best_at = i;
		}
		i += n + 1;
	}
	for (unsigned long i = 0; i < best; i++)
		sw->map[(best_at + i) / 64] |= 1ull << ((best_at + i) % 64);
	sw->used += best;
	mutex_unlock(&sw->lock);
	*slot = best_at;
	if (!best)
		errno = ENOSPC;
	return best;
}

static long slot_alloc(struct sp_swap *sw)
{
	long slot = -1;

	mutex_lock(&sw->lock);
	for (unsigned long n = 0; n < sw->nr_slots && slot < 0; n++) {
		unsigned long i = (sw->hint + n) % sw->nr_slots;

		if (!(sw->map[i / 64] >> (i % 64) & 1)) {
			sw->map[i / 64] |= 1ull << (i % 64);
			sw->used++;
			sw->hint = i + 1;
			slot = (long)i;
		}
	}
	mutex_unlock(&sw->lock);
	if (slot < 0)
		errno = ENOSPC;
	return slot;
}

void swap_slot_free(struct sp_pool *pool, unsigned long slot)
{
	struct sp_swap *sw = &pool->swap;

	mutex_lock(&sw->lock);
	if (slot < sw->nr_slots && (sw->map[slot / 64] >> (slot % 64) & 1)) {
		sw->map[slot / 64] &= ~(1ull << (slot % 64));
		sw->used--;
	}
	mutex_unlock(&sw->lock);
}

long swap_slots_used(struct sp_pool *pool)
{
	long n;

	mutex_lock(&pool->swap.lock);
	n = (long)pool->swap.used;
	mutex_unlock(&pool->swap.lock);
	return n;
}

#define SLOT_CHUNK 16 /* pages copied out per write: 64 KiB */

/*
 * m frames from src (the direct map) into slots slot.., taken already, with
 * their checksums. 0, or -1 with EIO or ENOMEM (the slots are still the
 * caller's).
 *
 * The frames go through a buffer of ours, and what is checksummed is that
 * buffer, the very bytes written. A write-protect window does not stop a
 * device or the kernel on a pinned page (O_DIRECT, io_uring): checksumming
 * the live frame after the write could see a late write the slot never got,
 * and a healthy slot would read back as damaged.
 */
static int slots_write(struct sp_pool *pool, const char *src, unsigned long slot, unsigned long m)
{
	struct sp_swap *sw = &pool->swap;
	char *buf = malloc((m < SLOT_CHUNK ? m : SLOT_CHUNK) << PAGE_SHIFT);
	int ret = 0;

	if (!buf)
		return -1;
	for (unsigned long i = 0; i < m; i += SLOT_CHUNK) {
		unsigned long c = m - i < SLOT_CHUNK ? m - i : SLOT_CHUNK;

		memcpy(buf, src + (i << PAGE_SHIFT), c << PAGE_SHIFT);
		if (os_file_write(sw->fd, buf, c << PAGE_SHIFT, (off_t)((slot + i) * PAGE_SIZE))) {
			errno = EIO;
			ret = -1;
			break;
		}
		for (unsigned long k = 0; k < c; k++)
			sw->sum[slot + i + k] = XXH3_64bits(buf + (k << PAGE_SHIFT), PAGE_SIZE);
	}
	free(buf);
	if (!ret)
		atomic_fetch_add(&sw->pages_out, (long)m);
	return ret;
}

/* A frame out to a new slot, checksummed: the slot, or -1 (ENOSPC full, EIO). */
long swap_write(struct sp_pool *pool, const void *src)
{
	long slot = slot_alloc(&pool->swap);

	if (slot < 0)
		return -1;
	if (slots_write(pool, src, (unsigned long)slot, 1)) {
		swap_slot_free(pool, (unsigned long)slot);
		return -1;
	}
	return slot;
}

/*
 * n slots from slot into buf. A read error may be the device's moment (the
 * kernel's block layer retries too): asked a few times before a page is
 * given up as lost. 0, or -1 with errno.
 */
static int slots_read(struct sp_swap *sw, void *buf, unsigned long slot, unsigned long n)
{
	for (int tries = 0;; tries++) {
		if (!os_file_read(sw->fd, buf, n << PAGE_SHIFT, (off_t)(slot * PAGE_SIZE)))
			return 0;
		if (tries == 2)
			return -1;
	}
}

/* Slot into buf, checked. -1 with EIO when it is damaged (counted and logged). */
int swap_read(struct sp_pool *pool, unsigned long slot, void *buf)
{
	struct sp_swap *sw = &pool->swap;

	if (!slots_read(sw, buf, slot, 1) && XXH3_64bits(buf, PAGE_SIZE) == sw->sum[slot])
		return 0;
	atomic_fetch_add(&sw->errors, 1);
	sp_log(SP_LOG_ERR, "swap slot %lu is damaged: its page is lost", slot);
	errno = EIO;
	return -1;
}

/*
 * A copy of a slot in a new one (a sharer of a swapped KSM frame unmerged):
 * bytes and checksum as they are, so damage stays damage. The new slot, or -1.
 */
long swap_copy(struct sp_pool *pool, unsigned long slot)
{
	struct sp_swap *sw = &pool->swap;
	long copy = slot_alloc(sw);

	if (copy < 0)
		return -1;
	if (os_file_copy(sw->fd, (off_t)(slot * PAGE_SIZE),
			 (off_t)((unsigned long)copy * PAGE_SIZE), PAGE_SIZE)) {
		swap_slot_free(pool, (unsigned long)copy);
		errno = EIO;
		return -1;
	}
	sw->sum[copy] = sw->sum[slot];
	return copy;
}

#define SWAP_BATCH 256
#define FAULT_TRIES 8 /* a fault with no memory for it, before SIGBUS */

/* Set a page table entry, keeping the flags someone may be changing meanwhile. */
static void pte_set(_Atomic uint64_t *ptep, enum sp_pte_type type, unsigned long val)
{
	uint64_t old = atomic_load(ptep);

	while (!atomic_compare_exchange_weak(ptep, &old,
					     mk_pte(type, val, old & (PTE_MERGEABLE | PTE_LOST))))
		;
}

/* swap_out_run's work on the locked run from f0. */
static long run_out(struct sp_pool *pool, struct sp_region *r, unsigned long idx, unsigned long n,
		    unsigned long f0)
{
	struct sp_swap *sw = &pool->swap;
	const char *src = pfn_to_virt(pool, f0);
	char *addr = page_addr(r, idx);
	unsigned long m = 1, slot = 0;
	struct sp_window win;
	bool hole;
	int err;

	if (wp_window_open(pool, &win, addr, n << PAGE_SHIFT)) {
		if (errno == ENOMEM && region_mark_lost(pool, r, idx, n))
			return 0;
		return -1;
	}
	/* Asked under the window: a hole can only fill with a write, and none gets in now. */
	hole = frame_is_hole(pool, f0);
	while (m < n && frame_is_hole(pool, f0 + m) == hole)
		m++;
	if (!hole) {
		m = slots_alloc(sw, m, &slot);
		if (!m)
			goto out_close;
		if (slots_write(pool, src, slot, m))
			goto out_slots;
	}
	if (fault_remap_missing(pool, addr, m << PAGE_SHIFT)) {
		err = errno;
		/* A failed MAP_FIXED may have unmapped the old mapping already. */
		fault_restore(pool, addr, m << PAGE_SHIFT, f0, true,
			      "a page after a failed swap-out");
		errno = err;
		goto out_slots;
	}
	for (unsigned long i = 0; i < m; i++)
		pte_set(&r->pte[idx + i], hole ? PTE_NONE : PTE_SWAP, hole ? 0 : slot + i);
	wp_window_close(pool, &win);
	return (long)m;

out_slots:
	err = errno;
	for (unsigned long i = 0; !hole && i < m; i++)
		swap_slot_free(pool, slot + i);
	errno = err;
out_close:
	err = errno;
	wp_window_close(pool, &win);
	errno = err;
	return -1;
}

/*
 * Pages idx.. of r, private, on consecutive frames of one section, that the
 * caller has locked (n of them): out of memory. Their data goes to
 * consecutive slots; frames that are holes (never touched) need no slot. The
 * pages are remapped in missing mode, and their frames are free for others.
 *
 * The n frames are unlocked here: *f0 is the first of them. Returns how many
 * pages from idx went: the caller frees that many frames from *f0. 0: the
 * first page was skipped (the program unmapped it, or it is pinned: a run
 * stops before its first pinned page). -1: error (ENOSPC: swap full),
 * nothing changed.
 */
long swap_out_run(struct sp_pool *pool, struct sp_region *r, unsigned long idx, unsigned long n,
		  unsigned long *f0)
{
	long ret;

	unsigned long m;

	/* Read under the frame lock the caller holds: the entry names the first frame. */
	*f0 = pte_val(atomic_load(&r->pte[idx]));
	move_begin(pool); /* under the frame locks, before the pin check (gup.c) */
	m = pages_unpinned(r, idx, n); /* pinned pages stay, as the kernel's do */
	ret = m ? run_out(pool, r, idx, m, *f0) : 0;
	for (unsigned long k = 0; k < n; k++) /* by frame: the entries changed */
		frame_unlock(pool, *f0 + k);
	move_end(pool);
	return ret;
}

/*
 * Consecutive private pages on consecutive frames of one section, from idx:
 * locked and checked. How many (0: idx is not such a page).
 */
static unsigned long lock_private_run(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
				      unsigned long nr)
{
	uint64_t pte0 = atomic_load(&r->pte[idx]);
	unsigned long n = 0, f0 = pte_val(pte0);

	while (n < nr && n < SWAP_BATCH) {
		uint64_t pte = atomic_load(&r->pte[idx + n]);
		unsigned long f = pte_val(pte);

		if (pte_type(pte) != PTE_PRIVATE || (pte & PTE_LOST) || f != f0 + n ||
		    pfn_to_section(pool, f) != pfn_to_section(pool, f0))
			break;
		frame_lock(pool, f);
		if (atomic_load(&r->pte[idx + n]) != pte) {
			frame_unlock(pool, f);
			break;
		}
		n++;
	}
	return n;
}

/* Page idx when it is not a private page: 1 to go on past it, 0 to look again, -1 error. */
static int swap_out_other(struct sp_pool *pool, struct sp_region *r, unsigned long idx)
{
	uint64_t pte = atomic_load(&r->pte[idx]);

	if ((pte & PTE_LOST) || page_pinned(r, idx))
		return 1;
	switch (pte_type(pte)) {
	case PTE_KSM:
		return ksm_swap_out(pool, pte_val(pte), false) < 0 ? -1 : 1;
	case PTE_COPIED:
		/* The kernel's copy comes back into a pool frame first, then goes. */
		return ksm_unshare(pool, r, idx) ? -1 : 0;
	default:
		return 1; /* swapped already, no frame, or the zero page */
	}
}

int swap_usable(struct sp_pool *pool)
{
	if (!pool) {
		errno = EINVAL;
		return -1;
	}
	if (pool->swap.fd < 0 || !fault_can_swap(pool)) {
		/* No swap area; or no missing faults to bring pages back (SIGSEGV mode). */
		errno = pool->swap.fd < 0 ? ENOSPC : ENOTSUP;
		return -1;
	}
	return 0;
}

int sp_swap_out(sp_pool *pool, void *addr, size_t len)
{
	unsigned long first, nr;
	struct sp_region *r;
	int ret = 0;

	if (swap_usable(pool))
		return -1;
	mutex_lock(&pool->ksm.mutex);
	rwlock_rdlock(&pool->rt.lock);
	r = region_range(pool, addr, len, &first, &nr);
	if (!r)
		ret = -1;
	for (unsigned long i = first; r && !ret && i < first + nr;) {
		unsigned long n = lock_private_run(pool, r, i, first + nr - i), f0;
		long done;

		if (!n) {
			int step = swap_out_other(pool, r, i);

			ret = step < 0 ? -1 : 0;
			i += step > 0;
			continue;
		}
		done = swap_out_run(pool, r, i, n, &f0);
		if (done > 0)
			frames_free_run(pool, f0, (unsigned long)done);
		if (done < 0)
			ret = -1;
		i += done > 0 ? (unsigned long)done : 1;
	}
	rwlock_unlock(&pool->rt.lock);
	mutex_unlock(&pool->ksm.mutex);
	return ret;
}

/*
 * Frames for n pages from idx of r, where its policy allows, reclaiming if
 * it must (frames_alloc_page): fewer if it must (*n). A region with policies
 * gets one: the pages around idx may have others.
 */
static int fault_frames(struct sp_pool *pool, struct sp_region *r, unsigned long idx,
			unsigned long *n, struct sp_run **runs, unsigned *nr_runs, bool reclaim,
			char *why, size_t why_len)
{
	unsigned long mask;
	int prefer;

	policy_nodes(r, idx, &mask, &prefer);
	if (r->nr_policies)
		*n = 1;
	return frames_alloc_page(pool, mask, prefer, n, runs, nr_runs, reclaim ? ALLOC_RECLAIM : 0,
				 why, why_len);
}

/* Pages of one region a fault brings in, ascending (a swap-in's from the fault's own). */
struct fault_set {
	unsigned long n;
	unsigned long idx[READAHEAD];
	unsigned long slot[READAHEAD]; /* PTE_SWAP pages' */
	unsigned long pfn[READAHEAD]; /* the frames they get */
};

/*
 * The set's slots into the read-ahead buffer, one read per stretch of
 * consecutive slots, and checked: how many from the first are good (0: the
 * first is damaged, and counted and logged).
 */
static unsigned long read_slots(struct sp_pool *pool, struct sp_region *r,
				const struct fault_set *set)
{
	struct sp_swap *sw = &pool->swap;
	unsigned long good = 0;

	while (good < set->n) {
		unsigned long slot = set->slot[good], k = 1;
		char *buf = sw->readahead + (good << PAGE_SHIFT);

		while (good + k < set->n && set->slot[good + k] == slot + k)
			k++;
		/* Short or failed: one page at a time says which one is bad. */
		if (slots_read(sw, buf, slot, k)) {
			if (k == 1 || slots_read(sw, buf, slot, 1))
				break;
			k = 1;
		}
		for (unsigned long i = 0; i < k; i++, good++)
			if (XXH3_64bits(buf + (i << PAGE_SHIFT), PAGE_SIZE) != sw->sum[slot + i])
				goto out;
	}
out:
	if (!good) {
		atomic_fetch_add(&sw->errors, 1);
		sp_log(SP_LOG_ERR, "swap slot %lu of the page at %p is damaged: the page is lost",
		       set->slot[0], (void *)page_addr(r, set->idx[0]));
	}
	return good;
}

/* Stretch from set entry i: consecutive pages on consecutive frames. How many. */
static unsigned long set_stretch(const struct fault_set *set, unsigned long i)
{
	unsigned long k = 1;

	while (i + k < set->n && set->idx[i + k] == set->idx[i] + k &&
	       set->pfn[i + k] == set->pfn[i] + k)
		k++;
	return k;
}

/*
 * The set's frames take over its pages: owned, mapped and registered stretch
 * by stretch (a registration over pages skipped in between would replace
 * their modes), then in the page table.
 */
static int map_frames(struct sp_pool *pool, struct sp_region *r, const struct fault_set *set,
		      unsigned long fault_idx)
{
	unsigned long i, k, done = 0;

	for (i = 0; i < set->n; i++) {
		struct sp_page *page = pfn_to_page(pool, set->pfn[i]);

		frame_lock(pool, set->pfn[i]);
		page->owner = r->id;
		page->index = (uint32_t)set->idx[i];
		page->mapcount = 1;
		atomic_store(&page->refcount, 1);
	}
	for (i = 0; i < set->n; i += k, done = i) {
		char *addr = page_addr(r, set->idx[i]);

		k = set_stretch(set, i);
		if (fault_remap(pool, addr, k << PAGE_SHIFT, set->pfn[i], true) ||
		    fault_register(pool, addr, k << PAGE_SHIFT)) {
			done = i + k; /* this one may be half done */
			goto out_undo;
		}
	}
	/*
	 * The faulting page present in the page table the clock reads:
	 * referenced until the hand passes, so that reclaim does not take it
	 * back before the thread we wake has touched it. Here, with the frames
	 * locked and the entries not PRIVATE yet: nothing can have moved it
	 * back to missing mode, where this read would wait for us.
	 */
	for (i = 0; i < set->n; i++)
		if (set->idx[i] == fault_idx) {
			os_populate(page_addr(r, fault_idx), PAGE_SIZE, false);
			break;
		}
	for (i = 0; i < set->n; i++) {
		pte_set(&r->pte[set->idx[i]], PTE_PRIVATE, set->pfn[i]);
		frame_unlock(pool, set->pfn[i]);
	}
	return 0;

out_undo:
	for (i = 0; i < done; i += k) {
		k = set_stretch(set, i);
		fault_restore_missing(pool, page_addr(r, set->idx[i]), k << PAGE_SHIFT,
				      "a page after a failed swap-in");
	}
	for (i = 0; i < set->n; i++)
		frame_unlock(pool, set->pfn[i]);
	return -1;
}

/*
 * How many pages around a fault at page idx to bring in. A reader going
 * through its pages in order faults in or just past the last window (pages
 * still resident in between need nothing), and gets a window twice as big,
 * up to READAHEAD; anyone else gets the one page, so that random faults on a
 * pool short of memory do not bring in pages nobody asked for, which reclaim
 * would only have to write out again (the kernel's swap read-ahead adapts on
 * its hits for the same reason). Worker only.
 */
static unsigned long readahead_window(struct sp_pool *pool, struct sp_region *r, unsigned long idx)
{
	struct sp_swap *sw = &pool->swap;
	uintptr_t addr = (uintptr_t)page_addr(r, idx), span = sw->ra_win << PAGE_SHIFT;

	if (!sw->ra_win || addr + span < sw->ra_next || addr > sw->ra_next + span)
		sw->ra_win = READAHEAD_MIN;
	else if (sw->ra_win < READAHEAD)
		sw->ra_win *= 2;
	/* A reader this sequential gets the next window before it asks (swap_prefetch). */
	sw->ra_prefetch = sw->ra_win == READAHEAD;
	return sw->ra_win;
}

/*
 * The pages around idx that have no frame, as page idx: swapped out
 * (PTE_SWAP), in the window from idx; or never given one (PTE_NONE), in the
 * FAULT_AROUND-aligned block that holds idx, so that first touches in any
 * order give a region one mapping per block, not one per page (each is a
 * vma, and vm.max_map_count counts them). Pages resident in between are
 * stepped over. In page order, so that consecutive frames map in one go.
 */
static void fault_collect(struct sp_region *r, unsigned long idx, unsigned long win,
			  struct fault_set *set)
{
	enum sp_pte_type type = pte_type(atomic_load(&r->pte[idx]));
	unsigned long start = idx;

	if (type == PTE_NONE) {
		start = idx & ~(FAULT_AROUND - 1);
		win = FAULT_AROUND;
	}
	set->n = 0;
	for (unsigned long j = start; j < start + win && j < r->npages && set->n < READAHEAD; j++) {
		uint64_t pte = atomic_load(&r->pte[j]);

		if (pte_type(pte) != type || (pte & (PTE_LOST | PTE_KSMSWAP)))
			continue;
		set->idx[set->n] = j;
		set->slot[set->n++] = pte_val(pte);
	}
}

/*
 * Pages of r around idx that have no frame (fault_collect) get one, with
 * their data from swap. rt.lock held (read). 0 done; -1 the page's slot is
 * damaged (lost); -2 no memory for it now (why says what is missing).
 */
static int fault_in(struct sp_pool *pool, struct sp_region *r, unsigned long idx, bool prefetch,
		    char *why, size_t why_len)
{
	bool swapped = pte_type(atomic_load(&r->pte[idx])) == PTE_SWAP;
	unsigned long win = readahead_window(pool, r, idx), j = 0;
	struct fault_set set = { 0 };
	struct sp_run *runs;
	unsigned nr_runs;

	fault_collect(r, idx, win, &set);
	if (!set.n) /* changed under us (it cannot with rt.lock held): nothing to do */
		return 0;
	pool->swap.ra_next = (uintptr_t)page_addr(r, idx + win);
	if (swapped && !(set.n = read_slots(pool, r, &set)))
		return -1;
	if (fault_frames(pool, r, idx, &set.n, &runs, &nr_runs, !prefetch, why, why_len))
		return -2;
	if (set.n == 1)
		set.idx[0] = idx; /* one frame only: the page the thread waits for */
	/* Written to the memfd, not through the direct map: no fault, no zeroing first. */
	for (unsigned k = 0; k < nr_runs; k++) {
		size_t len = runs[k].nr << PAGE_SHIFT;

		if (swapped && os_memfd_fill(pool->memfd, (off_t)(runs[k].pfn << PAGE_SHIFT),
					     pool->swap.readahead + (j << PAGE_SHIFT), len))
			goto out_free;
		for (unsigned long i = 0; i < runs[k].nr; i++)
			set.pfn[j++] = runs[k].pfn + i;
	}
	if (map_frames(pool, r, &set, idx))
		goto out_free;
	for (unsigned long i = 0; swapped && i < set.n; i++)
		swap_slot_free(pool, set.slot[i]);
	atomic_fetch_add(swapped ? &pool->faults_swapin : &pool->faults_alloc, (long)set.n);
	free(runs);
	return 0;

out_free:
	for (unsigned k = 0; k < nr_runs; k++)
		frames_free_run(pool, runs[k].pfn, runs[k].nr);
	free(runs);
	return -2;
}

/*
 * The worker has nothing queued and a sequential reader is in its last
 * window: bring in the next one now, while the reader works through this
 * one, as the kernel's swap read-ahead does asynchronously. Only from free
 * frames: a prefetch never makes reclaim swap something else out.
 */
void swap_prefetch(struct sp_pool *pool)
{
	struct sp_swap *sw = &pool->swap;
	struct sp_region *r;

	if (!sw->ra_prefetch)
		return;
	sw->ra_prefetch = false;
	rwlock_rdlock(&pool->rt.lock);
	r = region_find(pool, (void *)sw->ra_next);
	if (r) {
		unsigned long idx = region_index(r, (void *)sw->ra_next);
		uint64_t pte = atomic_load(&r->pte[idx]);

		if (pte_type(pte) == PTE_SWAP && !(pte & (PTE_KSMSWAP | PTE_LOST)) &&
		    !fault_in(pool, r, idx, true, NULL, 0))
			sw->ra_prefetch = false; /* the reader's next fault asks again */
	}
	rwlock_unlock(&pool->rt.lock);
}

/* swap_fault's look under the region table lock; *ksm: a KSM slot, for ksm_fault. */
static int fault_look(struct sp_pool *pool, uintptr_t addr, bool *ksm, char *why, size_t why_len)
{
	int ret = 0;

	rwlock_rdlock(&pool->rt.lock);
	for (;;) {
		struct sp_region *r = region_find(pool, (void *)addr);
		unsigned long idx, pfn;
		uint64_t pte;

		if (!r)
			break;
		idx = region_index(r, (void *)addr);
		pte = atomic_load(&r->pte[idx]);
		if (pte & PTE_LOST)
			break;
		if (pte_type(pte) == PTE_SWAP && (pte & PTE_KSMSWAP)) {
			*ksm = true;
			break;
		}
		if (pte_type(pte) == PTE_SWAP || pte_type(pte) == PTE_NONE) {
			ret = fault_in(pool, r, idx, false, why, why_len);
			break;
		}
		if (pte_type(pte) == PTE_ZERO) {
			ret = 1; /* merged with the zero page: map it */
			break;
		}
		if (pte_type(pte) != PTE_PRIVATE && pte_type(pte) != PTE_KSM)
			break;
		/*
		 * A swap-out of it may be finishing: its frame lock says when. Only
		 * tried: the holder may be a migration that wants the table lock
		 * after us, behind a writer (and a frame it frees can take its
		 * descriptor with it); so let go of everything, and look again.
		 */
		pfn = pte_val(pte);
		if (!frame_trylock(pool, pfn)) {
			rwlock_unlock(&pool->rt.lock);
			sched_yield();
			rwlock_rdlock(&pool->rt.lock);
			continue;
		}
		if (atomic_load(&r->pte[idx]) != pte) {
			frame_unlock(pool, pfn);
			continue;
		}
		if (frame_is_hole(pool, pfn)) /* a fault that was stale: harmless */
			(void)*(volatile char *)pfn_to_virt(pool, pfn);
		frame_unlock(pool, pfn);
		break;
	}
	rwlock_unlock(&pool->rt.lock);
	return ret;
}

/*
 * A missing fault at addr (swap-in worker): give the page its frame back, or
 * a frame at all. 0 to wake the thread; 1 to map the zero page there; -1
 * when the page is lost (damaged slot): the caller poisons it, and the
 * thread gets SIGBUS; -2 when there is no memory for it, tried a few times:
 * SIGBUS, and the page stays swapped for a later touch.
 */
int swap_fault(struct sp_pool *pool, uintptr_t addr)
{
	unsigned waited_ms = 0;
	char why[160] = "";

	for (int tries = 0;;) {
		bool ksm = false;
		int ret = fault_look(pool, addr, &ksm, why, sizeof(why));

		/* Busy pages where it may go: wait for them with no lock held. */
		if (ret == -2 && reclaim_wait(pool, &waited_ms))
			continue;
		/* A KSM frame's slot: the KSM mutex comes before the table lock. */
		if (ksm && (ret = ksm_fault(pool, addr)) == KSM_FAULT_AGAIN)
			continue;
		if (ret != -2)
			return ret;
		/*
		 * No frame, or the kernel failed to fill or map one (EIO, ENOMEM
		 * of a mapping): a moment's, as likely as not; reclaim may free
		 * a frame meanwhile. A SIGBUS only when it stays so.
		 */
		if (++tries == FAULT_TRIES) {
			sp_log(SP_LOG_ERR, "no frame for the page at %p: %s", (void *)addr,
			       why[0] ? why : "the kernel failed to fill or map it");
			return ret;
		}
		usleep(1000);
	}
}
