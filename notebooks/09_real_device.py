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
# # 09 · A real device
#
# **What you will see.** How to point a real LwM2M client — a board on your desk, Zephyr's
# LwM2M client sample built for your PC, or another vendor's demo client — at the lab, and how
# to update its firmware with the one-shot command `labkit fota`. The commands for real
# clients are given as text: this notebook cannot run them for you (and the course's automatic
# tests have no board). Instead, a **stand-in** plays the real device: `labkit device`, a
# simulated device in a *separate process*, which the lab knows only through the network,
# exactly as it would know a board. You see it register with the lab in this notebook and get
# a signed MCUboot image by PUSH in 256-byte blocks; then `labkit fota` updates a second
# stand-in from the command line, prints its `RESULT` line and exit code, and saves the run,
# whose State timeline you plot. The notebook ends with what to check on a real device.

# %% tags=["parameters"]
from labkit.course import l09_real_device as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): smaller, quicker runs
ENDPOINT = "board-1"  # the endpoint name the (stand-in) device registers with
IMAGE_SIZE = 16_384 if FAST else 131_072  # payload bytes of the signed image
BLOCK_SIZE = 256  # Zephyr's default CONFIG_LWM2M_COAP_BLOCK_SIZE
TIMEOUT = 45  # seconds: no command started here runs longer than this

# %% [markdown]
# ## 1 · Pointing a real client at the lab
#
# A real client needs three things: the server's **URI** (`coap://HOST:5683`, no security in
# the lab), its **endpoint name**, and a network path to the lab. The lab in this notebook
# listens on loopback (`127.0.0.1`) with a free port, which only programs on this computer can
# reach. For a board on your desk, start the server on an address the board can reach, on the
# standard port, for instance `Lab(host="0.0.0.0", port=5683)` in a notebook, or from a
# terminal:
#
# ```sh
# labkit serve --listen 0.0.0.0:5683            # watch registrations
# labkit fota --listen 0.0.0.0:5683 --endpoint EP --package app.signed.bin \
#             --method push --block-size 256 --timeout 120 --record data/runs
# ```
#
# and let UDP port 5683 through your firewall. Only one server process can own the port at a
# time: stop one before you start the other. For a PULL, listen on the PC's own address
# (`--listen 192.0.2.2:5683`) rather than `0.0.0.0`: the firmware repository then gets an
# address the board can reach, and so does the Package URI written to it. None of the
# commands in this section is run by the notebook or by the course's tests.
#
# **Zephyr, `samples/net/lwm2m_client`.** Built for `native_sim` it runs as a program on a
# Linux PC and reaches the host through the `zeth` interface that Zephyr's `net-tools`
# (`net-setup.sh`) creates, the host being `192.0.2.2` — which is also the sample's default
# server address. On a board, put your PC's address there.
#
# ```sh
# west build -b native_sim samples/net/lwm2m_client -- \
#   -DCONFIG_NET_SAMPLE_LWM2M_SERVER=\"coap://192.0.2.2:5683\" \
#   -DCONFIG_NET_SAMPLE_LWM2M_ID=\"zephyr-1\" \
#   -DCONFIG_LWM2M_FIRMWARE_UPDATE_OBJ_SUPPORT=y \
#   -DCONFIG_LWM2M_FIRMWARE_UPDATE_PULL_SUPPORT=y \
#   -DCONFIG_LWM2M_COAP_BLOCK_SIZE=256
# west build -t run
# ```
#
# Be aware that in the sample's source the firmware-update callback is a stub: it sets State
# 0 and Result 1 without installing anything or rebooting, so `/3/0/3` does not change. A
# real update needs MCUboot on the board and an image signed for it: a sysbuild build with
# MCUboot (`west build --sysbuild ... -- -DSB_CONFIG_BOOTLOADER_MCUBOOT=y`) signs the
# application as `zephyr.signed.bin`.
#
# A client on this computer reaches a server on loopback too. In the commands below
# `coap://127.0.0.1:5683` stands for the server's URI: with the lab of this notebook, which
# has a free port, put `lab.server_uri` there.
#
# **Anjay's demo client** (AVSystem), after building Anjay:
#
# ```sh
# ./output/bin/demo --endpoint-name anjay-1 --server-uri coap://127.0.0.1:5683
# ```
#
# Its Firmware Update object takes only packages with the demo's own header (an `ANJAY_FW`
# magic, a header version, a forced-error field and the CRC-32 of the payload); any other
# package ends with Update Result 6, *Unsupported package type* — a useful result to see.
#
# **Leshan's client demo** (Eclipse, Java):
#
# ```sh
# java -jar leshan-client-demo.jar -u coap://127.0.0.1:5683 -n leshan-1
# ```
#
# Check which objects it announces (`lesson.objects_table(lab.wait_for_registration("leshan-1"))`):
# if `/5` is not among them there is nothing to update, but registration, Read and Observe
# (notebook 01) work all the same.
#
# ## 2 · A stand-in for the device
#
# Real boards check the signature of an image before they boot it (MCUboot, the lesson's
# *secure boot*). So the stand-in gets what a board would get: an MCUboot image, version 2.0.0,
# signed with a key made for this run. The stand-in runs in the same scratch folder and trusts
# the key in its `data/keys/` — just as a board trusts the key it was built with.

# %%
import tempfile
from pathlib import Path

from labkit import Lab
from labkit.plots import plot_state_timeline
from labkit.record import read_run
from labkit.repo.images import build_image, ensure_key, inspect_image

# %%
scratch = tempfile.TemporaryDirectory(prefix="labkit-09-")
work = Path(scratch.name)
key = ensure_key(keys_dir=work / "data" / "keys")
image = build_image(version="2.0.0", size=IMAGE_SIZE, out=work / "app-2.0.0.bin", key=key)
inspect_image(image)

# %% [markdown]
# Start the lab, then the stand-in: `labkit device --server <the lab's URI> --endpoint board-1`,
# in the background. This is the command you replace by your board (or one of the clients
# above) — everything after it is the same for a real device.

# %%
lab = Lab().start()
device_command = lesson.labkit_command(f"device --server {lab.server_uri} --endpoint {ENDPOINT}")
lesson.shell(device_command)

# %% [markdown]
# The next cell runs the whole visit: it starts the stand-in, waits for its registration, shows
# the objects it announced (the first thing to check on a real client: is `/5` there?), PUSHes
# the signed image in 256-byte blocks and waits for the outcome. Leaving the `with` block
# stops the stand-in whatever happened (it de-registers); it could not outlive `TIMEOUT` anyway.

# %%
with lesson.run_in_background(device_command, cwd=work, timeout=TIMEOUT) as stand_in:
    registration = lab.wait_for_registration(ENDPOINT, timeout=20)
    announced = lesson.objects_table(registration)
    outcome = lab.update(ENDPOINT, image, method="push", block_size=BLOCK_SIZE, timeout=20)
announced

# %%
outcome

# %% [markdown]
# What the stand-in printed meanwhile, on its side of the network: its registration, each
# State it went through, the reboot into the new image, Update Result 1, the new version, its
# second registration and, when it was stopped, its de-registration.

# %%
stand_in.result

# %% [markdown]
# The server's side of the same story. The lab saw only what came over the network —
# notifications and reads — as it would for a board.

# %%
ax = plot_state_timeline(lab.events(), ENDPOINT)

# %% [markdown]
# ## 3 · The one-shot command: `labkit fota`
#
# In the lab's terminal (or a CI job) you update one device with one command: `labkit fota`
# starts a server, waits for the endpoint to register, updates it, waits for it to come back,
# prints one line per stage and, last, `RESULT <code> <NAME>`, and exits with 0 (success), 1
# (another result, or refused), 2 (usage error) or 3 (timeout). `--record` saves the run.
# Here it listens on a free loopback port, in the scratch folder (the package and `runs/` are
# there), and a second stand-in registers to it.

# %%
port = lesson.free_port()
fota_command = lesson.labkit_command(
    f"fota --listen 127.0.0.1:{port} --endpoint board-2 --package app-2.0.0.bin"
    f" --method push --block-size {BLOCK_SIZE} --timeout 20 --record runs"
)
board_command = lesson.labkit_command(f"device --server coap://127.0.0.1:{port} --endpoint board-2")
lesson.shell(fota_command)

# %% [markdown]
# The command waits for the device; the stand-in starts once the server is listening. Both are
# stopped when the `with` blocks end. The exit code is 0 and the last line `RESULT 1 SUCCESS`
# when the update worked.

# %%
with lesson.run_in_background(fota_command, cwd=work, timeout=TIMEOUT) as fota:
    fota.wait_for_line("listening on", timeout=20)
    with lesson.run_in_background(board_command, cwd=work, timeout=TIMEOUT):
        fota_result = fota.wait()
fota_result

# %% [markdown]
# The two lines a script looks at:

# %%
fota_result.result_line, fota_result.exit_code

# %% [markdown]
# `--record` saved the run (the server's event table and a manifest) in `runs/`. Loading it
# gives the same kind of table the lab keeps, so the same plots work on a run made from the
# command line, on a real board, yesterday. The timeline starts when the server did: the
# empty stretch before the first registration is the stand-in starting up.

# %%
run = read_run(next((work / "runs").iterdir()))
run

# %%
ax = plot_state_timeline(run.events, "board-2")

# %% [markdown]
# ## 4 · What to check on a real device
#
# - **It registers from where you expect.** `lab.registrations()` shows its address; every
#   request goes back to that address and port, from the server's own socket (a client such
#   as Anjay drops packets from anywhere else). After its reboot it registers again from a
#   new port, and the observations have to be made again — `update` does that.
# - **`/5` is announced**, with its version (`</5>;ver=1.1` has Cancel and Severity; Zephyr
#   announces 1.0), and `/5/0/8` and `/5/0/9` say what you plan to use.
# - **The block size fits the client.** Zephyr uses 256 bytes (`CONFIG_LWM2M_COAP_BLOCK_SIZE`),
#   aiocoap and Wakaama 1024: push with `--block-size 256` to a Zephyr board.
# - **The image is one the board boots**: built and signed for it (MCUboot), smaller than its
#   slot. Otherwise expect Result 2 (flash), 5 (integrity) or 6 (package type).
# - **`/3/0/3` changes.** The Firmware Version after the reboot is the real proof.
# - **The result survives the reboot — or not.** Anjay can keep State and Result across it
#   and report Result 1; Zephyr and Wakaama come back with State 0 and Result 0, and only
#   `/3/0/3` tells you it worked (`labkit fota` then judges by it).
# - **Timeouts are long enough** for a slow link and a slow flash: `--timeout` is the time
#   without progress, not the total.
#
# ## Exercises
#
# Replace `None` with your answer and run the cell. `lesson.hint(name)` gives a hint.
#
# **1.** Which CoAP block size does Zephyr's LwM2M client use by default?

# %%
zephyr_block_size = None  # bytes
lesson.check("real.zephyr_block_size", zephyr_block_size)

# %% [markdown]
# **2.** `labkit fota` waited for a board that never registered. Which exit code does it return?

# %%
exit_code_never_registered = None  # a number
lesson.check("real.timeout_exit", exit_code_never_registered)

# %% [markdown]
# **3.** Which resource do you read to be sure the board runs the new firmware, even on a
# client that forgets `/5` when it reboots?

# %%
proof_path = None  # a path like "/5/0/3"
lesson.check("real.version_path", proof_path)

# %% [markdown]
# ## Shut the lab down
#
# Closing the lab stops its server; the scratch folder with the key, the image and the saved
# run is deleted.

# %%
lab.close()
scratch.cleanup()
