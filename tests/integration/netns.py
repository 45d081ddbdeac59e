# -*- test-case-name: tests.integration.test_peerpolicy -*-
"""
Run one scenario function inside a private network namespace of its own, for the tests that
need addresses loopback alone does not give: a non-loopback relay address, the IPv6 spellings
of an IPv4 address assigned to a local interface so a datagram sent to them would be seen.

L{runInNetworkNamespace} starts this module under C{unshare -n -p -f --kill-child --mount-proc}:
a network namespace with nothing but its own (down) loopback interface, and a PID namespace
whose end takes every process the scenario started (servers, peers) down with it. Inside,
C{main} brings C{lo} up, adds the requested addresses to it, calls the scenario (a
C{module:function} taking keyword arguments and returning something JSON can encode) and
prints its result as the last line of its output. Nothing the scenario sends can leave the
namespace: it has no other interface. Nothing here imports C{twisted_turn}.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

#: A network namespace with only loopback, a PID namespace whose end kills all in it, and a
#: /proc that shows that PID namespace (nsenter finds processes there).
UNSHARE_FLAGS = ("-n", "-p", "-f", "--kill-child", "--mount-proc")

#: Exit status when started outside a fresh namespace.
REFUSED = 3

#: A private (not loopback) relay address for relay-to-relay tests, held by the namespace's
#: loopback: the server's own non-loopback relay addresses stay reachable without
#: --allow-loopback-peers, where a loopback one would need it.
PRIVATE_RELAY = "10.11.12.13"

#: Marks the result line among whatever else the scenario printed.
RESULT_PREFIX = "netns-result: "


def _unavailable(reason: str) -> None:
    """
    Skip, or fail under CI (the C{CI} environment variable is set), as C{requireTool} does.
    """
    import pytest

    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {reason}", pytrace=False)
    pytest.skip(reason)


def runInNetworkNamespace(
    target: str, arguments: Dict[str, Any], addresses: Sequence[str] = (), timeout: float = 120
) -> Any:
    """
    Call C{target} (C{"module:function"}) with C{arguments} in a fresh network namespace whose
    loopback interface also holds C{addresses}, and return what it returned.

    @raise AssertionError: the scenario raised (its traceback is in the message), printed no
        result or ran past C{timeout} seconds.
    """
    unshare = shutil.which("unshare")
    if unshare is None:
        _unavailable("unshare is not installed (apt-get install util-linux)")
    if shutil.which("ip") is None:
        _unavailable("ip is not installed (apt-get install iproute2)")
    from tests.integration.harness import checkoutEnvironment

    command = [
        unshare, *UNSHARE_FLAGS, sys.executable, "-m", "tests.integration.netns", target,
        json.dumps(arguments), *addresses,
    ]
    try:
        completed = subprocess.run(
            command, cwd=REPO_ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
            timeout=timeout, env=checkoutEnvironment(PYTHONUNBUFFERED="1"),
        )
    except subprocess.TimeoutExpired as e:
        raise AssertionError(
            f"{target} ran past {timeout}s in its namespace\nstdout: {e.stdout!r}\n"
            f"stderr: {e.stderr!r}"
        ) from None
    if completed.returncode != 0 and "unshare failed" in completed.stderr:
        _unavailable(
            f"unshare {' '.join(UNSHARE_FLAGS)} is not permitted here (needs root or user "
            f"namespaces): {completed.stderr.strip()}"
        )
    results = [
        line[len(RESULT_PREFIX):] for line in completed.stdout.splitlines()
        if line.startswith(RESULT_PREFIX)
    ]
    if completed.returncode != 0 or not results:
        raise AssertionError(
            f"{target} failed in its namespace (exit {completed.returncode})\n"
            f"stdout:\n{completed.stdout[-6000:]}\nstderr:\n{completed.stderr[-6000:]}"
        )
    return json.loads(results[-1])


def _ip(*arguments: str) -> None:
    subprocess.run(["ip", *arguments], check=True, stdin=subprocess.DEVNULL, timeout=30)


def setUpLoopback(addresses: Sequence[str]) -> None:
    """
    Bring C{lo} up and add C{addresses} to it, each as a host address (/32 or /128).
    """
    _ip("link", "set", "lo", "up")
    for address in addresses:
        if ":" in address:
            _ip("-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad")
        else:
            _ip("addr", "add", f"{address}/32", "dev", "lo")


def main(argv: Optional[List[str]] = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--peer"]:
        return _peerMain()
    target, arguments, *addresses = argv
    if [name for _, name in socket.if_nameindex()] != ["lo"]:
        print("refusing to run outside a fresh network namespace (unshare -n)", file=sys.stderr)
        return REFUSED
    setUpLoopback(addresses)
    moduleName, _, functionName = target.partition(":")
    function = getattr(importlib.import_module(moduleName), functionName)
    try:
        result = function(**json.loads(arguments))
    except BaseException:
        traceback.print_exc()
        return 1
    print(RESULT_PREFIX + json.dumps(result), flush=True)
    return 0




class PeerNamespace:
    """
    From inside a namespace made by L{runInNetworkNamespace}: a second network namespace,
    joined to this one by a veth pair, holding C{addresses} on its loopback, for peers that
    are really elsewhere: not addresses of this host, reached through a route.

    This side gets L{LOCAL4} and L{LOCAL6} on the veth, and default routes of both families
    through it; the other side gets L{REMOTE4} and L{REMOTE6}. Use it as a context manager,
    and L{listen} for UDP sockets there; on leaving, L{received} holds
    C{{"host port": [payload, ...]}} for each of them.
    """

    LOCAL4, REMOTE4 = "10.200.0.1", "10.200.0.2"
    LOCAL6, REMOTE6 = "fd00:200::1", "fd00:200::2"

    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = list(addresses)
        self.received: Dict[str, List[str]] = {}
        self._process: Optional[subprocess.Popen] = None

    def __enter__(self) -> "PeerNamespace":
        self._process = subprocess.Popen(
            [shutil.which("unshare") or "unshare", "-n", sys.executable, "-m",
             "tests.integration.netns", "--peer"],
            cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        pid = str(self._process.pid)
        # unshare execs python in the new namespace: wait until it has (its netns differs).
        for _ in range(500):
            if os.readlink(f"/proc/{pid}/ns/net") != os.readlink("/proc/self/ns/net"):
                break
            time.sleep(0.01)

        def there(*arguments: str) -> None:
            subprocess.run(["nsenter", "-t", pid, "-n", "ip", *arguments], check=True,
                           stdin=subprocess.DEVNULL, timeout=30)

        _ip("link", "add", "veth-turn", "type", "veth", "peer", "name", "veth-peer",
            "netns", pid)
        _ip("addr", "add", f"{self.LOCAL4}/30", "dev", "veth-turn")
        _ip("-6", "addr", "add", f"{self.LOCAL6}/64", "dev", "veth-turn", "nodad")
        _ip("link", "set", "veth-turn", "up")
        _ip("route", "add", "default", "via", self.REMOTE4)
        _ip("-6", "route", "add", "default", "via", self.REMOTE6)
        there("link", "set", "lo", "up")
        there("addr", "add", f"{self.REMOTE4}/30", "dev", "veth-peer")
        there("-6", "addr", "add", f"{self.REMOTE6}/64", "dev", "veth-peer", "nodad")
        there("link", "set", "veth-peer", "up")
        there("route", "add", "default", "via", self.LOCAL4)
        there("-6", "route", "add", "default", "via", self.LOCAL6)
        for address in self.addresses:
            if ":" in address:
                there("-6", "addr", "add", f"{address}/128", "dev", "lo", "nodad")
            else:
                there("addr", "add", f"{address}/32", "dev", "lo")
        # Neighbour discovery needs the link-local addresses, which are tentative until their
        # duplicate address detection is over (about a second).
        deadline = time.monotonic() + 10
        for command in (["ip", "-6", "addr", "show", "tentative"],
                        ["nsenter", "-t", pid, "-n", "ip", "-6", "addr", "show", "tentative"]):
            while subprocess.run(command, capture_output=True, text=True, timeout=30).stdout:
                if time.monotonic() > deadline:
                    raise AssertionError("IPv6 addresses on the veth stayed tentative")
                time.sleep(0.05)
        return self

    def listen(self, pairs: Sequence[Sequence[Any]]) -> None:
        """
        Bind a UDP socket on each C{(host, port)} in the other namespace.
        """
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        process.stdin.write(json.dumps([list(pair) for pair in pairs]) + "\n")
        process.stdin.flush()
        answer = process.stdout.readline().strip()
        if answer != "listening":
            raise AssertionError(f"the peer namespace could not listen: {answer!r}")

    def __exit__(self, *exc: Any) -> None:
        process = self._process
        assert process is not None
        try:
            # Closing its standard input (communicate does) makes it report and exit.
            output, _ = process.communicate(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        lines = output.strip().splitlines()
        if lines:
            self.received = json.loads(lines[-1])


def _peerMain() -> int:
    """
    The other side of L{PeerNamespace}: each line of standard input is a JSON list of
    C{(host, port)} to listen on (answered "listening"); when it closes, print what each
    socket received.
    """
    import select

    sockets: Dict[socket.socket, str] = {}
    received: Dict[str, List[str]] = {}
    while True:
        readable, _, _ = select.select([*sockets, sys.stdin], [], [])
        for sock in readable:
            if sock is sys.stdin:
                line = sys.stdin.readline()
                if not line:
                    print(json.dumps(received), flush=True)
                    return 0
                for host, port in json.loads(line):
                    listener = socket.socket(
                        socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM
                    )
                    listener.bind((host, port))
                    sockets[listener] = f"{host} {port}"
                    received[f"{host} {port}"] = []
                print("listening", flush=True)
                continue
            received[sockets[sock]].append(sock.recv(65535).decode(errors="replace"))


if __name__ == "__main__":
    sys.exit(main())
