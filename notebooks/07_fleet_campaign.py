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
# # 07 · A fleet campaign
#
# **What you will see.** Updating one device is the lesson's four steps; updating a whole
# fleet needs caution on top. You start a fleet of simulated devices on NB-IoT, LTE-M and
# Wi-Fi links, a few of them with faults, and plan a **campaign**: a small **canary** wave
# first, then **waves** that each bring the fleet to a larger share (25 %, 50 %, 100 %), with
# at most a few updates in flight at once, a **failure threshold** that stops everything when
# too many devices fail, and automatic retries for the one failure that may heal itself. A
# live dashboard shows every device while the campaign runs; you pause it, see that no new
# update starts, and resume it. Afterwards you read the per-wave and per-device tables, the
# fleet timeline and the results by wave. Finally a broken release (a file that is no
# firmware) goes out: the canary fails, and wave 1 is never started.

# %% tags=["parameters"]
from labkit.course import l07_fleet_campaign as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): smaller, quicker runs
DEVICES = 20 if FAST else 100  # devices in the fleet
CLOCK = "virtual"  # the same numbers for everyone; "scaled" to watch the fleet live
TIME_SCALE = 100 if FAST else 50  # with CLOCK = "scaled": simulated s per wall s
CANARY = 2  # devices in the canary wave
MAX_IN_FLIGHT = 5 if FAST else 20  # updates running at once, at most
SEED = 3

# %% [markdown]
# ## 1 · A fleet with faults
#
# Each device is a real LwM2M client behind its own link relay, with the link of its
# profile (a mixed fleet: half NB-IoT meters, some LTE-M trackers, a few Wi-Fi gateways).
# One device in ten has the `boot-fail` fault (its new image fails the self-test after the
# reboot and the bootloader rolls back: Update Result 8) and one in twenty `link-drop` (the
# link goes down in the middle of every download: Result 4). The canary's devices are ones
# you trust, without faults. Time is *virtual*: the lab's clock
# jumps from one event to the next, so the run takes the same simulated time, and gives the same
# numbers, on every laptop (set `CLOCK = "scaled"` above to watch it at `TIME_SCALE`x instead).

# %%
from labkit.fota.campaign import plan_waves
from labkit.plots import plot_fleet_timeline, plot_result_counts
from labkit.ui import FleetDashboard

lab = lesson.course_lab(seed=SEED, clock=CLOCK, time_scale=TIME_SCALE)
fleet = lesson.fleet(lab, DEVICES, faults="boot-fail:0.1,link-drop:0.05", seed=SEED, clean=CANARY)

# %%
fleet.table().value_counts(["profile", "faults"]).rename("devices").reset_index()

# %% [markdown]
# ## 2 · The plan: a canary, then waves
#
# `waves=(25, 50, 100)` are **cumulative** shares of the whole fleet: by the end of wave 1 a
# quarter of the fleet is done (the canary included), by the end of wave 2 half, then all.
# A wave starts only when the previous one has finished. The number of devices per wave:

# %%
[len(wave) for wave in plan_waves(fleet.endpoints, canary=CANARY, percents=(25, 50, 100))]

# %% [markdown]
# ## 3 · The campaign, live
#
# The dashboard below follows every device: its State and Update Result, firmware, RSSI and
# Link Quality, download progress and campaign status. It updates itself a few times a
# second while the campaign runs (in a running notebook; the saved copy shows the start).

# %%
dashboard = FleetDashboard(lab)
dashboard

# %% [markdown]
# The campaign: PUSH a 16 KiB package with the *always* policy (notebook 04 is about choosing
# a better one), at most `MAX_IN_FLIGHT` updates at once, stop when more than 40 % of the
# finished devices have failed (once at least 4 have finished), and retry Result 4 once
# after a back-off. `fleet.start` hands it to the lab and returns at once: the campaign runs
# in the background.

# %%
campaign = fleet.campaign(
    lesson.package("2.0.0", 16_384),
    canary=CANARY,
    waves=(25, 50, 100),
    max_concurrent=MAX_IN_FLIGHT,
    failure_threshold=0.4,
    min_finished=4,
    retry_on={4},
    max_attempts=2,
)
dashboard.follow(campaign)
running = fleet.start(campaign)

# %% [markdown]
# **Pause and resume.** Pausing lets the updates in flight finish but starts no new one. The
# cell below pauses once four devices have finished, looks at the fleet twice while paused
# (the number of `started` devices does not grow), resumes, and waits for the end:

# %%
lesson.pause_and_resume(campaign, running, after=4, hold_s=1.5)

# %% [markdown]
# The dashboard as it stands now (the same table as above, as a DataFrame):

# %%
dashboard.refresh()
dashboard.frame()

# %% [markdown]
# ## 4 · Wave by wave, device by device
#
# One row per wave: how many devices ended how, how many failed with Result 4, the failure
# rate (failed / finished), and whether the wave stopped the campaign:

# %%
campaign

# %%
campaign.waves()

# %% [markdown]
# One row per device (`attempts` is 2 where Result 4 was retried):

# %%
campaign.devices()[["device", "wave", "status", "result_name", "attempts", "duration_s"]]

# %% [markdown]
# The whole campaign as a picture: one lane per device, its State over time and how each
# attempt ended, sorted by outcome. The waves are visible as the moments when new lanes
# start.

# %%
events = fleet.events(campaign)
ax = plot_fleet_timeline(events)

# %%
ax = plot_result_counts(events, by="wave")

# %% [markdown]
# ## 5 · A broken release: the canary stops it
#
# Release 3.0.0 goes out, but the file uploaded is not a firmware image at all. The devices
# download it and refuse it at the end (Update Result 6, "Unsupported package type"). With
# the default `canary_max_failures=0` one failed canary is enough to stop the campaign.

# %%
broken = fleet.campaign(lesson.bad_package(16_384), canary=CANARY, waves=(25, 50, 100))
fleet.run(broken)

# %%
broken.waves()

# %% [markdown]
# Only the canary's devices were touched; every later wave was skipped, and those devices
# still run 2.0.0. In the field that is the difference between two bricked devices on your
# desk and a fleet-wide recall. (The control room, `labkit.ui.control_room(lab)`, puts this
# dashboard, a form to start, pause, resume and cancel campaigns, and live plots into tabs.)
#
# ## Exercises
#
# Replace `None` with your answer and run the cell. `lesson.hint(name)` gives a hint.
#
# **1.** Why did wave 1 of the broken release never start? Answer in a few words.

# %%
why_stopped = None  # a few words
lesson.check("fleet.stopped_why", why_stopped)

# %% [markdown]
# **2.** A fleet of 20 devices, a canary of 2, then `waves=(25, 50, 100)`: how many devices
# does wave 1, the first wave after the canary, update?

# %%
wave_1_size = None  # a number of devices
lesson.check("fleet.wave_size", wave_1_size)

# %% [markdown]
# **3.** Which Update Result codes would you let a campaign retry on its own (`retry_on`)?

# %%
retry_codes = None  # a list of codes, e.g. [2, 3]
lesson.check("fleet.retry_codes", retry_codes)

# %% [markdown]
# ## Shut the lab down
#
# First the fleet (its devices and link relays), then the lab.

# %%
dashboard.close()
fleet.close()
lab.close()
