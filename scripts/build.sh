#!/usr/bin/env bash
# Installs what is missing (scripts/setup.sh) and builds Ferry into build/ (or $FERRY_BUILD_DIR).
# Usage: scripts/build.sh [cmake -D options...]; FERRY_TARGETS limits what ninja builds.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILD_DIR:-$root/build}
"$root/scripts/setup.sh"
cmake -S "$root" -B "$build" -G Ninja "$@" >/dev/null
# shellcheck disable=SC2086  # FERRY_TARGETS is a list of target names
ninja -C "$build" -j "${FERRY_JOBS:-2}" ${FERRY_TARGETS:-}
