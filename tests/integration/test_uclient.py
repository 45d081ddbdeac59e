# -*- test-case-name: tests.integration.test_uclient -*-
"""
coturn's C{turnutils_uclient} against a real C{twistd turn}, relaying to C{turnutils_peer}.
"""

from __future__ import annotations

import json
import re
import time

import pytest

from tests.integration import harness
from tests.integration.harness import (
    PASSWORD,
    REST_SECRET,
    USER,
    requireTool,
    restCredentials,
    runUclient,
    writeCertificate,
)

pytestmark = pytest.mark.integration

MESSAGES = 50
CLIENTS = 2
STATIC = ("--user", f"{USER}:{PASSWORD}")
REST = ("--use-auth-secret", "--static-auth-secret", REST_SECRET)
MODES = [pytest.param(False, id="channel"), pytest.param(True, id="send")]
TRANSPORTS = ["udp", "tcp", "tls", "dtls"]


@pytest.fixture
def certificate(tmp_path):
    """
    The options that give a server a fresh self-signed certificate for 127.0.0.1.
    """
    certFile, keyFile, _ = writeCertificate(tmp_path / "tls", "turn-test")
    return ("--cert", certFile, "--pkey", keyFile)


def portFor(server, transport: str) -> int:
    """
    The server port uclient reaches over C{transport}.
    """
    return server.tlsPort if transport in ("tls", "dtls") else server.port


@pytest.fixture(autouse=True)
def coturnTools() -> None:
    """
    Every test here needs coturn's client and echo peer.
    """
    requireTool("turnutils_uclient")
    requireTool("turnutils_peer")


def assertNoLoss(result) -> None:
    harness.assertNoLoss(result, MESSAGES * CLIENTS)


def assertRefused(result) -> None:
    """
    uclient gave up (it exits non-zero after an error) without relaying anything.
    """
    assert result.returncode != 0, result
    assert result.stats is None, result


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("sendIndications", MODES)
def test_staticUserZeroLoss(
    turnServer, echoPeer, certificate, sendIndications, transport
) -> None:
    """
    A static long-term user relays to a loopback peer with no loss, over channels and over
    Send/Data indications, reaching the server over each client transport.
    """
    server = turnServer(*STATIC, "--allow-loopback-peers", *certificate)
    result = runUclient(
        portFor(server, transport),
        echoPeer.port,
        ("-u", USER, "-w", PASSWORD),
        messages=MESSAGES,
        clients=CLIENTS,
        sendIndications=sendIndications,
        transport=transport,
    )
    assertNoLoss(result)


@pytest.mark.parametrize("transport", ["udp", "tcp"])
@pytest.mark.parametrize("sendIndications", MODES)
def test_restSecretZeroLoss(
    turnServer, echoPeer, certificate, sendIndications, transport
) -> None:
    """
    TURN REST API credentials that uclient derives from the shared secret (-W) relay with no
    loss, over channels and over Send/Data indications, over UDP and TCP (how credentials are
    checked does not depend on the transport; the static-user test covers TLS and DTLS).
    """
    server = turnServer(*REST, "--allow-loopback-peers", *certificate)
    result = runUclient(
        portFor(server, transport),
        echoPeer.port,
        ("-u", USER, "-W", REST_SECRET),
        messages=MESSAGES,
        clients=CLIENTS,
        sendIndications=sendIndications,
        transport=transport,
    )
    assertNoLoss(result)


def test_wrongPasswordRefused(turnServer, echoPeer, sniffingProxy) -> None:
    """
    A wrong password gets no allocation: the server answers every Allocate with 401 and uclient
    gives up with an error.
    """
    server = turnServer(*STATIC, "--allow-loopback-peers")
    proxy = sniffingProxy(server.port)
    result = runUclient(
        proxy.port, echoPeer.port, ("-u", USER, "-w", "not-" + PASSWORD), messages=5, clients=1
    )
    assertRefused(result)
    assert "Cannot complete Allocation" in result.output, result
    assert proxy.answers, "the server never answered"
    # 0x0113: Allocate error response.
    assert set(proxy.answers) == {(0x0113, 401)}, proxy.answers


def test_restUsernameExpiry(turnServer, echoPeer) -> None:
    """
    A REST username whose timestamp has passed is refused; the same user with a timestamp in
    the future, signed the same way, relays (so the refusal is for the expiry and nothing else).
    """
    server = turnServer(*REST, "--allow-loopback-peers")
    now = int(time.time())

    username, password = restCredentials(REST_SECRET, USER, now - 60)
    expired = runUclient(
        server.port, echoPeer.port, ("-u", username, "-w", password), messages=5, clients=1
    )
    assertRefused(expired)
    assert "Cannot complete Allocation" in expired.output, expired

    username, password = restCredentials(REST_SECRET, USER, now + 3600)
    valid = runUclient(
        server.port,
        echoPeer.port,
        ("-u", username, "-w", password),
        messages=MESSAGES,
        clients=1,
        sendIndications=True,
    )
    assert valid.returncode == 0, valid
    assert valid.stats == {"sent": MESSAGES, "received": MESSAGES, "lost": 0, "sendDropped": 0}


@pytest.mark.parametrize(
    "sendIndications, refusal",
    [
        pytest.param(False, "channel bind: error 403", id="channel"),
        pytest.param(True, "create permission error 403", id="send"),
    ],
)
def test_loopbackPeerDeniedByDefault(turnServer, echoPeer, sendIndications, refusal) -> None:
    """
    Without --allow-loopback-peers nothing reaches a loopback peer: the server refuses the
    channel or permission with 403, or drops what the client sends.
    """
    server = turnServer(*STATIC)
    result = runUclient(
        server.port,
        echoPeer.port,
        ("-u", USER, "-w", PASSWORD),
        messages=5,
        clients=1,
        sendIndications=sendIndications,
    )
    # Either the request is refused, or (a server may grant a permission by address alone and
    # refuse the port at send time) the peer hears nothing.
    if result.stats is None:
        assert result.returncode != 0, result
        assert refusal in result.output, result
    else:
        assert result.stats["sent"] == 5, result
        assert result.stats["received"] == 0, f"the loopback peer was reached: {result!r}"


def test_generatedUser(turnServer, echoPeer) -> None:
    """
    Started with no credentials, the server logs a user of its own and an iceServers entry for
    this listener, and that user relays with no loss.
    """
    server = turnServer("--allow-loopback-peers")
    match = re.search(r"iceServers: \[(\{.*?\})\]", server.log())
    assert match, server.log()
    iceServer = json.loads(match.group(1))
    assert iceServer["urls"] == [
        f"turn:127.0.0.1:{server.port}?transport=udp",
        f"turn:127.0.0.1:{server.port}?transport=tcp",
    ]
    assert f"{iceServer['username']} / {iceServer['credential']}" in server.log()

    result = runUclient(
        server.port,
        echoPeer.port,
        ("-u", iceServer["username"], "-w", iceServer["credential"]),
        messages=MESSAGES,
        clients=CLIENTS,
        sendIndications=True,
    )
    assertNoLoss(result)
