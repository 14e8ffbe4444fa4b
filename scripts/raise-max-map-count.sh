#!/bin/sh
# Merged pages are mapped one by one where they do not form runs, and every
# mapping is a kernel vma: the tests need more than Debian's default 65530.
# Raised only when running as root, and only upward.
want=${1:-1048576}
cur=$(cat /proc/sys/vm/max_map_count)
if [ "$cur" -lt "$want" ] && [ "$(id -u)" = 0 ]; then
	sysctl -q -w vm.max_map_count="$want" &&
		echo "samepage: raised vm.max_map_count from $cur to $want for the tests" >&2
fi
exit 0
