#!/bin/sh
# What libsamepage.so exports (`nm -D --defined-only`): nothing but the
# functions include/samepage.h declares, all sp_*, and the version node
# SAMEPAGE_0 itself; and its SONAME is libsamepage.so.0. An internal name
# that leaves the library can bind another library's symbol of that name
# (migrate_pages, libnuma's) or be bound by it.
# Usage: check-exports.sh LIBRARY HEADER
set -eu
lib=$1
header=$2

soname=$(readelf -d "$lib" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
status=0
if [ "$soname" != libsamepage.so.0 ]; then
	echo "SONAME is '$soname', not libsamepage.so.0"
	status=1
fi

# "ADDR TYPE NAME[@@VERSION]": the name without its version.
syms=$(nm -D --defined-only "$lib" | awk '{ sub(/@.*/, "", $3); print $2, $3 }')
[ -n "$syms" ] || { echo "nm -D lists nothing for $lib"; exit 1; }
n=0
echo "$syms" | {
	while read -r type name; do
		if [ "$type" = A ] && [ "$name" = SAMEPAGE_0 ]; then
			continue
		fi
		case $name in
		sp_*)
			if grep -Eq "[ *]$name\(" "$header"; then
				n=$((n + 1))
				continue
			fi
			echo "exported but not in $(basename "$header"): $name"
			;;
		*)
			echo "exported but not the API: $name ($type)"
			;;
		esac
		status=1
	done
	echo "$n API functions exported"
	exit $status
}
