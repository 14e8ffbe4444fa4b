#!/usr/bin/env bash
# Every C file of the project is as clang-format (.clang-format) writes it:
# fails (exit 1) naming the files that are not, so CI stops unformatted
# code. Installs clang-format if it is missing. Run by `make check`.
set -eu
cd "$(dirname "$0")/.."

command -v clang-format >/dev/null || scripts/install-deps.sh check
files=$(git ls-files 'include/*.h' 'src/*.[ch]' 'tools/*.c' 'bench/*.[ch]' \
	'tests/*.[ch]' 'tests/outside/*.[ch]' 2>/dev/null ||
	ls include/*.h src/*.[ch] tools/*.c bench/*.[ch] tests/*.[ch] tests/outside/*.[ch])
bad=$(clang-format --dry-run $files 2>&1 | sed -n 's/:[0-9]*:[0-9]*: warning: code should be clang-formatted.*//p' | sort -u)
if [ -n "$bad" ]; then
	echo "not clang-formatted (make format fixes them):" >&2
	echo "$bad" | sed 's/^/  /' >&2
	exit 1
fi
