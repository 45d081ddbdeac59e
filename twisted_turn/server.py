# -*- test-case-name: tests.test_server -*-
"""
The TURN server (RFC 8656) and STUN Binding service (RFC 8489): one handler per method, no I/O.

L{TurnServer.handleStun} takes the bytes of one STUN message, the transport it came on and the
addresses of its 5-tuple, and answers through that transport.  Relay sockets are opened through
the injected L{RelayPortAllocator}; time comes from an injected clock (an object with
C{seconds()}).  ChannelData and peer data never come here: the protocols in
L{twisted_turn.protocol} relay them with a lookup and a write.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple


from twisted_turn._log import RefusalLog, makeLogger, worthLogging
from twisted_turn.allocation import (
    CHANNEL_MAX,
    CHANNEL_MIN,
    Address,
    Allocation,
    AllocationTable,
    FiveTuple,
    familyOf,
)
from twisted_turn.auth import (
    FEATURE_PASSWORD_ALGORITHMS,
    Authenticator,
    NonceManager,
    PasswordAlgorithm,
)
from twisted_turn.bandwidth import BandwidthPolicy, admitUp, setRate
from twisted_turn.policy import PeerPolicy
from twisted_turn.ratelimit import SourceLimiter, UserFailureLimiter
from twisted_turn.relay import NoRelayPort, RelayPortAllocator
from twisted_turn.stun.attributes import (
    AdditionalAddressFamily,
    AlternateServer,
    AdditionalAddressFamilyDraft,
    AddressErrorCode,
    AddressErrorCodeDraft,
    ChannelNumber,
    ConnectionId,
    Data,
    DontFragment,
    ErrorCode,
    EvenPort,
    Fingerprint,
    Lifetime,
    MessageIntegrity,
    MessageIntegritySha256,
    Nonce,
    PasswordAlgorithms,
    PasswordAlgorithm as PasswordAlgorithmAttribute,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    Software,
    UnknownAttributes,
    Userhash,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)
from twisted_turn.stun.integrity import verifyFingerprint, verifyIntegrity
from twisted_turn.stun.message import (
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    decodeMessage,
    encodeDataIndication,
    encodeMessage,
)
from twisted_turn._version import __version__

_log = makeLogger(__name__)

UDP = 17
TCP = 6
DEFAULT_LIFETIME = 600

#: Cap on permissions per allocation (DESIGN.md section 5); over it CreatePermission gets 508.
MAX_PERMISSIONS = 1000

REASONS = {
    300: "Try Alternate",
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    420: "Unknown Attribute",
    437: "Allocation Mismatch",
    438: "Stale Nonce",
    440: "Address Family not Supported",
    441: "Wrong Credentials",
    442: "Unsupported Transport Protocol",
    443: "Peer Address Family Mismatch",
    446: "Connection Already Exists",
    447: "Connection Timeout or Failure",
    486: "Allocation Quota Reached",
    508: "Insufficient Capacity",
}

SOFTWARE = f"twisted-turn {__version__}"

_NO_KEY = bytes(16)


class Credentials:
    """
    Who sent a request whose MESSAGE-INTEGRITY was verified, and the key to sign replies with.
    """

    __slots__ = ("username", "key", "sha256")

    def __init__(self, username: Optional[str], key: Optional[bytes], sha256: bool) -> None:
        self.username = username
        self.key = key
        self.sha256 = sha256


ANONYMOUS = Credentials(None, None, False)


class StunError(Exception):
    """
    Raised inside a handler to answer with an error response.

    @ivar detail: what the log says about it, beyond the reason phrase (never sent).
    """

    def __init__(
        self, code: int, reason: Optional[str] = None, extra: Sequence[Any] = (),
        detail: Optional[str] = None,
    ) -> None:
        Exception.__init__(self, code, reason)
        self.code = code
        self.reason = REASONS[code] if reason is None else reason
        self.extra = tuple(extra)
        self.detail = detail


#: The refusals logged at info (with a rate bound): a client was told no, and an operator
#: looking for abusers or misconfigured clients wants to see it.  A 401 is logged only after
#: credentials failed (its detail says so), not as the challenge every client gets first.
LOGGED_REFUSALS = frozenset({300, 401, 403, 437, 441, 486, 508})

_METHOD_NAMES = {method.value: method.name.title().replace("_", "") for method in Method}


class _Unanswered(Exception):
    """
    Raised inside a handler to drop a request without any answer (a rate limit).
    """


#: At most this many types in UNKNOWN-ATTRIBUTES: a request listing thousands must not get an
#: answer larger than itself.
MAX_UNKNOWN_ATTRIBUTES = 32


def _unknownAttributes(request: Message) -> StunError:
    """
    420 naming each unknown comprehension-required attribute of C{request} once.
    """
    types = tuple(dict.fromkeys(request.unknownRequired))[:MAX_UNKNOWN_ATTRIBUTES]
    return StunError(420, extra=(UnknownAttributes(types),))


class TurnServer:
    """
    Answers STUN and TURN requests and indications.

    @ivar table: the L{AllocationTable}.
    @ivar counters: a L{Counter} of events and of dropped messages by reason.
    """

    def __init__(
        self,
        *,
        clock: Any,
        authenticator: Authenticator,
        nonces: NonceManager,
        policy: PeerPolicy,
        relays: RelayPortAllocator,
        realm: str,
        noAuth: bool = False,
        software: bool = False,
        fingerprint: bool = False,
        maxAllocateLifetime: int = 3600,
        permissionLifetime: int = 300,
        channelLifetime: int = 600,
        userQuota: int = 0,
        totalQuota: int = 0,
        externalAddresses: Optional[Dict[str, str]] = None,
        tcpRelays: Any = None,
        tcpRelayPorts: Optional[RelayPortAllocator] = None,
        unauthenticatedLimit: Optional[SourceLimiter] = None,
        authFailureLimit: Optional[UserFailureLimiter] = None,
        bandwidth: Optional[BandwidthPolicy] = None,
        logAddresses: bool = True,
        alternateServers: Sequence[Address] = (),
        tlsAlternateServers: Sequence[Address] = (),
        sharedQuota: Any = None,
    ) -> None:
        """
        @param tcpRelays: the RFC 6062 connection registry
            (L{twisted_turn.tcprelay.TcpRelays}), or L{None} to refuse TCP allocations with
            442; C{tcpRelayPorts} then allocates the relayed TCP addresses.
        @param unauthenticatedLimit: bounds the answers to UDP requests whose integrity is not
            proven (challenges and errors), per source; past it they are dropped unanswered.
        @param authFailureLimit: bounds failed authentications per user name; past it,
            requests for that name from addresses it has not authenticated from are dropped.
        @param bandwidth: C{--max-bps} and C{--bps-capacity}; none by default.  UDP
            allocations only: TCP relays (RFC 6062) are neither shaped nor counted.
        @param logAddresses: put client and peer addresses into the refusals it logs
            (C{--no-log-addresses} leaves them out).
        @param alternateServers: where a new Allocate from a UDP or TCP client is sent (300
            ALTERNATE-SERVER) while L{draining} or past the total quota, in turn among those of
            the client's family; without one of its family, it gets 486.
        @param tlsAlternateServers: the same for TLS and DTLS clients.
        @param sharedQuota: where --user-quota and --total-quota are counted when several
            servers share them (worker processes): an object with C{reserve(user, userExtra,
            totalExtra, done)}, which calls C{done} with L{None} (granted), C{"user"} or
            C{"total"} (that quota is reached) or another refusal text, now or later, and
            C{release(user)}.  Every allocation made is reserved there first, and released
            when it ends.  L{None}: the quotas count this server's allocations, at once.
        """
        self._clock = clock
        self._authenticator = authenticator
        self._nonces = nonces
        self._policy = policy
        self.relays = relays
        self._realm = realm
        self._noAuth = noAuth
        self._software = (Software(SOFTWARE),) if software else ()
        self._fingerprint = fingerprint
        self._maxLifetime = maxAllocateLifetime
        self._permissionLifetime = permissionLifetime
        self._channelLifetime = channelLifetime
        self._userQuota = userQuota
        self._totalQuota = totalQuota
        self._external = dict(externalAddresses or {})
        self.tcpRelays = tcpRelays
        self.tcpRelayPorts = tcpRelayPorts
        self._unauthenticatedLimit = unauthenticatedLimit
        self._authFailureLimit = authFailureLimit
        self.bandwidth = bandwidth if bandwidth is not None else BandwidthPolicy()
        self._logAddresses = logAddresses
        self._refusals = RefusalLog(_log, clock)
        self._alternates = {
            (tls, family): [a for a in servers if familyOf(a[0]) == family]
            for tls, servers in ((False, alternateServers), (True, tlsAlternateServers))
            for family in (1, 2)
        }
        self._nextAlternate = 0
        self.sharedQuota = sharedQuota
        #: The 5-tuples whose Allocate waits for the shared quota's answer.
        self._pendingAllocates: Set[FiveTuple] = set()
        #: Refuse new allocations (send them to an alternate server): the server is draining.
        self.draining = False
        #: What ended allocations relayed: packets and bytes from clients to peers, then from
        #: peers to clients (the live ones keep their own, on the allocation).
        self.endedTraffic = [0, 0, 0, 0]
        #: The same per user name, kept only when asked (metrics with user labels): a table
        #: that grows with the number of distinct users.
        self.endedTrafficByUser: Optional[Dict[str, List[int]]] = None
        self.startedAt = clock.seconds()
        self.table = AllocationTable()
        self.counters: Counter = Counter()
        # RFC 8489 section 9.2.4: PASSWORD-ALGORITHMS is offered, and can be chosen from, only
        # when the nonce advertises the password-algorithms feature.
        self._offered: Optional[PasswordAlgorithms] = (
            PasswordAlgorithms(((PasswordAlgorithm.MD5, b""), (PasswordAlgorithm.SHA256, b"")))
            if nonces.features & FEATURE_PASSWORD_ALGORITHMS
            else None
        )
        self._handlers = {
            Method.ALLOCATE: self._allocate,
            Method.REFRESH: self._refresh,
            Method.CREATE_PERMISSION: self._createPermission,
            Method.CHANNEL_BIND: self._channelBind,
            Method.CONNECT: self._connect,
            Method.CONNECTION_BIND: self._connectionBind,
        }
        if tcpRelays is not None:
            tcpRelays.notifyAttempt = self._connectionAttempt

    # -- entry point -------------------------------------------------------------------------

    def handleStun(
        self,
        data: bytes,
        transport: Any,
        client: Address,
        server: Address,
        protocol: str = "udp",
    ) -> None:
        """
        Process one STUN message received by a listener.

        @param transport: what replies and peer data go out on: C{transport.write(data,
            client)}.
        @param protocol: the client's transport, part of the 5-tuple: C{"udp"}, C{"tcp"},
            C{"tls"} or C{"dtls"}.

        Never raises for bad input: a malformed request gets 400 when its header could be read,
        anything else malformed is dropped and counted.
        """
        try:
            message = decodeMessage(data)
        except StunDecodeError as e:
            self.counters["dropMalformed"] += 1
            if (
                e.header is not None
                and e.header[1] == MessageClass.REQUEST
                and self._mayAnswerUnproven(client, protocol)
            ):
                method, _, transactionId = e.header
                self._send(
                    transport, client, method, MessageClass.ERROR, transactionId,
                    [ErrorCode(400, REASONS[400])], None, False,
                )
            return
        if verifyFingerprint(message) is False:
            self.counters["dropBadFingerprint"] += 1
            return
        fiveTuple = FiveTuple(client[0], client[1], server[0], server[1], protocol)
        if message.messageClass == MessageClass.REQUEST:
            self._handleRequest(message, transport, fiveTuple)
        elif message.messageClass == MessageClass.INDICATION and message.method == Method.SEND:
            self._handleSend(message, fiveTuple)
        elif message.messageClass == MessageClass.INDICATION and message.method == Method.BINDING:
            # A keepalive (RFC 8489 section 6.3.2): nothing to answer.
            self.counters["bindingIndication"] += 1
        else:
            self.counters["dropUnexpected"] += 1

    # -- replies -------------------------------------------------------------------------------

    def _send(
        self,
        transport: Any,
        client: Address,
        method: int,
        messageClass: MessageClass,
        transactionId: bytes,
        attributes: list,
        credentials: Optional[Credentials],
        fingerprint: bool,
    ) -> bytes:
        key = credentials.key if credentials is not None else None
        data = encodeMessage(
            method,
            messageClass,
            transactionId,
            attributes + list(self._software),
            integrityKey=key,
            integritySha256=key is not None and credentials.sha256,
            fingerprint=fingerprint or self._fingerprint,
        )
        transport.write(data, client)
        return data

    def _reply(
        self,
        request: Message,
        transport: Any,
        client: Address,
        attributes: list,
        credentials: Optional[Credentials],
    ) -> bytes:
        return self._send(
            transport, client, request.method, MessageClass.SUCCESS, request.transactionId,
            attributes, credentials, request.get(Fingerprint) is not None,
        )

    def _replyError(
        self,
        request: Message,
        transport: Any,
        client: Address,
        error: StunError,
        credentials: Optional[Credentials],
    ) -> None:
        self.counters[f"error{error.code}"] += 1
        if error.code in LOGGED_REFUSALS and (error.code != 401 or error.detail):
            self._logRefusal(request, client, error, credentials)
        self._send(
            transport, client, request.method, MessageClass.ERROR, request.transactionId,
            [ErrorCode(error.code, error.reason), *error.extra], credentials,
            request.get(Fingerprint) is not None,
        )

    def _logRefusal(
        self, request: Message, client: Address, error: StunError,
        credentials: Optional[Credentials],
    ) -> None:
        user = credentials.username if credentials is not None else None
        self._refusals.refused(
            error.code,
            "Refused {method} from {client}{user}: {code} {reason}{detail}",
            method=_METHOD_NAMES.get(request.method, f"method 0x{request.method:03x}"),
            client=f"{client[0]}:{client[1]}" if self._logAddresses else "a client",
            user=f" ({user!r})" if user is not None else "",
            code=error.code, reason=error.reason or REASONS.get(error.code, ""),
            detail=f": {error.detail}" if error.detail else "",
        )

    def _challenge(self, code: int, client: Address, now: float) -> StunError:
        # No reason phrase: the answer goes to a source that proved nothing, so it is kept as
        # small as RFC 8489 allows (docs/security.md, amplification).
        extra: list = [Realm(self._realm), Nonce(self._nonces.issue(client[0], now))]
        if self._offered is not None:
            extra.append(self._offered)
        return StunError(code, "", extra=extra)

    def _mayAnswerUnproven(self, client: Address, transport: str) -> bool:
        """
        Whether an answer may go to C{client}, which has proven nothing: always over streams
        and DTLS (their handshakes prove the address), within the per-source limit over UDP.
        """
        limit = self._unauthenticatedLimit
        if limit is None or transport != "udp" or limit.allow(client[0], self._clock.seconds()):
            return True
        self._dropLimited(
            "dropUnauthenticatedRateLimited",
            "Unauthenticated requests from {client} past the rate limit are dropped "
            "unanswered ({dropped} so far from all sources)",
            client=client[0],
        )
        return False

    def _dropLimited(self, counter: str, message: str, **fields: Any) -> None:
        """
        Count a request a rate limit drops, and log it (at info, with the client address, as
        refusals are) the first times and then every thousandth.
        """
        self.counters[counter] += 1
        dropped = self.counters[counter]
        if worthLogging(dropped):
            _log.info(message, dropped=dropped, **fields)

    # -- requests ------------------------------------------------------------------------------

    def _handleRequest(self, request: Message, transport: Any, fiveTuple: FiveTuple) -> None:
        client = fiveTuple.client
        if request.method == Method.BINDING:
            if request.unknownRequired:
                self.counters["bindingError"] += 1
                if self._mayAnswerUnproven(client, fiveTuple.transport):
                    self._replyError(
                        request, transport, client, _unknownAttributes(request), None
                    )
                return
            self.counters["binding"] += 1
            self._reply(request, transport, client, [XorMappedAddress(*client)], None)
            return
        handler = self._handlers.get(request.method)
        if handler is None:
            if self._mayAnswerUnproven(client, fiveTuple.transport):
                self._replyError(
                    request, transport, client, StunError(400, "Unknown method"), None
                )
            return
        now = self._clock.seconds()
        credentials: Optional[Credentials] = None
        try:
            credentials = self._authenticate(request, client, now)
            if request.unknownRequired:
                raise _unknownAttributes(request)
            handler(request, transport, fiveTuple, credentials, now)
        except StunError as error:
            if credentials is not None or self._mayAnswerUnproven(client, fiveTuple.transport):
                self._replyError(request, transport, client, error, credentials)
        except _Unanswered:
            pass

    def _authenticate(self, request: Message, client: Address, now: float) -> Credentials:
        """
        The long-term credential mechanism of RFC 8489 section 9.2.4.

        @raise StunError: 400, 401 or 438; nothing about the client is remembered.
        """
        if self._noAuth:
            return ANONYMOUS
        sha256 = request.get(MessageIntegritySha256) is not None
        if not sha256 and request.get(MessageIntegrity) is None:
            raise self._challenge(401, client, now)
        username = request.get(Username)
        userhash = request.get(Userhash)
        realm = request.get(Realm)
        nonce = request.get(Nonce)
        if (username is None and userhash is None) or realm is None or nonce is None:
            raise StunError(400, "Missing USERNAME, REALM or NONCE")
        if self._nonces.check(nonce.value, client[0], now) != "ok":
            self.counters["staleNonce"] += 1
            raise self._challenge(438, client, now)
        algorithm = self._negotiatedAlgorithm(request)
        if userhash is not None:
            name = self._authenticator.userForHash(userhash.value)
        else:
            name = username.value
        failures = self._authFailureLimit if name is not None else None
        if failures is not None and not failures.mayTry(name, client[0], now):  # type: ignore
            self._dropLimited(
                "dropAuthFailureLimited",
                "Too many failed authentications for {user!r}: its requests from {client}, "
                "which it has not authenticated from, are dropped ({dropped} so far)",
                user=name, client=client[0],
            )
            raise _Unanswered()
        keys = []
        if name is not None and realm.value == self._realm:
            keys = self._authenticator.keysFor(name, algorithm, now)
        # An unknown user costs the same HMAC as a wrong password, so response times do not
        # tell which user names exist.
        for key in keys or (_NO_KEY,):
            if verifyIntegrity(request, key) and keys:
                if failures is not None:
                    failures.succeeded(name, client[0], now)  # type: ignore[arg-type]
                return Credentials(name, key, sha256)
        self.counters["authFailed"] += 1
        if failures is not None:
            failures.failed(name, now)  # type: ignore[arg-type]
        challenge = self._challenge(401, client, now)
        challenge.detail = (
            f"bad credentials for {name!r} (wrong password, or no such user)"
            if name is not None else "USERHASH of no known user"
        )
        raise challenge

    def _negotiatedAlgorithm(self, request: Message) -> int:
        """
        RFC 8489 section 9.2.4: a request that carries neither PASSWORD-ALGORITHMS nor
        PASSWORD-ALGORITHM uses MD5 (RFC 5389 clients); one that carries them must echo the
        list this server offered and pick from it.
        """
        offered = request.get(PasswordAlgorithms)
        chosen = request.get(PasswordAlgorithmAttribute)
        if offered is None and chosen is None:
            return PasswordAlgorithm.MD5
        if self._offered is None or offered is None or chosen is None or offered != self._offered:
            raise StunError(400, "PASSWORD-ALGORITHMS does not match")
        if chosen.algorithm not in (PasswordAlgorithm.MD5, PasswordAlgorithm.SHA256):
            raise StunError(400, "Unsupported PASSWORD-ALGORITHM")
        return chosen.algorithm

    def _liveAllocation(
        self, fiveTuple: FiveTuple, credentials: Credentials, now: float
    ) -> Allocation:
        allocation = self.table.get(fiveTuple)
        if allocation is None or allocation.expiresAt < now:
            raise StunError(437, detail="no allocation on this 5-tuple")
        if allocation.username != credentials.username:
            raise StunError(441, detail=f"the allocation belongs to {allocation.username!r}")
        return allocation

    def _lifetime(self, request: Message) -> int:
        """
        RFC 8656 section 7.2: the requested lifetime capped at the maximum, never below the
        default (unless the operator's maximum is lower still).
        """
        requested = request.get(Lifetime)
        lifetime = DEFAULT_LIFETIME
        if requested is not None:
            lifetime = max(min(requested.seconds, self._maxLifetime), DEFAULT_LIFETIME)
        return min(lifetime, self._maxLifetime)

    def _redirect(self, fiveTuple: FiveTuple, why: str) -> StunError:
        """
        300 with the next alternate server of the client's transport and family, or 486
        when there is none.
        """
        alternates = self._alternates[
            (fiveTuple.transport in ("tls", "dtls"), familyOf(fiveTuple.clientHost))
        ]
        if not alternates:
            return StunError(486, detail=why)
        self._nextAlternate += 1
        alternate = alternates[self._nextAlternate % len(alternates)]
        self.counters["redirected"] += 1
        return StunError(
            300, extra=(AlternateServer(*alternate),),
            detail=f"{why}: sent to {alternate[0]}:{alternate[1]}",
        )

    def _checkQuotas(self, user: Optional[str], fiveTuple: FiveTuple) -> None:
        """
        @raise StunError: 486 past --user-quota or --total-quota.  Reserved EVEN-PORT sockets
            count like allocations, or reserving and deleting in a loop would hold ports past
            any quota.
        """
        if self._userQuota and (
            self.table.countForUser(user) + self.relays.reservationCount(user, anyOwner=False)
            >= self._userQuota
        ):
            raise StunError(486, detail=f"--user-quota {self._userQuota} reached")
        held = len(self.table) + self.relays.reservationCount()
        if self._totalQuota and held >= self._totalQuota:
            raise self._redirect(fiveTuple, f"--total-quota {self._totalQuota} reached")

    def _withQuota(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        proceed: Callable[[], Optional[Allocation]],
    ) -> None:
        """
        Call C{proceed}, which makes the allocation, once the quotas allow one more for
        C{credentials}' user: at once against this server's own count, or when the shared
        quota has answered.  An error C{proceed} raises then is answered here.

        @raise StunError: 486 (or 300) past a quota of this server's own.
        @raise _Unanswered: this 5-tuple's Allocate already waits for the shared quota (a
            retransmission: the answer to the first goes out when it comes).
        """
        shared = self.sharedQuota
        user = credentials.username
        if shared is None:
            self._checkQuotas(user, fiveTuple)
            proceed()
            return
        if fiveTuple in self._pendingAllocates:
            self.counters["allocatePending"] += 1
            raise _Unanswered()
        self._pendingAllocates.add(fiveTuple)

        def done(refusal: Optional[str]) -> None:
            self._pendingAllocates.discard(fiveTuple)
            try:
                if refusal == "user":
                    raise StunError(486, detail=f"--user-quota {self._userQuota} reached "
                                    "(all workers)")
                if refusal == "total":
                    raise self._redirect(fiveTuple, f"--total-quota {self._totalQuota} "
                                         "reached (all workers)")
                if refusal is not None:
                    raise StunError(486, detail=refusal)
                if getattr(transport, "disconnected", False):
                    # A stream client that left while its Allocate waited.
                    shared.release(user)
                    return
                try:
                    allocation = proceed()
                except BaseException:
                    shared.release(user)
                    raise
                if allocation is not None:
                    allocation.quotaShared = True
                else:
                    shared.release(user)
            except StunError as error:
                self._replyError(request, transport, fiveTuple.client, error, credentials)
            except _Unanswered:
                pass
            except Exception:
                _log.failure("Allocate for {client} failed after the shared quota answered",
                             client=fiveTuple.client)

        shared.reserve(
            user, self.relays.reservationCount(user, anyOwner=False),
            self.relays.reservationCount(), done,
        )

    def _allocate(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        now: float,
    ) -> None:
        existing = self.table.get(fiveTuple)
        if existing is not None:
            if existing.expiresAt >= now:
                if (
                    existing.allocateTransactionId == request.transactionId
                    and existing.username == credentials.username
                ):
                    self.counters["allocateRetransmit"] += 1
                    transport.write(existing.allocateResponse, fiveTuple.client)
                    return
                raise StunError(437, detail="this 5-tuple already has an allocation")
            self.deallocate(existing)
        if self.draining:
            raise self._redirect(fiveTuple, "the server is draining")

        requestedTransport = request.get(RequestedTransport)
        if requestedTransport is None:
            raise StunError(400, "Missing REQUESTED-TRANSPORT")
        if requestedTransport.protocol == TCP and self.tcpRelays is not None:
            self._allocateTcp(request, transport, fiveTuple, credentials, now)
            return
        if requestedTransport.protocol != UDP:
            raise StunError(442)
        token = request.get(ReservationToken)
        evenPort = request.get(EvenPort)
        requestedFamily = request.get(RequestedAddressFamily)
        additionalFamily = request.get(AdditionalAddressFamily)
        # coturn's clients use coturn's pre-RFC code points: answered in kind (docs/ipv6.md).
        addressErrorCode: type = AddressErrorCode
        if additionalFamily is None:
            additionalFamily = request.get(AdditionalAddressFamilyDraft)
            if additionalFamily is not None:
                addressErrorCode = AddressErrorCodeDraft
        if token is not None and (evenPort or requestedFamily or additionalFamily):
            raise StunError(400, "RESERVATION-TOKEN with EVEN-PORT or an address family")
        if requestedFamily is not None and additionalFamily is not None:
            raise StunError(400, "REQUESTED- and ADDITIONAL-ADDRESS-FAMILY together")
        if additionalFamily is not None and additionalFamily.family != 2:
            raise StunError(400, "ADDITIONAL-ADDRESS-FAMILY must be IPv6")
        if additionalFamily is not None and evenPort is not None and evenPort.reserve:
            # A RESERVATION-TOKEN names one socket, and the Allocate claiming it may carry no
            # address family: there is no way to hand out a dual-stack pair's next ports.
            raise StunError(400, "EVEN-PORT with R cannot reserve for a dual-stack allocation")
        family = requestedFamily.family if requestedFamily is not None else 1
        if family not in (1, 2) or self.relays.hostFor(family) is None:
            raise StunError(440)
        user = credentials.username
        if token is not None:
            # The reservation was counted against the quotas when it was made.
            claimed = self.relays.takeReservation(token.token, now)
            if claimed is None:
                raise StunError(508, "Invalid or expired RESERVATION-TOKEN",
                                detail="no such reservation")
            self._allocateUdp(request, transport, fiveTuple, credentials, now, claimed,
                              None, family, additionalFamily, addressErrorCode)
            return

        def proceed() -> Allocation:
            at = self._clock.seconds()
            try:
                handle, host, port, newToken = self.relays.open(
                    family,
                    at,
                    even=evenPort is not None,
                    reserveNext=evenPort is not None and evenPort.reserve,
                    owner=user,
                )
            except NoRelayPort as e:
                self._noRelayPort(e, "Allocate refused with 508")
                raise StunError(508, detail=f"no relay port: {e}")
            return self._allocateUdp(
                request, transport, fiveTuple, credentials, at, (handle, host, port),
                newToken, family, additionalFamily, addressErrorCode, evenPort is not None,
            )

        self._withQuota(request, transport, fiveTuple, credentials, proceed)

    def _allocateUdp(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        now: float,
        first: Tuple[Any, str, int],
        newToken: Optional[bytes],
        family: int,
        additionalFamily: Any,
        addressErrorCode: type,
        even: bool = False,
    ) -> Allocation:
        """
        Make a UDP allocation whose first relayed address is C{first} (its handle, host and
        port), opened or claimed: the IPv6 half of a dual-stack request, the bandwidth, the
        table entry and the answer.
        """
        user = credentials.username
        dontFragment = request.get(DontFragment) is not None
        handle, host, port = first
        opened = [(host, port, handle)]
        if dontFragment and not handle.setDontFragment():
            self._releaseOpened(opened)
            raise StunError(420, extra=(UnknownAttributes((DontFragment.TYPE,)),))

        # RFC 8656 section 7.2: the IPv6 half of a dual-stack request never fails the
        # Allocate; the response says why it is missing with ADDRESS-ERROR-CODE.
        addressError: Optional[int] = None
        if additionalFamily is not None:
            if self.relays.hostFor(2) is None:
                addressError = 440
            else:
                try:
                    handle6, host6, port6, _ = self.relays.open(2, now, even=even, owner=user)
                except NoRelayPort as e:
                    self._noRelayPort(e, "IPv6 half of a dual-stack Allocate refused with 508")
                    addressError = 508
                else:
                    opened.append((host6, port6, handle6))
                    if dontFragment and not handle6.setDontFragment():
                        self._releaseOpened(opened)
                        raise StunError(420, extra=(UnknownAttributes((DontFragment.TYPE,)),))

        rate = self.bandwidth.reserve()
        if rate is None:
            self._releaseOpened(opened)
            self.counters["bandwidthQuotaReached"] += 1
            raise StunError(486, "Allocation Bandwidth Quota Reached",
                            detail=f"--bps-capacity {self.bandwidth.capacity} handed out")
        lifetime = self._lifetime(request)
        allocation = Allocation(
            fiveTuple,
            credentials.username,
            (host, port),
            (self._external.get(host, host), port),
            now + lifetime,
            handle,
        )
        setRate(allocation, rate, now)
        allocation.createdAt = now
        for extraHost, extraPort, extraHandle in opened[1:]:
            allocation.addRelayed(
                (extraHost, extraPort), (self._external.get(extraHost, extraHost), extraPort),
                extraHandle,
            )
        allocation.clientTransport = transport
        for _, _, relayHandle in opened:
            relayHandle.attach(allocation)
        self.table.add(allocation)
        self.counters["allocations"] += 1
        if len(opened) > 1:
            self.counters["dualStackAllocations"] += 1

        attributes: list = [
            XorRelayedAddress(*relayed.externalAddress) for relayed in allocation.relayed
        ]
        attributes.append(Lifetime(lifetime))
        if newToken is not None:
            attributes.append(ReservationToken(newToken))
        if addressError is not None:
            attributes.append(addressErrorCode(2, addressError, REASONS[addressError]))
        attributes.append(XorMappedAddress(*fiveTuple.client))
        allocation.allocateTransactionId = request.transactionId
        allocation.allocateResponse = self._reply(
            request, transport, fiveTuple.client, attributes, credentials
        )
        _log.debug(
            "Allocated {relay} for {client} ({user!r}, {lifetime}s)",
            relay=" and ".join(str(relayed.address) for relayed in allocation.relayed),
            client=fiveTuple.client, user=credentials.username, lifetime=lifetime,
        )
        return allocation

    def _allocateTcp(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        now: float,
    ) -> None:
        """
        RFC 6062 section 5.1: an allocation whose relayed address is a listening TCP socket.
        """
        if fiveTuple.transport not in ("tcp", "tls"):
            raise StunError(400, "A TCP relay needs a TCP or TLS client connection")
        for attribute in (ReservationToken, EvenPort, DontFragment):
            if request.get(attribute) is not None:
                raise StunError(400, f"{attribute.__name__} is not allowed with a TCP relay")
        if request.get(AdditionalAddressFamily) or request.get(AdditionalAddressFamilyDraft):
            raise StunError(400, "TCP relays are single-family")
        requestedFamily = request.get(RequestedAddressFamily)
        family = requestedFamily.family if requestedFamily is not None else 1
        ports = self.tcpRelayPorts
        if family not in (1, 2) or ports is None or ports.hostFor(family) is None:
            raise StunError(440)
        self._withQuota(
            request, transport, fiveTuple, credentials,
            lambda: self._allocateTcpRelay(request, transport, fiveTuple, credentials,
                                           family, ports),
        )

    def _allocateTcpRelay(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        family: int,
        ports: RelayPortAllocator,
    ) -> Allocation:
        user = credentials.username
        now = self._clock.seconds()
        try:
            handle, host, port, _ = ports.open(family, now, owner=user)
        except NoRelayPort as e:
            self._noRelayPort(e, "TCP Allocate refused with 508")
            raise StunError(508, detail=f"no TCP relay port: {e}")
        lifetime = self._lifetime(request)
        allocation = Allocation(
            fiveTuple, user, (host, port), (self._external.get(host, host), port),
            now + lifetime, handle,
        )
        allocation.tcp = True
        allocation.createdAt = now
        allocation.clientTransport = transport
        handle.attach(allocation)
        self.table.add(allocation)
        self.counters["allocations"] += 1
        self.counters["tcpAllocations"] += 1
        allocation.allocateTransactionId = request.transactionId
        allocation.allocateResponse = self._reply(
            request, transport, fiveTuple.client,
            [XorRelayedAddress(*allocation.externalAddress), Lifetime(lifetime),
             XorMappedAddress(*fiveTuple.client)],
            credentials,
        )
        _log.debug("Allocated TCP relay {relay} for {client} ({user!r}, {lifetime}s)",
                   relay=allocation.relayAddress, client=fiveTuple.client, user=user,
                   lifetime=lifetime)
        return allocation

    def _connect(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        now: float,
    ) -> None:
        """
        RFC 6062 section 5.2: connect the relayed address to a peer; the answer (CONNECTION-ID,
        or 447) goes out when the connection is made or has failed.
        """
        allocation = self._liveAllocation(fiveTuple, credentials, now)
        if not allocation.tcp or self.tcpRelays is None:
            raise StunError(400, "Connect needs a TCP allocation")
        peer = request.get(XorPeerAddress)
        if peer is None:
            raise StunError(400, "Missing XOR-PEER-ADDRESS")
        host = self._checkPeer(allocation, peer, withPort=True, tcp=True)
        address = (host, peer.port)
        if self.tcpRelays.connectionTo(allocation, address) is not None:
            raise StunError(446)
        if self.tcpRelays.connectionCount(allocation) >= self.tcpRelays.maxConnections:
            raise StunError(508, "Too many TCP connections",
                            detail=f"{self.tcpRelays.maxConnections} TCP connections")
        client = fiveTuple.client

        def done(connectionId: Optional[int]) -> None:
            if connectionId is None:
                self._replyError(request, transport, client, StunError(447), credentials)
            else:
                self._reply(request, transport, client, [ConnectionId(connectionId)],
                            credentials)

        self.counters["tcpConnect"] += 1
        self.tcpRelays.connect(allocation, address, allocation.relayAddress, done)

    def _connectionBind(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        now: float,
    ) -> None:
        """
        RFC 6062 section 5.4: bind a new client connection (the data connection) to a peer
        connection by its CONNECTION-ID; after the answer the connection carries raw bytes.
        """
        if self.tcpRelays is None or fiveTuple.transport not in ("tcp", "tls"):
            raise StunError(400, "ConnectionBind needs a TCP or TLS client connection")
        if self.table.get(fiveTuple) is not None:
            raise StunError(400, "ConnectionBind on a connection that has an allocation")
        connectionId = request.get(ConnectionId)
        if connectionId is None:
            raise StunError(400, "Missing CONNECTION-ID")
        connection = self.tcpRelays.bind(connectionId.value, credentials.username)
        if connection is None:
            raise StunError(400, "Unknown CONNECTION-ID")
        self._reply(request, transport, fiveTuple.client, [], credentials)
        self.counters["tcpConnectionBind"] += 1
        transport.splice(connection)

    def _connectionAttempt(self, allocation: Allocation, peer: Address, connectionId: int) -> None:
        """
        RFC 6062 section 5.3: tell the client a peer connected to its relayed address.
        """
        data = encodeMessage(
            Method.CONNECTION_ATTEMPT, MessageClass.INDICATION, os.urandom(12),
            [XorPeerAddress(*peer), ConnectionId(connectionId), *self._software],
            fingerprint=self._fingerprint,
        )
        allocation.clientTransport.write(data, allocation.client)

    def _noRelayPort(self, error: NoRelayPort, what: str) -> None:
        """
        Count, and now and then log, a relay socket that could not be opened.
        """
        self.counters["noRelayPort"] += 1
        if worthLogging(self.counters["noRelayPort"]):
            _log.warn("{what}: {reason}", what=what, reason=str(error))

    def _releaseOpened(self, opened: list) -> None:
        for host, port, handle in opened:
            self.relays.release(host, port, handle)

    def _refresh(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        now: float,
    ) -> None:
        allocation = self._liveAllocation(fiveTuple, credentials, now)
        requestedFamily = request.get(RequestedAddressFamily)
        if requestedFamily is not None and not allocation.hasFamily(requestedFamily.family):
            # RFC 8656 section 7.3.
            raise StunError(443)
        requested = request.get(Lifetime)
        if requested is not None and requested.seconds == 0:
            if requestedFamily is not None and len(allocation.relayed) > 1:
                # Deleting one family of a dual-stack allocation (RFC 8656 section 7.1): the
                # other relayed address lives on, with the allocation's lifetime.
                relayed = allocation.dropFamily(requestedFamily.family, now)
                self.relays.release(relayed.address[0], relayed.address[1], relayed.handle)
                self.counters["relayedAddressDeleted"] += 1
                _log.debug("Deleted {relay} of a dual-stack allocation", relay=relayed.address)
            else:
                self.deallocate(allocation)
            lifetime = 0
        else:
            # One lifetime per allocation: refreshing one family of a dual-stack allocation
            # refreshes both (docs/ipv6.md).
            lifetime = self._lifetime(request)
            allocation.expiresAt = now + lifetime
        self._reply(request, transport, fiveTuple.client, [Lifetime(lifetime)], credentials)

    def _checkPeer(
        self, allocation: Allocation, peer: XorPeerAddress, withPort: bool = False,
        tcp: bool = False,
    ) -> str:
        """
        The peer's host as a permission key (the codec formats it as the socket module reports
        peer addresses), after the family and policy checks; with C{withPort} the policy also
        judges the port (a channel goes to one port), with C{tcp} as a TCP connection's.

        @raise StunError: 443 for a peer of a family the allocation has no relayed address of,
            403 for a peer the policy refuses.
        """
        if not allocation.hasFamily(familyOf(peer.host)):
            raise StunError(443)
        refusal = self._policy.refusal(peer.host, peer.port if withPort else None, tcp)
        if refusal is not None:
            self.counters["peerDenied"] += 1
            described = self._policy.describeRefusal(peer.host, refusal)
            peerText = (
                (f"[{peer.host}]" if ":" in peer.host else peer.host)
                + (f":{peer.port}" if withPort else "")
            )
            raise StunError(
                403, "Peer address not allowed",
                detail=f"peer {peerText} is {described}" if self._logAddresses
                else f"a peer {described}",
            )
        return peer.host

    def _permit(self, allocation: Allocation, host: str, now: float) -> None:
        allocation.installPermission(host, now + self._permissionLifetime)
        if self._policy.isPortRestricted(host):
            allocation.restrictedPeers.add(host)

    def _createPermission(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        now: float,
    ) -> None:
        allocation = self._liveAllocation(fiveTuple, credentials, now)
        peers = request.getAll(XorPeerAddress)
        if not peers:
            raise StunError(400, "Missing XOR-PEER-ADDRESS")
        # All or nothing (RFC 8656 section 9.2): check every peer before installing any.
        hosts = [self._checkPeer(allocation, peer) for peer in peers]
        new = {host for host in hosts if host not in allocation.permissions}
        if len(allocation.permissions) + len(new) > MAX_PERMISSIONS:
            raise StunError(508, "Too many permissions",
                            detail=f"{MAX_PERMISSIONS} permissions")
        for host in hosts:
            self._permit(allocation, host, now)
        self._reply(request, transport, fiveTuple.client, [], credentials)

    def _channelBind(
        self,
        request: Message,
        transport: Any,
        fiveTuple: FiveTuple,
        credentials: Credentials,
        now: float,
    ) -> None:
        allocation = self._liveAllocation(fiveTuple, credentials, now)
        if allocation.tcp:
            raise StunError(400, "No channels on a TCP allocation")
        channel = request.get(ChannelNumber)
        peer = request.get(XorPeerAddress)
        if channel is None or peer is None:
            raise StunError(400, "Missing CHANNEL-NUMBER or XOR-PEER-ADDRESS")
        if not CHANNEL_MIN <= channel.number <= CHANNEL_MAX:
            raise StunError(400, "Channel number out of range")
        host = self._checkPeer(allocation, peer, withPort=True)
        peerAddress = (host, peer.port)
        if allocation.channelConflict(channel.number, peerAddress, now):
            raise StunError(400, "Channel or peer already bound")
        if host not in allocation.permissions and len(allocation.permissions) >= MAX_PERMISSIONS:
            raise StunError(508, "Too many permissions",
                            detail=f"{MAX_PERMISSIONS} permissions")
        binding = allocation.bindChannel(channel.number, peerAddress, now + self._channelLifetime)
        self._permit(allocation, host, now)
        binding.restricted = host in allocation.restrictedPeers
        self._reply(request, transport, fiveTuple.client, [], credentials)

    # -- indications ---------------------------------------------------------------------------

    def _handleSend(self, indication: Message, fiveTuple: FiveTuple) -> None:
        now = self._clock.seconds()
        allocation = self.table.get(fiveTuple)
        if allocation is None or allocation.expiresAt < now:
            self.counters["dropSendNoAllocation"] += 1
            return
        if allocation.tcp:
            self.counters["dropSendTcpAllocation"] += 1
            return
        peer = indication.get(XorPeerAddress)
        data = indication.get(Data)
        if peer is None or data is None or indication.unknownRequired:
            self.counters["dropSendMalformed"] += 1
            return
        if not allocation.hasPermission(peer.host, now):
            # Not judged by the policy just to pick a counter: that would let a client drive
            # the host-address probe at packet rate.
            self.counters["dropNoPermission"] += 1
            return
        if peer.host in allocation.restrictedPeers and not self._policy.isAllowed(
            peer.host, peer.port
        ):
            self.counters["dropPeerDenied"] += 1
            return
        if allocation.bps and not admitUp(allocation, len(data.value), now):
            self.counters["dropBandwidthUp"] += 1
            return
        allocation.upPackets += 1
        allocation.upBytes += len(data.value)
        try:
            allocation.relayFor(peer.host).write(data.value, (peer.host, peer.port))
        except Exception:
            # Port 0, a broadcast address, a datagram too large: the kernel refuses.
            self.counters["dropWriteFailed"] += 1

    def peerReachable(self, peer: Address) -> bool:
        """
        Whether the policy lets data go to C{peer} now (for channels to the server's own relay
        addresses, whose sockets come and go).
        """
        return self._policy.isAllowed(peer[0], peer[1])

    def dataIndication(self, peer: Address, data: bytes) -> bytes:
        """
        Wrap peer data for a client with no channel to that peer (RFC 8656 section 11.6).
        """
        if self._fingerprint:
            return encodeMessage(
                Method.DATA,
                MessageClass.INDICATION,
                os.urandom(12),
                [XorPeerAddress(*peer), Data(data)],
                fingerprint=True,
            )
        return encodeDataIndication(os.urandom(12), peer[0], peer[1], data)

    # -- lifecycle -----------------------------------------------------------------------------

    def deallocate(self, allocation: Allocation) -> None:
        """
        Remove an allocation and free its relay ports (both of a dual-stack allocation).
        """
        if self.table.remove(allocation):
            self._releaseRelays(allocation)
            _log.debug("Deallocated {relay}", relay=allocation.relayAddress)

    def _releaseRelays(self, allocation: Allocation) -> None:
        self.bandwidth.release(allocation.bps)
        if allocation.quotaShared and self.sharedQuota is not None:
            self.sharedQuota.release(allocation.username)
        ended = self.endedTraffic
        ended[0] += allocation.upPackets
        ended[1] += allocation.upBytes
        ended[2] += allocation.downPackets
        ended[3] += allocation.downBytes
        byUser = self.endedTrafficByUser
        if byUser is not None:
            totals = byUser.setdefault(allocation.username or "", [0, 0, 0, 0])
            totals[0] += allocation.upPackets
            totals[1] += allocation.upBytes
            totals[2] += allocation.downPackets
            totals[3] += allocation.downBytes
        ports = self.tcpRelayPorts if allocation.tcp else self.relays
        for relayed in allocation.relayed:
            host, port = relayed.address
            ports.release(host, port, relayed.handle)

    def setAuthenticator(self, authenticator: Authenticator) -> None:
        """
        Check credentials with C{authenticator} from now on (a reload); live allocations
        keep their users, whose next request is checked against the new one.
        """
        self._authenticator = authenticator

    def setPolicy(self, policy: PeerPolicy) -> int:
        """
        Judge peers with C{policy} from now on (a reload), live allocations included: their
        permissions and channels to peers it refuses are removed at once.

        @return: how many permissions and channels were removed.
        """
        self._policy = policy
        removed = 0
        for allocation in self.table:
            hosts = set(allocation.permissions)
            hosts.update(binding.peer[0] for binding in allocation.channels.values())
            for host in hosts:
                if not policy.isAllowed(host):
                    removed += allocation.dropPeer(host)
            allocation.restrictedPeers = {
                host for host in allocation.permissions if policy.isPortRestricted(host)
            }
            for binding in allocation.channels.values():
                binding.restricted = binding.peer[0] in allocation.restrictedPeers
        return removed

    def setQuotas(self, userQuota: int, totalQuota: int) -> None:
        """
        New --user-quota and --total-quota (a reload), for new allocations; live ones stay.
        """
        self._userQuota = userQuota
        self._totalQuota = totalQuota

    def setLimits(
        self, unauthenticatedLimit: Optional[SourceLimiter],
        authFailureLimit: Optional[UserFailureLimiter],
    ) -> None:
        """
        New rate limits before integrity is proven (a reload); their tables start empty.
        """
        self._unauthenticatedLimit = unauthenticatedLimit
        self._authFailureLimit = authFailureLimit

    def setLogAddresses(self, logAddresses: bool) -> None:
        self._logAddresses = logAddresses

    def setBandwidth(self, maxBps: int, capacity: int) -> None:
        """
        New bandwidth limits (a reload): every live UDP allocation takes C{maxBps} at once
        (with full buckets), and C{capacity} decides whether new allocations are admitted;
        live ones are never cut off because the capacity shrank.

        @raise ValueError: as L{BandwidthPolicy.reconfigure}.
        """
        self.bandwidth.reconfigure(maxBps, capacity)
        now = self._clock.seconds()
        reserved = 0.0
        for allocation in self.table:
            if not allocation.tcp:
                setRate(allocation, float(maxBps), now)
                reserved += maxBps
        self.bandwidth.reserved = reserved

    def sweep(self) -> int:
        """
        Remove expired allocations and reservations and prune expired permissions and
        channels; called periodically.  Returns the number of allocations removed.
        """
        now = self._clock.seconds()
        expired = self.table.sweep(now)
        for allocation in expired:
            self._releaseRelays(allocation)
        self.relays.sweep(now)
        self.counters["expired"] += len(expired)
        return len(expired)

    def closeAll(self) -> None:
        """
        Remove every allocation and reservation (at shutdown).
        """
        for allocation in list(self.table):
            self.deallocate(allocation)
        self.relays.closeAll()

