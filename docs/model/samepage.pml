/*
 * samepage: the write-protect window protocol, as a Promela model for spin.
 *
 * docs/design.md, "Model", says what each process and step stands for in
 * src/, what is abstracted away, and which properties are checked; the
 * comments here name the C function each step models.
 *
 * The world: three pages of one region, page 0 and page 2 with the same
 * content (they merge), page 1 different (it is swapped out and migrated);
 * six frames in two sections of three; one stable node; one swap slot.
 *
 *   pfn   0 1 2 | 3 4 5
 *   sec   0     | 1
 *   page  0 1   | 2        (at start: pages 0 and 1 in section 0, page 2 in 1)
 *
 * Configurations (-D at spin -a): SIGSEGV (the mprotect+SIGSEGV fault mode;
 * no swap there, as in the code), NO_MERGE, NO_UNMERGE, NO_OFFLINE,
 * NO_SWAP, NW (writes per writer). Known-bad protocols, each of which spin
 * must reject: BAD_* (see check-model.sh and docs/design.md).
 */

#ifndef NW
#define NW 1 /* writes per writer */
#endif
#ifndef PASSES
#define PASSES 2 /* migration passes of an offline (OFFLINE_PASSES) */
#endif
#ifndef MAPFAIL
#define MAPFAIL 1 /* mmap failures a KSM frame's move may meet (vm.max_map_count) */
#endif
#ifndef OPENFAIL
#define OPENFAIL 1 /* window opens that may fail after protecting (os_all_mapped) */
#endif
#ifdef SIGSEGV
#define NO_SWAP /* sp_swap_out and reclaim say ENOTSUP in SIGSEGV mode */
#endif

#define NPG 3
#define SECP 3
#define NFR 6
#define NONE 255
#define SID 200 /* owner of the stable node's frame (struct sp_page.owner = sid) */

/* The kernel's mapping of a page (what user code reaches). */
#define M_SHARED 0 /* MAP_SHARED of a pool frame: writes go to the frame */
#define M_PRIV 1 /* MAP_PRIVATE of a KSM frame: a write is the kernel's copy */
#define M_ANON 2 /* the kernel's anonymous page after copy-on-write */
#define M_MISSING 3 /* unpopulated, in userfaultfd missing mode */

/* samepage's page table entry (pte_type). */
#define T_PRIVATE 0
#define T_KSM 1
#define T_COPIED 2
#define T_SWAP 3

/* Window slots: the KSM mutex holders share two, reclaim has its own. */
#define W_A 0
#define W_B 1
#define W_R 2
#define NWIN 3

/* ---- state ------------------------------------------------------------ */

/* kernel: mappings, write protection, anonymous copies */
byte mt[NPG];
byte mf[NPG]; /* frame of an M_SHARED / M_PRIV mapping */
byte anon[NPG]; /* content of an M_ANON page */
bit wp[NPG]; /* write-protected (UFFDIO_WRITEPROTECT or mprotect) */

/* pool: frames (memfd content, descriptor bits) and sections */
byte fval[NFR]; /* content; 0 is a hole */
bit fused[NFR]; /* PG_used */
bit fksm[NFR]; /* PG_ksm */
bit flock[NFR]; /* PG_locked: the frame lock */
byte fowner[NFR]; /* page index, or SID */
bit isolated[2];
bit offl[2];
byte dfr; /* frames KSM freed, punched at the chunk's end (defer_free) */

/* samepage: page table, the stable node, the swap slot */
byte pt[NPG];
byte pv[NPG]; /* pfn, or slot */
bit slive;
byte skpfn = NONE;
byte srmap; /* sharers: bit p */
bit sused;
byte sval;

byte kmx = NONE; /* the KSM mutex: its holder's _pid */

/* the window table (fault.c): seq odd while open */
byte wseq[NWIN];
byte wlo[NWIN];
byte whi[NWIN];
bit wwait[NWIN]; /* a SIGSEGV handler sleeps on seq */
#ifdef SIGSEGV
byte wclosed; /* windows_closed */
bit slp[NPG]; /* writer p sleeps in futex_wait ... */
byte slpw[NPG]; /* ... on this slot's seq */
#endif

/* threads: fault messages, the swap-in worker's queue, blocked writers */
bit blk[NPG]; /* blocked in the kernel (handle_userfault) until woken */
bit pend_wp[NPG]; /* write-protect fault message, unread */
bit swq[NPG]; /* queued for the swap-in worker */
bit wbusy; /* the worker is serving one */

/* ghosts */
byte expv[NPG]; /* the value last written to each page */
bit wtg[NPG]; /* writer p's write is waiting (faulted, not done yet) */
byte mapfail = MAPFAIL;
byte openfail = OPENFAIL;
byte fin; /* finished processes */
hidden byte ti; /* a loop counter inside d_steps */

#define OPEN(j) (wseq[j] & 1)
#define COVERS(j, p) (OPEN(j) && wlo[j] <= (p) && (p) <= whi[j])
#define COVERED_BY_OTHER(w, p) \
	((w != 0 && COVERS(0, p)) || (w != 1 && COVERS(1, p)) || (w != 2 && COVERS(2, p)))
#define COVERED(p) (COVERS(0, p) || COVERS(1, p) || COVERS(2, p))

/* What a read of page p returns: whatever backs it. */
#define VIS(p) \
	(mt[p] == M_ANON -> anon[p] : \
	 (mt[p] != M_MISSING -> fval[mf[p]] : (pt[p] == T_SWAP -> sval : fval[pv[p]])))
#define SEC(f) ((f) / SECP)
#define ALLOCABLE(f) (!fused[f] && !isolated[SEC(f)] && !offl[SEC(f)])
#define CAN_ALLOC \
	(ALLOCABLE(0) || ALLOCABLE(1) || ALLOCABLE(2) || ALLOCABLE(3) || ALLOCABLE(4) || ALLOCABLE(5))
#define BIT(p) (1 << (p))
#define NR_SHARERS (((srmap >> 0) & 1) + ((srmap >> 1) & 1) + ((srmap >> 2) & 1))
#define ONE_SHARER (srmap & 1 -> 0 : (srmap & 2 -> 1 : 2))
/* Someone else maps frame f. */
#define MAPS(q, f) ((mt[q] == M_SHARED || mt[q] == M_PRIV) && mf[q] == (f))
#define OTHER_MAPS(p, f) \
	((p != 0 && MAPS(0, f)) || (p != 1 && MAPS(1, f)) || (p != 2 && MAPS(2, f)))

/* ---- frames and locks ------------------------------------------------- */

/* frame_alloc: the lowest free frame of a section that is online and not isolated. */
inline frame_alloc(f)
{
	d_step {
		f = NONE;
		ti = 0;
		do
		:: ti < NFR && f == NONE ->
			if
			:: ALLOCABLE(ti) ->
				f = ti;
				fused[ti] = 1
			:: else
			fi;
			ti++
		:: else -> break
		od;
		skip
	}
}

/* frames_free_run: punched, so a hole again. */
inline frame_free(f)
{
	fused[f] = 0;
	fval[f] = 0;
	fksm[f] = 0;
	fowner[f] = NONE
}

/* flush_freed */
inline flush_freed()
{
	d_step {
		ti = 0;
		do
		:: ti < NFR ->
			if
			:: dfr & BIT(ti) -> frame_free(ti)
			:: else
			fi;
			ti++
		:: else -> break
		od;
		dfr = 0
	}
}

inline kmx_lock()
{
	atomic { kmx == NONE -> kmx = _pid }
}

/* A mutex is only unlocked by its holder. */
inline kmx_unlock()
{
	assert(kmx == _pid);
	kmx = NONE
}

/* fault_map / fault_remap: mmap(MAP_FIXED) of a frame, registered: a new vma, unprotected. */
inline remap(p, ty, f)
{
	atomic { mt[p] = ty; mf[p] = f; wp[p] = 0 }
}

/* ---- the window (fault.c) --------------------------------------------- */

inline protect(lo, hi)
{
	ti = lo;
	do
	:: ti <= hi -> wp[ti] = 1; ti++
	:: else -> break
	od;
	skip
}

/*
 * UFFDIO_WRITEPROTECT that clears protection also wakes the threads that
 * faulted in the range (no UFFDIO_WRITEPROTECT_MODE_DONTWAKE); mprotect does not.
 */
#ifdef SIGSEGV
#define UNPROTECT(p) wp[p] = 0
#else
#define UNPROTECT(p) wp[p] = 0; blk[p] = 0
#endif

/* unprotect_uncovered: what no other open window covers. */
inline unprotect_uncovered(w)
{
	ti = wlo[w];
	do
	:: ti <= whi[w] ->
#ifdef BAD_CLOSE_ALL
		UNPROTECT(ti);
#else
		if
		:: !COVERED_BY_OTHER(w, ti) -> UNPROTECT(ti)
		:: else
		fi;
#endif
		ti++
	:: else -> break
	od;
	skip
}

/* futex(FUTEX_WAKE) on slot w's seq */
inline futex_wake(w)
{
#ifdef SIGSEGV
	ti = 0;
	do
	:: ti < NPG ->
		if
		:: slp[ti] && slpw[ti] == w -> slp[ti] = 0
		:: else
		fi;
		ti++
	:: else -> break
	od;
	skip
#else
	skip
#endif
}

/* slot_release, first half: seq even (closed), windows_closed grows. */
inline slot_close(w)
{
	wseq[w]++;
#ifdef SIGSEGV
	wclosed++
#endif
}

/* slot_release, second half: seq before waiters, as the sleeper does the reverse. */
inline slot_wake(w)
{
#ifdef SIGSEGV
	atomic {
		if
		:: wwait[w] -> wwait[w] = 0; futex_wake(w)
		:: else
		fi
	}
#else
	skip
#endif
}

/* UFFDIO_WAKE over the range: every thread blocked there retries. */
inline uffd_wake(lo, hi)
{
#ifndef SIGSEGV
	d_step {
		ti = lo;
		do
		:: ti <= hi -> blk[ti] = 0; ti++
		:: else -> break
		od;
		skip
	}
#else
	skip
#endif
}

/* wp_window_open: the slot published (slot_take) before the range is protected. */
inline win_open(w, lo, hi)
{
#ifdef BAD_PROTECT_FIRST
	d_step { protect(lo, hi) };
	atomic { wlo[w] = lo; whi[w] = hi; wseq[w]++ }
#else
	d_step {
		wlo[w] = lo;
		whi[w] = hi;
		wseq[w]++;
		protect(lo, hi)
	}
#endif
}

/*
 * wp_window_open when it may fail after protecting: os_all_mapped() finds a
 * page of the range that the program unmapped (here: a page outside the
 * model). It gives back what it protected (which wakes whoever faulted
 * there meanwhile) and releases the slot.
 */
inline win_open_mayfail(w, lo, hi, ok)
{
	win_open(w, lo, hi);
	ok = 1;
	if
	:: openfail > 0 ->
		openfail--;
		atomic {
#ifndef BAD_OPEN_FAIL_KEEPS_PROTECTION
			unprotect_uncovered(w);
#endif
			slot_close(w)
		};
		slot_wake(w);
		ok = 0
	:: true
	fi
}

/*
 * wp_window_close: unprotect what no other window covers, release, wake.
 * userfaultfd: the UFFDIO_WAKE that follows window_lock is taken in the
 * same step (a thread woken a moment later retries the same way).
 */
inline win_close(w)
{
#ifdef SIGSEGV
#ifdef BAD_FUTEX_ORDER
	atomic { unprotect_uncovered(w) };
	slot_wake(w); /* waiters looked at before seq moves */
	atomic { slot_close(w) }
#else
	atomic { unprotect_uncovered(w); slot_close(w) };
	slot_wake(w)
#endif
#else
	atomic {
		unprotect_uncovered(w);
		slot_close(w);
		uffd_wake(wlo[w], whi[w])
	}
#endif
}

/* ---- the program: a writer per page ----------------------------------- */

/*
 * One store to page p, by the kernel's rules: through a MAP_SHARED mapping
 * into the frame; to a MAP_PRIVATE mapping of a KSM frame as the kernel's
 * copy-on-write (a fresh anonymous page: the frame is never written); to an
 * anonymous page in place. A store writes the whole page in the model.
 */
inline do_write(p, v)
{
	if
	:: mt[p] == M_SHARED ->
		/* (d): a frame written through a mapping has no other mapper. */
		assert(!OTHER_MAPS(p, mf[p]) && !fksm[mf[p]]);
		fval[mf[p]] = v
	:: mt[p] == M_PRIV -> mt[p] = M_ANON; anon[p] = v
	:: mt[p] == M_ANON -> anon[p] = v
	fi;
	expv[p] = v;
	wtg[p] = 0
}

#ifdef SIGSEGV
/* window_find (a snapshot: see design.md) */
inline window_find(p, ws)
{
	ws = NONE;
	if
	:: COVERS(0, p) -> ws = 0
	:: COVERS(1, p) -> ws = 1
	:: COVERS(2, p) -> ws = 2
	:: else
	fi
}
#endif

/* A read of page p sees what was last written there (property (a)). */
inline read_check(p)
{
	do
	:: atomic { mt[p] != M_MISSING -> assert(VIS(p) == expv[p]) }; break
	:: atomic { mt[p] == M_MISSING -> blk[p] = 1; swq[p] = 1 }; !blk[p]
	od;
	skip
}

proctype writer(byte p)
{
	byte i, v;
#ifdef SIGSEGV
	bit unk; /* unknown_addr == this page */
	byte ugen, ws, wsq;
#endif
	do
	:: i == NW -> break
	:: i < NW ->
		v = 3 + p * NW + i;
		do
		:: atomic { mt[p] != M_MISSING && !wp[p] -> do_write(p, v) }; break
		:: atomic { mt[p] == M_MISSING -> wtg[p] = 1; blk[p] = 1; swq[p] = 1 };
blocked_miss:	!blk[p]
#ifndef SIGSEGV
		:: atomic { mt[p] != M_MISSING && wp[p] -> wtg[p] = 1; blk[p] = 1; pend_wp[p] = 1 };
blocked_wp:	!blk[p]
#else
		/* sigsegv_handler */
		:: atomic { mt[p] != M_MISSING && wp[p] -> wtg[p] = 1; window_find(p, ws);
			    if :: ws != NONE -> wsq = wseq[ws]; unk = 0 :: else fi };
			if
			:: ws != NONE ->
				do
				:: wwait[ws] = 1;
					if
					:: wseq[ws] != wsq -> break
					:: else ->
						atomic { if :: wseq[ws] == wsq -> slp[p] = 1; slpw[p] = ws :: else fi };
sleeping:					!slp[p]
					fi
				od
			:: else ->
				/* sigsegv_chain: retried once per window closed (at most 64 times), else not ours */
				atomic {
					if
					:: !unk -> unk = 1; ugen = wclosed
					:: unk && wclosed != ugen -> ugen = wclosed
					:: else -> assert(false) /* handed on: the program dies of it */
					fi
				}
			fi
#endif
		od;
		i++;
		read_check(p)
	od;
	atomic { fin++ }
}

/* The invariant behind (a): at every moment each page reads its last write. */
proctype monitor()
{
end:	atomic { assert(VIS(0) == expv[0] && VIS(1) == expv[1] && VIS(2) == expv[2]) }
}

/* ---- the fault thread and the swap-in worker -------------------------- */

#ifndef SIGSEGV
/* handle_wp_fault: in an open window, its close wakes; else wake now (stale). */
#define WP_MSG(p)                                                  \
	atomic {                                                       \
		pend_wp[p] -> pend_wp[p] = 0;                              \
		if                                                         \
		:: COVERED(p)                                              \
		:: else -> blk[p] = 0                                      \
		fi                                                         \
	}

proctype fault_thread()
{
end:	do
	:: WP_MSG(0)
	:: WP_MSG(1)
	:: WP_MSG(2)
	od;
	skip
}
#endif

#ifndef NO_SWAP
/*
 * swapin_thread -> handle_missing -> swap_fault -> fault_look: a swapped page
 * is brought in (fault_in, map_frames); a page whose swap-out is finishing
 * is waited for (its frame lock); anything else was a stale fault. Then the
 * thread is woken.
 */
inline swap_fault(p)
{
	do
	:: atomic {
		if
		:: pt[p] == T_SWAP -> s = 1
		:: (pt[p] == T_PRIVATE || pt[p] == T_KSM) && flock[pv[p]] -> f = pv[p]; s = 2
		:: else -> s = 0
		fi
	   };
		if
		:: s == 1 ->
			/*
			 * fault_in: the slot read, a new frame (fault_frames: waiting
			 * for one stands for direct reclaim), written through the memfd.
			 */
			atomic {
				CAN_ALLOC -> frame_alloc(f);
				fval[f] = sval;
				fowner[f] = p;
				flock[f] = 1
			};
#ifdef BAD_SWAPIN_MAP_FIRST
			atomic { v = fval[f]; fval[f] = 0; remap(p, M_SHARED, f) };
			fval[f] = v;
#else
			remap(p, M_SHARED, f); /* map_frames: fault_remap + fault_register */
#endif
			atomic { pt[p] = T_PRIVATE; pv[p] = f; flock[f] = 0 };
			sused = 0; /* swap_slot_free */
			break
		:: s == 2 -> atomic { !flock[f] || pv[p] != f || pt[p] == T_SWAP } /* sched_yield, again */
		:: s == 0 -> break
		fi
	od;
#ifdef BAD_SWAPIN_NO_WAKE
	wbusy = 0
#else
	atomic { blk[p] = 0; wbusy = 0 } /* uffd_wake */
#endif
}

proctype worker()
{
	byte f, s, v;
end:	do
	:: atomic { swq[0] -> swq[0] = 0; wbusy = 1 }; swap_fault(0)
	:: atomic { swq[1] -> swq[1] = 0; wbusy = 1 }; swap_fault(1)
	:: atomic { swq[2] -> swq[2] = 0; wbusy = 1 }; swap_fault(2)
	od;
	skip
}

/*
 * Reclaim (vmscan.c: lock_run, cold_run -> swap_out_run -> run_out): page 1,
 * private, goes to its slot. Frame lock only tried; no KSM mutex.
 */
proctype reclaim()
{
	byte f;
	bit ok;

	atomic {
		if
		:: pt[1] == T_PRIVATE && !flock[pv[1]] -> f = pv[1]; flock[f] = 1; ok = 1
		:: else
		fi
	};
	if
	:: ok ->
#ifndef BAD_SWAPOUT_NO_WINDOW
		win_open(W_R, 1, 1);
#endif
		atomic { sused = 1; sval = fval[f] }; /* slots_alloc, slots_write */
#ifdef BAD_SWAPOUT_MMAP_THEN_REGISTER
		atomic { mt[1] = M_ANON; anon[1] = 0; wp[1] = 0 }; /* mmap: reads see zeros */
#endif
		atomic { mt[1] = M_MISSING; wp[1] = 0 }; /* fault_remap_missing */
		atomic { pt[1] = T_SWAP; pv[1] = 0 }; /* pte_set */
#ifndef BAD_SWAPOUT_NO_WINDOW
		win_close(W_R);
#endif
		atomic { flock[f] = 0; frame_free(f) }
	:: else
	fi;
	atomic { fin++ }
}
#endif

/* ---- KSM (ksm.c) ------------------------------------------------------ */

/*
 * revert_last_sharer: the one sharer left gets the frame back as its own
 * (MAP_SHARED), unless the kernel copied it: pagemap, read inside a window
 * so that no copy can complete after the look. rv: 0 failed, 1 kept, 2 copied.
 */
inline revert_last_sharer(q, k, rv)
{
	if
	:: !(pt[q] == T_KSM && pv[q] == k) -> rv = 0
	:: else ->
#ifdef BAD_PAGEMAP_BEFORE_WINDOW
		cp = (mt[q] == M_ANON);
		win_open(W_B, q, q);
#else
		win_open(W_B, q, q);
		cp = (mt[q] == M_ANON); /* pagemap_read, pm_copied */
#endif
		if
		:: cp -> pt[q] = T_COPIED; rv = 2
		:: else ->
			atomic {
				remap(q, M_SHARED, k);
				fowner[k] = q; /* page_make_private_owner */
				fksm[k] = 0;
				pt[q] = T_PRIVATE
			};
			rv = 1
		fi;
		win_close(W_B);
		srmap = srmap & ~BIT(q) /* stable_remove_rmap */
	fi
}

/* ksm_settle: one sharer left gets the frame; none, it is freed. */
inline ksm_settle(k)
{
	if
	:: NR_SHARERS > 1
	:: else ->
		rv = 2;
		if
		:: NR_SHARERS == 1 -> sq = ONE_SHARER; revert_last_sharer(sq, k, rv)
		:: else
		fi;
		if
		:: rv != 0 ->
			slive = 0; /* stable_delete */
			skpfn = NONE;
			if
			:: rv != 1 -> fksm[k] = 0; dfr = dfr | BIT(k)
			:: else
			fi
		:: else
		fi
	fi
}

/* drop_sharer */
inline drop_sharer(p, k)
{
	srmap = srmap & ~BIT(p);
	ksm_settle(k)
}

/*
 * unshare_page: page p gets a private frame holding what the program sees
 * there (the KSM frame or the kernel's copy), copied under its window.
 * res: 0 done, 1 no frame (ENOMEM), 2 changed under us (EAGAIN).
 */
inline unshare_page(p, res)
{
	ty = pt[p];
	k = pv[p];
	res = 0;
	if
	:: ty == T_KSM || ty == T_COPIED ->
		frame_alloc(f); /* policy_frame_alloc */
		if
		:: f == NONE -> res = 1
		:: else ->
			if
			:: ty == T_KSM -> atomic { !flock[k] -> flock[k] = 1 }
			:: else
			fi;
			if
			:: pt[p] != ty || (ty == T_KSM && pv[p] != k) -> res = 2
			:: else ->
#ifdef BAD_UNMERGE_SHARED
				/* wrong: the page keeps the KSM frame itself, MAP_SHARED */
				win_open(W_A, p, p);
				atomic { remap(p, M_SHARED, k); pt[p] = T_PRIVATE; fowner[k] = p }
#else
				win_open(W_A, p, p);
				fval[f] = VIS(p); /* memcpy from the page's address */
				atomic { remap(p, M_SHARED, f); fowner[f] = p; pt[p] = T_PRIVATE; pv[p] = f }
#endif
				if
				:: ty == T_KSM -> drop_sharer(p, k)
				:: else
				fi;
				win_close(W_A)
			fi;
			if
			:: ty == T_KSM -> flock[k] = 0
			:: else
			fi;
			if
			:: res != 0 || pv[p] != f -> atomic { frame_free(f) }
			:: else
			fi
		fi
	:: else
	fi
}

#ifndef NO_MERGE
/*
 * ksmd: one chunk that merges page 2 (v) into page 0's frame (the
 * candidate, promoted in place), then one that notices copies and brings
 * copied pages back. Each chunk holds the KSM mutex (scan_step).
 */
proctype ksmd()
{
	byte a0, a2, k, f, q, sq, ty, rv, res;
	bit ok, cp;

	/* chunk 1: scan_chunk -> scan_private -> plan_page (PLAN_PROMOTE) -> run_flush */
	kmx_lock();
	/* The checksums: read through the direct map, no lock, no window. */
	atomic {
		ok = pt[0] == T_PRIVATE && pt[2] == T_PRIVATE && fval[pv[0]] == fval[pv[2]];
		a0 = pv[0];
		a2 = pv[2]
	};
	if
	:: ok ->
		/* run_lock: frames try-locked, entries checked */
		atomic {
			ok = !flock[a2] && !flock[a0] && pt[2] == T_PRIVATE && pv[2] == a2 &&
			     pt[0] == T_PRIVATE && pv[0] == a0;
			if
			:: ok -> flock[a2] = 1; flock[a0] = 1
			:: else
			fi
		};
		if
		:: ok ->
			/*
			 * run_protect: the run's window spans pages 1..2 (page 1
			 * standing for a planned entry that dropped out at
			 * run_lock), then the candidate's window.
			 */
			win_open_mayfail(W_A, 1, 2, ok);
			if
			:: ok -> win_open(W_B, 0, 0)
			:: else
			fi;
#ifndef BAD_NO_VERIFY
			/* run_verify: the full compare, under the windows */
			ok = ok && fval[a2] == fval[a0];
#endif
#ifdef BAD_REMAP_AFTER_CLOSE
			if
			:: ok -> win_close(W_B); win_close(W_A)
			:: else
			fi;
#endif
			if
			:: ok ->
				atomic { slive = 1; skpfn = a0; srmap = 0 }; /* stable_new */
				remap(0, M_PRIV, a0); /* run_remap: the candidate first */
				remap(2, M_PRIV, a0); /* then v */
				atomic { /* run_commit */
					fksm[a0] = 1;
					fowner[a0] = SID;
					srmap = BIT(0) | BIT(2);
					pt[0] = T_KSM;
					pt[2] = T_KSM;
					pv[2] = a0;
					dfr = dfr | BIT(a2)
				};
#ifndef BAD_REMAP_AFTER_CLOSE
				win_close(W_B);
				win_close(W_A)
#endif
			:: else ->
				if
				:: OPEN(W_B) -> win_close(W_B)
				:: else
				fi;
				if
				:: OPEN(W_A) -> win_close(W_A)
				:: else
				fi
			fi;
			atomic { flock[a0] = 0; flock[a2] = 0 } /* run_unlock */
		:: else
		fi
	:: else
	fi;
	flush_freed();
	kmx_unlock();

	/* chunk 2: scan_other -> page_copied, then unshare_page of copied pages */
	kmx_lock();
	for (q : 0 .. 2) {
		if
		:: q != 1 && pt[q] == T_KSM && mt[q] == M_ANON -> /* pagemap: copied */
			k = pv[q];
			atomic { if :: !flock[k] -> flock[k] = 1; ok = 1 :: else -> ok = 0 fi };
			if
			:: ok ->
				if
				:: pt[q] == T_KSM && pv[q] == k ->
					pt[q] = T_COPIED;
					a0 = q;
					drop_sharer(a0, k)
				:: else
				fi;
				flock[k] = 0
			:: else
			fi
		:: else
		fi
	}
	for (a2 : 0 .. 2) {
		if
		:: pt[a2] == T_COPIED -> unshare_page(a2, res)
		:: else
		fi
	}
	flush_freed();
	kmx_unlock();
	atomic { fin++ }
}
#endif

#ifndef NO_UNMERGE
/* sp_madvise(SP_MADV_UNMERGEABLE) of page 0: ksm_unmerge_range */
proctype unmerger()
{
	byte k, f, q, sq, ty, rv, res, tries;
	bit cp;

	kmx_lock();
	/* unmerge_need: a frame for every sharer but the last */
	frame_alloc(f);
	if
	:: f != NONE -> atomic { frame_free(f) };
		do
		:: pt[0] == T_KSM && tries < 2 ->
			unshare_page(0, res);
			tries++;
			if
			:: res != 2 -> break
			:: else
			fi
		:: else -> break
		od
	:: else
	fi;
	flush_freed();
	kmx_unlock();
	atomic { fin++ }
}
#endif

/* ---- migration (migrate.c) and hot-remove (hotplug.c) ----------------- */

#ifndef NO_OFFLINE
/*
 * ksm_move_sharer: page q onto the new KSM frame f, under its own window;
 * skipped if the kernel copied it already (pagemap, read under the window).
 * r: 1 moved, 0 copied, 3 the remap failed (it still maps k).
 */
inline ksm_move_sharer(q, f, r)
{
#ifdef BAD_PAGEMAP_BEFORE_WINDOW
	cp = (mt[q] == M_ANON);
	win_open(W_A, q, q);
#else
	win_open(W_A, q, q);
	cp = (mt[q] == M_ANON);
#endif
	if
	:: cp -> pt[q] = T_COPIED; r = 0
	:: !cp && mapfail > 0 -> mapfail--; r = 3 /* ENOMEM: max_map_count */
#ifdef BAD_MIGRATE_SHARED
	:: !cp -> atomic { remap(q, M_SHARED, f); pv[q] = f }; r = 1 /* the wrong flag */
#else
	:: !cp -> atomic { remap(q, M_PRIV, f); pv[q] = f }; r = 1
#endif
	fi;
	win_close(W_A)
}

/*
 * ksm_roll_back: a moved sharer back onto k. It may have been written (and
 * so copied by the kernel) since it moved: the pagemap, read under the
 * window, says so, and then it leaves the node instead.
 */
inline ksm_roll_back(q, k)
{
	win_open(W_A, q, q);
#ifndef BAD_ROLLBACK_NO_PAGEMAP
	if
	:: mt[q] == M_ANON -> pt[q] = T_COPIED; srmap = srmap & ~BIT(q)
	:: else -> atomic { remap(q, M_PRIV, k); pv[q] = k }
	fi;
#else
	atomic { remap(q, M_PRIV, k); pv[q] = k };
#endif
	win_close(W_A)
}

/* move_ksm: KSM frame k (locked) and its sharers to f. res: 0 moved, 3 failed. */
inline move_ksm(k, f, res)
{
	if
	:: !(slive && skpfn == k) -> res = 2
	:: else ->
		atomic { fval[f] = fval[k]; fksm[f] = 1; fowner[f] = SID }; /* one copy */
		moved = 0;
		todo = srmap;
		res = 0;
		for (q : 0 .. 2) {
			if
			:: res == 0 && (todo & BIT(q)) && pt[q] == T_KSM && pv[q] == k ->
				ksm_move_sharer(q, f, r);
				if
				:: r == 1 -> moved = moved | BIT(q)
				:: r == 0 -> srmap = srmap & ~BIT(q) /* ksm_sharer_copied */
				:: r == 3 -> res = 3
				fi
			:: else
			fi
		}
		if
		:: res != 0 ->
			for (q : 0 .. 2) {
				if
				:: moved & BIT(q) -> ksm_roll_back(q, k)
				:: else
				fi
			}
			fksm[f] = 0
		:: else ->
			atomic { skpfn = f; fksm[k] = 0 }; /* the stable node re-keyed last */
#ifdef BAD_NO_REKEY
			skpfn = k;
#endif
			ksm_settle(f)
		fi
	fi
}

/* move_private: page q's private frame old to new, under its window. res: 0, 2 busy. */
inline move_private(q, old, f, res)
{
	atomic {
		if
		:: pt[q] == T_PRIVATE && pv[q] == old && !flock[old] -> flock[old] = 1; res = 0
		:: else -> res = 2
		fi
	};
	if
	:: res == 0 ->
		win_open(W_A, q, q);
		fval[f] = fval[old]; /* memcpy through the direct map */
		atomic { remap(q, M_SHARED, f); fowner[f] = q; pv[q] = f };
		win_close(W_A);
		atomic { flock[old] = 0; frame_free(old) }
	:: else
	fi
}

/* migrate_one, reason MR_OFFLINING: KSM frames move too (the seed). */
inline migrate_one(old)
{
	if
	:: !fused[old] -> skip
	:: else ->
		frame_alloc(f); /* offline_new_frame */
		if
		:: f == NONE -> skip /* ENOMEM */
		:: f != NONE && fksm[old] ->
			atomic { if :: !flock[old] -> flock[old] = 1; res = 0 :: else -> res = 2 fi };
			if
			:: res == 0 ->
				move_ksm(old, f, res);
				flock[old] = 0;
				if
				:: res == 0 -> atomic { frame_free(old) }
				:: else
				fi
			:: else
			fi;
			if
			:: res != 0 -> atomic { frame_free(f) }
			:: else
			fi
		:: f != NONE && !fksm[old] ->
			q = fowner[old];
			if
			:: q < NPG -> move_private(q, old, f, res)
			:: else -> res = 2
			fi;
			if
			:: res != 0 -> atomic { frame_free(f) }
			:: else
			fi
		fi
	fi
}

/* section_used */
#define SEC0_USED (fused[0] + fused[1] + fused[2])
#define FREE_ELSEWHERE ((!fused[3] && !offl[1]) + (!fused[4] && !offl[1]) + (!fused[5] && !offl[1]))

/*
 * sp_section_offline(pool, 0): transition() with to_offline. The chain:
 * KSM's callback (ksm_memory_callback) and one other notifier that may veto,
 * in either priority order. Notifiers that agreed, and only they, hear
 * CANCEL_OFFLINE (notify_going).
 */
proctype offline()
{
	byte f, q, sq, r, res, rv, moved, todo, ty, pass, old;
	bit cp, ksm_first, veto, ksm_in;

	if
	:: ksm_first = 1
	:: ksm_first = 0
	fi;
	if
	:: veto = 1
	:: veto = 0
	fi;
	/* GOING_OFFLINE in priority order, until a veto */
	if
	:: ksm_first -> kmx_lock(); ksm_in = 1
	:: else
	fi;
	if
	:: veto ->
#ifdef BAD_CANCEL_ALL
		kmx_unlock(); /* CANCEL_OFFLINE to every notifier */
#else
		if
		:: ksm_in -> kmx_unlock() /* CANCEL_OFFLINE to those that agreed */
		:: else
		fi;
#endif
		goto out
	:: else
	fi;
	if
	:: !ksm_first -> kmx_lock(); ksm_in = 1
	:: else
	fi;

	/* take_offline: isolate, offline_migrate, section_remove */
	isolated[0] = 1;
	if
	:: SEC0_USED > FREE_ELSEWHERE -> goto cancel /* ENOMEM before moving anything */
	:: else
	fi;
	pass = 0;
	do
	:: SEC0_USED > 0 && pass < PASSES ->
		/* migrate_pages over section_used(), in pfn order */
		for (old : 0 .. SECP - 1) {
			migrate_one(old)
		}
		flush_freed(); /* ksm_flush */
		pass++
	:: else -> break
	od;
	if
	:: SEC0_USED > 0 -> goto cancel /* EBUSY */
	:: else
	fi;
	/* section_remove: the range punched, the descriptors freed */
	atomic { offl[0] = 1; isolated[0] = 0 };
	/* the debug check: no page maps a frame of the section */
	assert(!((mt[0] == M_SHARED || mt[0] == M_PRIV) && SEC(mf[0]) == 0));
	assert(!((mt[1] == M_SHARED || mt[1] == M_PRIV) && SEC(mf[1]) == 0));
	assert(!((mt[2] == M_SHARED || mt[2] == M_PRIV) && SEC(mf[2]) == 0));
	/* OFFLINE: KSM prunes stable nodes by pfn range, then drops the mutex */
	assert(!(slive && skpfn < SECP)); /* (c), and prune_range finds nothing */
	atomic {
		if
		:: slive && skpfn < SECP -> slive = 0; skpfn = NONE; srmap = 0 /* prune_range */
		:: else
		fi
	};
	kmx_unlock();
	assert(!(slive && skpfn < SECP)); /* (c) after OFFLINE */
	goto out;
cancel:
	isolated[0] = 0;
	kmx_unlock(); /* CANCEL_OFFLINE: KSM agreed */
out:
	atomic { fin++ }
}
#endif

/* ---- the world -------------------------------------------------------- */

#define NPROC (W0_N + W1_N + W2_N + MERGE_N + UNMERGE_N + OFFLINE_N + SWAP_N)
#ifdef NO_W0
#define W0_N 0
#else
#define W0_N 1
#endif
#ifdef NO_W1
#define W1_N 0
#else
#define W1_N 1
#endif
#ifdef NO_W2
#define W2_N 0
#else
#define W2_N 1
#endif
#ifdef NO_MERGE
#define MERGE_N 0
#else
#define MERGE_N 1
#endif
#ifdef NO_UNMERGE
#define UNMERGE_N 0
#else
#define UNMERGE_N 1
#endif
#ifdef NO_OFFLINE
#define OFFLINE_N 0
#else
#define OFFLINE_N 1
#endif
#ifdef NO_SWAP
#define SWAP_N 0
#else
#define SWAP_N 1
#endif

/* After everything: the books balance, and nothing is left locked, protected or waiting. */
inline final_check()
{
	atomic {
	assert(kmx == NONE);
	for (ti : 0 .. NPG - 1) {
		assert(!wp[ti] && !blk[ti] && !wtg[ti]);
		assert(VIS(ti) == expv[ti]);
		if
		:: pt[ti] == T_PRIVATE ->
			assert(mt[ti] == M_SHARED && mf[ti] == pv[ti] && fused[pv[ti]] &&
			       !fksm[pv[ti]] && fowner[pv[ti]] == ti)
		:: pt[ti] == T_KSM ->
			assert(slive && skpfn == pv[ti] && (srmap & BIT(ti)) && fksm[pv[ti]]);
			assert((mt[ti] == M_PRIV && mf[ti] == pv[ti]) || mt[ti] == M_ANON)
		:: pt[ti] == T_COPIED -> assert(mt[ti] == M_ANON)
		:: pt[ti] == T_SWAP -> assert(mt[ti] == M_MISSING && sused)
		fi
	}
	for (ti : 0 .. NFR - 1) {
		assert(!flock[ti]);
		/* no frame leaked: each frame in use is named by a page or the stable node */
		assert(!fused[ti] || (pt[0] != T_SWAP && pv[0] == ti) ||
		       (pt[1] != T_SWAP && pv[1] == ti) || (pt[2] != T_SWAP && pv[2] == ti) ||
		       (slive && skpfn == ti))
	}
	assert(!slive || !offl[SEC(skpfn)])
	}
}

init
{
	atomic {
		/* page 0 on frame 0, page 1 on frame 1 (section 0), page 2 on frame 3 */
		fval[0] = 1; fval[1] = 2; fval[3] = 1;
		fused[0] = 1; fused[1] = 1; fused[3] = 1;
		fowner[0] = 0; fowner[1] = 1; fowner[3] = 2;
		fowner[2] = NONE; fowner[4] = NONE; fowner[5] = NONE;
		mt[0] = M_SHARED; mf[0] = 0; pt[0] = T_PRIVATE; pv[0] = 0; expv[0] = 1;
		mt[1] = M_SHARED; mf[1] = 1; pt[1] = T_PRIVATE; pv[1] = 1; expv[1] = 2;
		mt[2] = M_SHARED; mf[2] = 3; pt[2] = T_PRIVATE; pv[2] = 3; expv[2] = 1;
#ifdef MERGED
		/* pages 0 and 2 merged already: frame 0 is the KSM frame of both */
		fval[3] = 0; fused[3] = 0; fowner[3] = NONE;
		fksm[0] = 1; fowner[0] = SID;
		slive = 1; skpfn = 0; srmap = BIT(0) | BIT(2);
		mt[0] = M_PRIV; pt[0] = T_KSM;
		mt[2] = M_PRIV; mf[2] = 0; pt[2] = T_KSM; pv[2] = 0;
#endif
#ifndef NO_MONITOR
		run monitor();
#endif
#ifndef SIGSEGV
		run fault_thread();
#endif
#ifndef NO_SWAP
		run worker();
		run reclaim();
#endif
#ifndef NO_W0
		run writer(0);
#endif
#ifndef NO_W1
		run writer(1);
#endif
#ifndef NO_W2
		run writer(2);
#endif
#ifndef NO_MERGE
		run ksmd();
#endif
#ifndef NO_UNMERGE
		run unmerger();
#endif
#ifndef NO_OFFLINE
		run offline();
#endif
	}
	(fin == NPROC && !wbusy && !swq[0] && !swq[1] && !swq[2]);
	final_check()
}

/* (b), liveness: a writer that faulted is eventually let through. */
ltl live {
	[] ((wtg[0] -> <> !wtg[0]) && (wtg[1] -> <> !wtg[1]) && (wtg[2] -> <> !wtg[2]))
}
