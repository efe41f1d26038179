#!/usr/bin/env bash
# End-to-end check of the Slurm workflow on a real single-node Slurm (run by .ci/run; needs
# root): installs slurm-wlm and munge if missing, starts a local cluster
# (scripts/slurm/local-cluster.sh), submits SWEEP as SHARDS array tasks plus the merge job
# exactly as scripts/slurm/README.md says, waits for both (at most CLUSTERSIM_SLURM_WAIT
# seconds, default 180), and checks that the merged compare.csv, compare.json and charts are
# byte-identical to an unsharded `clustersim compare` of the same sweep. The cluster is
# stopped on exit, also on failure; on failure the jobs' and daemons' logs are printed.
#
#   scripts/slurm/ci-check.sh [SWEEP] [SHARDS]    # default scenarios/sweeps/fabrics.yaml 4
set -euo pipefail
cd "$(dirname "$0")/../.."

T0=$SECONDS
SWEEP=${1:-scenarios/sweeps/fabrics.yaml}
SHARDS=${2:-4}
BIN=${CLUSTERSIM_BIN:-target/release/clustersim}
WAIT=${CLUSTERSIM_SLURM_WAIT:-180}
LC=scripts/slurm/local-cluster.sh
WORK=$(mktemp -d /tmp/clustersim-slurm-check.XXXXXX)
export CLUSTERSIM_SLURM_DIR=$WORK/slurm
export SLURM_CONF=$CLUSTERSIM_SLURM_DIR/slurm.conf
OUT=$WORK/out

say() { echo "slurm-check: $*"; }
cleanup() {
  "$LC" stop >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

show_logs() {
  echo "---- squeue"
  timeout 10 squeue 2>&1 || true
  for j in ${ARRAY:-} ${MERGE:-}; do
    echo "---- scontrol show job $j"
    timeout 10 scontrol show job "$j" 2>&1 || true
  done
  for f in "$OUT"/slurm-*.out; do
    [[ -f $f ]] || continue
    echo "---- $f"
    tail -n 40 "$f"
  done
  "$LC" logs 2>&1 || true
}
fail() {
  echo "slurm-check: FAILED: $*" >&2
  show_logs >&2
  exit 1
}

[[ $(id -u) -eq 0 ]] || {
  echo "slurm-check: FAILED: needs root to install and start Slurm (CI runs as root)" >&2
  exit 1
}
if [[ ! -x $BIN ]]; then
  cargo build --release
fi

"$LC" install
"$LC" start
say "cluster up after $((SECONDS - T0))s"

# Submit as the guide says.
SBATCH_EXTRA="--partition=local" scripts/slurm/sweep.sbatch "$SWEEP" "$OUT" "$SHARDS" ||
  fail "sweep.sbatch refused the submission"
ARRAY=$(sed -n 's/^array_job: //p' "$OUT/submission.txt")
MERGE=$(sed -n 's/^merge_job: //p' "$OUT/submission.txt")
[[ -n $ARRAY && -n $MERGE ]] || fail "no job IDs in $OUT/submission.txt"

# The unsharded reference, while the jobs run. sweep.sbatch hands the shards the sweep's
# absolute path, and compare.json / compare.provenance.json record input paths as given,
# so the reference is given the same path.
"$BIN" compare "$(realpath "$SWEEP")" --out "$WORK/reference" >/dev/null ||
  fail "the unsharded compare failed"

# Wait until neither job is queued; a job pending for a reason that never clears fails now.
end=$((SECONDS + WAIT))
while :; do
  queued=$(timeout 10 squeue -h -j "$ARRAY,$MERGE" -o '%i %T %r' 2>&1) || fail "squeue failed: $queued"
  [[ -z $queued ]] && break
  if grep -qE 'PartitionConfig|PartitionTimeLimit|DependencyNeverSatisfied|launch failed|Nodes?_?Down|NodeDown|ReqNodeNotAvail' <<<"$queued"; then
    fail "a job can never run: $queued"
  fi
  ((SECONDS < end)) || fail "jobs not finished within ${WAIT}s (CLUSTERSIM_SLURM_WAIT): $queued"
  sleep 1
done

state() { timeout 10 scontrol show job "$1" | grep -oE '(JobState|ExitCode)=[^ ]+' | tr '\n' ' '; }
for ((i = 0; i < SHARDS; i++)); do
  s=$(state "${ARRAY}_$i") || fail "scontrol show job ${ARRAY}_$i failed"
  [[ $s == "JobState=COMPLETED ExitCode=0:0 " ]] || fail "array task ${ARRAY}_$i: $s"
done
s=$(state "$MERGE") || fail "scontrol show job $MERGE failed"
[[ $s == "JobState=COMPLETED ExitCode=0:0 " ]] || fail "merge job $MERGE: $s"
say "array job $ARRAY ($SHARDS tasks) and merge job $MERGE completed"

# The merged files are the unsharded run's, byte for byte, and nothing is missing or extra.
ref=$(cd "$WORK/reference" && ls)
got=$(cd "$OUT" && ls -d compare*)
[[ $ref == "$got" ]] || fail "merged files differ from the unsharded run's: $(diff <(echo "$ref") <(echo "$got") | tr '\n' ' ')"
for f in $ref; do
  cmp "$WORK/reference/$f" "$OUT/$f" || fail "$f differs from the unsharded compare"
done
say "merged $(wc -w <<<"$ref") files (compare.csv, compare.json, charts) byte-identical to the unsharded compare"
say "passed in $((SECONDS - T0))s"
