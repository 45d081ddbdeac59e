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


@pytest.mark.parametrize("options, expected", [((), False), (("--fingerprint",), True)],
                         ids=["plain", "fingerprint"])
def test_fingerprintOption(turnServer, options, expected) -> None:
    """
    With --fingerprint, the answer to a Binding request without FINGERPRINT ends with a valid
    FINGERPRINT (CRC-32 XOR 0x5354554e, checked here independently of the server's code);
    without it, there is none.
    """
    import socket
    import struct
    import zlib

    from tests.integration.harness import bindingRequest

    server = turnServer("--user", f"{USER}:{PASSWORD}", *options)
    request, transactionId = bindingRequest()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(request, (HOST, server.port))
        data, _ = s.recvfrom(2048)
    assert data[8:20] == transactionId
    hasFingerprint = data[-8:-4] == b"\x80\x28\x00\x04"
    assert hasFingerprint is expected, data.hex()
    if expected:
        (value,) = struct.unpack("!I", data[-4:])
        assert value == zlib.crc32(data[:-8]) ^ 0x5354554E, data.hex()
