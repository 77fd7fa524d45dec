"""Lesson 05, failure modes (``notebooks/05_failure_modes``): every Update Result produced on
purpose (:data:`FAILURE_CASES`, :func:`failure_matrix`, in :mod:`labkit.course.l05_matrix`),
what an operator does about each (:func:`operator_guide`), and the lesson's exercises
``failures.*``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from labkit.course.common import NEW_VERSION, OLD_VERSION, fast_mode, lab_key, log, package
from labkit.course.exercises import (
    as_enum,
    check,
    hint,
    plain_words,
    question,
    register,
    result_text,
)
from labkit.course.l05_matrix import FAILURE_CASES, FailureCase, add_devices_for, failure_matrix
from labkit.lwm2m.objects import UpdateResult

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "FAILURE_CASES",
    "NEW_VERSION",
    "OLD_VERSION",
    "FailureCase",
    "add_devices_for",
    "check",
    "failure_matrix",
    "fast_mode",
    "hint",
    "lab_key",
    "log",
    "operator_guide",
    "package",
    "question",
]


#: Per Update Result: the likely cause in the field, and what an operator does next.
_OPERATOR_ADVICE: dict[int, tuple[str, str]] = {
    0: (
        "no attempt has ended yet, or the state machine was reset",
        "nothing to judge yet: wait for the attempt, or start one",
    ),
    1: (
        "the new image booted, passed its self-test and confirmed itself",
        "check /3/0/3 names the new version, then move on to the next wave",
    ),
    2: (
        "the package is larger than the download slot, or the slot is full (logs, data)",
        "ship a smaller image (a delta, fewer features) or free storage first; retrying the "
        "same package fails the same way",
    ),
    3: (
        "no RAM buffer for a download block: too large blocks or a busy application",
        "retry with smaller blocks (256 B), at a quieter moment, or after a reboot",
    ),
    4: (
        "the radio link dropped during the download (coverage, sleep, a timeout)",
        "retry later, when /4/0/2 and /4/0/3 show a good link; a PULL can resume",
    ),
    5: (
        "the image failed its integrity check: corrupted on the way or in flash, tampered "
        "with, or signed with a key the device does not trust",
        "rebuild or re-sign with the right key, check the repository copy's hash, then "
        "retry; never push the same file again unchecked",
    ),
    6: (
        "the file is not a firmware image for this device (wrong build, wrong file)",
        "publish the image built for this device type (MCUboot magic in its header)",
    ),
    7: (
        "the Package URI cannot be resolved or the repository answers 4.04 / 404",
        "fix the URI, publish the file, and check the device can reach the repository",
    ),
    8: (
        "the new image was installed but failed at boot (self-test, crash); the "
        "bootloader rolled back to the old image",
        "stop the campaign: the image itself is bad; debug it on a bench device first",
    ),
    9: (
        "the URI's scheme is one the device cannot download with (see /5/0/8)",
        "read /5/0/8 and use a scheme it lists (coap:// for a CoAP-only device), or PUSH",
    ),
    10: (
        "the update was cancelled (Execute /5/0/10) before the install started",
        "nothing is broken; start a new attempt when you want the update",
    ),
    11: (
        "the user postponed the update, within Maximum Defer Period (/5/0/13)",
        "wait: the device installs when the user accepts or the period ends",
    ),
}


def operator_guide() -> pd.DataFrame:
    """What each Update Result means and what an operator does about it.

    Returns
    -------
    DataFrame
        Columns ``code`` (0..11), ``name`` (SUCCESS ...), ``description`` (the lesson's
        wording), ``likely_cause`` and ``next_step``; one row per code, RangeIndex.
    """
    import pandas as pd

    rows = [
        {
            "code": int(r),
            "name": r.name,
            "description": r.description,
            "likely_cause": _OPERATOR_ADVICE[int(r)][0],
            "next_step": _OPERATOR_ADVICE[int(r)][1],
        }
        for r in UpdateResult
    ]
    columns = ["code", "name", "description", "likely_cause", "next_step"]
    return pd.DataFrame(rows, columns=columns)


@register(
    "failures.integrity_code",
    notebook="05_failure_modes",
    question=(
        "Which Update Result code means that the downloaded image failed its integrity check "
        "(a bad hash or signature)?"
    ),
    hint="Two devices of the failure matrix reported it: the bit flip and the wrong key.",
    solution=5,
)
def _failures_integrity_code(answer: Any) -> tuple[bool, str]:
    result = as_enum(answer, UpdateResult)
    if result is None:
        return False, "Update Result is a number from 0 to 11 (or a name like SUCCESS)"
    if result is UpdateResult.INTEGRITY_CHECK_FAILURE:
        return True, (
            f"{result_text(result)}. The bootloader recomputes the image's SHA-256 and checks "
            "its signature before it boots it; a flipped bit or a foreign key fails that, the "
            "image is never booted and the old firmware keeps running."
        )
    if result is UpdateResult.UNSUPPORTED_PACKAGE_TYPE:
        return False, (
            f"{result_text(result)} is for a file that is not an image at all; an image "
            "whose check fails is another code"
        )
    if result is UpdateResult.UPDATE_FAILED:
        return False, (
            f"{result_text(result)}: the image passed its check, booted, and failed later "
            "(rolled back)"
        )
    return False, f"{result_text(result)} is another outcome; see the failure matrix"


def _fault_named(answer: Any) -> str | None:
    """The one fault name an answer mentions ("no-ram", "no ram", "NO_RAM"), else None."""
    from labkit.sim.faults import FAULTS

    if not isinstance(answer, str):
        return None
    words = f" {plain_words(answer)} "
    found = [f for f in FAULTS if f" {plain_words(f)} " in words]
    return found[0] if len(found) == 1 else None


@register(
    "failures.fault_for_3",
    notebook="05_failure_modes",
    question="Which fault made a device of the failure matrix report Update Result 3?",
    hint="Find the row whose observed code is 3 and read its fault column.",
    solution="no-ram",
)
def _failures_fault_for_3(answer: Any) -> tuple[bool, str]:
    from labkit.sim.faults import FAULT_RESULTS

    fault = _fault_named(answer)
    if fault is None:
        if isinstance(answer, int) and not isinstance(answer, bool) and answer == 3:
            return False, "3 is the code itself; the question asks for the fault's name"
        return False, "answer with a fault name from the matrix, e.g. 'link-drop'"
    code = FAULT_RESULTS[fault]
    if code == int(UpdateResult.OUT_OF_RAM):
        return True, (
            f"{fault}: the device had no RAM buffer for a download block, so the download "
            "stopped at the first block with 3 (“Out of RAM during downloading process”). "
            "A block larger than the buffer does the same."
        )
    if code is None:
        return False, f"{fault} leaves the device consistent (1, 4 or 8), never 3"
    return False, f"{fault} leads to {result_text(UpdateResult(code))}, not to 3"


_ROLLBACK_WORDS = ("roll", "revert", "fall back", "fallback", "old image", "previous image")


_BOOT_WORDS = ("self test", "boot", "crash", "did not start", "failed to start")


@register(
    "failures.result_8_old_version",
    notebook="05_failure_modes",
    question=(
        "A device reports Update Result 8 and /3/0/3 still names the old version. What "
        "happened to the new image? Answer in a few words."
    ),
    hint="Look at the boot-fail device: its story and its firmware lane.",
    solution="it booted, failed its self-test and the bootloader rolled back to the old image",
)
def _failures_result_8(answer: Any) -> tuple[bool, str]:
    if not isinstance(answer, str) or not plain_words(answer):
        return False, "answer in a few words, as text"
    words = plain_words(answer)
    if any(w in words for w in _ROLLBACK_WORDS) or (
        any(w in words for w in _BOOT_WORDS) and "fail" in words
    ):
        return True, (
            "the image was installed and booted in test mode, failed (its self-test), never "
            "confirmed itself, and the bootloader rolled back to the old slot: the device runs "
            "the old version again and reports 8 (“Firmware update failed”)."
        )
    if any(w in words for w in ("hash", "signature", "integrity", "tamper", "corrupt")):
        return False, (
            "an image that fails its hash or signature check is never booted and gives 5; "
            "8 comes after the check passed"
        )
    if any(w in words for w in ("download", "link", "connection", "ram", "flash", "space")):
        return False, "a failed download ends with 2, 3 or 4 before any install; 8 comes later"
    if "cancel" in words or "defer" in words:
        return False, "a cancel gives 10 and a deferral 11; nothing was installed then"
    return False, "8 is reported after the install: what did the bootloader do then?"
