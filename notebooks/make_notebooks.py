"""Regenerates the .ipynb files from the cell sources below (run: python3 make_notebooks.py).

Keeping the notebooks' sources here keeps diffs readable; the .ipynb files are what users
open and what run_all.sh executes.
"""

import json
import pathlib

HERE = pathlib.Path(__file__).parent


def nb(stem, cells):
    out = []
    for i, (kind, src) in enumerate(cells):
        src = src.strip("\n")
        cell = {
            "cell_type": kind,
            "id": f"{stem}-{i}",
            "metadata": {},
            "source": src.splitlines(keepends=True),
        }
        if kind == "code":
            cell.update({"execution_count": None, "outputs": []})
        out.append(cell)
    return {
        "cells": out,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }


SETUP = """
import pathlib
import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import clustersim_nb as cs

print("clustersim:", cs.binary())
"""

NOTEBOOKS = {
    "01-pipeline-bubbles.ipynb": [
        ("markdown", """
# Pipeline bubbles across schedules and micro-batch counts

A pipeline of `p` stages idles while it fills and drains. With `m` micro-batches per step
the bubble is `(p-1)/(m+p-1)` of the step under GPipe and 1F1B, and interleaving `v`
model chunks per GPU divides it by `v`: `(p-1)/(v*m+p-1)` (Narayanan et al. 2021,
arXiv 2104.04473). This notebook replays Llama 3 70B with PP 4 on 128 H100s for several
schedules and micro-batch counts and compares the simulated bubble with the closed form.
"""),
        ("code", SETUP),
        ("code", """
work = cs.workdir("bubbles")
sweep = cs.sweep_file(work, f'''
name: bubbles
base: {cs.SCENARIOS / "llama3-70b-1k.yaml"}
tokens: 1T
set: [cluster.nodes=16, parallelism.tp=8, parallelism.pp=4, parallelism.dp=4]
designs:
  - {{ name: 1f1b, set: [parallelism.schedule=1f1b, parallelism.virtual_stages=1] }}
  - {{ name: interleaved-v2, set: [parallelism.schedule=interleaved, parallelism.virtual_stages=2] }}
  - {{ name: interleaved-v4, set: [parallelism.schedule=interleaved, parallelism.virtual_stages=4] }}
axes:
  training.global_batch: [16, 32, 64, 128]
''')
df = cs.compare([sweep], work / "out")
df["schedule"] = df["name"].str.split().str[0]
df["v"] = df["schedule"].map({"1f1b": 1, "interleaved-v2": 2, "interleaved-v4": 4})
df["m"] = df["name"].str.extract(r"global_batch=(\\d+)")[0].astype(int) // 4
p = 4
df["closed_form"] = (p - 1) / (df["v"] * df["m"] + p - 1)
df[["schedule", "m", "step_time_s", "bubble_fraction", "closed_form", "pp_exposed_s"]]
"""),
        ("code", """
fig, ax = plt.subplots(figsize=(7, 4))
for name, g in df.groupby("schedule"):
    line, = ax.plot(g["m"], g["bubble_fraction"], "o-", label=f"{name} (simulated)")
    ax.plot(g["m"], g["closed_form"], "--", color=line.get_color(), alpha=0.6)
ax.set_xscale("log", base=2)
ax.set_xlabel("micro-batches per step (m)")
ax.set_ylabel("bubble fraction of the step")
ax.set_title("Llama 3 70B, PP 4: simulated (solid) vs (p-1)/(v m + p - 1) (dashed)")
ax.legend()
fig.tight_layout()
"""),
        ("code", """
# The simulated bubble includes communication and unequal stages (embedding, logits), so it
# sits at or above the closed form, and interleaving must not make it larger.
assert (df["bubble_fraction"] > 0).all()
for m, g in df.groupby("m"):
    b = g.set_index("v")["bubble_fraction"]
    assert b[4] <= b[1] + 1e-9, (m, b.to_dict())
print("bubble ordering holds for every m")
"""),
    ],
    "02-communication-bottlenecks.ipynb": [
        ("markdown", """
# Communication bottlenecks across fabrics

Where does step time go when the scale-out network gets slower or more oversubscribed?
Tensor parallelism stays inside an NVLink node; data-parallel gradient reduction and
pipeline sends cross the fabric. This notebook sweeps NIC speed and leaf
oversubscription for Llama 3 70B (TP 8, PP 4, DP 4 on 128 H100s) and plots the exposed
communication per kind, next to the network's capital cost.
"""),
        ("code", SETUP),
        ("code", """
work = cs.workdir("fabrics")
sweep = cs.sweep_file(work, f'''
name: fabrics
base: {cs.SCENARIOS / "llama3-70b-1k.yaml"}
tokens: 1T
set: [cluster.nodes=16, parallelism.dp=4, training.global_batch=64]
axes:
  cluster.node.nic_gbps: [100, 200, 400]
  cluster.fabric.oversubscription: [1, 2, 4]
''')
df = cs.compare([sweep], work / "out")
df["nic_gbps"] = df["name"].str.extract(r"nic_gbps=(\\d+)")[0].astype(int)
df["oversub"] = df["name"].str.extract(r"oversubscription=(\\d+)")[0].astype(int)
df["label"] = df["nic_gbps"].astype(str) + "G " + df["oversub"].astype(str) + ":1"
cols = ["label", "step_time_s", "tp_exposed_s", "pp_exposed_s", "dp_exposed_s", "mfu", "capital_usd"]
df[cols]
"""),
        ("code", """
fig, (a1, a2) = plt.subplots(1, 2, figsize=(11, 4))
bottom = pd.Series(0.0, index=df.index)
for col, name in [("tp_exposed_s", "TP"), ("pp_exposed_s", "PP"), ("dp_exposed_s", "DP")]:
    a1.bar(df["label"], df[col], bottom=bottom, label=name)
    bottom += df[col]
a1.set_ylabel("exposed communication per step (s)")
a1.set_title("What the fabric costs in step time")
a1.tick_params(axis="x", rotation=45)
a1.legend()
a2.scatter(df["capital_usd"] / 1e6, df["step_time_s"])
for _, r in df.iterrows():
    a2.annotate(r["label"], (r["capital_usd"] / 1e6, r["step_time_s"]), fontsize=8)
a2.set_xlabel("cluster capital (M$)")
a2.set_ylabel("step time (s)")
a2.set_title("Price vs speed")
fig.tight_layout()
"""),
        ("code", """
# A faster, less oversubscribed fabric never makes the step slower.
for o, g in df.groupby("oversub"):
    s = g.sort_values("nic_gbps")["step_time_s"].to_list()
    assert all(x >= y - 1e-9 for x, y in zip(s, s[1:])), (o, s)
worst = df.loc[df["step_time_s"].idxmax(), "label"]
best = df.loc[df["step_time_s"].idxmin(), "label"]
print(f"slowest fabric: {worst}; fastest: {best}")
"""),
    ],
    "03-checkpoint-interval.ipynb": [
        ("markdown", """
# Sizing the checkpoint interval

Checkpointing often wastes time writing; checkpointing rarely loses more work per
failure. Young (1974) puts the optimum at `sqrt(2 δ M)` (δ the blocking checkpoint cost,
M the mean time between interruptions); Daly (2006) refines it. `clustersim checkpoint`
simulates goodput over a range of intervals with the scenario's failure process and
reports the simulated optimum next to both formulas (`checkpoint.json`:
`optimum_interval_s`, `young_interval_s`, `daly_interval_s`, `curve`).
"""),
        ("code", SETUP),
        ("code", """
if not cs.has_command("checkpoint"):
    raise RuntimeError(
        "this clustersim build has no `checkpoint` command yet (it arrives with the "
        "faults/run work); rebuild from a branch that has it"
    )
work = cs.workdir("checkpoint")
cs.run("checkpoint", cs.SCENARIOS / "llama3-70b-1k.yaml", "--intervals", "5m:4h", "--out", work)
ck = cs.read_json(work / "checkpoint.json")
curve = pd.DataFrame(ck["curve"])
print({k: ck[k] for k in ("optimum_interval_s", "young_interval_s", "daly_interval_s")})
curve.head()
"""),
        ("code", """
fig, ax = plt.subplots(figsize=(7, 4))
ax.plot(curve["interval_s"] / 60, curve["goodput"], "o-", label="simulated goodput")
for key, style, name in [
    ("optimum_interval_s", "-", "simulated optimum"),
    ("young_interval_s", "--", "Young"),
    ("daly_interval_s", ":", "Daly"),
]:
    ax.axvline(ck[key] / 60, linestyle=style, color="k", alpha=0.6, label=name)
ax.set_xscale("log")
ax.set_xlabel("checkpoint interval (minutes)")
ax.set_ylabel("goodput (ETTR)")
ax.legend()
fig.tight_layout()
"""),
        ("code", """
best = curve.loc[curve["goodput"].idxmax(), "interval_s"]
ratio = ck["optimum_interval_s"] / ck["young_interval_s"]
print(f"best sampled interval {best / 60:.1f} min; optimum / Young = {ratio:.2f}")
assert 0 < curve["goodput"].max() <= 1
assert 0.25 < ratio < 4, "the simulated optimum should be near Young's formula"
"""),
    ],
    "04-cluster-designs.ipynb": [
        ("markdown", """
# Comparing cluster designs before purchase

Four ways to train Llama 3 70B on 1T tokens (`scenarios/sweeps/70b-designs.yaml`):
1,024 H100 on a full-bisection NDR rail-optimized fabric, the same on a 2:1
oversubscribed fabric, 512 B200, and 1,024 H200. Each design gets its best parallelism
plan (`plan: best`), then time to train, energy and cost follow from the simulated
throughput. Rental cost is GPU-hours at each design's hourly rate; ownership cost is the
purchase (GPUs, nodes, NICs, switches, optics) written off over four years plus
electricity.
"""),
        ("code", SETUP),
        ("code", """
work = cs.workdir("designs")
sweep = cs.SCENARIOS / "sweeps" / "70b-designs.yaml"
rent = cs.compare([sweep], work / "rental", "--top", "1")
own = cs.compare([sweep], work / "ownership", "--top", "1", "--price", "basis=ownership")
df = rent[["name", "gpu", "gpus", "plan", "step_time_s", "tokens_per_s", "mfu",
           "time_to_train_days", "energy_mwh", "cost_usd", "capital_usd"]].copy()
df["ownership_cost_usd"] = own["cost_usd"]
df
"""),
        ("code", """
fig, axes = plt.subplots(1, 3, figsize=(13, 4))
for ax, col, title in [
    (axes[0], "time_to_train_days", "time to train 1T tokens (days)"),
    (axes[1], "energy_mwh", "facility energy (MWh)"),
    (axes[2], "cost_usd", "rental cost (USD)"),
]:
    ax.bar(df["name"], df[col], color=plt.cm.tab10.colors[: len(df)])
    ax.set_title(title)
    ax.tick_params(axis="x", rotation=30)
fig.tight_layout()
"""),
        ("code", """
fig, ax = plt.subplots(figsize=(6, 4))
ax.scatter(df["time_to_train_days"], df["cost_usd"] / 1e6, label="rental")
ax.scatter(df["time_to_train_days"], df["ownership_cost_usd"] / 1e6, marker="x", label="ownership")
for _, r in df.iterrows():
    ax.annotate(r["name"], (r["time_to_train_days"], r["cost_usd"] / 1e6), fontsize=8)
ax.set_xlabel("days to train")
ax.set_ylabel("cost (M$)")
ax.legend()
fig.tight_layout()
"""),
        ("code", """
# Sanity: rental cost is the hourly rate times GPU-hours; the oversubscribed fabric is
# never faster than the full-bisection one with the same GPUs.
by = df.set_index("name")
assert by.loc["h100-ndr-2to1", "step_time_s"] >= by.loc["h100-ndr-rail", "step_time_s"] - 1e-9
assert (df["cost_usd"] > 0).all() and (df["energy_mwh"] > 0).all()
print(by[["time_to_train_days", "cost_usd"]].sort_values("time_to_train_days"))
"""),
    ],
}

for name, cells in NOTEBOOKS.items():
    stem = name.split("-")[0]
    (HERE / name).write_text(json.dumps(nb(f"c{stem}", cells), indent=1) + "\n")
    print("wrote", name)
