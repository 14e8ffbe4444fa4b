/* SPDX-License-Identifier: MIT */
/*
 * libsamepage-preload.so: a program that was never written for samepage
 * gets its malloc family served from a samepage pool (`samepage run`, or
 * LD_PRELOAD and the SAMEPAGE_* variables by hand; samepage(1)).
 *
 * The allocator is mimalloc (Debian's libmimalloc 2.0.9), handed regions of
 * the pool as arenas (mi_manage_os_memory_ex) as the heap grows, with OS
 * allocations switched off (mi_option_limit_os_alloc), so that every block
 * it hands out lies in a mergeable region of the pool. Why mimalloc, and
 * what it is told, is in docs/design.md ("samepage run").
 *
 * Three kinds of caller keep glibc's malloc: samepage's own threads (ksmd,
 * the fault handler, reclaim, the socket: they must never fault on a page
 * they are themselves resolving), everything before the pool is up, and a
 * child of fork(), which does not have the pool's memory (MADV_DONTFORK).
 * free() and realloc() tell the two apart by address, so a block may be
 * freed by any thread whatever kind allocated it.
 */
#include <dlfcn.h>
#include <link.h>
#include <malloc.h>
#include <mimalloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "samepage.h"

#include "os.h"
#include "preload.h"
#include "preload_env.h"

#define PUBLIC __attribute__((visibility("default")))
/*
 * mimalloc 2.0 carves arenas into 32 MiB segments that must be aligned to
 * their size; the pool's region is handed over in chunks of at least that.
 */
#define ARENA_ALIGN (32UL << 20)
#define MIN_CHUNK ARENA_ALIGN
/* A huge block's segment: the block, mimalloc's header slice, its alignment. */
#define HUGE_EXTRA (1UL << 20)
#define SECTION_SIZE (64UL << 20)
#define MAX_CHUNKS 48

void *__libc_malloc(size_t size);
void __libc_free(void *p);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t size);
void *__libc_memalign(size_t align, size_t size);

typedef int (*pthread_create_fn)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);

static struct {
	sp_pool *pool;
	struct chunk {
		uintptr_t lo, hi;
	} chunks[MAX_CHUNKS]; /* mimalloc's arenas: a block is its iff it lies in one */
	atomic_uint nr_chunks; /* only grows: readers need no lock */
	size_t limit, managed; /* most bytes the arenas may have; bytes they have */
	unsigned next_section, max_sections; /* the pool's, onlined as arenas grow */
	pthread_mutex_t grow_lock;
	size_t min_alloc;
	pid_t pid; /* the process the pool belongs to */
	atomic_bool ready;
	bool forked; /* a child of fork(): the chunks are not mapped here */
	uintptr_t text_lo, text_hi; /* this object: samepage's thread functions */
	atomic_ulong fallbacks; /* requests the arena could not serve */
	pthread_create_fn real_pthread_create;
	size_t (*real_usable_size)(void *p);
	struct sigaction child_old_segv;
} pl;

/* Set on samepage's own threads, and while the pool is being set up. */
static __thread bool sp_internal;

static inline bool in_arena(const void *p)
{
	unsigned n = atomic_load_explicit(&pl.nr_chunks, memory_order_acquire);

	for (unsigned i = 0; i < n; i++)
		if ((uintptr_t)p - pl.chunks[i].lo < pl.chunks[i].hi - pl.chunks[i].lo)
			return true;
	return false;
}

static inline bool use_pool(size_t size)
{
	return atomic_load_explicit(&pl.ready, memory_order_acquire) && !pl.forked &&
	       !sp_internal && size >= pl.min_alloc;
}

static bool grow(size_t size);

/* mimalloc is at work on this thread: its own mmap calls go to the kernel. */
static __thread bool in_pool_alloc;

/* f(args) from the arena, which grows while the pool has room; NULL: glibc's turn. */
#define FROM_POOL(size, call)             \
	({                                \
		void *p_;                 \
		in_pool_alloc = true;     \
		p_ = call;                \
		while (!p_ && grow(size)) \
			p_ = call;        \
		in_pool_alloc = false;    \
		p_;                       \
	})

static inline void *fell_back(void)
{
	atomic_fetch_add_explicit(&pl.fallbacks, 1, memory_order_relaxed);
	return NULL;
}

/* ---- for preload_mmap.c ------------------------------------------------ */

bool preload_in_pool(const void *p)
{
	return in_arena(p);
}

bool preload_forked(void)
{
	return pl.forked;
}

sp_pool *preload_pool(void)
{
	return pl.pool;
}

void *preload_pool_zalloc(size_t len)
{
	void *p = NULL;

	if (!use_pool(len) || in_pool_alloc)
		return NULL;
	p = FROM_POOL(len + SP_PAGE_SIZE, mi_zalloc_aligned(len, SP_PAGE_SIZE));
	if (!p)
		fell_back();
	return p;
}

bool preload_internal(bool set)
{
	bool was = sp_internal;

	sp_internal = set;
	return was;
}

/* ---- the malloc family ------------------------------------------------- */

PUBLIC void *malloc(size_t size)
{
	if (use_pool(size)) {
		void *p = FROM_POOL(size, mi_malloc(size));

		if (p)
			return p;
		fell_back();
	}
	return __libc_malloc(size);
}

PUBLIC void free(void *p)
{
	if (!in_arena(p))
		__libc_free(p);
	else if (!pl.forked)
		mi_free(p);
	/* a child's copy of a parent's block: there is nothing to free here */
}

PUBLIC void *calloc(size_t n, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes))
		bytes = SIZE_MAX; /* both allocators fail it with ENOMEM */
	if (use_pool(bytes)) {
		void *p = FROM_POOL(bytes, mi_calloc(n, size));

		if (p)
			return p;
		fell_back();
	}
	return __libc_calloc(n, size);
}

/* A block moves between the allocators: a copy, as glibc's realloc does. */
static void *realloc_move(void *p, size_t old, size_t size)
{
	void *q = malloc(size);

	if (!q)
		return NULL;
	memcpy(q, p, old < size ? old : size);
	free(p);
	return q;
}

PUBLIC void *realloc(void *p, size_t size)
{
	if (!p)
		return malloc(size);
	if (!size) {
		free(p);
		return NULL;
	}
	if (!in_arena(p)) {
		/* Grown past --min-alloc (or born before the pool): it moves in. */
		if (use_pool(size))
			return realloc_move(p, malloc_usable_size(p), size);
		return __libc_realloc(p, size);
	}
	if (use_pool(size)) {
		void *q = FROM_POOL(size, mi_realloc(p, size));

		if (q)
			return q;
		fell_back();
	}
	/* A child reads its parent's block here, and faults as samepage(1) says. */
	return realloc_move(p, mi_usable_size(p), size);
}

PUBLIC void *reallocarray(void *p, size_t n, size_t size)
{
	size_t bytes;

	if (__builtin_mul_overflow(n, size, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(p, bytes);
}

static void *aligned(size_t align, size_t size)
{
	/* glibc rounds a bad alignment up; mimalloc refuses it: glibc's then. */
	if (use_pool(size) && align && !(align & (align - 1))) {
		void *p = FROM_POOL(size + align, mi_malloc_aligned(size, align));

		if (p)
			return p;
		fell_back();
	}
	return __libc_memalign(align, size);
}

PUBLIC void *memalign(size_t align, size_t size)
{
	return aligned(align, size);
}

PUBLIC void *aligned_alloc(size_t align, size_t size)
{
	return aligned(align, size);
}

PUBLIC int posix_memalign(void **out, size_t align, size_t size)
{
	void *p;

	if (!align || (align & (align - 1)) || align % sizeof(void *))
		return EINVAL;
	p = aligned(align, size);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

PUBLIC void *valloc(size_t size)
{
	return aligned(SP_PAGE_SIZE, size);
}

PUBLIC void *pvalloc(size_t size)
{
	size_t bytes;

	if (__builtin_add_overflow(size, SP_PAGE_SIZE - 1, &bytes)) {
		errno = ENOMEM;
		return NULL;
	}
	return aligned(SP_PAGE_SIZE, (bytes & ~(size_t)(SP_PAGE_SIZE - 1)) ?: SP_PAGE_SIZE);
}

PUBLIC size_t malloc_usable_size(void *p)
{
	if (in_arena(p))
		return pl.forked ? 0 : mi_usable_size(p);
	if (!pl.real_usable_size)
		pl.real_usable_size = (size_t(*)(void *))dlsym(RTLD_NEXT, "malloc_usable_size");
	return p && pl.real_usable_size ? pl.real_usable_size(p) : 0;
}

/* ---- samepage's own threads -------------------------------------------- */

struct start {
	void *(*fn)(void *);
	void *arg;
};

/* Runs first on a thread of samepage's: glibc's malloc, no signals. */
static void *internal_start(void *v)
{
	struct start s = *(struct start *)v;
	sigset_t all;

	sp_internal = true;
	__libc_free(v);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, NULL);
	return s.fn(s.arg);
}

/*
 * Every pthread_create of the process passes here; those whose thread
 * function is samepage's code (linked into this object) are marked.
 */
PUBLIC int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
	struct start *s;
	int err;

	if (!pl.real_pthread_create)
		pl.real_pthread_create = (pthread_create_fn)dlsym(RTLD_NEXT, "pthread_create");
	if (!pl.real_pthread_create)
		return EAGAIN;
	if (!preload_own_code((void *)(uintptr_t)fn))
		return pl.real_pthread_create(t, attr, fn, arg);
	s = __libc_malloc(sizeof(*s));
	if (!s)
		return EAGAIN;
	s->fn = fn;
	s->arg = arg;
	err = pl.real_pthread_create(t, attr, internal_start, s);
	if (err)
		__libc_free(s);
	return err;
}

bool preload_own_code(const void *addr)
{
	return (uintptr_t)addr - pl.text_lo < pl.text_hi - pl.text_lo;
}

static int find_text(struct dl_phdr_info *info, size_t size, void *data)
{
	uintptr_t me = (uintptr_t)data;

	(void)size;
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		uintptr_t lo = info->dlpi_addr + ph->p_vaddr;

		if (ph->p_type == PT_LOAD && (ph->p_flags & PF_X) && me - lo < ph->p_memsz) {
			pl.text_lo = lo;
			pl.text_hi = lo + ph->p_memsz;
			return 1;
		}
	}
	return 0;
}

/* ---- fork -------------------------------------------------------------- */

/*
 * In a child the arena is gone (pool memory is MADV_DONTFORK). Its range is
 * fenced off so that nothing else is mapped there, and a touch of it ends
 * the child with a line that says why and SIGSEGV; other faults go to the
 * handler the program had.
 */
static void child_segv(int sig, siginfo_t *si, void *uc)
{
	static const char msg[] = "samepage: a child of fork() touched memory of its parent's "
				  "pool, which it does not have (samepage(1), FORK)\n";

	(void)uc;
	if (in_arena(si->si_addr)) {
		ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);

		(void)n;
		signal(sig, SIG_DFL);
		return; /* the access faults again, now fatally */
	}
	sigaction(SIGSEGV, &pl.child_old_segv, NULL);
}

static void after_fork_child(void)
{
	struct sigaction sa = { .sa_sigaction = child_segv, .sa_flags = SA_SIGINFO | SA_NODEFER };

	if (!atomic_load(&pl.ready))
		return;
	pl.forked = true;
	for (unsigned i = 0; i < pl.nr_chunks; i++)
		os_map_none((void *)pl.chunks[i].lo, pl.chunks[i].hi - pl.chunks[i].lo);
	sigaction(SIGSEGV, &sa, &pl.child_old_segv);
}

/* ---- set-up ------------------------------------------------------------ */

static bool strict; /* this process was started by `samepage run` */

static void __attribute__((format(printf, 1, 2))) fail(const char *fmt, ...)
{
	va_list ap;

	fputs("samepage: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	if (strict) {
		fputs("\n", stderr);
		_exit(127);
	}
	fputs("; running without samepage\n", stderr);
}

static int env_size(const char *name, size_t def, size_t *out)
{
	const char *v = getenv(name);

	*out = def;
	if (!v || !*v)
		return 0;
	if (sp_parse_size(v, out)) {
		fail("%s=%s: not a size (bytes, or with K, M, G, T)", name, v);
		return -1;
	}
	return 0;
}

/* SAMEPAGE_KNOBS="pages_to_scan=5000,sleep_millisecs=10" */
static int set_knobs(sp_pool *pool)
{
	const char *v = getenv(SP_ENV_KNOBS);
	char buf[1024], *save, *kv;

	if (!v || !*v)
		return 0;
	if (strlen(v) >= sizeof(buf)) {
		fail("%s: too long", SP_ENV_KNOBS);
		return -1;
	}
	strcpy(buf, v);
	for (kv = strtok_r(buf, ",", &save); kv; kv = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(kv, '='), *end;
		long val;

		if (!eq)
			goto out_bad;
		*eq = 0;
		errno = 0;
		val = strtol(eq + 1, &end, 10);
		if (errno || end == eq + 1 || *end)
			goto out_bad;
		if (sp_ksm_set(pool, kv, val)) {
			fail("%s: %s=%ld: %s", SP_ENV_KNOBS, kv, val, strerror(errno));
			return -1;
		}
	}
	return 0;
out_bad:
	fail("%s: '%s' is not NAME=NUMBER", SP_ENV_KNOBS, kv);
	return -1;
}

static int export_socket(sp_pool *pool)
{
	const char *v = getenv(SP_ENV_SOCKET);
	char path[256], dir[256];

	if (v && !*v)
		return 0; /* SAMEPAGE_SOCKET="": none */
	if (v) {
		snprintf(path, sizeof(path), "%s", v);
	} else {
		if (sp_run_dir(dir, sizeof(dir)) || sp_run_socket(getpid(), path, sizeof(path))) {
			fail("the socket's directory: %s", strerror(errno));
			return -1;
		}
		if (mkdir(dir, 0700) && errno != EEXIST) {
			fail("%s: %s", dir, strerror(errno));
			return -1;
		}
		sp_run_sweep(dir);
	}
	if (sp_pool_export(pool, path)) {
		fail("%s: %s", path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * Unless SAMEPAGE_CHILDREN=1, the programs this one execs run without
 * samepage: this library leaves LD_PRELOAD (every word naming it), since a
 * descendant that forks, as a shell does for a pipe, would fail (FORK in
 * samepage(1)).
 */
static void leave_ld_preload(void)
{
	const char *v = getenv("LD_PRELOAD"), *children = getenv(SP_ENV_CHILDREN);
	char buf[4096], out[4096], *save, *word;
	size_t n = 0;

	if (!v || (children && !strcmp(children, "1")) || strlen(v) >= sizeof(buf))
		return;
	strcpy(buf, v);
	for (word = strtok_r(buf, ": ", &save); word; word = strtok_r(NULL, ": ", &save)) {
		const char *base = strrchr(word, '/');

		if (!strcmp(base ? base + 1 : word, SP_PRELOAD_NAME))
			continue;
		n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%s", n ? ":" : "", word);
	}
	if (n)
		setenv("LD_PRELOAD", out, 1);
	else
		unsetenv("LD_PRELOAD");
}

static void set_mimalloc_options(void)
{
	mi_option_set(mi_option_limit_os_alloc, 1); /* the arena, nothing else */
	mi_option_set(mi_option_allow_decommit, 0); /* see docs/design.md */
	mi_option_set(mi_option_page_reset, 0);
	mi_option_set(mi_option_abandoned_page_decommit, 0);
	mi_option_set(mi_option_eager_commit, 1);
	mi_option_set(mi_option_show_errors, 0); /* a full arena is no error here */
	mi_option_set(mi_option_reserve_os_memory, 0);
}

/*
 * The next arena after managed bytes: a quarter of what there is (32 MiB at
 * least, in 32 MiB steps), so that at most about a fifth of the arenas is
 * unused (ksmd scans what mimalloc was handed), in few enough arenas for
 * mimalloc's table (64) and a quick free(); more if a block needs it.
 */
static size_t chunk_after(size_t managed, size_t need)
{
	size_t chunk = (managed / 4) & ~(ARENA_ALIGN - 1);

	if (chunk < MIN_CHUNK)
		chunk = MIN_CHUNK;
	need = (need + HUGE_EXTRA + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
	return chunk > need ? chunk : need;
}

/* Online sections until the pool has bytes free and a section more; -1 if it cannot. */
static int online_for(size_t bytes)
{
	long free_frames = 0;
	long want = (long)((bytes + SECTION_SIZE) / SP_PAGE_SIZE);

	while (!sp_stat(pl.pool, "frames_free", &free_frames) && free_frames < want) {
		if (pl.next_section >= pl.max_sections) {
			errno = ENOMEM;
			return -1;
		}
		if (sp_section_online(pl.pool, pl.next_section++))
			return -1;
	}
	return 0;
}

/*
 * One more arena for mimalloc, as large as all before it together: a region
 * of the pool, made mergeable, its frames from sections onlined for it, so
 * that what the program does not use costs neither frames nor scanning.
 * false: the pool is full (or samepage could not): glibc's turn.
 */
static bool grow(size_t size)
{
	unsigned n = atomic_load_explicit(&pl.nr_chunks, memory_order_acquire);
	bool was = sp_internal, ok = false;
	uintptr_t at;
	mi_arena_id_t id;
	size_t chunk;
	char *base;

	pthread_mutex_lock(&pl.grow_lock);
	if (pl.nr_chunks != n) { /* another thread grew it meanwhile */
		ok = true;
		goto out_unlock;
	}
	if (size > pl.limit)
		goto out_unlock; /* glibc's, at once */
	chunk = chunk_after(pl.managed, size);
	if (chunk > pl.limit - pl.managed)
		chunk = pl.limit - pl.managed;
	if (chunk < ARENA_ALIGN || n == MAX_CHUNKS)
		goto out_unlock;
	sp_internal = true; /* samepage's calls allocate: from glibc */
	if (online_for(chunk + ARENA_ALIGN))
		goto out_internal;
	/*
	 * mimalloc wants it aligned. A new mapping tends to land just below the
	 * last, which is aligned and a multiple of the alignment long: then it
	 * is aligned too. Else a region with slack, which stays unmergeable and
	 * untouched (frames, no memory).
	 */
	base = sp_alloc(pl.pool, chunk, 0);
	if (base && ((uintptr_t)base & (ARENA_ALIGN - 1))) {
		sp_free(pl.pool, base);
		base = sp_alloc(pl.pool, chunk + ARENA_ALIGN, 0);
	}
	if (!base)
		goto out_internal;
	at = ((uintptr_t)base + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
	if (sp_madvise(pl.pool, (void *)at, chunk, SP_MADV_MERGEABLE) ||
	    !mi_manage_os_memory_ex((void *)at, chunk, true, false, true, -1, false, &id)) {
		sp_free(pl.pool, base);
		goto out_internal;
	}
	pl.chunks[n] = (struct chunk){ at, at + chunk };
	atomic_store_explicit(&pl.nr_chunks, n + 1, memory_order_release);
	pl.managed += chunk;
	ok = true;
out_internal:
	sp_internal = was;
out_unlock:
	pthread_mutex_unlock(&pl.grow_lock);
	return ok;
}

static sp_pool *make_pool(size_t arena)
{
	struct sp_pool_config cfg = { .section_size = SECTION_SIZE };
	size_t swap_size;
	sp_pool *pool;

	/*
	 * Sections for the first arena now, the rest as arenas come: all the
	 * arenas, each one's alignment slack, and room for copies on write.
	 */
	size_t most = arena + 2 * SECTION_SIZE;

	for (size_t a = 0, n = 0; a < arena && n < MAX_CHUNKS; a += chunk_after(a, 0), n++)
		most += ARENA_ALIGN;
	cfg.max_sections = (unsigned)((most + SECTION_SIZE - 1) / SECTION_SIZE);
	cfg.nr_sections = (MIN_CHUNK + ARENA_ALIGN) / SECTION_SIZE + 2;
	if (cfg.nr_sections > cfg.max_sections)
		cfg.nr_sections = cfg.max_sections;
	pl.next_section = cfg.nr_sections;
	pl.max_sections = cfg.max_sections;
	cfg.swap_path = getenv(SP_ENV_SWAP);
	if (cfg.swap_path && !*cfg.swap_path)
		cfg.swap_path = NULL;
	if (env_size(SP_ENV_SWAP_SIZE, 0, &swap_size))
		return NULL;
	cfg.swap_size = swap_size;
	if (getenv(SP_ENV_NO_KSMD) && !strcmp(getenv(SP_ENV_NO_KSMD), "1"))
		cfg.flags |= SP_POOL_NO_KSMD;
	if (getenv(SP_ENV_FAULT_MODE) && !strcmp(getenv(SP_ENV_FAULT_MODE), "sigsegv"))
		cfg.flags |= SP_POOL_SIGSEGV;
	pool = sp_pool_create(&cfg);
	if (!pool)
		fail("creating the pool (%zu bytes): %s", arena, strerror(errno));
	else if (cfg.swap_path)
		unlink(cfg.swap_path); /* open: nothing is left behind at exit */
	return pool;
}

static void __attribute__((constructor)) preload_init(void)
{
	const char *s = getenv(SP_ENV_STRICT);
	size_t arena;
	sp_pool *pool;

	sp_internal = true;
	strict = s && atoi(s) == getpid();
	leave_ld_preload();
	dl_iterate_phdr(find_text, (void *)(uintptr_t)&preload_init);
	if (env_size(SP_ENV_POOL_SIZE, SP_DEFAULT_POOL_SIZE, &arena) ||
	    env_size(SP_ENV_MIN_ALLOC, 0, &pl.min_alloc))
		goto out;
	arena = (arena + ARENA_ALIGN - 1) & ~(ARENA_ALIGN - 1);
	if (!arena) {
		fail("%s: 0 bytes", SP_ENV_POOL_SIZE);
		goto out;
	}
	set_mimalloc_options();
	preload_signal_before();
	pool = make_pool(arena);
	if (!pool)
		goto out;
	pl.pool = pool;
	pl.limit = arena;
	pthread_mutex_init(&pl.grow_lock, NULL);
	if (set_knobs(pool))
		goto out_destroy;
	if (!grow(0)) {
		fail("the heap's first arena (%zu bytes): %s",
		     arena < MIN_CHUNK ? arena : MIN_CHUNK, strerror(errno));
		goto out_destroy;
	}
	if (export_socket(pool))
		goto out_destroy;
	pl.pid = getpid();
	pthread_atfork(NULL, NULL, after_fork_child);
	preload_signal_after(pool);
	atomic_store_explicit(&pl.ready, true, memory_order_release);
	sp_internal = false;
	return;

out_destroy:
	/* mimalloc keeps an arena it was given: it is never used, the pool never ready */
	sp_pool_destroy(pool);
	atomic_store(&pl.nr_chunks, 0);
out:
	preload_signal_after(NULL);
	sp_internal = false;
}

/*
 * At exit the socket goes, and how many requests the pool could not serve
 * is said if any; the pool stays until the process is gone, since
 * destructors that run after this one may still free blocks of the arena.
 * A child of fork() leaves its parent's socket alone.
 */
static void __attribute__((destructor)) preload_fini(void)
{
	if (!atomic_load(&pl.ready) || pl.forked || getpid() != pl.pid)
		return;
	sp_internal = true;
	sp_pool_unexport(pl.pool);
	if (atomic_load(&pl.fallbacks))
		fprintf(stderr,
			"samepage: %lu allocations were served by glibc's malloc: the pool was "
			"full (--pool-size, SAMEPAGE_POOL_SIZE)\n",
			atomic_load(&pl.fallbacks));
}
