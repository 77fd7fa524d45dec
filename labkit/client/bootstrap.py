"""The client side of the LwM2M Bootstrap Interface, on the device's object store (pure).

LwM2M 1.1 (TS Core 6.1, E.1): a device that has only a Bootstrap-Server account in /0 sends
``POST /bs?ep=EP`` to it; the Bootstrap server then configures the device with

* Bootstrap-Discover (``GET /`` or ``GET /O`` with Accept 40): the object instances, with the
  ``lwm2m=`` version first and ``ssid=`` on /0 and /1 instances;
* Bootstrap-Delete (``DELETE /``, ``/O`` or ``/O/I``): removes instances -- never the
  Bootstrap-Server account (/0 with resource 1 true) nor /3 Device (nor, here, /4 and /5,
  which model the hardware);
* Bootstrap-Write (``PUT /O/I`` or ``/O/I/R``): creates or overwrites instances of /0 and /1
  (and others), including the otherwise hidden /0 Security;
* Bootstrap-Finish (``POST /bs``): the device checks the configuration is usable (a
  management /0 account with a URI and a /1 instance of the same Short Server ID) and answers
  2.04, or 4.06 Not Acceptable.

This module decides those operations on an :class:`~labkit.client.store.ObjectStore`; the
aiocoap adapter (:mod:`labkit.client.device`) decodes the payloads and sends the answers. It
never opens a socket. Accounts: :func:`accounts` returns the /0 instances split into the
bootstrap account and the management accounts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from labkit.client.store import ObjectStore, OperationError
from labkit.lwm2m.formats.linkformat import Link
from labkit.lwm2m.paths import Path
from labkit.lwm2m.values import Value

__all__ = [
    "Account",
    "accounts",
    "bootstrap_delete",
    "bootstrap_discover",
    "bootstrap_write",
    "finish_check",
]

#: Device is never deleted (spec); /4 and /5 are the simulated hardware and stay too (a lab
#: simplification: their instances cannot be re-created by a bootstrap write).
_KEEP_OBJECTS = frozenset({3, 4, 5})


@dataclass(frozen=True)
class Account:
    """One /0 Security instance: a server the device may talk to."""

    instance: int
    uri: str
    bootstrap: bool
    mode: int  # 0 PSK, 1 RPK, 2 Certificate, 3 NoSec
    identity: bytes
    key: bytes
    ssid: int | None

    def __repr__(self) -> str:  # never the key
        return (
            f"Account(/0/{self.instance} {self.uri} bootstrap={self.bootstrap} mode={self.mode} "
            f"identity={self.identity!r} ssid={self.ssid})"
        )


def accounts(store: ObjectStore) -> tuple[Account | None, list[Account]]:
    """(the Bootstrap-Server account or None, the management accounts by instance id)."""
    bs: Account | None = None
    servers: list[Account] = []
    for iid in store.instances(0):

        def get(rid: int, default: object, iid: int = iid) -> object:
            return _get(store, Path.of(0, iid, rid), default)

        ssid = get(10, None)
        account = Account(
            instance=iid,
            uri=str(get(0, "")),
            bootstrap=bool(get(1, False)),
            mode=int(get(2, 3)),  # type: ignore[call-overload]
            identity=bytes(get(3, b"") or b""),  # type: ignore[call-overload]
            key=bytes(get(5, b"") or b""),  # type: ignore[call-overload]
            ssid=None if ssid is None else int(ssid),  # type: ignore[call-overload]
        )
        if account.bootstrap and bs is None:
            bs = account
        elif not account.bootstrap:
            servers.append(account)
    return bs, servers


def _get(store: ObjectStore, path: Path, default: object = None) -> object:
    try:
        return store.get(path)
    except KeyError:
        return default


def _is_bootstrap_account(store: ObjectStore, oid: int, iid: int) -> bool:
    return oid == 0 and bool(_get(store, Path.of(0, iid, 1), False))


def bootstrap_delete(store: ObjectStore, path: Path) -> list[Path]:
    """Delete what ``path`` names (/, /O or /O/I); returns the instances removed."""
    if path.level > 2:
        raise OperationError.bad_request("Bootstrap-Delete takes /, /O or /O/I")
    oids = [path.object_id] if path.object_id is not None else store.objects()
    removed: list[Path] = []
    for oid in oids:
        assert oid is not None
        if oid in _KEEP_OBJECTS or oid not in store.objects():
            continue
        iids = [path.instance_id] if path.instance_id is not None else store.instances(oid)
        for iid in iids:
            assert iid is not None
            if iid not in store.instances(oid) or _is_bootstrap_account(store, oid, iid):
                continue
            store.remove_instance(oid, iid)
            removed.append(Path.of(oid, iid))
    return removed


def bootstrap_write(store: ObjectStore, path: Path, values: Mapping[Path, Value]) -> list[Path]:
    """Create or overwrite the instances in ``values`` (paths at or below ``path``)."""
    if path.level < 1 or path.level > 3:
        raise OperationError.bad_request("Bootstrap-Write takes /O, /O/I or /O/I/R")
    if path.object_id not in store.objects():
        raise OperationError.not_found(f"object {path.object_id}")
    by_instance: dict[tuple[int, int], dict[int, Value]] = {}
    for p, value in values.items():
        if not p.startswith(path) or p.level < 3:
            raise OperationError.bad_request(f"{p} is not a resource below {path}")
        assert p.object_id is not None and p.instance_id is not None and p.resource_id is not None
        by_instance.setdefault((p.object_id, p.instance_id), {})[p.resource_id] = value
    written: list[Path] = []
    for (oid, iid), resources in by_instance.items():
        merged: dict[int, object] = {}
        if iid in store.instances(oid) and path.level == 3:  # one resource: keep the rest
            for rid in list(store.resource_ids(oid, iid)):
                merged[rid] = store.get(Path.of(oid, iid, rid))
        merged.update(resources)
        try:
            store.add_instance(oid, iid, merged)
        except (KeyError, TypeError, ValueError) as exc:
            raise OperationError.bad_request(f"Bootstrap-Write of /{oid}/{iid}: {exc}") from None
        written.append(Path.of(oid, iid))
    return written


def bootstrap_discover(store: ObjectStore, path: Path, version: str = "1.1") -> list[Link]:
    """The links of a Bootstrap-Discover on / or /O (``lwm2m=`` first on /)."""
    if path.level > 1:
        raise OperationError.bad_request("Bootstrap-Discover takes / or /O")
    links: list[Link] = [Link("", {"lwm2m": version})] if path.is_root else []
    oids = store.objects() if path.object_id is None else [path.object_id]
    ssid_of_instance: dict[tuple[int, int], int] = {}
    for account in accounts(store)[1]:
        if account.ssid is not None:
            ssid_of_instance[(0, account.instance)] = account.ssid
    for iid in store.instances(1) if 1 in store.objects() else []:
        ssid = _get(store, Path.of(1, iid, 0))
        if ssid is not None:
            ssid_of_instance[(1, iid)] = int(ssid)  # type: ignore[call-overload]
    for oid in oids:
        assert oid is not None
        if oid not in store.objects():
            raise OperationError.not_found(f"object {oid}")
        iids = store.instances(oid)
        if not iids:
            links.append(Link(f"/{oid}", {}))
        for iid in iids:
            ssid = ssid_of_instance.get((oid, iid))
            links.append(Link(f"/{oid}/{iid}", {"ssid": str(ssid)} if ssid is not None else {}))
    return links


def finish_check(store: ObjectStore) -> str | None:
    """None when the configuration is usable after Bootstrap-Finish, else why not."""
    _, servers = accounts(store)
    if not servers:
        return "no LwM2M server account in /0"
    ssids = set()
    for iid in store.instances(1) if 1 in store.objects() else []:
        ssid = _get(store, Path.of(1, iid, 0))
        if ssid is not None:
            ssids.add(int(ssid))  # type: ignore[call-overload]
    for account in servers:
        if not account.uri:
            continue
        if account.mode == 0 and not (account.identity and account.key):
            return f"/0/{account.instance} is in PSK mode without an identity and a key"
        if account.mode not in (0, 3):
            return f"/0/{account.instance}: security mode {account.mode} is not supported"
        if account.ssid in ssids:
            return None
    return "no /0 server account with a URI matches a /1 instance's Short Server ID"
