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
# # 04 · Link quality versus PUSH decisions
#
# **What you will see.** In the PUSH method "the LwM2M Server determines the moment to
# initiate the firmware download, ideally based on the connectivity conditions" — the Radio
# Signal Strength (`/4/0/2`) and Link Quality (`/4/0/3`) a device reports in its
# Connectivity Monitoring object. You first look at an hour of those two values for devices
# on NB-IoT, LTE-M and Wi-Fi. You then ask five **policies** (always, threshold, hysteresis,
# best-window, battery-floor) what they would do with a few link samples, and read their
# reasons. Then the same small fleet is updated twice, with the same seed: once with
# *always* and once with *threshold*. Half of the devices are weak and lose their link for a
# few minutes soon after the start; you compare the two runs (failures with Update Result 4,
# time to complete), follow one weak device decision by decision, and finally move the
# threshold with a slider and run it again.

# %% tags=["parameters"]
from labkit.course import l04_link_quality_vs_push as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): smaller, quicker runs
DEVICES = 6 if FAST else 12  # devices per campaign; every second one is weak
CLOCK = "virtual"  # the same numbers for everyone; "scaled" to watch the fleet live
TIME_SCALE = 50 if FAST else 25  # with CLOCK = "scaled": simulated s per wall s
SEED = 4

# %% [markdown]
# ## 1 · What a link looks like
#
# The lab's link model gives each device a signal that drifts slowly (a few minutes of good,
# a few of bad), dips now and then (a door closes, a car parks in front), and costs more
# loss and delay the weaker it is. Each profile has its own numbers: an **NB-IoT** meter in
# a basement (around -108 dBm, slow), an **LTE-M** tracker (around -96 dBm), a **Wi-Fi**
# sensor (around -62 dBm); a **mixed** fleet draws one of them per device. Here is an hour of
# samples, two devices per profile, one row per sample:

# %%
from labkit.plots import plot_decision_scatter, plot_link_decisions

traces = lesson.link_traces(["nb-iot", "lte-m", "wifi", "mixed"], devices=2, seed=SEED)
traces.head()

# %% [markdown]
# The digest's bands for LTE-M (section 2): RSRP good above -90 dBm, fair -90 … -105, poor
# below -105 dBm. The dashed line is -105 dBm.

# %%
wide = traces.pivot(index="t_min", columns="trace", values="rssi_dbm")
ax = wide.plot(figsize=(10, 4.5), xlabel="simulated minutes", ylabel="RSSI /4/0/2 (dBm)")
line = ax.axhline(-105, color="black", linestyle="--")
legend = ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0))

# %% [markdown]
# How much of that hour would a policy that waits below -105 dBm have waited?

# %%
lesson.trace_summary(traces, threshold_dbm=-105)

# %% [markdown]
# The NB-IoT meters spend a good part of the hour below -105 dBm, the LTE-M trackers a few
# minutes. Wi-Fi never does — but that says little: Wi-Fi RSSI is on another scale (a chip's
# RSSI, not cellular RSRP), so a threshold tuned for cellular links is wrong for Wi-Fi. A
# policy must know which bearer (`/4/0/0`) it is looking at.
#
# ## 2 · Five policies, five link samples
#
# A **policy** looks at one link sample and answers *push* (now), *wait* (and ask again after
# `retry_after_s`), *pull* (let the device download at its own pace) or *give_up*, always
# with a reason carrying the numbers:
#
# - **always** — push at once, whatever the link (the baseline);
# - **threshold** — push when RSSI ≥ -105 dBm, else wait;
# - **hysteresis** — start at ≥ -90 dBm, and once pushing go on until the signal falls below
#   -105 dBm;
# - **best-window** — wait up to an hour for RSSI ≥ -90 dBm, then push anyway;
# - **battery-floor** — never update below 20 % battery (a flash write and a reboot on an
#   empty battery is how devices get bricked), otherwise ask the threshold policy.
#
# Each policy once per sample (a "no /4 answer" sample is a device whose Read failed):

# %%
lesson.policy_examples()

# %% [markdown]
# Hysteresis and best-window remember: the campaign hands them their previous decision and
# how long the device has waited. Asked once a minute while the signal moves, hysteresis only
# starts above -90 dBm but keeps pushing at -95 and -100, and pauses below -105:

# %%
lesson.policy_walk("hysteresis", [-95, -88, -95, -100, -107, -95, -88])

# %% [markdown]
# Best-window with a two-minute limit waits for a good window and then falls back to pushing
# anyway:

# %%
lesson.policy_walk("best-window", [-100, -98, -95, -99], max_wait_s=120)

# %% [markdown]
# ## 3 · Always versus threshold, on the same fleet
#
# Now a real campaign over the network: `DEVICES` simulated devices, each behind its own link
# relay that drops and delays datagrams as the link model says, and an LwM2M server that
# reads `/4/0` of each device, asks the policy, records the decision and pushes a 128 KiB
# package in CoAP blocks. Time is *virtual*: the lab's clock
# jumps from one event to the next, so the run takes the same simulated time, and gives the same
# numbers, on every laptop (set `CLOCK = "scaled"` above to watch it at `TIME_SCALE`x instead).
#
# The links are LTE-M's, but **calm** (no drifting, no random dips), so the outcome depends on
# the policy and not on luck. Every second device is **weak**: from the start its signal is
# 25 dB down (-115 dBm), and from 30 s to 200 s after the start a van parks in front of it and
# the link is gone; at 260 s all is well again (-90 dBm). The same seed and the same links
# for both runs: only the policy changes.

# %%
lab = lesson.course_lab(seed=SEED, clock=CLOCK, time_scale=TIME_SCALE)
always = lesson.policy_run(lab, "always", devices=DEVICES, seed=SEED)
always

# %% [markdown]
# *Always* pushed to everyone at once. The weak devices' downloads were still running when
# their link went: the server's blocks went unanswered, the push stalled, and the campaign
# recorded Update Result 4, "Connection lost during downloading process".

# %%
threshold = lesson.policy_run(lab, "threshold", devices=DEVICES, seed=SEED, min_rssi_dbm=-105)
threshold

# %% [markdown]
# The two runs side by side (`time_to_complete_s` is simulated time until the last device
# finished, `waits` how often the policy said wait):

# %%
lesson.compare_runs([always, threshold])

# %% [markdown]
# The threshold policy avoided every Result 4 and paid in time: the weak devices were updated
# only after the van had left.
#
# ## 4 · One weak device, decision by decision
#
# The weak device's RSSI over time as the server saw it, each decision at the moment and on
# the sample it was made (▲ push, ● wait), the threshold as a dashed line and the update
# attempt shaded. During the outage the server could not read `/4` at all: those waits say
# "no link sample" and sit on the lowest value the device held.

# %%
ax = plot_link_decisions(threshold.events, threshold.weak[0], thresholds=threshold.thresholds)

# %%
threshold.decisions(threshold.weak[0])

# %% [markdown]
# The same device under *always*: one push, on a weak sample, and an attempt that never
# finished.

# %%
ax = plot_link_decisions(always.events, always.weak[0])

# %% [markdown]
# Every decision of the threshold run against the RSSI it saw: below the threshold wait,
# above it push. (The waits at the bottom are the ones made without a fresh sample.)

# %%
ax = plot_decision_scatter(threshold.events, thresholds=threshold.thresholds)

# %% [markdown]
# ## 5 · Move the threshold
#
# Move the slider and press **re-run**: a new fleet with the same links is updated with the
# threshold policy at that level, in the background, and its row joins the table. Try a
# threshold below the weak devices' -115 dBm, and one above -90 dBm (what happens to the
# healthy devices then? After 15 minutes of waiting the campaign gives up on them).

# %%
explorer = lesson.ThresholdExplorer(lab, runs=[always, threshold], devices=DEVICES, seed=SEED)
explorer

# %% [markdown]
# The cell below does what the button does, at -120 dBm, and waits for it: a threshold below
# the weak devices' signal lets everything through, and the weak devices fail as with
# *always*.

# %%
explorer.run(min_rssi_dbm=-120)
explorer.comparison()

# %% [markdown]
# ## Exercises
#
# Replace `None` with your answer and run the cell. `lesson.hint(name)` gives a hint.
#
# **1.** Which policy had fewer Result 4 failures in this run, `"always"` or `"threshold"`?

# %%
fewer_result_4 = None  # "always" or "threshold"
lesson.check("link.fewer_result_4", fewer_result_4)

# %% [markdown]
# **2.** At what RSSI (dBm) did the threshold policy finally push to the weak devices?

# %%
push_rssi = None  # a number in dBm, e.g. -100
lesson.check("link.push_rssi", push_rssi)

# %% [markdown]
# **3.** What does a *wait* decision mean for the device?
#
# - **a** the device pauses its download and resumes it when the signal is better
# - **b** nothing is sent to the device: the server leaves it alone and reads `/4` again
#   after `retry_after_s`
# - **c** the device downloads the image itself, from the Package URI (PULL)
# - **d** the campaign gives up on the device

# %%
wait_means = None  # "a", "b", "c" or "d"
lesson.check("link.wait_meaning", wait_means)

# %% [markdown]
# ## Shut the lab down

# %%
lab.close()
