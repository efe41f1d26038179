#!/usr/bin/env bash
# Runs every shipped scenario, sweep and plan search with one binary and prints a digest
# (sha256) of every output file, one line per file. Two binaries that print the same
# digest produce byte-identical outputs: this is how a refactor shows "behaviour unchanged".
#
#   scripts/outputs-digest.sh [BIN] > before.txt      # BIN defaults to target/release/clustersim
#   ... change the code, rebuild ...
#   scripts/outputs-digest.sh > after.txt && diff before.txt after.txt
#
# WORK (default: a fresh temporary folder) keeps the outputs for inspection.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-target/release/clustersim}
BIN=$(realpath "$BIN")
WORK=${WORK:-$(mktemp -d)}
mkdir -p "$WORK"

quiet() { "$@" >"$WORK/last.log" 2>&1 || { echo "FAILED: $*" >&2; cat "$WORK/last.log" >&2; exit 1; }; }

quiet "$BIN" run --out "$WORK/run/default"
for s in scenarios/*.yaml; do
  name=$(basename "$s" .yaml)
  quiet "$BIN" run "$s" --out "$WORK/run/$name"
done
# Contention mode on the scenarios small enough to replay quickly.
for s in scenarios/default.yaml scenarios/llama3-70b-1k.yaml scenarios/gpt3-175b-1k-a100.yaml; do
  name=$(basename "$s" .yaml)
  quiet "$BIN" run "$s" --network contention --out "$WORK/contention/$name"
done
for w in scenarios/sweeps/*.yaml; do
  name=$(basename "$w" .yaml)
  quiet "$BIN" compare "$w" --out "$WORK/compare/$name"
done
quiet "$BIN" compare scenarios/default.yaml scenarios/llama3-70b-1k.yaml --out "$WORK/compare/pair"
for s in scenarios/default.yaml scenarios/llama3-70b-1k.yaml scenarios/gpt3-175b-1k-a100.yaml; do
  name=$(basename "$s" .yaml)
  quiet "$BIN" plan "$s" --out "$WORK/plan/$name"
done
quiet "$BIN" checkpoint scenarios/llama3-70b-1k.yaml --out "$WORK/checkpoint/llama3-70b-1k"
"$BIN" validate >"$WORK/validate.txt" 2>&1 || true
for t in topologies/dgx-h100-ndr.yaml topologies/fat-tree-a100-hdr-2to1.yaml; do
  name=$(basename "$t" .yaml)
  for op in all-reduce all-gather all-to-all; do
    quiet "$BIN" collective --topology "$t" --op "$op" --gpus 64 --sizes 1K:1G --out "$WORK/collective/$name-$op"
  done
done

(cd "$WORK" && find . -type f ! -name last.log -print0 | sort -z | xargs -0 sha256sum)
