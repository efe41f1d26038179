"""Helpers the notebooks share: find the clustersim binary, run it, read its outputs.

The binary is $CLUSTERSIM_BIN, else $CARGO_TARGET_DIR/release/clustersim (default target/
in the repository). Every
call fails loudly (RuntimeError with clustersim's own message) rather than returning
partial results, so a notebook run in CI stops at the first problem.
"""

import json
import os
import pathlib
import subprocess
import tempfile

import pandas as pd

ROOT = pathlib.Path(__file__).resolve().parent.parent
SCENARIOS = ROOT / "scenarios"


def binary() -> pathlib.Path:
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR") or ROOT / "target")
    if not target.is_absolute():
        target = ROOT / target
    path = pathlib.Path(os.environ.get("CLUSTERSIM_BIN") or target / "release/clustersim")
    if not path.is_file():
        raise FileNotFoundError(
            f"clustersim binary not found at {path}: run `cargo build --release` "
            "or set CLUSTERSIM_BIN"
        )
    return path


def run(*args) -> subprocess.CompletedProcess:
    """Runs `clustersim ARGS...` from the repository root; raises on a non-zero exit."""
    cmd = [str(binary()), *map(str, args)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(
            f"`clustersim {' '.join(map(str, args))}` exited with {proc.returncode}:\n"
            f"{proc.stderr.strip() or proc.stdout.strip()}"
        )
    return proc


def has_command(name: str) -> bool:
    proc = subprocess.run([str(binary()), "--help"], capture_output=True, text=True)
    return any(line.split()[:1] == [name] for line in proc.stdout.splitlines())


def workdir(name: str) -> pathlib.Path:
    path = pathlib.Path(tempfile.mkdtemp(prefix=f"clustersim-{name}-"))
    return path


def sweep_file(directory: pathlib.Path, text: str) -> pathlib.Path:
    """Writes a sweep file (YAML text) and returns its path."""
    path = directory / "sweep.yaml"
    path.write_text(text)
    return path


def compare(files, out: pathlib.Path, *extra) -> pd.DataFrame:
    """Runs `clustersim compare` and returns compare.csv as a data frame."""
    run("compare", *files, "--out", out, *extra)
    df = pd.read_csv(out / "compare.csv")
    failed = df[df["error"].notna()]
    if len(failed):
        raise RuntimeError(f"points failed:\n{failed[['name', 'error']].to_string()}")
    return df


def read_json(path: pathlib.Path) -> dict:
    return json.loads(pathlib.Path(path).read_text())
