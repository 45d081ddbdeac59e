# -*- test-case-name: tests.integration.test_stunclient -*-
"""
coturn's C{turnutils_stunclient} against a real C{twistd turn}.
"""

from __future__ import annotations

import re
import subprocess

import pytest

from tests.integration.harness import HOST, PASSWORD, TOOL_TIMEOUT, USER, requireTool

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("options", [(), ("--fingerprint",)], ids=["plain", "fingerprint"])
def test_bindingShowsMappedAddress(turnServer, options) -> None:
    """
    A Binding request needs no credentials and is answered with the client's reflexive
    address, 127.0.0.1 and a real port, with or without FINGERPRINT on the server's messages.
    """
    stunclient = requireTool("turnutils_stunclient")
    server = turnServer("--user", f"{USER}:{PASSWORD}", *options)
    completed = subprocess.run(
        [stunclient, "-p", str(server.port), HOST],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        timeout=TOOL_TIMEOUT,
    )
    output = completed.stdout.decode(errors="replace")
    assert completed.returncode == 0, output
    match = re.search(r"UDP reflexive addr: 127\.0\.0\.1:(\d+)", output)
    assert match, output
    assert 0 < int(match.group(1)) < 65536, output
