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
# # 01 · LwM2M basics
#
# **What you will see.** How an LwM2M server and a device talk before any firmware moves. A
# simulated device **registers** and you read what its registration says; you **Read** the
# three objects the lesson relies on — Device (`/3`), Connectivity Monitoring (`/4`) and
# Firmware Update (`/5`); you look at the *same* `/5/0` read on the wire in three content
# formats — TLV, SenML JSON and SenML CBOR — byte by byte, next to the decoded values; you
# **Observe** the radio signal strength (`/4/0/2`) while it changes and plot it; and you
# **Discover** which resources `/5/0` has. These are the building blocks of every FOTA run:
# the server reads `/4` to choose the moment for a PUSH, and observes `/5` to follow it.

# %% tags=["parameters"]
from labkit.course import l01_lwm2m_basics as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): smaller, quicker runs
RSSI_STEPS = [-97, -108, -92] if FAST else [-90, -97, -104, -110, -101, -92, -80]  # dBm
STEP_SECONDS = 0.1 if FAST else 1.0  # time between two changes of the signal strength

# %% [markdown]
# ## 1 · Registration
#
# A device announces itself with a CoAP `POST /rd` (the *Register* operation). The query
# string carries who it is and how to reach it; the payload lists its objects in CoRE link
# format (`</3/0>,</5/0>...`). The server answers `2.01 Created` with a location, `/rd/1`, that
# the device uses for its later *Updates*.

# %%
import time

from labkit import Lab
from labkit.lwm2m.formats import format_links
from labkit.plots import plot_link_decisions

lab = Lab().start()
device = lab.add_device("sim-0001")

# %%
lesson.registration_table(device.registration)

# %% [markdown]
# The objects it announced, with their versions. `/0` (Security) is never announced: it holds
# the device's keys and the server may not read it.

# %%
lesson.objects_table(device.registration)

# %% [markdown]
# ## 2 · Reading objects
#
# A *Read* is a CoAP `GET` on a path: object / instance / resource. One resource gives one
# value, the firmware version for example:

# %%
device.read("/3/0/3")

# %% [markdown]
# Reading an instance gives all its readable resources. **Device** (`/3/0`): who made it, its
# firmware version, battery, memory...

# %%
lesson.values_table(device.read("/3/0"))

# %% [markdown]
# **Connectivity Monitoring** (`/4/0`): the radio link. The lesson's PUSH method relies on
# two of these: Radio Signal Strength (`/4/0/2`, dBm) and Link Quality (`/4/0/3`).

# %%
lesson.values_table(device.read("/4/0"))

# %% [markdown]
# **Firmware Update** (`/5/0`): State (`/5/0/3`) and Update Result (`/5/0/5`) from the
# lesson's tables, the Package URI for a PULL (`/5/0/1`), and which protocols (`/5/0/8`) and
# delivery methods (`/5/0/9`: 0 pull, 1 push, 2 both) the device supports.

# %%
lesson.values_table(device.read("/5/0"))

# %% [markdown]
# ## 3 · The same read, three ways on the wire
#
# The server chooses the encoding of an answer with CoAP's *Accept* option, by
# **Content-Format** number: 11542 for OMA TLV, 110 for SenML JSON, 112 for SenML CBOR. Below
# is `/5/0` read three times: each column shows the bytes that crossed the network and, under
# them, the values the server decoded. The values are the same; the bytes are not.

# %%
formats = lesson.read_formats(device, "/5/0")
formats

# %%
formats.frame()

# %% [markdown]
# **TLV** (type-length-value) is the most compact: each resource is a type byte, its id, and
# its value in binary. The type byte says what follows — bits 7-6: a resource (`11`), a
# multiple resource (`10`) or one of its instances (`01`); bits 2-0: a short length. So
# `c1 03 00` is "resource 3, one byte, value 0": State = IDLE.

# %%
lesson.tlv_fields(formats.payload(11542), "/5/0")

# %% [markdown]
# ## 4 · Observe
#
# Instead of asking again and again, the server can *Observe* a resource: a `GET` with the
# Observe option. The device then sends a **notification** whenever the value changes. Here we
# play the radio: `set_value` changes the simulated signal strength, and the server is
# notified each time.

# %%
rssi = device.observe("/4/0/2")
rssi.value

# %%
for dbm in RSSI_STEPS:
    device.set_value("/4/0/2", dbm)
    time.sleep(STEP_SECONDS)

# %% [markdown]
# Every notification became a row of the event table. The plot draws the signal strength the
# server saw over time (there are no PUSH decisions yet: they come in notebook 04).

# %%
print(f"{rssi.count} notifications, the last one says {rssi.value} dBm")
ax = plot_link_decisions(lab.events(), "sim-0001")

# %%
rssi.cancel()

# %% [markdown]
# ## 5 · Discover
#
# *Discover* (a `GET` asking for `application/link-format`) lists what an instance has,
# without the values. It tells a server which `/5` resources a device implements — before it
# tries to cancel an update with `/5/0/10`, say.

# %%
links = device.discover("/5/0")
print(format_links(links))

# %%
lesson.links_table(links)

# %% [markdown]
# ## Exercises
#
# Replace `None` with your answer and run the cell. `lesson.hint(name)` gives a hint.
#
# **1.** Which path holds the Radio Signal Strength that a server looks at before it decides
# to PUSH? Answer like `"/3/0/3"`.

# %%
rssi_path = None
lesson.check("basics.rssi_path", rssi_path)

# %% [markdown]
# **2.** Which of the three formats put `/5/0` on the wire in the fewest bytes?

# %%
smallest_format = None  # a name like "SenML JSON", or a Content-Format number
lesson.check("basics.smallest_format", smallest_format)

# %% [markdown]
# **3.** Which query parameter of the Register request tells the server how long to keep the
# registration if no Update arrives?

# %%
lifetime_parameter = None  # e.g. "ep"
lesson.check("basics.lifetime_parameter", lifetime_parameter)

# %% [markdown]
# ## Shut the lab down

# %%
lab.close()
