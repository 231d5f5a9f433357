#!/usr/bin/env bash
# Installs what is missing, builds, and runs ferry-bench on the reference workload with
# T = 100,000 (override: bench/run.sh -T 20000), then the micro-benchmarks. Prints the tables.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${FERRY_BUILD_DIR:-$root/build}
FERRY_TARGETS="ferry-master ferry-replica ferry-worker ferry-bench ferry-micro-benchmarks" \
  "$root/scripts/build.sh"
"$build/bin/ferry-bench" -T 100000 "$@"
"$build/bin/ferry-micro-benchmarks" --benchmark_min_time=0.5
