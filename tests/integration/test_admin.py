# -*- test-case-name: tests.integration.test_admin -*-
"""
The admin API and the status page of a real C{twistd turn --web-admin}: over HTTP on loopback
with C{turnutils_uclient} sessions to list and end; over TLS only on an address off loopback
(in a network namespace of its own); reload and drain through it; and the status page in real
headless Chromium, inside a private network namespace, logging in, watching a uclient session
and its traffic, and ending it, with a screenshot kept as an artifact.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import pytest

from tests.integration.harness import (
    HOST,
    PASSWORD,
    REPO_ROOT,
    USER,
    RawTurnClient,
    TurnServerProcess,
    UdpEchoPeer,
    freeListeningPort,
    runTwistdTurn,
    runUclient,
    stopProcess,
    uclientCommand,
    writeCertificate,
)
from tests.integration.netns import PRIVATE_RELAY, runInNetworkNamespace

pytestmark = pytest.mark.integration

ADMIN_PASSWORD = "correct-horse-battery-staple"

#: STUN Refresh (RFC 8656) and its LIFETIME attribute.
REFRESH, LIFETIME = 0x004, 0x000D

#: Where screenshots of the status page are kept (CI collects the directory).
ARTIFACTS = Path(os.environ.get("TWISTED_TURN_ARTIFACTS", REPO_ROOT / "test-artifacts"))


class AdminClient:
    """
    The admin API over urllib with HTTP Basic credentials.
    """

    def __init__(self, base: str, password: str = ADMIN_PASSWORD,
                 context: Optional[ssl.SSLContext] = None) -> None:
        self.base = base
        self.context = context
        self.authorization = "Basic " + base64.b64encode(
            f"admin:{password}".encode()
        ).decode()

    def call(self, method: str, path: str, authorized: bool = True) -> Tuple[int, Any]:
        request = urllib.request.Request(self.base + "/api/v1/" + path, method=method)
        if authorized:
            request.add_header("Authorization", self.authorization)
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.context) as response:
                return response.status, json.load(response)
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")

    def get(self, path: str) -> Any:
        code, body = self.call("GET", path)
        assert code == 200, (path, code, body)
        return body

    def waitFor(self, path: str, predicate, timeout: float = 20.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            body = self.get(path)
            if predicate(body):
                return body
            assert time.monotonic() < deadline, f"{path} never satisfied the test: {body}"
            time.sleep(0.1)


def adminServer(turnServer, *options: str) -> Tuple[TurnServerProcess, AdminClient]:
    port = freeListeningPort()
    server = turnServer(
        "--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers", "--web-admin",
        "--web-admin-port", str(port), "--cli-password", ADMIN_PASSWORD, *options,
    )
    server.waitForLog("Admin API and status page on http://127.0.0.1:")
    return server, AdminClient(f"http://{HOST}:{port}")


def test_refusedWithoutPassword() -> None:
    """
    Without --cli-password, --web-admin does not start, and the message says why.
    """
    completed = runTwistdTurn("--listening-ip", HOST, "--listening-port",
                              str(freeListeningPort()), "--web-admin")
    assert completed.returncode != 0
    assert "--web-admin needs --cli-password" in completed.stdout + completed.stderr


def test_sessionsListedAndEnded(turnServer, echoPeer) -> None:
    """
    While uclient relays for four clients, C{GET sessions} lists them with their traffic
    moving and C{GET sessions/ID} shows one's channels; C{DELETE} ends a session of another
    client, whose next Refresh then gets 437, and the uclient run loses nothing.
    """
    server, admin = adminServer(turnServer)
    assert admin.call("GET", "sessions", authorized=False)[0] == 401
    info = admin.get("server")
    assert info["workers"] == 1 and info["options"]["cliPassword"] == "set"

    raw = RawTurnClient(server.port)
    try:
        [relayed] = raw.allocate()
        results: Dict[str, Any] = {}
        uclient = threading.Thread(target=lambda: results.update(result=runUclient(
            server.port, echoPeer.port, ("-u", USER, "-w", PASSWORD), messages=400, clients=4,
        )), daemon=True)
        uclient.start()
        page = admin.waitFor(
            "sessions?user=" + USER, lambda page: page["total"] >= 5
            and sum(s["traffic"]["fromClient"]["bytes"] > 0 for s in page["sessions"]) >= 4
        )
        [mine] = [s for s in page["sessions"]
                  if s["relayed"] == [f"{relayed[0]}:{relayed[1]}"]]
        assert mine["client"] == f"{HOST}:{raw.sock.getsockname()[1]}"
        assert mine["transport"] == "udp" and mine["user"] == USER
        busy = next(s for s in page["sessions"] if s["traffic"]["fromClient"]["bytes"])
        detail = admin.get("sessions/" + busy["id"])
        assert f"{HOST}:{echoPeer.port}" in [c["peer"] for c in detail["channels"]], detail
        later = admin.waitFor(
            "sessions/" + busy["id"], lambda s: s["traffic"]["toClient"]["bytes"]
            > detail["traffic"]["toClient"]["bytes"]
        )
        assert later["age"] > detail["age"]

        code, body = admin.call("DELETE", "sessions/" + mine["id"])
        assert (code, body) == (200, {"ended": mine["id"]})
        assert admin.call("GET", "sessions/" + mine["id"])[0] == 404
        assert raw.request(REFRESH, [(LIFETIME, b"\0\0\x02\x58")])[1] == 437
        uclient.join(timeout=60)
        result = results["result"]
        assert result.returncode == 0 and result.stats["lost"] == 0, result
    finally:
        raw.close()
    server.waitForLog(f"Session {mine['id']} of '{USER}' ended through the admin API")


def test_reloadAndDrain(turnServer, tmp_path) -> None:
    """
    C{POST reload} applies a changed config file and answers 400, changing nothing, for a
    file with an error; C{POST drain} refuses new Allocates (486) and, with no allocation
    left, the process exits.
    """
    conf = tmp_path / "turnserver.conf"
    conf.write_text("user-quota=5\n")
    server, admin = adminServer(turnServer, "-c", str(conf))
    assert admin.get("server")["options"]["userQuota"] == 5
    conf.write_text("user-quota=7\n")
    assert admin.call("POST", "reload") == (200, {"reloaded": True, "fromFile": True})
    assert admin.get("server")["options"]["userQuota"] == 7
    conf.write_text("user-quota=lots\n")
    code, body = admin.call("POST", "reload")
    assert code == 400 and "user-quota" in body["error"], body
    assert admin.get("server")["options"]["userQuota"] == 7

    code, body = admin.call("POST", "drain")
    assert (code, body) == (202, {"draining": True, "allocations": 0})
    server.process.wait(timeout=30)
    assert server.process.returncode == 0, server.log()


def overTlsScenario(workdir: str) -> Dict[str, Any]:
    """
    In a namespace: a server whose admin API listens on a private address, off loopback,
    with a certificate for it; what an HTTPS and a plain HTTP request get.
    """
    certFile, keyFile, _ = writeCertificate(workdir, "admin", hosts=(PRIVATE_RELAY,))
    port = freeListeningPort()
    server = TurnServerProcess(
        Path(workdir) / "turn.log",
        ["--user", f"{USER}:{PASSWORD}", "--web-admin", "--web-admin-ip", PRIVATE_RELAY,
         "--web-admin-port", str(port), "--cli-password", ADMIN_PASSWORD,
         "--cert", certFile, "--pkey", keyFile, "--no-tls", "--no-dtls"],
    )
    report: Dict[str, Any] = {}
    try:
        server.waitForLog("Admin API and status page on https://")
        context = ssl.create_default_context(cafile=certFile)
        secure = AdminClient(f"https://{PRIVATE_RELAY}:{port}", context=context)
        report["https"] = secure.call("GET", "server")[0]
        report["httpsUnauthorized"] = secure.call("GET", "server", authorized=False)[0]
        try:
            report["http"] = AdminClient(f"http://{PRIVATE_RELAY}:{port}").call("GET", "server")
        except (OSError, ValueError) as e:  # http.client errors are OSError or ValueError
            report["http"] = f"{type(e).__name__}"
        report["log"] = server.log()[-3000:]
    finally:
        server.stop()
    return report


def test_offLoopbackOverTlsOnly(tmp_path) -> None:
    """
    On an address off loopback the admin API speaks TLS with --cert (a client that trusts the
    certificate gets answers; credentials are still needed) and nothing else: a plain HTTP
    request gets no HTTP answer.
    """
    report = runInNetworkNamespace(
        "tests.integration.test_admin:overTlsScenario", {"workdir": str(tmp_path)},
        [PRIVATE_RELAY],
    )
    assert report["https"] == 200, report
    assert report["httpsUnauthorized"] == 401, report
    assert isinstance(report["http"], str), report


# -- the status page in Chromium ---------------------------------------------------------------

#: Fills in the login form and submits it.
_LOG_IN = """
(() => {
  document.getElementById("user").value = "admin";
  document.getElementById("password").value = %s;
  document.getElementById("loginButton").click();
  return true;
})()
"""

_ROWS = "[...document.querySelectorAll('#sessions tbody tr')].map((row) => row.dataset.session)"

#: The newest sample the graphs show, and the traffic graph's newest rates.
_GRAPHS = """
(() => {
  const traffic = document.getElementById("graphTraffic");
  return {until: Number(document.getElementById("graphs").dataset.until || 0),
          points: Number(traffic.dataset.points || 0),
          last: (traffic.dataset.last || "0,0").split(",").map(Number)};
})()
"""


def statusPageScenario(workdir: str, chromium: str) -> Dict[str, Any]:
    """
    In a loopback-only namespace: a server with --web-admin, a uclient session relaying to an
    echo peer, and Chromium on the status page: log in, wait for the session in the table
    and for traffic in a newer sample of the graphs, screenshot, end the session with its
    button, wait for the table to empty.  What the page and the API showed on the way.
    """
    from tests.integration.chromium_runner import ChromiumSession, loopbackOnly

    assert loopbackOnly(), "the status page test runs only in a loopback-only namespace"
    work = Path(workdir)
    adminPort = freeListeningPort()
    server = TurnServerProcess(
        work / "turn.log",
        ["--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers", "--web-admin",
         "--web-admin-port", str(adminPort), "--cli-password", ADMIN_PASSWORD],
    )
    peer = uclient = None
    report: Dict[str, Any] = {}
    try:
        admin = AdminClient(f"http://{HOST}:{adminPort}")
        peer = UdpEchoPeer(work / "peer.log")
        with open(work / "uclient.log", "wb") as log:
            # One client, 6000 messages 10 ms apart: a minute of traffic, ended early.
            uclient = subprocess.Popen(
                uclientCommand(server.port, peer.port, ("-u", USER, "-w", PASSWORD),
                               messages=6000, clients=1),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )
        # uclient allocates twice per client; the one that relays shows traffic.
        page = admin.waitFor("sessions", lambda page: any(
            s["traffic"]["fromClient"]["bytes"] for s in page["sessions"]))
        [session] = [s for s in page["sessions"] if s["traffic"]["fromClient"]["bytes"]]
        report["session"] = session["id"]
        report["sessions"] = sorted(s["id"] for s in page["sessions"])
        with ChromiumSession(chromium, f"http://{HOST}:{adminPort}/", 90,
                             extraFlags=("--window-size=1280,900",),
                             logPath=work / "chromium.log") as browser:
            browser.waitFor("document.readyState === 'complete' && "
                            "typeof login === 'function'", 20, "the login form")
            browser.evaluate(_LOG_IN % json.dumps(ADMIN_PASSWORD))
            browser.waitFor(
                "getComputedStyle(document.getElementById('status')).display !== 'none' && "
                "getComputedStyle(document.getElementById('login')).display === 'none'", 20,
                "the status view, and no login form, after logging in",
            )
            report["rows"] = sorted(browser.waitFor(f"{_ROWS}.length && {_ROWS}", 20,
                                                    "the sessions in the table"))
            first = browser.evaluate(_GRAPHS)
            report["graphsAtLogin"] = first
            report["graphsLater"] = browser.waitFor(
                f"(() => {{ const g = {_GRAPHS}; return g.until > {first['until']} && "
                "g.last[0] > 0 && g.last[1] > 0 && g; })()", 20,
                "a newer sample with traffic both ways",
            )
            report["summary"] = browser.evaluate(
                "document.getElementById('summary').textContent"
            )
            screenshot = browser.screenshot(work / "status-page.png")
            report["screenshot"] = str(screenshot)
            report["screenshotBytes"] = screenshot.stat().st_size
            browser.evaluate(
                f"document.querySelector('tr[data-session=\"{session['id']}\"] "
                "button.end').click()"
            )
            report["rowsAfterEnd"] = sorted(browser.waitFor(
                f"!{_ROWS}.includes({json.dumps(session['id'])}) && {{rows: {_ROWS}}}",
                20, "the table without the session",
            )["rows"])
            browser.screenshot(work / "status-page-ended.png")
        report["apiAfterEnd"] = sorted(s["id"] for s in admin.get("sessions")["sessions"])
        report["log"] = server.log()[-4000:]
    finally:
        if uclient is not None:
            stopProcess(uclient)
        if peer is not None:
            peer.stop()
        server.stop()
    return report


def test_statusPageInChromium(tmp_path) -> None:
    """
    Headless Chromium logs in to the status page, sees a running uclient session in the table
    and the traffic graph move with it, ends it with its button (the server deallocates it),
    and the test keeps a screenshot of the page as an artifact.
    """
    from tests.integration.chromium_runner import findChromium

    chromium = findChromium()
    if chromium is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but chromium is not installed", pytrace=False)
        pytest.skip("chromium is not installed (apt-get install chromium)")
    report = runInNetworkNamespace(
        "tests.integration.test_admin:statusPageScenario",
        {"workdir": str(tmp_path), "chromium": chromium}, timeout=150,
    )
    print(json.dumps({k: v for k, v in report.items() if k != "log"}, indent=1))
    assert report["session"] in report["rows"], report
    assert report["rows"] == report["sessions"], report
    later = report["graphsLater"]
    assert later["until"] > report["graphsAtLogin"]["until"]
    assert later["points"] >= 1 and later["last"][0] > 0 and later["last"][1] > 0
    assert f"{len(report['sessions'])} allocations" in report["summary"]
    remaining = sorted(set(report["sessions"]) - {report["session"]})
    assert report["rowsAfterEnd"] == remaining
    assert report["apiAfterEnd"] == remaining
    assert f"Session {report['session']} of '{USER}' ended through the admin API" \
        in report["log"]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for name in ("status-page.png", "status-page-ended.png"):
        shutil.copyfile(tmp_path / name, ARTIFACTS / name)
    assert (ARTIFACTS / "status-page.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["screenshotBytes"] > 10_000
