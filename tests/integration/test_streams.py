# -*- test-case-name: tests.integration.test_streams -*-
"""
The stream listeners of a real C{twistd turn} on raw sockets: framing across and within
segments, what closes a connection, and the allocation's life tied to its connection.
"""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from tests.integration.harness import (
    HOST,
    PASSWORD,
    USER,
    bindingRequest,
    requireModule,
    stunSummary,
    udpPortFree,
)

pytestmark = pytest.mark.integration

STATIC = ("--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers")


def connect(port: int) -> socket.socket:
    sock = socket.create_connection((HOST, port), timeout=5)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def readMessages(sock: socket.socket, count: int) -> list:
    """
    Read C{count} STUN messages from a stream, using their length fields.
    """
    buffer = b""
    messages = []
    while len(messages) < count:
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {len(messages)} of {count} messages"
        buffer += chunk
        while len(buffer) >= 20 and len(buffer) >= 20 + int.from_bytes(buffer[2:4], "big"):
            size = 20 + int.from_bytes(buffer[2:4], "big")
            messages.append(buffer[:size])
            buffer = buffer[size:]
    return messages


def test_bindingAcrossSegments(turnServer) -> None:
    """
    A Binding request sent in three segments, with pauses between them, is answered once.
    """
    server = turnServer(*STATIC)
    request, transactionId = bindingRequest()
    with connect(server.port) as sock:
        for chunk in (request[:2], request[2:11], request[11:]):
            sock.sendall(chunk)
            time.sleep(0.05)
        [response] = readMessages(sock, 1)
    assert response[8:20] == transactionId
    assert stunSummary(response) == (0x0101, None)


def test_manyRequestsInOneSegment(turnServer) -> None:
    """
    Five Binding requests in one segment get five responses, in order.
    """
    server = turnServer(*STATIC)
    requests = [bindingRequest() for _ in range(5)]
    with connect(server.port) as sock:
        sock.sendall(b"".join(request for request, _ in requests))
        responses = readMessages(sock, 5)
    assert [r[8:20] for r in responses] == [tid for _, tid in requests]


def test_garbageClosesConnection(turnServer) -> None:
    """
    Bytes that are neither STUN nor ChannelData make the server close the connection; the
    server keeps answering others.
    """
    server = turnServer(*STATIC)
    with connect(server.port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert closedByPeer(sock)
    request, transactionId = bindingRequest()
    with connect(server.port) as sock:
        sock.sendall(request)
        [response] = readMessages(sock, 1)
    assert response[8:20] == transactionId


def closedByPeer(sock: socket.socket) -> bool:
    """
    Whether the server closed (or reset: it aborts bad connections) C{sock}.
    """
    try:
        return sock.recv(100) == b""
    except ConnectionResetError:
        return True


def test_noTcp(turnServer) -> None:
    """
    With --no-tcp nothing listens for TCP on the listening port; UDP still answers.
    """
    server = turnServer(*STATIC, "--no-tcp")
    with pytest.raises(ConnectionRefusedError):
        connect(server.port)


def test_allocationEndsWithConnection(turnServer) -> None:
    """
    An allocation made over TCP is deleted when its connection is cut without a Refresh: its
    relay port is free again at once.
    """
    server = turnServer(*STATIC)
    turn = requireModule("aioice.turn")

    async def scenario() -> int:
        relay, _ = await turn.create_turn_endpoint(
            asyncio.DatagramProtocol, server_addr=(HOST, server.port), username=USER,
            password=PASSWORD, transport="tcp",
        )
        relayedPort = relay.get_extra_info("sockname")[1]
        assert not udpPortFree(relayedPort)
        # Cut the TCP connection under aioice, so no Refresh with LIFETIME 0 is sent.
        relay._TurnTransport__inner_protocol.transport.abort()
        return relayedPort

    relayedPort = asyncio.run(asyncio.wait_for(scenario(), 30))
    deadline = time.monotonic() + 5
    while not udpPortFree(relayedPort):
        assert time.monotonic() < deadline, "the relay port is still held after the close"
        time.sleep(0.05)
