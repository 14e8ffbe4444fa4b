/* SPDX-License-Identifier: MIT */
#include <stdio.h>

#include "cmds.h"

int cmd_estimate(int argc, char **argv)
{
	(void)argc, (void)argv;
	fprintf(stderr, "samepage estimate: not built yet\n");
	return 1;
}
