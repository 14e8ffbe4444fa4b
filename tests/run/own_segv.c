/* SPDX-License-Identifier: MIT */
/*
 * A program with a SIGSEGV handler of its own, installed after samepage's
 * (as JVMs and Go do), run by test_run under `samepage run` in the
 * mprotect+SIGSEGV fault mode: its handler gets its own faults, the pool
 * keeps getting its faults (writes into pages it is merging), and sigaction and
 * signal read back what the program set. Prints "pid N", waits for the
 * file argv[1] (the test has seen the pages merge), then "ok".
 */
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "helpers.h"

#define N 2000
#define SIZE 16384

static sigjmp_buf back;
static volatile int *volatile bad = (volatile int *)64; /* not a constant: no warning */
static volatile sig_atomic_t caught;

static void handler(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	if (si->si_addr == (void *)64) {
		caught++;
		siglongjmp(back, 1);
	}
	_exit(3); /* a fault the program did not make: the pool's went astray */
}

static void own_fault(void)
{
	if (!sigsetjmp(back, 1))
		*bad = 1;
}

int main(int argc, char **argv)
{
	struct sigaction sa = { .sa_sigaction = handler, .sa_flags = SA_SIGINFO }, cur;
	static char *blk[N];

	CHECK(argc == 2);
	for (int i = 0; i < N; i++) {
		blk[i] = malloc(SIZE);
		CHECK(blk[i]);
		memset(blk[i], 'A' + i % 2, SIZE);
	}
	sigemptyset(&sa.sa_mask);
	CHECK(!sigaction(SIGSEGV, &sa, NULL));
	CHECK(!sigaction(SIGSEGV, NULL, &cur) && cur.sa_sigaction == handler);
	printf("pid %d\n", (int)getpid());
	fflush(stdout);
	for (int i = 0; i < 1200 && access(argv[1], F_OK); i++)
		usleep(100 * 1000);
	own_fault();
	CHECK(caught == 1);
	/*
	 * Writes of the same bytes for a while: each page is copied on write,
	 * merged again by ksmd, and written again, some of them inside the
	 * pool's write-protect window, whose faults must reach the pool.
	 */
	for (time_t end = time(NULL) + 3; time(NULL) < end;)
		for (int i = 0; i < N; i++)
			for (int j = 0; j < SIZE; j += 4096)
				blk[i][j + i % 4096] = (char)('A' + i % 2);
	for (int i = 0; i < N; i++) {
		int w = i % SIZE;

		blk[i][w] = 'z';
		CHECK(blk[i][w] == 'z');
		CHECK(blk[i][(w + 1) % SIZE] == 'A' + i % 2);
		CHECK(blk[i][(w + SIZE / 2) % SIZE] == 'A' + i % 2);
	}
	own_fault();
	CHECK(caught == 2);
	CHECK(signal(SIGSEGV, SIG_DFL) == (sighandler_t)(void *)handler);
	CHECK(!sigaction(SIGSEGV, NULL, &cur) && cur.sa_handler == SIG_DFL);
	puts("ok");
	return 0;
}
