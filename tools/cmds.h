/* SPDX-License-Identifier: MIT */
/* The samepage command's subcommands, one file each. */
#ifndef SP_TOOLS_CMDS_H
#define SP_TOOLS_CMDS_H

int cmd_demo(int argc, char **argv); /* samepage.c */
int cmd_stats(int argc, char **argv); /* ctl.c */
int cmd_set(int argc, char **argv); /* ctl.c */
int cmd_top(int argc, char **argv); /* ctl.c */
int cmd_estimate(int argc, char **argv); /* estimate.c */
int cmd_bench(int argc, char **argv); /* bench.c */

#endif
