"""
Tests for L{twisted_turn.stun.integrity}.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from tests.test_stun_attributes import placeableAttributes, transactionIds
from tests.test_stun_message import VECTORS, rawMessage, tlv, vectorKey
from twisted_turn.stun.attributes import (
    Fingerprint,
    MessageIntegrity,
    MessageIntegritySha256,
    Software,
)
from twisted_turn.stun.integrity import hasIntegrity, verifyFingerprint, verifyIntegrity
from twisted_turn.stun.message import (
    MessageClass,
    Method,
    StunDecodeError,
    decodeMessage,
    encodeMessage,
)

#: Whether each vector ends with a FINGERPRINT.
HAS_FINGERPRINT = {"2.1": True, "2.2": True, "2.3": True, "2.4": False, "B.1": False}


def withLength(prefix: bytes, length: int) -> bytes:
    """
    @return: C{prefix} with its header length field set to C{length}.
    """
    return prefix[:2] + struct.pack("!H", length) + prefix[4:]


def appendSha256(message: bytes, key: bytes, size: int) -> bytes:
    """
    Append a MESSAGE-INTEGRITY-SHA256 truncated to C{size} bytes, computed here independently
    of the code under test, and fix the length field.
    """
    total = len(message) - 20 + 4 + size
    mac = hmac.new(key, withLength(message, total), hashlib.sha256).digest()[:size]
    return withLength(message + tlv(0x001C, mac), total)


def appendFingerprint(message: bytes) -> bytes:
    """
    Append a FINGERPRINT computed here independently of the code under test.
    """
    total = len(message) - 20 + 8
    crc = zlib.crc32(withLength(message, total)) ^ 0x5354554E
    return withLength(message + tlv(0x8028, struct.pack("!I", crc)), total)


def intact(data: bytes, key: bytes, fingerprinted: bool) -> bool:
    """
    @return: whether C{data} decodes, its MAC verifies with C{key}, and it carries a valid
        FINGERPRINT if C{fingerprinted}, or none otherwise.
    """
    try:
        message = decodeMessage(data)
    except StunDecodeError:
        return False
    expected = True if fingerprinted else None
    return verifyIntegrity(message, key) and verifyFingerprint(message) is expected


class VectorTests(SynchronousTestCase):
    """
    MESSAGE-INTEGRITY(-SHA256) and FINGERPRINT of the RFC 5769 and RFC 8489 B.1 vectors.
    """

    def test_rightKey(self):
        """
        Each vector verifies with its key (short-term password as is, MD5 or SHA-256 long-term
        key), and its FINGERPRINT verifies when it has one.
        """
        for name, data in VECTORS.items():
            message = decodeMessage(data)
            self.assertTrue(hasIntegrity(message), name)
            self.assertTrue(verifyIntegrity(message, vectorKey(name)), name)
            self.assertIs(verifyFingerprint(message), True if HAS_FINGERPRINT[name] else None)

    def test_wrongKey(self):
        """
        A wrong key does not verify, including the other long-term algorithm's key.
        """
        for name, data in VECTORS.items():
            message = decodeMessage(data)
            self.assertFalse(verifyIntegrity(message, b"wrong"), name)
            self.assertFalse(verifyIntegrity(message, vectorKey(name)[:-1]), name)
        self.assertFalse(verifyIntegrity(decodeMessage(VECTORS["2.4"]), vectorKey("B.1")))
        self.assertFalse(verifyIntegrity(decodeMessage(VECTORS["B.1"]), vectorKey("2.4")))

    def test_everyByteIsCovered(self):
        """
        Changing any single byte of a vector makes it fail to decode, fail integrity, or lose
        or fail its FINGERPRINT.
        """
        for name, data in VECTORS.items():
            key = vectorKey(name)
            self.assertTrue(intact(data, key, HAS_FINGERPRINT[name]), name)
            for index in range(len(data)):
                for mask in (0x01, 0x10, 0x80, 0xFF):
                    changed = bytearray(data)
                    changed[index] ^= mask
                    self.assertFalse(
                        intact(bytes(changed), key, HAS_FINGERPRINT[name]),
                        f"{name}: byte {index} ^ 0x{mask:02x}",
                    )

    def test_compareDigest(self):
        """
        The MAC is compared with L{hmac.compare_digest}.
        """
        calls = []
        compare = hmac.compare_digest

        def recordingCompare(a, b):
            calls.append((a, b))
            return compare(a, b)

        self.patch(hmac, "compare_digest", recordingCompare)
        message = decodeMessage(VECTORS["2.2"])
        self.assertTrue(verifyIntegrity(message, vectorKey("2.2")))
        self.assertEqual(calls, [(message.get(MessageIntegrity).value,) * 2])


class EncodeTests(SynchronousTestCase):
    """
    What L{encodeMessage} appends verifies.
    """

    def test_sha1(self):
        """
        With an integrity key the encoder appends a 20-byte MESSAGE-INTEGRITY.
        """
        message = decodeMessage(
            encodeMessage(Method.BINDING, MessageClass.REQUEST, b"i" * 12, [Software("s")],
                          integrityKey=b"key")
        )
        self.assertEqual(len(message.get(MessageIntegrity).value), 20)
        self.assertIsNone(message.get(MessageIntegritySha256))
        self.assertTrue(verifyIntegrity(message, b"key"))
        self.assertIsNone(verifyFingerprint(message))

    def test_sha256Only(self):
        """
        With C{integritySha256} the encoder appends a 32-byte MESSAGE-INTEGRITY-SHA256 and no
        MESSAGE-INTEGRITY.
        """
        message = decodeMessage(
            encodeMessage(Method.BINDING, MessageClass.REQUEST, b"i" * 12, [Software("s")],
                          integrityKey=b"key", integritySha256=True, fingerprint=True)
        )
        self.assertEqual(len(message.get(MessageIntegritySha256).value), 32)
        self.assertIsNone(message.get(MessageIntegrity))
        self.assertTrue(verifyIntegrity(message, b"key"))
        self.assertFalse(verifyIntegrity(message, b"other"))
        self.assertIs(verifyFingerprint(message), True)

    def test_fingerprintMatchesIndependentCrc(self):
        """
        The encoder's FINGERPRINT is CRC-32 XOR 0x5354554e over the message with the length
        covering the FINGERPRINT.
        """
        body = encodeMessage(Method.BINDING, MessageClass.REQUEST, b"f" * 12, [Software("s")])
        self.assertEqual(
            encodeMessage(Method.BINDING, MessageClass.REQUEST, b"f" * 12, [Software("s")],
                          fingerprint=True),
            appendFingerprint(body),
        )

    @given(
        transactionIds,
        st.lists(placeableAttributes, max_size=5),
        st.binary(min_size=1, max_size=40),
        st.booleans(),
        st.booleans(),
    )
    def test_roundTripVerifies(self, transactionId, attributes, key, sha256, fingerprint):
        """
        Any message encoded with integrity (and optionally FINGERPRINT) decodes to the same
        attributes and verifies with its key only.
        """
        message = decodeMessage(
            encodeMessage(Method.ALLOCATE, MessageClass.REQUEST, transactionId, attributes,
                          integrityKey=key, integritySha256=sha256, fingerprint=fingerprint)
        )
        trailer = 2 if fingerprint else 1
        self.assertEqual(message.attributes[:-trailer], tuple(attributes))
        self.assertTrue(verifyIntegrity(message, key))
        self.assertFalse(verifyIntegrity(message, key + b"!"))
        self.assertIs(verifyFingerprint(message), True if fingerprint else None)


class ReceivedFormsTests(SynchronousTestCase):
    """
    Integrity attributes as other agents may send them.
    """

    def test_noIntegrity(self):
        """
        Without an integrity attribute nothing verifies and there is no fingerprint to check.
        """
        message = decodeMessage(rawMessage(tlv(0x8022, b"s")))
        self.assertFalse(hasIntegrity(message))
        self.assertFalse(verifyIntegrity(message, b"key"))
        self.assertIsNone(verifyFingerprint(message))

    def test_truncatedSha256(self):
        """
        A MESSAGE-INTEGRITY-SHA256 of 16 to 32 bytes verifies against the HMAC truncated to its
        length, with the length field covering the truncated attribute.
        """
        for size in (16, 20, 24, 28, 32):
            data = appendSha256(rawMessage(tlv(0x8022, b"soft")), b"key", size)
            message = decodeMessage(data)
            self.assertEqual(len(message.get(MessageIntegritySha256).value), size)
            self.assertTrue(hasIntegrity(message))
            self.assertTrue(verifyIntegrity(message, b"key"), size)
            self.assertFalse(verifyIntegrity(message, b"kez"), size)
            changed = bytearray(data)
            changed[-1] ^= 1
            self.assertFalse(verifyIntegrity(decodeMessage(bytes(changed)), b"key"), size)

    def test_sha256CoversMessageIntegrity(self):
        """
        With MESSAGE-INTEGRITY followed by MESSAGE-INTEGRITY-SHA256, the SHA-256 one is checked
        and it covers the MESSAGE-INTEGRITY attribute.
        """
        withSha1 = encodeMessage(Method.BINDING, MessageClass.REQUEST, b"b" * 12,
                                 [Software("both")], integrityKey=b"key")
        data = appendFingerprint(appendSha256(withSha1, b"key", 32))
        message = decodeMessage(data)
        self.assertEqual(
            [type(a) for a in message.attributes],
            [Software, MessageIntegrity, MessageIntegritySha256, Fingerprint],
        )
        self.assertTrue(verifyIntegrity(message, b"key"))
        self.assertIs(verifyFingerprint(message), True)
        # A SHA-256 MAC computed over a different MESSAGE-INTEGRITY does not verify.
        otherSha1 = withSha1[:-20] + b"\x00" * 20
        sha256Attribute = appendSha256(otherSha1, b"key", 32)[-36:]
        forged = withLength(withSha1 + sha256Attribute, len(withSha1) - 20 + 36)
        self.assertFalse(verifyIntegrity(decodeMessage(forged), b"key"))

    def test_fingerprintMismatch(self):
        """
        A FINGERPRINT that does not match the CRC is L{False}.
        """
        data = bytearray(appendFingerprint(rawMessage(tlv(0x8022, b"soft"))))
        self.assertIs(verifyFingerprint(decodeMessage(bytes(data))), True)
        data[-1] ^= 0x01
        self.assertIs(verifyFingerprint(decodeMessage(bytes(data))), False)
