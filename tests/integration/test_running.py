# -*- test-case-name: tests.integration.test_running -*-
"""
Running C{twistd turn} as an operator would: from a coturn-style C{turnserver.conf} (with
options we recognise but do not serve yet), with an IPv6 listener, and with bad options that
must stop it with a message naming them.
"""

from __future__ import annotations


import pytest

from tests.integration.harness import (
    PASSWORD,
    USER,
    requireTool,
    runTwistdTurn,
    runUclient,
)

pytestmark = pytest.mark.integration

COTURN_STYLE_CONF = """\
# A turnserver.conf as coturn users write it.
lt-cred-mech
user={user}:{password}
fingerprint
allow-loopback-peers   # the echo peer is on 127.0.0.1

# Recognised, not served yet: the server must start and say so.
no-udp-relay
CA-file=/etc/ssl/turn_ca.pem
relay-threads=4

# Served: coturn's switch for UDP GSO.
udp-gso=false
"""


@pytest.fixture(autouse=True)
def coturnTools() -> None:
    requireTool("turnutils_uclient")
    requireTool("turnutils_peer")


def test_coturnConfigFile(turnServer, echoPeer, tmp_path) -> None:
    """
    A coturn-style config file (comments, bare flags, key=value) runs: options we do not serve
    yet are each named in a warning, relaying works with no loss, and relaying 100 datagrams
    adds no log lines (nothing per packet above debug).
    """
    conf = tmp_path / "turnserver.conf"
    conf.write_text(COTURN_STYLE_CONF.format(user=USER, password=PASSWORD))
    server = turnServer("-c", str(conf))
    log = server.log()
    for option in ("no-udp-relay", "CA-file", "relay-threads"):
        assert f"Option {option} is recognised but not served yet" in log, log
    linesBefore = len(server.log().splitlines())

    result = runUclient(server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD),
                        messages=50, clients=2)
    assert result.stats == {"sent": 100, "received": 100, "lost": 0, "sendDropped": 0}, result
    assert len(server.log().splitlines()) - linesBefore < 10, server.log()


@pytest.mark.parametrize("sendIndications", [False, True], ids=["channel", "send"])
def test_ipv6Listener(turnServer, echoPeer, sendIndications) -> None:
    """
    A server listening on ::1 as well as 127.0.0.1 serves a client that reaches it over IPv6
    (relaying to an IPv4 peer), with no loss.
    """
    server = turnServer(
        "--listening-ip", "::1", "--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers"
    )
    result = runUclient(
        server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD), messages=30, clients=1,
        sendIndications=sendIndications, serverHost="::1",
    )
    assert result.stats == {"sent": 30, "received": 30, "lost": 0, "sendDropped": 0}, result


@pytest.mark.parametrize(
    "arguments, expected",
    [
        pytest.param(["--min-port", "0"], "--min-port: 0", id="bad-value"),
        pytest.param(["--no-such-option"], "no-such-option", id="unknown-option"),
        pytest.param(["--use-auth-secret"], "static-auth-secret", id="missing-secret"),
    ],
)
def test_badCommandLine(arguments, expected) -> None:
    """
    A bad option stops twistd before it serves, with a message naming the option.
    """
    completed = runTwistdTurn(*arguments)
    assert completed.returncode != 0
    assert expected in completed.stdout + completed.stderr, completed


def test_badConfigFile(tmp_path) -> None:
    """
    An unknown key in the config file stops twistd with a message naming the key and line.
    """
    conf = tmp_path / "turnserver.conf"
    conf.write_text("realm=example.org\n# fine so far\nno-such-key=1\n")
    completed = runTwistdTurn("-c", str(conf))
    assert completed.returncode != 0
    output = completed.stdout + completed.stderr
    assert "no-such-key" in output and "line 3" in output, output


def test_ipv4AndIPv6Wildcards(turnServer, echoPeer) -> None:
    """
    Listening on 127.0.0.1 and on the IPv6 wildcard on the same port works (the IPv6
    listeners, UDP and TCP, are IPv6-only), and clients of both families relay with no loss
    over UDP and TCP.
    """
    server = turnServer(
        "--listening-ip", "::", "--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers"
    )
    for serverHost in ("127.0.0.1", "::1"):
        for transport in ("udp", "tcp"):
            result = runUclient(
                server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD), messages=20,
                clients=1, serverHost=serverHost, transport=transport,
            )
            assert result.stats == {
                "sent": 20, "received": 20, "lost": 0, "sendDropped": 0,
            }, (serverHost, transport, result)


def test_busyPortIsOneLine(tmp_path) -> None:
    """
    A listening port another process holds stops twistd with one line naming the address,
    not a traceback.
    """
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        completed = runTwistdTurn(
            "--listening-ip", "127.0.0.1", "--relay-ip", "127.0.0.1",
            "--listening-port", str(port), "--user", "a:b",
        )
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0, output
    assert f"twisted-turn: cannot listen on 127.0.0.1:{port}" in output, output
    assert "Traceback" not in output, output


def test_jsonLog(turnServer) -> None:
    """
    With --log-format json every line twistd writes is one JSON event (twistd's own, ours,
    Twisted's), and a refusal carries its fields for a log shipper to select on.
    """
    import json

    from tests.integration.harness import RawTurnClient

    server = turnServer("--user", f"{USER}:{PASSWORD}", "--log-format", "json")
    guesser = RawTurnClient(server.port, password="wrong")
    try:
        code = guesser.request(0x003, [(0x0019, b"\x11\0\0\0")])[1]
    finally:
        guesser.close()
    assert code == 401
    server.waitForLog('"refusal": 401')
    events = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    namespaces = {event.get("log_namespace") for event in events}
    assert "twisted_turn.service" in namespaces, namespaces
    [refusal] = [event for event in events if event.get("refusal") == 401]
    assert refusal["method"] == "Allocate"
    assert refusal["client"].startswith("127.0.0.1:")
    assert refusal["log_level"]["name"] == "info"


def test_sighupReloadsUsers(turnServer, echoPeer, tmp_path) -> None:
    """
    SIGHUP reads the config file again: a changed password takes effect for new sessions (the
    old one gets 401), while the server keeps running, and the log names what changed and
    what needs a restart.
    """
    import signal

    config = tmp_path / "turnserver.conf"
    config.write_text(f"user={USER}:old-password\nallow-loopback-peers\n")
    server = turnServer("-c", str(config))
    result = runUclient(server.port, echoPeer.port, ("-u", USER, "-w", "old-password"),
                        messages=10, clients=1)
    assert result.returncode == 0, result
    config.write_text(f"user={USER}:{PASSWORD}\nallow-loopback-peers\nfingerprint\n")
    server.process.send_signal(signal.SIGHUP)
    server.waitForLog("Configuration reloaded: --user")
    assert "Changed options that take a restart, not applied: --fingerprint" in server.log()
    result = runUclient(server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD),
                        messages=10, clients=1)
    assert result.returncode == 0 and result.stats["lost"] == 0, result
    refused = runUclient(server.port, echoPeer.port, ("-u", USER, "-w", "old-password"),
                         messages=10, clients=1)
    assert refused.returncode != 0 and refused.stats is None, refused


def test_sigusr1Drains(turnServer) -> None:
    """
    SIGUSR1 drains a real server: a new Allocate gets 300 naming --alternate-server, the live
    allocation still refreshes, and once it is deleted the process exits by itself, cleanly.
    """
    import signal
    import time

    from tests.integration.harness import ALLOCATE, REQUESTED_TRANSPORT, RawTurnClient

    server = turnServer("--user", f"{USER}:{PASSWORD}", "--alternate-server", "127.0.0.1:4000")
    live = RawTurnClient(server.port)
    newcomer = RawTurnClient(server.port)
    try:
        live.allocate()
        server.process.send_signal(signal.SIGUSR1)
        server.waitForLog("Draining: new allocations are sent to the alternate servers")
        messageType, code, values, transactionId = newcomer.request(
            ALLOCATE, [(REQUESTED_TRANSPORT, b"\x11\0\0\0")]
        )
        assert code == 300
        alternate = values[0x8023][0]  # ALTERNATE-SERVER: a plain, not XORed, address
        assert alternate[1] == 1 and alternate[2:4] == (4000).to_bytes(2, "big"), alternate
        assert alternate[4:] == bytes([127, 0, 0, 1])
        lifetime = (0x000D, (600).to_bytes(4, "big"))
        assert live.request(0x004, [lifetime])[1] is None
        assert server.process.poll() is None
        assert live.request(0x004, [(0x000D, bytes(4))])[1] is None  # LIFETIME 0: deleted
        deadline = time.monotonic() + 10
        while server.process.poll() is None:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.1)
        assert server.process.returncode == 0, server.log()
        assert "Drained: 0 allocations left" in server.log()
    finally:
        live.close()
        newcomer.close()
