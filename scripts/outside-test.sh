#!/bin/sh
# Build the outside-user test programs as a user of samepage would: api_outside
# once with the command line of API.md against the build tree, once against a
# staged `meson install` through pkg-config; ksm_outside with the command line
# of API.md; numa_outside with libnuma before samepage on the link line, as a
# NUMA-aware host has it. Run each, and end with one line summing their
# "P passed, F failed" lines. Fails if any program fails.
set -eu
build=${1:-build}
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

dest="$top/$build/destdir"
rm -rf "$dest"
meson install --quiet -C "$build" --destdir "$dest" >/dev/null
pcdir=$(dirname "$(find "$dest" -name samepage.pc | head -n 1)")
[ -f "$dest/usr/local/include/samepage.h" ] || { echo "samepage.h not installed" >&2; exit 1; }

cc -Wall -Wextra -Werror -Iinclude tests/outside/api_outside.c -L"$build" -lsamepage \
	-Wl,-rpath,"$top/$build" -pthread -o "$build/api_outside"
PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$dest" \
	cc -Wall -Wextra -Werror tests/outside/api_outside.c \
	$(PKG_CONFIG_PATH="$pcdir" PKG_CONFIG_SYSROOT_DIR="$dest" pkg-config --cflags --libs samepage) \
	-Wl,-rpath,"$top/$build" -pthread -o "$build/api_outside_pc"
cc -Wall -Wextra -Werror -Iinclude tests/outside/ksm_outside.c -L"$build" -lsamepage \
	-Wl,-rpath,"$top/$build" -pthread -o "$build/ksm_outside"
# --no-as-needed: libnuma stays first in the search order even if a linker
# drops libraries it sees no call to.
cc -Wall -Wextra -Werror -Iinclude tests/outside/numa_outside.c -Wl,--no-as-needed -lnuma \
	-L"$build" -lsamepage -Wl,-rpath,"$top/$build" -pthread -o "$build/numa_outside"
"$build/api_outside_pc" >/dev/null

# Runs one program, shows its output, and adds its summary line to the totals.
# A program that fails without a summary line counts as one failure.
passed=0
failed=0
status=0
run_outside() {
	out="$build/$1.out"
	rc=0
	"$build/$1" >"$out" || rc=$?
	cat "$out"
	summary=$(sed -n 's/^\([0-9][0-9]*\) passed, \([0-9][0-9]*\) failed$/\1 \2/p' "$out" |
		tail -n 1)
	rm -f "$out"
	if [ -n "$summary" ]; then
		passed=$((passed + ${summary% *}))
		failed=$((failed + ${summary#* }))
	else
		echo "# $1: no summary line (exit status $rc)"
		failed=$((failed + 1))
	fi
	[ "$rc" -eq 0 ] || status=1
}

run_outside api_outside
run_outside ksm_outside
run_outside numa_outside
[ "$failed" -eq 0 ] || status=1
echo "$passed passed, $failed failed"
exit "$status"
