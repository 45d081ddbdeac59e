# -*- test-case-name: tests.integration.test_peerpolicy -*-
"""
The peer-policy probes of the abuse issue (item 1) against a real C{twistd turn} with relay
addresses 127.0.0.1 and ::1 and no C{--allow-loopback-peers}, from a raw STUN client.

The run happens in a network namespace of its own (L{tests.integration.netns}) whose loopback
interface also holds the IPv6 spellings of 127.0.0.1 and the documentation addresses the
probes name, each with a UDP socket listening on it: if the relay sent anything to a refused
peer, as it once sent to C{[64:ff9b::7f00:1]} while the policy judged C{127.0.0.1}, that
socket would receive it. Control peers (a public IPv4 and IPv6 address and the NAT64 form of
the IPv4 one, also on that loopback) show that the same path does deliver.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest

from tests.integration.harness import (
    ADDITIONAL_ADDRESS_FAMILY,
    HOST,
    PASSWORD,
    REQUESTED_ADDRESS_FAMILY,
    USER,
    RawTurnClient,
    TurnServerProcess,
)
from tests.integration.netns import runInNetworkNamespace

pytestmark = pytest.mark.integration

HOST6 = "::1"

#: The probes: C{(peer host, which port, whether a socket can listen on the host)}. The port
#: is the open IPv4 or IPv6 relay port of another allocation (C{relay4}, C{relay6}), the
#: server's own listening port (C{listener}) or a UDP service of the host (C{service}).
PROBES: List[Tuple[str, str, bool]] = [
    # a: IPv6 spellings of the IPv4 relay address, aimed at its open relay port.
    ("64:ff9b::7f00:1", "relay4", True),
    ("2002:7f00:1::1", "relay4", True),
    ("::127.0.0.1", "relay4", True),
    ("::ffff:0:127.0.0.1", "relay4", True),
    ("::ffff:127.0.0.1", "relay4", False),
    # b: loopback relay and listening addresses: relay-to-relay, the listener, a service.
    ("127.0.0.1", "relay4", False),
    ("127.0.0.1", "listener", False),
    ("127.0.0.1", "service", True),
    ("::1", "relay6", False),
    ("::1", "service", True),
    ("127.0.0.2", "service", True),
    # c: IPv6 documentation and benchmarking ranges.
    ("2001:db8::1", "service", True),
    ("3fff::1", "service", True),
    ("2001:2::1", "service", True),
]

#: Peers that must be reached, each on a listening socket.
CONTROLS = ["1.2.3.4", "2a00:1450::1", "64:ff9b::102:304"]

#: What the namespace's loopback holds beyond 127.0.0.1 and ::1.
NAMESPACE_ADDRESSES = sorted(
    {host for host, _, listens in PROBES if listens and host not in (HOST, HOST6)} | set(CONTROLS)
)

ALLOCATIONS = {
    "ipv4": (),
    "ipv6": ((REQUESTED_ADDRESS_FAMILY, b"\x02\0\0\0"),),
    "dual": ((ADDITIONAL_ADDRESS_FAMILY, b"\x02\0\0\0"),),
}


def _listen(host: str, port: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


def _drain(sock: socket.socket) -> List[str]:
    payloads = []
    while True:
        try:
            payloads.append(sock.recv(65535).decode())
        except BlockingIOError:
            return payloads


def probeScenario(workdir: str) -> Dict[str, Any]:
    """
    Inside the namespace: start the server, allocate, probe, and report every answer and
    every datagram a listening socket received.
    """
    server = TurnServerProcess(
        Path(workdir) / "turn.log", ["--user", f"{USER}:{PASSWORD}"], relayHosts=(HOST, HOST6)
    )
    sockets: Dict[str, socket.socket] = {}
    clients: Dict[str, RawTurnClient] = {}
    try:
        target = RawTurnClient(server.port)
        (_, relay4), (_, relay6) = target.allocate((ADDITIONAL_ADDRESS_FAMILY, b"\x02\0\0\0"))
        ports = {"relay4": relay4, "relay6": relay6, "listener": server.port}
        probes = []
        for host, kind, listens in PROBES:
            if kind == "service":
                sock = _listen(host)
                port = sock.getsockname()[1]
            else:
                port = ports[kind]
                sock = _listen(host, port) if listens else None
            if sock is not None:
                sockets[f"{host} {port}"] = sock
            probes.append((host, port))
        controls = []
        for host in CONTROLS:
            sock = _listen(host)
            controls.append((host, sock.getsockname()[1]))
            sockets[f"{host} {controls[-1][1]}"] = sock

        codes: Dict[str, List[Any]] = {}
        for family, attributes in ALLOCATIONS.items():
            client = clients[family] = RawTurnClient(server.port)
            client.allocate(*attributes)
            for number, peer in enumerate(probes + controls):
                channel = 0x4000 + number
                codes[f"{family} {peer[0]} {peer[1]}"] = [
                    client.createPermission(peer), client.channelBind(channel, peer),
                ]
                client.sendIndication(peer, f"send from {family}".encode())
                client.channelData(channel, f"channel from {family}".encode())
        time.sleep(1.0)
        received = {name: _drain(sock) for name, sock in sockets.items()}
        return {
            "codes": codes,
            "received": received,
            "probes": [list(peer) for peer in probes],
            "controls": [list(peer) for peer in controls],
            "log": server.log()[-4000:],
        }
    finally:
        for client in clients.values():
            client.close()
        for sock in sockets.values():
            sock.close()
        server.stop()


def _refusal(family: str, host: str) -> int:
    """
    403, or 443 where the allocation has no relayed address of the peer's family.
    """
    ipv6 = ":" in host
    return 403 if family == "dual" or (family == "ipv6") == ipv6 else 443


def test_probesRefusedAndNothingSent(tmp_path) -> None:
    """
    Every probe gets 403 (443 for a peer of a family the allocation lacks) to CreatePermission
    and ChannelBind on IPv4, IPv6 and dual-stack allocations, and nothing sent by Send or
    ChannelData reaches a socket listening on the probed address; the controls are granted and
    receive both, from each allocation with a relayed address of their family.
    """
    report = runInNetworkNamespace(
        "tests.integration.test_peerpolicy:probeScenario", {"workdir": str(tmp_path)},
        NAMESPACE_ADDRESSES,
    )
    print(report["log"])
    for family in ALLOCATIONS:
        for host, port in report["probes"]:
            expected = _refusal(family, host)
            assert report["codes"][f"{family} {host} {port}"] == [expected, expected], (
                family, host, port,
            )
        for host, port in report["controls"]:
            granted = _refusal(family, host) == 403
            assert report["codes"][f"{family} {host} {port}"] == (
                [None, None] if granted else [443, 443]
            ), (family, host)
    for host, port in report["probes"]:
        assert report["received"].get(f"{host} {port}", []) == [], (host, port)
    for host, port in report["controls"]:
        expected = sorted(
            f"{how} from {family}" for family in ALLOCATIONS if _refusal(family, host) == 403
            for how in ("send", "channel")
        )
        assert sorted(report["received"][f"{host} {port}"]) == expected, host
