#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test with CTest.
# Extra arguments go to ctest (e.g. tests/run.sh -R master).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILD_DIR:-$root/build}
"$root/scripts/build.sh" -DBUILD_TESTING=ON
(cd "$build" && ctest --output-on-failure -j 2 "$@")

# The libFuzzer targets need clang: a build of their own, then a bounded run of each.
fuzz_build=${build}-fuzz
CXX=clang++ FERRY_BUILD_DIR=$fuzz_build "$root/scripts/build.sh" -DFERRY_FUZZ=ON \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo
cd "$fuzz_build"
ctest --output-on-failure "$@"
