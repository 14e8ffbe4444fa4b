/* SPDX-License-Identifier: MIT */
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../bench/bench.h" /* count_lines */
#include "common.h"

unsigned mode_uffd = 0, mode_sigsegv = SP_POOL_SIGSEGV;

sp_pool *pool_small(unsigned flags, unsigned nr_sections)
{
	struct sp_pool_config cfg = {
		.section_size = 4 << 20,
		.nr_sections = nr_sections,
		.flags = flags | SP_POOL_NO_KSMD,
	};
	sp_pool *pool = sp_pool_create(&cfg);

	assert_non_null(pool);
	return pool;
}

long stat_of(sp_pool *pool, const char *name)
{
	long v = -1;

	assert_int_equal(sp_stat(pool, name, &v), 0);
	return v;
}

static uint64_t mix(uint64_t x)
{
	x += 0x9E3779B97F4A7C15ull;
	x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
	x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
	return x ^ (x >> 31);
}

void fill_page(void *page, uint64_t seed)
{
	uint64_t *w = page;

	for (int i = 0; i < SP_PAGE_SIZE / 8; i++)
		w[i] = mix(seed * 512 + (uint64_t)i);
}

int check_page(const void *page, uint64_t seed)
{
	const uint64_t *w = page;

	for (int i = 0; i < SP_PAGE_SIZE / 8; i++)
		if (w[i] != mix(seed * 512 + (uint64_t)i))
			return -1;
	return 0;
}

char *alloc_alike(sp_pool *pool, unsigned long n)
{
	char *r = sp_alloc(pool, n * SP_PAGE_SIZE, SP_MERGEABLE);

	assert_non_null(r);
	for (unsigned long i = 0; i < n; i++)
		fill_page(r + i * SP_PAGE_SIZE, i);
	return r;
}

int page_is_zero(const void *page)
{
	const uint64_t *w = page;

	for (int i = 0; i < SP_PAGE_SIZE / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

long proc_count(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	long n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

long proc_maps_lines(const char *with)
{
	return count_lines("/proc/self/maps", with);
}

long file_long(const char *path)
{
	FILE *f = fopen(path, "r");
	long v = -1;

	if (f) {
		if (fscanf(f, "%ld", &v) != 1)
			v = -1;
		fclose(f);
	}
	return v;
}

long meminfo_kb(const char *field)
{
	FILE *f = fopen("/proc/meminfo", "r");
	char line[256];
	size_t n = strlen(field);
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			sscanf(line + n + 1, "%ld", &v);
	fclose(f);
	return v;
}

long ksm_of(sp_pool *pool, const char *name)
{
	long v = -1;

	assert_int_equal(sp_ksm_get(pool, name, &v), 0);
	return v;
}

void full_scan(sp_pool *pool)
{
	long f = ksm_of(pool, "full_scans");

	for (int i = 0; i < 1000000 && ksm_of(pool, "full_scans") == f; i++)
		assert_true(sp_ksm_scan(pool, 1) >= 0);
	assert_int_equal(ksm_of(pool, "full_scans"), f + 1);
}

int vshell(char *out, size_t len, const char *fmt, va_list ap)
{
	char cmd[4096];
	size_t n;
	FILE *p;
	int status;

	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	p = popen(cmd, "r");
	assert_non_null(p);
	n = fread(out, 1, len - 1, p);
	out[n] = 0;
	status = pclose(p);
	return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* pagemap's uffd-wp bit of the page at addr: write-protected by userfaultfd. */
int page_uffd_wp(const void *addr)
{
	int fd = open("/proc/self/pagemap", O_RDONLY);
	uint64_t pm = 0;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &pm, 8, (off_t)((uintptr_t)addr / SP_PAGE_SIZE * 8)), 8);
	close(fd);
	return (int)(pm >> 57 & 1);
}
