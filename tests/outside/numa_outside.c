/* SPDX-License-Identifier: MIT */
/*
 * numa_outside: a NUMA-aware host program, linked with libnuma BEFORE
 * samepage, as such a program is (libnuma exports migrate_pages(2)'s wrapper,
 * a name samepage once exported too and then bound its own calls to):
 *
 *   cc -Wall -Wextra -Werror -Iinclude tests/outside/numa_outside.c \
 *      -Wl,--no-as-needed -lnuma -Lbuild -lsamepage -Wl,-rpath,$PWD/build \
 *      -pthread -o build/numa_outside
 *
 * It hot-removes a section that holds merged pages and private pages, and
 * reads every byte back. Output as api_outside's: "ok N - ..." lines, last
 * "P passed, F failed".
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <numa.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <samepage.h>

#include "check.h"

#define PG ((size_t)SP_PAGE_SIZE)
#define SECTION ((size_t)4 << 20)
#define NPAGES 1024 /* a quarter of the pool: room to move a section's worth */
#define NCONTENTS 16 /* pages 0..511 in 16 contents: merged; 512.. unique */

struct order {
	int numa, samepage, at;
};

static int note_object(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct order *o = arg;

	(void)size;
	if (strstr(info->dlpi_name, "libnuma.so") && o->numa < 0)
		o->numa = o->at;
	if (strstr(info->dlpi_name, "libsamepage.so") && o->samepage < 0)
		o->samepage = o->at;
	o->at++;
	return 0;
}

/* Pages from NPAGES / 2 on are unique: their number in their first two bytes. */
static unsigned char byte_of(size_t page, size_t off)
{
	size_t content = page < NPAGES / 2 ? page % NCONTENTS : page;

	if (off < 2)
		return (unsigned char)(content >> (8 * off));
	return (unsigned char)(content * 131 + off * 7 + 1);
}

/* The first page that reads wrong, or -1. */
static long check_all(const unsigned char *p)
{
	for (size_t i = 0; i < NPAGES; i++)
		for (size_t j = 0; j < PG; j++)
			if (p[i * PG + j] != byte_of(i, j))
				return (long)i;
	return -1;
}

int main(void)
{
	struct sp_pool_config cfg = {
		.section_size = SECTION, .nr_sections = 4, .nr_nodes = 1, .flags = SP_POOL_NO_KSMD
	};
	struct order o = { -1, -1, 0 };
	long shared = 0, bad;
	unsigned char *p;
	sp_pool *pool;
	int s = -1;

	/* A NUMA-aware host asks libnuma first; the call also keeps libnuma linked. */
	printf("# numa_available() %d\n", numa_available());
	/* The order the dynamic linker searches: libnuma's migrate_pages comes first. */
	dl_iterate_phdr(note_object, &o);
	report(o.numa >= 0 && o.samepage > o.numa, o.samepage, 0,
	       "libnuma (at %d) is searched before libsamepage (at %d)", o.numa, o.samepage);

	pool = sp_pool_create(&cfg);
	if (!report(pool != NULL, 0, errno, "sp_pool_create(4 x 4 MiB, no ksmd)"))
		goto out;
	p = sp_alloc(pool, NPAGES * PG, SP_MERGEABLE);
	if (!report(p != NULL, 0, errno, "sp_alloc(%d pages, SP_MERGEABLE)", NPAGES))
		goto out_destroy;
	for (size_t i = 0; i < NPAGES; i++)
		for (size_t j = 0; j < PG; j++)
			p[i * PG + j] = byte_of(i, j);
	for (int k = 0; k < 4 && shared < NCONTENTS; k++) {
		sp_ksm_scan(pool, NPAGES);
		shared = ksm_of(pool, "pages_shared");
	}
	report(shared == NCONTENTS, shared, errno, "%d contents merged (pages_shared %ld)",
	       NCONTENTS, shared);
	/* The section of a merged page's frame: it holds a KSM frame. */
	s = sp_page_section(pool, p);
	report(s >= 0 && sp_page_is_ksm(pool, p) == 1, s, errno,
	       "page 0 is merged, on a frame of section %d", s);
	if (s >= 0)
		EXPECT_OK(sp_section_offline(pool, (unsigned)s),
			  "sp_section_offline(%d) with merged pages in it", s);
	bad = check_all(p);
	report(bad < 0, bad, 0, "every byte of %d pages reads back after the offline", NPAGES);
	report(ksm_of(pool, "pages_sharing") + ksm_of(pool, "pages_shared") == NPAGES / 2, 0, 0,
	       "the merged pages are still merged");
	sp_free(pool, p);
out_destroy:
	sp_pool_destroy(pool);
out:
	printf("%u passed, %u failed\n", nr_checks - nr_failed, nr_failed);
	return nr_failed ? 1 : 0;
}
