#!/usr/bin/env bash
# Executes every notebook headlessly (nbclient, matplotlib inline backend), writes each back with its
# outputs (tables and figures kept in the .ipynb), and fails on any cell error — including
# the assertions that check each notebook's conclusions. Uses $CLUSTERSIM_BIN, else
# $CARGO_TARGET_DIR/release/clustersim (default target/), built if missing.
# Usage: notebooks/run_all.sh [NOTEBOOK.ipynb ...]
set -euo pipefail
cd "$(dirname "$0")"
# The inline backend (headless) renders each figure into the notebook.
export MPLBACKEND=module://matplotlib_inline.backend_inline
PYTHON=${PYTHON:-python3}
# A relative CARGO_TARGET_DIR is taken from the repository root, as `cargo` run there does.
TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ "$TARGET_DIR" = /* ]] || TARGET_DIR="../${TARGET_DIR#./}"
if [[ -z "${CLUSTERSIM_BIN:-}" ]]; then
  if [[ ! -x "$TARGET_DIR/release/clustersim" ]]; then
    (cd .. && cargo build --release --quiet)
  fi
  CLUSTERSIM_BIN=$(realpath "$TARGET_DIR/release/clustersim")
  export CLUSTERSIM_BIN
fi
if [[ $# -gt 0 ]]; then notebooks=("$@"); else notebooks=(*.ipynb); fi
status=0
for nb in "${notebooks[@]}"; do
  echo "== $nb"
  if ! "$PYTHON" - "$nb" <<'PY'
import sys, time
import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

path = sys.argv[1]
nb = nbformat.read(path, as_version=4)
client = NotebookClient(nb, timeout=600, kernel_name="python3", record_timing=False,
                        resources={"metadata": {"path": "."}})
start = time.time()
try:
    client.execute()
except CellExecutionError as e:
    print(f"FAILED {path}:\n{e}", file=sys.stderr)
    sys.exit(1)
nbformat.write(nb, path)
print(f"ok {path} ({time.time() - start:.1f} s)")
PY
  then
    status=1
  fi
done
exit $status
