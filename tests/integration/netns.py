# -*- test-case-name: tests.integration.test_peerpolicy -*-
"""
Run one scenario function inside a private network namespace of its own, for the tests that
need addresses loopback alone does not give: a non-loopback relay address, the IPv6 spellings
of an IPv4 address assigned to a local interface so a datagram sent to them would be seen.

L{runInNetworkNamespace} starts this module under C{unshare -n -p -f --kill-child}: a network
namespace with nothing but its own (down) loopback interface, and a PID namespace whose end
takes every process the scenario started (servers, peers) down with it. Inside, C{main} brings
C{lo} up, adds the requested addresses to it, calls the scenario (a C{module:function} taking
keyword arguments and returning something JSON can encode) and prints its result as the last
line of its output. Nothing the scenario sends can leave the namespace: it has no other
interface. Nothing here imports C{twisted_turn}.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import socket
import subprocess
import sys
import traceback
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

REPO_ROOT = Path(__file__).resolve().parents[2]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

#: A network namespace with only loopback, and a PID namespace whose end kills all in it.
UNSHARE_FLAGS = ("-n", "-p", "-f", "--kill-child")

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
    target, arguments, *addresses = sys.argv[1:] if argv is None else argv
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


if __name__ == "__main__":
    sys.exit(main())
