#!/usr/bin/env bash
# Ferry's main job on one machine: installs what is missing, builds, starts a master and the
# replica sites SITE-A and SITE-B on 127.0.0.1 (SQLite), submits the reference workload's
# set-up and transactions, waits until both sites applied everything, prints each site's
# status and checks, row by row, that it holds exactly the master's rows routed to it.
# Then stops the nodes, unless --keep.
#
# usage: deploy/quickstart.sh [--transactions N] [--keep] [--dir DIR] [--bin DIR]
#   --bin DIR  run the executables in DIR as they are, without installing or building
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
transactions=3000
keep=0
run_dir=$root/run
bin=
while [[ $# -gt 0 ]]; do
  case $1 in
    --transactions) transactions=$2; shift 2 ;;
    --keep) keep=1; shift ;;
    --dir) run_dir=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "quickstart: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ $transactions =~ ^[0-9]+$ ]] || { echo "quickstart: --transactions takes a number" >&2; exit 2; }

if [[ -z $bin ]]; then
  FERRY_TARGETS="ferry-master ferry-replica ferry-worker ferryctl" "$root/scripts/build.sh"
  bin=${FERRY_BUILD_DIR:-$root/build}/bin
fi
bin=$(cd "$bin" && pwd)  # the run happens in $run_dir
for exe in ferry-master ferry-replica ferry-worker ferryctl; do
  [[ -x $bin/$exe ]] || { echo "quickstart: no executable $bin/$exe" >&2; exit 2; }
done
config=$root/deploy/master_configuration.txtpb

rm -rf "$run_dir"
mkdir -p "$run_dir"
cd "$run_dir"
pids=()
stop_nodes() {
  [[ ${#pids[@]} -gt 0 ]] || return 0
  kill -TERM "${pids[@]}" 2>/dev/null || true
  wait "${pids[@]}" 2>/dev/null || true
}
if [[ $keep -eq 0 ]]; then trap stop_nodes EXIT; fi

wait_for_file() {
  for _ in $(seq 100); do [[ -s $1 ]] && return 0; sleep 0.1; done
  echo "quickstart: $2 did not start; its log:" >&2
  tail -n 20 "$3" >&2
  exit 1
}

echo "== starting the master and two replica sites in $run_dir"
"$bin/ferry-master" --config "$root/deploy/master.ini" --master-config "$config" \
  --ready-file master.ready 2>master.log &
pids+=($!)
wait_for_file master.ready ferry-master master.log
for site in a b; do
  "$bin/ferry-replica" --config "$root/deploy/site-$site.ini" --ready-file "site-$site.ready" \
    2>"site-$site.log" &
  pids+=($!)
  wait_for_file "site-$site.ready" "ferry-replica (site-$site)" "site-$site.log"
done
master=$(sed -n 's/^submit=//p' master.ready)
control_a=$(sed -n 's/^control=//p' site-a.ready)
control_b=$(sed -n 's/^control=//p' site-b.ready)

echo "== submitting the workload's set-up and $transactions transactions"
"$bin/ferryctl" workload --transactions "$transactions" >workload.jsonl
start=$(date +%s.%N)
"$bin/ferryctl" submit --endpoint "$master" --file workload.jsonl >submitted.txt

echo "== waiting until both sites have applied their streams"
caught_up() {
  local site=$1 control=$2 latest applied
  latest=$("$bin/ferryctl" status --endpoint "$master" | awk -v s="$site" '$1 == s {print $2}')
  applied=$("$bin/ferryctl" status --endpoint "$control" |
    sed -n 's/.*last applied sequence \([0-9]*\).*/\1/p')
  [[ -n $latest && $latest == "$applied" ]]
}
for _ in $(seq 600); do
  caught_up SITE-A "$control_a" && caught_up SITE-B "$control_b" && break
  sleep 0.2
done
end=$(date +%s.%N)
caught_up SITE-A "$control_a" && caught_up SITE-B "$control_b" || {
  echo "quickstart: the sites did not catch up in 2 minutes; logs in $run_dir" >&2
  exit 1
}
awk -v s="$start" -v e="$end" -v n="$(wc -l <workload.jsonl)" \
  'BEGIN {printf "   %d transactions submitted and applied at both sites in %.2f s\n", n, e - s}'

echo "== status"
"$bin/ferryctl" status --endpoint "$master"
"$bin/ferryctl" status --endpoint "$control_a"
"$bin/ferryctl" status --endpoint "$control_b"

echo "== each site's rows against the master's rows routed to it"
status=0
"$bin/ferryctl" verify --master-config "$config" --master-db master.db --site SITE-A \
  --replica-db site-a.db || status=1
"$bin/ferryctl" verify --master-config "$config" --master-db master.db --site SITE-B \
  --replica-db site-b.db || status=1

if [[ $keep -eq 1 ]]; then
  echo "== the nodes keep running (pids ${pids[*]}); stop them with: kill ${pids[*]}"
fi
exit $status
