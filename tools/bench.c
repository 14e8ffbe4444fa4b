/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cmds.h"

int cmd_bench(int argc, char **argv)
{
	(void)argc, (void)argv;
	fprintf(stderr, "samepage bench: not built yet\n");
	return 1;
}
