"""
Tests for L{twisted_turn.server}: every TURN method and its error codes, driven through a
listener protocol on fake transports with a L{Clock}.
"""

import hashlib
import hmac
import socket
import struct
import sys
from base64 import b64encode

from hypothesis import given, settings, strategies as st
from twisted.logger import capturedLogs
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_turn.allocation import FiveTuple
from twisted_turn.auth import PasswordAlgorithm, longTermKey
from twisted_turn.policy import PeerPolicy
from twisted_turn.stun.attributes import (
    AdditionalAddressFamily,
    AdditionalAddressFamilyDraft,
    AddressErrorCode,
    AddressErrorCodeDraft,
    ChannelNumber,
    Data,
    DontFragment,
    ErrorCode,
    EvenPort,
    Fingerprint,
    Lifetime,
    MessageIntegrity,
    MessageIntegritySha256,
    Nonce,
    PasswordAlgorithm as PasswordAlgorithmAttribute,
    PasswordAlgorithms,
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
from twisted_turn.stun.integrity import verifyIntegrity
from twisted_turn.stun.message import (
    MessageClass,
    Method,
    decodeMessage,
    encodeMessage,
    newTransactionId,
)
from twisted_turn.testing import ServerFixture
from tests.test_stun_attributes import placeableAttributes

UDP = RequestedTransport(17)
#: What L{TestClient} adds to sign a request; a second copy would change what is signed.
CREDENTIAL_ATTRIBUTES = (
    Username, Userhash, Realm, Nonce, PasswordAlgorithms, PasswordAlgorithmAttribute,
    MessageIntegrity, MessageIntegritySha256, Fingerprint,
)
PEER = ("8.8.8.8", 6000)


def errorCode(message):
    if message.messageClass != MessageClass.ERROR:
        return None
    return message.get(ErrorCode).code


class ServerTestMixin:
    fixtureOptions: dict = {}

    def setUp(self):
        self.fixture = ServerFixture(**self.fixtureOptions)
        self.server = self.fixture.server
        self.clock = self.fixture.clock
        self.client = self.fixture.client()

    def allocate(self, client=None, attributes=(UDP,)):
        response = (client or self.client).request(Method.ALLOCATE, list(attributes))
        self.assertEqual(response.messageClass, MessageClass.SUCCESS, response)
        return response

    def relayOf(self, client=None):
        """
        The allocation of C{client} (by default the test's client).
        """
        host, port = (client or self.client).address
        return self.server.table.get(FiveTuple(host, port, "198.51.100.1", 3478))


class BindingTests(ServerTestMixin, SynchronousTestCase):
    def test_bindingAnswersMappedAddress(self):
        """
        A Binding request is answered without authentication, with the client's address in
        XOR-MAPPED-ADDRESS and no SOFTWARE unless configured.
        """
        response = self.client.request(Method.BINDING, authenticate=False)
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        mapped = response.get(XorMappedAddress)
        self.assertEqual((mapped.host, mapped.port), self.client.address)
        self.assertIsNone(response.get(Software))
        self.assertIsNone(response.get(Fingerprint))

    def test_fingerprintWhenAsked(self):
        """
        A request with FINGERPRINT gets a response with FINGERPRINT.
        """
        tid = newTransactionId()
        self.client.send(
            encodeMessage(Method.BINDING, MessageClass.REQUEST, tid, [], fingerprint=True)
        )
        response = self.client.lastMessage()
        self.assertIsNotNone(response.get(Fingerprint))
        self.assertEqual(response.transactionId, tid)

    def test_unknownRequiredAttribute(self):
        """
        An unknown comprehension-required attribute gets 420 with UNKNOWN-ATTRIBUTES.
        """
        data = bytearray(encodeMessage(Method.BINDING, MessageClass.REQUEST, b"x" * 12, []))
        data[3] = 8
        data += b"\x00\x7f\x00\x04abcd"
        self.client.send(bytes(data))
        response = self.client.lastMessage()
        self.assertEqual(errorCode(response), 420)
        self.assertEqual(response.get(UnknownAttributes).types, (0x7F,))

    def test_malformedRequestGets400(self):
        """
        A request whose header is well formed but whose attributes are not gets 400.
        """
        data = bytearray(encodeMessage(Method.ALLOCATE, MessageClass.REQUEST, b"y" * 12, [UDP]))
        data[23] = 200  # REQUESTED-TRANSPORT's length runs past the end
        self.client.send(bytes(data))
        response = self.client.lastMessage()
        self.assertEqual(errorCode(response), 400)
        self.assertEqual(self.server.counters["dropMalformed"], 1)

    def test_bindingIndicationIsKeepalive(self):
        """
        A Binding indication (a keepalive) is counted and not answered; a response sent to the
        server is dropped as unexpected.
        """
        self.client.send(encodeMessage(Method.BINDING, MessageClass.INDICATION, b"k" * 12, []))
        self.client.send(encodeMessage(Method.BINDING, MessageClass.SUCCESS, b"r" * 12, []))
        self.assertEqual(self.client.received(), [])
        self.assertEqual(self.server.counters["bindingIndication"], 1)
        self.assertEqual(self.server.counters["dropUnexpected"], 1)

    def test_unknownAttributesListedOnce(self):
        """
        UNKNOWN-ATTRIBUTES names each unknown type once and at most 32 of them, however many
        the request carries.
        """
        body = b"".join(
            (0x7000 + n % 40).to_bytes(2, "big") + b"\x00\x00" for n in range(400)
        )
        header = bytes.fromhex("0001") + len(body).to_bytes(2, "big")
        self.client.send(header + bytes.fromhex("2112a442") + b"q" * 12 + body)
        response = self.client.lastMessage()
        self.assertEqual(errorCode(response), 420)
        self.assertEqual(
            response.get(UnknownAttributes).types, tuple(0x7000 + n for n in range(32))
        )

    def test_unknownMethodGets400(self):
        """
        A request for a method the server does not serve gets 400.
        """
        self.client.send(encodeMessage(0x0F0, MessageClass.REQUEST, b"z" * 12, []))
        self.assertEqual(errorCode(self.client.lastMessage()), 400)

    def test_softwareWhenConfigured(self):
        """
        With the software option, responses carry SOFTWARE.
        """
        fixture = ServerFixture(software=True)
        response = fixture.client().request(Method.BINDING, authenticate=False)
        self.assertTrue(response.get(Software).value.startswith("twisted-turn"))

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=200))
    def test_garbageNeverRaises(self, data):
        """
        Arbitrary bytes on the listener never raise and never count as an internal error.
        """
        fixture = ServerFixture()
        fixture.listener.datagramReceived(data, ("192.0.2.5", 1))
        self.assertEqual(fixture.server.counters["internalError"], 0)

    @settings(max_examples=400, deadline=None)
    @given(
        st.sampled_from(
            [Method.ALLOCATE, Method.REFRESH, Method.CREATE_PERMISSION, Method.CHANNEL_BIND]
        ),
        st.lists(
            placeableAttributes.filter(lambda a: not isinstance(a, CREDENTIAL_ATTRIBUTES)),
            max_size=6,
        ),
        st.booleans(),
    )
    def test_signedArbitraryRequestsNeverRaise(self, method, attributes, allocateFirst):
        """
        Correctly signed TURN requests with any combination of attributes reach the handlers
        and are answered (success or an error response), never raised.
        """
        fixture = ServerFixture()
        client = fixture.client()
        if allocateFirst:
            client.request(Method.ALLOCATE, [UDP])
        response = client.request(method, attributes)
        self.assertIn(response.messageClass, (MessageClass.SUCCESS, MessageClass.ERROR))
        self.assertNotIn(errorCode(response), (401, 438))
        self.assertEqual(fixture.server.counters["internalError"], 0)


class AuthenticationTests(ServerTestMixin, SynchronousTestCase):
    def test_challenge(self):
        """
        A request without MESSAGE-INTEGRITY gets 401 with REALM, NONCE and
        PASSWORD-ALGORITHMS, and the server keeps no state for the client.
        """
        response = self.client.request(Method.ALLOCATE, [UDP], authenticate=False)
        self.assertEqual(errorCode(response), 401)
        self.assertEqual(response.get(Realm).value, "example.org")
        self.assertTrue(response.get(Nonce).value.startswith("obMatJos2"))
        self.assertEqual(
            [a for a, _ in response.get(PasswordAlgorithms).algorithms],
            [PasswordAlgorithm.MD5, PasswordAlgorithm.SHA256],
        )
        self.assertIsNone(response.get(MessageIntegrity))
        self.assertEqual(len(self.server.table), 0)

    def test_unknownAttributeOnAuthenticatedRequest(self):
        """
        An authenticated TURN request with an unknown comprehension-required attribute gets a
        signed 420 listing it, and nothing is allocated.
        """
        challenge = self.client.request(Method.ALLOCATE, [UDP], authenticate=False)
        self.client.nonce = challenge.get(Nonce).value
        self.client.realm = "example.org"
        data = bytearray(
            encodeMessage(
                Method.ALLOCATE, MessageClass.REQUEST, b"u" * 12,
                [UDP, Username("alice"), Realm("example.org"), Nonce(self.client.nonce)],
            )
        )
        data += b"\x00\x7f\x00\x04abcd"  # unknown, comprehension-required
        # Sign by hand (RFC 8489 section 14.5): the length covers MESSAGE-INTEGRITY.
        data[2:4] = (len(data) - 20 + 24).to_bytes(2, "big")
        mac = hmac.new(self.client.key(), bytes(data), hashlib.sha1).digest()
        self.client.send(bytes(data) + b"\x00\x08\x00\x14" + mac)
        response = self.client.lastMessage()
        self.assertEqual(errorCode(response), 420)
        self.assertEqual(response.get(UnknownAttributes).types, (0x7F,))
        self.assertTrue(verifyIntegrity(response, self.client.key()))
        self.assertEqual(len(self.server.table), 0)

    def test_successIsSigned(self):
        """
        A success response carries MESSAGE-INTEGRITY under the client's key.
        """
        response = self.allocate()
        self.assertTrue(verifyIntegrity(response, self.client.key()))

    def test_wrongPassword(self):
        """
        A wrong password gets 401 and no allocation.
        """
        client = self.fixture.client(password="wrong")
        self.assertEqual(errorCode(client.request(Method.ALLOCATE, [UDP])), 401)
        self.assertEqual(len(self.server.table), 0)
        self.assertEqual(self.server.counters["authFailed"], 1)

    def test_unknownUser(self):
        """
        An unknown user gets 401.
        """
        client = self.fixture.client(username="mallory")
        self.assertEqual(errorCode(client.request(Method.ALLOCATE, [UDP])), 401)

    def test_staleNonce(self):
        """
        A nonce older than its lifetime gets 438 with a fresh nonce; the client's retry with
        the new nonce succeeds.
        """
        self.allocate(attributes=[UDP, Lifetime(3600)])
        oldNonce = self.client.nonce
        self.clock.advance(601)
        tid = newTransactionId()
        self.client.send(
            encodeMessage(
                Method.REFRESH, MessageClass.REQUEST, tid,
                [Username("alice"), Realm("example.org"), Nonce(oldNonce)],
                integrityKey=self.client.key(),
            )
        )
        response = self.client.lastMessage()
        self.assertEqual(errorCode(response), 438)
        self.assertNotEqual(response.get(Nonce).value, oldNonce)
        refreshed = self.client.request(Method.REFRESH)
        self.assertEqual(refreshed.messageClass, MessageClass.SUCCESS)

    def test_nonceBoundToClientAddress(self):
        """
        A nonce issued to one client address is refused with 438 from another.
        """
        self.allocate()
        other = self.fixture.client(address=("192.0.2.99", 40000))
        other.send(
            encodeMessage(
                Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(),
                [UDP, Username("alice"), Realm("example.org"), Nonce(self.client.nonce)],
                integrityKey=self.client.key(),
            )
        )
        self.assertEqual(errorCode(other.lastMessage()), 438)

    def test_nonceSharedAcrossProcesses(self):
        """
        A nonce issued by one server is accepted by another holding the same nonce secret (a
        fleet behind one address), and refused with 438 by one with another secret.
        """
        challenge = self.client.request(Method.ALLOCATE, [UDP], authenticate=False)
        nonce = challenge.get(Nonce).value

        def allocateOn(fixture):
            client = fixture.client()
            client.realm = "example.org"
            client.send(
                encodeMessage(
                    Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(),
                    [UDP, Username("alice"), Realm("example.org"), Nonce(nonce)],
                    integrityKey=client.key(),
                )
            )
            return client.lastMessage()

        sameSecret = allocateOn(ServerFixture(**self.fixtureOptions))
        self.assertEqual(sameSecret.messageClass, MessageClass.SUCCESS)
        otherSecret = allocateOn(ServerFixture(nonceSecret=b"other", **self.fixtureOptions))
        self.assertEqual(errorCode(otherSecret), 438)

    def test_missingRealmIs400(self):
        """
        MESSAGE-INTEGRITY without REALM is a bad request.
        """
        self.client.request(Method.ALLOCATE, [UDP], authenticate=False)
        self.client.send(
            encodeMessage(
                Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(),
                [UDP, Username("alice"), Nonce("x")], integrityKey=b"k" * 16,
            )
        )
        self.assertEqual(errorCode(self.client.lastMessage()), 400)

    def authenticatedRequest(self, attributes, key, sha256=False):
        challenge = self.client.request(Method.ALLOCATE, [UDP], authenticate=False)
        nonce = challenge.get(Nonce).value
        self.client.send(
            encodeMessage(
                Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(),
                [UDP, Realm("example.org"), Nonce(nonce), *attributes],
                integrityKey=key, integritySha256=sha256,
            )
        )
        return self.client.lastMessage(), challenge

    def test_sha256Algorithm(self):
        """
        A client that echoes PASSWORD-ALGORITHMS and picks SHA-256 authenticates with the
        SHA-256 key, and MESSAGE-INTEGRITY-SHA256 in the request gets it in the response.
        """
        key = longTermKey("alice", "example.org", "secret", PasswordAlgorithm.SHA256)
        challenge = self.client.request(Method.ALLOCATE, [UDP], authenticate=False)
        response, _ = self.authenticatedRequest(
            [
                Username("alice"),
                challenge.get(PasswordAlgorithms),
                PasswordAlgorithmAttribute(PasswordAlgorithm.SHA256),
            ],
            key,
            sha256=True,
        )
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.assertIsNotNone(response.get(MessageIntegritySha256))
        self.assertTrue(verifyIntegrity(response, key))

    def requestWithMd5OnlyOffer(self):
        """
        An MD5-signed Allocate echoing a PASSWORD-ALGORITHMS list of MD5 alone.
        """
        key = longTermKey("alice", "example.org", "secret", PasswordAlgorithm.MD5)
        response, _ = self.authenticatedRequest(
            [
                Username("alice"),
                PasswordAlgorithms(((PasswordAlgorithm.MD5, b""),)),
                PasswordAlgorithmAttribute(PasswordAlgorithm.MD5),
            ],
            key,
        )
        return response

    def test_noPasswordAlgorithmsWithoutFeature(self):
        """
        When the nonces do not advertise the password-algorithms feature, the challenge
        carries no PASSWORD-ALGORITHMS, and a request that names one gets 400.
        """
        self.fixture = ServerFixture(nonceFeatures=0, **self.fixtureOptions)
        self.client = self.fixture.client()
        challenge = self.client.request(Method.ALLOCATE, [UDP], authenticate=False)
        self.assertIsNone(challenge.get(PasswordAlgorithms))
        self.assertEqual(errorCode(self.requestWithMd5OnlyOffer()), 400)

    def test_passwordAlgorithmsMismatch(self):
        """
        PASSWORD-ALGORITHMS that differ from what the server offered get 400.
        """
        self.assertEqual(errorCode(self.requestWithMd5OnlyOffer()), 400)

    def test_userhash(self):
        """
        USERHASH instead of USERNAME identifies a static user.
        """
        userhash = hashlib.sha256("alice:example.org".encode()).digest()
        key = longTermKey("alice", "example.org", "secret", PasswordAlgorithm.MD5)
        response, _ = self.authenticatedRequest([Userhash(userhash)], key)
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)

    def restClient(self, expiry):
        username = f"{int(expiry)}:bob"
        password = b64encode(
            hmac.new(b"rest-secret", username.encode(), hashlib.sha1).digest()
        ).decode()
        return self.fixture.client(username=username, password=password)


class RestAuthenticationTests(AuthenticationTests):
    fixtureOptions = {"authSecrets": ("old-secret", "rest-secret")}

    def test_restUsername(self):
        """
        A TURN REST API username with a future expiry and the matching HMAC password is
        accepted, whichever of the rotated secrets made it.
        """
        client = self.restClient(self.clock.seconds() + 3600)
        self.assertEqual(
            client.request(Method.ALLOCATE, [UDP]).messageClass, MessageClass.SUCCESS
        )

    def test_expiredRestUsername(self):
        """
        A REST username whose expiry has passed is refused with 401.
        """
        client = self.restClient(self.clock.seconds() - 1)
        self.assertEqual(errorCode(client.request(Method.ALLOCATE, [UDP])), 401)


class NoAuthTests(ServerTestMixin, SynchronousTestCase):
    fixtureOptions = {"noAuth": True}

    def test_anonymousAllocate(self):
        """
        With noAuth, an Allocate without credentials succeeds and is not signed.
        """
        response = self.client.request(Method.ALLOCATE, [UDP], authenticate=False)
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.assertIsNone(response.get(MessageIntegrity))


class AllocateTests(ServerTestMixin, SynchronousTestCase):
    def test_allocate(self):
        """
        Allocate returns a relayed address from the port range, the default lifetime and the
        client's mapped address, and opens the relay socket.
        """
        response = self.allocate()
        relayed = response.get(XorRelayedAddress)
        self.assertEqual(relayed.host, "203.0.113.10")
        self.assertTrue(50000 <= relayed.port <= 50099)
        self.assertEqual(response.get(Lifetime).seconds, 600)
        mapped = response.get(XorMappedAddress)
        self.assertEqual((mapped.host, mapped.port), self.client.address)
        self.assertIn(("203.0.113.10", relayed.port), self.fixture.relayFactory.open)

    def test_lifetimes(self):
        """
        The requested lifetime is capped at the maximum and raised to the default.
        """
        for requested, expected in [(3600, 3600), (100000, 3600), (100, 600), (1000, 1000)]:
            client = self.fixture.client(address=("192.0.2.7", requested % 60000))
            response = self.allocate(client, [UDP, Lifetime(requested)])
            self.assertEqual(response.get(Lifetime).seconds, expected, requested)

    def test_lowMaximumLifetime(self):
        """
        An operator maximum below the default caps every lifetime.
        """
        fixture = ServerFixture(maxAllocateLifetime=300)
        response = fixture.client().request(Method.ALLOCATE, [UDP, Lifetime(900)])
        self.assertEqual(response.get(Lifetime).seconds, 300)

    def test_retransmissionGetsSameResponse(self):
        """
        An Allocate retransmitted with the same transaction id gets the same bytes back, not
        437; a new Allocate on the same 5-tuple gets 437.
        """
        tid = newTransactionId()
        first = self.client.request(Method.ALLOCATE, [UDP], transactionId=tid)
        self.assertEqual(first.messageClass, MessageClass.SUCCESS)
        self.client.send(
            encodeMessage(
                Method.ALLOCATE, MessageClass.REQUEST, tid,
                [UDP, Username("alice"), Realm("example.org"), Nonce(self.client.nonce)],
                integrityKey=self.client.key(),
            )
        )
        self.assertEqual(self.client.received(), [first.raw])
        self.assertEqual(len(self.server.table), 1)
        self.assertEqual(errorCode(self.client.request(Method.ALLOCATE, [UDP])), 437)

    def test_missingTransport(self):
        """
        Allocate without REQUESTED-TRANSPORT gets 400; with TCP, 442.
        """
        self.assertEqual(errorCode(self.client.request(Method.ALLOCATE, [])), 400)
        self.assertEqual(
            errorCode(self.client.request(Method.ALLOCATE, [RequestedTransport(6)])), 442
        )
        self.assertEqual(self.fixture.relayFactory.open, {})

    def test_addressFamily(self):
        """
        REQUESTED-ADDRESS-FAMILY IPv6 gets 440 without an IPv6 relay address and an IPv6
        relayed address with one; an unknown family gets 440.
        """
        self.assertEqual(
            errorCode(
                self.client.request(Method.ALLOCATE, [UDP, RequestedAddressFamily(2)])
            ),
            440,
        )
        self.assertEqual(
            errorCode(
                self.client.request(Method.ALLOCATE, [UDP, RequestedAddressFamily(3)])
            ),
            440,
        )
        fixture = ServerFixture(relayHosts=("203.0.113.10", "2001:db8::10"))
        response = fixture.client().request(Method.ALLOCATE, [UDP, RequestedAddressFamily(2)])
        self.assertEqual(response.get(XorRelayedAddress).host, "2001:db8::10")

    def test_additionalFamily(self):
        """
        ADDITIONAL-ADDRESS-FAMILY IPv6 gets an IPv4 allocation with ADDRESS-ERROR-CODE 440
        for the IPv6 half; IPv4 as the additional family is a bad request.
        """
        response = self.allocate(attributes=[UDP, AdditionalAddressFamily(2)])
        error = response.get(AddressErrorCode)
        self.assertEqual((error.family, error.code), (2, 440))
        client = self.fixture.client(address=("192.0.2.8", 1))
        self.assertEqual(
            errorCode(client.request(Method.ALLOCATE, [UDP, AdditionalAddressFamily(1)])), 400
        )
        self.assertEqual(
            errorCode(
                client.request(
                    Method.ALLOCATE,
                    [UDP, AdditionalAddressFamily(2), RequestedAddressFamily(1)],
                )
            ),
            400,
        )

    def test_evenPortReservation(self):
        """
        EVEN-PORT with R gives an even port and a RESERVATION-TOKEN; another client's
        Allocate with the token gets the next port; a bad token gets 508; a token with
        EVEN-PORT gets 400.
        """
        response = self.allocate(attributes=[UDP, EvenPort(True)])
        port = response.get(XorRelayedAddress).port
        self.assertEqual(port % 2, 0)
        token = response.get(ReservationToken).token
        other = self.fixture.client(address=("192.0.2.6", 40000))
        self.assertEqual(
            errorCode(
                other.request(Method.ALLOCATE, [UDP, ReservationToken(token), EvenPort(False)])
            ),
            400,
        )
        second = other.request(Method.ALLOCATE, [UDP, ReservationToken(token)])
        self.assertEqual(second.get(XorRelayedAddress).port, port + 1)
        third = self.fixture.client(address=("192.0.2.7", 40000))
        self.assertEqual(
            errorCode(third.request(Method.ALLOCATE, [UDP, ReservationToken(token)])), 508
        )

    def test_userQuota(self):
        """
        Past the per-user quota, Allocate gets 486; freeing one makes room.
        """
        fixture = ServerFixture(userQuota=1)
        first, second = fixture.client(), fixture.client(address=("192.0.2.9", 1))
        self.assertEqual(first.request(Method.ALLOCATE, [UDP]).messageClass,
                         MessageClass.SUCCESS)
        self.assertEqual(errorCode(second.request(Method.ALLOCATE, [UDP])), 486)
        first.request(Method.REFRESH, [Lifetime(0)])
        self.assertEqual(second.request(Method.ALLOCATE, [UDP]).messageClass,
                         MessageClass.SUCCESS)

    def test_reservationsCountAgainstQuota(self):
        """
        An EVEN-PORT reservation counts against its maker's quota, so reserving and deleting in
        a loop cannot hold ports past it; claiming the reservation costs nothing more.
        """
        fixture = ServerFixture(userQuota=2)
        client = fixture.client()
        response = client.request(Method.ALLOCATE, [UDP, EvenPort(True)])
        token = response.get(ReservationToken).token
        client.request(Method.REFRESH, [Lifetime(0)])
        self.assertEqual(
            client.request(Method.ALLOCATE, [UDP, EvenPort(True)]).messageClass,
            MessageClass.SUCCESS,
        )
        client.request(Method.REFRESH, [Lifetime(0)])
        self.assertEqual(errorCode(client.request(Method.ALLOCATE, [UDP, EvenPort(True)])), 486)
        other = fixture.client(address=("192.0.2.9", 1))
        claimed = other.request(Method.ALLOCATE, [UDP, ReservationToken(token)])
        self.assertEqual(claimed.messageClass, MessageClass.SUCCESS)

    def test_totalQuota(self):
        """
        Past the total quota, Allocate gets 486 whoever asks.
        """
        fixture = ServerFixture(
            users=(("alice", "secret"), ("bob", "pw")), totalQuota=1
        )
        fixture.client().request(Method.ALLOCATE, [UDP])
        bob = fixture.client(address=("192.0.2.9", 1), username="bob", password="pw")
        self.assertEqual(errorCode(bob.request(Method.ALLOCATE, [UDP])), 486)

    def test_portsExhausted(self):
        """
        With no free relay port, Allocate gets 508 (logged with the reason) and nothing is
        left half-open.
        """
        fixture = ServerFixture(minPort=50000, maxPort=50001)
        clients = [fixture.client(address=("192.0.2.9", n)) for n in range(3)]
        for client in clients[:2]:
            self.assertEqual(
                client.request(Method.ALLOCATE, [UDP]).messageClass, MessageClass.SUCCESS
            )
        with capturedLogs() as events:
            self.assertEqual(errorCode(clients[2].request(Method.ALLOCATE, [UDP])), 508)
        self.assertIn("no free relay port", " ".join(str(e.get("reason")) for e in events))
        self.assertEqual(len(fixture.relayFactory.open), 2)
        self.assertEqual(len(fixture.server.table), 2)

    def test_dontFragmentSetsDF(self):
        """
        DONT-FRAGMENT makes the relay socket refuse to fragment (IP_PMTUDISC_DO on Linux).
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("DONT-FRAGMENT is served on Linux only")
        fixture = ServerFixture(realSockets=True)
        response = fixture.client().request(Method.ALLOCATE, [UDP, DontFragment()])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        [relay] = fixture.relayFactory.open.values()
        self.assertEqual(relay.transport.socket.getsockopt(socket.IPPROTO_IP, 10), 2)

    def test_dontFragmentUnsupported(self):
        """
        Where the relay socket cannot refuse to fragment, DONT-FRAGMENT gets 420 naming it,
        and the relay port opened for the attempt is freed.
        """
        response = self.client.request(Method.ALLOCATE, [UDP, DontFragment()])
        self.assertEqual(errorCode(response), 420)
        self.assertEqual(response.get(UnknownAttributes).types, (0x001A,))
        self.assertEqual(self.fixture.relayFactory.open, {})
        self.assertEqual(self.fixture.relays.inUse["203.0.113.10"], set())


class RefreshTests(ServerTestMixin, SynchronousTestCase):
    def test_refreshExtends(self):
        """
        Refresh sets a new lifetime; the allocation outlives its first expiry.
        """
        self.allocate()
        self.clock.advance(500)
        response = self.client.request(Method.REFRESH, [Lifetime(1200)])
        self.assertEqual(response.get(Lifetime).seconds, 1200)
        self.clock.advance(700)
        self.server.sweep()
        self.assertEqual(len(self.server.table), 1)

    def test_refreshZeroLifetimeDeletes(self):
        """
        Refresh with LIFETIME 0 deletes the allocation and frees its relay port.
        """
        response = self.allocate()
        port = response.get(XorRelayedAddress).port
        refreshed = self.client.request(Method.REFRESH, [Lifetime(0)])
        self.assertEqual(refreshed.get(Lifetime).seconds, 0)
        self.assertEqual(len(self.server.table), 0)
        self.assertNotIn(("203.0.113.10", port), self.fixture.relayFactory.open)
        self.assertNotIn(port, self.fixture.relays.inUse["203.0.113.10"])
        self.assertEqual(errorCode(self.client.request(Method.REFRESH)), 437)

    def test_refreshWithoutAllocation(self):
        """
        Refresh with no allocation gets 437.
        """
        self.assertEqual(errorCode(self.client.request(Method.REFRESH)), 437)

    def test_expiryFreesPort(self):
        """
        An allocation past its lifetime is refused at once (437) and the sweep frees its
        port.
        """
        port = self.allocate().get(XorRelayedAddress).port
        self.clock.advance(601)
        self.assertEqual(errorCode(self.client.request(Method.REFRESH)), 437)
        self.assertEqual(self.server.sweep(), 1)
        self.assertNotIn(port, self.fixture.relays.inUse["203.0.113.10"])

    def test_wrongUser(self):
        """
        A request on an allocation made by another user gets 441.
        """
        fixture = ServerFixture(users=(("alice", "secret"), ("bob", "pw")))
        fixture.client().request(Method.ALLOCATE, [UDP])
        bob = fixture.client(username="bob", password="pw")
        self.assertEqual(errorCode(bob.request(Method.REFRESH)), 441)

    def test_familyMismatch(self):
        """
        Refresh with a REQUESTED-ADDRESS-FAMILY other than the allocation's gets 443.
        """
        self.allocate()
        self.assertEqual(
            errorCode(self.client.request(Method.REFRESH, [RequestedAddressFamily(2)])), 443
        )


class PermissionTests(ServerTestMixin, SynchronousTestCase):
    fixtureOptions = {"policy": PeerPolicy(relayAddresses=("203.0.113.10",))}

    def test_createPermission(self):
        """
        CreatePermission installs a permission for the peer's IP for 300 seconds.
        """
        self.allocate()
        response = self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        allocation = self.relayOf()
        self.assertEqual(allocation.permissions, {"8.8.8.8": self.clock.seconds() + 300})

    def test_deniedPeerRefusedAllOrNothing(self):
        """
        A refused peer gets 403 and no permission is installed, even for the allowed peer in
        the same request.
        """
        self.allocate()
        response = self.client.request(
            Method.CREATE_PERMISSION,
            [XorPeerAddress(*PEER), XorPeerAddress("10.1.2.3", 5)],
        )
        self.assertEqual(errorCode(response), 403)
        self.assertEqual(self.relayOf().permissions, {})

    def test_familyMismatch(self):
        """
        An IPv6 peer on an IPv4 allocation gets 443.
        """
        self.allocate()
        response = self.client.request(
            Method.CREATE_PERMISSION, [XorPeerAddress("2606:4700::1", 5)]
        )
        self.assertEqual(errorCode(response), 443)

    def test_missingPeer(self):
        """
        CreatePermission without XOR-PEER-ADDRESS gets 400; without an allocation 437.
        """
        self.assertEqual(errorCode(self.client.request(Method.CREATE_PERMISSION)), 437)
        self.allocate()
        self.assertEqual(errorCode(self.client.request(Method.CREATE_PERMISSION)), 400)


class ChannelBindTests(ServerTestMixin, SynchronousTestCase):
    def bind(self, number, peer=PEER):
        return self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(number), XorPeerAddress(*peer)]
        )

    def test_channelBind(self):
        """
        ChannelBind binds the channel and installs a permission for the peer.
        """
        self.allocate()
        self.assertEqual(self.bind(0x4000).messageClass, MessageClass.SUCCESS)
        allocation = self.relayOf()
        self.assertEqual(allocation.channels[0x4000].peer, PEER)
        self.assertIn("8.8.8.8", allocation.permissions)

    def test_numberRange(self):
        """
        Channel numbers outside 0x4000-0x7FFF get 400; RFC 5766's upper range, which
        libwebrtc and coturn's clients still use, is accepted.
        """
        self.allocate()
        self.assertEqual(errorCode(self.bind(0x3FFF)), 400)
        self.assertEqual(errorCode(self.bind(0x8000)), 400)
        self.assertEqual(self.bind(0x4FFF).messageClass, MessageClass.SUCCESS)
        self.assertEqual(self.bind(0x7FFF, ("8.8.4.4", 1)).messageClass, MessageClass.SUCCESS)

    def test_rebindingRules(self):
        """
        A bound number cannot move to another peer, nor a bound peer to another number; the
        same pair refreshes.
        """
        self.allocate()
        self.bind(0x4001)
        self.assertEqual(errorCode(self.bind(0x4001, ("8.8.4.4", 6000))), 400)
        self.assertEqual(errorCode(self.bind(0x4002)), 400)
        self.assertEqual(self.bind(0x4001).messageClass, MessageClass.SUCCESS)

    def test_deniedPeer(self):
        """
        A channel to a refused peer (loopback by default) gets 403.
        """
        self.allocate()
        self.assertEqual(errorCode(self.bind(0x4001, ("127.0.0.1", 5))), 403)
        self.assertEqual(errorCode(self.bind(0x4001, ("169.254.1.1", 5))), 403)

    def test_missingAttributes(self):
        """
        ChannelBind without CHANNEL-NUMBER gets 400.
        """
        self.allocate()
        response = self.client.request(Method.CHANNEL_BIND, [XorPeerAddress(*PEER)])
        self.assertEqual(errorCode(response), 400)


class SendIndicationTests(ServerTestMixin, SynchronousTestCase):
    def sendIndication(self, peer, payload):
        self.client.send(
            encodeMessage(
                Method.SEND, MessageClass.INDICATION, newTransactionId(),
                [XorPeerAddress(*peer), Data(payload)],
            )
        )

    def relayTransport(self):
        return self.relayOf().relay

    def test_sendWithPermission(self):
        """
        A Send indication to a permitted peer goes out of the relay socket to the peer.
        """
        self.allocate()
        self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        self.sendIndication(PEER, b"hello")
        self.assertEqual(self.relayTransport().written, [(b"hello", PEER)])

    def test_sendWithoutPermissionDropped(self):
        """
        A Send indication without a permission is dropped and counted.
        """
        self.allocate()
        self.sendIndication(PEER, b"hello")
        self.assertEqual(self.relayTransport().written, [])
        self.assertEqual(self.server.counters["dropNoPermission"], 1)

    def test_sendToDeniedPeerDropped(self):
        """
        A Send indication to a peer the policy refuses (which can have no permission) is
        dropped and counted as without permission: the policy is not asked at packet rate.
        """
        self.allocate()
        self.sendIndication(("10.0.0.1", 5), b"hello")
        self.assertEqual(self.relayTransport().written, [])
        self.assertEqual(self.server.counters["dropNoPermission"], 1)

    def test_relayHostOnlyOnRelayPorts(self):
        """
        The server's own relay address (inside a denied range here) is a permitted peer, but
        only the ports of its open relay sockets are reachable: a Send indication to another
        port, even inside the relay range, is dropped and counted, and a channel to one gets
        403.
        """
        self.allocate()
        other = self.fixture.client(address=("192.0.2.6", 1))
        otherRelay = other.request(Method.ALLOCATE, [UDP]).get(XorRelayedAddress)
        relayHost, relayPort = otherRelay.host, otherRelay.port
        freePort = next(
            port for port in range(50000, 50100)
            if port not in self.fixture.relays.inUse[relayHost]
        )
        response = self.client.request(
            Method.CREATE_PERMISSION, [XorPeerAddress(relayHost, 22)]
        )
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.sendIndication((relayHost, freePort), b"to a foreign socket")
        self.sendIndication((relayHost, relayPort), b"to a relay")
        self.sendIndication((relayHost, 22), b"to ssh")
        self.assertEqual(
            self.relayTransport().written, [(b"to a relay", (relayHost, relayPort))]
        )
        self.assertEqual(self.server.counters["dropPeerDenied"], 2)
        bind = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(relayHost, 22)]
        )
        self.assertEqual(errorCode(bind), 403)
        bind = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(relayHost, relayPort)]
        )
        self.assertEqual(bind.messageClass, MessageClass.SUCCESS)

    def test_publicRelayHostListenerUnreachable(self):
        """
        With a relay address in no denied range, a client still cannot send through its relay
        to the server's own listener port on that address (a loop) or any other port there.
        """
        fixture = ServerFixture(relayHosts=("8.8.8.8",))
        client = fixture.client()
        client.request(Method.ALLOCATE, [UDP])
        client.request(Method.CREATE_PERMISSION, [XorPeerAddress("8.8.8.8", 1)])
        client.send(
            encodeMessage(
                Method.SEND, MessageClass.INDICATION, newTransactionId(),
                [XorPeerAddress("8.8.8.8", 3478), Data(b"Allocate me")],
            )
        )
        [relay] = fixture.relayFactory.open.values()
        self.assertEqual(relay.transport.written, [])
        self.assertEqual(fixture.server.counters["dropPeerDenied"], 1)

    def test_sendWithoutAllocationDropped(self):
        """
        A Send indication with no allocation is dropped and counted; nothing is answered.
        """
        self.sendIndication(PEER, b"hello")
        self.assertEqual(self.client.received(), [])
        self.assertEqual(self.server.counters["dropSendNoAllocation"], 1)


DUAL = {"relayHosts": ("203.0.113.10", "2001:db8::10")}
ADDITIONAL = AdditionalAddressFamily(2)
PEER6 = ("2606:4700::1", 6000)


class DualStackAllocateTests(ServerTestMixin, SynchronousTestCase):
    """
    RFC 8656 section 7.2: ADDITIONAL-ADDRESS-FAMILY asks for an IPv4 and an IPv6 relayed
    address in one allocation.
    """

    fixtureOptions = DUAL

    def assertNoPortsHeld(self, fixture=None):
        fixture = fixture or self.fixture
        self.assertEqual(fixture.relayFactory.open, {})
        self.assertEqual(
            fixture.relays.inUse, {"203.0.113.10": set(), "2001:db8::10": set()}
        )

    def test_dualStackAllocation(self):
        """
        With an IPv4 and an IPv6 relay address, ADDITIONAL-ADDRESS-FAMILY gets two relayed
        addresses, two XOR-RELAYED-ADDRESS attributes (IPv4 first), two relay sockets, and no
        ADDRESS-ERROR-CODE; the allocation counts once.
        """
        response = self.allocate(attributes=[UDP, ADDITIONAL])
        first, second = response.getAll(XorRelayedAddress)
        self.assertEqual(first.host, "203.0.113.10")
        self.assertEqual(second.host, "2001:db8::10")
        self.assertTrue(50000 <= first.port <= 50099 and 50000 <= second.port <= 50099)
        self.assertIsNone(response.get(AddressErrorCode))
        self.assertEqual(response.get(Lifetime).seconds, 600)
        self.assertEqual(
            set(self.fixture.relayFactory.open),
            {("203.0.113.10", first.port), ("2001:db8::10", second.port)},
        )
        allocation = self.relayOf()
        self.assertEqual(allocation.families, (1, 2))
        self.assertEqual(len(self.server.table), 1)
        self.assertEqual(self.server.table.countForUser("alice"), 1)
        self.assertEqual(self.server.counters["dualStackAllocations"], 1)
        for relay in self.fixture.relayFactory.open.values():
            self.assertIs(relay.allocation, allocation)

    def test_externalAddressesPerFamily(self):
        """
        Each relayed address is announced through the --external-ip mapping of its own
        relay address.
        """
        fixture = ServerFixture(
            externalAddresses={"203.0.113.10": "8.8.8.8", "2001:db8::10": "2606:4700::10"},
            **DUAL,
        )
        response = fixture.client().request(Method.ALLOCATE, [UDP, ADDITIONAL])
        self.assertEqual(
            [relayed.host for relayed in response.getAll(XorRelayedAddress)],
            ["8.8.8.8", "2606:4700::10"],
        )

    def test_draftCodePoint(self):
        """
        ADDITIONAL-ADDRESS-FAMILY under coturn's pre-RFC code point (0x8032) asks for a
        dual-stack allocation too; a refused IPv6 half is reported under coturn's matching
        ADDRESS-ERROR-CODE (0x8033), which such a client understands.
        """
        response = self.allocate(attributes=[UDP, AdditionalAddressFamilyDraft(2)])
        self.assertEqual(
            [relayed.host for relayed in response.getAll(XorRelayedAddress)],
            ["203.0.113.10", "2001:db8::10"],
        )
        fixture = ServerFixture()
        client = fixture.client()
        response = client.request(Method.ALLOCATE, [UDP, AdditionalAddressFamilyDraft(2)])
        error = response.get(AddressErrorCodeDraft)
        self.assertEqual((error.family, error.code), (2, 440))
        self.assertIsNone(response.get(AddressErrorCode))
        other = fixture.client(address=("192.0.2.8", 1))
        for attributes in (
            [AdditionalAddressFamilyDraft(1)],
            [AdditionalAddressFamilyDraft(2), RequestedAddressFamily(1)],
            [AdditionalAddressFamilyDraft(2), ReservationToken(b"t" * 8)],
        ):
            self.assertEqual(
                errorCode(other.request(Method.ALLOCATE, [UDP, *attributes])), 400, attributes
            )

    def test_noIPv6RelayAddress(self):
        """
        Without an IPv6 relay address the allocation is IPv4 only and the success response
        carries ADDRESS-ERROR-CODE 440 for IPv6; one relay port is open.
        """
        fixture = ServerFixture()
        client = fixture.client()
        response = client.request(Method.ALLOCATE, [UDP, ADDITIONAL])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        [relayed] = response.getAll(XorRelayedAddress)
        self.assertEqual(relayed.host, "203.0.113.10")
        error = response.get(AddressErrorCode)
        self.assertEqual((error.family, error.code), (2, 440))
        self.assertEqual(len(fixture.relayFactory.open), 1)
        [allocation] = fixture.server.table
        self.assertEqual(allocation.families, (1,))

    def test_noIPv6Port(self):
        """
        When no IPv6 relay port can be opened the allocation is IPv4 only and the success
        response carries ADDRESS-ERROR-CODE 508 for IPv6.
        """
        fixture = ServerFixture(minPort=50000, maxPort=50001, **DUAL)
        fixture.relayFactory.busy = {("2001:db8::10", 50000), ("2001:db8::10", 50001)}
        response = fixture.client().request(Method.ALLOCATE, [UDP, ADDITIONAL])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        [relayed] = response.getAll(XorRelayedAddress)
        self.assertEqual(relayed.host, "203.0.113.10")
        error = response.get(AddressErrorCode)
        self.assertEqual((error.family, error.code), (2, 508))
        [allocation] = fixture.server.table
        self.assertEqual(allocation.families, (1,))
        self.assertEqual(fixture.relays.inUse["2001:db8::10"], set())

    def test_noIPv4PortFailsTheAllocate(self):
        """
        The IPv4 half is not optional: without an IPv4 port the Allocate gets 508 and no IPv6
        port is left open.
        """
        fixture = ServerFixture(minPort=50000, maxPort=50001, **DUAL)
        fixture.relayFactory.busy = {("203.0.113.10", 50000), ("203.0.113.10", 50001)}
        response = fixture.client().request(Method.ALLOCATE, [UDP, ADDITIONAL])
        self.assertEqual(errorCode(response), 508)
        self.assertNoPortsHeld(fixture)
        self.assertEqual(len(fixture.server.table), 0)

    def test_ipv6OnlyServer(self):
        """
        A server with only an IPv6 relay address answers 440 to an Allocate without a family
        and to a dual-stack one (the IPv4 half is the one asked for first), and gives an IPv6
        relayed address to REQUESTED-ADDRESS-FAMILY IPv6.
        """
        fixture = ServerFixture(relayHosts=("2001:db8::10",))
        client = fixture.client()
        self.assertEqual(errorCode(client.request(Method.ALLOCATE, [UDP])), 440)
        self.assertEqual(errorCode(client.request(Method.ALLOCATE, [UDP, ADDITIONAL])), 440)
        response = client.request(Method.ALLOCATE, [UDP, RequestedAddressFamily(2)])
        self.assertEqual(response.get(XorRelayedAddress).host, "2001:db8::10")
        self.assertIsNone(response.get(AddressErrorCode))

    def test_requestedIPv6(self):
        """
        REQUESTED-ADDRESS-FAMILY IPv6 gets a single IPv6 relayed address; IPv4 an IPv4 one.
        """
        response = self.allocate(attributes=[UDP, RequestedAddressFamily(2)])
        [relayed] = response.getAll(XorRelayedAddress)
        self.assertEqual(relayed.host, "2001:db8::10")
        self.assertEqual(self.relayOf().families, (2,))
        other = self.fixture.client(address=("192.0.2.6", 1))
        response = other.request(Method.ALLOCATE, [UDP, RequestedAddressFamily(1)])
        self.assertEqual([r.host for r in response.getAll(XorRelayedAddress)], ["203.0.113.10"])

    def test_evenPort(self):
        """
        EVEN-PORT without R makes both relayed ports even; with R (a reservation names one
        socket, and claiming it can carry no family) a dual-stack request gets 400 and opens
        nothing.
        """
        for n in range(5):
            client = self.fixture.client(address=("192.0.2.6", n))
            response = client.request(Method.ALLOCATE, [UDP, ADDITIONAL, EvenPort(False)])
            ports = [relayed.port % 2 for relayed in response.getAll(XorRelayedAddress)]
            self.assertEqual(ports, [0, 0])
        fixture = ServerFixture(**DUAL)
        response = fixture.client().request(Method.ALLOCATE, [UDP, ADDITIONAL, EvenPort(True)])
        self.assertEqual(errorCode(response), 400)
        self.assertNoPortsHeld(fixture)

    def test_quotaCountsOnce(self):
        """
        A dual-stack allocation counts once against --user-quota and --total-quota.
        """
        fixture = ServerFixture(userQuota=2, totalQuota=2, **DUAL)
        clients = [fixture.client(address=("192.0.2.9", n)) for n in range(3)]
        for client in clients[:2]:
            response = client.request(Method.ALLOCATE, [UDP, ADDITIONAL])
            self.assertEqual(len(response.getAll(XorRelayedAddress)), 2)
        self.assertEqual(errorCode(clients[2].request(Method.ALLOCATE, [UDP, ADDITIONAL])), 486)
        self.assertEqual(len(fixture.relayFactory.open), 4)

    def test_retransmission(self):
        """
        A retransmitted dual-stack Allocate gets the same bytes and opens nothing more.
        """
        tid = newTransactionId()
        first = self.client.request(Method.ALLOCATE, [UDP, ADDITIONAL], transactionId=tid)
        again = self.client.request(Method.ALLOCATE, [UDP, ADDITIONAL], transactionId=tid)
        self.assertEqual(again.raw, first.raw)
        self.assertEqual(len(self.fixture.relayFactory.open), 2)

    def test_dontFragmentBothSockets(self):
        """
        DONT-FRAGMENT applies to both relay sockets (IP_PMTUDISC_DO and IPV6_DONTFRAG).
        """
        if not sys.platform.startswith("linux"):
            raise SkipTest("DONT-FRAGMENT is served on Linux only")
        fixture = ServerFixture(realSockets=True, **DUAL)
        response = fixture.client().request(Method.ALLOCATE, [UDP, ADDITIONAL, DontFragment()])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        sockets = {
            host: relay.transport.socket for (host, _), relay in fixture.relayFactory.open.items()
        }
        self.assertEqual(sockets["203.0.113.10"].getsockopt(socket.IPPROTO_IP, 10), 2)
        self.assertEqual(sockets["2001:db8::10"].getsockopt(socket.IPPROTO_IPV6, 62), 1)

    def test_dontFragmentUnsupportedFreesBoth(self):
        """
        Where the relay sockets cannot refuse to fragment, a dual-stack Allocate with
        DONT-FRAGMENT gets 420 and both ports opened for it are freed.
        """
        response = self.client.request(Method.ALLOCATE, [UDP, ADDITIONAL, DontFragment()])
        self.assertEqual(errorCode(response), 420)
        self.assertNoPortsHeld()

    def test_refreshRefreshesBoth(self):
        """
        A Refresh without a family, or naming either family, sets the one lifetime of the
        allocation: both relayed addresses live on.
        """
        self.allocate(attributes=[UDP, ADDITIONAL])
        for attributes in ([], [RequestedAddressFamily(2)], [RequestedAddressFamily(1)]):
            self.clock.advance(500)
            response = self.client.request(Method.REFRESH, [Lifetime(700), *attributes])
            self.assertEqual(response.get(Lifetime).seconds, 700)
        self.clock.advance(650)
        self.server.sweep()
        self.assertEqual(self.relayOf().families, (1, 2))
        self.assertEqual(len(self.fixture.relayFactory.open), 2)

    def test_refreshZeroLifetimeDeletesBoth(self):
        """
        Refresh with LIFETIME 0 and no family deletes the allocation and frees both ports.
        """
        self.allocate(attributes=[UDP, ADDITIONAL])
        response = self.client.request(Method.REFRESH, [Lifetime(0)])
        self.assertEqual(response.get(Lifetime).seconds, 0)
        self.assertEqual(len(self.server.table), 0)
        self.assertNoPortsHeld()

    def test_refreshDeletesOneFamily(self):
        """
        Refresh with LIFETIME 0 and REQUESTED-ADDRESS-FAMILY deletes that family's relayed
        address alone (answering LIFETIME 0): its port is freed, its permissions go, its
        channels stop at once, and its peers get 443 from then on; the other family relays
        on.  Deleting the remaining family deletes the allocation.
        """
        response = self.allocate(attributes=[UDP, ADDITIONAL])
        port6 = response.getAll(XorRelayedAddress)[1].port
        self.client.request(
            Method.CREATE_PERMISSION, [XorPeerAddress(*PEER), XorPeerAddress(*PEER6)]
        )
        self.client.request(Method.CHANNEL_BIND, [ChannelNumber(0x4001), XorPeerAddress(*PEER6)])
        relay6 = self.fixture.relayFactory.open[("2001:db8::10", port6)]
        refreshed = self.client.request(
            Method.REFRESH, [Lifetime(0), RequestedAddressFamily(2)]
        )
        self.assertEqual(refreshed.get(Lifetime).seconds, 0)
        allocation = self.relayOf()
        self.assertEqual(allocation.families, (1,))
        self.assertNotIn(("2001:db8::10", port6), self.fixture.relayFactory.open)
        self.assertEqual(self.fixture.relays.inUse["2001:db8::10"], set())
        self.assertTrue(relay6.transport.stopped)
        self.assertIsNone(relay6.allocation)
        self.assertEqual(list(allocation.permissions), ["8.8.8.8"])
        self.assertLess(allocation.channels[0x4001].expiresAt, self.clock.seconds())
        self.assertEqual(
            errorCode(
                self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER6)])
            ),
            443,
        )
        self.assertEqual(
            errorCode(self.client.request(Method.REFRESH, [RequestedAddressFamily(2)])), 443
        )
        self.assertEqual(self.server.counters["relayedAddressDeleted"], 1)
        self.client.request(Method.REFRESH, [Lifetime(0), RequestedAddressFamily(1)])
        self.assertEqual(len(self.server.table), 0)
        self.assertNoPortsHeld()

    def test_refreshDeletesIPv4Family(self):
        """
        Deleting the IPv4 half leaves an IPv6-only allocation whose relay is the IPv6 socket.
        """
        response = self.allocate(attributes=[UDP, ADDITIONAL])
        relayed6 = response.getAll(XorRelayedAddress)[1]
        self.client.request(Method.REFRESH, [Lifetime(0), RequestedAddressFamily(1)])
        allocation = self.relayOf()
        self.assertEqual(allocation.families, (2,))
        self.assertEqual(allocation.relayAddress, (relayed6.host, relayed6.port))
        self.assertEqual(self.fixture.relays.inUse["203.0.113.10"], set())
        self.assertEqual(
            errorCode(self.client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])),
            443,
        )

    def test_refreshFamilyMismatch(self):
        """
        A Refresh naming a family the allocation does not have (or no family at all) gets
        443, on an IPv6-only allocation as on an IPv4-only one; nothing changes.
        """
        self.allocate(attributes=[UDP, RequestedAddressFamily(2)])
        for family in (1, 3):
            response = self.client.request(
                Method.REFRESH, [Lifetime(0), RequestedAddressFamily(family)]
            )
            self.assertEqual(errorCode(response), 443)
        self.assertEqual(len(self.server.table), 1)

    def test_expiryFreesBothPorts(self):
        """
        An expired dual-stack allocation refuses requests at once and the sweep frees both
        of its ports.
        """
        self.allocate(attributes=[UDP, ADDITIONAL])
        self.clock.advance(601)
        self.assertEqual(errorCode(self.client.request(Method.REFRESH)), 437)
        self.assertEqual(self.server.sweep(), 1)
        self.assertNoPortsHeld()

    def test_deallocateFreesBothPorts(self):
        """
        L{TurnServer.deallocate} (a stream client's connection closing) and
        L{TurnServer.closeAll} free both ports of a dual-stack allocation.
        """
        self.allocate(attributes=[UDP, ADDITIONAL])
        self.server.deallocate(self.relayOf())
        self.assertNoPortsHeld()
        other = self.fixture.client(address=("192.0.2.6", 1))
        self.allocate(other, [UDP, ADDITIONAL])
        self.server.closeAll()
        self.assertNoPortsHeld()
        self.assertEqual(len(self.server.table), 0)


class DualStackPeerTests(ServerTestMixin, SynchronousTestCase):
    """
    Permissions, channels and Send indications on a dual-stack allocation, per peer family,
    under the peer policy.
    """

    fixtureOptions = DUAL

    def setUp(self):
        ServerTestMixin.setUp(self)
        self.allocate(attributes=[UDP, ADDITIONAL])
        self.allocation = self.relayOf()

    def sendIndication(self, peer, payload, client=None):
        (client or self.client).send(
            encodeMessage(
                Method.SEND, MessageClass.INDICATION, newTransactionId(),
                [XorPeerAddress(*peer), Data(payload)],
            )
        )

    def permit(self, *peers, client=None):
        return (client or self.client).request(
            Method.CREATE_PERMISSION, [XorPeerAddress(*peer) for peer in peers]
        )

    def test_permissionsOfBothFamilies(self):
        """
        One CreatePermission may name peers of both families.
        """
        self.assertEqual(self.permit(PEER, PEER6).messageClass, MessageClass.SUCCESS)
        self.assertEqual(set(self.allocation.permissions), {"8.8.8.8", "2606:4700::1"})

    def test_sendByPeerFamily(self):
        """
        A Send indication to an IPv6 peer leaves through the IPv6 relay socket, one to an
        IPv4 peer through the IPv4 one.
        """
        self.permit(PEER, PEER6)
        self.sendIndication(PEER, b"four")
        self.sendIndication(PEER6, b"six")
        self.assertEqual(self.allocation.relay.written, [(b"four", PEER)])
        self.assertEqual(self.allocation.relay6.written, [(b"six", PEER6)])

    def test_channelsByPeerFamily(self):
        """
        A channel to an IPv6 peer sends through the IPv6 relay socket, one to an IPv4 peer
        through the IPv4 one.
        """
        for number, peer in ((0x4000, PEER), (0x4001, PEER6)):
            response = self.client.request(
                Method.CHANNEL_BIND, [ChannelNumber(number), XorPeerAddress(*peer)]
            )
            self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.assertIs(self.allocation.channels[0x4000].relay, self.allocation.relay)
        self.assertIs(self.allocation.channels[0x4001].relay, self.allocation.relay6)

    def test_singleFamilyAllocationsRefuseTheOtherFamily(self):
        """
        CreatePermission and ChannelBind for a peer of a family the allocation has no relayed
        address of get 443: IPv6 peers on an IPv4 allocation, IPv4 peers (IPv4-mapped too:
        the family on the wire counts) on an IPv6 one.
        """
        for family, peer in ((1, PEER6), (2, PEER)):
            client = self.fixture.client(address=("192.0.2.7", family))
            self.allocate(client, [UDP, RequestedAddressFamily(family)])
            self.assertEqual(errorCode(self.permit(peer, client=client)), 443)
            bind = client.request(
                Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*peer)]
            )
            self.assertEqual(errorCode(bind), 443)
        client = self.fixture.client(address=("192.0.2.7", 1))
        self.assertEqual(errorCode(self.permit(("::ffff:8.8.8.8", 1), client=client)), 443)

    def test_policyAppliesToIPv6Peers(self):
        """
        IPv6 peers go through the same policy: loopback, unique-local, link-local, multicast
        and IPv6 spellings of denied IPv4 addresses get 403; a global address is allowed.
        """
        for host in ["::1", "fd00::1", "fc00::5", "fe80::1", "ff02::1", "::ffff:10.0.0.1",
                     "::ffff:127.0.0.1", "64:ff9b::a00:1", "2002:7f00:1::1"]:
            self.assertEqual(errorCode(self.permit((host, 5))), 403, host)
            bind = self.client.request(
                Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(host, 5)]
            )
            self.assertEqual(errorCode(bind), 403, host)
        self.assertEqual(self.allocation.permissions, {})
        self.assertEqual(self.permit(("2a00:1450::1", 5)).messageClass, MessageClass.SUCCESS)
        self.sendIndication(("fd00::1", 5), b"private")
        self.assertEqual(self.allocation.relay6.written, [])
        self.assertEqual(self.server.counters["dropNoPermission"], 1)

    def test_allowLoopbackPeers(self):
        """
        With --allow-loopback-peers, ::1 is a peer like any other on a dual-stack allocation.
        """
        fixture = ServerFixture(policy=PeerPolicy(allowLoopback=True), **DUAL)
        client = fixture.client()
        client.request(Method.ALLOCATE, [UDP, ADDITIONAL])
        response = client.request(Method.CREATE_PERMISSION, [XorPeerAddress("::1", 5)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        client.send(
            encodeMessage(
                Method.SEND, MessageClass.INDICATION, newTransactionId(),
                [XorPeerAddress("::1", 5), Data(b"loop")],
            )
        )
        [allocation] = fixture.server.table
        self.assertEqual(allocation.relay6.written, [(b"loop", ("::1", 5))])

    def test_ownIPv6RelayAddressOnlyOnHeldPorts(self):
        """
        The server's own IPv6 relay address is a permitted peer, but only the ports of its open
        relay sockets are reachable: a Send indication elsewhere is dropped, a channel there
        gets 403, and the IPv6 relay socket of another allocation is reachable.
        """
        other = self.fixture.client(address=("192.0.2.6", 1))
        response = self.allocate(other, [UDP, RequestedAddressFamily(2)])
        relayed = response.get(XorRelayedAddress)
        target = (relayed.host, relayed.port)
        self.assertEqual(self.permit(("2001:db8::10", 22)).messageClass, MessageClass.SUCCESS)
        self.assertIn("2001:db8::10", self.allocation.restrictedPeers)
        free = next(
            port for port in range(50000, 50100)
            if port not in self.fixture.relays.inUse["2001:db8::10"]
        )
        self.sendIndication(("2001:db8::10", 22), b"to ssh")
        self.sendIndication(("2001:db8::10", free), b"to a free port")
        self.sendIndication(target, b"to a relay")
        self.assertEqual(self.allocation.relay6.written, [(b"to a relay", target)])
        self.assertEqual(self.server.counters["dropPeerDenied"], 2)
        bind = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress("2001:db8::10", 22)]
        )
        self.assertEqual(errorCode(bind), 403)
        bind = self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*target)]
        )
        self.assertEqual(bind.messageClass, MessageClass.SUCCESS)
        self.assertTrue(self.allocation.channels[0x4000].restricted)
        self.assertIs(self.allocation.channels[0x4000].relay, self.allocation.relay6)

    def test_sendToFamilyWithoutRelayDropped(self):
        """
        After the IPv6 half is deleted, a Send indication to an IPv6 peer is dropped (it has
        no permission any more) and nothing goes out.
        """
        self.permit(PEER6)
        relay6 = self.allocation.relay6
        self.client.request(Method.REFRESH, [Lifetime(0), RequestedAddressFamily(2)])
        self.sendIndication(PEER6, b"six")
        self.assertEqual(relay6.written, [])
        self.assertEqual(self.server.counters["dropNoPermission"], 1)


#: The peer-policy probes of the abuse issue (item 1), as C{(host, relayFamily)}: the port
#: used is that of an open relay socket of C{relayFamily}, the one the probe tries to reach.
#: With relay addresses 127.0.0.1 and ::1, no --allow-loopback-peers, each must be refused.
POLICY_PROBES = [
    # a: IPv6 spellings of the IPv4 relay address, aimed at an open IPv4 relay port.
    ("64:ff9b::7f00:1", 1),
    ("2002:7f00:1::1", 1),
    ("::127.0.0.1", 1),
    ("::ffff:127.0.0.1", 1),
    ("::ffff:0:127.0.0.1", 1),
    # b: loopback relay and listening addresses, as themselves.
    ("127.0.0.1", 1),
    ("::1", 2),
    ("127.0.0.2", 1),
    # c: IPv6 documentation and benchmarking ranges.
    ("2001:db8::1", 2),
    ("3fff::1", 2),
    ("2001:2::1", 2),
]

LOOPBACK_RELAYS = {"relayHosts": ("127.0.0.1", "::1")}


def loopbackRelayFixture():
    """
    A server with relay addresses 127.0.0.1 and ::1 and listening address 127.0.0.1, with the
    policy C{twistd turn} builds for them (no --allow-loopback-peers).
    """
    fixture = ServerFixture(**LOOPBACK_RELAYS)
    fixture.server._policy = PeerPolicy(
        relayAddresses=("127.0.0.1", "::1"), ownAddresses=("127.0.0.1",),
        relayPortOpen=fixture.relays.holds,
    )
    return fixture


def relayWrites(fixture):
    """
    Every C{(payload, address)} any relay socket of C{fixture} wrote, consumed.
    """
    written = []
    for relay in fixture.relayFactory.open.values():
        written += relay.transport.written
        relay.transport.written = []
    return written


class PeerPolicyProbeTests(SynchronousTestCase):
    """
    The probes that found the peer-policy holes, on IPv4, IPv6 and dual-stack allocations, for
    CreatePermission, ChannelBind, Send and ChannelData: every one is refused and nothing is
    written to it; ordinary peers, the NAT64 form of a public address included, still relay.
    """

    FAMILIES = {
        "ipv4": [UDP],
        "ipv6": [UDP, RequestedAddressFamily(2)],
        "dual": [UDP, ADDITIONAL],
    }

    def setUp(self):
        self.fixture = loopbackRelayFixture()
        target = self.fixture.client(address=("192.0.2.9", 1))
        relayed = target.request(Method.ALLOCATE, [UDP, ADDITIONAL]).getAll(XorRelayedAddress)
        self.openPorts = {2 if ":" in r.host else 1: r.port for r in relayed}
        self.clients = {}
        for number, (name, attributes) in enumerate(self.FAMILIES.items()):
            client = self.fixture.client(address=("192.0.2.10", 1000 + number))
            response = client.request(Method.ALLOCATE, attributes)
            self.assertEqual(response.messageClass, MessageClass.SUCCESS, name)
            self.clients[name] = client

    def expectedRefusal(self, family, host):
        ipv6 = ":" in host
        hasFamily = family == "dual" or (family == "ipv6") == ipv6
        return 403 if hasFamily else 443

    def send(self, client, peer, payload):
        client.send(
            encodeMessage(
                Method.SEND, MessageClass.INDICATION, newTransactionId(),
                [XorPeerAddress(*peer), Data(payload)],
            )
        )

    def test_probesRefused(self):
        """
        Each probe gets 403 (443 where the allocation has no relayed address of its family)
        to CreatePermission and ChannelBind, and its Send and ChannelData reach nobody.
        """
        from twisted_turn.stun.channeldata import encodeChannelData

        for family, client in self.clients.items():
            for number, (host, relayFamily) in enumerate(POLICY_PROBES):
                peer = (host, self.openPorts[relayFamily])
                expected = self.expectedRefusal(family, host)
                case = (family, host)
                response = client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*peer)])
                self.assertEqual(errorCode(response), expected, case)
                channel = 0x4000 + number
                response = client.request(
                    Method.CHANNEL_BIND, [ChannelNumber(channel), XorPeerAddress(*peer)]
                )
                self.assertEqual(errorCode(response), expected, case)
                self.send(client, peer, b"send probe")
                client.send(encodeChannelData(channel, b"channel probe"))
                self.assertEqual(relayWrites(self.fixture), [], case)
        for client in self.clients.values():
            self.assertEqual(self.fixture.server.table.get(
                FiveTuple(*client.address, "198.51.100.1", 3478)
            ).permissions, {})

    def test_ordinaryPeersStillRelay(self):
        """
        On the same server, public peers of each family (the NAT64 spelling of a public IPv4
        address included) are granted, and data goes to exactly the address the client named.
        """
        from twisted_turn.stun.channeldata import encodeChannelData

        client = self.clients["dual"]
        for number, peer in enumerate(
            [("8.8.8.8", 5000), ("2606:4700::1", 5001), ("64:ff9b::808:808", 5002)]
        ):
            response = client.request(
                Method.CHANNEL_BIND, [ChannelNumber(0x4000 + number), XorPeerAddress(*peer)]
            )
            self.assertEqual(response.messageClass, MessageClass.SUCCESS, peer)
            client.send(encodeChannelData(0x4000 + number, b"data"))
            self.send(client, peer, b"send")
            self.assertEqual(relayWrites(self.fixture), [(b"data", peer), (b"send", peer)])


def _peerHosts():
    """
    Peer hosts worth probing: the server's own addresses in every spelling, loopback,
    special-purpose and random addresses of both families.
    """
    own4 = ["127.0.0.1", "127.0.0.2", "203.0.113.10", "8.8.8.8"]
    own6 = ["::1", "2606:4700::10"]

    def spellings(ipv4):
        value = int(__import__("ipaddress").IPv4Address(ipv4))
        return [
            ipv4, f"::ffff:{ipv4}", f"::ffff:0:{ipv4}", f"::{ipv4}",
            str(__import__("ipaddress").IPv6Address((0x64FF9B << 96) | value)),
            str(__import__("ipaddress").IPv6Address((0x2002 << 112) | value << 80)),
        ]

    ipv4 = st.integers(0, 2**32 - 1).map(lambda v: str(__import__("ipaddress").IPv4Address(v)))
    ipv6 = st.integers(0, 2**128 - 1).map(lambda v: str(__import__("ipaddress").IPv6Address(v)))
    return st.one_of(
        st.sampled_from([form for host in own4 for form in spellings(host)] + own6),
        ipv4.flatmap(lambda host: st.sampled_from(spellings(host))),
        ipv6,
        st.sampled_from(["2001:db8::1", "3fff::1", "2001:2::1", "fe80::1", "ff02::1", "::"]),
    )


class RelayWritesFollowPolicyTests(SynchronousTestCase):
    """
    A Hypothesis property: whatever a client asks for, every datagram a relay socket writes
    goes to an address the policy allowed with that port, written exactly as the client named
    it, never to the server's own address in an IPv6 spelling, never to loopback.
    """

    OWN_IPV4 = {"127.0.0.1", "203.0.113.10", "8.8.8.8"}

    @settings(max_examples=150, deadline=None)
    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["permission", "channel", "send", "channeldata"]),
                _peerHosts(),
                st.sampled_from(["open4", "open6", "other"]),
                st.integers(1, 65535),
            ),
            min_size=1, max_size=12,
        ),
        st.sampled_from([[UDP], [UDP, RequestedAddressFamily(2)], [UDP, ADDITIONAL]]),
    )
    def test_writesFollowPolicy(self, operations, allocateAttributes):
        import ipaddress

        from twisted_turn.policy import canonicalPeer
        from twisted_turn.stun.channeldata import encodeChannelData

        fixture = ServerFixture(relayHosts=("127.0.0.1", "2606:4700::10"))
        policy = PeerPolicy(
            relayAddresses={"127.0.0.1": "127.0.0.1", "2606:4700::10": "2606:4700::10",
                            "8.8.8.8": "127.0.0.1"},
            ownAddresses=("203.0.113.10",), relayPortOpen=fixture.relays.holds,
        )
        fixture.server._policy = policy
        target = fixture.client(address=("192.0.2.9", 1))
        relayed = target.request(Method.ALLOCATE, [UDP, ADDITIONAL]).getAll(XorRelayedAddress)
        ports = {("open4" if ":" not in r.host else "open6"): r.port for r in relayed}
        targetWrites = relayWrites(fixture)
        client = fixture.client()
        self.assertEqual(
            client.request(Method.ALLOCATE, allocateAttributes).messageClass,
            MessageClass.SUCCESS,
        )
        named = set()
        for number, (operation, host, portKind, port) in enumerate(operations):
            peer = (host, ports.get(portKind, port))
            named.add(peer)
            channel = 0x4000 + number
            if operation == "permission":
                client.request(Method.CREATE_PERMISSION, [XorPeerAddress(*peer)])
            elif operation == "channel":
                client.request(
                    Method.CHANNEL_BIND, [ChannelNumber(channel), XorPeerAddress(*peer)]
                )
                client.send(encodeChannelData(channel, b"c"))
            elif operation == "send":
                self.send(client, peer)
            else:
                client.request(
                    Method.CHANNEL_BIND, [ChannelNumber(channel), XorPeerAddress(*peer)]
                )
                client.send(encodeChannelData(channel, b"d"))
                self.send(client, peer)
        self.assertEqual(targetWrites, [])
        named = {(ipaddress.ip_address(host), port) for host, port in named}
        for _, (host, port) in relayWrites(fixture):
            self.assertIn((ipaddress.ip_address(host), port), named)
            self.assertTrue(policy.isAllowed(host, port), (host, port))
            address = ipaddress.ip_address(host)
            self.assertFalse(address.is_loopback, host)
            embedded = canonicalPeer(host)
            if embedded.version != address.version:
                self.assertNotIn(str(embedded), self.OWN_IPV4, host)
                self.assertFalse(embedded.is_loopback, host)

    def send(self, client, peer):
        client.send(
            encodeMessage(
                Method.SEND, MessageClass.INDICATION, newTransactionId(),
                [XorPeerAddress(*peer), Data(b"s")],
            )
        )


class UnauthenticatedRateLimitTests(SynchronousTestCase):
    """
    The per-source limit on answers to UDP requests whose integrity is not proven.
    """

    def setUp(self):
        from twisted_turn.ratelimit import SourceLimiter

        self.fixture = ServerFixture(unauthenticatedLimit=SourceLimiter(rate=10, burst=10))
        self.server = self.fixture.server

    def flood(self, client, count, seconds, make):
        """
        Send C{count} requests from C{client} spread over C{seconds}; how many were answered.
        """
        answered = 0
        for _ in range(count):
            client.send(make())
            answered += len(client.received())
            self.fixture.clock.advance(seconds / count)
        return answered

    def test_floodGetsBurstPlusRate(self):
        """
        2000 unauthenticated Allocates in one second from one source get at most the burst
        plus the rate answered; the rest are dropped and counted.
        """
        attacker = self.fixture.client(address=("192.0.2.66", 5000))
        answered = self.flood(
            attacker, 2000, 1.0,
            lambda: encodeMessage(Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(), [UDP]),
        )
        self.assertLessEqual(answered, 20)
        self.assertGreaterEqual(answered, 19)
        self.assertEqual(self.server.counters["dropUnauthenticatedRateLimited"], 2000 - answered)

    def test_everyUnprovenAnswerCounts(self):
        """
        Malformed requests (400), failed integrity (401), unknown methods and unknown
        comprehension-required attributes on Binding draw on the same budget; Binding
        answers do not.
        """
        attacker = self.fixture.client(address=("192.0.2.66", 5000))
        bad = self.fixture.client(address=("192.0.2.66", 5001), password="wrong")
        bad.request(Method.ALLOCATE, [UDP])  # the challenge, then a failed-integrity retry
        header = struct.Struct("!HHI12s")
        requests = [
            encodeMessage(0x0FF, MessageClass.REQUEST, newTransactionId(), []),
            # An attribute running past the message: 400.
            header.pack(Method.ALLOCATE, 8, 0x2112A442, newTransactionId())
            + struct.pack("!HH", 0x0019, 100) + bytes(4),
            # An unknown comprehension-required attribute: 420.
            header.pack(Method.BINDING, 4, 0x2112A442, newTransactionId())
            + struct.pack("!HH", 0x7FFE, 0),
        ]
        answered = []
        for request in requests * 5:
            attacker.send(request)
            answered += [errorCode(decodeMessage(data)) for data in attacker.received()]
        self.assertEqual(answered, [400, 400, 420] * 2 + [400, 400])
        attacker.send(encodeMessage(Method.BINDING, MessageClass.REQUEST, newTransactionId(), []))
        self.assertEqual(len(attacker.received()), 1)

    def test_otherClientsUnaffected(self):
        """
        While one source floods, a client from another address authenticates, allocates and
        refreshes as usual, and its authenticated errors are answered however many.
        """
        attacker = self.fixture.client(address=("192.0.2.66", 5000))
        client = self.fixture.client()
        for round in range(20):
            for _ in range(100):
                attacker.send(encodeMessage(
                    Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(), [UDP]
                ))
            if round == 0:
                self.assertEqual(
                    client.request(Method.ALLOCATE, [UDP]).messageClass, MessageClass.SUCCESS
                )
            response = client.request(Method.REFRESH, [Lifetime(600)])
            self.assertEqual(response.messageClass, MessageClass.SUCCESS)
            response = client.request(Method.ALLOCATE, [UDP])
            self.assertEqual(errorCode(response), 437)
            self.fixture.clock.advance(0.05)

    def test_streamsNotLimited(self):
        """
        Over TCP (a handshake proves the address) every challenge is answered.
        """
        from twisted_turn.testing import StreamTestClient

        client = StreamTestClient(self.server, self.fixture.clock)
        for _ in range(50):
            client.send(encodeMessage(
                Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(), [UDP]
            ))
        self.assertEqual(len(client.received()), 50)

    def test_challengeIsSmall(self):
        """
        A header-only Allocate gets a 401 of 100 bytes: REALM, a 37-character NONCE,
        PASSWORD-ALGORITHMS and an ERROR-CODE without reason phrase (docs/security.md).
        """
        attacker = self.fixture.client(address=("192.0.2.66", 5000))
        attacker.send(
            encodeMessage(Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(), [])
        )
        [answer] = attacker.received()
        self.assertEqual(len(answer), 100)
        message = decodeMessage(answer)
        self.assertEqual(message.get(ErrorCode), ErrorCode(401, ""))
        self.assertEqual(len(message.get(Nonce).value), 37)


class AuthFailureLimitTests(SynchronousTestCase):
    """
    The per-user bound on failed authentications.
    """

    def setUp(self):
        from twisted_turn.ratelimit import UserFailureLimiter

        self.fixture = ServerFixture(authFailureLimit=UserFailureLimiter(perMinute=5))
        self.server = self.fixture.server

    def test_bruteForceDropped(self):
        """
        Past the budget, guesses for the name from an address it never authenticated from
        are dropped unanswered, and a correct password from there is dropped too.
        """
        guesser = self.fixture.client(address=("192.0.2.66", 5000), password="guess")
        codes = [errorCode(guesser.request(Method.ALLOCATE, [UDP])) for _ in range(5)]
        self.assertEqual(codes, [401] * 5)
        guesser.send(encodeMessage(Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(),
                                   [UDP, Username("alice"), Realm("example.org"),
                                    Nonce(guesser.nonce)], integrityKey=guesser.key()))
        self.assertEqual(guesser.received(), [])
        self.assertEqual(self.server.counters["dropAuthFailureLimited"], 1)
        guesser.password = "secret"
        guesser.send(encodeMessage(Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(),
                                   [UDP, Username("alice"), Realm("example.org"),
                                    Nonce(guesser.nonce)], integrityKey=guesser.key()))
        self.assertEqual(guesser.received(), [])

    def test_realUserNotLockedOut(self):
        """
        The user keeps authenticating from the address it authenticated from before, while
        the guessing goes on; other names are not affected; the budget comes back with time.
        """
        user = self.fixture.client()
        self.assertEqual(user.request(Method.ALLOCATE, [UDP]).messageClass, MessageClass.SUCCESS)
        guesser = self.fixture.client(address=("192.0.2.66", 5000), password="guess")
        for _ in range(50):
            guesser.request(Method.ALLOCATE, [UDP])
        for _ in range(10):
            response = user.request(Method.REFRESH, [Lifetime(600)])
            self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        other = self.fixture.client(address=("192.0.2.67", 1), username="bob", password="x")
        self.assertEqual(errorCode(other.request(Method.ALLOCATE, [UDP])), 401)
        self.fixture.clock.advance(60)
        guesser.password = "secret"
        self.assertEqual(
            guesser.request(Method.ALLOCATE, [UDP]).messageClass, MessageClass.SUCCESS
        )


class RefusalLoggingTests(SynchronousTestCase):
    """
    Refused requests are logged once at info with the client address, the user and why, as
    coturn does; the first 401 (the challenge) is not a refusal.
    """

    def setUp(self):
        self.fixture = ServerFixture(userQuota=1)
        self.client = self.fixture.client()

    def refusals(self, action, fixture=None):
        from twisted.logger import formatEvent

        with capturedLogs() as events:
            action()
        return [formatEvent(e) for e in events if e.get("refusal") is not None]

    def test_challengeNotLogged(self):
        """
        A successful Allocate after its 401 challenge logs no refusal.
        """
        self.assertEqual(self.refusals(lambda: self.client.request(Method.ALLOCATE, [UDP])), [])

    def test_badPasswordLogged(self):
        """
        A 401 after failed credentials is logged with the client and the user name.
        """
        bad = self.fixture.client(address=("192.0.2.66", 7), password="wrong")
        self.assertEqual(
            self.refusals(lambda: bad.request(Method.ALLOCATE, [UDP])),
            ["Refused Allocate from 192.0.2.66:7: 401 Unauthorized: bad credentials for "
             "'alice' (wrong password, or no such user)"],
        )

    def test_peerRefusalNamesPeerAndRule(self):
        """
        A 403 names the peer and the rule that refused it.
        """
        self.client.request(Method.ALLOCATE, [UDP])
        [line] = self.refusals(lambda: self.client.request(
            Method.CREATE_PERMISSION, [XorPeerAddress("10.1.2.3", 1)]
        ))
        self.assertEqual(
            line,
            "Refused CreatePermission from 192.0.2.5:40000 ('alice'): 403 Peer address not "
            "allowed: peer 10.1.2.3 is in the default deny list (10.0.0.0/8)",
        )
        [line] = self.refusals(lambda: self.client.request(
            Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress("203.0.113.10", 22)]
        ))
        self.assertEqual(
            line,
            "Refused ChannelBind from 192.0.2.5:40000 ('alice'): 403 Peer address not "
            "allowed: peer 203.0.113.10:22 is the server's own relay address, on a port "
            "where it holds no relay socket",
        )

    def test_quotaMismatchAndRefresh(self):
        """
        486 (quota), 437 (no allocation) and 441 (another user's allocation) are logged with
        what was refused.
        """
        self.client.request(Method.ALLOCATE, [UDP])
        second = self.fixture.client(address=("192.0.2.5", 40001))
        lines = self.refusals(lambda: second.request(Method.ALLOCATE, [UDP]))
        self.assertEqual(lines, [
            "Refused Allocate from 192.0.2.5:40001 ('alice'): 486 Allocation Quota Reached: "
            "--user-quota 1 reached",
        ])
        lines = self.refusals(lambda: second.request(Method.REFRESH, [Lifetime(600)]))
        self.assertEqual(lines, [
            "Refused Refresh from 192.0.2.5:40001 ('alice'): 437 Allocation Mismatch: no "
            "allocation on this 5-tuple",
        ])

    def test_addressesLeftOut(self):
        """
        With logAddresses off, neither the client's nor the peer's address is logged.
        """
        fixture = ServerFixture(logAddresses=False)
        client = fixture.client()
        client.request(Method.ALLOCATE, [UDP])
        [line] = self.refusals(lambda: client.request(
            Method.CREATE_PERMISSION, [XorPeerAddress("10.1.2.3", 1)]
        ))
        self.assertEqual(
            line,
            "Refused CreatePermission from a client ('alice'): 403 Peer address not allowed: "
            "a peer in the default deny list (10.0.0.0/8)",
        )
        self.assertNotIn("192.0.2.5", line)


class DrainAndRedirectTests(SynchronousTestCase):
    """
    While draining, or past --total-quota, a new Allocate is sent to an alternate server of
    its transport and family (300 ALTERNATE-SERVER), or refused with 486 without one; the
    allocations there are go on.
    """

    def fixture(self, **options):
        return ServerFixture(
            alternateServers=[("192.0.2.200", 3478), ("192.0.2.201", 3479), ("2001:db8::9", 3478)],
            tlsAlternateServers=[("192.0.2.210", 5349)],
            **options,
        )

    def test_drainingSendsAllocatesElsewhere(self):
        """
        A draining server answers a new Allocate with a signed 300 naming the alternate
        servers of the client's family in turn; Refresh, CreatePermission, ChannelBind and
        data of a live allocation keep working.
        """
        from twisted_turn.stun.attributes import AlternateServer

        fixture = self.fixture()
        live = fixture.client()
        live.request(Method.ALLOCATE, [UDP])
        fixture.server.draining = True
        alternates = []
        for port in (1, 2, 3):
            response = fixture.client(address=("192.0.2.6", port)).request(Method.ALLOCATE, [UDP])
            self.assertEqual(errorCode(response), 300)
            self.assertIsNotNone(response.get(MessageIntegrity))
            server = response.get(AlternateServer)
            alternates.append((server.host, server.port))
        self.assertEqual(sorted(set(alternates)), [("192.0.2.200", 3478), ("192.0.2.201", 3479)])
        self.assertEqual(
            live.request(Method.REFRESH, [Lifetime(600)]).messageClass, MessageClass.SUCCESS
        )
        self.assertEqual(live.request(
            Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)]
        ).messageClass, MessageClass.SUCCESS)
        self.assertEqual(len(fixture.server.table), 1)

    def test_drainingWithoutAlternate(self):
        """
        With no alternate server of the client's family, a draining server answers 486.
        """
        fixture = ServerFixture()
        fixture.server.draining = True
        self.assertEqual(errorCode(fixture.client().request(Method.ALLOCATE, [UDP])), 486)

    def test_overTotalQuotaRedirects(self):
        """
        Past --total-quota, an Allocate is sent to an alternate server instead of refused.
        """
        fixture = self.fixture(totalQuota=1)
        fixture.client().request(Method.ALLOCATE, [UDP])
        response = fixture.client(address=("192.0.2.6", 1)).request(Method.ALLOCATE, [UDP])
        self.assertEqual(errorCode(response), 300)


class FakeSharedQuota:
    """
    A shared quota whose answers the test gives: C{reserve} records the call, C{answer}
    gives the oldest waiting one its answer.
    """

    def __init__(self):
        self.waiting = []
        self.reserved = []
        self.released = []

    def reserve(self, user, userExtra, totalExtra, done):
        self.reserved.append((user, userExtra, totalExtra))
        self.waiting.append(done)

    def answer(self, refusal=None):
        self.waiting.pop(0)(refusal)

    def release(self, user):
        self.released.append(user)


class SharedQuotaTests(SynchronousTestCase):
    """
    With a shared quota (worker processes), every Allocate waits for its answer: granted, it
    is made and answered then, and released when it ends; refused, it gets 486 (or 300 past
    the total quota with an alternate server).
    """

    def setUp(self):
        self.quota = FakeSharedQuota()
        self.fixture = ServerFixture(sharedQuota=self.quota, userQuota=3, totalQuota=5,
                                     alternateServers=[("192.0.2.200", 3478)])
        self.server = self.fixture.server
        self.client = self.fixture.client()

    def test_grantedLater(self):
        """
        The answer goes out once the quota grants; the allocation holds its reservation
        until it ends, and then releases it, once.
        """
        self.assertIsNone(self.client.request(Method.ALLOCATE, [UDP]))
        self.assertEqual(self.quota.reserved, [("alice", 0, 0)])
        self.assertEqual(len(self.server.table), 0)
        self.quota.answer(None)
        response = self.client.lastMessage()
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.assertIsNotNone(response.get(XorRelayedAddress))
        [allocation] = self.server.table
        self.assertTrue(allocation.quotaShared)
        self.assertEqual(self.quota.released, [])
        self.client.request(Method.REFRESH, [Lifetime(0)])
        self.assertEqual(self.quota.released, ["alice"])
        self.fixture.clock.advance(3600)
        self.server.sweep()
        self.assertEqual(self.quota.released, ["alice"])

    def test_retransmissionWhileWaiting(self):
        """
        A retransmitted Allocate while the first waits is dropped without asking again; one
        answer goes out.
        """
        self.assertIsNone(self.client.request(Method.ALLOCATE, [UDP]))
        tid = newTransactionId()
        for _ in range(2):
            self.assertIsNone(
                self.client.request(Method.ALLOCATE, [UDP], transactionId=tid)
            )
        self.assertEqual(len(self.quota.reserved), 1)
        self.assertEqual(self.server.counters["allocatePending"], 2)
        self.quota.answer(None)
        self.assertEqual(len(self.client.received()), 1)
        self.assertEqual(len(self.server.table), 1)

    def test_userQuotaRefused(self):
        self.client.request(Method.ALLOCATE, [UDP])
        self.quota.answer("user")
        response = self.client.lastMessage()
        self.assertEqual(errorCode(response), 486)
        self.assertEqual(len(self.server.table), 0)
        self.assertEqual(self.quota.released, [])

    def test_totalQuotaRedirects(self):
        from twisted_turn.stun.attributes import AlternateServer

        self.client.request(Method.ALLOCATE, [UDP])
        self.quota.answer("total")
        response = self.client.lastMessage()
        self.assertEqual(errorCode(response), 300)
        self.assertEqual(response.get(AlternateServer).host, "192.0.2.200")

    def test_unavailable(self):
        """
        Any other refusal (the supervisor cannot be asked) is a 486 naming it.
        """
        self.client.request(Method.ALLOCATE, [UDP])
        with capturedLogs() as events:
            self.quota.answer("the quota service is unavailable")
        self.assertEqual(errorCode(self.client.lastMessage()), 486)
        from twisted.logger import formatEvent

        self.assertIn(
            "486 Allocation Quota Reached: the quota service is unavailable",
            " ".join(formatEvent(event) for event in events),
        )

    def test_failureAfterGrantReleases(self):
        """
        When the allocation cannot be made after the grant (no relay port), the reservation
        is released and the client gets 508.
        """
        fixture = ServerFixture(sharedQuota=self.quota, minPort=50000, maxPort=50000)
        first = fixture.client()
        second = fixture.client(address=("192.0.2.9", 1))
        first.request(Method.ALLOCATE, [UDP])
        self.quota.answer(None)
        second.request(Method.ALLOCATE, [UDP])
        self.quota.answer(None)
        self.assertEqual(errorCode(second.lastMessage()), 508)
        self.assertEqual(self.quota.released, ["alice"])
        self.assertEqual(len(fixture.server.table), 1)

    def test_reservationsCounted(self):
        """
        The EVEN-PORT reservations this server holds are passed along, the user's and all.
        """
        self.client.request(Method.ALLOCATE, [UDP, EvenPort(True)])
        self.quota.answer(None)
        other = self.fixture.client(address=("192.0.2.9", 1))
        other.request(Method.ALLOCATE, [UDP])
        self.assertEqual(self.quota.reserved[-1], ("alice", 1, 1))

    def test_claimingAReservationAsksNothing(self):
        self.client.request(Method.ALLOCATE, [UDP, EvenPort(True)])
        self.quota.answer(None)
        token = self.client.lastMessage().get(ReservationToken).token
        other = self.fixture.client(address=("192.0.2.9", 1))
        response = other.request(Method.ALLOCATE, [UDP, ReservationToken(token)])
        self.assertEqual(response.messageClass, MessageClass.SUCCESS)
        self.assertEqual(len(self.quota.reserved), 1)
        other.request(Method.REFRESH, [Lifetime(0)])
        self.assertEqual(self.quota.released, [])

    def test_streamClientGoneWhileWaiting(self):
        """
        A stream client whose connection closed while its Allocate waited gets nothing made;
        the reservation is released.
        """
        self.client.request(Method.ALLOCATE, [UDP])
        self.fixture.transport.disconnected = True
        self.quota.answer(None)
        self.assertEqual(len(self.server.table), 0)
        self.assertEqual(self.quota.released, ["alice"])
