/* SPDX-License-Identifier: MIT */
/*
 * samepage estimate --pid PID [--json]: what merging would save in a running
 * process, read from /proc/PID/{maps,pagemap,mem} without stopping it.
 *
 * The pages looked at are those kernel KSM could merge: anonymous pages in
 * private, readable, writable mappings (heap, stacks, anonymous mappings and
 * the copied-on-write pages of private file mappings). Pages that are not
 * present (never touched, or swapped out), pages still in the page cache
 * (private file pages not yet written) and pages mapping the shared zero
 * page are skipped: merging them would save nothing.
 *
 * Each page read is hashed with XXH3 and counted in a hash table keyed by the
 * hash alone. Two different pages with the same 64-bit XXH3 hash are counted
 * as one content; for an estimate that risk (about n^2 / 2^65 for n pages) is
 * negligible, so no copy of the content is kept to compare.
 *
 * The figures are the kernel's: a content found on n >= 2 pages gives one
 * pages_shared (the page kept) and n - 1 pages_sharing (the pages freed). Zero
 * pages are counted like any other content, as KSM does with use_zero_pages=0,
 * and also on their own in zero_pages. The process keeps running: what
 * changes during the scan is read as it is found.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "cmds.h"

#define CHUNK_PAGES 1024 /* pages per read of pagemap and mem */
#define PM_PRESENT (1ull << 63)
#define PM_SWAP (1ull << 62)
#define PM_FILE (1ull << 61) /* page cache (or shared anonymous) page */
#define PM_PFN_MASK ((1ull << 55) - 1)
#define KPF_ZERO_PAGE 24 /* /proc/kpageflags: the shared zero page */

enum kind { K_HEAP, K_STACK, K_ANON, K_FILE, NR_KINDS };

static const char *const kind_names[NR_KINDS] = { "heap", "stack", "anonymous", "file_private" };

struct vma {
	unsigned long start, end;
	enum kind kind;
};

struct slot {
	uint64_t hash;
	uint32_t count; /* 0: free slot */
};

struct figures {
	long scanned, distinct, shared, sharing, zero;
	long not_present, swapped, page_cache, zero_pfn, unreadable;
	long kind_scanned[NR_KINDS], kind_freed[NR_KINDS];
};

struct est {
	pid_t pid;
	int json, tty;
	size_t psize;
	int mem_fd, pm_fd, kpf_fd;
	uint64_t zero_hash;
	struct vma *vmas;
	size_t nr_vmas;
	struct slot *slots;
	size_t cap, used;
	unsigned char *buf;
	uint64_t *pm;
	unsigned long total_pages, done_pages;
	double last_progress;
	struct figures f;
};

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage estimate --pid PID [--json]\n"
		   "  what merging the process's private memory would save, read from /proc\n"
		   "  without stopping it\n"
		   "  --pid PID   the process (same uid or root)\n"
		   "  --json      one JSON object instead of a table\n"
		   "  --version   print samepage's version\n");
}

/* 0 ok, 1 --help, 2 bad arguments (said why), 3 --version. */
static int parse_args(int argc, char **argv, struct est *e)
{
	static const struct option opts[] = { { "pid", required_argument, NULL, 'p' },
					      { "json", no_argument, NULL, 'j' },
					      { "help", no_argument, NULL, 'h' },
					      OPT_VERSION,
					      { 0 } };
	char *end;
	long pid;
	int c;

	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:p:jh", opts, NULL)) != -1) {
		if (c == 'h')
			return 1;
		if (c == 'V')
			return 3;
		if (c == 'j') {
			e->json = 1;
			continue;
		}
		if (c != 'p') {
			option_error("estimate", c, argv);
			return 2;
		}
		errno = 0;
		pid = strtol(optarg, &end, 10);
		if (errno || *end || end == optarg || pid < 1 || pid > INT32_MAX) {
			fprintf(stderr, "samepage estimate: bad pid: %s\n", optarg);
			return 2;
		}
		e->pid = (pid_t)pid;
	}
	if (optind < argc) {
		fprintf(stderr, "samepage estimate: unexpected argument: %s\n", argv[optind]);
		return 2;
	}
	if (!e->pid) {
		fprintf(stderr, "samepage estimate: --pid is required\n");
		return 2;
	}
	return 0;
}

static int open_proc(pid_t pid, const char *name)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == ENOENT)
		errno = ESRCH;
	if (errno == EACCES || errno == EPERM)
		fprintf(stderr,
			"samepage estimate: pid %d: %s: reading another process's memory needs "
			"the same uid (and ptrace permission) or root\n",
			(int)pid, strerror(errno));
	else
		fprintf(stderr, "samepage estimate: pid %d: %s: %s\n", (int)pid, name,
			strerror(errno));
	return -1;
}

static enum kind kind_of(const char *path)
{
	if (!strcmp(path, "[heap]"))
		return K_HEAP;
	if (!strcmp(path, "[stack]") || !strncmp(path, "[stack:", 7))
		return K_STACK;
	if (!*path || *path == '[')
		return K_ANON; /* no name, [anon:name] and the like */
	return K_FILE;
}

/* 1 if the mapping is one to scan (filled in *v), 0 if not. */
static int parse_maps_line(char *line, struct vma *v)
{
	static const char *const special[] = { "[vvar]", "[vvar_vclock]", "[vdso]", "[vsyscall]" };
	unsigned long start, end;
	char perms[5], *path;
	int off = 0;

	if (sscanf(line, "%lx-%lx %4s %*s %*s %*s %n", &start, &end, perms, &off) < 3 || !off)
		return 0;
	if (perms[0] != 'r' || perms[1] != 'w' || perms[3] != 'p')
		return 0; /* not readable, not writable, or shared */
	path = line + off;
	path[strcspn(path, "\n")] = '\0';
	for (size_t i = 0; i < sizeof(special) / sizeof(special[0]); i++)
		if (!strcmp(path, special[i]))
			return 0;
	*v = (struct vma){ .start = start, .end = end, .kind = kind_of(path) };
	return 1;
}

static int add_vma(struct est *e, const struct vma *v, size_t *cap)
{
	struct vma *n;

	if (e->nr_vmas == *cap) {
		*cap = *cap ? *cap * 2 : 64;
		n = realloc(e->vmas, *cap * sizeof(*n));
		if (!n)
			return -1;
		e->vmas = n;
	}
	e->vmas[e->nr_vmas++] = *v;
	e->total_pages += (v->end - v->start) / e->psize;
	return 0;
}

static int read_maps(struct est *e)
{
	char *line = NULL;
	size_t len = 0, cap = 0;
	struct vma v;
	int fd, ret = -1;
	FILE *f;

	fd = open_proc(e->pid, "maps");
	if (fd < 0)
		return -1;
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		goto fail;
	}
	while (getline(&line, &len, f) > 0)
		if (parse_maps_line(line, &v) && add_vma(e, &v, &cap))
			goto out;
	ret = ferror(f) ? -1 : 0;
out:
	free(line);
	fclose(f);
	if (!ret)
		return 0;
fail:
	fprintf(stderr, "samepage estimate: pid %d: reading maps: %s\n", (int)e->pid,
		strerror(errno));
	return -1;
}

static int table_grow(struct est *e)
{
	size_t cap = e->cap ? e->cap * 2 : 1 << 16;
	struct slot *s = calloc(cap, sizeof(*s));

	if (!s)
		return -1;
	for (size_t i = 0; i < e->cap; i++) {
		size_t j = e->slots[i].hash & (cap - 1);

		if (!e->slots[i].count)
			continue;
		while (s[j].count)
			j = (j + 1) & (cap - 1);
		s[j] = e->slots[i];
	}
	free(e->slots);
	e->slots = s;
	e->cap = cap;
	return 0;
}

/* Count one more page with this hash; returns how many were seen before, -1 on ENOMEM. */
static long table_add(struct est *e, uint64_t hash)
{
	size_t i;

	if (e->used * 10 >= e->cap * 7 && table_grow(e))
		return -1;
	for (i = hash & (e->cap - 1); e->slots[i].count; i = (i + 1) & (e->cap - 1))
		if (e->slots[i].hash == hash)
			return (long)e->slots[i].count++;
	e->slots[i] = (struct slot){ .hash = hash, .count = 1 };
	e->used++;
	return 0;
}

static int all_zero(const unsigned char *p, size_t n)
{
	return !p[0] && !memcmp(p, p + 1, n - 1);
}

/* Does this pfn hold the shared zero page? Only known to root (pfns read as 0 otherwise). */
static int is_zero_pfn(struct est *e, uint64_t pfn)
{
	uint64_t flags;

	if (e->kpf_fd < 0 || !pfn)
		return 0;
	if (pread(e->kpf_fd, &flags, sizeof(flags), (off_t)(pfn * sizeof(flags))) !=
	    (ssize_t)sizeof(flags))
		return 0;
	return (flags >> KPF_ZERO_PAGE) & 1;
}

static int count_page(struct est *e, const unsigned char *page, uint64_t pme, enum kind k)
{
	uint64_t hash = XXH3_64bits(page, e->psize);
	long seen;

	if (hash == e->zero_hash && all_zero(page, e->psize)) {
		if (is_zero_pfn(e, pme & PM_PFN_MASK)) {
			e->f.zero_pfn++; /* already shared by the kernel: nothing to save */
			return 0;
		}
		e->f.zero++;
	}
	seen = table_add(e, hash);
	if (seen < 0)
		return -1;
	e->f.scanned++;
	e->f.kind_scanned[k]++;
	e->f.distinct += seen == 0;
	e->f.shared += seen == 1;
	if (seen) {
		e->f.sharing++;
		e->f.kind_freed[k]++; /* the first page seen is kept, later ones freed */
	}
	return 0;
}

/* Pages [first, first + n) of the chunk at addr, all present: read and count them. */
static int read_run(struct est *e, const struct vma *v, unsigned long addr, size_t first, size_t n)
{
	unsigned char *dst = e->buf + first * e->psize;
	size_t len = n * e->psize;
	int whole;

	addr += first * e->psize;
	whole = pread(e->mem_fd, dst, len, (off_t)addr) == (ssize_t)len;
	for (size_t i = 0; i < n; i++) {
		unsigned char *page = dst + i * e->psize;

		if (!whole && pread(e->mem_fd, page, e->psize, (off_t)(addr + i * e->psize)) !=
				      (ssize_t)e->psize) {
			e->f.unreadable++;
			continue;
		}
		if (count_page(e, page, e->pm[first + i], v->kind))
			return -1;
	}
	return 0;
}

/* Keep PM_PRESENT only on the pages to read; count the others. */
static void sort_out(struct est *e, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint64_t pme = e->pm[i];

		if (!(pme & PM_PRESENT)) {
			if (pme & PM_SWAP)
				e->f.swapped++;
			else
				e->f.not_present++;
			e->pm[i] = 0;
		} else if (pme & PM_FILE) {
			e->f.page_cache++;
			e->pm[i] = 0;
		}
	}
}

static int scan_chunk(struct est *e, const struct vma *v, unsigned long addr, size_t n)
{
	off_t off = (off_t)(addr / e->psize * sizeof(uint64_t));
	ssize_t len = (ssize_t)(n * sizeof(uint64_t));
	size_t i = 0, j;

	if (pread(e->pm_fd, e->pm, (size_t)len, off) != len) {
		e->f.unreadable += (long)n; /* the mapping or the process went away */
		return 0;
	}
	sort_out(e, n);
	while (i < n) {
		if (!(e->pm[i] & PM_PRESENT)) {
			i++;
			continue;
		}
		for (j = i; j < n && (e->pm[j] & PM_PRESENT); j++)
			;
		if (read_run(e, v, addr, i, j - i))
			return -1;
		i = j;
	}
	return 0;
}

static void progress(struct est *e, int last)
{
	double t = now();

	if (!e->tty || (!last && t - e->last_progress < 0.2))
		return;
	e->last_progress = t;
	if (last) {
		fprintf(stderr, "\r%60s\r", "");
		return;
	}
	fprintf(stderr, "\rsamepage estimate: pid %d: %lu of %lu MiB of mappings looked at",
		(int)e->pid, e->done_pages * e->psize >> 20, e->total_pages * e->psize >> 20);
}

static int scan(struct est *e)
{
	for (size_t m = 0; m < e->nr_vmas; m++) {
		const struct vma *v = &e->vmas[m];

		for (unsigned long a = v->start; a < v->end; a += CHUNK_PAGES * e->psize) {
			size_t n = (v->end - a) / e->psize;

			n = n < CHUNK_PAGES ? n : CHUNK_PAGES;
			if (scan_chunk(e, v, a, n)) {
				progress(e, 1);
				fprintf(stderr, "samepage estimate: out of memory\n");
				return -1;
			}
			e->done_pages += n;
			progress(e, 0);
		}
	}
	progress(e, 1);
	return 0;
}

static double mib(long pages, size_t psize)
{
	return (double)pages * (double)psize / 1048576.0;
}

static void print_text(const struct est *e)
{
	const struct figures *f = &e->f;

	printf("samepage estimate: pid %d, %zu private writable mappings\n", (int)e->pid,
	       e->nr_vmas);
	printf("  %-18s %10ld  (%.1f MiB present)\n", "pages scanned", f->scanned,
	       mib(f->scanned, e->psize));
	printf("  %-18s %10ld\n", "distinct contents", f->distinct);
	printf("  %-18s %10ld  (contents found on two pages or more)\n", "pages_shared", f->shared);
	printf("  %-18s %10ld  (pages merging would free)\n", "pages_sharing", f->sharing);
	printf("  %-18s %10ld\n", "zero_pages", f->zero);
	printf("  %-18s %10.1f MiB  (%.1f%% of the pages scanned)\n", "saved",
	       mib(f->sharing, e->psize),
	       f->scanned ? 100.0 * (double)f->sharing / (double)f->scanned : 0.0);
	printf("  skipped: %ld not present, %ld swapped, %ld page cache, %ld zero-page mapped, "
	       "%ld unreadable\n\n",
	       f->not_present, f->swapped, f->page_cache, f->zero_pfn, f->unreadable);
	printf("  %-14s %12s %12s %12s\n", "kind", "scanned", "freed", "saved MiB");
	for (int k = 0; k < NR_KINDS; k++)
		printf("  %-14s %12ld %12ld %12.1f\n", kind_names[k], f->kind_scanned[k],
		       f->kind_freed[k], mib(f->kind_freed[k], e->psize));
}

static void print_json(const struct est *e)
{
	const struct figures *f = &e->f;

	printf("{\"pid\":%d,\"page_size\":%zu,\"mappings\":%zu,\"pages_scanned\":%ld,"
	       "\"distinct\":%ld,\"pages_shared\":%ld,\"pages_sharing\":%ld,\"zero_pages\":%ld,"
	       "\"saved_bytes\":%lld,",
	       (int)e->pid, e->psize, e->nr_vmas, f->scanned, f->distinct, f->shared, f->sharing,
	       f->zero, (long long)f->sharing * (long long)e->psize);
	printf("\"skipped\":{\"not_present\":%ld,\"swapped\":%ld,\"page_cache\":%ld,"
	       "\"zero_page_mapped\":%ld,\"unreadable\":%ld},\"by_kind\":{",
	       f->not_present, f->swapped, f->page_cache, f->zero_pfn, f->unreadable);
	for (int k = 0; k < NR_KINDS; k++)
		printf("%s\"%s\":{\"pages_scanned\":%ld,\"pages_freed\":%ld,\"saved_bytes\":%lld}",
		       k ? "," : "", kind_names[k], f->kind_scanned[k], f->kind_freed[k],
		       (long long)f->kind_freed[k] * (long long)e->psize);
	printf("}}\n");
}

/*
 * The target has exited: no such process, a zombie its parent has not
 * reaped yet (kill(pid, 0) still succeeds on one), or one so far into
 * exiting that its memory is gone: its maps read empty, and what was not
 * read by then reads as unreadable.
 */
static bool target_exited(pid_t pid)
{
	char path[64], buf[512], *p;
	bool exited = false;
	FILE *f;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT || errno == ESRCH;
	if (fgets(buf, sizeof(buf), f) && (p = strrchr(buf, ')')) && p[1] == ' ')
		exited = p[2] == 'Z' || p[2] == 'X'; /* zombie, or dead and being reaped */
	fclose(f);
	if (exited)
		return true;
	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH;
	exited = read(fd, buf, 1) == 0; /* no memory at all: it has let go of it */
	close(fd);
	return exited;
}

static int est_open(struct est *e)
{
	if (kill(e->pid, 0) && errno == ESRCH) {
		fprintf(stderr, "samepage estimate: pid %d: %s\n", (int)e->pid, strerror(errno));
		return -1;
	}
	if (target_exited(e->pid)) {
		fprintf(stderr,
			"samepage estimate: pid %d has exited (its parent has not reaped it "
			"yet): no memory left to look at\n",
			(int)e->pid);
		return -1;
	}
	e->mem_fd = open_proc(e->pid, "mem");
	if (e->mem_fd < 0)
		return -1;
	e->pm_fd = open_proc(e->pid, "pagemap");
	if (e->pm_fd < 0)
		return -1;
	e->kpf_fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC); /* root only; optional */
	e->buf = calloc(CHUNK_PAGES, e->psize);
	e->pm = calloc(CHUNK_PAGES, sizeof(*e->pm));
	if (!e->buf || !e->pm || table_grow(e)) {
		fprintf(stderr, "samepage estimate: out of memory\n");
		return -1;
	}
	memset(e->buf, 0, e->psize);
	e->zero_hash = XXH3_64bits(e->buf, e->psize);
	return 0;
}

static void est_close(struct est *e)
{
	if (e->mem_fd >= 0)
		close(e->mem_fd);
	if (e->pm_fd >= 0)
		close(e->pm_fd);
	if (e->kpf_fd >= 0)
		close(e->kpf_fd);
	free(e->buf);
	free(e->pm);
	free(e->slots);
	free(e->vmas);
}

int cmd_estimate(int argc, char **argv)
{
	struct est e = { .mem_fd = -1, .pm_fd = -1, .kpf_fd = -1 };
	int ret;

	e.psize = (size_t)sysconf(_SC_PAGESIZE);
	e.tty = isatty(STDERR_FILENO);
	ret = parse_args(argc, argv, &e);
	if (ret == 3)
		return print_version();
	if (ret) {
		usage(ret == 1 ? stdout : stderr);
		return ret == 1 ? 0 : 2;
	}
	ret = 1;
	if (est_open(&e) || read_maps(&e) || scan(&e))
		goto out;
	if (target_exited(e.pid)) {
		fprintf(stderr, "samepage estimate: pid %d exited during the scan\n", (int)e.pid);
		goto out;
	}
	if (e.json)
		print_json(&e);
	else
		print_text(&e);
	ret = 0;
out:
	est_close(&e);
	return ret;
}
