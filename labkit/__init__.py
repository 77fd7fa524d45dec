"""labkit: an interactive firmware-update-over-the-air (FOTA) lab for LwM2M.

Start with :class:`labkit.Lab` (the runtime: server, simulated devices, recorder) in a
notebook or a script; the command line is ``labkit`` (see ``labkit --help``).
"""

from __future__ import annotations

import os

# aiocoap's udp6 transport sets SO_REUSEPORT before bind() on Linux; with it, two sockets bound
# to port 0 may be handed the same port and the kernel load-balances datagrams between them
# (seen with 100 simulated devices registering at once). Every labkit socket wants its own
# port, so turn it off for this process unless the user chose otherwise.
os.environ.setdefault("AIOCOAP_REUSE_PORT", "0")

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy re-export: importing labkit stays cheap (no aiocoap, pandas) until Lab is used.
    if name == "Lab":
        from labkit.runtime import Lab

        return Lab
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


__all__ = ["Lab", "__version__"]
