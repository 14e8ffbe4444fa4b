#!/bin/sh
# Build the outside-user test program as a user of samepage would: once with
# the command line of API.md against the build tree, once against a staged
# `meson install` through pkg-config, and run it.
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
"$build/api_outside_pc" >/dev/null
exec "$build/api_outside"
