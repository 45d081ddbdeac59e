# -*- test-case-name: tests.test_dtls -*-
"""
Tests for L{twisted_turn.dtls}: real pyOpenSSL DTLS clients on memory BIOs talk to a
L{DtlsServer} through datagrams shuttled in memory.
"""

from __future__ import annotations

import ast
import os
import time
from typing import Any, Dict, List, Optional, Tuple

from hypothesis import given, settings
from hypothesis import strategies as st
from OpenSSL import SSL
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn import dtls
from twisted_turn.tls import CertificateError
from tests.integration.harness import writeCertificate
from twisted_turn.dtls import (
    COOKIE_WINDOW,
    DEFAULT_CIPHERS,
    DTLS1_2_VERSION,
    MAX_RECORD_PAYLOAD,
    DtlsServer,
    makeDtlsContext,
)

CLIENT = ("192.0.2.10", 40000)
OTHER = ("192.0.2.11", 40001)
HANDSHAKE = 22
APPLICATION_DATA = 23
CLIENT_HELLO = 1
HELLO_VERIFY_REQUEST = 3


readAll = dtls._readAll


def records(datagram: bytes) -> List[Tuple[int, int, bytes]]:
    """
    The (content type, epoch, payload) of each record of C{datagram}.
    """
    result = []
    offset = 0
    while offset < len(datagram):
        length = int.from_bytes(datagram[offset + 11 : offset + 13], "big")
        epoch = int.from_bytes(datagram[offset + 3 : offset + 5], "big")
        result.append((datagram[offset], epoch, datagram[offset + 13 : offset + 13 + length]))
        offset += 13 + length
    return result


def record(contentType: int, epoch: int, sequence: int, payload: bytes) -> bytes:
    return (
        bytes([contentType, 0xFE, 0xFD])
        + epoch.to_bytes(2, "big")
        + sequence.to_bytes(6, "big")
        + len(payload).to_bytes(2, "big")
        + payload
    )


class Client:
    """
    A pyOpenSSL DTLS client on memory BIOs at address C{addr}.
    """

    def __init__(self, addr: Any, context: Optional[SSL.Context] = None) -> None:
        if context is None:
            context = SSL.Context(SSL.DTLS_CLIENT_METHOD)
        self.addr = addr
        self.connection = SSL.Connection(context, None)
        self.connection.set_connect_state()
        self.established = False
        self.received: List[bytes] = []
        self.closedByServer = False
        self.error: Optional[Exception] = None

    def _handshake(self) -> None:
        if self.established or self.error is not None:
            return
        try:
            self.connection.do_handshake()
        except SSL.WantReadError:
            return
        except SSL.Error as e:
            self.error = e
            return
        self.established = True

    def output(self) -> bytes:
        """
        Drive the handshake and return what the client has to send (one datagram).
        """
        self._handshake()
        return readAll(self.connection)

    def input(self, datagram: bytes) -> None:
        self.connection.bio_write(datagram)
        self._handshake()
        while self.established and not self.closedByServer and self.error is None:
            try:
                self.received.append(self.connection.recv(65536))
            except SSL.WantReadError:
                return
            except SSL.ZeroReturnError:
                self.closedByServer = True
            except SSL.Error as e:
                self.error = e

    def send(self, data: bytes) -> bytes:
        """
        Encrypt C{data} as one record and return the datagram.
        """
        self.connection.send(data)
        return readAll(self.connection)


class DtlsTestCase(SynchronousTestCase):
    """
    A L{DtlsServer} on a L{Clock}, recording what it sends, delivers and loses.
    """

    serverOptions: Dict[str, Any] = {}

    def setUp(self) -> None:
        self.directory = self.mktemp()
        certFile, keyFile, self.certificate = writeCertificate(self.directory, "server")
        self.context = makeDtlsContext(certFile, keyFile)
        self.clock = Clock()
        self.clock.advance(1_000_000)
        self.sent: List[Tuple[bytes, Any]] = []
        self.delivered: List[Tuple[bytes, Any]] = []
        self.lost: List[Any] = []
        self.server = self.makeServer(**self.serverOptions)

    def makeServer(self, **options: Any) -> DtlsServer:
        return DtlsServer(
            lambda: self.context,
            self.clock,
            lambda data, addr: self.sent.append((data, addr)),
            lambda data, addr: self.delivered.append((data, addr)),
            self.lost.append,
            **options,
        )

    def takeSent(self, addr: Any = None) -> List[bytes]:
        """
        Remove and return the datagrams the server sent (to C{addr} only, if given).
        """
        taken = [data for data, to in self.sent if addr is None or to == addr]
        self.sent = [(data, to) for data, to in self.sent if addr is not None and to != addr]
        return taken

    def assertNoState(self) -> None:
        """
        The server keeps nothing for any source.
        """
        self.assertEqual(self.server._handshaking, {})
        self.assertEqual(self.server._established, {})
        self.assertEqual(self.server.handshakesInProgress, 0)
        self.assertEqual(self.server.sessions, 0)

    def pump(self, *clients: Client, rounds: int = 20) -> None:
        """
        Move datagrams between C{clients} and the server until nobody has anything to say.
        """
        byAddr = {client.addr: client for client in clients}
        for _ in range(rounds):
            moved = False
            for client in clients:
                data = client.output()
                if data:
                    moved = True
                    self.server.datagramReceived(data, client.addr)
            for data, addr in self.sent:
                if addr in byAddr:
                    moved = True
                    byAddr[addr].input(data)
            self.sent = [(data, addr) for data, addr in self.sent if addr not in byAddr]
            if not moved:
                return

    def connect(self, addr: Any = CLIENT, context: Optional[SSL.Context] = None) -> Client:
        client = Client(addr, context)
        self.pump(client)
        self.assertTrue(client.established, client.error)
        self.assertTrue(self.server.established(addr))
        return client

    def helloWithCookie(self, addr: Any) -> Client:
        """
        A client that sends its ClientHello, answers the HelloVerifyRequest, and sends its
        ClientHello with the cookie; what the server sends back is left in L{sent}.
        """
        client = Client(addr)
        self.server.datagramReceived(client.output(), addr)
        (verify,) = self.takeSent(addr)
        client.input(verify)
        self.server.datagramReceived(client.output(), addr)
        return client

    def startHandshake(self, addr: Any) -> Client:
        """
        A client whose cookie exchange is done and whose second ClientHello was answered with the
        server's flight, which is dropped: its handshake stays in progress.
        """
        client = self.helloWithCookie(addr)
        self.assertTrue(self.takeSent(addr))
        return client

    def assertTalks(self, client: Client, message: bytes = b"ping") -> None:
        """
        C{client} and the server exchange one record each way.
        """
        before = len(self.delivered)
        self.server.datagramReceived(client.send(message), client.addr)
        self.assertEqual(self.delivered[before:], [(message, client.addr)])
        self.server.write(message[::-1], client.addr)
        for data in self.takeSent(client.addr):
            client.input(data)
        self.assertEqual(client.received[-1:], [message[::-1]])


class HandshakeTests(DtlsTestCase):
    def test_handshakeWithCookieThenDataBothWays(self) -> None:
        """
        A client's first ClientHello is answered with a HelloVerifyRequest; with the cookie, the
        handshake finishes (DTLS 1.2, an ECDHE AEAD suite) and records flow both ways, each
        delivered once and in order.
        """
        client = Client(CLIENT)
        self.server.datagramReceived(client.output(), CLIENT)
        (verify,) = self.takeSent(CLIENT)
        ((contentType, epoch, payload),) = records(verify)
        self.assertEqual((contentType, epoch, payload[0]), (HANDSHAKE, 0, HELLO_VERIFY_REQUEST))
        self.assertNoState()
        client.input(verify)
        self.pump(client)

        self.assertTrue(client.established)
        self.assertEqual(client.connection.get_protocol_version_name(), "DTLSv1.2")
        self.assertIn(client.connection.get_cipher_name(), DEFAULT_CIPHERS.split(":"))
        self.assertEqual(self.server.sessions, 1)
        self.assertEqual(self.server.handshakesInProgress, 0)
        self.assertEqual(self.server.counters["cookieSent"], 1)
        self.assertEqual(self.server.counters["handshakesStarted"], 1)
        self.assertEqual(self.server.counters["established"], 1)

        for message in [b"one", b"two", b"three"]:
            self.server.datagramReceived(client.send(message), CLIENT)
        self.assertEqual(
            self.delivered, [(b"one", CLIENT), (b"two", CLIENT), (b"three", CLIENT)]
        )
        self.server.write(b"first", CLIENT)
        self.server.write(b"second", CLIENT)
        sent = self.takeSent(CLIENT)
        self.assertEqual(len(sent), 2)
        for datagram in sent:
            self.assertEqual([r[:2] for r in records(datagram)], [(APPLICATION_DATA, 1)])
            client.input(datagram)
        self.assertEqual(client.received, [b"first", b"second"])
        self.assertEqual(self.lost, [])

    def test_recordsPackedInOneDatagram(self) -> None:
        """
        Several records in one datagram are each delivered once, in order.
        """
        client = self.connect()
        client.connection.send(b"a")
        client.connection.send(b"b")
        client.connection.send(b"c")
        self.server.datagramReceived(readAll(client.connection), CLIENT)
        self.assertEqual([d for d, _ in self.delivered], [b"a", b"b", b"c"])

    def test_largeRecords(self) -> None:
        """
        A record of L{MAX_RECORD_PAYLOAD} bytes goes both ways in one datagram, larger than the MTU.
        """
        client = self.connect()
        big = os.urandom(MAX_RECORD_PAYLOAD)
        self.server.datagramReceived(client.send(big), CLIENT)
        self.assertEqual(self.delivered, [(big, CLIENT)])
        self.server.write(big, CLIENT)
        (datagram,) = self.takeSent(CLIENT)
        client.input(datagram)
        self.assertEqual(client.received, [big])

    def test_flightsFitTheMtu(self) -> None:
        """
        The server's handshake flights are cut into datagrams of at most C{mtu} bytes, each
        holding whole records, and the handshake still finishes.
        """
        server = self.makeServer(mtu=300)
        client = Client(CLIENT)
        sizes = []
        for _ in range(20):
            data = client.output()
            if data:
                server.datagramReceived(data, CLIENT)
            sent = self.takeSent()
            if not data and not sent:
                break
            for datagram in sent:
                sizes.append(len(datagram))
                self.assertEqual(sum(13 + len(r[2]) for r in records(datagram)), len(datagram))
                client.input(datagram)
        self.assertTrue(client.established)
        self.assertLessEqual(max(sizes), 300)
        self.assertGreater(len(sizes), 3)

    def test_handshakeFailure(self) -> None:
        """
        A client without a cipher suite in common fails its handshake: counted, forgotten, and
        C{lost} is not called since no session was established.
        """
        context = SSL.Context(SSL.DTLS_CLIENT_METHOD)
        context.set_cipher_list(b"AES128-SHA")
        client = Client(CLIENT, context)
        self.pump(client)
        self.assertFalse(client.established)
        self.assertIsNotNone(client.error)
        self.assertEqual(self.server.counters["handshakeFailed"], 1)
        self.assertNoState()
        self.assertEqual(self.lost, [])

    def test_oldProtocolRefused(self) -> None:
        """
        A client that only speaks DTLS 1.0 cannot connect: the context is DTLS 1.2 only.
        """
        context = SSL.Context(SSL.DTLS_CLIENT_METHOD)
        context.set_max_proto_version(0xFEFF)
        client = Client(CLIENT, context)
        self.pump(client)
        self.assertFalse(client.established)
        self.assertNoState()

    def test_retransmittedClientHelloKeepsSession(self) -> None:
        """
        The client's second ClientHello arriving again after the handshake (a retransmission)
        does not replace the session.
        """
        client = Client(CLIENT)
        self.server.datagramReceived(client.output(), CLIENT)
        (verify,) = self.takeSent(CLIENT)
        client.input(verify)
        secondHello = client.output()
        self.server.datagramReceived(secondHello, CLIENT)
        for data in self.takeSent(CLIENT):
            client.input(data)
        self.pump(client)
        self.assertTrue(client.established)
        self.server.datagramReceived(secondHello, CLIENT)
        self.takeSent()
        self.assertEqual(self.server.counters["replaced"], 0)
        self.assertEqual(self.lost, [])
        self.assertTalks(client)

    def test_clientRestartReplacesSession(self) -> None:
        """
        A new client on the address of an established session (a restarted client) gets a cookie
        exchange and then a new session; the old one is lost.  Until the cookie is valid the old
        session is untouched.
        """
        old = self.connect()
        new = Client(CLIENT)
        self.server.datagramReceived(new.output(), CLIENT)
        self.assertEqual(self.server.counters["cookieSent"], 2)
        self.assertEqual(self.lost, [])
        self.assertTrue(self.server.established(CLIENT))
        for data in self.takeSent(CLIENT):
            new.input(data)
        self.pump(new)
        self.assertTrue(new.established)
        self.assertEqual(self.server.counters["replaced"], 1)
        self.assertEqual(self.lost, [CLIENT])
        self.assertEqual(self.server.sessions, 1)
        self.assertTalks(new)
        # The old client's records no longer decrypt.
        self.server.datagramReceived(old.send(b"stale"), CLIENT)
        self.assertEqual(self.delivered[-1], (b"ping", CLIENT))

    def test_makeDtlsContextWithEncryptedKey(self) -> None:
        """
        L{makeDtlsContext} reads a key encrypted with C{password}, and refuses a key that is not
        the certificate's.
        """
        certFile, keyFile, _ = writeCertificate(self.directory, "locked", b"secret")
        self.context = makeDtlsContext(certFile, keyFile, password="secret")
        self.connect()
        _, otherKey, _ = writeCertificate(self.directory, "other")
        self.assertRaises(CertificateError, makeDtlsContext, certFile, otherKey)
        self.assertRaises(CertificateError, makeDtlsContext, certFile, keyFile, password="wrong")

    def test_makeDtlsContextCipherList(self) -> None:
        """
        C{cipherList} replaces the default suites.
        """
        certFile, keyFile, _ = writeCertificate(self.directory, "chacha")
        self.context = makeDtlsContext(
            certFile, keyFile, cipherList="ECDHE-ECDSA-CHACHA20-POLY1305"
        )
        client = self.connect()
        self.assertEqual(client.connection.get_cipher_name(), "ECDHE-ECDSA-CHACHA20-POLY1305")

    def test_certificateSwap(self) -> None:
        """
        When C{contextFactory} starts returning a context with another certificate, new clients
        get the new certificate and an established session carries on with the old one.
        """
        first = self.connect(CLIENT)
        certFile, keyFile, newCertificate = writeCertificate(self.directory, "renewed")
        self.context = makeDtlsContext(certFile, keyFile)
        second = self.connect(OTHER)
        self.assertEqual(
            first.connection.get_peer_certificate().to_cryptography(), self.certificate
        )
        self.assertEqual(
            second.connection.get_peer_certificate().to_cryptography(), newCertificate
        )
        self.assertTalks(first, b"old")
        self.assertTalks(second, b"new")

    def test_contextFactoryFailure(self) -> None:
        """
        A C{contextFactory} that raises drops the ClientHello, counted and logged.
        """

        def broken() -> SSL.Context:
            raise RuntimeError("no certificate")

        server = DtlsServer(broken, self.clock, lambda d, a: None, lambda d, a: None)
        server.datagramReceived(Client(CLIENT).output(), CLIENT)
        self.assertEqual(server.counters["contextError"], 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_noTwistedInternetImport(self) -> None:
        """
        The module is sans-I/O: it imports nothing from C{twisted.internet}.
        """
        with open(dtls.__file__, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            for name in names:
                self.assertFalse(name.startswith("twisted.internet"), name)


class CookieTests(DtlsTestCase):
    def test_cookielessHelloKeepsNoState(self) -> None:
        """
        ClientHellos without a cookie, from many sources, are answered with a HelloVerifyRequest
        and leave nothing behind: no session, and the one listening connection is shared.
        """
        listener = None
        for port in range(50):
            client = Client(("198.51.100.1", 1000 + port))
            self.server.datagramReceived(client.output(), client.addr)
            self.assertEqual(len(self.takeSent(client.addr)), 1)
            self.assertNoState()
            if listener is None:
                listener = self.server._listener
            self.assertIs(self.server._listener, listener)
        self.assertEqual(self.server.counters["cookieSent"], 50)
        self.assertEqual(self.server.counters["cookieBad"], 0)

    def hvrAndSecondHello(self, server: DtlsServer, addr: Any) -> bytes:
        """
        The second ClientHello of a client that got its cookie from C{server} at C{addr}.
        """
        client = Client(addr)
        server.datagramReceived(client.output(), addr)
        (verify,) = self.takeSent(addr)
        client.input(verify)
        return client.output()

    def test_cookieForAnotherAddress(self) -> None:
        """
        A ClientHello carrying the cookie of another address (or port) keeps no state and gets a
        new HelloVerifyRequest.
        """
        secondHello = self.hvrAndSecondHello(self.server, CLIENT)
        for addr in [OTHER, (CLIENT[0], CLIENT[1] + 1)]:
            self.server.datagramReceived(secondHello, addr)
            (verify,) = self.takeSent(addr)
            self.assertEqual(records(verify)[0][2][0], HELLO_VERIFY_REQUEST)
            self.assertNoState()
        self.assertEqual(self.server.counters["cookieBad"], 2)

    def test_forgedCookie(self) -> None:
        """
        A cookie made under another secret is refused.
        """
        other = self.makeServer(cookieSecret=b"x" * 32)
        secondHello = self.hvrAndSecondHello(other, CLIENT)
        self.server.datagramReceived(secondHello, CLIENT)
        self.assertEqual(self.server.counters["cookieBad"], 1)
        self.assertNoState()

    def test_sharedSecret(self) -> None:
        """
        Servers sharing C{cookieSecret} accept each other's cookies.
        """
        secret = os.urandom(32)
        first = self.makeServer(cookieSecret=secret)
        second = self.makeServer(cookieSecret=secret)
        second.datagramReceived(self.hvrAndSecondHello(first, CLIENT), CLIENT)
        self.assertEqual(second.handshakesInProgress, 1)

    def test_cookieWindows(self) -> None:
        """
        A cookie is valid in its window and the next one, not later.
        """
        cookie = self.server.makeCookie(CLIENT)
        self.assertEqual(len(cookie), 32)
        self.assertTrue(self.server.cookieValid(cookie, CLIENT))
        self.assertFalse(self.server.cookieValid(cookie, OTHER))
        self.assertFalse(self.server.cookieValid(cookie[:-1] + bytes([cookie[-1] ^ 1]), CLIENT))
        self.assertFalse(self.server.cookieValid(b"", CLIENT))
        self.clock.advance(COOKIE_WINDOW)
        self.assertTrue(self.server.cookieValid(cookie, CLIENT))
        self.clock.advance(COOKIE_WINDOW)
        self.assertFalse(self.server.cookieValid(cookie, CLIENT))

    def test_ipv6Address(self) -> None:
        """
        Twisted's IPv6 address tuples (host, port, flow info, scope) work as session keys, and the
        cookie covers host and port.
        """
        addr = ("2001:db8::1", 5349, 0, 0)
        client = self.connect(addr)
        self.assertTalks(client)
        cookie = self.server.makeCookie(addr)
        self.assertTrue(self.server.cookieValid(cookie, ("2001:db8::1", 5349)))
        self.assertFalse(self.server.cookieValid(cookie, ("2001:db8::2", 5349, 0, 0)))

    def test_expiredCookie(self) -> None:
        """
        A second ClientHello whose cookie is two windows old keeps no state.
        """
        secondHello = self.hvrAndSecondHello(self.server, CLIENT)
        self.clock.advance(2 * COOKIE_WINDOW)
        self.server.datagramReceived(secondHello, CLIENT)
        self.assertEqual(self.server.counters["cookieBad"], 1)
        self.assertNoState()

    def test_cookieFromPreviousWindow(self) -> None:
        """
        A cookie from the previous window still starts a handshake.
        """
        secondHello = self.hvrAndSecondHello(self.server, CLIENT)
        self.clock.advance(COOKIE_WINDOW)
        self.server.datagramReceived(secondHello, CLIENT)
        self.assertEqual(self.server.handshakesInProgress, 1)


class LimitTests(DtlsTestCase):
    serverOptions = {"maxHandshakes": 2, "handshakeTimeout": 10.0}

    def test_handshakeCap(self) -> None:
        """
        Past C{maxHandshakes} handshakes in progress, a ClientHello with a valid cookie is dropped
        and counted, keeping no state; established sessions are never evicted for it, and once
        the handshakes in progress time out a new one is accepted.
        """
        established = self.connect(("203.0.113.1", 1))
        self.startHandshake(("203.0.113.2", 2))
        self.startHandshake(("203.0.113.3", 3))
        self.assertEqual(self.server.handshakesInProgress, 2)

        third = self.helloWithCookie(("203.0.113.4", 4))
        self.assertEqual(self.takeSent(third.addr), [])
        self.assertEqual(self.server.counters["handshakesFull"], 1)
        self.assertEqual(self.server.handshakesInProgress, 2)
        self.assertNotIn(third.addr, self.server._handshaking)
        self.assertEqual(self.server.sessions, 1)
        self.assertTalks(established)

        self.clock.advance(10)
        self.server.tick()
        self.assertEqual(self.server.handshakesInProgress, 0)
        self.connect(("203.0.113.5", 5))
        self.assertTalks(established)
        self.assertEqual(self.lost, [])

    def test_perSourceAndSessionCaps(self) -> None:
        """
        One IP address may hold at most C{maxHandshakesPerSource} handshakes (from any ports),
        and past C{maxSessions} sessions new ClientHellos are dropped; both keep no state.
        """
        server = self.server = self.makeServer(maxHandshakesPerSource=1, maxSessions=2)
        self.startHandshake(("203.0.113.1", 1))
        second = self.helloWithCookie(("203.0.113.1", 2))
        self.assertEqual(server.counters["handshakesFullForSource"], 1)
        self.assertNotIn(second.addr, server._handshaking)
        self.connect(("203.0.113.2", 1))
        self.helloWithCookie(("203.0.113.3", 1))
        self.assertEqual(server.counters["sessionsFull"], 1)
        self.assertEqual(server.sessions + server.handshakesInProgress, 2)

    def test_handshakeTimeout(self) -> None:
        """
        A handshake still in progress C{handshakeTimeout} seconds after it started is dropped by
        L{DtlsServer.tick}; C{lost} is not called and the client's next records find no session.
        """
        self.startHandshake(CLIENT)
        self.clock.advance(9.5)
        self.server.tick()
        self.assertEqual(self.server.handshakesInProgress, 1)
        self.clock.advance(0.5)
        self.server.tick()
        self.assertEqual(self.server.handshakesInProgress, 0)
        self.assertEqual(self.server.counters["handshakeTimeout"], 1)
        self.assertEqual(self.lost, [])
        self.assertNoState()
        self.assertEqual(self.takeSent(), [])
        self.server.datagramReceived(record(APPLICATION_DATA, 1, 1, b"finished"), CLIENT)
        self.assertEqual(self.server.counters["dropNoSession"], 1)

    def test_retransmission(self) -> None:
        """
        When the server's flight is lost, L{DtlsServer.tick} resends it once OpenSSL's
        retransmission timer (about a second of real time) has run out, and the handshake then
        finishes.
        """
        client = self.startHandshake(CLIENT)
        deadline = time.monotonic() + 5
        while not self.sent and time.monotonic() < deadline:
            time.sleep(0.05)
            self.server.tick()
        self.assertEqual(self.server.counters["retransmit"], 1)
        self.pump(client)
        self.assertTrue(client.established)
        self.assertTalks(client)


class InputTests(DtlsTestCase):
    def test_garbage(self) -> None:
        """
        Datagrams that are not DTLS records, or are truncated, are counted and dropped without
        a reply or any state.
        """
        shapes = [
            b"",
            b"\x16",
            b"\x00\x01\x00\x00\x21\x12\xa4\x42" + b"\x00" * 12,  # a STUN Binding request
            b"\x40\x00\x00\x04abcd",  # ChannelData
            b"\x13" + b"\xfe\xfd" + b"\x00" * 10,  # content type 19
            b"\x1a" + b"\xfe\xfd" + b"\x00" * 10,  # content type 26
            b"\x16\x03\x03" + b"\x00" * 10,  # a TLS record header
            b"\x16\xfe\xfd" + b"\x00" * 9,  # 12 bytes
            record(HANDSHAKE, 0, 0, b"\x01" * 40)[:-1],  # truncated
            record(HANDSHAKE, 0, 0, b"\x01" * 40) + b"\x00",  # a byte after it
            record(APPLICATION_DATA, 1, 1, b"x") + b"\x17\xfe\xfd",  # a partial header after it
            b"\x17\xfe\xfd" + b"\xff" * 65532,  # announces more than it holds
        ]
        for data in shapes:
            self.server.datagramReceived(data, CLIENT)
        self.assertEqual(self.server.counters["dropMalformed"], len(shapes))
        self.assertEqual(self.sent, [])
        self.assertNoState()

    def test_recordsWithoutSession(self) -> None:
        """
        Well-formed records that are not a ClientHello in epoch 0, from an address without a
        session, are dropped; a malformed ClientHello is dropped by the cookie exchange.
        """
        hello = Client(CLIENT).output()
        shapes = [
            record(APPLICATION_DATA, 1, 5, b"data"),
            record(21, 0, 0, b"\x02\x28"),  # alert
            record(20, 0, 0, b"\x01"),  # change_cipher_spec
            hello[:3] + b"\x00\x01" + hello[5:],  # ClientHello in epoch 1
            record(HANDSHAKE, 0, 0, b"\x10" + b"\x00" * 50),  # ClientKeyExchange
            record(HANDSHAKE, 0, 0, b"\x01" + b"\x00" * 5 + b"\x00\x00\x05" + b"\x00" * 50),
        ]
        for data in shapes:
            self.server.datagramReceived(data, CLIENT)
        self.assertEqual(self.server.counters["dropNoSession"], len(shapes))
        badHello = record(HANDSHAKE, 0, 0, b"\x01" + b"\x00" * 60)
        self.server.datagramReceived(badHello, CLIENT)
        self.assertEqual(self.server.counters["dropBadHello"], 1)
        self.assertEqual(self.sent, [])
        self.assertNoState()

    def test_garbageForEstablishedSession(self) -> None:
        """
        Records that do not decrypt are dropped and counted; the session goes on.
        """
        client = self.connect()
        for data in [
            record(APPLICATION_DATA, 1, 100, os.urandom(40)),
            record(APPLICATION_DATA, 1, 101, b""),
            record(HANDSHAKE, 1, 102, os.urandom(60)),
            record(21, 1, 103, os.urandom(30)),
            record(APPLICATION_DATA, 7, 1, os.urandom(40)),
            record(HANDSHAKE, 0, 55, os.urandom(30)),
            record(21, 0, 56, b"\x02\x28"),
        ]:
            self.server.datagramReceived(data, CLIENT)
        self.server.datagramReceived(b"\x17\xfe\xfd\x00", CLIENT)
        self.assertEqual(self.server.counters["dropUndecryptable"], 7)
        self.assertEqual(self.server.counters["dropMalformed"], 1)
        self.assertEqual(self.delivered, [])
        self.assertEqual(self.lost, [])
        self.assertTalks(client)

    def test_replayedRecord(self) -> None:
        """
        A record received twice is delivered once.
        """
        client = self.connect()
        datagram = client.send(b"once")
        self.server.datagramReceived(datagram, CLIENT)
        self.server.datagramReceived(datagram, CLIENT)
        self.assertEqual(self.delivered, [(b"once", CLIENT)])

    def test_garbageDuringHandshake(self) -> None:
        """
        Clear records that no client sends, for a handshake in progress, are dropped before
        OpenSSL (which would end the handshake on them); the handshake still finishes.
        """
        client = Client(CLIENT)
        self.server.datagramReceived(client.output(), CLIENT)
        client.input(self.takeSent(CLIENT)[0])
        self.server.datagramReceived(client.output(), CLIENT)
        flight = self.takeSent(CLIENT)

        def fragment(msgType: int, length: int, seq: int, offset: int, body: bytes) -> bytes:
            return (
                bytes([msgType])
                + length.to_bytes(3, "big")
                + seq.to_bytes(2, "big")
                + offset.to_bytes(3, "big")
                + len(body).to_bytes(3, "big")
                + body
            )

        shapes = [
            record(HANDSHAKE, 0, 9, b"\x10\x00"),  # shorter than a handshake header
            record(HANDSHAKE, 0, 9, fragment(16, 10, 1, 0, b"x" * 10)[:-2]),  # length mismatch
            record(HANDSHAKE, 0, 9, fragment(16, 10, 1, 5, b"x" * 10)),  # past the message
            record(HANDSHAKE, 0, 9, fragment(16, 0xFFFFFF, 1, 0, b"x" * 10)),  # huge message
            record(HANDSHAKE, 0, 9, fragment(99, 10, 1, 0, b"x" * 10)),  # no such type
            record(HANDSHAKE, 0, 9, fragment(2, 10, 1, 0, b"x" * 10)),  # a ServerHello
            record(APPLICATION_DATA, 0, 9, b"hello"),
            record(24, 0, 9, b"\x01\x00\x10" + b"a" * 40),
            record(25, 0, 9, b"a" * 40),
            record(20, 0, 9, b"\x05"),
            record(21, 0, 9, b"\x07\x07\x07"),
            record(21, 0, 9, b"\x07\x28"),
            record(20, 0, 9, b"\x01") + record(APPLICATION_DATA, 0, 10, b"x"),
        ]
        for data in shapes:
            self.server.datagramReceived(data, CLIENT)
        self.assertEqual(self.server.counters["dropBadHandshakeRecord"], len(shapes))
        # Records OpenSSL itself ignores: a later message, random bytes in epoch 1.
        for data in [
            record(HANDSHAKE, 0, 9, fragment(16, 10, 5, 0, b"x" * 10)),
            record(APPLICATION_DATA, 1, 1, os.urandom(50)),
            record(20, 0, 10, b"\x01"),
        ]:
            self.server.datagramReceived(data, CLIENT)
        self.assertEqual(self.server.counters["handshakeFailed"], 0)
        self.assertEqual(self.server.handshakesInProgress, 1)
        self.assertEqual(self.sent, [])
        for data in flight:
            client.input(data)
        self.pump(client)
        self.assertTrue(client.established)

    def test_spoofedAlertEndsHandshakeOnly(self) -> None:
        """
        A fatal alert in clear from the client's address ends a handshake in progress (that is
        how a DTLS 1.2 client reports a failed handshake, so it cannot be filtered out), but an
        established session ignores clear records.
        """
        established = self.connect(OTHER)
        self.startHandshake(CLIENT)
        alert = record(21, 0, 9, b"\x02\x28")
        self.server.datagramReceived(alert, CLIENT)
        self.server.datagramReceived(alert, OTHER)
        self.assertEqual(self.server.counters["handshakeFailed"], 1)
        self.assertEqual(self.server.handshakesInProgress, 0)
        self.assertEqual(self.lost, [])
        self.assertTalks(established)

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=400), st.sampled_from([CLIENT, OTHER]))
    def test_randomBytesNeverRaise(self, data: bytes, addr: Any) -> None:
        """
        Whatever bytes arrive, C{datagramReceived} returns normally and keeps no state.
        """
        self.server.datagramReceived(data, addr)
        self.assertNoState()
        self.assertEqual(self.server.counters["internalError"], 0)

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.integers(20, 25),
                st.integers(0, 2),
                st.integers(0, 2**48 - 1),
                st.binary(max_size=120),
            ),
            min_size=1,
            max_size=4,
        ),
        st.binary(max_size=3),
    )
    def test_randomRecordsNeverRaise(self, fields: List[Any], tail: bytes) -> None:
        """
        Well-formed records with random content, to an established session, to a handshake in
        progress and to an unknown address, never raise and never end the established session.
        """
        if not hasattr(self, "established"):
            self.established = self.connect(CLIENT)
            self.startHandshake(OTHER)
        data = b"".join(record(*f) for f in fields) + tail
        for addr in [CLIENT, OTHER, ("192.0.2.99", 9)]:
            self.server.datagramReceived(data, addr)
        self.assertEqual(self.server.counters["internalError"], 0)
        self.assertTrue(self.server.established(CLIENT))
        self.assertNotIn(("192.0.2.99", 9), self.server._handshaking)

    def test_callbackErrorsContained(self) -> None:
        """
        A C{deliver} or C{lost} that raises, or a C{send} that fails, is counted; nothing
        raises out of the server and the session goes on.
        """
        client = self.connect()

        def broken(*args: Any) -> None:
            raise RuntimeError("bug")

        self.server._deliver = broken
        self.server.datagramReceived(client.send(b"x"), CLIENT)
        self.server._send = broken
        self.server.write(b"y", CLIENT)
        self.server._lost = broken
        self.server.close(CLIENT)
        self.assertEqual(self.server.counters["deliverError"], 2)
        self.assertEqual(self.server.counters["dropSendFailed"], 2)  # the write, close_notify
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)
        self.assertNoState()


class OutputTests(DtlsTestCase):
    def test_writeWithoutSession(self) -> None:
        """
        A write to an address without an established session is counted and dropped.
        """
        self.server.write(b"x", CLIENT)
        self.startHandshake(OTHER)
        self.server.write(b"x", OTHER)
        self.assertEqual(self.server.counters["dropWriteNoSession"], 2)
        self.assertEqual(self.sent, [])

    def test_writeSizes(self) -> None:
        """
        An empty write, or one longer than a record can hold, is counted and dropped; the
        session goes on.
        """
        client = self.connect()
        self.server.write(b"", CLIENT)
        self.server.write(b"x" * (MAX_RECORD_PAYLOAD + 1), CLIENT)
        self.assertEqual(self.server.counters["dropWriteSize"], 2)
        self.assertEqual(self.sent, [])
        self.assertTalks(client)


class EndingTests(DtlsTestCase):
    def test_close(self) -> None:
        """
        L{DtlsServer.close} sends close_notify, forgets the session and calls C{lost}; closing an
        address without a session does nothing.
        """
        client = self.connect()
        self.server.close(CLIENT)
        self.assertEqual(self.lost, [CLIENT])
        self.assertNoState()
        for data in self.takeSent(CLIENT):
            client.input(data)
        self.assertTrue(client.closedByServer)
        self.server.close(CLIENT)
        self.server.write(b"late", CLIENT)
        self.assertEqual(self.lost, [CLIENT])
        self.assertEqual(self.server.counters["dropWriteNoSession"], 1)

    def test_closeAll(self) -> None:
        """
        L{DtlsServer.closeAll} ends every session, calling C{lost} for each established one.
        """
        first = self.connect(CLIENT)
        second = self.connect(OTHER)
        self.startHandshake(("192.0.2.12", 3))
        self.server.closeAll()
        self.assertEqual(sorted(self.lost), sorted([CLIENT, OTHER]))
        self.assertNoState()
        for client in [first, second]:
            for data in self.takeSent(client.addr):
                client.input(data)
            self.assertTrue(client.closedByServer)

    def test_closedByClient(self) -> None:
        """
        A client's close_notify ends its session: C{lost} is called.
        """
        client = self.connect()
        try:
            client.connection.shutdown()
        except SSL.Error:
            pass
        self.server.datagramReceived(readAll(client.connection), CLIENT)
        self.assertEqual(self.lost, [CLIENT])
        self.assertEqual(self.server.counters["closedByPeer"], 1)
        self.assertNoState()

    def test_fatalErrorEndsSession(self) -> None:
        """
        A fatal alert on an established session (here, the client gives up after the server
        refuses its renegotiation) ends it: counted, C{lost} called, nothing raised.
        """
        client = self.connect()
        client.connection.renegotiate()
        try:
            client.connection.do_handshake()
        except SSL.WantReadError:
            pass
        self.server.datagramReceived(readAll(client.connection), CLIENT)
        for data in self.takeSent(CLIENT):
            client.input(data)
        self.assertIsNotNone(client.error)
        self.server.datagramReceived(readAll(client.connection), CLIENT)
        self.assertEqual(self.server.counters["sessionFailed"], 1)
        self.assertEqual(self.lost, [CLIENT])
        self.assertNoState()


class ModuleTests(SynchronousTestCase):
    def test_contextVersion(self) -> None:
        """
        L{DTLS1_2_VERSION} is DTLS 1.2's wire version.
        """
        self.assertEqual(DTLS1_2_VERSION, 0xFEFD)

    def test_datagramPacking(self) -> None:
        """
        Records are packed in order into datagrams of at most C{mtu} bytes; a longer record
        travels alone.
        """
        small = record(HANDSHAKE, 0, 1, b"a" * 87)  # 100 bytes
        big = record(APPLICATION_DATA, 1, 2, b"b" * 487)  # 500 bytes
        self.assertEqual(dtls._datagrams(small * 3, 300), [small * 3])
        self.assertEqual(dtls._datagrams(small * 4, 300), [small * 3, small])
        self.assertEqual(dtls._datagrams(small + big + small, 300), [small, big, small])
