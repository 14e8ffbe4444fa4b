/* SPDX-License-Identifier: MIT */
/*
 * SIGSEGV in the SIGSEGV fault mode: what is not samepage's is the
 * program's. A SIGSEGV sent with raise, kill or sigqueue goes straight to
 * the program's disposition (../shared/repro/segv_raise.c); destroying a
 * pool keeps a handler the program installed after it
 * (../shared/repro/sigsegv_restore.c); a handler installed before or after
 * a pool gets every fault that is not samepage's, during the pool's life
 * and after it. Each case runs in a child, with a disposition of its own
 * (not cmocka's); the parent reads its wait status.
 */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common.h"

static sigjmp_buf jb;
static volatile sig_atomic_t calls, last_code, last_value;

/* The program's handler: counts; a fault (not a sent signal) jumps out. */
static void program_handler(int sig, siginfo_t *si, void *ctx)
{
	(void)sig, (void)ctx;
	calls++;
	last_code = si->si_code;
	if (si->si_code == SI_QUEUE)
		last_value = si->si_value.sival_int;
	if (si->si_code > 0)
		siglongjmp(jb, 1);
}

static void install(void)
{
	struct sigaction sa = { .sa_sigaction = program_handler, .sa_flags = SA_SIGINFO };

	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
}

/* What is installed for SIGSEGV now. */
static void *installed(void)
{
	struct sigaction cur;

	sigaction(SIGSEGV, NULL, &cur);
	return (cur.sa_flags & SA_SIGINFO) ? (void *)cur.sa_sigaction : (void *)cur.sa_handler;
}

static sp_pool *sigsegv_pool(void)
{
	struct sp_pool_config cfg = { .section_size = 4 << 20,
				      .nr_sections = 1,
				      .flags = SP_POOL_SIGSEGV | SP_POOL_NO_KSMD };

	return sp_pool_create(&cfg);
}

/* A fault that is nobody's but the program's: a write to a read-only page. Handled? */
static bool real_fault(void)
{
	static char *ro;
	int before = calls;

	if (!ro)
		ro = mmap(NULL, SP_PAGE_SIZE, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!sigsetjmp(jb, 1))
		*(volatile char *)ro = 1;
	return calls == before + 1 && last_code == SEGV_ACCERR;
}

/* Sends SIGSEGV by way `how`: 0 raise, 1 kill, 2 sigqueue (value 77), 3 tgkill. */
static void send_segv(int how)
{
	union sigval v = { .sival_int = 77 };

	switch (how) {
	case 0:
		raise(SIGSEGV);
		break;
	case 1:
		kill(getpid(), SIGSEGV);
		break;
	case 2:
		sigqueue(getpid(), SIGSEGV, v);
		break;
	default:
		tgkill(getpid(), gettid(), SIGSEGV);
	}
}

static const int sent_code[] = { SI_TKILL, SI_USER, SI_QUEUE, SI_TKILL };

/* Runs fn in a child with SIGSEGV's disposition set to disp: its wait status. */
static int in_child(void (*fn)(void), void (*disp)(int))
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (!pid) {
		struct rlimit no_core = { 0, 0 };

		setrlimit(RLIMIT_CORE, &no_core); /* the deaths below are expected */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		alarm(60);
		signal(SIGSEGV, disp);
		fn();
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return status;
}

static void expect_exit0(int status)
{
	if (WIFSIGNALED(status))
		print_error("child died of signal %d\n", WTERMSIG(status));
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void expect_segv_death(int status)
{
	if (WIFEXITED(status))
		print_error("child exited with %d\n", WEXITSTATUS(status));
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGSEGV);
}

/* ---- sent SIGSEGVs ------------------------------------------------------ */

/*
 * A handler installed before the pool gets every sent SIGSEGV, each way, at
 * once, with its si_code and value; samepage's handler stays installed; real
 * faults reach the handler during the pool's life and after it.
 */
static void sent_to_handler_child(void)
{
	sp_pool *pool;
	void *mine;

	install();
	pool = sigsegv_pool();
	if (!pool)
		_exit(2);
	mine = installed();
	if (mine == (void *)program_handler)
		_exit(3);
	for (int how = 0; how < 4; how++) {
		calls = 0;
		send_segv(how);
		if (calls != 1 || last_code != sent_code[how])
			_exit(10 + how);
		if (how == 2 && last_value != 77)
			_exit(20);
		if (installed() != mine) /* samepage's is still there */
			_exit(30 + how);
	}
	if (!real_fault() || !real_fault())
		_exit(40);
	sp_pool_destroy(pool);
	if (installed() != (void *)program_handler) /* put back, as it was ours */
		_exit(41);
	send_segv(0);
	if (!real_fault())
		_exit(42);
}

static void sent_to_handler(void **state)
{
	(void)state;
	expect_exit0(in_child(sent_to_handler_child, SIG_DFL));
}

/* With the default disposition, a sent SIGSEGV kills, each way, as it would have. */
static int how_to_send;

static void sent_default_child(void)
{
	sp_pool *pool = sigsegv_pool();

	if (!pool)
		_exit(2);
	send_segv(how_to_send);
	_exit(3); /* swallowed */
}

static void sent_default_kills(void **state)
{
	(void)state;
	for (how_to_send = 0; how_to_send < 4; how_to_send++)
		expect_segv_death(in_child(sent_default_child, SIG_DFL));
}

/* Ignored before the pool: sent SIGSEGVs are ignored, and samepage's handler stays. */
static void sent_ignored_child(void)
{
	sp_pool *pool = sigsegv_pool();
	void *mine = installed();

	if (!pool)
		_exit(2);
	for (int i = 0; i < 3; i++)
		for (int how = 0; how < 4; how++)
			send_segv(how);
	if (installed() != mine)
		_exit(3);
	sp_pool_destroy(pool);
	if (installed() != (void *)SIG_IGN)
		_exit(4);
}

static void sent_ignored(void **state)
{
	(void)state;
	expect_exit0(in_child(sent_ignored_child, SIG_IGN));
}

/* ---- handlers installed after the pool ---------------------------------- */

/*
 * Installed after the pool (it replaces samepage's): it gets every fault and
 * sent SIGSEGV, and destroying the pool leaves it installed.
 */
static void handler_after_child(void)
{
	sp_pool *pool = sigsegv_pool();

	if (!pool)
		_exit(2);
	install();
	calls = 0;
	send_segv(1);
	if (calls != 1 || !real_fault())
		_exit(3);
	sp_pool_destroy(pool);
	if (installed() != (void *)program_handler)
		_exit(4);
	calls = 0;
	send_segv(0);
	if (calls != 1 || !real_fault())
		_exit(5);
}

static void handler_after_kept(void **state)
{
	(void)state;
	expect_exit0(in_child(handler_after_child, SIG_DFL));
}

/*
 * A second pool made after the program's handler chains to it; when the
 * last pool goes, the program's handler is what is left.
 */
static void between_pools_child(void)
{
	sp_pool *first = sigsegv_pool(), *second;

	if (!first)
		_exit(2);
	install();
	second = sigsegv_pool();
	if (!second)
		_exit(3);
	if (installed() == (void *)program_handler) /* samepage's again, to guard windows */
		_exit(4);
	calls = 0;
	send_segv(2);
	if (calls != 1 || !real_fault())
		_exit(5);
	sp_pool_destroy(second);
	sp_pool_destroy(first);
	if (installed() != (void *)program_handler)
		_exit(6);
	if (!real_fault())
		_exit(7);
}

static void handler_between_pools(void **state)
{
	(void)state;
	expect_exit0(in_child(between_pools_child, SIG_DFL));
}

/* A real fault with the default disposition kills, during the pool's life. */
static void real_default_child(void)
{
	sp_pool *pool = sigsegv_pool();
	char *volatile null = NULL;

	if (!pool)
		_exit(2);
	*(volatile char *)(null + 16) = 1;
	_exit(3);
}

static void real_fault_default_kills(void **state)
{
	(void)state;
	expect_segv_death(in_child(real_default_child, SIG_DFL));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(sent_to_handler),	 cmocka_unit_test(sent_default_kills),
		cmocka_unit_test(sent_ignored),		 cmocka_unit_test(handler_after_kept),
		cmocka_unit_test(handler_between_pools), cmocka_unit_test(real_fault_default_kills),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
