"""The scanner tests' port scanner, on loopback: its states, its coverage and its addresses."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from tests.redis_server import free_port
from tests.system import portscan


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


def test_scan_tells_open_from_refused(listener: int) -> None:
    closed = free_port()
    states = portscan.run(
        portscan.Target.parse("127.0.0.1"), [listener, closed], concurrency=2, timeout=5
    )
    assert states == {listener: portscan.OPEN, closed: portscan.REFUSED}


def test_scan_gives_every_port_one_state_with_fewer_workers_than_ports(listener: int) -> None:
    ports = [listener, *range(20000, 20300)]
    states = portscan.run(portscan.Target.parse("127.0.0.1"), ports, concurrency=7, timeout=5)
    assert states.keys() == set(ports)
    assert states[listener] == portscan.OPEN
    others = {state for port, state in states.items() if port != listener}
    assert others <= {portscan.REFUSED, portscan.OPEN}, others


def test_a_zone_becomes_the_scope_id_of_an_ipv6_sockaddr() -> None:
    target = portscan.Target.parse("fe80::1%lo")
    assert target.family == socket.AF_INET6
    assert target.sockaddr(22) == ("fe80::1", 22, 0, socket.if_nametoindex("lo"))
    assert str(target) == f"fe80::1%{socket.if_nametoindex('lo')}"
    assert portscan.Target.parse("10.0.0.2").sockaddr(80) == ("10.0.0.2", 80)


def test_an_unknown_zone_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no network interface 'nosuch0'"):
        portscan.Target.parse("fe80::1%nosuch0")


def test_connect_raises_when_nothing_listens(listener: int) -> None:
    portscan.connect(portscan.Target.parse("127.0.0.1"), listener, timeout=5)
    with pytest.raises(ConnectionRefusedError):
        portscan.connect(portscan.Target.parse("127.0.0.1"), free_port(), timeout=5)
