"""Typed errors of the pure LwM2M core.

Errors are split by whose fault they are (the h11 habit):

* :class:`RemoteProtocolError` -- the peer sent something that breaks the protocol
  (a malformed payload, a bad registration query). The adapters answer these with the
  CoAP code the error carries (4.00 unless said otherwise).
* :class:`LocalProtocolError` -- our own caller misused the core (asked to encode a value
  that the format cannot carry).

Every error carries ``coap_code``, the CoAP response code (as the text ``"c.dd"``) that an
adapter should answer with when the error comes out of handling a request.
"""

from __future__ import annotations


class Lwm2mError(Exception):
    """Base class of every error raised by :mod:`labkit.lwm2m`."""

    coap_code: str = "5.00"

    def __init__(self, message: str, *, coap_code: str | None = None) -> None:
        super().__init__(message)
        if coap_code is not None:
            self.coap_code = coap_code


class RemoteProtocolError(Lwm2mError):
    """The peer broke the protocol; answer with :attr:`coap_code` (default 4.00)."""

    coap_code = "4.00"


class LocalProtocolError(Lwm2mError):
    """Our own caller misused the core (a bug on this side, not the peer's)."""

    coap_code = "5.00"


class DecodeError(RemoteProtocolError, ValueError):
    """A payload could not be decoded in the content format it claims (answer 4.00)."""


class EncodeError(LocalProtocolError, ValueError):
    """A value cannot be represented in the requested content format."""


class UnsupportedContentFormat(RemoteProtocolError):
    """A content format this side does not decode (answer 4.15) or produce (4.06)."""

    coap_code = "4.15"


class PathError(RemoteProtocolError, ValueError):
    """A text path is not of the form ``/O``, ``/O/I``, ``/O/I/R`` or ``/O/I/R/RI``."""


class RegistrationError(RemoteProtocolError):
    """A Register/Update request is malformed (4.00) or refused (4.03, 4.12)."""


class FotaError(RemoteProtocolError):
    """A trigger that the /5 state machine does not allow in its current state.

    The machine's state is left unchanged. ``coap_code`` is the answer the device gives
    (4.05 Method Not Allowed or 4.00 Bad Request, following Anjay; see the digest, 1.4).
    """

    coap_code = "4.05"
