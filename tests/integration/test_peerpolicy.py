# -*- test-case-name: tests.integration.test_peerpolicy -*-
"""
The peer-policy probes of the abuse issue (item 1) against a real C{twistd turn}, from a raw
STUN client, in network namespaces of their own (L{tests.integration.netns}).

With relay addresses 127.0.0.1 and ::1 and no C{--allow-loopback-peers}, the namespace's
loopback also holds the IPv6 spellings of 127.0.0.1 the probes name, each with a UDP socket
listening on it: had the relay sent anything to a refused peer, as it once sent to
C{[64:ff9b::7f00:1]} while the policy judged C{127.0.0.1}, that socket would have received it.

With relay addresses on a veth, a second namespace behind it holds peers that are really
elsewhere: the IPv6 spellings of the relay address, IPv6 documentation and benchmarking
addresses, and control peers (a public IPv4 and IPv6 address and the NAT64 form of the IPv4
one) that must be reached; the server's own namespace holds a secondary address, locally
routed ranges of both families and an IPv6 anycast address, which must not be.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any, Dict, List, Sequence, Tuple

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
from tests.integration.netns import PeerNamespace, runInNetworkNamespace

pytestmark = pytest.mark.integration

HOST6 = "::1"

#: The loopback probes: C{(peer host, which port, whether a socket can listen on the host)}.
#: The port is the open IPv4 or IPv6 relay port of another allocation (C{relay4},
#: C{relay6}), the server's own listening port (C{listener}) or a UDP service of the host
#: (C{service}).
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
]

#: What the loopback run's namespace holds beyond 127.0.0.1 and ::1.
LOOPBACK_ADDRESSES = sorted(
    {host for host, _, listens in PROBES if listens and host not in (HOST, HOST6)}
)

ALLOCATIONS = {
    "ipv4": (),
    "ipv6": ((REQUESTED_ADDRESS_FAMILY, b"\x02\0\0\0"),),
    "dual": ((ADDITIONAL_ADDRESS_FAMILY, b"\x02\0\0\0"),),
}

#: Across the veth: the relay addresses are PeerNamespace.LOCAL4 and LOCAL6.
RELAY4, RELAY6 = PeerNamespace.LOCAL4, PeerNamespace.LOCAL6
#: Peers in the other namespace that must be refused: the IPv6 spellings of the IPv4 relay
#: address (at its open relay port) and of the secondary address, and IPv6's documentation
#: and benchmarking ranges (c).
REMOTE_PROBES: List[Tuple[str, str]] = [
    ("64:ff9b::ac8:1", "relay4"),
    ("2002:ac8:1::1", "relay4"),
    ("64:ff9b::5db8:d70e", "service"),
    ("2001:db8::1", "service"),
    ("3fff::1", "service"),
    ("2001:2::1", "service"),
]
#: This host's own addresses that are neither relay nor listening addresses: a secondary
#: address, one address of a range routed locally ("AnyIP") of each family, and the
#: subnet-router anycast address of a global IPv6 prefix of a host that forwards.
SECONDARY = "93.184.215.14"
LOCAL_RANGE, LOCAL_RANGE_PROBE = "44.0.0.0/16", "44.0.5.5"
LOCAL_RANGE6, LOCAL_RANGE6_PROBE = "2a02:5::/64", "2a02:5::9"
GLOBAL6, ANYCAST6 = "2a01:1::1/64", "2a01:1::"
#: Peers in the other namespace that must be reached.
CONTROLS = ["1.2.3.4", "2a00:1450::1", "64:ff9b::102:304"]


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


def _probe(serverPort: int, peers: Sequence[Tuple[str, int]]) -> Dict[str, List[Any]]:
    """
    From an IPv4, an IPv6 and a dual-stack allocation: CreatePermission and ChannelBind for
    each peer (their error codes, keyed C{"family host port"}), then a Send indication and
    ChannelData to it, saying where they came from.
    """
    codes: Dict[str, List[Any]] = {}
    for family, attributes in ALLOCATIONS.items():
        client = RawTurnClient(serverPort)
        try:
            client.allocate(*attributes)
            for number, peer in enumerate(peers):
                channel = 0x4000 + number
                codes[f"{family} {peer[0]} {peer[1]}"] = [
                    client.createPermission(peer), client.channelBind(channel, peer),
                ]
                client.sendIndication(peer, f"send from {family}".encode())
                client.channelData(channel, f"channel from {family}".encode())
        finally:
            client.close()
    return codes


def _openRelayPorts(serverPort: int) -> Tuple[RawTurnClient, Dict[str, int]]:
    target = RawTurnClient(serverPort)
    (_, relay4), (_, relay6) = target.allocate((ADDITIONAL_ADDRESS_FAMILY, b"\x02\0\0\0"))
    return target, {"relay4": relay4, "relay6": relay6}


def loopbackScenario(workdir: str) -> Dict[str, Any]:
    """
    Inside the namespace: a server relaying on 127.0.0.1 and ::1, the probes, and every
    datagram a listening socket received.
    """
    server = TurnServerProcess(
        Path(workdir) / "turn.log", ["--user", f"{USER}:{PASSWORD}"], relayHosts=(HOST, HOST6)
    )
    sockets: Dict[str, socket.socket] = {}
    try:
        target, ports = _openRelayPorts(server.port)
        ports["listener"] = server.port
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
        codes = _probe(server.port, probes)
        target.close()
        time.sleep(1.0)
        return {
            "codes": codes,
            "received": {name: _drain(sock) for name, sock in sockets.items()},
            "probes": probes,
            "log": server.log()[-4000:],
        }
    finally:
        for sock in sockets.values():
            sock.close()
        server.stop()


def acrossVethScenario(workdir: str) -> Dict[str, Any]:
    """
    Inside the namespace: a peer namespace behind a veth, a server relaying on the veth's
    addresses, the probes and controls, and what every listening socket received.
    """
    import subprocess

    for command in (
        ["ip", "addr", "add", f"{SECONDARY}/32", "dev", "lo"],
        ["ip", "route", "add", "local", LOCAL_RANGE, "dev", "lo", "table", "local"],
        ["ip", "-6", "route", "add", "local", LOCAL_RANGE6, "dev", "lo"],
        ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"],
    ):
        subprocess.run(command, check=True, timeout=30)
    remoteHosts = sorted({host for host, _ in REMOTE_PROBES} | set(CONTROLS))
    # A socket on the wildcard hears what is delivered to an address it cannot bind (an IPv6
    # AnyIP range, an anycast address).
    localSockets = {
        SECONDARY: _listen(SECONDARY), LOCAL_RANGE_PROBE: _listen(LOCAL_RANGE_PROBE),
        LOCAL_RANGE6_PROBE: _listen("::"), ANYCAST6: _listen("::"),
    }
    server = None
    try:
        with PeerNamespace(remoteHosts) as peer:
            subprocess.run(["ip", "-6", "addr", "add", GLOBAL6, "dev", "veth-turn", "nodad"],
                           check=True, timeout=30)
            server = TurnServerProcess(
                Path(workdir) / "turn.log", ["--user", f"{USER}:{PASSWORD}"],
                relayHosts=(RELAY4, RELAY6),
            )
            target, ports = _openRelayPorts(server.port)
            remote = [
                (host, ports[kind] if kind != "service" else 40000 + number)
                for number, (host, kind) in enumerate(REMOTE_PROBES)
            ]
            controls = [(host, 41000 + number) for number, host in enumerate(CONTROLS)]
            local = [(host, sock.getsockname()[1]) for host, sock in localSockets.items()]
            peer.listen(remote + controls)
            codes = _probe(server.port, remote + local + controls)
            time.sleep(1.0)
            target.close()
        received = dict(peer.received)
        for (host, port), sock in zip(local, localSockets.values()):
            received[f"{host} {port}"] = _drain(sock)
        return {
            "codes": codes, "received": received, "probes": remote + local,
            "controls": controls, "log": server.log()[-4000:],
        }
    finally:
        for sock in localSockets.values():
            sock.close()
        if server is not None:
            server.stop()


def _refusal(family: str, host: str) -> int:
    """
    403, or 443 where the allocation has no relayed address of the peer's family.
    """
    ipv6 = ":" in host
    return 403 if family == "dual" or (family == "ipv6") == ipv6 else 443


def _assertRefusedAndSilent(report: Dict[str, Any]) -> None:
    print(report["log"])
    for family in ALLOCATIONS:
        for host, port in report["probes"]:
            expected = _refusal(family, host)
            assert report["codes"][f"{family} {host} {port}"] == [expected, expected], (
                family, host, port,
            )
    for host, port in report["probes"]:
        assert report["received"].get(f"{host} {port}", []) == [], (host, port)


def test_loopbackProbesRefusedAndNothingSent(tmp_path) -> None:
    """
    With loopback relay addresses, every probe gets 403 (443 for a peer of a family the
    allocation lacks) to CreatePermission and ChannelBind on IPv4, IPv6 and dual-stack
    allocations, and nothing sent by Send or ChannelData reaches a socket listening on the
    probed address.
    """
    report = runInNetworkNamespace(
        "tests.integration.test_peerpolicy:loopbackScenario", {"workdir": str(tmp_path)},
        LOOPBACK_ADDRESSES,
    )
    _assertRefusedAndSilent(report)


def test_probesAcrossVeth(tmp_path) -> None:
    """
    With relay addresses on a veth: the IPv6 spellings of the relay and secondary addresses
    and IPv6's documentation and benchmarking addresses, reached through a route, and the
    host's secondary address and locally routed range are all refused and hear nothing; the
    controls behind the veth are granted and receive Send and ChannelData from each
    allocation with a relayed address of their family, the NAT64 one at its IPv6 address.
    """
    report = runInNetworkNamespace(
        "tests.integration.test_peerpolicy:acrossVethScenario", {"workdir": str(tmp_path)},
    )
    _assertRefusedAndSilent(report)
    for family in ALLOCATIONS:
        for host, port in report["controls"]:
            granted = _refusal(family, host) == 403
            assert report["codes"][f"{family} {host} {port}"] == (
                [None, None] if granted else [443, 443]
            ), (family, host)
    for host, port in report["controls"]:
        expected = sorted(
            f"{how} from {family}" for family in ALLOCATIONS if _refusal(family, host) == 403
            for how in ("send", "channel")
        )
        assert sorted(report["received"][f"{host} {port}"]) == expected, host
