"""labkit: an interactive firmware-update-over-the-air (FOTA) lab for LwM2M.

Start with :class:`labkit.Lab` (the runtime: server, simulated devices, recorder) in a
notebook or a script; the command line is ``labkit`` (see ``labkit --help``).
"""

from __future__ import annotations

import os

# Every socket labkit binds comes from labkit.coap.open_udp_context (no SO_REUSEPORT). This
# default is for aiocoap contexts created by *other* code in a labkit process (notebooks,
# benchmark references): aiocoap's udp6 server transport sets SO_REUSEPORT on Linux, and two
# such sockets bound to port 0 may share a port and split its datagrams. See labkit.coap.
os.environ.setdefault("AIOCOAP_REUSE_PORT", "0")

__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    # Lazy re-export: importing labkit stays cheap (no aiocoap, pandas) until Lab is used.
    if name == "Lab":
        from labkit.runtime import Lab

        return Lab
    raise AttributeError(f"module 'labkit' has no attribute {name!r}")


__all__ = ["Lab", "__version__"]
