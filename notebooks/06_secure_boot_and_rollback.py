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
# # 06 · Secure boot and rollback
#
# **What you will see.** Steps 3 and 4 of the lesson from the device's side. Step 3: the
# client updates "after validating the integrity and authenticity of the new firmware ...
# through a process called secure boot". Step 4: "if not, the device performs a rollback to
# the earlier firmware version". You sign a firmware image with the lab key, look inside it —
# header, version, the TLVs with its hash and signature — and verify it the way the device's
# bootloader (MCUboot) does. You then break it twice, one flipped byte and a foreign key, and
# watch the check refuse both, saying why. Three devices then get an update: the tampered
# image (refused before it ever runs: Result 5, old version), a good image on a device whose
# new firmware crashes at boot (rolled back: Result 8, old version), and a good image on a
# healthy device (Result 1, new version). You see which flash slot each one runs from, and
# the three State timelines side by side.

# %% tags=["parameters"]
from labkit.course import l06_secure_boot_and_rollback as lesson

FAST = lesson.fast_mode()  # True under `make test` (LABKIT_FAST=1): smaller, quicker runs
IMAGE_SIZE = 16_384 if FAST else 131_072  # payload bytes of the signed image
DEVICES = ["sb-tampered", "sb-boot-fail", "sb-healthy"]  # one device per outcome

# %% [markdown]
# ## 1 · The lab key
#
# Signing uses a key pair (Ed25519). The **private** part signs and stays with whoever builds
# firmware; the **public** part is what a device gets when it is built, so that its
# bootloader can check signatures. `lesson.lab_key()` makes a fresh pair for this session in
# a scratch folder; here is the public part, the whole of what a device needs to know.

# %%
import matplotlib.pyplot as plt
from labkit import Lab
from labkit.plots import plot_state_timeline
from labkit.repo.images import build_image, inspect_image, public_key, verify_image

key = lesson.lab_key()  # the private key: signs
trusted = public_key(keys_dir=key.parent)  # the public key: what devices trust
print(trusted.read_text())

# %% [markdown]
# ## 2 · A signed image, inside and out
#
# `build_image` makes a real MCUboot image with `imgtool`, the tool Zephyr and MCUboot devices
# use: a header (magic `0x96f3b83d`, sizes, version 2.0.0) padded to 512 bytes, the firmware
# payload, then a **TLV area** (type-length-value records): the SHA-256 of header and payload,
# the hash of the public key that signed it, and the Ed25519 signature over the hash.

# %%
image = build_image(version="2.0.0", size=IMAGE_SIZE, key=key)
inspect_image(image)

# %% [markdown]
# The first 32 bytes are the header: the magic `3d b8 f3 96` (little-endian), the header size
# `00 02` (0x200), the payload size, and the version bytes 2, 0.

# %%
lesson.wire(image[:32])

# %% [markdown]
# The bootloader's check, with the public key: structure, size, hash, then signature.

# %%
verify_image(image, key=trusted)

# %% [markdown]
# ## 3 · Two broken copies
#
# A **tampered** copy: one bit of one payload byte changed — a "patched" firmware, or a
# transfer or flash error. Header and TLVs are untouched. A **wrong-key** copy: the same
# firmware signed with another private key, one the devices do not trust.

# %%
tampered = lesson.flip_byte(image)
wrong_key = build_image(version="2.0.0", size=IMAGE_SIZE, key=key, broken="wrong-key")
images = {"signed": image, "tampered": tampered, "wrong key": wrong_key}
lesson.verify_table(images, key=trusted)

# %% [markdown]
# The tampered copy still carries the hash the signer computed (`hash_tlv`), but its bytes
# now hash to something else (`hash_now`): **bad hash**, and the signature is not even looked
# at. The wrong-key copy is intact — its hash matches — but its signature does not verify
# with the key the device trusts: **bad signature**. Only the first passes.
#
# ## 4 · Three devices, three updates
#
# Three devices start with firmware 1.0.0 in flash slot **a** and trust the lab key's public
# part. A download goes into slot **b**; after Execute Update the device reboots into its
# bootloader, which checks the image in slot b, swaps it in, and boots it in *test* mode; the
# new firmware runs its self-test and confirms itself — or it does not, and the bootloader
# swaps back at the next boot.

# %%
lab = Lab().start()
for endpoint in DEVICES:
    lab.add_device(endpoint, firmware_version="1.0.0", trusted_key=trusted)
lab.registrations()

# %% [markdown]
# The second device gets the `boot-fail` fault while it runs: whatever image it boots next
# fails its self-test.

# %%
lab.call(lambda: lab.device("sb-boot-fail").simulated.inject_fault("boot-fail"))

# %% [markdown]
# **The tampered image.** It downloads fine — the download-end check only looks at the type
# (the MCUboot magic is intact) — and the device reboots to install it. The bootloader
# refuses it: Update Result 5, and `fw_after` is still 1.0.0.

# %%
lab.update("sb-tampered", tampered, method="push")

# %% [markdown]
# **The good image, on a device whose new firmware crashes.** The bootloader accepts it and
# boots it; the self-test fails, the image never confirms itself, and the bootloader rolls
# back: Update Result 8, firmware 1.0.0 again.

# %%
lab.update("sb-boot-fail", image, method="push")

# %% [markdown]
# **The good image, on a healthy device.** Checked, booted, confirmed: Result 1 and 2.0.0.

# %%
lab.update("sb-healthy", image, method="push")

# %% [markdown]
# What the devices said about themselves on the way — the fault injected, the bootloader's
# refusal, the fault striking, the rollback:

# %%
events = lab.events()
said = events[events["kind"].isin(["fault", "note", "error"]) & (events["source"] == "device")]
for row in said.itertuples():
    print(f"{row.device:13} {row.kind:6} {row.detail}")

# %% [markdown]
# ## 5 · Which slot runs now
#
# What each device's two flash slots hold, and which one it runs. The healthy device runs the
# new image from slot b. The other two run slot a, the factory firmware 1.0.0: the tampered
# image was never booted, and the one that crashed was swapped out again. Both erased the
# image they refused, so that a later update starts from a clean slot.

# %%
lesson.flash_table(lab, DEVICES)

# %% [markdown]
# ## 6 · Side by side
#
# The three State timelines in one figure, one under the other, on the run's clock (the
# updates ran one after the other). All three pass through UPDATING and a reboot (dashed
# line) — the bootloader runs at that reboot. Only the healthy one comes back with a new
# firmware version (top lane); the tampered one comes back with 5, refused before it ran,
# the crashing one with 8, after it ran and was swapped out.

# %%
fig, axes = plt.subplots(3, 1, figsize=(10, 12))
for ax, endpoint in zip(axes, DEVICES, strict=True):
    plot_state_timeline(lab.events(), endpoint, ax=ax)
fig.tight_layout()

# %% [markdown]
# ## Exercises
#
# Replace `None` with your answer and run the cell. `lesson.hint(name)` gives a hint.
#
# **1.** Why is a tampered image never booted?

# %%
why_never_booted = None  # a few words
lesson.check("secureboot.never_booted", why_never_booted)

# %% [markdown]
# **2.** The devices run from slot a and download into slot b. Which slot runs after a
# rollback?

# %%
slot_after_rollback = None  # "a" or "b"
lesson.check("secureboot.slot_after_rollback", slot_after_rollback)

# %% [markdown]
# **3.** Which key does the bootloader use to verify an image's signature: the lab key's
# private part or its public part?

# %%
verifying_key = None  # "private" or "public"
lesson.check("secureboot.verifying_key", verifying_key)

# %% [markdown]
# ## Shut the lab down

# %%
lab.close()
