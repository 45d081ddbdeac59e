# -*- test-case-name: tests.test_bench -*-
"""
The benchmark's TURN control plane: one client per UDP socket doing Allocate, CreatePermission
and ChannelBind with long-term credentials, built on the project's own STUN codec.

Blocking sockets with timeouts are enough here: the control plane runs before and between the
measured rounds, never during them.
"""

from __future__ import annotations

import socket
import time
from typing import List, Optional, Sequence, Tuple

from twisted_turn.auth import PasswordAlgorithm, longTermKey
from twisted_turn.stun.attributes import (
    ChannelNumber,
    ErrorCode,
    Lifetime,
    Nonce,
    Realm,
    RequestedTransport,
    Username,
    XorPeerAddress,
    XorRelayedAddress,
)
from twisted_turn.stun.message import (
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    decodeMessage,
    encodeMessage,
    newTransactionId,
)

__all__ = [
    "CHANNEL_BASE",
    "LOOPBACK",
    "TurnClient",
    "TurnError",
    "checkLoopback",
    "loadSocket",
    "openClients",
    "stunBinding",
]

#: The only address the benchmark ever sends to.
LOOPBACK = "127.0.0.1"

#: The first channel number; client I{i} binds C{CHANNEL_BASE + i}.
CHANNEL_BASE = 0x4000

_UDP = 17
# Socket buffers of the load side, so that the generator's own sockets are not where datagrams
# are lost (the kernel caps the value at net.core.rmem_max).
_BUFFER_BYTES = 4 << 20


class TurnError(Exception):
    """
    A TURN request failed: an error response, or no response at all.
    """


def checkLoopback(host: str) -> str:
    """
    @return: C{host} if it is an IPv4 loopback address.
    @raise ValueError: it is not; the benchmark sends nowhere else.
    """
    try:
        packed = socket.inet_aton(host)
    except OSError:
        raise ValueError(f"{host!r} is not an IPv4 address") from None
    if packed[0] != 127 or socket.inet_ntoa(packed) != host:
        raise ValueError(f"{host} is not a loopback address: the benchmark sends to 127.0.0.1 only")
    return host


def loadSocket(port: int = 0) -> socket.socket:
    """
    @return: a UDP socket bound to C{port} (0: an ephemeral port) of 127.0.0.1, with large
        buffers.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
        try:
            sock.setsockopt(socket.SOL_SOCKET, option, _BUFFER_BYTES)
        except OSError:
            pass
    sock.bind((LOOPBACK, port))
    return sock


def _exchange(
    sock: socket.socket,
    address: Optional[Tuple[str, int]],
    data: bytes,
    transactionId: bytes,
    timeout: float,
) -> Message:
    """
    Send a request and return the response with its transaction id, retransmitting with a
    doubling interval (RFC 8489 section 6.2.1, shortened: this is loopback).  Datagrams that are
    not that response (late ChannelData echoes, old responses) are skipped.
    """
    deadline = time.monotonic() + timeout
    interval = 0.1
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise TurnError(f"no response within {timeout:g} s")
        if address is None:
            sock.send(data)
        else:
            sock.sendto(data, address)
        resend = min(now + interval, deadline)
        interval *= 2
        while True:
            left = resend - time.monotonic()
            if left <= 0:
                break
            sock.settimeout(left)
            try:
                reply = sock.recv(65535)
            except socket.timeout:
                break
            except ConnectionRefusedError:
                # ICMP port unreachable: the server is not (yet) there.
                continue
            if len(reply) < 20 or reply[0] > 3 or reply[8:20] != transactionId:
                continue
            try:
                return decodeMessage(reply)
            except StunDecodeError:
                continue


def stunBinding(port: int, timeout: float = 1.0) -> bool:
    """
    @return: whether a STUN server on C{127.0.0.1:port} answers a Binding request with a
        success response within C{timeout} seconds.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOOPBACK, 0))
        transactionId = newTransactionId()
        request = encodeMessage(Method.BINDING, MessageClass.REQUEST, transactionId, [])
        try:
            response = _exchange(sock, (LOOPBACK, port), request, transactionId, timeout)
        except (TurnError, OSError):
            return False
    return response.messageClass == MessageClass.SUCCESS


class TurnClient:
    """
    One TURN client on its own UDP socket of 127.0.0.1.

    @ivar sock: the socket; after L{connect} it is connected to the server, which is what the
        C generator needs.
    @ivar relayed: the relayed transport address, once allocated.
    @ivar channel: the bound channel number, or L{None}.
    """

    def __init__(
        self,
        serverPort: int,
        username: str,
        password: str,
        timeout: float = 3.0,
    ) -> None:
        self.server = (LOOPBACK, serverPort)
        self.username = username
        self.password = password
        self.timeout = timeout
        self.sock = loadSocket()
        self.relayed: Optional[Tuple[str, int]] = None
        self.channel: Optional[int] = None
        self.peer: Optional[Tuple[str, int]] = None
        self._connected = False
        self._realm: Optional[str] = None
        self._nonce: Optional[str] = None
        self._key: Optional[bytes] = None

    def request(self, method: int, attributes: Sequence) -> Message:
        """
        Send one request signed with the long-term credentials, learning the realm and nonce
        from a 401 and a fresh nonce from a 438 (RFC 8489 section 9.2.5).

        @return: the success response.
        @raise TurnError: an error response, or none.
        """
        for _ in range(4):
            transactionId = newTransactionId()
            signed = list(attributes)
            if self._nonce is not None:
                signed += [Username(self.username), Realm(self._realm), Nonce(self._nonce)]
            data = encodeMessage(
                method, MessageClass.REQUEST, transactionId, signed, integrityKey=self._key
            )
            response = _exchange(
                self.sock, None if self._connected else self.server, data, transactionId,
                self.timeout,
            )
            if response.messageClass == MessageClass.SUCCESS:
                return response
            error = response.get(ErrorCode)
            code = error.code if error is not None else 0
            realm, nonce = response.get(Realm), response.get(Nonce)
            retry = nonce is not None and (
                # 401 without credentials is the challenge; with them, they were wrong.
                (code == 401 and self._nonce is None) or code == 438
            )
            if not retry:
                reason = f"{code} {error.reason}" if error is not None else "no ERROR-CODE"
                raise TurnError(f"{Method(method).name} failed: {reason}")
            if realm is not None:
                self._realm = realm.value
            if self._realm is None:
                raise TurnError(f"{Method(method).name}: {code} without a REALM")
            self._nonce = nonce.value
            self._key = longTermKey(
                self.username, self._realm, self.password, PasswordAlgorithm.MD5
            )
        raise TurnError(f"{Method(method).name}: the server keeps asking for a new nonce")

    def allocate(self, lifetime: int = 3600) -> Tuple[str, int]:
        """
        Allocate a UDP relay.

        @return: the relayed transport address.
        """
        response = self.request(Method.ALLOCATE, [RequestedTransport(_UDP), Lifetime(lifetime)])
        relayed = response.get(XorRelayedAddress)
        if relayed is None:
            raise TurnError("Allocate succeeded without XOR-RELAYED-ADDRESS")
        self.relayed = (relayed.host, relayed.port)
        return self.relayed

    def bind(self, peer: Tuple[str, int], channel: int) -> None:
        """
        Install a permission for the peer's address and bind C{channel} to the peer.
        """
        checkLoopback(peer[0])
        self.request(Method.CREATE_PERMISSION, [XorPeerAddress(*peer)])
        self.request(Method.CHANNEL_BIND, [ChannelNumber(channel), XorPeerAddress(*peer)])
        self.peer, self.channel = peer, channel

    def refresh(self, lifetime: int = 3600) -> None:
        """
        Refresh the allocation, and the permission and channel when bound (they last 300 and
        600 s, less than a long benchmark).
        """
        self.request(Method.REFRESH, [Lifetime(lifetime)])
        if self.peer is not None and self.channel is not None:
            self.bind(self.peer, self.channel)

    def connect(self) -> None:
        """
        Connect the socket to the server, so the generator can C{sendmmsg} without addresses
        and the kernel drops datagrams from anyone else.
        """
        self.sock.connect(self.server)
        self._connected = True

    def discard(self) -> int:
        """
        Read and drop whatever waits in the socket (late echoes of an earlier round, which the
        generator would otherwise take for this round's).

        @return: how many datagrams were dropped.
        """
        dropped = 0
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            for _ in range(1 << 20):
                try:
                    self.sock.recv(65535)
                except ConnectionRefusedError:
                    # A queued ICMP error, consumed by reporting it.
                    continue
                except OSError:
                    break
                dropped += 1
        finally:
            self.sock.settimeout(timeout)
        return dropped

    def close(self, deallocate: bool = True) -> None:
        """
        Delete the allocation (Refresh with lifetime 0, errors ignored) and close the socket.
        """
        if deallocate and self.relayed is not None:
            try:
                self.request(Method.REFRESH, [Lifetime(0)])
            except (TurnError, OSError):
                pass
        self.sock.close()


def openClients(
    count: int,
    serverPort: int,
    username: str,
    password: str,
    peer: Tuple[str, int],
    timeout: float = 3.0,
) -> List[TurnClient]:
    """
    Set up C{count} clients: each allocates, binds channel C{CHANNEL_BASE + i} to the peer and
    connects its socket to the server.

    @raise TurnError: a request failed; the clients made so far are closed.
    @raise ValueError: more clients than channel numbers.
    """
    if not 0 < count <= 0x4000:
        raise ValueError(f"{count} clients: between 1 and {0x4000}")
    checkLoopback(peer[0])
    clients: List[TurnClient] = []
    try:
        for index in range(count):
            client = TurnClient(serverPort, username, password, timeout)
            clients.append(client)
            client.allocate()
            client.bind(peer, CHANNEL_BASE + index)
            client.connect()
    except BaseException:
        for client in clients:
            client.close()
        raise
    return clients
