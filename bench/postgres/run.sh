#!/usr/bin/env bash
# PostgreSQL 15's own logical replication on the orders workload (shared/WORKLOAD.md), on this
# machine, to set beside ferry-bench's figures. See --help.
set -Eeuo pipefail
trap 'echo "bench/postgres/run.sh: line $LINENO: \"$BASH_COMMAND\" failed" >&2' ERR
export LC_ALL=C PGTZ=UTC

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}

T=100000
RUNS=e2e-1,catch-up,latency
DIR=""
KEEP=0
LATENCY_RATE=1000
LATENCY_SECONDS=30
SUB_SYNC=on
SUB_FK=1
TIMEOUT=1800
PLACEMENT="split"

usage() {
  cat <<EOF
Usage: bench/postgres/run.sh [-T N] [--runs e2e-1,catch-up,latency] [--dir DIR] [--keep]
                             [--latency-rate R] [--latency-seconds S]
                             [--subscriber-synchronous-commit on|off] [--no-subscriber-fk]
                             [--timeout SECONDS] [--placement split|shared]

Measures PostgreSQL 15's logical replication (a publication FOR ALL TABLES, one subscription)
on the orders workload of shared/WORKLOAD.md, with the keys and values of common/workload.cc.
Each run gets two fresh clusters (initdb): a publisher (wal_level = logical) and a subscriber,
on 127.0.0.1 only, on free ports from 55432 up, run as the postgres user when started as root.
fsync and synchronous_commit are on (the defaults) at both; the subscription is created with
synchronous_commit = on, so the apply worker's commits are flushed too (PostgreSQL's default
for a subscription is off; --subscriber-synchronous-commit off measures that).

Set-up (not timed): the six tables (bench/postgres/schema.sql) at both ends, 2 companies, 6
sites, 1,200 items and 100 customers at the publisher (publisher.sql), the subscription, and a
wait until the subscriber holds the same rows. The apply worker runs with
session_replication_role = replica, where foreign keys are not checked; the script sets the
subscriber's foreign-key triggers to ENABLE ALWAYS after the initial copy, so the apply worker
checks them as Ferry's replica does (--no-subscriber-fk leaves PostgreSQL's default).

The timed transactions: pgbench -n -c 1 -j 1 -M prepared -t T with the script
  SELECT orders_tx(nextval('tx_i')::int);
one round trip and one committed transaction per workload transaction (steps 1-5 in the
PL/pgSQL function orders_tx at the publisher).

Runs (--runs, comma-separated; default all three):
  e2e-1     from pgbench's start until the subscriber holds the last transaction's order
            (polled every 10 ms after pgbench ends; the apply worker applies in commit
            order), then a row-level check (check.sql: per table, the row count and the md5
            of every row in key order, at both ends); tx/s = T / that time
  catch-up  the subscription is disabled after the set-up copy; pgbench runs all T at the
            publisher ("publisher alone (1 client)" = T / pgbench's time); then, once
            wal_retrieve_retry_interval has passed since the apply worker last started (the
            launcher would otherwise wait out that interval after ENABLE; not timed), ENABLE,
            and from there until the subscriber holds the same rows (as e2e-1)
  latency   pgbench --rate R (Poisson arrivals) -T S, 1 client; each transaction's last
            statement stamps clock_timestamp() into tx_stamp at the publisher, a trigger at the
            subscriber stamps the apply worker's insert of that row: master commit -> replica
            commit is the difference (both stamps just before their COMMIT); submit -> replica
            commit starts at pgbench's send (from its per-transaction log); tx_stamp is
            empty in the other runs

Options:
  -T N                     timed transactions for e2e-1 and catch-up (default 100000)
  --runs LIST              which runs (default e2e-1,catch-up,latency)
  --dir DIR                make the clusters in DIR/<run>/ (default: a mktemp dir under /tmp);
                           the run folders are removed at the end unless --keep
  --keep                   keep the run folders (data directories, server logs, pgbench logs)
  --latency-rate R         offered rate of the latency run (default 1000 tx/s)
  --latency-seconds S      its duration (default 30 s)
  --subscriber-synchronous-commit on|off
                           the subscription's synchronous_commit (default on)
  --no-subscriber-fk       leave the subscriber's foreign keys unchecked by the apply worker
                           (PostgreSQL's default)
  --timeout SECONDS        give up when the subscriber has not converged (default 1800)
  --placement split|shared split (default): the publisher cluster and pgbench on one half of
                           the CPUs this script may use (the half with the CPU that handles the
                           interrupts of the disk holding --dir, when sysfs says), the subscriber
                           cluster on the other (taskset), as ferry-bench --placement split places
                           the master and its clients and the replica site; shared: every process
                           on any CPU
  -h, --help               this text

Peak memory: VmHWM of every process of each cluster, sampled every 0.5 s from the timed part's
start until the subscriber has the last transaction (processes that live less than that may be
missed; the row checks after are not sampled). Per cluster: the highest process, and the
highest sum over the processes alive at one sample. Each process's VmHWM counts the shared
memory pages it touched, so the sum overstates what the cluster used; the run's log also
shows each process's largest RssAnon sampled (its private memory) and its CPU time (since it
started: the subscriber's apply worker and the publisher's walsender include the set-up's).

Exits non-zero if a run fails or the subscriber's rows do not equal the publisher's.
Needs the postgresql-15 package (binaries in $PGBIN; override with PGBIN=...).
EOF
}

die() { echo "bench/postgres/run.sh: $*" >&2; exit 1; }

while (($#)); do
  case $1 in
    -T) T=${2:?-T needs a number}; shift 2 ;;
    -T*) T=${1#-T}; shift ;;
    --runs) RUNS=${2:?--runs needs a list}; shift 2 ;;
    --runs=*) RUNS=${1#--runs=}; shift ;;
    --dir) DIR=${2:?--dir needs a folder}; shift 2 ;;
    --dir=*) DIR=${1#--dir=}; shift ;;
    --keep) KEEP=1; shift ;;
    --latency-rate) LATENCY_RATE=${2:?}; shift 2 ;;
    --latency-seconds) LATENCY_SECONDS=${2:?}; shift 2 ;;
    --subscriber-synchronous-commit) SUB_SYNC=${2:?}; shift 2 ;;
    --no-subscriber-fk) SUB_FK=0; shift ;;
    --timeout) TIMEOUT=${2:?}; shift 2 ;;
    --placement) PLACEMENT=${2:?}; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done

[[ $T =~ ^[1-9][0-9]*$ ]] || die "-T wants a positive integer, not '$T'"
[[ $LATENCY_RATE =~ ^[1-9][0-9]*$ ]] || die "--latency-rate wants a positive integer"
[[ $LATENCY_SECONDS =~ ^[1-9][0-9]*$ ]] || die "--latency-seconds wants a positive integer"
[[ $TIMEOUT =~ ^[1-9][0-9]*$ ]] || die "--timeout wants a positive integer"
[[ $SUB_SYNC == on || $SUB_SYNC == off ]] || die "--subscriber-synchronous-commit: on or off"
[[ $PLACEMENT == split || $PLACEMENT == shared ]] || die "--placement: split or shared, not '$PLACEMENT'"
IFS=, read -r -a runs <<<"$RUNS"
((${#runs[@]})) || die "--runs is empty"
for r in "${runs[@]}"; do
  [[ $r == e2e-1 || $r == catch-up || $r == latency ]] || die "unknown run '$r' (e2e-1, catch-up, latency)"
done

for b in initdb pg_ctl postgres pgbench psql; do
  [[ -x $PGBIN/$b ]] || die "PostgreSQL 15 is missing ($PGBIN/$b not found): install the postgresql-15 package (scripts/setup.sh --with-postgres)"
done
"$PGBIN/postgres" --version | grep -q ' 15\.' ||
  die "$PGBIN/postgres is not PostgreSQL 15 ($("$PGBIN/postgres" --version)): install the postgresql-15 package"
for tool in ss awk sort taskset; do command -v "$tool" >/dev/null || die "needs $tool"; done

# --- Placement -------------------------------------------------------------------------------
# The CPU, of those given after the path, that has handled the most interrupts of the disk
# holding the path (its device's or a parent's msi_irqs in sysfs); nothing if sysfs or
# /proc/interrupts do not say.
disk_interrupt_cpu() {
  local path=$1 dev dir irqs f
  shift
  while [[ ! -e $path ]]; do path=$(dirname -- "$path"); done
  dev=$(stat -c '%Hd:%Ld' -- "$path" 2>/dev/null) || return 0
  dir=$(readlink -f "/sys/dev/block/$dev" 2>/dev/null) || return 0
  while [[ -n $dir && $dir != / && ! -d $dir/msi_irqs ]]; do dir=$(dirname -- "$dir"); done
  [[ -d $dir/msi_irqs ]] || return 0
  irqs=""
  for f in "$dir"/msi_irqs/*; do irqs+="${f##*/} "; done
  awk -v irqs=" $irqs" -v allowed=" $* " '
    NR == 1 { for (i = 1; i <= NF; i++) column[i] = substr($i, 4); n = NF; next }
    { irq = $1; sub(":", "", irq); if (index(irqs, " " irq " ") == 0) next
      for (i = 1; i <= n; i++) count[column[i]] += $(i + 1) }
    END { best = ""; for (c in count) if (index(allowed, " " c " ") && count[c] > 0 &&
                                       (best == "" || count[c] > count[best])) best = c
          print best }' /proc/interrupts
}
# split: the publisher's side (its cluster, pgbench) on one half of the CPUs this script may use
# (the half with the disk's interrupt CPU, else the first), the subscriber's on the other;
# shared: both on all of them.
all_cpus=$(taskset -pc $$ | sed 's/.*: *//')
pub_cpus=$all_cpus sub_cpus=$all_cpus split=0 irq_cpu=""
if [[ $PLACEMENT == split ]]; then
  allowed=()
  IFS=, read -r -a parts <<<"$all_cpus"
  for part in "${parts[@]}"; do
    if [[ $part == *-* ]]; then
      for ((c = ${part%-*}; c <= ${part#*-}; c++)); do allowed+=("$c"); done
    else
      allowed+=("$part")
    fi
  done
  if ((${#allowed[@]} >= 2)); then
    half=$((${#allowed[@]} / 2))
    pub_cpus=$(IFS=,; echo "${allowed[*]:0:half}")
    sub_cpus=$(IFS=,; echo "${allowed[*]:half}")
    # The publisher's commits wait for their flushes: its half takes the CPU that handles the
    # disk's interrupts (as ferry-bench does for the master).
    irq_cpu=$(disk_interrupt_cpu "${DIR:-/tmp}" "${allowed[@]}")
    if [[ -n $irq_cpu && ,$sub_cpus, == *,$irq_cpu,* ]]; then
      swap=$pub_cpus pub_cpus=$sub_cpus sub_cpus=$swap
    fi
    split=1
  else
    echo "bench/postgres/run.sh: --placement split needs two CPUs; every process runs on any" >&2
  fi
fi
placement_text() {
  if ((split)); then
    local note=""
    [[ -n $irq_cpu ]] && note="; CPU $irq_cpu handles the disk's interrupts"
    echo "split: publisher and pgbench on CPUs $pub_cpus, subscriber on CPUs $sub_cpus$note"
  else
    echo "shared: every process on any CPU"
  fi
}

# PostgreSQL refuses to run as root: then the clusters run as the postgres user.
if (($(id -u) == 0)); then
  id postgres >/dev/null 2>&1 || die "running as root, and there is no postgres user to run the clusters"
  as_pg() { (cd / && runuser -u postgres -- "$@"); }
else
  as_pg() { "$@"; }
fi

# --- State the EXIT trap cleans up -----------------------------------------------------------
made_base=""        # the mktemp folder, when this script made it
run_dirs=()         # the run folders this script made
clusters=()         # data directories this script started
child_pid=""        # the long-running command being waited for (pgbench, the wait for the rows)
sampler_pid=""      # the memory sampler

stop_cluster() {  # data directory
  local d=$1 pid
  [[ -f $d/postmaster.pid ]] || return 0
  as_pg "$PGBIN/pg_ctl" -D "$d" -m fast -w -t 60 stop >/dev/null 2>&1 ||
    as_pg "$PGBIN/pg_ctl" -D "$d" -m immediate -w -t 30 stop >/dev/null 2>&1 || true
  if [[ -f $d/postmaster.pid ]]; then
    read -r pid <"$d/postmaster.pid" || true
    if [[ -n ${pid:-} ]]; then kill -KILL "$pid" 2>/dev/null || true; fi
  fi
}

cleanup() {
  local rc=$? d
  set +e
  trap - EXIT INT TERM ERR
  [[ -n $child_pid ]] && kill "$child_pid" 2>/dev/null && wait "$child_pid" 2>/dev/null
  [[ -n $sampler_pid ]] && kill "$sampler_pid" 2>/dev/null && wait "$sampler_pid" 2>/dev/null
  # Subscriber first: its apply worker would otherwise retry against a stopped publisher.
  for ((k = ${#clusters[@]} - 1; k >= 0; k--)); do stop_cluster "${clusters[k]}"; done
  if ((KEEP)); then
    ((${#run_dirs[@]})) && echo "kept: ${run_dirs[*]}"
  else
    for d in "${run_dirs[@]}"; do rm -rf -- "$d"; done
    [[ -n $made_base ]] && rm -rf -- "$made_base"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Runs "$@" in the background and waits, so that a signal reaches the trap at once.
run_waited() {
  "$@" &
  child_pid=$!
  local rc=0
  wait "$child_pid" || rc=$?
  child_pid=""
  return "$rc"
}

if [[ -z $DIR ]]; then
  made_base=$(mktemp -d /tmp/ferry-pg-bench.XXXXXX)
  base=$made_base
else
  mkdir -p -- "$DIR"
  base=$(cd -- "$DIR" && pwd)
fi
if (($(id -u) == 0)); then
  [[ -n $made_base ]] && chmod 755 "$base"
  runuser -u postgres -- test -x "$base" || die "the postgres user cannot reach $base: choose another --dir"
fi

# --- Ports -----------------------------------------------------------------------------------
port_free() { ! ss -Hltn "sport = :$1" | grep -q .; }
pick_port() {  # first free port from $1
  local p=$1
  while ! port_free "$p"; do
    p=$((p + 1))
    ((p < $1 + 200)) || die "no free port from $1 to $p"
  done
  echo "$p"
}
pub_port=$(pick_port 55432)
sub_port=$(pick_port $((pub_port + 1)))

pub() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$pub_port" -U postgres -d postgres "$@"; }
sub() { "$PGBIN/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$sub_port" -U postgres -d postgres "$@"; }

now() { echo "$EPOCHREALTIME"; }
rate() { awk -v n="$1" -v a="$2" -v b="$3" 'BEGIN { printf "%.0f", n / (b - a) }'; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
say() { echo "[$run] $*"; }

# --- Clusters --------------------------------------------------------------------------------
make_cluster() {  # name port cpus extra-settings...
  local name=$1 port=$2 cpus=$3 d=$rundir/$1
  shift 3
  as_pg "$PGBIN/initdb" -D "$d" -U postgres --auth=trust -E UTF8 --locale=C >"$rundir/$name-initdb.log" 2>&1 ||
    { cat "$rundir/$name-initdb.log" >&2; die "initdb of the $name cluster failed"; }
  {
    echo ""
    echo "# bench/postgres/run.sh"
    echo "listen_addresses = '127.0.0.1'"
    echo "port = $port"
    echo "unix_socket_directories = ''"
    local s
    for s in "$@"; do echo "$s"; done
  } | as_pg tee -a "$d/postgresql.conf" >/dev/null
  clusters+=("$d")
  as_pg taskset -c "$cpus" "$PGBIN/pg_ctl" -D "$d" -l "$d/server.log" -w -t 120 start >/dev/null ||
    { tail -n 30 "$d/server.log" >&2; die "the $name cluster did not start"; }
}

settings_sql="SELECT string_agg(name || '=' || current_setting(name), ' ' ORDER BY name) FROM pg_settings
  WHERE name IN ('fsync', 'synchronous_commit', 'wal_sync_method', 'full_page_writes', 'wal_level',
                 'shared_buffers', 'max_wal_size', 'checkpoint_timeout', 'max_wal_senders',
                 'max_replication_slots', 'max_logical_replication_workers', 'max_worker_processes',
                 'commit_delay', 'wal_writer_delay', 'autovacuum', 'lc_collate', 'data_checksums')"

# --- Row-level equality ----------------------------------------------------------------------
rows_equal() {  # prints the per-table counts when $1 = show; returns 0 when equal
  local a b
  a=$(pub -At -F' ' -f "$here/check.sql")
  b=$(sub -At -F' ' -f "$here/check.sql")
  if [[ ${1:-} == show ]]; then
    say "rows (table count md5), publisher | subscriber:"
    paste -d'|' <(echo "$a") <(echo "$b") | sed 's/^/    /'
  fi
  [[ $a == "$b" ]]
}

# --- Memory ----------------------------------------------------------------------------------
# Appends "sample cluster pid VmHWM-kB RssAnon-kB cpu-ticks title" for every process of both
# clusters (cpu-ticks: user + system time so far, in clock ticks).
sample_memory() {
  local c pm pid kids key val rest hwm anon title sample=$EPOCHREALTIME stat
  for c in pub sub; do
    [[ -r $rundir/$c/postmaster.pid ]] || continue
    pm=""
    read -r pm 2>/dev/null <"$rundir/$c/postmaster.pid" || true
    [[ -n $pm ]] || continue
    kids=""
    read -r kids 2>/dev/null <"/proc/$pm/task/$pm/children" || true
    # shellcheck disable=SC2086  # $kids: the space-separated pids of the postmaster's children
    for pid in $pm $kids; do
      hwm="" anon=""
      while read -r key val rest; do
        case $key in
          VmHWM:) hwm=$val ;;
          RssAnon:) anon=$val; break ;;
        esac
      done 2>/dev/null <"/proc/$pid/status" || continue
      stat=()
      read -r -a stat 2>/dev/null <"/proc/$pid/stat" || continue
      title=""
      IFS= read -r -d '' title 2>/dev/null <"/proc/$pid/cmdline" || true
      title=${title%% }
      if [[ -n $hwm && -n $anon && ${#stat[@]} -gt 14 ]]; then  # not a process that is exiting
        printf '%s %s %s %s %s %s %s\n' "$sample" "$c" "$pid" "$hwm" "$anon" \
          "$((stat[13] + stat[14]))" "${title:-?}"
      fi
    done
  done >>"$rundir/memory.log"
  return 0
}
# In the background: no errexit there, so that a process vanishing mid-sample stops nothing.
memory_sampler() {
  set +eE
  trap - ERR
  while :; do sample_memory; sleep 0.5; done
}
start_sampler() { : >"$rundir/memory.log"; memory_sampler & sampler_pid=$!; }
stop_sampler() {  # and one last sample
  [[ -n $sampler_pid ]] || return 0
  kill "$sampler_pid" 2>/dev/null || true
  wait "$sampler_pid" 2>/dev/null || true
  sampler_pid=""
  sample_memory
}

short_title() {  # a process title, shortened
  case $1 in
    /*) echo postmaster ;;
    "postgres: walsender"*) echo walsender ;;
    "postgres: logical replication worker"*) echo "apply worker" ;;
    "postgres: logical replication launcher"*) echo "replication launcher" ;;
    "postgres: postgres postgres"*) echo "client backend" ;;
    "postgres: "*) echo "${1#postgres: }" ;;
    *) echo "$1" ;;
  esac
}

# Per cluster, over the run's samples: the process with the highest VmHWM, and the highest sum
# of the VmHWM of the processes alive at one sample. Kept over all runs.
declare -A mem_max mem_max_title mem_sum mem_procs mem_anon mem_anon_title
summarize_memory() {
  local c line m t s n a at each hz
  hz=$(getconf CLK_TCK)
  for c in pub sub; do
    line=$(awk -v c="$c" '$2 == c { k = $3; v = $4; if (v > hwm[k]) hwm[k] = v;
             t = $7; for (f = 8; f <= NF; f++) t = t " " $f; title[k] = t
             sum[$1] += v; procs[$1]++
             if ($5 > a) { a = $5; at = t } }
           END { for (k in hwm) if (hwm[k] > m) { m = hwm[k]; mt = title[k] }
                 for (x in sum) if (sum[x] > s) { s = sum[x]; n = procs[x] }
                 printf "%.1f|%s|%.1f|%d|%.1f|%s", m / 1024, mt, s / 1024, n, a / 1024, at }' "$rundir/memory.log")
    IFS='|' read -r m t s n a at <<<"$line"
    t=$(short_title "$t")
    at=$(short_title "$at")
    # Each process: VmHWM, the most RssAnon seen (its private memory), CPU seconds.
    each=$(awk -v c="$c" -v hz="$hz" '$2 == c { k = $3; if ($4 > hwm[k]) hwm[k] = $4; if ($5 > anon[k]) anon[k] = $5;
             if ($6 > cpu[k]) cpu[k] = $6; t = $7; for (f = 8; f <= NF; f++) t = t " " $f; title[k] = t }
           END { for (k in hwm) printf "%.1f %.1f %.1f %s\n", hwm[k] / 1024, anon[k] / 1024, cpu[k] / hz, title[k] }' \
             "$rundir/memory.log" |
         sort -rn | while read -r mb an cpu title; do
           printf '%s %s/%s MB %s s, ' "$(short_title "$title")" "$mb" "$an" "$cpu"
         done)
    say "peak memory (VmHWM), $c: max $m MB ($t), at most $s MB summed over the $n processes alive at once;" \
      "private (RssAnon) at most $a MB ($at)"
    say "  each process seen: VmHWM/most RssAnon sampled, CPU time: ${each%, }"
    if [[ -z ${mem_max[$c]:-} ]] || awk -v a="$m" -v b="${mem_max[$c]}" 'BEGIN { exit !(a > b) }'; then
      mem_max[$c]=$m
      mem_max_title[$c]=$t
    fi
    if [[ -z ${mem_anon[$c]:-} ]] || awk -v a="$a" -v b="${mem_anon[$c]}" 'BEGIN { exit !(a > b) }'; then
      mem_anon[$c]=$a
      mem_anon_title[$c]=$at
    fi
    if [[ -z ${mem_sum[$c]:-} ]] || awk -v a="$s" -v b="${mem_sum[$c]}" 'BEGIN { exit !(a > b) }'; then
      mem_sum[$c]=$s
      mem_procs[$c]=$n
    fi
  done
}

# --- Waiting ---------------------------------------------------------------------------------
# Waits until the subscriber holds order O-$1 (the last transaction's) and its rows equal the
# publisher's; sets $converged_at (epoch seconds). Exits non-zero when they do not in time.
wait_converged() {
  local order=$1 started=$2 out
  out=$(mktemp "$rundir/wait.XXXXXX")
  run_waited sub -At -c "CALL wait_for_order('O-$order', $TIMEOUT)" >"$out" ||
    die "$run: waiting for the subscriber failed"
  converged_at=$(<"$out")
  rm -f -- "$out"
  stop_sampler  # before the row checks: their backends are not the replication's
  if [[ -z $converged_at ]]; then
    rows_equal show || true
    die "$run: the subscriber did not receive transaction $order within $TIMEOUT s: NOT converged"
  fi
  if ! rows_equal; then
    # Not expected (the apply worker applies in commit order): check row by row until equal.
    say "the last order is at the subscriber but the rows differ; checking again every second"
    until rows_equal; do
      if awk -v a="$started" -v b="$(now)" -v t="$TIMEOUT" 'BEGIN { exit !(b - a > t) }'; then
        rows_equal show || true
        die "$run: the subscriber's rows did not equal the publisher's within $TIMEOUT s: NOT converged"
      fi
      sleep 1
    done
    converged_at=$(now)
  fi
  rows_equal show || die "$run: the subscriber's rows differ from the publisher's: NOT converged"
}

wait_sql() {  # what, target, sql on the subscriber (or publisher with "pub"), [pub|sub]
  local what=$1 want=$2 sql=$3 side=${4:-sub} got="" k
  for ((k = 0; k < 3000; k++)); do
    got=$("$side" -At -c "$sql")
    [[ $got == "$want" ]] && return 0
    sleep 0.1
  done
  die "$run: timed out waiting for $what (got '$got', want '$want')"
}

# --- One run ---------------------------------------------------------------------------------
declare -A result
converged_all=yes
settings_printed=0

pgbench_run() {  # log-file pgbench-args...
  local log=$1
  shift
  run_waited taskset -c "$pub_cpus" "$PGBIN/pgbench" -h 127.0.0.1 -p "$pub_port" -U postgres -n -c 1 -j 1 -M prepared "$@" postgres \
    >"$log" 2>&1 || { cat "$log" >&2; die "$run: pgbench failed"; }
  grep -E '^(number of transactions actually processed|latency average|latency stddev|rate limit schedule lag|tps)' "$log" |
    sed "s/^/[$run]   pgbench: /"
}

# The T timed transactions, one client; sets the caller's t0 and t1 around them.
timed_load() {
  echo "SELECT orders_tx(nextval('tx_i')::int);" >"$rundir/tx.sql"
  t0=$(now)
  pgbench_run "$rundir/pgbench.out" -t "$T" -f "$rundir/tx.sql"
  t1=$(now)
  local n
  n=$(pub -At -c "SELECT last_value FROM tx_i")
  ((n == T)) || die "$run: the publisher numbered $n transactions, not $T"
}

one_run() {
  run=$1
  rundir=$base/$run
  [[ -e $rundir ]] && die "$rundir exists already"
  mkdir -- "$rundir"
  run_dirs+=("$rundir")
  (($(id -u) == 0)) && chown postgres: "$rundir"

  say "clusters in $rundir: publisher on 127.0.0.1:$pub_port, subscriber on 127.0.0.1:$sub_port"
  make_cluster pub "$pub_port" "$pub_cpus" "wal_level = logical"
  make_cluster sub "$sub_port" "$sub_cpus"
  if ((!settings_printed)); then
    echo "$("$PGBIN/postgres" --version); $(nproc) cores; placement $(placement_text)"
    echo "publisher:  $(pub -At -c "$settings_sql")"
    echo "subscriber: $(sub -At -c "$settings_sql")"
    settings_printed=1
  fi

  # Set-up, not timed.
  pub -f "$here/schema.sql"
  sub -f "$here/schema.sql"
  pub -f "$here/publisher.sql"
  sub -f "$here/subscriber.sql"
  sub -c "CREATE SUBSCRIPTION sub CONNECTION 'host=127.0.0.1 port=$pub_port user=postgres dbname=postgres'
          PUBLICATION pub WITH (copy_data = true, synchronous_commit = '$SUB_SYNC')"
  wait_sql "the initial copy" "0|7" \
    "SELECT count(*) FILTER (WHERE srsubstate <> 'r') || '|' || count(*) FROM pg_subscription_rel"
  local k
  for ((k = 0; k < 600; k++)); do rows_equal && break; sleep 0.1; done
  rows_equal show || die "$run: the subscriber's set-up rows differ from the publisher's"
  say "subscription: $(sub -At -c "SELECT 'synchronous_commit=' || subsynccommit || ' streaming=' || substream
                                      || ' binary=' || subbinary FROM pg_subscription")"
  if ((SUB_FK)); then
    # The apply worker runs with session_replication_role = replica: foreign-key triggers fire
    # there only when ENABLE ALWAYS. After the initial copy (whose tables come in any order).
    sub -c "DO \$\$ DECLARE r record; BEGIN
              FOR r IN SELECT t.tgrelid::regclass AS tab, t.tgname FROM pg_trigger t
                       JOIN pg_constraint c ON c.oid = t.tgconstraint
                       WHERE c.contype = 'f' AND t.tgisinternal LOOP
                EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', r.tab, r.tgname);
              END LOOP; END \$\$"
    local err
    if err=$(sub -c "BEGIN; SET LOCAL session_replication_role = replica;
                     INSERT INTO customerorderline VALUES ('O-none', 1, 'C1-S1', 'P-000', 1, 10);
                     ROLLBACK;" 2>&1); then
      die "$run: the subscriber took a line without its order with session_replication_role = replica"
    fi
    [[ $err == *"violates foreign key constraint"* ]] || die "$run: unexpected: $err"
    say "subscriber: foreign keys checked in the apply worker's role (an orphan line is refused)"
  else
    say "subscriber: foreign keys NOT checked by the apply worker (PostgreSQL's default)"
  fi
  pub -c "CHECKPOINT"
  sub -c "CHECKPOINT"

  start_sampler

  local t0 t1 t2 n t_disabled retry pause
  case $run in
    e2e-1)
      timed_load
      say "pgbench done in $(secs "$t0" "$t1") s ($(rate "$T" "$t0" "$t1") tx/s at the publisher while replicating)"
      wait_converged "$T" "$t0"
      result[e2e-1]=$(rate "$T" "$t0" "$converged_at")
      say "converged $(secs "$t0" "$converged_at") s after pgbench's start: ${result[e2e-1]} tx/s"
      ;;
    catch-up)
      sub -c "ALTER SUBSCRIPTION sub DISABLE"
      t_disabled=$(now)
      wait_sql "the apply worker to stop" "0" "SELECT count(pid) FROM pg_stat_subscription"
      wait_sql "the walsender to stop" "0" "SELECT count(*) FROM pg_replication_slots WHERE active" pub
      timed_load
      result[publisher-alone]=$(rate "$T" "$t0" "$t1")
      say "publisher alone: $T in $(secs "$t0" "$t1") s: ${result[publisher-alone]} tx/s"
      # The launcher starts a subscription's apply worker at most once per
      # wal_retrieve_retry_interval, and waits a whole interval again when woken sooner: ENABLE
      # less than that after the worker's last start would time the launcher's wait (not timed).
      retry=$(sub -At -c "SELECT setting::int FROM pg_settings WHERE name = 'wal_retrieve_retry_interval'")
      pause=$(awk -v a="$t_disabled" -v b="$(now)" -v r="$retry" 'BEGIN { p = r / 1000 + 0.5 - (b - a); printf "%.3f", (p > 0 ? p : 0) }')
      if [[ $pause != 0.000 ]]; then
        say "waiting $pause s (not timed): wal_retrieve_retry_interval = $retry ms since the apply worker last started"
        sleep "$pause"
      fi
      t2=$(now)
      sub -c "ALTER SUBSCRIPTION sub ENABLE"
      wait_converged "$T" "$t2"
      result[catch-up]=$(rate "$T" "$t2" "$converged_at")
      say "caught up $(secs "$t2" "$converged_at") s after ENABLE: ${result[catch-up]} tx/s"
      local started_line
      started_line=$(grep 'apply worker for subscription "sub" has started' "$rundir/sub/server.log" | tail -n 1 | cut -c1-27)
      if [[ -n $started_line ]]; then
        say "the apply worker started $(secs "$t2" "$(date -d "$started_line" +%s.%N)") s after ENABLE (its log line)"
      fi
      ;;
    latency)
      echo "SELECT orders_tx(nextval('tx_i')::int, true);" >"$rundir/tx.sql"
      t0=$(now)
      pgbench_run "$rundir/pgbench.out" -R "$LATENCY_RATE" -T "$LATENCY_SECONDS" \
        -l --log-prefix="$rundir/pgbench_log" -f "$rundir/tx.sql"
      n=$(pub -At -c "SELECT last_value FROM tx_i")
      wait_converged "$n" "$t0"
      latency_stats "$n"
      ;;
  esac

  stop_sampler
  summarize_memory
  rows_equal || { converged_all=NO; die "$run: the rows differ at the end"; }
  # How the tables were read (sequential scans of big tables would mean bad plans).
  local scans_sql="SELECT string_agg(relname || ' ' || seq_scan || '/' || coalesce(idx_scan, 0), ', ' ORDER BY relname)
                   FROM pg_stat_user_tables"
  say "scans (sequential/index) at the publisher: $(pub -At -c "$scans_sql")"
  say "scans (sequential/index) at the subscriber: $(sub -At -c "$scans_sql")"

  stop_cluster "$rundir/sub"
  stop_cluster "$rundir/pub"
  clusters=()
}

# p50/p99/max as ferry-bench (sorted samples, the one at floor(q * n)).
percentiles() {  # file of ms values -> "p50 X ms, p99 Y ms, max Z ms (N samples)"
  sort -g "$1" | awk '{ v[NR - 1] = $1 } END {
      if (!NR) { print "no samples"; exit }
      i50 = int(0.50 * NR); i99 = int(0.99 * NR); if (i99 > NR - 1) i99 = NR - 1
      printf "p50 %.2f ms, p99 %.2f ms, max %.2f ms (%d samples)", v[i50], v[i99], v[NR - 1], NR }'
}

latency_stats() {  # number of transactions
  local n=$1 logs
  sub -At -F' ' -c "SELECT i, (extract(epoch FROM master_ts) * 1000000)::bigint,
                           (extract(epoch FROM replica_ts) * 1000000)::bigint
                    FROM tx_stamp ORDER BY i" >"$rundir/stamps.txt"
  local got
  got=$(wc -l <"$rundir/stamps.txt")
  ((got == n)) || die "$run: $got stamps at the subscriber for $n transactions"
  awk '{ print ($3 - $2) / 1000 }' "$rundir/stamps.txt" >"$rundir/commit_ms.txt"
  result[commit-to-commit]=$(percentiles "$rundir/commit_ms.txt")
  # pgbench's log, one client: "client tx_no latency_us script epoch_s epoch_us lag_us", in the
  # order of its transactions, which took i = 1, 2, ... from the fresh sequence. With --rate
  # the latency counts from the scheduled start; the send was at end - latency + lag.
  logs=("$rundir"/pgbench_log*)
  [[ -f ${logs[0]} ]] || die "$run: pgbench wrote no log"
  sort -k2,2n "${logs[@]}" | awk '{ printf "%d %.0f\n", NR, $5 * 1000000 + $6 - $3 + $7 }' >"$rundir/sent.txt"
  got=$(wc -l <"$rundir/sent.txt")
  ((got == n)) || die "$run: pgbench logged $got transactions, the publisher numbered $n"
  awk 'NR == FNR { sent[$1] = $2; next } { print ($3 - sent[$1]) / 1000 }' \
    "$rundir/sent.txt" "$rundir/stamps.txt" >"$rundir/submit_ms.txt"
  result[submit-to-commit]=$(percentiles "$rundir/submit_ms.txt")
  result[latency-n]=$n
  say "master commit -> replica commit: ${result[commit-to-commit]}"
  say "submit -> replica commit:        ${result[submit-to-commit]}"
}

started=$(now)
for r in "${runs[@]}"; do one_run "$r"; done

row() { printf '  %-50s %s\n' "$1" "$2"; }
get() { if [[ -n ${result[$1]:-} ]]; then echo "${result[$1]}$2"; else echo "not run"; fi; }
echo
echo "postgres-logical-replication: the orders workload (shared/WORKLOAD.md), T = $T, publisher +" \
  "1 subscriber (PostgreSQL 15, publication FOR ALL TABLES) on 127.0.0.1; fsync on, synchronous_commit" \
  "on at both, the subscription's synchronous_commit $SUB_SYNC, subscriber foreign keys" \
  "$( ((SUB_FK)) && echo "checked by the apply worker" || echo "not checked by the apply worker")" \
  "(see bench/postgres/run.sh --help); $(nproc) cores; placement $(placement_text)"
row "end-to-end, 1 client" "$(get e2e-1 " tx/s")"
row "catch-up (subscription enabled after the load)" "$(get catch-up " tx/s")"
row "publisher alone (1 client)" "$(get publisher-alone " tx/s")"
at="at $LATENCY_RATE tx/s (Poisson) for $LATENCY_SECONDS s:"
row "$at master commit -> replica commit" "$(get commit-to-commit "")"
row "$at submit -> replica commit" "$(get submit-to-commit "")"
for c in pub sub; do
  name=$([[ $c == pub ]] && echo publisher || echo subscriber)
  if [[ -n ${mem_max[$c]:-} ]]; then
    row "peak memory (VmHWM), $name" "max ${mem_max[$c]} MB (${mem_max_title[$c]}); summed over the processes alive at once, at most ${mem_sum[$c]} MB (${mem_procs[$c]} processes)"
    row "private memory (RssAnon, sampled), $name" "at most ${mem_anon[$c]} MB (${mem_anon_title[$c]})"
  fi
done
row "subscriber rows equal the publisher's" "$([[ $converged_all == yes ]] && echo "yes, in every run" || echo NO)"
echo "  (VmHWM counts the shared memory each process touched: the sums overstate; $(secs "$started" "$(now)") s in all)"
