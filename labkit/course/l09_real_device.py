"""Lesson 09, a real device (``notebooks/09_real_device``): ``labkit`` commands run in the
background with a bound, as a real device's stand-in (:func:`labkit_command`,
:func:`run_in_background`, :func:`shell`, in :mod:`labkit.course.l09_background`), and the
lesson's exercises ``real.*``.
"""

from __future__ import annotations

from typing import Any

from labkit.course.common import fast_mode, free_port, objects_table
from labkit.course.exercises import as_count, as_path, check, hint, path_name, question, register
from labkit.course.l09_background import (
    STOP_GRACE,
    Background,
    CommandResult,
    labkit_command,
    run_in_background,
    shell,
)
from labkit.lwm2m.paths import Path

__all__ = [
    "STOP_GRACE",
    "Background",
    "CommandResult",
    "check",
    "fast_mode",
    "free_port",
    "hint",
    "labkit_command",
    "objects_table",
    "question",
    "run_in_background",
    "shell",
]


_BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)


_ZEPHYR_BLOCK = 256


@register(
    "real.zephyr_block_size",
    notebook="09_real_device",
    question=(
        "Which CoAP block size does Zephyr's LwM2M client use by default "
        "(CONFIG_LWM2M_COAP_BLOCK_SIZE)? Answer in bytes."
    ),
    hint="It is in the list of things to check on a real device, and in the fota command.",
    solution=256,
)
def _real_zephyr_block_size(answer: Any) -> tuple[bool, str]:
    size = as_count(answer)
    if size is None:
        return False, "the answer is a number of bytes, like 64"
    if size == _ZEPHYR_BLOCK:
        return True, (
            "256 bytes. Zephyr also pulls with that size, and a PUSH should use it too "
            "(`labkit fota --block-size 256`): 1024-byte blocks are the default of aiocoap "
            "and Wakaama, not of a Zephyr board."
        )
    if size not in _BLOCK_SIZES:
        return False, "CoAP block sizes are powers of two from 16 to 1024 bytes"
    if size == 1024:
        return False, "1024 is the default of aiocoap and Wakaama (and Anjay's cap), not Zephyr's"
    if size == 512:
        return False, "512 is a common choice on NB-IoT and LTE-M; Zephyr's default is smaller"
    return False, f"{size} bytes is allowed (Zephyr takes 64..1024), but it is not the default"


@register(
    "real.timeout_exit",
    notebook="09_real_device",
    question=(
        "You start `labkit fota` for a board that never registers (a wrong server address on "
        "the board). Which exit code does the command return?"
    ),
    hint="The exit codes are 0, 1, 2 and 3; the fota run above ended with one of them.",
    solution=3,
)
def _real_timeout_exit(answer: Any) -> tuple[bool, str]:
    from labkit.fota.outcome import EXIT_FAILURE, EXIT_SUCCESS, EXIT_TIMEOUT, EXIT_USAGE

    code = as_count(answer)
    if code is None:
        return False, "an exit code is a small whole number"
    if code == EXIT_TIMEOUT:
        return True, (
            f"{EXIT_TIMEOUT}: a timeout (the device never registered, got stuck, or never came "
            f"back after Execute). {EXIT_SUCCESS} is success, {EXIT_FAILURE} another final "
            f"result or a refusal, {EXIT_USAGE} a usage error."
        )
    meanings = {
        EXIT_SUCCESS: "success, Result 1",
        EXIT_FAILURE: "a final Update Result other than 1, or a refused request",
        EXIT_USAGE: "a usage error (bad arguments, an unreadable package)",
        124: "what coreutils' `timeout` returns; labkit fota has a code of its own",
    }
    if code in meanings:
        return False, f"{code} means {meanings[code]}; a board that never came is something else"
    return False, "labkit fota exits with 0, 1, 2 or 3"


_FW_VERSION = Path.of(3, 0, 3)


@register(
    "real.version_path",
    notebook="09_real_device",
    question=(
        "After an update, which resource do you read to be sure the board runs the new "
        "firmware, even on a client that forgets /5 when it reboots? Answer a path."
    ),
    hint="Not in /5: the Device object (/3) says what is running.",
    solution="/3/0/3",
)
def _real_version_path(answer: Any) -> tuple[bool, str]:
    path = as_path(answer)
    if path is None:
        return False, "a path looks like '/5/0/3': object, instance, resource"
    if path == _FW_VERSION:
        return True, (
            "/3/0/3, Firmware Version of the Device object: it names what runs. Zephyr and "
            "Wakaama do not keep /5 across the reboot and come back with State 0 and Result "
            "0, so a server must check /3/0/3 (labkit judges success by it then)."
        )
    reasons: dict[tuple[int, ...], str] = {
        (5, 0, 5): (
            "Update Result 1 says the attempt succeeded, but a client that does not keep /5 "
            "across the reboot comes back with 0 there"
        ),
        (5, 0, 3): "State is 0 (IDLE) both before and after an update",
        (5, 0, 7): "PkgVersion is what the package announced, not what runs",
        (5, 0, 6): "PkgName is the package's name, not what runs",
    }
    return False, reasons.get(path.ids) or path_name(path)
