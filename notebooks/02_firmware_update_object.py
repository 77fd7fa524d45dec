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
# # 02 · The Firmware Update Object (`/5`)
#
# **What you will see.** The lesson's two tables — the four **States** of `/5/0/3` and the
# twelve **Update Results** of `/5/0/5` — and the state machine that connects them. You drive
# the machine by hand, one trigger at a time, and watch State and Result after each: a PULL
# from IDLE to a successful update. You then send a trigger that is not allowed (Execute
# Update while IDLE) and see it refused with CoAP `4.05 Method Not Allowed`, with nothing
# changed — first on the bare machine, then on a live simulated device over the network.
# You update the live device by hand, request by request, and plot its State timeline.
# Finally you see the whole machine as a diagram, drawn from the same table the devices run.

# %% tags=["parameters"]
from labkit.course import l02_firmware_update_object as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): smaller, quicker runs
PACKAGE_SIZE = 4_096 if FAST else 65_536  # bytes of the package pushed in section 4

# %% [markdown]
# ## 1 · The lesson's tables
#
# The **State** (`/5/0/3`) says where the device is in the four steps of the lesson:

# %%
lesson.state_table()

# %% [markdown]
# The **Update Result** (`/5/0/5`) says how the latest attempt ended. 0 means "nothing to
# report yet"; 1 is success; 2-9 say which step failed and why; 10 and 11 (object version
# 1.1) are a cancel and a deferral.

# %%
lesson.result_table()

# %% [markdown]
# ## 2 · The machine, by hand
#
# Every simulated device runs a `FirmwareUpdateMachine`: the `/5` rules as a table, with no
# network and no clock of its own. You hand it a **trigger** and the time, and it answers with
# what the device must do. Triggers are either requests from the server (`WriteUri` is a Write
# to `/5/0/1`, `ExecuteUpdate` an Execute of `/5/0/2`) or things the device finds out itself
# (`DownloadCompleted`, `InstallSucceeded`).

# %%
from labkit import Lab
from labkit.lwm2m.fota import (
    DownloadCompleted,
    ExecuteCancel,
    ExecuteUpdate,
    FirmwareUpdateMachine,
    FotaError,
    InstallSucceeded,
    WriteUri,
)
from labkit.lwm2m.fota_diagram import teaching_diagram
from labkit.plots import plot_state_timeline
from labkit.server import RequestFailed

machine = FirmwareUpdateMachine()
machine

# %% [markdown]
# A PULL starts when the server writes a Package URI (seed step 1). The machine moves to
# DOWNLOADING and asks the device to start the download:

# %%
machine.handle(WriteUri(uri="coap://127.0.0.1:5683/fw/app-2.0.0.bin"), now=1.0)

# %%
machine

# %% [markdown]
# The rest of the way in one go: `lesson.walk` hands the triggers over one by one and writes
# down the rule that applied (its id in the transition table), the answer to the server, and
# State and Result after each. Note that Result stays 0 until the very end (seed step 4).

# %%
lesson.walk(machine, [DownloadCompleted(), ExecuteUpdate(), InstallSucceeded()], start=2.0)

# %% [markdown]
# ## 3 · An illegal trigger
#
# Execute `/5/0/2` means "install the image you downloaded". In IDLE there is no image, so the
# machine refuses: it raises `FotaError` carrying the CoAP code the device answers, `4.05`.

# %%
idle = FirmwareUpdateMachine()
try:
    idle.handle(ExecuteUpdate(), now=1.0)
except FotaError as error:
    print(f"refused with {error.coap_code}: {error}")

# %% [markdown]
# A refused trigger changes nothing: State, Result and the Last State Change Time are as before.

# %%
idle

# %% [markdown]
# A few more triggers, to see refusals next to an accepted trigger that fails: Cancel while
# IDLE is refused (nothing to cancel), while a malformed URI is *accepted* (2.04) and reported
# as Update Result 7, "Invalid URI".

# %%
lesson.walk(idle, [ExecuteCancel(), ExecuteUpdate(), WriteUri(uri="not a uri")])

# %% [markdown]
# ## 4 · The same on a live device
#
# Now a simulated device on the network. The server first reads its State (0, IDLE) and
# firmware version. The device runs the very same machine, so Execute while IDLE gets the same
# answer — this time as a CoAP response to a real `POST /5/0/2`.

# %%
lab = Lab().start()
device = lab.add_device("sim-0001", firmware_version="1.0.0")
device.read("/5/0/3"), device.read("/3/0/3")  # State and firmware version, over the network

# %%
try:
    device.execute("/5/0/2")
except RequestFailed as error:
    print(f"the device answered {error.code}; State is still {device.read('/5/0/3')}")

# %% [markdown]
# The event table has both sides of that exchange: the server's request, the device's
# refusal and the answer that came back.

# %%
lesson.log(lab.events(), "sim-0001", kinds=["request", "response", "error"], last=3)

# %% [markdown]
# Now the legal way, by hand: PUSH a package by writing it to `/5/0/0` (State 1, then 2 after
# the last block), then Execute `/5/0/2` (State 3). The device reboots into the new firmware
# and registers again; we wait until it reports version 2.0.0.

# %%
device.write("/5/0/0", lesson.package("2.0.0", PACKAGE_SIZE))
device.state

# %%
device.execute("/5/0/2")
lab.wait_for(lambda: device.firmware_version == "2.0.0", timeout=30)
device

# %%
ax = plot_state_timeline(lab.events(), "sim-0001")

# %% [markdown]
# The refused Execute left no trace in the State lanes: the device stayed IDLE until the first
# block of the package arrived. As in notebook 00, most of the time is the reboot in UPDATING.
#
# ## 5 · The diagram, drawn from the table
#
# The picture below is generated from the same transition table the machine and the devices
# use, so it cannot disagree with them. One arrow per pair of States, labelled with the
# triggers that take it; the notes give the Update Results a State is entered with. Staying
# in a State (the next block, a refused URI, a deferral) draws no arrow. Every rule with its
# id, guard and result, and every refusal: `python -m labkit.lwm2m.fota_diagram --full`.

# %%
lesson.mermaid(teaching_diagram())

# %% [markdown]
# Every rule for one trigger, refusals included — here Execute Update in each State:

# %%
lesson.rules("ExecuteUpdate")

# %% [markdown]
# ## Exercises
#
# Replace `None` with your answer and run the cell. `lesson.hint(name)` gives a hint.
#
# **1.** In which State must the device be before Execute `/5/0/2` may start the installation?

# %%
state_before_execute = None  # a number 0-3 or a name like "IDLE"
lesson.check("fuo.execute_state", state_before_execute)

# %% [markdown]
# **2.** What Update Result code does a device report after an update was cancelled?

# %%
cancelled_result = None  # a number from 0 to 11
lesson.check("fuo.cancelled_result", cancelled_result)

# %% [markdown]
# **3.** What does Update Result 5 mean? Answer in a few words.

# %%
result_5_means = None  # e.g. "the device ran out of ..."
lesson.check("fuo.result_5", result_5_means)

# %% [markdown]
# ## Shut the lab down

# %%
lab.close()
