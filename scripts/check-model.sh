#!/usr/bin/env bash
# Check the Promela model of the window protocol (docs/model/samepage.pml)
# with spin; docs/design.md, "Model", says what it stands for.
#
#   scripts/check-model.sh           every configuration of the protocol as
#                                    written must verify (safety and
#                                    liveness), and every known-bad variant
#                                    must give a counterexample
#   scripts/check-model.sh --good    only the first half
#   scripts/check-model.sh --broken  only the second half
#   scripts/check-model.sh --break BAD_X
#                                    the first half with BAD_X compiled in:
#                                    shows the check failing (exit 1)
#   scripts/check-model.sh --trail BAD_X "DEFS"
#                                    print the counterexample of one variant
#   MODEL_JOBS=N                     searches run at once (2)
#
# A broken variant that verifies means the model lost the power to see that
# defect: it fails the check as surely as a good one with an error. Exit 0
# only when all went as expected. Run by `make check`.
set -eu
cd "$(dirname "$0")/.."
model=$PWD/docs/model/samepage.pml

command -v spin >/dev/null || {
	echo "check-model: spin is missing (scripts/install-deps.sh check installs it)" >&2
	exit 1
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# pan's hash table: 2^24 slots (the largest configuration stores 2.3
# million states, ~0.5 GB). The depth bound is far above the deepest run.
PAN_OPTS="-m100000 -w24"
# -O1: the best compile + search time here. A broken variant's
# counterexample comes early, so it is compiled at -O0, four times faster.
CC_GOOD="-O1 -w -DMEMLIM=3072"
CC_BAD="-O0 -w -DMEMLIM=3072"
JOBS=${MODEL_JOBS:-2}

# search DIR KIND CC "DEFS": spin and pan in DIR, pan's output in DIR/out.
# KIND is safety (assertions; deadlocks as invalid end states) or live
# (the LTL claim `live` under weak fairness, stutter-extended).
search() {
	local dir=$1 kind=$2 cc=$3 defs=$4
	cp "$model" "$dir/"
	# shellcheck disable=SC2086
	(cd "$dir" && spin -a $defs samepage.pml >spin.out 2>&1) || {
		cp "$dir/spin.out" "$dir/out"
		return
	}
	if [ "$kind" = safety ]; then
		# shellcheck disable=SC2086
		gcc $cc -DSAFETY -DNOCLAIM -o "$dir/pan" "$dir/pan.c"
		# shellcheck disable=SC2086
		(cd "$dir" && ./pan $PAN_OPTS >out 2>&1) || true
	else
		# shellcheck disable=SC2086
		gcc $cc -DNFAIR=4 -o "$dir/pan" "$dir/pan.c"
		# shellcheck disable=SC2086
		(cd "$dir" && ./pan -a -f $PAN_OPTS >out 2>&1) || true
	fi
}

# pan's error count; "incomplete" when the search stopped short (neither a
# proof nor a counterexample) or never ran.
errors() {
	if grep -qE 'max search depth too small|reached -DMEMLIM bound|out of memory' "$1/out"; then
		echo incomplete
		return
	fi
	sed -n 's/.*errors: \([0-9]*\).*/\1/p' "$1/out" | tail -n 1 | grep . || echo incomplete
}

# Which property a counterexample breaks, in words.
property() {
	local l
	l=$(grep -m1 -E '^pan:[0-9]+:' "$1/out" | sed 's/ (at depth.*//')
	case $l in
	*'==expv['*) echo "(a) a write lost: $(echo "$l" | cut -c1-50)..." ;;
	*'invalid end state'* | *'acceptance cycle'*) echo "(b) a thread waits forever: $l" ;;
	*'skpfn<'*) echo "(c) a stable node names an offline frame: $l" ;;
	*'violated 0') echo "(a) a write fault handed on: the program dies of SIGSEGV" ;;
	*'kmx==_pid'*) echo "(d) CANCEL to KSM, which never took its mutex: $l" ;;
	*) echo "(d) an invariant broken: $(echo "$l" | cut -c1-70)..." ;;
	esac
}

# check N good|broken NAME KIND "DEFS": one search, its verdict in
# $work/N.verdict, starting "ok" only when it went as expected. A good one
# is the protocol as written and must verify; a broken one is a known-bad
# protocol (NAME is its BAD_ flag) and spin must find its flaw.
check() {
	local n=$1 want=$2 name=$3 kind=$4 defs=$5 dir e
	dir=$work/$n
	mkdir "$dir"
	if [ "$want" = good ]; then
		search "$dir" "$kind" "$CC_GOOD" "$defs $extra"
		e=$(errors "$dir")
		if [ "$e" = 0 ]; then
			echo "ok   $kind $name: $(grep -E 'states, stored' "$dir/out" | tr -s ' \t' ' ')"
		else
			echo "FAIL $kind $name [$defs]: errors $e"
			grep -E '^pan|error' "$dir/out" | head -n 5
		fi
	else
		search "$dir" "$kind" "$CC_BAD" "-D$name $defs"
		e=$(errors "$dir")
		if [ "$e" != 0 ] && [ "$e" != incomplete ]; then
			echo "ok   $name caught: $(property "$dir")"
		else
			echo "FAIL $name [$defs] verifies ($e): the model no longer sees it"
		fi
	fi >"$work/$n.verdict" 2>&1
	rm -rf "$dir"
}

nchecks=0
# queue good|broken NAME KIND "DEFS": run a check, JOBS at a time.
queue() {
	nchecks=$((nchecks + 1))
	while [ "$(jobs -rp | wc -l)" -ge "$JOBS" ]; do
		wait -n || true
	done
	check "$nchecks" "$@" &
}

extra=
if [ "${1:-}" = --break ]; then
	extra=-D$2
	set -- --good
fi

if [ "${1:-}" = --trail ]; then
	mkdir "$work/trail"
	search "$work/trail" safety "$CC_BAD" "-D$2 ${3:-}"
	cd "$work/trail"
	[ -e samepage.pml.trail ] || {
		echo "check-model: $2 [${3:-}]: no counterexample" >&2
		exit 1
	}
	# shellcheck disable=SC2086
	spin -t -p -D"$2" ${3:-} samepage.pml | grep -vE '^\s*$'
	grep -m1 -E '^pan:[0-9]+:' out
	exit 0
fi

# Configurations: each leaves out what its race does not need, so that
# every one is searched exhaustively in seconds. W0/W1/W2 are the writers
# of pages 0, 1, 2; MERGED starts with pages 0 and 2 on one KSM frame.
M_UFFD="-DNO_OFFLINE -DNO_SWAP -DNO_W1"
M_SEGV="-DSIGSEGV -DNO_OFFLINE -DNO_W1"
O_KSM="-DMERGED -DNO_MERGE -DNO_SWAP -DNO_W1"
O_KSM_SEGV="-DSIGSEGV -DMERGED -DNO_MERGE -DNO_UNMERGE -DNO_W1"
M_O="-DNO_SWAP -DNO_UNMERGE -DNO_W1 -DMAPFAIL=0"
S_O="-DNO_MERGE -DNO_UNMERGE -DNO_W0 -DNO_W2"
S_M="-DNO_OFFLINE -DNO_UNMERGE -DNO_W0 -DNO_W2"

if [ "${1:-}" != --broken ]; then
	queue good merge+cow+unmerge safety "$M_UFFD"
	queue good merge+cow+unmerge/sigsegv safety "$M_SEGV"
	queue good offline-ksm+unmerge safety "$O_KSM"
	queue good offline-ksm/sigsegv safety "$O_KSM_SEGV"
	queue good merge+offline safety "$M_O"
	queue good swap+offline safety "$S_O"
	queue good swap+merge safety "$S_M"
	queue good merge+cow+unmerge live "$M_UFFD"
	queue good merge+cow/sigsegv live "$M_SEGV -DNO_UNMERGE"
	queue good offline-ksm live "$O_KSM -DNO_UNMERGE"
	queue good swap+offline live "$S_O"
	queue good swap+merge live "$S_M"
fi

if [ "${1:-}" != --good ]; then
	queue broken BAD_CLOSE_ALL safety "$S_M"
	queue broken BAD_PROTECT_FIRST safety "$M_SEGV"
	queue broken BAD_OPEN_FAIL_KEEPS_PROTECTION safety "$M_UFFD"
	queue broken BAD_FUTEX_ORDER safety "$M_SEGV"
	queue broken BAD_SWAPIN_MAP_FIRST safety "$S_M"
	queue broken BAD_SWAPIN_NO_WAKE safety "$S_M"
	queue broken BAD_SWAPOUT_NO_WINDOW safety "$S_M"
	queue broken BAD_SWAPOUT_MMAP_THEN_REGISTER safety "$S_M"
	queue broken BAD_PAGEMAP_BEFORE_WINDOW safety "$O_KSM"
	queue broken BAD_UNMERGE_SHARED safety "$M_UFFD"
	queue broken BAD_NO_VERIFY safety "$M_UFFD"
	queue broken BAD_REMAP_AFTER_CLOSE safety "$M_UFFD"
	queue broken BAD_MIGRATE_SHARED safety "$O_KSM"
	queue broken BAD_ROLLBACK_NO_PAGEMAP safety "$O_KSM"
	queue broken BAD_NO_REKEY safety "$O_KSM"
	queue broken BAD_CANCEL_ALL safety "$O_KSM"
	# the liveness search sees a writer left waiting as well
	queue broken BAD_SWAPIN_NO_WAKE live "$S_M"
	queue broken BAD_FUTEX_ORDER live "$M_SEGV -DNO_UNMERGE"
fi

wait
bad=0
for i in $(seq 1 "$nchecks"); do
	# No verdict: spin or gcc failed on the way (set -e ended the job).
	[ -s "$work/$i.verdict" ] || echo "FAIL check $i: spin or gcc failed" >"$work/$i.verdict"
	sed 's/^/check-model: /' "$work/$i.verdict"
	grep -q '^ok' "$work/$i.verdict" || bad=$((bad + 1))
done
if [ "$bad" -ne 0 ]; then
	echo "check-model: $bad of $nchecks checks went wrong" >&2
	exit 1
fi
echo "check-model: all $nchecks checks as expected"
