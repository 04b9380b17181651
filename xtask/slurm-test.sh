#!/usr/bin/env bash
# A real Slurm cluster of one node on this machine, and the task protocol against it
# (`cargo xtask slurm-test`, run by CI). Needs root (installs slurm-wlm and munge from Debian if
# missing, runs the daemons as root). Steps:
#   1. start munged and a one-node cluster (slurmctld + slurmd) in a temporary folder;
#   2. submit configs/uci_quick.yaml as a job array (its two data sets), at most 2 tasks at
#      once, with a dependent collect job; compare with a local `mcd run`;
#   3. submit a small sweep (4 runs), cancel one task on purpose, check that collect names it,
#      resubmit only its index, collect, compare with a local run;
#   4. stop the daemons it started, by their pids.
# Usage: xtask/slurm-test.sh PATH/TO/mcd
set -Eeuo pipefail

MCD="$(realpath "$1")"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORK="$(mktemp -d /tmp/mcd-slurm.XXXXXX)"
PIDS=()

say() { echo "slurm-test: $*"; }
fail() {
    echo "slurm-test: FAILED: $*" >&2
    for log in "$WORK"/slurmctld.log "$WORK"/slurmd.log; do
        [ -f "$log" ] && { echo "--- last lines of $log" >&2; tail -n 20 "$log" >&2; }
    done
    exit 1
}

stop_daemons() {
    if [ -n "${SLURM_CONF:-}" ] && [ "${#PIDS[@]}" -gt 0 ]; then
        scontrol shutdown >/dev/null 2>&1 || true
    fi
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    # The daemons linger for a few seconds after a shutdown.
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
    done
}
trap stop_daemons EXIT

if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    say "installing slurm-wlm and munge"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends slurm-wlm munge >/dev/null
fi

# 1. munge and the cluster, everything under $WORK.
mkdir -p "$WORK"/{munge,state,spool,results-slurm,results-local}
dd if=/dev/urandom of="$WORK/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$WORK/munge/munge.key"
SOCKET="$WORK/munge/munge.socket"
munged --force --foreground --key-file="$WORK/munge/munge.key" --socket="$SOCKET" \
    --pid-file="$WORK/munge/munged.pid" --log-file="$WORK/munge/munged.log" \
    --seed-file="$WORK/munge/munged.seed" >"$WORK/munged.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 50); do [ -S "$SOCKET" ] && break; sleep 0.1; done
[ -S "$SOCKET" ] || fail "munged did not start"

CPUS="$(nproc)"
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 / 2 ))
export SLURM_CONF="$WORK/slurm.conf"
cat > "$SLURM_CONF" <<EOF
ClusterName=mcdtest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=16817
SlurmdPort=16818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$SOCKET
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/slurmctld.log
SlurmdLogFile=$WORK/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i -f "$SLURM_CONF" >"$WORK/slurmctld.out" 2>&1 &
PIDS+=("$!")
slurmd -D -N localhost -f "$SLURM_CONF" >"$WORK/slurmd.out" 2>&1 &
PIDS+=("$!")
for _ in $(seq 100); do
    [ "$(sinfo -h -o %t 2>/dev/null | head -n1)" = "idle" ] && break
    sleep 0.2
done
[ "$(sinfo -h -o %t 2>/dev/null | head -n1)" = "idle" ] || fail "the node did not become idle"
say "cluster up: $(sinfo -h -o '%P %D %t %c CPUs')"

wait_for() { # job ids...
    for _ in $(seq 1800); do
        [ -z "$(squeue -h -j "$(IFS=,; echo "$*")" 2>/dev/null)" ] && return 0
        sleep 0.5
    done
    fail "jobs $* still queued after 15 minutes"
}

# Tables without timing columns, figures and predictions as they are.
compare() { # collected folder, local folder
    python3 - "$1" "$2" <<'PY' || fail "collected $1 differs from local $2"
import csv, filecmp, os, sys
a, b = sys.argv[1], sys.argv[2]
def files(root):
    out = []
    for d, _, fs in os.walk(root):
        for f in fs:
            rel = os.path.relpath(os.path.join(d, f), root)
            if rel == "run.log" or (rel.startswith("tables") and rel.endswith((".md", ".parquet"))):
                continue
            out.append(rel)
    return sorted(out)
fa, fb = files(a), files(b)
assert fa == fb, (fa, fb)
for rel in fa:
    pa, pb = os.path.join(a, rel), os.path.join(b, rel)
    if rel.endswith(".csv"):
        rows = [list(csv.reader(open(p))) for p in (pa, pb)]
        keep = [i for i, h in enumerate(rows[0][0]) if "seconds" not in h]
        cut = [[[r[i] for i in keep] for r in t] for t in rows]
        assert cut[0] == cut[1], rel
    else:
        assert filecmp.cmp(pa, pb, shallow=False), rel
print(f"  {len(fa)} files equal (timing columns aside)")
PY
}

# 2. uci_quick as a job array (at most 2 at once) with a dependent collect job.
cd "$WORK"
# As shipped, but for the data folder's absolute path (the jobs run from $WORK).
UCI=("$REPO/configs/uci_quick.yaml" --set "data.dir=$REPO/data")
ids=()
while read -r id; do ids+=("$id"); done < <("$MCD" slurm "${UCI[@]}" --results "$WORK/results-slurm" \
    --max-parallel 2 --cpus 1 --mem 1G --time 00:20:00 --submit --collect 2>/dev/null)
[ "${#ids[@]}" -eq 2 ] || fail "expected the array's and the collect job's ids, got: ${ids[*]}"
say "uci_quick: array ${ids[0]}, collect ${ids[1]}"
wait_for "${ids[@]}"
[ -f "$WORK/results-slurm/uci_quick/tables/table1.csv" ] \
    || fail "no collected uci_quick ($(cat "$WORK"/results-slurm/.tasks/uci_quick/slurm-collect-*.out))"
"$MCD" run "${UCI[@]}" --results "$WORK/results-local" --threads 1 --plain 2>/dev/null
compare "$WORK/results-slurm/uci_quick" "$WORK/results-local/uci_quick"
say "uci_quick: collected array = local run"

# 3. A sweep of 4 runs, one task cancelled on purpose, then resubmitted alone.
sed -e '/^variants:/,$d' -e 's/^name: .*/name: sweep/' -e "s#^  dir: .*#  dir: $REPO/data#" \
    -e 's/iterations: 24000/iterations: 300/' -e 's/samples: 1000/samples: 50/' \
    -e 's/hidden: \[256, 256, 256, 256\]/hidden: [32, 32]/' -e 's/  gp: true/  gp: false/' \
    "$REPO/configs/regression.yaml" > sweep.yaml
printf 'sweep:\n  model.activation: [relu, tanh]\n  model.dropout: [0.1, 0.2]\n' >> sweep.yaml
"$MCD" check sweep.yaml >/dev/null || fail "the sweep config does not load"
array="$("$MCD" slurm sweep.yaml --results "$WORK/results-slurm" --max-parallel 1 --cpus 1 \
    --mem 1G --time 00:20:00 --submit 2>/dev/null | head -n1)"
scancel "${array}_3" || fail "scancel ${array}_3"
say "sweep: array $array, task 3 cancelled"
wait_for "$array"
if "$MCD" collect sweep.yaml --results "$WORK/results-slurm" --threads 1 2> collect.err; then
    fail "collect succeeded with a task cancelled"
fi
grep -q "1 of 4 tasks have not finished: 3" collect.err || fail "collect did not name task 3: $(cat collect.err)"
grep -q -- "--indices 3 --submit" collect.err || fail "collect gave no resubmission: $(cat collect.err)"
[ ! -e "$WORK/results-slurm/sweep" ] || fail "collect wrote a result with a task missing"
again="$("$MCD" slurm sweep.yaml --results "$WORK/results-slurm" --indices 3 --cpus 1 \
    --mem 1G --time 00:20:00 --submit 2>/dev/null | head -n1)"
wait_for "$again"
"$MCD" collect sweep.yaml --results "$WORK/results-slurm" --threads 2 --plain 2>/dev/null \
    || fail "collect after resubmitting task 3"
"$MCD" run sweep.yaml --results "$WORK/results-local" --threads 2 --plain 2>/dev/null
compare "$WORK/results-slurm/sweep" "$WORK/results-local/sweep"
say "sweep: cancelled task named, resubmitted alone, collected = local run"

# 4. The trap stops the daemons.
say "passed"
