# -*- test-case-name: tests.test_stun_integrity -*-
"""
MESSAGE-INTEGRITY, MESSAGE-INTEGRITY-SHA256 and FINGERPRINT (RFC 8489 sections 14.5 to 14.7).

Each is computed over the message before the attribute, with the header's length field set as if
the message ended right after that attribute.  The verifiers work on a decoded L{Message}: its
C{raw} bytes and the attribute offsets the decoder recorded.  The encoder in
L{twisted_turn.stun.message} computes the values with the same helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
import zlib
from typing import TYPE_CHECKING, Optional

from twisted_turn.stun.attributes import Fingerprint, MessageIntegrity, MessageIntegritySha256

if TYPE_CHECKING:
    from twisted_turn.stun.message import Message

_LENGTH = struct.Struct("!H")
_FINGERPRINT_XOR = 0x5354554E


def _withLength(prefix: bytes, valueLength: int) -> bytes:
    """
    @param prefix: a message up to (not including) the header of an attribute, whatever its
        length field says.
    @param valueLength: the value length of that attribute.
    @return: C{prefix} with the length field covering the attribute (header and value).
    """
    return prefix[:2] + _LENGTH.pack(len(prefix) - 16 + valueLength) + prefix[4:]


def _mac(prefix: bytes, key: bytes, sha256: bool, size: int) -> bytes:
    """
    @return: the C{size}-byte MESSAGE-INTEGRITY (HMAC-SHA1) or MESSAGE-INTEGRITY-SHA256
        (HMAC-SHA256, truncated to C{size}) value for an attribute appended to C{prefix}.
    """
    digest = hashlib.sha256 if sha256 else hashlib.sha1
    return hmac.new(key, _withLength(prefix, size), digest).digest()[:size]


def _fingerprint(prefix: bytes) -> int:
    """
    @return: the FINGERPRINT value for an attribute appended to C{prefix}.
    """
    return zlib.crc32(_withLength(prefix, 4)) ^ _FINGERPRINT_XOR


def hasIntegrity(message: Message) -> bool:
    """
    @return: whether C{message} carries MESSAGE-INTEGRITY or MESSAGE-INTEGRITY-SHA256.
    """
    return message._integrityOffset is not None or message._sha256Offset is not None


def verifyIntegrity(message: Message, key: bytes) -> bool:
    """
    Check the MESSAGE-INTEGRITY-SHA256 of a decoded message when it has one, else its
    MESSAGE-INTEGRITY, in constant time.

    @param key: the HMAC key: the password for short-term credentials, the MD5 or SHA-256
        long-term key otherwise.
    @return: L{True} if the MAC matches; L{False} if it does not or there is none.
    """
    if message._sha256Offset is not None:
        offset, sha256 = message._sha256Offset, True
        received = message.get(MessageIntegritySha256).value
    elif message._integrityOffset is not None:
        offset, sha256 = message._integrityOffset, False
        received = message.get(MessageIntegrity).value
    else:
        return False
    expected = _mac(message.raw[:offset], key, sha256, len(received))
    return hmac.compare_digest(expected, received)


def verifyFingerprint(message: Message) -> Optional[bool]:
    """
    @return: whether the FINGERPRINT of a decoded message matches, or L{None} if it has none.
    """
    if message._fingerprintOffset is None:
        return None
    expected = _fingerprint(message.raw[: message._fingerprintOffset])
    return message.get(Fingerprint).value == expected
