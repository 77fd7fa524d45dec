# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 10 · Choosing a PUSH policy
#
# **What you will see.** The lesson says the server should push "ideally based on the
# connectivity conditions". But which policy, which threshold? One campaign answers nothing:
# its devices share one draw of links and faults, and another seed gives other numbers. Here
# you run a **sweep**: the same NB-IoT campaign under policy `always` and under `threshold`
# at several RSSI floors, each with several seeds. Every campaign runs in virtual time, so it
# is exactly reproducible, and in its own worker process. You read the answer **with its
# uncertainty**: failure rates and times to update with bootstrap intervals over the seeds,
# the trade-off between failures and speed with its Pareto front, and the best point for a
# goal you state.
#
# Run the cells from top to bottom; the fast version takes well under a minute.

# %% tags=["parameters"]
from labkit.course import l10_choosing_a_push_policy as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): a small, quick sweep
WORKERS = 1 if FAST else None  # None: a Dask LocalCluster, one worker process per core
GOAL = "minimise failure_rate where p90_s <= 7200"  # fewest failures, p90 under 2 h

# %% [markdown]
# ## 1 · The grid
#
# A sweep is a grid of campaign parameters times seeds. The fleet is on NB-IoT, and the
# server gives up on a request after 8 s (`timeout_s`): on a weak, lossy link a PUSH then
# often stalls and ends with Result 4 (CONNECTION_LOST). `always` takes no RSSI floor, so it
# appears once; `threshold` once per floor. Each **point** (a parameter combination) runs
# once per seed: each of those runs is a **cell**, one whole simulated campaign.

# %%
from labkit.plots.sweep import plot_pareto, plot_rate_by_param, plot_sweep_heatmap
from labkit.sweep import run_sweep
from labkit.sweep.analysis import read_sweep, result_rates, summary

# %%
grid = lesson.policy_grid(FAST)
print(f"{len(grid.points())} points x {len(grid.seeds)} seeds = {len(grid.cells())} cells:")
grid.points()

# %% [markdown]
# ## 2 · Run it
#
# `run_sweep` runs every cell not yet done and writes it to the sweep folder: one Parquet
# partition per cell (`devices/cell=<id>/`, `events/cell=<id>/`) and a manifest. The line
# below counts cells with an estimate of the time left. Run the cell again: every cell is
# already done and is skipped (a sweep interrupted half-way resumes the same way).

# %%
OUT = lesson.sweep_dir("sweep-10-push-policy" + ("-fast" if FAST else ""))
result = run_sweep(grid, OUT, workers=WORKERS)
result

# %% [markdown]
# ## 3 · How did the updates end, per point?
#
# `summary` gives one row per point. The rates pool the devices of all seeds; `_low` and
# `_high` bound a 95 % interval from a bootstrap that resamples **whole seeds** (why not
# devices? see exercise 1). The time to update is from the campaign's start to a device's
# SUCCESS, so waiting for a good signal counts.

# %%
sweep = read_sweep(OUT)
table = summary(sweep)
table[["label", "n_seeds", "failure_rate", "failure_rate_low", "failure_rate_high",
       "result_4_rate", "p90_s", "p90_low", "p90_high", "pareto"]]

# %% [markdown]
# Every Update Result has its own rate too (`none`: the device never reached a final result,
# e.g. it was still waiting for a good window when the campaign ended).

# %%
rates = result_rates(sweep)
rates.pivot_table(index="label", columns="result", values="rate")

# %% [markdown]
# ## 4 · Failures and speed against the RSSI floor
#
# A higher floor waits for better signal: fewer lost connections (Result 4), but devices
# wait longer. The error bars are the intervals; where they overlap, the sweep cannot tell
# the values apart.

# %%
threshold_only = table[table["policy"] == "threshold"]
ax = plot_rate_by_param(threshold_only, "min_rssi_dbm", rate="failure_rate")

# %%
ax = plot_rate_by_param(threshold_only, "min_rssi_dbm", rate="p90_s")

# %% [markdown]
# ## 5 · The trade-off: the Pareto front
#
# Each point is one policy setting: its p90 time to update against its failure rate. A point
# is on the **Pareto front** (filled) when no other point is better on both; the others
# (hollow) are beaten by some point on both counts and are never a good choice. Which point
# of the front to take depends on what you value.

# %%
ax = plot_pareto(table, label=["policy", "min_rssi_dbm"])

# %% [markdown]
# With two parameters varying, a heatmap shows every combination with its value and interval
# (`always` has no floor: its row has one value).

# %%
ax = plot_sweep_heatmap(table, "min_rssi_dbm", "policy")

# %% [markdown]
# ## 6 · The answer, with its uncertainty
#
# State the goal, then read the answer *and* which points the data cannot tell apart from it.

# %%
print(lesson.answer(table, GOAL, ["policy", "min_rssi_dbm"]))

# %% [markdown]
# ## 7 · The same sweep on a cluster
#
# `WORKERS = None` runs the cells on an embedded Dask `LocalCluster` (one worker process per
# core). When the sweep outgrows the laptop, start a Dask cluster (`dask scheduler` on one
# machine, `dask worker tcp://HOST:8786` on each of the others, all with this labkit
# installed and a shared folder for the sweep) and send the very same sweep to it:
#
# ```python
# run_sweep(grid, "/shared/sweeps/push-policy", scheduler="tcp://HOST:8786")
# ```
#
# or from a shell: `labkit sweep --grid policy=always,threshold --grid
# min_rssi_dbm=-115,-110,-105,-100 --profile nb-iot --devices 200 --seeds 5 --scheduler
# tcp://HOST:8786 --out /shared/sweeps/push-policy`, then `labkit report
# /shared/sweeps/push-policy --out report/`. Each cell is deterministic, so the tables are
# the same wherever it ran; a worker that dies has its cell rerun elsewhere, never twice in
# the dataset. The dataset is plain Parquet: DuckDB or Spark read it in place, e.g.
# `duckdb.sql("select cell, count(*) from read_parquet('.../events/*/*.parquet',
# hive_partitioning=true) group by cell")`.

# %% [markdown]
# ## Exercises
#
# **1.** The intervals come from a bootstrap. What does one resample draw with replacement:
# single `"devices"`, or whole `"seeds"` (campaigns)?

# %%
lesson.check("sweep.resample_unit", None)

# %% [markdown]
# **2.** Point A's failure rate is 6 % with a 95 % interval of [3 %, 9 %]; point B's is 9 %
# with [6 %, 12 %]. Does the sweep show that A fails less than B? Answer `"yes"` or `"no"`.

# %%
lesson.check("sweep.tell_apart", None)

# %% [markdown]
# **3.** You rerun the sweep with 4 times as many seeds. By about what factor does the width
# of an interval shrink? (Try it: `policy_grid` takes the seeds from `range(...)`.)

# %%
lesson.check("sweep.more_seeds", None)
