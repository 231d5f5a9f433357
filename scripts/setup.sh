#!/usr/bin/env bash
# Installs the Debian 12 packages that Ferry's build, tests and tools need, only when one is
# missing. Running it again on a machine that has them all does nothing (no apt-get call).
# --with-postgres: also PostgreSQL 15, for bench/postgres/run.sh (the baseline).
set -euo pipefail

packages=(
  cmake g++ ninja-build pkg-config
  libzmq3-dev cppzmq-dev
  libprotobuf-dev protobuf-compiler
  libboost-program-options-dev
  libsqlite3-dev sqlite3
  libgtest-dev libgmock-dev libbenchmark-dev
  clang libclang-rt-14-dev
)
case "${1:-}" in
  "") ;;
  --with-postgres) packages+=(postgresql-15) ;;
  *) echo "setup: unknown option '$1' (--with-postgres)" >&2; exit 2 ;;
esac

missing=()
for p in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
  [[ "$status" == "install ok installed" ]] || missing+=("$p")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

echo "setup: installing ${missing[*]}" >&2
sudo_cmd=()
[[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
