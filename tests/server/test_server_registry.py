"""The socket-free registration store: lifetimes given ``now``, replacement, expiry."""

from __future__ import annotations

import math

import pytest

from labkit.lwm2m.registration import parse_register, parse_update
from labkit.server.registry import Registry, UnknownRegistration


def _register(registry: Registry, ep: str = "a", lt: int = 60, now: float = 0.0, **kw: object):
    req = parse_register([f"ep={ep}", f"lt={lt}", "lwm2m=1.2"], b"</3/0>,</5>;ver=1.1,</5/0>")
    return registry.register(req, now=now, **kw)


def test_register_assigns_ids_and_expiry() -> None:
    r = Registry()
    reg, old = _register(r, "a", lt=60, now=100.0, remote="peer", address=("127.0.0.1", 5))
    assert old is None
    assert reg.reg_id == "1" and reg.location == "/rd/1"
    assert (reg.registered_at, reg.updated_at, reg.expires_at) == (100.0, 100.0, 160.0)
    assert reg.remote == "peer" and reg.address == ("127.0.0.1", 5)
    assert reg.objects[5].version == "1.1" and reg.lwm2m_version == "1.2"
    assert r.get("a") is reg and r.by_id("1") is reg and "a" in r and len(r) == 1
    assert r.by_endpoint["a"] is reg
    with pytest.raises(TypeError):
        r.by_endpoint["b"] = reg  # type: ignore[index]
    assert "Registration(endpoint='a'" in repr(reg) and "<table>" in reg._repr_html_()


def test_reregister_replaces_and_ids_are_not_reused() -> None:
    r = Registry()
    first, _ = _register(r, "a", now=0.0)
    _register(r, "b", now=1.0)
    second, old = _register(r, "a", now=2.0)
    assert old is first and second.reg_id == "3"
    assert r.by_id("1") is None and r.get("a") is second and len(r) == 2
    with pytest.raises(UnknownRegistration):
        r.update("1", parse_update([], b""), now=3.0)


def test_update_refreshes_lifetime_remote_and_objects() -> None:
    r = Registry()
    reg, _ = _register(r, "a", lt=60, now=0.0, remote="old")
    r.update(
        reg.reg_id, parse_update(["lt=30"], b"</3/0>"), now=10.0, remote="new", address=("::1", 9)
    )
    assert reg.lifetime == 30 and reg.updated_at == 10.0 and reg.expires_at == 40.0
    assert reg.remote == "new" and reg.address == ("::1", 9) and set(reg.objects) == {3}
    assert reg.registered_at == 0.0
    r.update(reg.reg_id, parse_update([], b""), now=20.0)
    assert reg.lifetime == 30 and reg.expires_at == 50.0 and set(reg.objects) == {3}
    assert reg.remote == "new"


def test_expiry_and_deregister() -> None:
    r = Registry()
    a, _ = _register(r, "a", lt=10, now=0.0)
    b, _ = _register(r, "b", lt=20, now=0.0)
    assert r.next_expiry() == 10.0
    assert r.expired(10.0) == [] and not a.expired(10.0) and a.remaining(4.0) == 6.0
    assert r.expire(10.5) == [a] and "a" not in r
    assert r.deregister(b.reg_id) is b and len(r) == 0 and r.next_expiry() is None
    with pytest.raises(UnknownRegistration):
        r.deregister(b.reg_id)


def test_lifetime_zero_never_expires() -> None:
    r = Registry()
    reg, _ = _register(r, "forever", lt=0, now=0.0)
    assert reg.expires_at == math.inf and r.expire(1e12) == []
