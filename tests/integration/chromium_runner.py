# -*- test-case-name: tests.integration -*-
"""
Run L{chromium_page.html <PAGE>} in headless Chromium and read its result over the DevTools
protocol on a pipe (C{--remote-debugging-pipe}): standard library only, no port, no websocket.

Chromium reads protocol messages from its file descriptor 3 and writes its own to descriptor 4,
each a JSON object ended by a NUL byte. The runner attaches to the page's target and evaluates
C{window.relayResult} (a promise) with C{awaitPromise}, so the answer arrives when the page is
done, in real time: C{--virtual-time-budget} (and so C{--dump-dom}) does not work here, because
virtual time runs the page's timers ahead while the WebRTC network does not move.

The browser is started with flags that keep it from reaching anything but the TURN server, but
it is meant to run inside a network namespace that has only loopback (C{unshare -n}); the
C{__main__} refuses to run elsewhere. Nothing here imports C{twisted_turn}.

By hand, with a server started in the same namespace (a relay-to-relay pair on a private
relay address needs no C{--allow-loopback-peers}: the server's own non-loopback relay addresses
are always reachable; a loopback relay address would need it)::

    unshare -n -p -f --kill-child sh -c 'ip link set lo up; \\
        ip addr add 10.11.12.13/32 dev lo; cd /work/main; \\
        PYTHONPATH=. twistd -n --pidfile= turn --listening-ip 127.0.0.1 \\
        --relay-ip 10.11.12.13 --user alice:secret --realm example.org & S=$!; sleep 2; \\
        python3 tests/integration/chromium_runner.py --turn \\
        "turn:127.0.0.1:3478?transport=udp"; kill $S'
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

#: The page this module runs.
PAGE = Path(__file__).resolve().with_name("chromium_page.html")

#: Flags for a browser that talks to nothing but the page's TURN server.
#:  - C{--no-sandbox}: Chromium refuses to start as root without it.
#:  - C{--allow-loopback-in-peer-connection}: without it no Allocate reaches a TURN server on
#:    127.0.0.1 at all; gathering stalls with no icecandidateerror and the page times out.
#:  - C{--host-resolver-rules}: no host name resolves. 127.0.0.1 must be excluded: TURN over
#:    TCP connects through the host resolver even for an IP literal, and without the EXCLUDE
#:    it fails with ERR_NAME_NOT_RESOLVED (-105) and the page only times out.
#:  - C{--no-proxy-server}: keeps TURN over TCP off any proxy set in the environment.
#:  - C{--disable-dev-shm-usage}: shared memory in /tmp, for a small or missing /dev/shm.
#:  - C{--remote-debugging-pipe}: the DevTools protocol on descriptors 3 and 4.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--allow-loopback-in-peer-connection",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
    "--disable-breakpad",
    "--disable-crash-reporter",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-quic",
    "--metrics-recording-only",
    "--password-store=basic",
    "--use-mock-keychain",
    "--remote-debugging-pipe",
)

#: Where Debian's chromium package puts the real binary; /usr/bin/chromium is a shell wrapper
#: that adds flags of its own from /etc/chromium.d.
CHROMIUM_CANDIDATES = (
    "/usr/lib/chromium/chromium",
    "chromium",
    "chromium-browser",
    "google-chrome",
)


class ChromiumError(Exception):
    """
    The browser did not give the page's result: it could not start, died, broke the protocol
    or ran out of time. C{log} is what it wrote on stderr.
    """

    def __init__(self, message: str, log: str = "") -> None:
        super().__init__(
            f"{message}\n--- chromium stderr (tail):\n{log[-4000:]}" if log else message
        )
        self.log = log


def findChromium() -> Optional[str]:
    """
    The path of a Chromium binary, preferring Debian's real one over its wrapper script, or
    L{None}.
    """
    for candidate in CHROMIUM_CANDIDATES:
        path = candidate if os.path.isabs(candidate) else shutil.which(candidate)
        if path and os.access(path, os.X_OK):
            return path
    return None


def loopbackOnly() -> bool:
    """
    Whether this process's network namespace has no interface but C{lo}. (Not from
    /sys/class/net: C{unshare -n} leaves the host's sysfs mounted, which lists the host's.)
    """
    return [name for _, name in socket.if_nameindex()] == ["lo"]


def pageUrl(page: Path, turnUrl: str, username: str, password: str, timeout: float) -> str:
    """
    The C{file:} URL of C{page} with its query string.
    """
    query = urllib.parse.urlencode(
        {
            "turn": turnUrl,
            "username": username,
            "password": password,
            "timeout": str(int(timeout * 1000)),
        }
    )
    return f"{page.resolve().as_uri()}?{query}"


class _Pipe:
    """
    The DevTools protocol over Chromium's pipe: requests by id, with a deadline.
    """

    def __init__(self, toBrowser: int, fromBrowser: int, deadline: float, alive) -> None:
        self._out = toBrowser
        self._in = fromBrowser
        self._deadline = deadline
        self._alive = alive
        self._buffer = b""
        self._nextId = 0

    def _read(self) -> Dict[str, Any]:
        while b"\0" not in self._buffer:
            left = self._deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no answer from chromium in time")
            ready, _, _ = select.select([self._in], [], [], min(left, 0.5))
            if not ready:
                if not self._alive():
                    raise EOFError("chromium exited")
                continue
            chunk = os.read(self._in, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed its protocol pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def call(self, method: str, params: Optional[dict] = None, sessionId: Optional[str] = None):
        """
        Send one request and return its C{result}, skipping events; raise L{ChromiumError}
        for a protocol error.
        """
        self._nextId += 1
        request: Dict[str, Any] = {"id": self._nextId, "method": method, "params": params or {}}
        if sessionId is not None:
            request["sessionId"] = sessionId
        os.write(self._out, json.dumps(request).encode() + b"\0")
        while True:
            message = self._read()
            if message.get("id") == self._nextId:
                if "error" in message:
                    raise ChromiumError(f"{method}: {message['error']}")
                return message["result"]


#: Evaluated in the page: waits for the page's script to have started, then for its result.
_AWAIT_RESULT = """
new Promise((resolve) => {
  const poll = () => window.relayResult ? resolve(window.relayResult) : setTimeout(poll, 50);
  poll();
})
"""


class ChromiumSession:
    """
    A fresh headless Chromium with a throwaway profile, showing one URL, driven over the
    DevTools pipe: L{evaluate} runs script in the page, L{screenshot} saves it as PNG.  Used
    as a context manager; the browser and all its children are killed on the way out,
    whatever happens.  Every failure to get an answer raises L{ChromiumError} with the
    browser's stderr.
    """

    def __init__(
        self,
        chromium: str,
        url: str,
        timeout: float,
        extraFlags: Sequence[str] = (),
        logPath: Optional[Path] = None,
    ) -> None:
        self.deadline = time.monotonic() + timeout
        self._command = [chromium, *CHROMIUM_FLAGS, *extraFlags]
        self._url = url
        self._profile = Path(tempfile.mkdtemp(prefix="chromium-"))
        self._log = Path(logPath) if logPath else self._profile / "stderr.log"
        self._process: Optional[subprocess.Popen] = None
        self._fds: List[int] = []
        self._pipe: Optional[_Pipe] = None
        self._sessionId: Optional[str] = None

    def __enter__(self) -> "ChromiumSession":
        try:
            self._start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def _start(self) -> None:
        # Descriptors 3 and 4 in the child: it reads requests on 3 and writes answers on 4.
        requestRead, requestWrite = os.pipe()
        answerRead, answerWrite = os.pipe()
        self._fds = [requestRead, requestWrite, answerRead, answerWrite]
        env = dict(os.environ, HOME=str(self._profile))
        env.pop("DBUS_SESSION_BUS_ADDRESS", None)
        command = [*self._command, f"--user-data-dir={self._profile / 'profile'}", self._url]

        def childDescriptors() -> None:
            # Move both ends above 4 first, so neither is overwritten by the other's dup2.
            reads = fcntl.fcntl(requestRead, fcntl.F_DUPFD, 10)
            writes = fcntl.fcntl(answerWrite, fcntl.F_DUPFD, 10)
            os.dup2(reads, 3)
            os.dup2(writes, 4)

        with open(self._log, "wb") as stderr:
            self._process = process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                env=env,
                pass_fds=(3, 4),
                preexec_fn=childDescriptors,
                start_new_session=True,
            )
        for fd in (requestRead, answerWrite):
            os.close(fd)
            self._fds.remove(fd)
        self._pipe = _Pipe(
            requestWrite, answerRead, self.deadline, lambda: process.poll() is None
        )
        self._sessionId = self._call(_attachToPage, self._pipe, self.deadline)

    def _call(self, function: Any, *arguments: Any) -> Any:
        try:
            return function(*arguments)
        except (EOFError, TimeoutError, OSError, ValueError) as e:
            status = self._process.poll() if self._process is not None else None
            raise ChromiumError(f"{e} (exit status {status})", _readLog(self._log)) from e
        except ChromiumError as e:
            raise ChromiumError(str(e), _readLog(self._log)) from e

    def send(self, method: str, params: Optional[dict] = None) -> Any:
        """
        One DevTools command to the page; its result.
        """
        assert self._pipe is not None
        return self._call(self._pipe.call, method, params, self._sessionId)

    def evaluate(self, expression: str, awaitPromise: bool = False) -> Any:
        """
        The value of C{expression} in the page (of the promise it gives, with
        C{awaitPromise}).

        @raise ChromiumError: the page threw, or the browser gave no answer in time.
        """
        while True:
            try:
                evaluation = self.send(
                    "Runtime.evaluate",
                    {"expression": expression, "awaitPromise": awaitPromise,
                     "returnByValue": True},
                )
                break
            except ChromiumError as e:
                # The initial about:blank's context goes away when the page commits.
                message = str(e).split("\n--- chromium stderr")[0].lower()
                transient = "context" in message or "navigated" in message
                if not transient or time.monotonic() > self.deadline:
                    raise
                time.sleep(0.1)
        if "exceptionDetails" in evaluation:
            raise ChromiumError(
                f"the page threw: {evaluation['exceptionDetails']}", _readLog(self._log)
            )
        return evaluation["result"].get("value")

    def waitFor(self, expression: str, timeout: float, what: str) -> Any:
        """
        Evaluate C{expression} every 100 ms until it gives something true: that value.

        @raise ChromiumError: it has not within C{timeout} seconds (C{what} says what was
            awaited).
        """
        deadline = min(self.deadline, time.monotonic() + timeout)
        while True:
            value = self.evaluate(expression)
            if value:
                return value
            if time.monotonic() > deadline:
                raise ChromiumError(f"the page never showed {what} (last {value!r})",
                                    _readLog(self._log))
            time.sleep(0.1)

    def screenshot(self, path: Path) -> Path:
        """
        Save what the page shows as a PNG at C{path}.
        """
        data = self.send("Page.captureScreenshot", {"format": "png"})["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    def close(self) -> None:
        if self._pipe is not None and self._process is not None \
                and self._process.poll() is None:
            try:
                self._pipe.call("Browser.close")
            except (ChromiumError, EOFError, TimeoutError, OSError, ValueError):
                pass
        self._pipe = None
        for fd in self._fds:
            try:
                os.close(fd)
            except OSError:
                pass
        self._fds = []
        if self._process is not None:
            _stop(self._process)
        shutil.rmtree(self._profile, ignore_errors=True)


def runRelayPage(
    chromium: str,
    page: Path = PAGE,
    turnUrl: str = "turn:127.0.0.1:3478?transport=udp",
    username: str = "alice",
    password: str = "secret",
    timeout: float = 60.0,
    extraFlags: Sequence[str] = (),
    logPath: Optional[Path] = None,
) -> Dict[str, Any]:
    """
    Open C{page} in a L{ChromiumSession} and return the page's result object (see the page's
    header comment: C{ok}, C{error}, C{offerer}, C{answerer}, ...). The page gives up after
    C{timeout - 5} seconds, the runner after C{timeout}.

    @raise ChromiumError: when no result came back.
    """
    pageTimeout = max(timeout - 5.0, 1.0)
    url = pageUrl(Path(page), turnUrl, username, password, pageTimeout)
    with ChromiumSession(chromium, url, timeout, extraFlags, logPath) as browser:
        result = browser.evaluate(_AWAIT_RESULT, awaitPromise=True)
        if not isinstance(result, dict):
            raise ChromiumError(f"the page gave no result object: {result!r}")
        return result


def _attachToPage(pipe: _Pipe, deadline: float) -> str:
    """
    Attach to the browser's page target (flat session mode) and return the session id.
    """
    while True:
        targets = pipe.call("Target.getTargets")["targetInfos"]
        pages = [t for t in targets if t.get("type") == "page"]
        if pages:
            return pipe.call(
                "Target.attachToTarget", {"targetId": pages[0]["targetId"], "flatten": True}
            )["sessionId"]
        if time.monotonic() > deadline:
            raise TimeoutError("chromium opened no page")
        time.sleep(0.1)


def _readLog(log: Path) -> str:
    try:
        return log.read_text(errors="replace")
    except OSError:
        return ""


def _descendants(pid: int) -> List[int]:
    """
    The processes below C{pid}, from /proc, children first.
    """
    children: Dict[int, List[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name (field 2) may hold spaces and parentheses: split after its last ")".
        parent = int(stat[stat.rindex(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: List[int] = []
    pending = [pid]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _stop(process: subprocess.Popen) -> None:
    """
    End the browser and every process below it. It runs in a session of its own, but its
    crashpad handlers call setsid() (even with crash reporting disabled), so they are found
    through /proc and killed too.
    """
    try:
        process.wait(timeout=2)
    except subprocess.TimeoutExpired:
        pass
    strays = _descendants(process.pid)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in strays:
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=5)
            break
        except subprocess.TimeoutExpired:
            continue
    if process.poll() is None:
        process.kill()
        process.wait(timeout=5)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--chromium", default=None, help="the Chromium binary")
    parser.add_argument("--turn", default="turn:127.0.0.1:3478?transport=udp")
    parser.add_argument("--username", default="alice")
    parser.add_argument("--password", default="secret")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--log", type=Path, default=None, help="keep Chromium's stderr here")
    parser.add_argument(
        "--outside-namespace",
        action="store_true",
        help="run even though this network namespace has interfaces other than lo",
    )
    options = parser.parse_args(argv)
    if not loopbackOnly() and not options.outside_namespace:
        print(
            "refusing to run outside a loopback-only namespace: run under unshare -n",
            file=sys.stderr,
        )
        return 2
    chromium = options.chromium or findChromium()
    if chromium is None:
        print("no chromium found (apt-get install chromium)", file=sys.stderr)
        return 2
    started = time.monotonic()
    try:
        result = runRelayPage(
            chromium,
            PAGE,
            options.turn,
            options.username,
            options.password,
            options.timeout,
            logPath=options.log,
        )
    except ChromiumError as e:
        print(e, file=sys.stderr)
        return 1
    result["runnerSeconds"] = round(time.monotonic() - started, 2)
    print(json.dumps(result, indent=2))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
