#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with CTest.
# Extra arguments go to ctest (e.g. tests/run.sh -R master).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILD_DIR:-$root/build}
"$root/scripts/build.sh" -DBUILD_TESTING=ON
cd "$build"
ctest --output-on-failure -j 2 "$@"
