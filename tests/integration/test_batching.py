# -*- test-case-name: tests.integration.test_batching -*-
"""
The batching UDP port under C{twistd turn}, judged by turnutils_uclient: on by default, each
switch and the fallback to Twisted's stock port relay without loss, C{-r turnepoll} runs, and a
bad policy or switch combination stops the start with one line.
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

CREDENTIALS = ("--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers")
ZERO_LOSS = {"sent": 60, "received": 60, "lost": 0, "sendDropped": 0}


@pytest.fixture(autouse=True)
def coturnTools() -> None:
    requireTool("turnutils_uclient")
    requireTool("turnutils_peer")


def relays(server, echoPeer, sendIndications: bool = False) -> None:
    result = runUclient(server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD),
                        messages=30, clients=2, sendIndications=sendIndications)
    assert result.stats == ZERO_LOSS, (result, server.log())


@pytest.mark.parametrize("sendIndications", [False, True], ids=["channel", "send"])
def test_batchingByDefault(turnServer, echoPeer, sendIndications) -> None:
    """
    C{twistd turn} runs on the batching port with recvmmsg, sendmmsg and GSO, says so in one
    line, and relays without loss over channels and Send indications.
    """
    server = turnServer(*CREDENTIALS)
    assert (
        "UDP runs on the batching UDP port: recvmmsg batches of 64, sendmmsg, UDP GSO"
        in server.log()
    ), server.log()
    relays(server, echoPeer, sendIndications)


@pytest.mark.parametrize(
    "switches, description",
    [
        pytest.param(("--udp-gso=false",), "recvmmsg batches of 64, sendmmsg, no GSO",
                     id="no-gso"),
        pytest.param(("--udp-sendmmsg=false",), "recvmmsg batches of 64, immediate sends",
                     id="recvmmsg-only"),
        pytest.param(("--udp-recvmmsg=false", "--udp-batch-size=8"),
                     "recvfrom, sendmmsg, UDP GSO", id="sendmmsg-only"),
    ],
)
def test_switches(turnServer, echoPeer, switches, description) -> None:
    """
    Each of coturn's switches turns its part off (the C{=false} form works), and the server
    still relays without loss.
    """
    server = turnServer(*CREDENTIALS, *switches)
    assert f"UDP runs on the batching UDP port: {description}" in server.log(), server.log()
    relays(server, echoPeer)


def test_stockFallback(turnServer, echoPeer) -> None:
    """
    Without the native module (TWISTED_TURN_NATIVE=off) the server runs on Twisted's stock
    port, says so in one line, and relays without loss.
    """
    server = turnServer(*CREDENTIALS, environment={"TWISTED_TURN_NATIVE": "off"})
    log = server.log()
    assert "UDP runs on Twisted's stock UDP port: TWISTED_TURN_NATIVE=off" in log, log
    relays(server, echoPeer)


def test_pollScopeReactor(turnServer, echoPeer) -> None:
    """
    C{twistd -r turnepoll turn} runs on the reactor whose scope spans a poll iteration and
    relays without loss.
    """
    server = turnServer(*CREDENTIALS, twistdArgs=("-r", "turnepoll"))
    assert "twisted_turn.pollscope.PollScopeReactor" in server.log(), server.log()
    relays(server, echoPeer)


def test_badPolicy() -> None:
    """
    A misspelt TWISTED_TURN_NATIVE stops the start with one line naming it.
    """
    completed = runTwistdTurn("--listening-ip", "127.0.0.1", TWISTED_TURN_NATIVE="maybe")
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "TWISTED_TURN_NATIVE='maybe' is not a policy" in output, output
    assert "Traceback" not in output, output


def test_gsoWithoutSendmmsg() -> None:
    """
    --udp-gso with --udp-sendmmsg=false is refused with the reason.
    """
    completed = runTwistdTurn("--udp-gso", "--udp-sendmmsg=false")
    output = completed.stdout + completed.stderr
    assert completed.returncode != 0
    assert "--udp-gso: needs --udp-sendmmsg" in output, output
