#!/usr/bin/env bash
# Executes every notebook headlessly (nbclient, MPLBACKEND=Agg) and fails on the first
# cell error. Uses $CLUSTERSIM_BIN, else target/release/clustersim (built if missing).
# Usage: notebooks/run_all.sh [NOTEBOOK.ipynb ...]
set -euo pipefail
cd "$(dirname "$0")"
export MPLBACKEND=Agg
PYTHON=${PYTHON:-python3}
if [[ -z "${CLUSTERSIM_BIN:-}" && ! -x ../target/release/clustersim ]]; then
  (cd .. && cargo build --release --quiet)
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
client = NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": "."}})
start = time.time()
try:
    client.execute()
except CellExecutionError as e:
    print(f"FAILED {path}:\n{e}", file=sys.stderr)
    sys.exit(1)
print(f"ok {path} ({time.time() - start:.1f} s)")
PY
  then
    status=1
  fi
done
exit $status
