/* SPDX-License-Identifier: MIT */
/*
 * Faults and the write-protect window: the one primitive with which samepage
 * changes a page under a running program. Rules at the top of fault.c.
 */
#ifndef SP_FAULT_H
#define SP_FAULT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lock.h"

struct sp_pool;

/* A missing fault waiting for the swap-in worker. */
struct sp_missing {
	uintptr_t addr;
	pid_t tid;
};

struct sp_fault {
	int mode; /* SP_FAULT_UFFD or SP_FAULT_SIGSEGV */
	int uffd; /* -1 in SIGSEGV mode */
	int stopfd; /* eventfd that stops the handler thread */
	uint64_t features;
	bool thread_started;
	_Atomic bool worker_started; /* read by the fault thread while the pool goes */
	pthread_t thread, worker;
	/* Missing faults for the worker: a ring; q_lock is a leaf. */
	struct sp_mutex q_lock;
	pthread_cond_t q_cond;
	struct sp_missing *q;
	unsigned q_head, q_nr, q_cap;
	bool q_stop;
	_Atomic long wp_faults; /* writes that waited in a window */
	_Atomic long stale_faults; /* window already closed when handled */
};

/*
 * A window. Between open and close, no write through the program's mapping
 * of [addr, addr+len) can complete: a writer (user code, or the kernel in a
 * system call in userfaultfd mode) waits, and retries after close.
 */
struct sp_window {
	void *addr;
	size_t len;
	int slot;
};

int fault_init(struct sp_pool *pool);
void fault_exit(struct sp_pool *pool);

/*
 * Map [addr, addr+len) onto frames pfn.. of the pool (MAP_FIXED), shared
 * (private frame, writes land in the frame) or private (KSM frame, the kernel
 * copies on write), and make it a pool mapping again: registered for
 * write-protect faults, not inherited by fork().
 */
int fault_map(struct sp_pool *pool, void *addr, size_t len, unsigned long pfn, bool shared);
/*
 * The same, in two steps, so that many remaps share one registration: the
 * caller calls fault_register() over them all before closing its window.
 * fault_remap_zero maps the zero page (use_zero_pages): anonymous, private.
 */
int fault_remap(struct sp_pool *pool, void *addr, size_t len, unsigned long pfn, bool shared);
int fault_remap_zero(struct sp_pool *pool, void *addr, size_t len);
/* No frame behind [addr, addr+len): every access is a missing fault (userfaultfd mode). */
int fault_remap_missing(struct sp_pool *pool, void *addr, size_t len);
/*
 * Put a page back as it was after a change that failed half way (a remap
 * that went wrong): fault_map, or fault_remap_missing, asked again while it
 * fails, since there is nothing to fall back to. The failure is logged (with
 * what) and returned only when it persists.
 */
int fault_restore(struct sp_pool *pool, void *addr, size_t len, unsigned long pfn, bool shared,
		  const char *what);
int fault_restore_missing(struct sp_pool *pool, void *addr, size_t len, const char *what);
/* Pages can leave their frames and come back: userfaultfd with remap events, a worker. */
bool fault_can_swap(struct sp_pool *pool);
/* Make fresh pool mappings of [addr, addr+len) guardable (after a plain mmap). */
int fault_register(struct sp_pool *pool, void *addr, size_t len);

/*
 * The pagemap entries of n pages from addr, for a caller that acts on "not
 * copied" (remaps the page, drops it): a failed read (ENOMEM of the kernel's
 * buffer) reads as "not copied" and would throw away what a copy-on-write
 * gave the program, so it is read again. 0, or -1 (errno) when it keeps
 * failing: the caller backs out.
 */
int fault_pagemap(struct sp_pool *pool, const void *addr, unsigned long n, uint64_t *pm);

int wp_window_open(struct sp_pool *pool, struct sp_window *w, void *addr, size_t len);
/* Writable again (what no other open window covers), and the writers retry. */
void wp_window_close(struct sp_pool *pool, struct sp_window *w);

#endif
