# -*- test-case-name: tests.integration.test_chromium -*-
"""
A real browser's WebRTC stack against a real C{twistd turn}: headless Chromium opens two
relay-only RTCPeerConnections in one page, which must talk through the server's relays.

Each run is L{chromium_launcher <tests.integration.chromium_launcher>} under C{unshare}, in a
private network namespace with nothing but loopback, where it starts the server and the browser
and reports in one JSON line; the PID namespace takes every process it started down with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, List, NoReturn

import pytest

from tests.integration.chromium_launcher import REFUSED
from tests.integration.chromium_runner import findChromium, loopbackOnly
from tests.integration.harness import checkoutEnvironment

pytestmark = pytest.mark.integration

LAUNCHER = Path(__file__).resolve().with_name("chromium_launcher.py")

#: A network namespace with only loopback, a PID namespace whose end kills everything in it
#: (Chromium's crashpad handlers leave its process group), and a /proc that shows it.
UNSHARE_FLAGS = ("-n", "-p", "-f", "--kill-child", "--mount-proc")

#: Seconds one launcher run may take; it bounds itself to less (its --timeout, 100 by default).
LAUNCHER_TIMEOUT = 120

MESSAGES = {"toAnswerer": "hello from offerer", "toOfferer": "hello from answerer"}


def _unavailable(reason: str) -> NoReturn:
    """
    Skip, or fail under CI (the C{CI} environment variable is set), as C{requireTool} does.
    """
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def launcherCommand() -> List[str]:
    """
    The command that runs the launcher in a fresh namespace, without its C{--transport}.
    """
    chromium = findChromium()
    if chromium is None:
        _unavailable("chromium is not installed (apt-get install chromium)")
    unshare = shutil.which("unshare")
    if unshare is None:
        _unavailable("unshare is not installed (apt-get install util-linux)")
    command = [unshare, *UNSHARE_FLAGS, sys.executable]
    try:
        probe = subprocess.run(
            [*command, "-c", "import socket; print(socket.if_nameindex())"],
            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=30,
        )
    except subprocess.TimeoutExpired:
        _unavailable(f"{' '.join(UNSHARE_FLAGS)} did not finish within 30s")
    if probe.returncode != 0:
        _unavailable(
            f"unshare {' '.join(UNSHARE_FLAGS)} is not permitted here (needs root or user "
            f"namespaces): {probe.stderr.strip()}"
        )
    return [*command, str(LAUNCHER), "--chromium", chromium]


def runLauncher(command: List[str]) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=LAUNCHER_TIMEOUT, env=checkoutEnvironment(),
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(
            f"the launcher ran past {LAUNCHER_TIMEOUT}s: {' '.join(command)}\n"
            f"stdout: {e.stdout!r}\nstderr: {e.stderr!r}"
        ) from None


def _report(completed: subprocess.CompletedProcess) -> Dict[str, Any]:
    """
    The launcher's JSON report (its last line of output), printed for a failing test's log.
    """
    print(f"--- launcher exit {completed.returncode}; stderr:\n{completed.stderr[-4000:]}")
    lines = completed.stdout.strip().splitlines()
    assert lines, f"the launcher printed no report (exit {completed.returncode})"
    report = json.loads(lines[-1])
    print(f"--- server log (tail):\n{report.get('serverLog', '')}")
    print("--- report:")
    print(json.dumps({k: v for k, v in report.items() if k != "serverLog"}, indent=1))
    return report


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_dataChannelThroughRelays(launcherCommand, tmp_path, transport: str) -> None:
    """
    Two relay-only peer connections reaching the server by C{transport} exchange a data
    channel message both ways, over a selected pair that is relay to relay on both sides:
    both ends are relay addresses of this server, and each side gathered nothing but relay
    candidates.
    """
    completed = runLauncher(
        [*launcherCommand, "--transport", transport, "--workdir", str(tmp_path)]
    )
    report = _report(completed)
    assert report["error"] is None
    assert report["ok"] is True
    assert completed.returncode == 0
    assert report["serverExit"] is not None, "the server was not stopped"
    result = report["results"][transport]
    assert result["ok"] is True, result["error"]
    assert result["error"] is None
    assert result["messages"] == MESSAGES

    relays = range(report["server"]["minPort"], report["server"]["maxPort"] + 1)
    for side in ("offerer", "answerer"):
        pair = result[side]
        assert pair is not None, f"{side}: no selected pair"
        assert pair["state"] == "succeeded", (side, pair)
        local, remote = pair["local"], pair["remote"]
        assert (local["candidateType"], remote["candidateType"]) == ("relay", "relay"), (
            side, pair,
        )
        relayHost = report["server"]["relayHost"]
        assert (local["address"], remote["address"]) == (relayHost, relayHost), (side, pair)
        assert local["port"] in relays, (side, pair, relays)
        assert remote["port"] in relays, (side, pair, relays)
        assert local["relayProtocol"] == transport, (side, pair)

        candidates = result["candidates"][side]
        assert candidates, f"{side} gathered no candidate"
        for candidate in candidates:
            kind, _protocol, address = candidate.split()[:3]
            assert kind == "relay", (side, candidates)
            host, port = address.rsplit(":", 1)
            assert host == relayHost and int(port) in relays, (side, candidates, relays)

    # Each side's selected local candidate is the other's selected remote one.
    assert result["offerer"]["local"]["port"] == result["answerer"]["remote"]["port"]
    assert result["answerer"]["local"]["port"] == result["offerer"]["remote"]["port"]


def test_launcherRefusesOutsideNamespace(tmp_path) -> None:
    """
    Run directly, in a network with more than loopback, the launcher refuses with L{REFUSED}
    before it starts anything: no report, no server log.
    """
    if loopbackOnly():
        pytest.skip("this test already runs in a loopback-only network namespace")
    completed = subprocess.run(
        [sys.executable, str(LAUNCHER), "--transport", "udp", "--workdir", str(tmp_path)],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60,
        env=checkoutEnvironment(),
    )
    assert completed.returncode == REFUSED, (completed.returncode, completed.stderr)
    assert "refusing to run outside a loopback-only network namespace" in completed.stderr
    assert completed.stdout == ""
    assert list(tmp_path.iterdir()) == []
