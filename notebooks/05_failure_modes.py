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
# # 05 · Failure modes
#
# **What you will see.** Every row of the lesson's **Update Result** table (`/5/0/5`),
# produced on purpose. A small fleet of thirteen simulated devices is updated at once; each
# one is set up to fail in exactly one way — a full flash, no RAM, a dropped link, a flipped
# bit, a foreign signature, a file that is not an image, a URI pointing nowhere, an image that
# crashes at boot, a scheme the device cannot speak, a cancel, a user who postpones — and one
# is set up to succeed. A table puts the code each device should report next to the code it
# did report; a bar chart counts them; a swimlane per device shows *when* in the four steps
# each failure struck. Then, for each code, what it means in the field and what an operator
# does next. Finally you inject a fault into a running device and watch it strike.

# %% tags=["parameters"]
from labkit.course import l05_failure_modes as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): smaller, quicker runs
IMAGE_SIZE = 8_192 if FAST else 65_536  # payload bytes of the signed firmware image

# %% [markdown]
# ## 1 · One device per outcome
#
# Failures come from two places. Some are **the device's**: a *fault* makes it fail the way
# real devices do (`no-flash`, `no-ram`, `link-drop`, `corrupt-in-flash`, `boot-fail`,
# `no-http`, `defer`). Others come from **what the server sends**: an image signed with
# another key, a file that is not an image, a Package URI that points nowhere or uses a
# scheme (`ftp://`) no device speaks, a Cancel. Each case below gets its own device, named
# after the code it should produce.

# %%
import pandas as pd
from labkit import Lab
from labkit.plots import plot_fleet_timeline, plot_result_counts, plot_state_timeline

pd.DataFrame(lesson.FAILURE_CASES)

# %% [markdown]
# ## 2 · Run them all at once
#
# `lesson.failure_matrix` adds the thirteen devices (firmware 1.0.0), signs a 2.0.0 image
# with the lab key, publishes what is pulled, and runs every attempt concurrently through the
# lab's server: write the package (PUSH, `/5/0/0`) or its URI (PULL, `/5/0/1`), Execute
# Update `/5/0/2` (or Cancel `/5/0/10`) once the device is DOWNLOADED, wait for the reboot,
# then read State, Update Result and Firmware Version (`/3/0/3`). It takes a few seconds; the
# dropped link is the slowest, as the device first retries. The lab runs on *virtual time*
# (`clock="virtual"`): its clock jumps from one event to the next, so the `seconds` column is
# the same on every laptop.

# %%
lab = Lab(clock="virtual", seed=5).start()
matrix = lesson.failure_matrix(lab, size=IMAGE_SIZE)
matrix[["device", "case", "expected", "observed", "reported", "fw_before", "fw_after"]]

# %% [markdown]
# Every device reported the code it was set up for (`expected` = `observed`). Only two run
# 2.0.0 afterwards: the healthy one, and the one whose user deferred (11) and accepted a
# moment later (→ 1). In all other rows `/3/0/3` still names 1.0.0 — a failed update never
# leaves a device without working firmware. What the server read at the end: every device
# is back in State 0 (IDLE), nothing is left half-way; and how long each attempt took.

# %%
matrix[["device", "delivery", "final_state", "final_result", "match", "seconds"]]

# %% [markdown]
# ## 3 · The result-code statistics
#
# One bar per code the fleet reported: green for success, vermillion for failures. The same
# chart over a real campaign of thousands of devices is the first thing an operator looks at.

# %%
ax = plot_result_counts(matrix)

# %% [markdown]
# The lab's event table tells the same story by *attempt*: an attempt ends with a final code
# (1-10). A deferral (11) is not final — that attempt ended later with 1, so here 11 is gone
# and 1 counts twice. Keep the difference in mind when you read campaign statistics.

# %%
ax = plot_result_counts(lab.events())

# %% [markdown]
# ## 4 · Where in the four steps each failure struck
#
# One lane per device, coloured by State (1 DOWNLOADING, 2 DOWNLOADED, 3 UPDATING), with the
# final code at the end. Codes 2, 3, 4, 6, 7 and 9 end during or right after the **download**
# (step 2), and 10 as soon as the server cancels; the deferred update waits in DOWNLOADED
# until its user accepts; 1, 5 and 8 go through UPDATING and a reboot (steps 3 and 4) — 5
# because the bootloader refused the image, 8 because the image it booted failed.

# %%
ax = plot_fleet_timeline(lab.events(), sort_by="device")

# %% [markdown]
# Two of them up close: the dropped link spends seconds in DOWNLOADING while the device
# retries, then gives up with 4; the boot failure goes all the way to UPDATING, reboots, and
# comes back with 8 and the old version.

# %%
ax = plot_state_timeline(lab.events(), "r04-link-drop")

# %%
ax = plot_state_timeline(lab.events(), "r08-boot-fail")

# %% [markdown]
# ## 5 · What does this code mean, and what would you do?
#
# The lesson's description of each code, the likely cause in the field, and what an operator
# does next. Note how different 5 and 8 are: 5 says the *file* is wrong (never booted), 8
# says the *firmware* is wrong (it booted and failed) — retrying either is pointless.

# %%
lesson.operator_guide()

# %% [markdown]
# The guide next to what the fleet reported:

# %%
guide = lesson.operator_guide().rename(columns={"code": "observed"})
matrix[["device", "observed"]].merge(guide[["observed", "next_step"]], on="observed")

# %% [markdown]
# ## 6 · A fault injected into a running device
#
# Faults need not be chosen when a device is made: `inject_fault` gives a running device a
# fault from now on (the lab's *fault panel*, `labkit.ui.FaultPanel`, does the same with a
# button). The healthy device `r01-success` gets `no-ram`, and its next update, to 3.0.0,
# stops at the first block with Update Result 3.

# %%
lab.call(lambda: lab.device("r01-success").simulated.inject_fault("no-ram"))
outcome = lab.update("r01-success", lesson.package("3.0.0", IMAGE_SIZE), method="pull")
outcome

# %%
lesson.log(lab.events(), "r01-success", kinds=["fault", "fw_result"], source="device", last=4)

# %% [markdown]
# ## Exercises
#
# Replace `None` with your answer and run the cell. `lesson.hint(name)` gives a hint.
#
# **1.** Which Update Result code means that the downloaded image failed its integrity check?

# %%
integrity_code = None  # a number from 0 to 11
lesson.check("failures.integrity_code", integrity_code)

# %% [markdown]
# **2.** Which fault made a device of the matrix report Update Result 3?

# %%
fault_for_3 = None  # a fault name, e.g. "link-drop"
lesson.check("failures.fault_for_3", fault_for_3)

# %% [markdown]
# **3.** A device reports Update Result 8, and `/3/0/3` still names the old version. What
# happened to the new image?

# %%
what_happened = None  # a few words
lesson.check("failures.result_8_old_version", what_happened)

# %% [markdown]
# ## Shut the lab down

# %%
lab.close()
