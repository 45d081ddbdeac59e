# -*- test-case-name: tests.test_stun_framing -*-
"""
Tests for L{twisted_turn.stun.framing}: STUN and ChannelData on a byte stream.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.stun.channeldata import encodeChannelData
from twisted_turn.stun.framing import MAX_MESSAGE, FramingError, StreamFramer
from twisted_turn.stun.message import MessageClass, Method, encodeMessage, newTransactionId


def binding() -> bytes:
    return encodeMessage(Method.BINDING, MessageClass.REQUEST, newTransactionId(), [])


channelData = st.builds(
    lambda channel, data: (encodeChannelData(channel, data, pad=True),
                           encodeChannelData(channel, data)),
    st.integers(0x4000, 0x7FFF),
    st.binary(max_size=300),
)
stun = st.builds(lambda: (binding(), None))


class StreamFramerTests(SynchronousTestCase):
    def test_severalInOneSegment(self) -> None:
        """
        Several messages in one segment come out one by one; ChannelData without padding.
        """
        request = binding()
        padded = encodeChannelData(0x4001, b"abcde", pad=True)
        framer = StreamFramer()
        self.assertEqual(
            framer.feed(request + padded + request),
            [request, encodeChannelData(0x4001, b"abcde"), request],
        )
        self.assertEqual(framer.buffered, 0)

    def test_acrossSegments(self) -> None:
        """
        A message split over segments, down to one byte each, comes out once it is whole.
        """
        request = binding()
        framer = StreamFramer()
        out = []
        for i in range(len(request)):
            out += framer.feed(request[i : i + 1])
            if i < len(request) - 1:
                self.assertEqual(out, [])
        self.assertEqual(out, [request])

    @given(st.lists(st.one_of(channelData, stun), max_size=12), st.data())
    def test_anySplit(self, messages, data) -> None:
        """
        However the stream is cut, the same messages come out in order.
        """
        stream = b"".join(wire for wire, _ in messages)
        cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
        framer = StreamFramer()
        out = []
        previous = 0
        for cut in cuts + [len(stream)]:
            out += framer.feed(stream[previous:cut])
            previous = cut
        self.assertEqual(out, [plain or wire for wire, plain in messages])
        self.assertEqual(framer.buffered, 0)

    def test_garbageEndsStream(self) -> None:
        """
        A first byte that is neither STUN nor ChannelData cannot be resynchronised.
        """
        for first in (0x04, 0x3F, 0x80, 0xFF):
            e = self.assertRaises(FramingError, StreamFramer().feed, bytes([first]) + b"\0" * 30)
            self.assertIn(f"0x{first:02x}", str(e))

    def test_stunLengthMultipleOfFour(self) -> None:
        """
        A STUN header whose length is not a multiple of 4 is refused.
        """
        header = bytearray(binding())
        header[3] = 5
        self.assertRaises(FramingError, StreamFramer().feed, bytes(header))

    def test_bufferBound(self) -> None:
        """
        A message announcing more than the bound is refused before it is buffered; the
        default bound takes the largest STUN message.
        """
        framer = StreamFramer(maxBuffered=100)
        e = self.assertRaises(FramingError, framer.feed, encodeChannelData(0x4000, b"x" * 200))
        self.assertIn("exceeds the 100 bytes", str(e))
        big = encodeChannelData(0x4000, b"x" * 0xFFFF, pad=True)
        self.assertEqual(len(StreamFramer().feed(big)[0]), 4 + 0xFFFF)
        self.assertEqual(MAX_MESSAGE, 20 + 0xFFFF)

    def test_partialHeaderWaits(self) -> None:
        """
        Fewer than 4 bytes wait for more.
        """
        framer = StreamFramer()
        self.assertEqual(framer.feed(b"\x40"), [])
        self.assertEqual(framer.buffered, 1)


class ChannelDataGateTests(SynchronousTestCase):
    def test_refusedUntilAccepted(self):
        """
        With C{acceptChannelData} off, a ChannelData header is a framing error (even before
        its announced length has arrived); STUN still passes; once on, ChannelData passes.
        """
        request = encodeMessage(Method.BINDING, MessageClass.REQUEST, newTransactionId(), [])
        framer = StreamFramer(acceptChannelData=False)
        self.assertEqual(framer.feed(request), [request])
        self.assertRaises(FramingError, framer.feed, b"GET / HTTP/1.1\r\n")
        framer = StreamFramer(acceptChannelData=False)
        framer.acceptChannelData = True
        self.assertEqual(framer.feed(encodeChannelData(0x4000, b"ab", pad=True)),
                         [encodeChannelData(0x4000, b"ab")])


class LimitTests(SynchronousTestCase):
    def test_limitLeavesTheRestUnparsed(self):
        """
        With a C{limit}, C{feed} returns at most that many messages and keeps the bytes after
        them as they are, even bytes that could not be framed; a later call goes on.
        """
        first, second = binding(), binding()
        framer = StreamFramer()
        self.assertEqual(framer.feed(first + second + b"\x80", limit=1), [first])
        self.assertEqual(framer.buffered, len(second) + 1)
        self.assertEqual(framer.feed(b"", limit=1), [second])
        self.assertEqual(framer.take(), b"\x80")
