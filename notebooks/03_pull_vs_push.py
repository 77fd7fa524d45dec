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
# # 03 · PULL versus PUSH
#
# **What you will see.** The lesson's two ways of getting new firmware onto a device
# (*Download a new firmware*). In a **PUSH** the server picks the moment and writes the image
# itself, block by block, into `/5/0/0`. In a **PULL** the server only writes an address, the
# Package URI `/5/0/1`, and the device downloads the image from the firmware repository on its
# own, over CoAP or HTTP. You first read what a device says it can do (`/5/0/8` and `/5/0/9`),
# then deliver the same package to identical devices in five ways — PULL over CoAP and over
# HTTP, and PUSH in 256-, 512- and 1024-byte blocks — and compare the durations in a table and
# on a download-progress plot. Finally, a device that lists only CoAP is asked to PULL over
# HTTP, and the server refuses before it sends anything.

# %% tags=["parameters"]
from labkit.course import l03_pull_vs_push as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): smaller, quicker runs
PACKAGE_SIZE = 32_768 if FAST else 131_072  # bytes of the package every device gets
PUSH_BLOCK_SIZES = [256, 512, 1024]  # Zephyr's default, NB-IoT/LTE-M, aiocoap's default
PULL_PROTOCOLS = ["coap", "http"]

# %% [markdown]
# ## 1 · What a device can download with
#
# Start the lab and one device, and read its Firmware Update Object. Two resources say how it
# may be updated: **Protocol Support** (`/5/0/8`, one entry per protocol it can PULL with) and
# **Delivery Method** (`/5/0/9`: 0 PULL only, 1 PUSH only, 2 both). A server reads both before
# it chooses.

# %%
from labkit import Lab
from labkit.lwm2m.objects import ProtocolSupport
from labkit.plots import plot_download_progress

lab = Lab().start()
device = lab.add_device("sim-0001", firmware_version="1.0.0")
lesson.delivery_table(device.read("/5/0"))

# %% [markdown]
# This device takes both methods, and it can PULL over `coap://` and `http://`.
#
# ## 2 · Who picks the moment
#
# The lesson's two methods differ in **who decides when the download starts**:
#
# - **PUSH** — *"the LwM2M Server determines the moment to initiate the firmware download,
#   ideally based on the connectivity conditions"*. The server sends the image itself: CoAP
#   Block1 writes to `/5/0/0`, one block per request, each answered before the next
#   (`2.31 Continue`, the last one `2.04 Changed`).
# - **PULL** — the server *"provides the device with the address of the server containing the
#   firmware file known as the Package URI"* (a write to `/5/0/1`), and the device downloads it
#   *"at the earliest available opportunity"*: the device decides. Over CoAP it asks for one
#   block after the other (Block2 `GET`s); over HTTP it reads the image in one stream (TCP).
#
# Everything after the download is the same in both methods: State DOWNLOADED (2), Execute
# `/5/0/2`, the reboot, Update Result 1.
#
# For a PULL the image must be in a firmware repository. Publishing it gives one address per
# protocol; the PULL writes one of them to `/5/0/1`.

# %%
firmware = lesson.package("2.0.0", PACKAGE_SIZE)
lab.publish("app-2.0.0.bin", firmware)

# %% [markdown]
# ## 3 · The same package, five ways
#
# Each delivery gets its own device, all of them alike (same model, same firmware 1.0.0), named
# after how it is updated, so that each becomes one line of the plot below. First the PULLs:
# `lab.update(..., method="pull")` writes the Package URI and waits for the device.

# %%
outcomes = []
for protocol in PULL_PROTOCOLS:
    lab.add_device(f"pull-{protocol}", firmware_version="1.0.0")
    outcomes.append(lab.update(f"pull-{protocol}", firmware, method="pull", protocol=protocol))

# %% [markdown]
# Here is what the server sent to the CoAP PULL device, in order: it read `/3/0/3`, `/5/0/8`
# and `/5/0/9`, set up the observations of State and Result, **wrote the Package URI** and,
# once the device reported DOWNLOADED, executed Update.

# %%
lesson.log(lab.events(), "pull-coap", kinds=["request"], source="server").head(9)

# %% [markdown]
# Now the PUSHes, one per block size: 256 bytes is Zephyr's default
# (`CONFIG_LWM2M_COAP_BLOCK_SIZE`), 256-512 suits NB-IoT and LTE-M links, 1024 is aiocoap's
# default and the largest block CoAP over UDP allows.

# %%
for size in PUSH_BLOCK_SIZES:
    lab.add_device(f"push-{size}", firmware_version="1.0.0")
    outcomes.append(lab.update(f"push-{size}", firmware, method="push", block_size=size))

# %% [markdown]
# ## 4 · Durations compared
#
# One row per delivery: how it went (`blocks`, `bytes`), how long the download took
# (`download_s`, until State 2) and how long per block, then the other stages (checking the
# device, Execute, the reboot) and the total. All five ended with Update Result 1.

# %%
comparison = lesson.compare(outcomes)
comparison

# %% [markdown]
# The same downloads over time: one line per device, each starting at its first block.

# %%
ax = plot_download_progress(lab.events(), by="device")

# %% [markdown]
# What to read in it:
#
# - **Smaller blocks take longer.** Every block is one request and one answer, so the time per
#   block hardly changes with its size: 256-byte blocks need four times as many round trips as
#   1024-byte blocks. Here a round trip takes about a millisecond, on your own machine; on an
#   NB-IoT link it takes a second or more, and the difference becomes minutes.
# - **PULL over CoAP is in the same range as a PUSH with the same block size**: the same
#   blocks, only asked for by the device (Block2 `GET`s) instead of sent by the server
#   (Block1 `PUT`s).
# - **HTTP has no blocks**: one TCP stream, no round trip per block. That is why a device
#   with a TCP stack and a good link often pulls over HTTP(S) — and why Protocol Support has
#   to say whether it can.
# - **The rest is the same**: Execute and the reboot do not depend on how the bytes came.
#
# The real difference between the methods is not speed but **who picks the moment**: a PUSH
# is on the server's schedule (it can wait for a good link, see `/4`); a PULL is on the
# device's, which knows when it is awake, charged and connected.
#
# ## 5 · A scheme the device did not list
#
# A server must never send a Package URI with a scheme the device did not list in `/5/0/8`.
# Here is a device that can PULL over CoAP only:

# %%
coap_only = lab.add_device("coap-only", firmware_version="1.0.0", protocols=[ProtocolSupport.COAP])
lesson.delivery_table(coap_only.read("/5/0"))

# %% [markdown]
# Asked to PULL over HTTP, `update` reads `/5/0/8` first and refuses: the outcome is
# `REFUSED`, with the reason.

# %%
refused = lab.update("coap-only", firmware, method="pull", protocol="http")
refused

# %% [markdown]
# Nothing was written to `/5`. After our own read of `/5/0` for the table above, the server
# only read the device's firmware version, Protocol Support and Delivery Method, and the
# device is still IDLE with firmware 1.0.0.

# %%
lesson.log(lab.events(), "coap-only", kinds=["request"], source="server")

# %%
coap_only

# %% [markdown]
# ## Exercises
#
# Replace `None` with your answer and run the cell. `lesson.hint(name)` gives a hint.
#
# **1.** To start a PULL, the server writes one resource of `/5`. Which one?

# %%
pull_writes = None  # a path like "/5/0/3"
lesson.check("delivery.pull_resource", pull_writes)

# %% [markdown]
# **2.** In which method does the LwM2M Server pick the moment the download starts?

# %%
server_picks = None  # "push" or "pull"
lesson.check("delivery.who_decides", server_picks)

# %% [markdown]
# **3.** How many CoAP blocks does a 64 KiB image (65,536 bytes) need at 512-byte blocks?

# %%
blocks_at_512 = None  # a number
lesson.check("delivery.blocks", blocks_at_512)

# %% [markdown]
# ## Shut the lab down

# %%
lab.close()
