# -*- test-case-name: tests.test_dtls -*-
"""
The server side of DTLS 1.2 (RFC 6347) for the TURN listener on UDP port 5349 (RFC 8656
section 3), sans-I/O: L{DtlsServer} takes datagrams with L{DtlsServer.datagramReceived} and puts
datagrams on the wire through the C{send} callable it was given.  The Twisted adapter that owns
the socket, and calls L{DtlsServer.tick} about once a second, lives elsewhere; nothing here imports
C{twisted.internet}.

Each client address that finished a cookie exchange has its own C{OpenSSL.SSL.Connection} on
memory BIOs.  Decrypted application records go to C{deliver(data, addr)}, one call per record, in
order of arrival; L{DtlsServer.write} encrypts one record per call.

Decisions:

  - B{The cookie exchange uses OpenSSL's own stateless C{DTLSv1_listen} on one shared listening
    connection}, with cookie callbacks that compute an HMAC-SHA256 of the client's host and port
    and of a coarse time window (L{COOKIE_WINDOW} seconds, the current and the previous window
    accepted) under a per-server secret, compared with C{hmac.compare_digest}.  The alternative,
    answering HelloVerifyRequest from a ClientHello parsed here, stops short: a connection made
    afterwards must continue the handshake where the cookie exchange left it (handshake message
    sequence 1, the record sequence number of the second ClientHello, that ClientHello buffered,
    C{SSL_OP_COOKIE_EXCHANGE} on), and only C{DTLSv1_listen} sets that state up; pyOpenSSL
    exposes none of it.  Doing both (trio's way) parses every ClientHello twice.
    C{DTLSv1_listen} was written to be stateless, reads one datagram and drops malformed ones
    without an alert.  The only object it needs is the listening connection, one per
    L{DtlsServer} and not per source: before each call its app data is pointed at the datagram's
    address, which the cookie callbacks read.  When a ClientHello carries a valid cookie, the
    listening connection I{becomes} that client's session (that is how OpenSSL's API works) and
    the next ClientHello gets a fresh listening connection.  So a new per-client connection is
    made only after the client proved that it receives at its address.
  - The callbacks find the address through C{connection.get_app_data()}, not only through a
    "current address" of the server, because OpenSSL checks the cookie a second time in the
    session's first C{do_handshake}.
  - A ClientHello in epoch 0 with a new client random from the address of an existing session
    (a client that restarted on the same port, RFC 6347 section 4.2.8) goes through the cookie
    exchange; once its cookie is valid the old session is replaced (C{lost} is called for it).
    A ClientHello with the session's own random is a retransmission and goes to the session.
  - Memory BIOs are byte streams: OpenSSL's output for a flight comes out as one run of
    records.  Each connection has C{SSL_OP_NO_QUERY_MTU} and the ciphertext MTU set to C{mtu}
    (without them OpenSSL asks the BIO, gets 0 and fragments the handshake for a 256-byte path),
    so each handshake record fits; the records are then packed back into datagrams of at most
    C{mtu} bytes, which gives the datagrams OpenSSL's own buffering would have sent on a socket.
    An application record is never split (it cannot be) and may exceed C{mtu}.
  - Only DTLS 1.2 (L{makeDtlsContext} pins the version: C{DTLSv1_listen} speaks the 1.2 cookie
    exchange) and no renegotiation (C{SSL_OP_NO_RENEGOTIATION} on every connection: a client's
    attempt is refused and ends its session).
  - Retransmission timers are OpenSSL's own, on the real clock: pyOpenSSL has no binding for
    C{DTLS_set_timer_cb}.  L{DtlsServer.tick} calls C{DTLSv1_handle_timeout}, which resends a
    flight once that timer (1 second, doubling) has run out; a client retransmitting its
    ClientHello does not make OpenSSL resend, so C{tick} is what recovers a lost server flight.
    The handshake deadline, the cookie windows and everything else use the injected clock.
  - Clear (epoch 0) records are unauthenticated, and OpenSSL ends a handshake in progress on
    any malformed one.  Those that no client sends (see L{_plausibleForHandshake}) are dropped
    before OpenSSL sees them; a well-formed spoofed alert or handshake message from the client's
    address still ends its handshake (DTLS 1.2 has no defence: clients report failures with
    clear alerts): the client has to start over.  An established session ignores clear records.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import weakref
from collections import Counter
from typing import Any, Callable, Dict, Iterator, List, Optional

from OpenSSL import SSL

from twisted_turn._log import makeLogger, worthLogging
from twisted_turn.tls import DEFAULT_CIPHERS, DTLS1_2_VERSION, makeContext

__all__ = [
    "COOKIE_WINDOW",
    "DEFAULT_CIPHERS",
    "DEFAULT_MTU",
    "DTLS1_2_VERSION",
    "MAX_RECORD_PAYLOAD",
    "DtlsServer",
    "makeDtlsContext",
]

_log = makeLogger(__name__)

DEFAULT_MTU = 1200
"""The largest datagram a handshake flight is cut into: fits the IPv6 minimum link MTU (1280)."""

COOKIE_WINDOW = 30.0
"""Seconds per cookie window; a cookie is accepted in its window and the next one."""

MAX_RECORD_PAYLOAD = 16384
"""The largest application record (2^14 bytes, RFC 6347 section 4.1 and RFC 5246 6.2.1)."""

_COOKIE_LENGTH = 32
_RECORD_HEADER = 13  # type, version (2), epoch (2), sequence number (6), length (2)
# type, length (3), message_seq (2), fragment_offset (3), fragment_length (3)
_HANDSHAKE_HEADER = 12
_FIRST_CONTENT_TYPE = 20  # change_cipher_spec ...
_LAST_CONTENT_TYPE = 25  # ... alert, handshake, application_data, heartbeat, tls12_cid
_DTLS_MAJOR = 0xFE
_HANDSHAKE = 22
_CLIENT_HELLO = 1
_CONNECTION_OPTIONS = SSL.OP_NO_QUERY_MTU | SSL.OP_NO_RENEGOTIATION


def makeDtlsContext(
    certFile: str,
    keyFile: Optional[str] = None,
    password: Optional[str] = None,
    cipherList: Optional[str] = None,
) -> SSL.Context:
    """
    A server context for L{DtlsServer}: L{twisted_turn.tls.makeContext} for DTLS 1.2 (its
    forward-secret AEAD suites, or C{cipherList}; no compression, no renegotiation, no client
    certificate), with the cookie callbacks installed.

    @raise twisted_turn.tls.CertificateError: a file cannot be used (the message names the
        option and the reason).
    """
    context = makeContext(certFile, keyFile, password, cipherList, dtls=True)
    _installCookieCallbacks(context)
    return context


class _Listening:
    """
    The app data of the shared listening connection: the address of the datagram being looked at,
    and whether its cookie was refused.
    """

    __slots__ = ("addr", "cookieRefused", "server")

    def __init__(self, server: DtlsServer) -> None:
        self.server = server
        self.addr: Any = None
        self.cookieRefused = False


class _Session:
    """
    One client address past its cookie exchange: its connection, when its handshake started and
    the client random of the ClientHello that started it.
    """

    __slots__ = ("addr", "closed", "connection", "established", "random", "server", "startedAt")

    def __init__(
        self, server: DtlsServer, addr: Any, connection: SSL.Connection, now: float, random: bytes
    ) -> None:
        self.server = server
        self.addr = addr
        self.connection = connection
        self.startedAt = now
        self.random = random
        self.established = False
        self.closed = False


# The contexts that already carry the cookie callbacks (the callbacks are the same functions for
# every server: they find theirs through the connection's app data).
_withCookieCallbacks: weakref.WeakSet[SSL.Context] = weakref.WeakSet()


def _generateCookie(connection: SSL.Connection) -> bytes:
    owner = connection.get_app_data()
    if not isinstance(owner, (_Listening, _Session)):
        # Someone else's connection on a shared context: a cookie nobody will accept.
        return os.urandom(_COOKIE_LENGTH)
    return owner.server.makeCookie(owner.addr)


def _verifyCookie(connection: SSL.Connection, cookie: bytes) -> bool:
    owner = connection.get_app_data()
    if not isinstance(owner, (_Listening, _Session)):
        return False
    valid = owner.server.cookieValid(cookie, owner.addr)
    if not valid and isinstance(owner, _Listening):
        owner.cookieRefused = True
    return valid


def _installCookieCallbacks(context: SSL.Context) -> None:
    if context not in _withCookieCallbacks:
        context.set_cookie_generate_callback(_generateCookie)
        context.set_cookie_verify_callback(_verifyCookie)
        _withCookieCallbacks.add(context)


def _addressBytes(addr: Any) -> bytes:
    """
    The host and port of C{addr} (a Twisted address tuple), as the cookie HMAC covers them.
    """
    if isinstance(addr, tuple) and len(addr) >= 2:
        return f"{addr[0]}\x00{addr[1]}".encode("utf-8", "surrogatepass")
    return repr(addr).encode("utf-8", "surrogatepass")


def _wellFormed(data: bytes) -> bool:
    """
    Whether C{data} is one or more whole DTLS records: a known content type, major version 254
    and a length that the datagram holds.  Anything else is not for us, or truncated.
    """
    size = len(data)
    offset = 0
    if size < _RECORD_HEADER:
        return False
    while offset < size:
        if size - offset < _RECORD_HEADER:
            return False
        contentType = data[offset]
        if not _FIRST_CONTENT_TYPE <= contentType <= _LAST_CONTENT_TYPE:
            return False
        if data[offset + 1] != _DTLS_MAJOR:
            return False
        offset += _RECORD_HEADER + ((data[offset + 11] << 8) | data[offset + 12])
        if offset > size:
            return False
    return True


def _clientHelloRandom(data: bytes) -> Optional[bytes]:
    """
    The client random of a datagram whose first record is an unfragmented-at-the-start
    ClientHello in epoch 0, or L{None} for any other datagram.  C{data} is L{_wellFormed}.
    """
    if data[0] != _HANDSHAKE or data[3] != 0 or data[4] != 0:
        return None
    length = (data[11] << 8) | data[12]
    # The handshake header, then client_version (2) and random (32).
    if length < _HANDSHAKE_HEADER + 34:
        return None
    body = _RECORD_HEADER
    if data[body] != _CLIENT_HELLO or data[body + 6 : body + 9] != b"\x00\x00\x00":
        return None
    start = body + _HANDSHAKE_HEADER + 2
    return bytes(data[start : start + 32])


# What a client sends in clear (epoch 0) during a handshake: ClientHello, Certificate,
# CertificateVerify and ClientKeyExchange (Finished comes encrypted, in epoch 1).
_CLIENT_CLEAR_HANDSHAKE_TYPES = frozenset([1, 11, 15, 16])
_MAX_CLIENT_MESSAGE = 1 << 16


def _plausibleForHandshake(data: bytes) -> bool:
    """
    Whether the clear (epoch 0) records of C{data}, a L{_wellFormed} datagram for a handshake in
    progress, are ones a client could send.  OpenSSL ends a handshake on any malformed clear
    record (RFC 6347 section 4.1.2.7 asks for invalid records to be discarded): an application
    record, a handshake fragment whose lengths do not add up, a message type no client sends, a
    bad change_cipher_spec or alert.  Records in later epochs are authenticated by OpenSSL.
    """
    offset = 0
    size = len(data)
    while offset < size:
        length = (data[offset + 11] << 8) | data[offset + 12]
        start = offset + _RECORD_HEADER
        end = start + length
        if data[offset + 3] == 0 and data[offset + 4] == 0:
            contentType = data[offset]
            if contentType == _HANDSHAKE:
                if length < _HANDSHAKE_HEADER:
                    return False
                messageLength = int.from_bytes(data[start + 1 : start + 4], "big")
                fragmentOffset = int.from_bytes(data[start + 6 : start + 9], "big")
                fragmentLength = int.from_bytes(data[start + 9 : start + 12], "big")
                if (
                    data[start] not in _CLIENT_CLEAR_HANDSHAKE_TYPES
                    or fragmentLength != length - _HANDSHAKE_HEADER
                    or fragmentOffset + fragmentLength > messageLength
                    or messageLength > _MAX_CLIENT_MESSAGE
                ):
                    return False
            elif contentType == 20:  # change_cipher_spec
                if data[start:end] != b"\x01":
                    return False
            elif contentType == 21:  # alert: level (warning or fatal), description
                if length != 2 or data[start] not in (1, 2):
                    return False
            else:
                return False
        offset = end
    return True


def _records(data: bytes) -> Iterator[bytes]:
    """
    Split OpenSSL's output into its records (what it writes is well formed; a tail that is not is
    yielded whole).
    """
    offset = 0
    size = len(data)
    while offset < size:
        if size - offset < _RECORD_HEADER:
            yield data[offset:]
            return
        end = offset + _RECORD_HEADER + ((data[offset + 11] << 8) | data[offset + 12])
        yield data[offset:end]
        offset = end


def _datagrams(data: bytes, mtu: int) -> List[bytes]:
    """
    Pack the records of C{data}, in order, into as few datagrams of at most C{mtu} bytes as they
    fit in (a record longer than C{mtu} travels alone).
    """
    if len(data) <= mtu:
        return [data]
    datagrams: List[bytes] = []
    current: List[bytes] = []
    currentSize = 0
    for record in _records(data):
        if current and currentSize + len(record) > mtu:
            datagrams.append(b"".join(current))
            current = []
            currentSize = 0
        current.append(record)
        currentSize += len(record)
    if current:
        datagrams.append(b"".join(current))
    return datagrams


def _readAll(connection: SSL.Connection) -> bytes:
    """
    Everything OpenSSL has written to C{connection}'s outgoing memory BIO.
    """
    chunks = []
    while True:
        try:
            chunks.append(connection.bio_read(65536))
        except SSL.WantReadError:
            return b"".join(chunks)


class DtlsServer:
    """
    DTLS 1.2 server sessions for the clients of one UDP socket (see the module docstring for the
    design).

    @ivar counters: a L{Counter} of events and of dropped datagrams by reason:
        C{dropMalformed} (not DTLS records, or truncated), C{dropNoSession} (not a ClientHello and
        no session for the address), C{dropBadHandshakeRecord} (a clear record that no client
        sends, for a handshake in progress), C{dropBadHello} (a ClientHello that C{DTLSv1_listen}
        dropped), C{cookieSent} (HelloVerifyRequests sent), C{cookieBad} (a cookie that was
        present but wrong, expired or for another address), C{handshakesStarted},
        C{handshakesFull} (a valid ClientHello dropped at L{maxHandshakes}),
        C{handshakesFullForSource} (at L{maxHandshakesPerSource}), C{sessionsFull} (at
        L{maxSessions}), C{handshakeTimeout},
        C{handshakeFailed}, C{established}, C{retransmit} (flights resent by L{tick}),
        C{replaced} (a session superseded by a new handshake from its address),
        C{closedByPeer} (close_notify received), C{closed} (L{close} or L{closeAll}),
        C{sessionFailed} (a fatal error on an established session), C{dropUndecryptable}
        (a datagram for an established session that produced nothing: OpenSSL silently discards
        records with a bad MAC, replays and stale epochs), C{dropWriteNoSession},
        C{dropWriteSize} (an empty write, or one over L{MAX_RECORD_PAYLOAD}),
        C{dropSendFailed} (C{send} raised), C{contextError} (C{contextFactory} raised),
        C{deliverError} (C{deliver} or C{lost} raised), C{internalError}.
    """

    def __init__(
        self,
        contextFactory: Callable[[], SSL.Context],
        clock: Any,
        send: Callable[[bytes, Any], Any],
        deliver: Callable[[bytes, Any], Any],
        lost: Optional[Callable[[Any], Any]] = None,
        *,
        maxHandshakes: int = 256,
        handshakeTimeout: float = 10.0,
        cookieSecret: Optional[bytes] = None,
        mtu: int = DEFAULT_MTU,
        maxHandshakesPerSource: int = 8,
        maxSessions: int = 10000,
    ) -> None:
        """
        @param contextFactory: called for each ClientHello that goes through the cookie exchange;
            returns the L{SSL.Context} for new sessions (for instance one made by
            L{makeDtlsContext}).  It may return a different context from one call to the next
            (a new certificate): existing sessions keep the one they started with.  The cookie
            callbacks are installed on each context the first time it is seen.
        @param clock: an object with C{seconds()} (an C{IReactorTime}).
        @param send: C{send(data, addr)} puts one datagram on the wire.
        @param deliver: C{deliver(data, addr)} takes one decrypted application record from a
            client whose handshake is finished.
        @param lost: C{lost(addr)} is told that a session which had finished its handshake is gone:
            closed by either side, failed or replaced.
        @param maxHandshakes: the most handshakes in progress at once.
        @param maxHandshakesPerSource: the most handshakes in progress from one IP address (from
            many ports): one host cannot hold the whole of C{maxHandshakes}.
        @param maxSessions: the most sessions, established or being established.
        @param handshakeTimeout: seconds a handshake may take before L{tick} drops it.
        @param cookieSecret: the HMAC key of the cookies (32 random bytes if not given); servers
            sharing it accept each other's cookies.
        @param mtu: the largest datagram, in bytes, that a handshake flight is cut into.
        """
        self._contextFactory = contextFactory
        self._clock = clock
        self._send = send
        self._deliver = deliver
        self._lost = lost
        self.maxHandshakes = maxHandshakes
        self.maxHandshakesPerSource = maxHandshakesPerSource
        self.maxSessions = maxSessions
        self.handshakeTimeout = handshakeTimeout
        self._mtu = mtu
        self._cookieSecret = os.urandom(32) if cookieSecret is None else bytes(cookieSecret)
        self._handshaking: Dict[Any, _Session] = {}
        self._established: Dict[Any, _Session] = {}
        self._listening = _Listening(self)
        self._listener: Optional[SSL.Connection] = None
        self._listenerContext: Optional[SSL.Context] = None
        self.counters: Counter = Counter()

    @property
    def handshakesInProgress(self) -> int:
        """
        The number of sessions past their cookie exchange whose handshake has not finished.
        """
        return len(self._handshaking)

    @property
    def sessions(self) -> int:
        """
        The number of established sessions (handshake finished).
        """
        return len(self._established)

    def establishedAddresses(self) -> List[Any]:
        """
        The addresses of the established sessions, as a new list.
        """
        return list(self._established)

    def established(self, addr: Any) -> bool:
        """
        Whether C{addr} has an established session.
        """
        return addr in self._established

    # Cookies

    def _cookie(self, addr: Any, window: int) -> bytes:
        message = b"%d\x00" % (window,) + _addressBytes(addr)
        return hmac.new(self._cookieSecret, message, hashlib.sha256).digest()

    def _window(self) -> int:
        return int(self._clock.seconds() // COOKIE_WINDOW)

    def makeCookie(self, addr: Any) -> bytes:
        """
        The cookie for C{addr} in the current window: HMAC-SHA256 of the window number, the host
        and the port under the server's secret.
        """
        return self._cookie(addr, self._window())

    def cookieValid(self, cookie: bytes, addr: Any) -> bool:
        """
        Whether C{cookie} is C{addr}'s cookie of the current or of the previous window (compared
        in constant time).
        """
        window = self._window()
        current = hmac.compare_digest(cookie, self._cookie(addr, window))
        previous = hmac.compare_digest(cookie, self._cookie(addr, window - 1))
        return current | previous

    # Input

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        """
        Handle one datagram from C{addr}.  Never raises: anything that is not a well-formed
        record for a session or a ClientHello is counted and dropped.
        """
        try:
            self._received(bytes(data), addr)
        except Exception:
            self._internalError("Unexpected error handling a DTLS datagram")

    def _received(self, data: bytes, addr: Any) -> None:
        if not _wellFormed(data):
            self.counters["dropMalformed"] += 1
            return
        random = _clientHelloRandom(data)
        session = self._established.get(addr)
        if session is None:
            session = self._handshaking.get(addr)
        if session is not None and (random is None or random == session.random):
            if session.established:
                session.connection.bio_write(data)
                self._readRecords(session, True)
            elif _plausibleForHandshake(data):
                session.connection.bio_write(data)
                self._advanceHandshake(session)
            else:
                self.counters["dropBadHandshakeRecord"] += 1
            return
        if random is None:
            self.counters["dropNoSession"] += 1
            return
        self._clientHello(data, addr, random, session)

    def _listenerFor(self, context: SSL.Context) -> SSL.Connection:
        listener = self._listener
        if listener is None or self._listenerContext is not context:
            _installCookieCallbacks(context)
            listener = SSL.Connection(context, None)
            listener.set_accept_state()
            listener.set_options(_CONNECTION_OPTIONS)
            listener.set_app_data(self._listening)
            self._listener = listener
            self._listenerContext = context
        return listener

    def _clientHello(
        self, data: bytes, addr: Any, random: bytes, existing: Optional[_Session]
    ) -> None:
        """
        A ClientHello in epoch 0 from an address without a session, or with a client random that
        is not its session's: cookie exchange, then a new session if the cookie is valid.
        """
        try:
            context = self._contextFactory()
        except Exception:
            self.counters["contextError"] += 1
            if worthLogging(self.counters["contextError"]):
                _log.failure("The DTLS context factory failed")
            return
        listener = self._listenerFor(context)
        listening = self._listening
        listening.addr = addr
        listening.cookieRefused = False
        try:
            listener.bio_write(data)
            listener.DTLSv1_listen()
        except SSL.WantReadError:
            # No valid cookie (a HelloVerifyRequest is waiting), or a datagram it dropped.
            reply = _readAll(listener)
            if listening.cookieRefused:
                self.counters["cookieBad"] += 1
            if reply:
                self.counters["cookieSent"] += 1
                self._sendTo(reply, addr)
            elif not listening.cookieRefused:
                self.counters["dropBadHello"] += 1
            return
        except Exception:
            # The listening connection is in an unknown state: the next ClientHello gets a new one.
            self._listener = None
            self.counters["dropBadHello"] += 1
            return
        finally:
            listening.addr = None

        # The cookie is valid: the client receives at addr.  The listening connection now holds
        # this client's handshake, so it becomes the session (or is dropped).
        self._listener = None
        if addr not in self._handshaking and len(self._handshaking) >= self.maxHandshakes:
            self.counters["handshakesFull"] += 1
            if worthLogging(self.counters["handshakesFull"]):
                _log.info(
                    "DTLS handshakes in progress at their cap ({cap}): ClientHello dropped"
                    " ({count} so far)",
                    cap=self.maxHandshakes,
                    count=self.counters["handshakesFull"],
                )
            return
        if addr not in self._handshaking and (
            sum(1 for other in self._handshaking if other[0] == addr[0])
            >= self.maxHandshakesPerSource
        ):
            self.counters["handshakesFullForSource"] += 1
            return
        if (
            existing is None
            and addr not in self._handshaking
            and len(self._established) + len(self._handshaking) >= self.maxSessions
        ):
            self.counters["sessionsFull"] += 1
            if worthLogging(self.counters["sessionsFull"]):
                _log.info("DTLS sessions at their cap ({cap}): ClientHello dropped "
                          "({count} so far)", cap=self.maxSessions,
                          count=self.counters["sessionsFull"])
            return
        if existing is not None:
            self.counters["replaced"] += 1
            _log.debug("DTLS session with {addr} replaced by a new handshake", addr=addr)
            self._end(existing)
        session = _Session(self, addr, listener, self._clock.seconds(), random)
        listener.set_app_data(session)
        listener.set_ciphertext_mtu(self._mtu)
        self._handshaking[addr] = session
        self.counters["handshakesStarted"] += 1
        self._advanceHandshake(session)

    def _advanceHandshake(self, session: _Session) -> None:
        connection = session.connection
        try:
            connection.do_handshake()
        except SSL.WantReadError:
            self._flush(session)
            return
        except Exception as e:
            self._flush(session)  # the alert, if OpenSSL wrote one
            self.counters["handshakeFailed"] += 1
            _log.debug(
                "DTLS handshake with {addr} failed: {error!r}", addr=session.addr, error=e
            )
            self._end(session)
            return
        session.established = True
        del self._handshaking[session.addr]
        self._established[session.addr] = session
        self.counters["established"] += 1
        _log.debug("DTLS session with {addr} established", addr=session.addr)
        self._flush(session)
        # Records that arrived with or before the client's last flight.
        self._readRecords(session, False)

    def _readRecords(self, session: _Session, countEmpty: bool) -> None:
        """
        Deliver every application record OpenSSL can decrypt from what was written to the session's
        BIO, then send whatever OpenSSL wrote in answer.

        @param countEmpty: count C{dropUndecryptable} if that gives neither a record nor output.
        """
        connection = session.connection
        delivered = 0
        while not session.closed:
            try:
                record = connection.recv(MAX_RECORD_PAYLOAD)
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self.counters["closedByPeer"] += 1
                _log.debug("DTLS session with {addr} closed by the client", addr=session.addr)
                self._end(session)
                return
            except Exception as e:
                self._flush(session)
                self.counters["sessionFailed"] += 1
                _log.debug(
                    "DTLS session with {addr} failed: {error!r}", addr=session.addr, error=e
                )
                self._end(session)
                return
            delivered += 1
            try:
                self._deliver(record, session.addr)
            except Exception:
                self.counters["deliverError"] += 1
                if worthLogging(self.counters["deliverError"]):
                    _log.failure("The DTLS deliver callback failed")
        if session.closed:
            return
        if not self._flush(session) and not delivered and countEmpty:
            self.counters["dropUndecryptable"] += 1

    # Output

    def _sendTo(self, data: bytes, addr: Any) -> None:
        try:
            self._send(data, addr)
        except Exception:
            self.counters["dropSendFailed"] += 1

    def _flush(self, session: _Session) -> bool:
        """
        Send what OpenSSL wrote for C{session}, packed into datagrams of at most C{mtu} bytes.

        @return: whether there was anything to send.
        """
        data = _readAll(session.connection)
        if not data:
            return False
        for datagram in _datagrams(data, self._mtu):
            self._sendTo(datagram, session.addr)
        return True

    def write(self, data: bytes, addr: Any) -> None:
        """
        Encrypt C{data} as one application record and send it to C{addr}'s established session.
        Without one, or for an empty or over-long C{data}, the write is counted and dropped.
        Never raises.
        """
        session = self._established.get(addr)
        if session is None:
            self.counters["dropWriteNoSession"] += 1
            return
        if not data or len(data) > MAX_RECORD_PAYLOAD:
            self.counters["dropWriteSize"] += 1
            return
        try:
            session.connection.send(data)
        except Exception as e:
            self.counters["sessionFailed"] += 1
            _log.debug("DTLS write to {addr} failed: {error!r}", addr=addr, error=e)
            try:
                self._flush(session)
            finally:
                self._end(session)
            return
        self._flush(session)

    # Ending sessions

    def _end(self, session: _Session) -> None:
        """
        Forget C{session}; tell C{lost} if its handshake had finished.
        """
        if session.closed:
            return
        session.closed = True
        if session.established:
            if self._established.get(session.addr) is session:
                del self._established[session.addr]
            if self._lost is not None:
                try:
                    self._lost(session.addr)
                except Exception:
                    self.counters["deliverError"] += 1
                    if worthLogging(self.counters["deliverError"]):
                        _log.failure("The DTLS lost callback failed")
        elif self._handshaking.get(session.addr) is session:
            del self._handshaking[session.addr]

    def close(self, addr: Any) -> None:
        """
        Send close_notify to C{addr} and forget its session (C{lost} is called if its handshake
        had finished; a handshake in progress is just dropped).  Nothing happens without a
        session.
        """
        session = self._established.get(addr)
        if session is None:
            session = self._handshaking.get(addr)
            if session is None:
                return
        self.counters["closed"] += 1
        try:
            if session.established:
                try:
                    session.connection.shutdown()
                except SSL.Error:
                    pass
                self._flush(session)
        except Exception:
            self._internalError("Unexpected error closing a DTLS session")
        finally:
            self._end(session)

    def closeAll(self) -> None:
        """
        L{close} every session, and drop the listening connection.
        """
        for addr in list(self._handshaking) + list(self._established):
            self.close(addr)
        self._listener = None
        self._listenerContext = None

    # Time

    def tick(self) -> None:
        """
        Called periodically (about once a second): drop handshakes that have taken
        C{handshakeTimeout} seconds or more, and let OpenSSL resend the last flight of the others
        when its retransmission timer has run out.  Never raises.
        """
        now = self._clock.seconds()
        for session in list(self._handshaking.values()):
            if session.closed:
                continue
            try:
                if now - session.startedAt >= self.handshakeTimeout:
                    self.counters["handshakeTimeout"] += 1
                    _log.debug("DTLS handshake with {addr} timed out", addr=session.addr)
                    self._end(session)
                    continue
                try:
                    resent = session.connection.DTLSv1_handle_timeout()
                except SSL.Error as e:
                    self._flush(session)
                    self.counters["handshakeFailed"] += 1
                    _log.debug(
                        "DTLS handshake with {addr} failed: {error!r}",
                        addr=session.addr,
                        error=e,
                    )
                    self._end(session)
                    continue
                if resent:
                    self.counters["retransmit"] += 1
                self._flush(session)
            except Exception:
                self._internalError("Unexpected error in a DTLS handshake timer")
                self._end(session)

    def _internalError(self, message: str) -> None:
        self.counters["internalError"] += 1
        count = self.counters["internalError"]
        if worthLogging(count):
            _log.failure(message + " ({count} so far)", count=count)
