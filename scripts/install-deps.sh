#!/bin/sh
# Install the Debian packages samepage needs, only those that are missing.
# Run as root (make demo / make check call it).
#   scripts/install-deps.sh         what the build needs
#   scripts/install-deps.sh check   and what the tests use when present:
#                                   promtool (prometheus), tmux, jq, man,
#                                   clang-format, spin (the protocol model),
#                                   python3
set -eu

PKGS="gcc pkg-config meson ninja-build libxxhash-dev libnuma-dev libcmocka-dev liburing-dev libmimalloc-dev"
CHECK_PKGS="prometheus tmux jq man-db clang-format spin python3"
[ "${1:-}" = check ] && PKGS="$PKGS $CHECK_PKGS"

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
	echo "samepage: missing packages:$missing; install them as root:" >&2
	echo "  apt-get install$missing" >&2
	# The test tools only widen what is tested: their tests say they skip.
	[ "${1:-}" = check ] && exit 0
	exit 1
fi
echo "samepage: installing$missing" >&2
apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >&2
