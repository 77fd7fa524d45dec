"""Where libcoap's command-line tools are (Debian ``libcoap3-bin``), for the interop tests.

Debian installs them with a TLS suffix (``coap-client-notls``, ``-gnutls``, ``-openssl``) and
no plain ``coap-client`` unless alternatives are set up; we take whichever exists. ``None``
means the tool is absent and the test skips.
"""

from __future__ import annotations

import shutil

_SUFFIXES = ("", "-notls", "-gnutls", "-openssl")


def find_libcoap_tool(tool: str) -> str | None:
    """The path of ``coap-client`` or ``coap-server`` under any of its Debian names."""
    for suffix in _SUFFIXES:
        path = shutil.which(tool + suffix)
        if path is not None:
            return path
    return None


COAP_CLIENT = find_libcoap_tool("coap-client")
COAP_SERVER = find_libcoap_tool("coap-server")
