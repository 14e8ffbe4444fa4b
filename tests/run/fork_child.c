/* SPDX-License-Identifier: MIT */
/*
 * fork() under `samepage run`, before fork support (samepage(1), FORK): a
 * child that exits without touching the pool exits normally and leaves the
 * parent's socket (argv[1]) alone; a child that touches a block of the
 * parent's heap dies of SIGSEGV; a child's own new blocks work; the parent
 * goes on unaffected. Prints "ok" or what failed.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "helpers.h"

static int child(void (*fn)(char *), char *buf)
{
	int status;
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (!pid)
		fn(buf);
	CHECK(waitpid(pid, &status, 0) == pid);
	return status;
}

static void quiet_exit(char *buf)
{
	char *mine = malloc(4096); /* the child's own: glibc's, in a child */
	int ok;

	(void)buf;
	memset(mine, 1, 4096);
	ok = mine[4095] == 1;
	free(mine);
	exit(ok ? 0 : 3); /* exit(): destructors and atexit run */
}

static void touch(char *buf)
{
	_exit(buf[12345]);
}

int main(int argc, char **argv)
{
	char *buf = malloc(1 << 20);
	struct stat st;
	int status;

	CHECK(argc == 2 && buf);
	memset(buf, 7, 1 << 20);
	status = child(quiet_exit, buf);
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	CHECK(!stat(argv[1], &st) && S_ISSOCK(st.st_mode));
	status = child(touch, buf);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGSEGV);
	for (int i = 0; i < 1 << 20; i++)
		CHECK(buf[i] == 7);
	buf = realloc(buf, 2 << 20);
	CHECK(buf && buf[(1 << 20) - 1] == 7);
	free(buf);
	puts("ok");
	return 0;
}
