"""
Tests for L{twisted_turn.stun.channeldata}.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.stun.channeldata import classify, decodeChannelData, encodeChannelData
from twisted_turn.stun.message import StunDecodeError

channels = st.integers(0x4000, 0x7FFF)


class EncodeTests(SynchronousTestCase):
    """
    L{encodeChannelData}.
    """

    def test_header(self):
        """
        The header is the channel number and the data length, without padding by default.
        """
        self.assertEqual(encodeChannelData(0x4001, b"abcde"), b"\x40\x01\x00\x05abcde")
        self.assertEqual(encodeChannelData(0x4FFF, b""), b"\x4f\xff\x00\x00")

    def test_pad(self):
        """
        With C{pad=True} the message is padded with zeros to a multiple of 4; the length field
        still gives the unpadded data length.
        """
        self.assertEqual(encodeChannelData(0x4000, b"abcde", pad=True),
                         b"\x40\x00\x00\x05abcde\x00\x00\x00")
        self.assertEqual(encodeChannelData(0x4000, b"abcd", pad=True), b"\x40\x00\x00\x04abcd")
        self.assertEqual(encodeChannelData(0x4000, b"", pad=True), b"\x40\x00\x00\x00")

    def test_badArguments(self):
        """
        A channel number outside 0x4000-0x7FFF or more than 65535 bytes of data is a
        L{ValueError}.
        """
        for channel in (0x3FFF, 0x8000, 0):
            self.assertRaises(ValueError, encodeChannelData, channel, b"x")
        self.assertRaises(ValueError, encodeChannelData, 0x4000, b"x" * 0x10000)


class DecodeTests(SynchronousTestCase):
    """
    L{decodeChannelData}.
    """

    def assertDecodeError(self, data: bytes, reason: str) -> None:
        with self.assertRaises(StunDecodeError) as caught:
            decodeChannelData(data)
        self.assertIn(reason, str(caught.exception))
        self.assertIsNone(caught.exception.header)

    def test_decode(self):
        """
        Decoding gives the channel number and exactly the data the length field covers.
        """
        self.assertEqual(decodeChannelData(b"\x40\x01\x00\x03abc"), (0x4001, b"abc"))
        self.assertEqual(decodeChannelData(b"\x40\x01\x00\x00"), (0x4001, b""))

    def test_trailingPadding(self):
        """
        Bytes after the length (padding a UDP sender may include) are ignored.
        """
        self.assertEqual(decodeChannelData(b"\x40\x01\x00\x03abc\xff"), (0x4001, b"abc"))
        self.assertEqual(decodeChannelData(b"\x40\x01\x00\x01a\x00\x00\x00"), (0x4001, b"a"))

    def test_short(self):
        """
        Fewer than 4 bytes is not ChannelData.
        """
        self.assertDecodeError(b"\x40\x01\x00", "3 bytes is shorter than the 4-byte")
        self.assertDecodeError(b"", "0 bytes")

    def test_lengthExceedsData(self):
        """
        A length field larger than the data that follows is an error.
        """
        self.assertDecodeError(b"\x40\x01\x00\x04abc", "length 4 exceeds the 3 bytes given")

    def test_channelOutOfRange(self):
        """
        Channel numbers outside 0x4000-0x7FFF are errors.
        """
        self.assertDecodeError(b"\x3f\xff\x00\x00", "channel number 0x3fff is outside")
        self.assertDecodeError(b"\x80\x00\x00\x00", "channel number 0x8000 is outside")

    @given(channels, st.binary(max_size=300), st.booleans())
    def test_roundTrip(self, channel, data, pad):
        """
        Decoding an encoded message, padded or not, gives back channel and data.
        """
        encoded = encodeChannelData(channel, data, pad=pad)
        self.assertEqual(len(encoded) % 4 if pad else 0, 0)
        self.assertEqual(decodeChannelData(encoded), (channel, data))

    @given(st.binary(max_size=64))
    def test_arbitraryBytes(self, data):
        """
        Arbitrary bytes decode or raise L{StunDecodeError}.
        """
        try:
            channel, payload = decodeChannelData(data)
        except StunDecodeError as e:
            self.assertTrue(str(e))
        else:
            self.assertTrue(0x4000 <= channel <= 0x7FFF)
            self.assertEqual(payload, data[4 : 4 + len(payload)])


class ClassifyTests(SynchronousTestCase):
    """
    L{classify} applies the first-byte rule.
    """

    def test_everyFirstByte(self):
        """
        0-3 is STUN, 0x40-0x7F ChannelData, every other first byte is neither.
        """
        for first in range(256):
            if first <= 3:
                expected = "stun"
            elif 0x40 <= first <= 0x7F:
                expected = "channeldata"
            else:
                expected = None
            self.assertEqual(classify(bytes([first]) + b"\x00" * 7), expected, hex(first))

    def test_empty(self):
        """
        An empty datagram is neither.
        """
        self.assertIsNone(classify(b""))

    @given(channels, st.binary(max_size=20))
    def test_encodedChannelData(self, channel, data):
        """
        Everything L{encodeChannelData} produces classifies as ChannelData.
        """
        self.assertEqual(classify(encodeChannelData(channel, data)), "channeldata")
