/* SPDX-License-Identifier: MIT */
/*
 * samepage: the command-line face of libsamepage.
 *
 *   samepage demo [--size MiB] [--tenants N] [--seconds S] [--domains]
 *
 * The demo: tenants (threads, a region each) load the same realistic content
 * into one pool (the machine's own shared libraries, read from disk, plus
 * zero pages and pages of their own), and keep writing a hot part of it. The
 * scanner merges while a progress line shows what it does; then the section
 * holding the most KSM frames is hot-removed while the tenants keep writing;
 * every byte is verified; a closing table shows the story. Exit status 0 only
 * if verification passed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "samepage.h"

#include "cmds.h"

#define LIBDIR "/usr/lib/x86_64-linux-gnu"
#define HOT_PAGES 64

struct demo {
	long size_mib, tenants, seconds;
	int domains;
	char *image; /* the shared content: library bytes and zero pages */
	size_t image_len;
	sp_pool *pool;
	_Atomic int writing; /* merged: the tenants start writing their hot pages */
	_Atomic int stop;
};

struct tenant {
	struct demo *d;
	int id;
	char *mem;
	size_t len;
	uint64_t hot[HOT_PAGES]; /* oracle: last value written to each hot page */
	_Atomic int loaded;
	_Atomic long writes;
	int err;
};

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

/* Read shared libraries until len bytes; pages of zeros every tenth page. */
static size_t load_image(char *dst, size_t len)
{
	DIR *dir = opendir(LIBDIR);
	struct dirent *e;
	size_t off = 0;

	while (dir && off < len && (e = readdir(dir))) {
		char path[512];
		ssize_t n;
		int fd;

		if (!strstr(e->d_name, ".so"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", LIBDIR, e->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		while (off < len && (n = read(fd, dst + off, len - off)) > 0)
			off += (size_t)n;
		close(fd);
		off = (off + SP_PAGE_SIZE - 1) & ~(size_t)(SP_PAGE_SIZE - 1);
		if (off < len && (off / SP_PAGE_SIZE) % 10 == 9) {
			memset(dst + off, 0, SP_PAGE_SIZE); /* a zero page now and then */
			off += SP_PAGE_SIZE;
		}
	}
	if (dir)
		closedir(dir);
	return off < len ? off : len;
}

/* Page p of tenant t beyond the image: its own content. */
static void own_page(uint64_t *w, int t, size_t p)
{
	for (int j = 0; j < 512; j++)
		w[j] = mix(((uint64_t)t << 48) ^ (p * 512 + (uint64_t)j));
}

static void hot_page(uint64_t *w, uint64_t v)
{
	for (int j = 0; j < 512; j++)
		w[j] = v * 4096 + (uint64_t)j;
}

static void *tenant_main(void *arg)
{
	struct tenant *t = arg;
	size_t pages = t->len / SP_PAGE_SIZE, img = t->d->image_len;

	memcpy(t->mem, t->d->image, img);
	for (size_t p = img / SP_PAGE_SIZE; p < pages - HOT_PAGES; p++)
		own_page((uint64_t *)(t->mem + p * SP_PAGE_SIZE), t->id, p);
	/* Hot pages start as library pages, merged like them; writing them copies. */
	memcpy(t->mem + (pages - HOT_PAGES) * SP_PAGE_SIZE, t->d->image,
	       (size_t)HOT_PAGES * SP_PAGE_SIZE);
	atomic_store(&t->loaded, 1);
	while (!atomic_load(&t->d->writing))
		usleep(1000);
	for (uint64_t v = 1; !atomic_load(&t->d->stop); v++) {
		int h = (int)(v % HOT_PAGES);

		hot_page((uint64_t *)(t->mem + (pages - HOT_PAGES + (size_t)h) * SP_PAGE_SIZE),
			 v * 64 + (uint64_t)t->id);
		t->hot[h] = v * 64 + (uint64_t)t->id;
		atomic_fetch_add(&t->writes, 1);
		usleep(200);
	}
	return NULL;
}

static long verify(struct tenant *t)
{
	size_t pages = t->len / SP_PAGE_SIZE, img = t->d->image_len;
	uint64_t want[512];
	long bad = 0;

	bad += memcmp(t->mem, t->d->image, img) != 0;
	for (size_t p = img / SP_PAGE_SIZE; p < pages - HOT_PAGES; p++) {
		own_page(want, t->id, p);
		bad += memcmp(t->mem + p * SP_PAGE_SIZE, want, SP_PAGE_SIZE) != 0;
	}
	for (int h = 0; h < HOT_PAGES; h++) {
		char *page = t->mem + (pages - HOT_PAGES + (size_t)h) * SP_PAGE_SIZE;

		if (t->hot[h]) {
			hot_page(want, t->hot[h]);
			bad += memcmp(page, want, SP_PAGE_SIZE) != 0;
		} else {
			bad += memcmp(page, t->d->image + (size_t)h * SP_PAGE_SIZE, SP_PAGE_SIZE) !=
			       0;
		}
	}
	return bad;
}

static long get(sp_pool *pool, const char *name)
{
	long v = -1;

	if (sp_stat(pool, name, &v))
		sp_ksm_get(pool, name, &v);
	return v;
}

static long meminfo_shmem_kb(void)
{
	FILE *f = fopen("/proc/meminfo", "re");
	char line[256];
	long v = -1;

	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "Shmem:", 6))
			sscanf(line + 6, "%ld", &v);
	if (f)
		fclose(f);
	return v;
}

/* CPU seconds of the pool's scanner thread (named sp-ksmd). */
static double ksmd_cpu(void)
{
	DIR *dir = opendir("/proc/self/task");
	struct dirent *e;
	double secs = 0;

	while (dir && (e = readdir(dir))) {
		char path[300], buf[512];
		unsigned long ut, st;
		FILE *f;

		snprintf(path, sizeof(path), "/proc/self/task/%s/comm", e->d_name);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && !strncmp(buf, "sp-ksmd", 7)) {
			fclose(f);
			snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
			f = fopen(path, "re");
			if (f && fgets(buf, sizeof(buf), f) &&
			    sscanf(strrchr(buf, ')') + 2,
				   "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
				   &st) == 2)
				secs = (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
		}
		if (f)
			fclose(f);
	}
	if (dir)
		closedir(dir);
	return secs;
}

static void progress(struct demo *d, double t0, int tty)
{
	if (!tty)
		return;
	fprintf(stderr,
		"\r  %5.1f s  scanned %9ld  shared %7ld  sharing %8ld  zero %6ld  saved %7.1f MiB ",
		now() - t0, get(d->pool, "pages_scanned"), get(d->pool, "pages_shared"),
		get(d->pool, "pages_sharing"), get(d->pool, "ksm_zero_pages"),
		(double)(get(d->pool, "pages_sharing") + get(d->pool, "ksm_zero_pages")) / 256.0);
}

/*
 * Until the savings stop growing for a second, or the time is up. Returns
 * when they last grew; *cpu: the scanner's CPU seconds by then.
 */
static double wait_merged(struct demo *d, double *cpu)
{
	double t0 = now(), last_change = t0, cpu0 = ksmd_cpu();
	long last = -1;
	int tty = isatty(2);

	*cpu = 0;
	while (now() - t0 < (double)d->seconds) {
		long saved = get(d->pool, "pages_sharing") + get(d->pool, "ksm_zero_pages");

		if (saved != last) {
			last = saved;
			last_change = now();
			*cpu = ksmd_cpu() - cpu0;
		} else if (now() - last_change > 1.0) {
			break;
		}
		progress(d, t0, tty);
		usleep(100000);
	}
	progress(d, t0, tty);
	if (tty)
		fputc('\n', stderr);
	return last_change - t0;
}

static void demo_usage(FILE *f)
{
	fprintf(f, "usage: samepage demo [--size MiB] [--tenants N] [--seconds S] [--domains]\n"
		   "  --size MiB    memory per tenant, 8-1024 (default 48)\n"
		   "  --tenants N   tenant threads, 1-16 (default 4)\n"
		   "  --seconds S   longest wait for merging, 1-600 (default 20)\n"
		   "  --domains     a merge domain per tenant: no frame is shared across tenants\n"
		   "  --version     print samepage's version\n");
}

/* 0 go on, 1 done (--help, --version), 2 usage error (said why). */
static int parse_demo(int argc, char **argv, struct demo *d)
{
	static const struct option opts[] = { { "size", required_argument, NULL, 's' },
					      { "tenants", required_argument, NULL, 't' },
					      { "seconds", required_argument, NULL, 'S' },
					      { "domains", no_argument, NULL, 'd' },
					      { "help", no_argument, NULL, 'h' },
					      OPT_VERSION,
					      { 0 } };
	int c;

	*d = (struct demo){ .size_mib = 48, .tenants = 4, .seconds = 20 };
	opterr = 0;
	while ((c = getopt_long(argc, argv, "+:", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			demo_usage(stdout);
			return 1;
		case 'V':
			print_version();
			return 1;
		case 'd':
			d->domains = 1;
			break;
		case 's':
			if (option_long("demo", "--size", optarg, 8, 1024, &d->size_mib))
				return EXIT_USAGE;
			break;
		case 't':
			if (option_long("demo", "--tenants", optarg, 1, 16, &d->tenants))
				return EXIT_USAGE;
			break;
		case 'S':
			if (option_long("demo", "--seconds", optarg, 1, 600, &d->seconds))
				return EXIT_USAGE;
			break;
		default:
			option_error("demo", c, argv);
			demo_usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "samepage demo: unexpected argument: %s\n", argv[optind]);
		demo_usage(stderr);
		return EXIT_USAGE;
	}
	return 0;
}

/* The section with the most KSM frames behind tenant pages. */
static int busiest_section(struct demo *d, struct tenant *t)
{
	int count[256] = { 0 }, best = -1;

	for (long i = 0; i < d->tenants; i++)
		for (size_t p = 0; p < t[i].len / SP_PAGE_SIZE; p++) {
			char *a = t[i].mem + p * SP_PAGE_SIZE;
			int s = sp_page_is_ksm(d->pool, a) == 1 ? sp_page_section(d->pool, a) : -1;

			if (s >= 0 && s < 256 && ++count[s] > (best < 0 ? 0 : count[best]))
				best = s;
		}
	return best;
}

static sp_pool *demo_pool(struct demo *d)
{
	size_t total = (size_t)(d->size_mib * d->tenants) << 20;
	struct sp_pool_config cfg = { .section_size = 16 << 20 };
	sp_pool *pool;

	cfg.nr_sections = (unsigned)(total / cfg.section_size + 3);
	pool = sp_pool_create(&cfg);
	if (!pool) {
		fprintf(stderr, "samepage demo: creating the pool: %s\n", strerror(errno));
		return NULL;
	}
	sp_ksm_set(pool, "run", 0); /* loading first, then merging, for a clear story */
	sp_ksm_set(pool, "pages_to_scan", 20000);
	sp_ksm_set(pool, "sleep_millisecs", 0);
	sp_ksm_set(pool, "use_zero_pages", 1);
	return pool;
}

/* What the demo measured, for the closing words and table. */
struct outcome {
	long res[3]; /* bytes_resident loaded, merged, after the offline */
	long shm[3]; /* the system's Shmem (KiB) before loading, loaded, merged */
	long merged_away, sections, migrated, cow, bad;
	double merge_s, cpu, off_s;
	int section, off_ret;
};

/* First in plain words, then the detail table. */
static void report(const struct demo *d, const struct outcome *o)
{
	double written = (double)(d->size_mib * d->tenants), held = (double)o->res[1] / 1048576.0;

	printf("\n%.0f MiB written by %ld tenants; after merging they hold %.0f MiB: "
	       "%.0f MiB (%.0f%%) saved.\n",
	       written, d->tenants, held, written - held, 100.0 * (written - held) / written);
	if (o->off_ret)
		printf("Hot-removing section %d while they wrote FAILED (see above).\n",
		       o->section);
	else
		printf("Section %d (16 MiB) was hot-removed while they wrote: %ld pages moved "
		       "in %.3f s.\n",
		       o->section, o->migrated, o->off_s);
	printf("Every byte checked: %s (%ld bad pages).\n",
	       o->bad ? "pages were LOST OR CORRUPTED" : "nothing lost", o->bad);
	printf("\n%-34s %12s %12s %12s\n", "details", "loaded", "merged", "after offline");
	printf("%-34s %12.1f %12.1f %12.1f\n", "pool bytes_resident (MiB)",
	       (double)o->res[0] / 1048576.0, held, (double)o->res[2] / 1048576.0);
	printf("%-34s %12.1f %12.1f\n", "system Shmem growth (MiB)",
	       (double)(o->shm[1] - o->shm[0]) / 1024.0, (double)(o->shm[2] - o->shm[0]) / 1024.0);
	printf("%-34s %12s %12ld %12ld\n", "pages merged away (sharing+zero)", "0", o->merged_away,
	       get(d->pool, "pages_sharing") + get(d->pool, "ksm_zero_pages"));
	printf("%-34s %12ld %12ld %12ld\n", "sections online", o->sections, o->sections,
	       get(d->pool, "sections_online"));
	printf("\nmerge: %.2f s, scanner CPU %.2f s; copy-on-write faults %ld; offline of a "
	       "%d MiB section: %.3f s (%s), %ld pages migrated\n",
	       o->merge_s, o->cpu, o->cow, 16, o->off_s, o->off_ret ? "FAILED" : "ok", o->migrated);
	printf("verification: %s (%ld bad pages, %ld tenant writes checked)\n",
	       o->bad || o->off_ret ? "FAILED" : "passed", o->bad, (long)HOT_PAGES * d->tenants);
}

/* Tenants write while the busiest section goes; then they stop and are checked. */
static void offline_under_writes(struct demo *d, struct tenant *t, pthread_t *th, struct outcome *o)
{
	double t0;

	o->section = busiest_section(d, t);
	printf("hot-removing section %d (its KSM frames move) while the tenants write\n",
	       o->section);
	usleep(50000); /* writes under way: copy-on-write of merged pages */
	t0 = now();
	o->off_ret = o->section >= 0 ? sp_section_offline(d->pool, (unsigned)o->section) : -1;
	o->off_s = now() - t0;
	if (o->off_ret)
		fprintf(stderr, "samepage demo: sp_section_offline: %s\n", strerror(errno));
	usleep(100000);
	atomic_store(&d->stop, 1);
	for (long i = 0; i < d->tenants; i++) {
		pthread_join(th[i], NULL);
		o->bad += verify(&t[i]);
	}
	o->res[2] = get(d->pool, "bytes_resident");
	o->cow = get(d->pool, "faults_cow");
	o->migrated = get(d->pool, "pages_migrated");
}

static int start_tenants(struct demo *d, struct tenant *t, pthread_t *th)
{
	for (long i = 0; i < d->tenants; i++) {
		t[i] = (struct tenant){ .d = d, .id = (int)i, .len = (size_t)d->size_mib << 20 };
		t[i].mem = sp_alloc(d->pool, t[i].len, SP_MERGEABLE);
		if (!t[i].mem || (d->domains && sp_set_merge_domain(d->pool, t[i].mem, t[i].len,
								    (unsigned)i + 1))) {
			fprintf(stderr, "samepage demo: tenant %ld: %s\n", i, strerror(errno));
			return -1;
		}
		pthread_create(&th[i], NULL, tenant_main, &t[i]);
	}
	for (long i = 0; i < d->tenants; i++)
		while (!atomic_load(&t[i].loaded))
			usleep(1000);
	return 0;
}

int cmd_demo(int argc, char **argv)
{
	struct tenant t[16] = { 0 };
	struct outcome o = { 0 };
	pthread_t th[16];
	struct demo d;
	int parsed;

	parsed = parse_demo(argc, argv, &d);
	if (parsed)
		return parsed == 1 ? 0 : parsed;
	d.image_len = ((size_t)d.size_mib << 20) / 2;
	d.image = calloc(1, d.image_len);
	d.pool = d.image ? demo_pool(&d) : NULL;
	if (!d.pool)
		return 1;
	d.image_len = load_image(d.image, d.image_len);
	o.shm[0] = meminfo_shmem_kb();
	printf("samepage demo: %ld tenants x %ld MiB (%.1f MiB of shared libraries each), "
	       "fault mode %s\n",
	       d.tenants, d.size_mib, (double)d.image_len / 1048576.0,
	       get(d.pool, "fault_mode") == SP_FAULT_UFFD ? "userfaultfd" : "mprotect+SIGSEGV");
	if (start_tenants(&d, t, th))
		return 1;
	o.res[0] = get(d.pool, "bytes_resident");
	o.shm[1] = meminfo_shmem_kb();
	printf("loaded: %.1f MiB resident; merging (ksmd, pages_to_scan=20000, "
	       "sleep_millisecs=0, use_zero_pages=1)\n",
	       (double)o.res[0] / 1048576.0);
	sp_ksm_set(d.pool, "run", 1);
	o.merge_s = wait_merged(&d, &o.cpu);
	atomic_store(&d.writing, 1);
	o.res[1] = get(d.pool, "bytes_resident");
	o.shm[2] = meminfo_shmem_kb();
	o.merged_away = get(d.pool, "pages_sharing") + get(d.pool, "ksm_zero_pages");
	o.sections = get(d.pool, "sections_online");
	offline_under_writes(&d, t, th, &o);
	report(&d, &o);
	for (long i = 0; i < d.tenants; i++)
		sp_free(d.pool, t[i].mem);
	sp_pool_destroy(d.pool);
	free(d.image);
	return o.bad || o.off_ret ? 1 : 0;
}

static const struct command {
	const char *name, *help;
	int (*fn)(int argc, char **argv);
} commands[] = {
	{ "run", "run a program with its malloc served from a pool (-- CMD [ARGS])", cmd_run },
	{ "ps", "list the programs running under `samepage run`", cmd_ps },
	{ "demo", "tenants share a pool: merge, hot-remove, verify", cmd_demo },
	{ "stats", "print a running pool's counters (--socket PATH)", cmd_stats },
	{ "set", "change a running pool's knob (--socket PATH KNOB VALUE)", cmd_set },
	{ "top", "watch a running pool's counters (--socket PATH)", cmd_top },
	{ "estimate", "what merging would save in a running process (--pid PID)", cmd_estimate },
	{ "bench", "samepage against kernel KSM and plain memory: one table", cmd_bench },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: samepage COMMAND [ARGS]   (samepage COMMAND --help for more)\n"
		   "       samepage --version\n"
		   "commands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version"))
		return print_version();
	fprintf(stderr, "samepage: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
