/* SPDX-License-Identifier: MIT */
/*
 * What the programs test_run runs under `samepage run` share: a check that
 * says where it failed, and whether an address is in the pool (a mapping of
 * its memfd). They link nothing of samepage's.
 */
#ifndef SP_TEST_RUN_HELPERS_H
#define SP_TEST_RUN_HELPERS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(c)                                                                \
	do {                                                                    \
		if (!(c)) {                                                     \
			fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #c); \
			exit(1);                                                \
		}                                                               \
	} while (0)

static inline bool in_pool(const void *p)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	bool in = false;

	CHECK(f);
	while (!in && fgets(line, sizeof(line), f)) {
		unsigned long lo, hi;

		if (sscanf(line, "%lx-%lx", &lo, &hi) == 2 && (uintptr_t)p >= lo &&
		    (uintptr_t)p < hi)
			in = strstr(line, "memfd:samepage") != NULL;
	}
	fclose(f);
	return in;
}

#endif
