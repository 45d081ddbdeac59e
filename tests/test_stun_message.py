"""
Tests for L{twisted_turn.stun.message}.

L{VECTORS} holds the messages of RFC 5769 and RFC 8489 Appendix B.1 (with erratum 6268), shared
with the integrity tests.
"""

from __future__ import annotations

import hashlib
import os
import socket
import struct

from hypothesis import assume, given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.test_stun_attributes import placeableAttributes, transactionIds
from twisted_turn.stun.attributes import (
    Data,
    DontFragment,
    ErrorCode,
    Fingerprint,
    IceControlled,
    Lifetime,
    MessageIntegrity,
    MessageIntegritySha256,
    Nonce,
    PasswordAlgorithm,
    Priority,
    Realm,
    Software,
    Userhash,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)
from twisted_turn.stun.message import (
    MAGIC_COOKIE,
    Message,
    MessageClass,
    Method,
    StunDecodeError,
    decodeMessage,
    decodeSendIndication,
    encodeDataIndication,
    encodeMessage,
    newTransactionId,
)

VECTORS = {
    # RFC 5769 section 2.1: Binding request, short-term credentials.
    "2.1": bytes.fromhex(
        """
        00 01 00 58 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 10 53 54 55 4e 20 74 65 73 74 20 63 6c 69 65 6e 74
        00 24 00 04 6e 00 01 ff
        80 29 00 08 93 2f f9 b1 51 26 3b 36
        00 06 00 09 65 76 74 6a 3a 68 36 76 59 20 20 20
        00 08 00 14 9a ea a7 0c bf d8 cb 56 78 1e f2 b5 b2 d3 f2 49 c1 b5 71 a2
        80 28 00 04 e5 7a 3b cf
        """
    ),
    # RFC 5769 section 2.2: Binding success response, IPv4.
    "2.2": bytes.fromhex(
        """
        01 01 00 3c 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 08 00 01 a1 47 e1 12 a6 43
        00 08 00 14 2b 91 f5 99 fd 9e 90 c3 8c 74 89 f9 2a f9 ba 53 f0 6b e7 d7
        80 28 00 04 c0 7d 4c 96
        """
    ),
    # RFC 5769 section 2.3: Binding success response, IPv6.
    "2.3": bytes.fromhex(
        """
        01 01 00 48 21 12 a4 42 b7 e7 a7 01 bc 34 d6 86 fa 87 df ae
        80 22 00 0b 74 65 73 74 20 76 65 63 74 6f 72 20
        00 20 00 14 00 02 a1 47 01 13 a9 fa a5 d3 f1 79 bc 25 f4 b5 be d2 b9 d9
        00 08 00 14 a3 82 95 4e 4b e6 7b f1 17 84 c9 7c 82 92 c2 75 bf e3 ed 41
        80 28 00 04 c8 fb 0b 4c
        """
    ),
    # RFC 5769 section 2.4: request with long-term credentials.
    "2.4": bytes.fromhex(
        """
        00 01 00 60 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 06 00 12 e3 83 9e e3 83 88 e3 83 aa e3 83 83 e3 82 af e3 82 b9 00 00
        00 15 00 1c 66 2f 2f 34 39 39 6b 39 35 34 64 36 4f 4c 33 34 6f 4c 39 46
                    53 54 76 79 36 34 73 41
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 08 00 14 f6 70 24 65 6d d6 4a 3e 02 b8 e0 71 2e 85 c9 a2 8c a8 96 66
        """
    ),
    # RFC 8489 Appendix B.1 with erratum 6268: SHA-256 and USERHASH.
    "B.1": bytes.fromhex(
        """
        00 01 00 90 21 12 a4 42 78 ad 34 33 c6 ad 72 c0 29 da 41 2e
        00 1e 00 20 4a 3c f3 8f ef 69 92 bd a9 52 c6 78 04 17 da 0f
                    24 81 94 15 56 9e 60 b2 05 c4 6e 41 40 7f 17 04
        00 15 00 29 6f 62 4d 61 74 4a 6f 73 32 41 41 41 43 66 2f 2f 34 39 39 6b
                    39 35 34 64 36 4f 4c 33 34 6f 4c 39 46 53 54 76 79 36 34 73
                    41 00 00 00
        00 14 00 0b 65 78 61 6d 70 6c 65 2e 6f 72 67 00
        00 1d 00 04 00 02 00 00
        00 1c 00 20 b5 c7 bf 00 5b 6c 52 a2 1c 51 c5 e8 92 f8 19 24 13 62 96 cb
                    92 7c 43 14 93 09 27 8c c6 51 8e 65
        """
    ),
}

SHORT_TERM_KEY = b"VOkJxbRl1RmTxUk/WvJxBt"
MATRIX = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
RFC5769_TRANSACTION_ID = bytes.fromhex("b7e7a701bc34d686fa87dfae")
LONG_TERM_TRANSACTION_ID = bytes.fromhex("78ad3433c6ad72c029da412e")


def longTermKeys() -> dict[str, bytes]:
    """
    @return: the MD5 (RFC 5769 2.4) and SHA-256 (RFC 8489 B.1) long-term keys of the vectors
        ("TheMatrIX" is the SASLprep-ed form of the password the RFCs give).
    """
    secret = f"{MATRIX}:example.org:TheMatrIX".encode("utf-8")
    return {"2.4": hashlib.md5(secret).digest(), "B.1": hashlib.sha256(secret).digest()}


def vectorKey(name: str) -> bytes:
    """
    @return: the HMAC key of vector C{name}.
    """
    return longTermKeys().get(name, SHORT_TERM_KEY)


def rawMessage(body: bytes, messageType: int = 0x0001, transactionId: bytes = b"t" * 12,
               length: int | None = None) -> bytes:
    """
    @return: a STUN header (with the length of C{body} unless C{length} is given) and C{body}.
    """
    if length is None:
        length = len(body)
    return struct.pack("!HHI12s", messageType, length, MAGIC_COOKIE, transactionId) + body


def tlv(attributeType: int, value: bytes, padding: bytes = b"\x00") -> bytes:
    """
    @return: one attribute, padded with repetitions of C{padding}.
    """
    return struct.pack("!HH", attributeType, len(value)) + value + padding * (-len(value) % 4)


def zeroPadding(message: bytes) -> bytes:
    """
    @return: C{message} with every attribute's padding set to zeros.
    """
    out = bytearray(message)
    offset = 20
    while offset < len(out):
        (size,) = struct.unpack_from("!H", out, offset + 2)
        end = offset + 4 + size
        padded = end + (-size % 4)
        out[end:padded] = bytes(padded - end)
        offset = padded
    return bytes(out)


class VectorTests(SynchronousTestCase):
    """
    The RFC 5769 and RFC 8489 B.1 vectors decode to the values the RFCs give, and re-encode.
    """

    def test_shortTermRequest(self):
        """
        RFC 5769 section 2.1 decodes to a Binding request with SOFTWARE, PRIORITY,
        ICE-CONTROLLED, USERNAME (its 0x20 padding ignored), MESSAGE-INTEGRITY and FINGERPRINT.
        """
        message = decodeMessage(VECTORS["2.1"])
        self.assertEqual(len(VECTORS["2.1"]), 108)
        self.assertEqual(
            (message.method, message.messageClass, message.transactionId),
            (Method.BINDING, MessageClass.REQUEST, RFC5769_TRANSACTION_ID),
        )
        self.assertEqual(
            message.attributes,
            (
                Software("STUN test client"),
                Priority(0x6E0001FF),
                IceControlled(0x932FF9B151263B36),
                Username("evtj:h6vY"),
                MessageIntegrity(bytes.fromhex("9aeaa70cbfd8cb56781ef2b5b2d3f249c1b571a2")),
                Fingerprint(0xE57A3BCF),
            ),
        )
        self.assertEqual(message.unknownRequired, ())
        self.assertEqual(message.raw, VECTORS["2.1"])

    def test_ipv4Response(self):
        """
        RFC 5769 section 2.2 is a Binding success response mapping 192.0.2.1 port 32853.
        """
        message = decodeMessage(VECTORS["2.2"])
        self.assertEqual(
            (message.method, message.messageClass, message.transactionId),
            (Method.BINDING, MessageClass.SUCCESS, RFC5769_TRANSACTION_ID),
        )
        self.assertEqual(
            message.attributes,
            (
                Software("test vector"),
                XorMappedAddress("192.0.2.1", 32853),
                MessageIntegrity(bytes.fromhex("2b91f599fd9e90c38c7489f92af9ba53f06be7d7")),
                Fingerprint(0xC07D4C96),
            ),
        )

    def test_ipv6Response(self):
        """
        RFC 5769 section 2.3 maps 2001:db8:1234:5678:11:2233:4455:6677 port 32853.
        """
        message = decodeMessage(VECTORS["2.3"])
        self.assertEqual(message.messageClass, MessageClass.SUCCESS)
        self.assertEqual(
            message.get(XorMappedAddress),
            XorMappedAddress("2001:db8:1234:5678:11:2233:4455:6677", 32853),
        )
        self.assertEqual(
            message.get(MessageIntegrity),
            MessageIntegrity(bytes.fromhex("a382954e4be67bf11784c97c8292c275bfe3ed41")),
        )
        self.assertEqual(message.get(Fingerprint), Fingerprint(0xC8FB0B4C))

    def test_longTermRequest(self):
        """
        RFC 5769 section 2.4 carries a UTF-8 USERNAME, NONCE, REALM and MESSAGE-INTEGRITY and
        no FINGERPRINT.
        """
        message = decodeMessage(VECTORS["2.4"])
        self.assertEqual(message.transactionId, LONG_TERM_TRANSACTION_ID)
        self.assertEqual(
            message.attributes,
            (
                Username(MATRIX),
                Nonce("f//499k954d6OL34oL9FSTvy64sA"),
                Realm("example.org"),
                MessageIntegrity(bytes.fromhex("f67024656dd64a3e02b8e0712e85c9a28ca89666")),
            ),
        )

    def test_sha256Request(self):
        """
        RFC 8489 B.1 carries USERHASH (SHA-256 of "username:realm"), the NONCE with the
        security-feature cookie, REALM, PASSWORD-ALGORITHM SHA-256 and MESSAGE-INTEGRITY-SHA256.
        """
        message = decodeMessage(VECTORS["B.1"])
        self.assertEqual(
            message.attributes,
            (
                Userhash(hashlib.sha256(f"{MATRIX}:example.org".encode("utf-8")).digest()),
                Nonce("obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"),
                Realm("example.org"),
                PasswordAlgorithm(2, b""),
                MessageIntegritySha256(
                    bytes.fromhex(
                        "b5c7bf005b6c52a21c51c5e892f81924136296cb927c43149309278cc6518e65"
                    )
                ),
            ),
        )

    def test_reencodeZeroPadded(self):
        """
        The vectors padded with zeros (2.4 with MESSAGE-INTEGRITY, B.1 with
        MESSAGE-INTEGRITY-SHA256) are reproduced byte for byte by the encoder.
        """
        for name, sha256 in (("2.4", False), ("B.1", True)):
            message = decodeMessage(VECTORS[name])
            encoded = encodeMessage(
                message.method,
                message.messageClass,
                message.transactionId,
                message.attributes[:-1],
                integrityKey=vectorKey(name),
                integritySha256=sha256,
            )
            self.assertEqual(encoded, VECTORS[name], name)

    def test_reencodeSpacePadded(self):
        """
        The vectors padded with 0x20 re-encode to the same bytes once padding is zeroed, up to
        the MESSAGE-INTEGRITY value and the FINGERPRINT value, which cover the padding.
        """
        for name in ("2.1", "2.2", "2.3"):
            message = decodeMessage(VECTORS[name])
            encoded = encodeMessage(
                message.method,
                message.messageClass,
                message.transactionId,
                message.attributes[:-2],
                integrityKey=SHORT_TERM_KEY,
                fingerprint=True,
            )
            normalised = zeroPadding(VECTORS[name])
            # Header and attributes, then the MESSAGE-INTEGRITY header (20 + 4 + 4 from the end).
            self.assertEqual(encoded[:-28], normalised[:-28], name)
            self.assertEqual(encoded[-8:-4], normalised[-8:-4], name)
            self.assertEqual(decodeMessage(encoded).attributes[:-2], message.attributes[:-2])

class MessageTypeTests(SynchronousTestCase):
    """
    The method and class bits of the message type (RFC 8489 section 5).
    """

    def test_knownTypes(self):
        """
        Method and class interleave into the well-known message types.
        """
        cases = [
            (Method.BINDING, MessageClass.REQUEST, 0x0001),
            (Method.BINDING, MessageClass.INDICATION, 0x0011),
            (Method.BINDING, MessageClass.SUCCESS, 0x0101),
            (Method.BINDING, MessageClass.ERROR, 0x0111),
            (Method.ALLOCATE, MessageClass.REQUEST, 0x0003),
            (Method.ALLOCATE, MessageClass.ERROR, 0x0113),
            (Method.SEND, MessageClass.INDICATION, 0x0016),
            (Method.DATA, MessageClass.INDICATION, 0x0017),
            (Method.CHANNEL_BIND, MessageClass.SUCCESS, 0x0109),
            (Method.CONNECTION_ATTEMPT, MessageClass.REQUEST, 0x000C),
            (0xFFF, MessageClass.ERROR, 0x3FFF),
            (0x080, MessageClass.REQUEST, 0x0200),
        ]
        for method, messageClass, messageType in cases:
            encoded = encodeMessage(method, messageClass, b"x" * 12, [])
            self.assertEqual(encoded[:2], struct.pack("!H", messageType))
            decoded = decodeMessage(encoded)
            self.assertEqual((decoded.method, decoded.messageClass), (method, messageClass))

    @given(st.integers(0, 0xFFF), st.sampled_from(MessageClass))
    def test_everyMethodAndClass(self, method, messageClass):
        """
        Every 12-bit method and every class survive a round trip; the top two bits stay zero.
        """
        encoded = encodeMessage(method, messageClass, b"x" * 12, [])
        self.assertEqual(encoded[0] & 0xC0, 0)
        decoded = decodeMessage(encoded)
        self.assertEqual((decoded.method, decoded.messageClass), (method, messageClass))

    def test_knownMethodsAreEnums(self):
        """
        A known method decodes to its L{Method}; an unknown one stays an C{int}.
        """
        self.assertIs(decodeMessage(rawMessage(b"", 0x0003)).method, Method.ALLOCATE)
        method = decodeMessage(rawMessage(b"", 0x0002)).method
        self.assertEqual((type(method), method), (int, 2))


class HeaderErrorTests(SynchronousTestCase):
    """
    A malformed header is a L{StunDecodeError} without C{header}.
    """

    def assertHeaderError(self, data: bytes, reason: str) -> None:
        with self.assertRaises(StunDecodeError) as caught:
            decodeMessage(data)
        self.assertIn(reason, str(caught.exception))
        self.assertIsNone(caught.exception.header)

    def test_short(self):
        """
        Fewer than 20 bytes is not a STUN message.
        """
        self.assertHeaderError(rawMessage(b"")[:19], "19 bytes is shorter than the 20-byte")
        self.assertHeaderError(b"", "0 bytes")

    def test_topBits(self):
        """
        The two most significant bits of the type must be zero.
        """
        for messageType in (0x4001, 0x8001, 0xC001):
            self.assertHeaderError(rawMessage(b"", messageType), "top two bits")

    def test_noMagicCookie(self):
        """
        An RFC 3489 message (no magic cookie) is refused.
        """
        data = bytearray(rawMessage(b""))
        data[4:8] = b"\x00\x00\x00\x00"
        self.assertHeaderError(bytes(data), "no magic cookie")

    def test_lengthNotMultipleOfFour(self):
        """
        The length field must be a multiple of 4.
        """
        self.assertHeaderError(rawMessage(b"\x00" * 6), "message length 6 is not a multiple of 4")

    def test_lengthMismatch(self):
        """
        The length field must equal the number of bytes after the header.
        """
        body = tlv(0x8022, b"abcd")
        self.assertHeaderError(rawMessage(body, length=4), "message length 4 but 8 bytes")
        self.assertHeaderError(rawMessage(body, length=12), "message length 12 but 8 bytes")


class AttributeErrorTests(SynchronousTestCase):
    """
    A well-formed header with a bad attribute is a L{StunDecodeError} carrying the header.
    """

    def test_badAttributeValue(self):
        """
        An invalid attribute value raises with C{header} set, so a server can answer 400.
        """
        data = rawMessage(tlv(0x000D, b"\x00\x00\x02"), 0x0004, b"r" * 12)
        with self.assertRaises(StunDecodeError) as caught:
            decodeMessage(data)
        self.assertEqual(caught.exception.header, (Method.REFRESH, MessageClass.REQUEST, b"r" * 12))
        self.assertIn("LIFETIME: 3 bytes, expected 4", str(caught.exception))

    def test_attributeRunsPastEnd(self):
        """
        An attribute length reaching past the message is an error with C{header} set.
        """
        body = struct.pack("!HH", 0x0013, 9) + b"\x00" * 8
        with self.assertRaises(StunDecodeError) as caught:
            decodeMessage(rawMessage(body, 0x0016))
        self.assertEqual(
            caught.exception.header, (Method.SEND, MessageClass.INDICATION, b"t" * 12)
        )
        self.assertIn("attribute 0x0013 of 9 bytes runs past the message end",
                      str(caught.exception))


class AttributeOrderTests(SynchronousTestCase):
    """
    Unknown attributes and the attributes that follow the integrity ones.
    """

    def test_unknownComprehensionRequired(self):
        """
        An unknown attribute below 0x8000 is listed in C{unknownRequired} (for a 420) and left
        out of C{attributes}.
        """
        body = tlv(0x7FFE, b"\x01") + tlv(0x8022, b"x") + tlv(0x0031, b"")
        message = decodeMessage(rawMessage(body))
        self.assertEqual(message.unknownRequired, (0x7FFE, 0x0031))
        self.assertEqual(message.attributes, (Software("x"),))

    def test_unknownComprehensionOptional(self):
        """
        An unknown attribute from 0x8000 up is skipped silently.
        """
        message = decodeMessage(rawMessage(tlv(0xC001, b"\xff" * 5) + tlv(0x8022, b"x")))
        self.assertEqual(message.unknownRequired, ())
        self.assertEqual(message.attributes, (Software("x"),))

    def test_afterMessageIntegrity(self):
        """
        After MESSAGE-INTEGRITY only MESSAGE-INTEGRITY-SHA256 and FINGERPRINT are kept; other
        attributes, even unknown required ones or a second MESSAGE-INTEGRITY, are ignored.
        """
        mac = b"m" * 20
        body = (
            tlv(0x8022, b"before")
            + tlv(0x0008, mac)
            + tlv(0x8022, b"after")
            + tlv(0x7FFE, b"")
            + tlv(0x0008, b"n" * 20)
            + tlv(0x000D, b"bad")
            + tlv(0x001C, b"s" * 32)
            + tlv(0x8028, b"\x00\x00\x00\x01")
        )
        message = decodeMessage(rawMessage(body))
        self.assertEqual(
            message.attributes,
            (
                Software("before"),
                MessageIntegrity(mac),
                MessageIntegritySha256(b"s" * 32),
                Fingerprint(1),
            ),
        )
        self.assertEqual(message.unknownRequired, ())

    def test_afterMessageIntegritySha256(self):
        """
        After MESSAGE-INTEGRITY-SHA256 only FINGERPRINT is kept, not a later
        MESSAGE-INTEGRITY.
        """
        body = (
            tlv(0x001C, b"s" * 16)
            + tlv(0x0008, b"m" * 20)
            + tlv(0x8022, b"after")
            + tlv(0x8028, b"\x00\x00\x00\x02")
        )
        message = decodeMessage(rawMessage(body))
        self.assertEqual(
            message.attributes, (MessageIntegritySha256(b"s" * 16), Fingerprint(2))
        )

    def test_afterFingerprint(self):
        """
        Nothing after FINGERPRINT is kept or even parsed.
        """
        body = tlv(0x8028, b"\x00\x00\x00\x03") + tlv(0x000D, b"bad") + tlv(0x7FFE, b"")
        message = decodeMessage(rawMessage(body))
        self.assertEqual(message.attributes, (Fingerprint(3),))
        self.assertEqual(message.unknownRequired, ())

    def test_anyPadding(self):
        """
        Padding bytes may hold anything.
        """
        body = tlv(0x8022, b"abcde", b"\xff") + tlv(0x0013, b"\x01", b"\x20")
        message = decodeMessage(rawMessage(body))
        self.assertEqual(message.attributes, (Software("abcde"), Data(b"\x01")))


class MessageTests(SynchronousTestCase):
    """
    L{Message} accessors, L{newTransactionId} and encoder argument checks.
    """

    def test_getAndGetAll(self):
        """
        C{get} returns the first attribute of exactly that class or L{None}; C{getAll} all of
        them in wire order.
        """
        peers = (XorPeerAddress("192.0.2.1", 1), XorPeerAddress("2001:db8::2", 2))
        encoded = encodeMessage(
            Method.CREATE_PERMISSION, MessageClass.REQUEST, b"c" * 12,
            [peers[0], XorRelayedAddress("192.0.2.9", 9), peers[1]],
        )
        message = decodeMessage(encoded)
        self.assertEqual(message.get(XorPeerAddress), peers[0])
        self.assertEqual(message.getAll(XorPeerAddress), peers)
        self.assertEqual(message.get(XorRelayedAddress), XorRelayedAddress("192.0.2.9", 9))
        self.assertIsNone(message.get(XorMappedAddress))
        self.assertEqual(message.getAll(Lifetime), ())

    def test_messageIsFrozen(self):
        """
        A decoded message cannot be modified.
        """
        message = decodeMessage(VECTORS["2.2"])
        self.assertIsInstance(message, Message)
        with self.assertRaises(AttributeError):
            message.method = Method.ALLOCATE

    def test_newTransactionId(self):
        """
        L{newTransactionId} returns 12 bytes from C{os.urandom}.
        """
        calls = []

        def fakeUrandom(n):
            calls.append(n)
            return b"r" * n

        self.patch(os, "urandom", fakeUrandom)
        self.assertEqual(newTransactionId(), b"r" * 12)
        self.assertEqual(calls, [12])

    def test_encodeBadArguments(self):
        """
        A transaction id that is not 12 bytes, a method over 12 bits and a message too long
        for the length field are L{ValueError}s.
        """
        with self.assertRaises(ValueError):
            encodeMessage(Method.BINDING, MessageClass.REQUEST, b"x" * 11, [])
        with self.assertRaises(ValueError):
            encodeMessage(0x1000, MessageClass.REQUEST, b"x" * 12, [])
        with self.assertRaises(ValueError):
            encodeMessage(Method.SEND, MessageClass.INDICATION, b"x" * 12, [Data(b"d" * 70000)])
        with self.assertRaises(ValueError):
            encodeMessage(
                Method.SEND, MessageClass.INDICATION, b"x" * 12, [Data(b"d" * 65500)],
                integrityKey=b"k", fingerprint=True,
            )

    def test_encodePadsWithZeros(self):
        """
        The encoder pads each attribute to 4 bytes with zeros.
        """
        encoded = encodeMessage(
            Method.BINDING, MessageClass.REQUEST, RFC5769_TRANSACTION_ID,
            [Username("evtj:h6vY"), Data(b"\x01")],
        )
        self.assertEqual(
            encoded[20:],
            bytes.fromhex("00060009 6576746a3a68367659000000 00130001 01000000"),
        )
        self.assertEqual(encoded[2:4], b"\x00\x18")

    def test_errorResponse(self):
        """
        An error response with ERROR-CODE round-trips.
        """
        encoded = encodeMessage(
            Method.ALLOCATE, MessageClass.ERROR, b"e" * 12, [ErrorCode(437, "Allocation Mismatch")]
        )
        message = decodeMessage(encoded)
        self.assertEqual(message.get(ErrorCode), ErrorCode(437, "Allocation Mismatch"))


class PropertyTests(SynchronousTestCase):
    """
    Hypothesis: round trips, and decoding arbitrary input raises only L{StunDecodeError}.
    """

    @given(
        st.integers(0, 0xFFF),
        st.sampled_from(MessageClass),
        transactionIds,
        st.lists(placeableAttributes, max_size=6),
    )
    def test_roundTrip(self, method, messageClass, transactionId, attributes):
        """
        Encoding then decoding gives back the header and the attributes.
        """
        encoded = encodeMessage(method, messageClass, transactionId, attributes)
        self.assertEqual(len(encoded) % 4, 0)
        message = decodeMessage(encoded)
        self.assertEqual(
            (message.method, message.messageClass, message.transactionId, message.attributes),
            (method, messageClass, transactionId, tuple(attributes)),
        )
        self.assertEqual(message.unknownRequired, ())

    @given(st.binary(max_size=200))
    def test_arbitraryBytes(self, data):
        """
        Arbitrary bytes decode or raise L{StunDecodeError}.
        """
        try:
            self.assertIsInstance(decodeMessage(data), Message)
        except StunDecodeError as e:
            self.assertTrue(str(e))

    @given(st.integers(0, 0x3FFF), transactionIds, st.binary(max_size=200))
    def test_arbitraryBodyAfterValidHeader(self, messageType, transactionId, body):
        """
        Arbitrary attribute bytes after a valid header decode or raise L{StunDecodeError}
        carrying that header.
        """
        body += bytes(-len(body) % 4)
        data = rawMessage(body, messageType, transactionId)
        expected = decodeMessage(rawMessage(b"", messageType, transactionId))
        try:
            decodeMessage(data)
        except StunDecodeError as e:
            self.assertEqual(
                e.header, (expected.method, expected.messageClass, expected.transactionId)
            )

    @given(
        st.lists(placeableAttributes, max_size=4),
        st.booleans(),
        st.booleans(),
        st.data(),
    )
    def test_mutatedMessages(self, attributes, sha256, fingerprint, data):
        """
        A valid message with one byte changed decodes or raises L{StunDecodeError}.
        """
        encoded = bytearray(
            encodeMessage(
                Method.ALLOCATE, MessageClass.REQUEST, b"m" * 12, attributes,
                integrityKey=b"key", integritySha256=sha256, fingerprint=fingerprint,
            )
        )
        index = data.draw(st.integers(0, len(encoded) - 1))
        replacement = data.draw(st.integers(0, 255))
        assume(encoded[index] != replacement)
        encoded[index] = replacement
        try:
            self.assertIsInstance(decodeMessage(bytes(encoded)), Message)
        except StunDecodeError as e:
            self.assertTrue(str(e))


class DataIndicationTests(SynchronousTestCase):
    @given(
        transactionIds,
        st.one_of(
            st.ip_addresses(v=4).map(str),
            st.ip_addresses(v=6).map(lambda a: socket.inet_ntop(socket.AF_INET6, a.packed)),
        ),
        st.integers(0, 65535),
        st.binary(max_size=300),
    )
    def test_fastEncoderMatchesGeneric(self, transactionId, host, port, data):
        """
        L{encodeDataIndication} produces exactly the bytes L{encodeMessage} makes of a Data
        indication with XOR-PEER-ADDRESS and DATA, for both families and any payload length.
        """
        self.assertEqual(
            encodeDataIndication(transactionId, host, port, data),
            encodeMessage(
                Method.DATA, MessageClass.INDICATION, transactionId,
                [XorPeerAddress(host, port), Data(data)],
            ),
        )

    def test_fastEncoderRefusesOversizedData(self):
        """
        Data that cannot fit in one STUN message is refused with L{ValueError}, and the
        largest that fits is encoded.
        """
        self.assertRaises(ValueError, encodeDataIndication, b"t" * 12, "::1", 1, b"x" * 65505)
        message = encodeDataIndication(b"t" * 12, "::1", 1, b"x" * 65504)
        self.assertEqual(len(message), 20 + 28 + 65504)


sendAttributes = st.lists(
    st.one_of(
        st.builds(XorPeerAddress, st.ip_addresses(v=4).map(str), st.integers(0, 65535)),
        st.builds(
            XorPeerAddress,
            st.ip_addresses(v=6).map(lambda a: socket.inet_ntop(socket.AF_INET6, a.packed)),
            st.integers(0, 65535),
        ),
        st.builds(Data, st.binary(max_size=64)),
        st.just(DontFragment()),
        placeableAttributes,
    ),
    max_size=5,
)


class SendIndicationTests(SynchronousTestCase):
    def test_commonCaseRecognised(self):
        """
        An IPv4 XOR-PEER-ADDRESS with DATA (and DONT-FRAGMENT) is decoded by the fast path.
        """
        for extra in ([], [DontFragment()]):
            data = encodeMessage(
                Method.SEND, MessageClass.INDICATION, b"s" * 12,
                [XorPeerAddress("8.8.8.8", 5000), Data(b"media"), *extra],
            )
            self.assertEqual(decodeSendIndication(data), ("8.8.8.8", 5000, b"media"))

    @given(
        sendAttributes,
        st.booleans(),
        st.sampled_from(
            [(Method.SEND, MessageClass.INDICATION), (Method.DATA, MessageClass.INDICATION),
             (Method.SEND, MessageClass.REQUEST)]
        ),
        st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), max_size=2),
    )
    def test_agreesWithFullDecoder(self, attributes, fingerprint, kind, mutations):
        """
        Whenever the fast path decodes a message (also after random byte changes), the full
        decoder decodes the same Send indication, with nothing it would refuse or answer
        differently: no unknown comprehension-required attribute and no FINGERPRINT.
        """
        data = bytearray(
            encodeMessage(kind[0], kind[1], b"t" * 12, attributes, fingerprint=fingerprint)
        )
        for position, value in mutations:
            if position < len(data):
                data[position] = value
        fast = decodeSendIndication(bytes(data))
        if fast is None:
            return
        message = decodeMessage(bytes(data))
        self.assertEqual(
            (message.method, message.messageClass), (Method.SEND, MessageClass.INDICATION)
        )
        self.assertEqual(message.unknownRequired, ())
        self.assertIsNone(message.get(Fingerprint))
        peer = message.get(XorPeerAddress)
        self.assertEqual(fast, (peer.host, peer.port, message.get(Data).value))
