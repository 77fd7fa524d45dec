"""FOTA orchestration: update one device (PUSH or PULL), and the ``labkit fota`` command.

``fota/`` decides what to do next; the server only translates. :func:`update` drives one
device through the lesson's four steps over :class:`~labkit.server.LwM2MServer` and returns an
:class:`Outcome`; :mod:`labkit.fota.plan` holds the pure decisions (which scheme, what a
State/Result pair means) and :mod:`labkit.fota.cli` the command.
"""

from __future__ import annotations

from labkit.fota.outcome import Outcome
from labkit.fota.plan import (
    Capabilities,
    Plan,
    Step,
    Verdict,
    capabilities,
    interpret_cancel,
    interpret_download,
    interpret_update,
    package_version,
    plan_delivery,
)
from labkit.fota.update import cancel, reset, update

__all__ = [
    "Capabilities",
    "Outcome",
    "Plan",
    "Step",
    "Verdict",
    "cancel",
    "capabilities",
    "interpret_cancel",
    "interpret_download",
    "interpret_update",
    "package_version",
    "plan_delivery",
    "reset",
    "update",
]
