/* SPDX-License-Identifier: MIT */
/* Helpers shared by the tests: pools in both fault modes, page patterns. */
#ifndef SP_TEST_COMMON_H
#define SP_TEST_COMMON_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "samepage.h"

/* cmocka prestate for a test run in each fault mode. */
extern unsigned mode_uffd, mode_sigsegv;

sp_pool *pool_small(unsigned flags, unsigned nr_sections);
/* pagemap's uffd-wp bit of the page at addr: write-protected by userfaultfd. */
int page_uffd_wp(const void *addr);
long stat_of(sp_pool *pool, const char *name);
void fill_page(void *page, uint64_t seed);
int check_page(const void *page, uint64_t seed); /* 0 if page holds seed's pattern */
int page_is_zero(const void *page);
/* A mergeable region of n pages, page i holding i's pattern: alike in every such region. */
char *alloc_alike(sp_pool *pool, unsigned long n);
long proc_count(const char *dir); /* entries in a /proc directory */
long proc_maps_lines(const char *with); /* /proc/self/maps lines (containing with) */
long meminfo_kb(const char *field); /* a /proc/meminfo field, kB */
long file_long(const char *path); /* the number a file starts with; -1 if none */

/* A test run once in each fault mode; *state is the pool flags. */
#define BOTH(fn) \
	cmocka_unit_test_prestate(fn, &mode_uffd), cmocka_unit_test_prestate(fn, &mode_sigsegv)

#define for_each_page(p, base, len) \
	for (char *p = (char *)(base); p < (char *)(base) + (len); p += SP_PAGE_SIZE)

/*
 * A shell command (vprintf-style), its stdout and stderr into out[len]; its
 * exit status, -1 if a signal ended it.
 */
int vshell(char *out, size_t len, const char *fmt, va_list ap);

/* KSM helpers. */
long ksm_of(sp_pool *pool, const char *name);
void full_scan(sp_pool *pool); /* until full_scans grows by one */

#endif
