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
# # 00 · A tour of the lab
#
# **What you will see.** You start the lab — an LwM2M server running on your own machine —
# connect one simulated device to it, and update the device's firmware with a PUSH. The device
# goes through the four steps of the lesson (*The LwM2M way of updating firmware*): it is
# triggered (step 1), downloads the new firmware (step 2), installs it after a reboot (step 3)
# and reports how it went (step 4). At the end you see the update as a picture: the device's
# Firmware Update **State** (`/5/0/3`) on a timeline, going 0 → 1 → 2 → 3, a reboot, and back
# to 0 with **Update Result** (`/5/0/5`) 1, "Firmware updated successfully".
#
# Run the cells from top to bottom (Shift+Enter). The whole notebook takes well under a minute.

# %% tags=["parameters"]
from labkit.course import l00_tour as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): smaller, quicker runs
PACKAGE_SIZE = 16_384 if FAST else 131_072  # bytes of firmware to PUSH

# %% [markdown]
# ## 1 · Start the lab
#
# `Lab()` starts an LwM2M server on `127.0.0.1` with a free port, in the background: your
# cells stay free while the server answers devices. Showing `lab` prints what it knows.

# %%
from labkit import Lab
from labkit.plots import plot_state_timeline

lab = Lab().start()
lab

# %% [markdown]
# ## 2 · One simulated device
#
# A simulated device is a real LwM2M client: it speaks CoAP over UDP and **registers** with
# the server (a `POST /rd` saying its name, its lifetime and its objects). It starts with
# firmware 1.0.0. The server's registration table shows it, with the address it came from.

# %%
device = lab.add_device("sim-0001", firmware_version="1.0.0")
lab.registrations()

# %%
device

# %% [markdown]
# ## 3 · A firmware package
#
# A lab package is plain bytes whose first line names the version it installs
# (`LABKIT-FW 2.0.0`); the rest is filler standing in for the firmware image. Here are its
# first bytes, as they will travel on the wire.

# %%
firmware = lesson.package("2.0.0", PACKAGE_SIZE)
lesson.wire(firmware[:48])

# %% [markdown]
# Publishing puts the package in the lab's **firmware repository**. A device that *pulls*
# (the lesson's PULL method, notebook 03) downloads it from one of these addresses; for a
# PUSH the server sends the bytes itself.

# %%
lab.publish("app-2.0.0.bin", firmware)

# %% [markdown]
# ## 4 · PUSH it
#
# In the PUSH method **the server** picks the moment to start the download. `update` runs the
# whole update against one device: it writes the package to `/5/0/0` block by block (CoAP
# Block1, 1024 bytes per block), executes `/5/0/2` (Update), waits for the device to reboot and
# register again, and checks its firmware version (`/3/0/3`). It returns an *outcome*: what
# happened, and how long each stage took.

# %%
outcome = lab.update("sim-0001", firmware, method="push")
outcome

# %% [markdown]
# ## 5 · What the device said
#
# Everything that happens in the lab becomes a row of one **event table** (`lab.events()`).
# `lesson.story` picks the rows in which the device reports on itself: every change of State,
# Update Result and firmware version, its reboot and its registrations (`t_ms` counts
# milliseconds from the device's first row).

# %%
lesson.story(lab.events(), "sim-0001")

# %% [markdown]
# ## 6 · The State timeline
#
# The same story as a picture. Each lane is one State; a bar shows how long the device stayed
# in it. The dashed line is the reboot into the new firmware, dotted lines are registrations,
# the green marker is Update Result 1, and the top lane shows the firmware version changing.

# %%
ax = plot_state_timeline(lab.events(), "sim-0001")

# %% [markdown]
# Most of the time goes to **UPDATING**: the device installs the image, reboots into it and
# registers again (from a new port) before the server hears from it. The download is short
# because the device sits on the same machine; later notebooks give devices a radio link that
# is slow and lossy, and the picture changes.
#
# ## Exercises
#
# Replace `None` with your answer and run the cell; the checker says whether it is right, and
# why. `lesson.hint("tour.states")` gives a hint.
#
# **1.** In which order did the device's State change during the PUSH, from before the download
# until after the reboot? Give a list of State numbers or names.

# %%
states_in_order = None  # e.g. [0, 3] or "IDLE, UPDATING"
lesson.check("tour.states", states_in_order)

# %% [markdown]
# **2.** Which Update Result did the device report once the new firmware was running?

# %%
final_result = None  # a number from 0 to 11
lesson.check("tour.success_result", final_result)

# %% [markdown]
# ## Shut the lab down
#
# Closing the lab de-registers the device, stops the server and frees the ports. (Forgetting
# it is harmless: the lab also closes when the kernel stops.)

# %%
lab.close()
