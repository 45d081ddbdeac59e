# -*- test-case-name: tests.integration.test_chromium -*-
"""
Inside a private, loopback-only network namespace: start C{twistd turn}, run
L{chromium_page.html <tests.integration.chromium_runner.PAGE>} in headless Chromium once per
requested transport, and print one JSON line with what happened.

Run it as::

    unshare -n -p -f --kill-child --mount-proc python chromium_launcher.py --transport udp

C{-n} gives a network namespace with nothing but a (down) loopback interface, which this script
brings up; C{-p -f --kill-child} makes this script PID 1 of a PID namespace, so the kernel kills
everything it started (the server, the browser, Chromium's crashpad handlers, which leave the
browser's process group) when it exits or when C{unshare} dies; C{--mount-proc} gives it a
C{/proc} that shows that namespace's processes, which the runner reads to find strays.

It refuses (exit status L{REFUSED}) to run anywhere the network has an interface other than
C{lo}, before it starts or changes anything. Otherwise it prints, on one line, a JSON object:

    ok          true when every transport's page said ok
    error       what went wrong outside the pages (server start, deadline), or null
    results     per transport: the page's result object (see chromium_page.html), or
                C{{"ok": false, "error": ...}} when Chromium gave none
    server      the server's C{port}, C{minPort}, C{maxPort} (its relay range) and C{command}
    serverExit  the server's exit status once stopped
    serverLog   the tail of the server's log
    seconds     how long the whole run took

and exits 0 when C{ok}, 1 otherwise. The whole run, server stop included, is bounded by
C{--timeout} seconds (SIGALRM); the stop itself is bounded by the harness's waits.
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.integration.chromium_runner import (  # noqa: E402
    ChromiumError,
    findChromium,
    loopbackOnly,
    runRelayPage,
)
from tests.integration.harness import HOST, PASSWORD, USER, TurnServerProcess  # noqa: E402
from tests.integration.netns import PRIVATE_RELAY, setUpLoopback  # noqa: E402

#: Exit status when not in a loopback-only network namespace.
REFUSED = 3

#: What the page may be told to use: the C{transport} parameter of the TURN URL.
TRANSPORTS = ("udp", "tcp")

#: Characters of the server's log in the report.
LOG_TAIL = 6000

#: The server's relay address: private, not loopback, on the namespace's loopback interface, so
#: the relay-to-relay pair shows that the server's own relay addresses stay reachable without
#: --allow-loopback-peers (a loopback relay address would need it).
RELAY_HOST = PRIVATE_RELAY


class Deadline(BaseException):
    """
    The run's time is up, or it was asked to stop. A L{BaseException}, so that no
    C{except Exception} on the way swallows it.
    """


def _raiseDeadline(signum: int, frame: Any) -> None:
    raise Deadline(f"signal {signal.Signals(signum).name}")


def _tail(text: str, size: int = LOG_TAIL) -> str:
    return text[-size:]


def run(options: argparse.Namespace) -> Dict[str, Any]:
    """
    Start the server, run the page per transport, stop the server: the report (see the module
    docstring).
    """
    started = time.monotonic()
    deadline = started + options.timeout
    report: Dict[str, Any] = {
        "ok": False,
        "error": None,
        "results": {},
        "server": None,
        "serverExit": None,
        "serverLog": "",
        "seconds": None,
    }
    workdir = Path(options.workdir or tempfile.mkdtemp(prefix="chromium-launcher-"))
    workdir.mkdir(parents=True, exist_ok=True)
    server: Optional[TurnServerProcess] = None
    # PID 1 of a PID namespace gets no default action for SIGTERM: without a handler it would
    # ignore it.
    signal.signal(signal.SIGALRM, _raiseDeadline)
    signal.signal(signal.SIGTERM, _raiseDeadline)
    signal.signal(signal.SIGINT, _raiseDeadline)
    # The server's stop gets what is left after the alarm: keep some seconds for it.
    signal.alarm(max(int(options.timeout) - 25, 5))
    try:
        setUpLoopback([RELAY_HOST])
        chromium = options.chromium or findChromium()
        if chromium is None:
            raise RuntimeError("no chromium found (apt-get install chromium)")
        server = TurnServerProcess(
            workdir / "turn.log", ["--user", f"{USER}:{PASSWORD}"], relayHosts=(RELAY_HOST,)
        )
        report["server"] = {
            "relayHost": RELAY_HOST,
            "port": server.port,
            "minPort": server.minPort,
            "maxPort": server.maxPort,
            "command": server.command,
        }
        for transport in options.transport:
            left = deadline - 25 - time.monotonic()
            if left < 10:
                raise Deadline(f"no time left for transport {transport}")
            try:
                result = runRelayPage(
                    chromium,
                    turnUrl=f"turn:{HOST}:{server.port}?transport={transport}",
                    username=USER,
                    password=PASSWORD,
                    timeout=min(options.page_timeout, left),
                    logPath=workdir / f"chromium-{transport}.log",
                )
            except ChromiumError as e:
                result = {"ok": False, "error": f"chromium gave no result: {e}"}
            report["results"][transport] = result
        report["ok"] = all(
            report["results"].get(t, {}).get("ok") is True for t in options.transport
        )
    except Deadline as e:
        report["error"] = f"stopped early ({e}; budget {options.timeout}s)"
    except Exception as e:
        report["error"] = f"{type(e).__name__}: {e}"
    finally:
        signal.alarm(0)
        if server is not None:
            try:
                server.stop()
            finally:
                report["serverExit"] = server.process.returncode
                report["serverLog"] = _tail(server.log())
        report["seconds"] = round(time.monotonic() - started, 2)
    if report["error"] is not None:
        report["ok"] = False
    return report


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument(
        "--transport",
        action="append",
        choices=TRANSPORTS,
        help="the TURN URL's transport; repeat for several (default: udp)",
    )
    parser.add_argument("--chromium", default=None, help="the Chromium binary")
    parser.add_argument(
        "--workdir", default=None, help="where the server's and Chromium's logs go"
    )
    parser.add_argument(
        "--timeout", type=float, default=100.0, help="seconds for the whole run, stop included"
    )
    parser.add_argument(
        "--page-timeout", type=float, default=45.0, help="seconds per page at most"
    )
    options = parser.parse_args(argv)
    options.transport = options.transport or ["udp"]
    # Before anything is started or changed: outside a fresh namespace, refuse.
    if not loopbackOnly():
        interfaces = [name for _, name in socket.if_nameindex()]
        print(
            f"refusing to run outside a loopback-only network namespace (interfaces: "
            f"{', '.join(interfaces)}): run under unshare -n -p -f --kill-child --mount-proc",
            file=sys.stderr,
        )
        return REFUSED
    report = run(options)
    print(json.dumps(report), flush=True)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
