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
# # 08 · Analysing runs
#
# **What you will see.** Everything the lab does is saved as a **run**: a folder with an event
# table and a manifest of its parameters. This notebook starts no lab and needs no device: it
# reads the sample runs in `data/samples` (one PUSH, one PULL, and the same 50-device campaign
# run twice, once with policy `always` and once with policy `threshold`), and a packet capture
# of the PUSH taken with tcpdump. You compare the two policies — how the updates ended, how
# fast they succeeded, and when the `threshold` policy waited for a better signal — and you
# put the capture's story of the PUSH next to the lab's own record of it.
#
# Run the cells from top to bottom; it takes a few seconds. With your own runs, point
# `RUNS` at their folder (`data/runs` by default for the lab and `labkit simulate`).

# %% tags=["parameters"]
from labkit.course import l08_analysing_runs as lesson

FAST = lesson.fast_mode()  # the samples are small: fast mode changes nothing here
RUNS = None  # None: the sample runs of this checkout (data/samples), or a folder of runs

# %% [markdown]
# ## 1 · The runs on disk
#
# `list_runs` reads only the manifests and file footers, so it is quick even for big runs:
# one row per run, with its parameters as columns (empty where a run has no such parameter:
# a single update has no policy, a campaign no transfer protocol).

# %%
from labkit.plots import (
    plot_decision_scatter,
    plot_result_counts,
    plot_state_timeline,
    plot_time_to_success,
)
from labkit.record import campaign_outcomes, import_capture, list_runs, read_run, result_counts
from labkit.samples import sample_path, samples_dir

runs = list_runs(RUNS or samples_dir())
runs[["run_id", "n_events", "n_devices", "method", "protocol", "policy", "faults", "seed"]]

# %% [markdown]
# ## 2 · Two campaigns, two policies
#
# `read_run` loads one run: its manifest and its typed event table. Both campaigns ran the
# same 50 simulated devices with the same seed — the same mixed NB-IoT / LTE-M / Wi-Fi links
# and the same faults (3 links cut halfway through the download, 2 devices that fail to boot
# the new image, 1 with too little flash). Only the policy differs: `always` pushes as soon
# as a device is there, `threshold` waits until the device's RSSI (`/4/0/2`) reaches
# its threshold.

# %%
always = read_run(sample_path("campaign-always"))
threshold = read_run(sample_path("campaign-threshold"))
threshold.params["policy"], threshold.params["thresholds"], threshold.params["fault_counts"]

# %% [markdown]
# The campaign kept its own verdict on every device: one row each, with the policy from the
# manifest, the device's link profile and faults. It also holds results the device could not
# report itself: a PUSH that stalled because the link went away ends `CONNECTION_LOST`
# (Result 4), *inferred* by the server.

# %%
outcomes = campaign_outcomes([always, threshold], params=["policy"])
outcomes[["policy", "device", "profile", "faults", "result", "result_inferred", "waits"]].head(8)

# %% [markdown]
# ## 3 · How the updates ended, by policy
#
# The same table counted per Update Result (`/5/0/5`) and policy, then drawn: one bar per
# policy in each result row.

# %%
result_counts(outcomes, by="policy")

# %%
ax = plot_result_counts(outcomes, by="policy")

# %% [markdown]
# And how fast: the share of each policy's devices that had their new firmware within a given
# time of their PUSH starting. Time is counted from the push, so a device's waiting for a
# better signal is not in it: under `threshold` the pushes that did start ran on better links.

# %%
ax = plot_time_to_success(outcomes, by="policy")

# %% [markdown]
# Statistics across the two runs, side by side: devices, the share updated, how often the
# policy waited, the median transfer of a successful update and when the last one was done
# (simulated seconds since the campaign started). Waiting is what the shorter transfers cost.

# %%
ok = outcomes[outcomes["success"]]
stats = outcomes.groupby("policy").agg(
    devices=("device", "size"), updated=("success", "mean"), waits=("waits", "sum")
)
times = ok.groupby("policy").agg(median_s=("duration_s", "median"), last_s=("finished_s", "max"))
stats.join(times).round(2)

# %% [markdown]
# ## 4 · When did `threshold` wait?
#
# Every policy decision is an event, with the link sample it was based on. The scatter shows
# each decision of the `threshold` run against the RSSI the device reported: below the
# threshold (the vertical line) the policy waits, above it it pushes.

# %%
decisions = threshold.decisions()
decisions["decision"].value_counts()

# %%
ax = plot_decision_scatter(decisions, thresholds=threshold.params["thresholds"])

# %% [markdown]
# ## 5 · The same PUSH, from the wire
#
# `push-update.pcap` is what tcpdump saw on the loopback interface while the lab ran the
# `push-single` update. `import_capture` decodes its CoAP messages into the same kind of event
# table (`source` "import"); a capture of a real device's update goes through the same steps.

# %%
capture = import_capture(sample_path("push-update.pcap"))
capture

# %% [markdown]
# The lab's own record of that update has rows from the **server** and from the simulated
# **device**. The capture can only show what crossed the network, so it matches the server's
# rows kind by kind, while the device's own rows (its reboot, the requests it received) and the
# lab's notes are not on the wire.

# %%
import pandas as pd

push = read_run(sample_path("push-single"))
both = pd.concat([push.events, capture.frame], ignore_index=True)
both.groupby(["kind", "source"], observed=True).size().unstack(fill_value=0)

# %% [markdown]
# The State timelines of the two, one above the other, each from its first registration: the
# same 0 → 1 → 2 → 3 → 0 and the same Result 1. The lab's record has the device's own rows, so
# its reboot (dashed) and its Result 1 appear a little earlier than in the capture: the server
# — and the wire — hear of them only once the device has registered again, from a new port.

# %%
import matplotlib.pyplot as plt

fig, axes = plt.subplots(2, 1, figsize=(10, 8), constrained_layout=True)
lab_rows = push.events[push.events["kind"] != "note"]  # its first note predates any packet
names = ["The lab's record: push-single", "The capture: push-update.pcap"]
for ax, rows, name in zip(axes, [lab_rows, capture.frame], names, strict=True):
    plot_state_timeline(rows, "sim-0001", ax=ax).set_title(name)

# %% [markdown]
# ## Exercises
#
# Replace `None` with your answer and run the cell; compute it from the tables above.
# `lesson.hint(name)` gives a hint.
#
# **1.** How many devices of the `threshold` campaign ended with `CONNECTION_LOST` (Result 4)?
# Then look at their faults in the `outcomes` table: could a policy have saved them?

# %%
threshold_lost = None  # a number
lesson.check("analysis.connection_lost", threshold_lost)

# %% [markdown]
# **2.** What share of the 50 devices of the `threshold` campaign were updated successfully?

# %%
threshold_share = None  # a fraction like 0.5, or a percentage like "50 %"
lesson.check("analysis.threshold_success", threshold_share)

# %% [markdown]
# **3.** From how many different UDP ports did `sim-0001` talk to the server in the capture?

# %%
capture_ports = None  # a number
lesson.check("analysis.capture_ports", capture_ports)
