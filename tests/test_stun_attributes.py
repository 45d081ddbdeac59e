"""
Tests for L{twisted_turn.stun.attributes}.

The Hypothesis strategies here (L{ATTRIBUTE_STRATEGIES}, L{attributes}, L{transactionIds}) are
shared with the message and integrity tests.
"""

from __future__ import annotations

import dataclasses
from socket import AF_INET, AF_INET6, inet_ntop

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.stun.attributes import (
    ATTRIBUTE_CLASSES,
    AdditionalAddressFamily,
    AdditionalAddressFamilyDraft,
    AddressErrorCode,
    AddressErrorCodeDraft,
    AlternateDomain,
    AlternateServer,
    AttributeType,
    ChannelNumber,
    ConnectionId,
    Data,
    DontFragment,
    ErrorCode,
    EvenPort,
    Fingerprint,
    IceControlled,
    IceControlling,
    Icmp,
    Lifetime,
    MappedAddress,
    MessageIntegrity,
    MessageIntegritySha256,
    Nonce,
    PasswordAlgorithm,
    PasswordAlgorithms,
    Priority,
    Realm,
    RequestedAddressFamily,
    RequestedTransport,
    ReservationToken,
    ResponseOrigin,
    Software,
    StunDecodeError,
    UnknownAttributes,
    UseCandidate,
    Userhash,
    Username,
    XorMappedAddress,
    XorPeerAddress,
    XorRelayedAddress,
)

#: The transaction id of the RFC 5769 vectors.
VECTOR_TRANSACTION_ID = bytes.fromhex("b7e7a701bc34d686fa87dfae")

transactionIds = st.binary(min_size=12, max_size=12)
hosts = st.one_of(
    st.binary(min_size=4, max_size=4).map(lambda packed: inet_ntop(AF_INET, packed)),
    st.binary(min_size=16, max_size=16).map(lambda packed: inet_ntop(AF_INET6, packed)),
)
ports = st.integers(0, 0xFFFF)
octets = st.integers(0, 0xFF)
u16 = st.integers(0, 0xFFFF)
u32 = st.integers(0, 0xFFFFFFFF)
u64 = st.integers(0, 0xFFFFFFFFFFFFFFFF)
families = st.sampled_from([1, 2])
errorCodes = st.integers(300, 699)


def texts(maxBytes: int):
    """
    Text that fits in C{maxBytes} of UTF-8 (at most 4 bytes a character).
    """
    return st.text(max_size=maxBytes // 4)


algorithms = st.tuples(u16, st.binary(max_size=12))

#: A strategy for every attribute class.
ATTRIBUTE_STRATEGIES = {
    MappedAddress: st.builds(MappedAddress, hosts, ports),
    XorMappedAddress: st.builds(XorMappedAddress, hosts, ports),
    Username: st.builds(Username, texts(513)),
    Userhash: st.builds(Userhash, st.binary(min_size=32, max_size=32)),
    MessageIntegrity: st.builds(MessageIntegrity, st.binary(min_size=20, max_size=20)),
    MessageIntegritySha256: st.builds(
        MessageIntegritySha256,
        st.sampled_from(range(16, 33, 4)).flatmap(lambda n: st.binary(min_size=n, max_size=n)),
    ),
    Fingerprint: st.builds(Fingerprint, u32),
    ErrorCode: st.builds(ErrorCode, errorCodes, texts(763)),
    Realm: st.builds(Realm, texts(763)),
    Nonce: st.builds(Nonce, texts(763)),
    PasswordAlgorithms: st.builds(PasswordAlgorithms, st.lists(algorithms, max_size=4).map(tuple)),
    PasswordAlgorithm: st.builds(PasswordAlgorithm, u16, st.binary(max_size=12)),
    UnknownAttributes: st.builds(UnknownAttributes, st.lists(u16, max_size=8).map(tuple)),
    Software: st.builds(Software, texts(763)),
    AlternateServer: st.builds(AlternateServer, hosts, ports),
    AlternateDomain: st.builds(
        AlternateDomain, st.text(st.characters(max_codepoint=127), max_size=255)
    ),
    ChannelNumber: st.builds(ChannelNumber, u16),
    Lifetime: st.builds(Lifetime, u32),
    XorPeerAddress: st.builds(XorPeerAddress, hosts, ports),
    Data: st.builds(Data, st.binary(max_size=200)),
    XorRelayedAddress: st.builds(XorRelayedAddress, hosts, ports),
    RequestedAddressFamily: st.builds(RequestedAddressFamily, families),
    EvenPort: st.builds(EvenPort, st.booleans()),
    RequestedTransport: st.builds(RequestedTransport, octets),
    DontFragment: st.just(DontFragment()),
    ReservationToken: st.builds(ReservationToken, st.binary(min_size=8, max_size=8)),
    AdditionalAddressFamily: st.builds(AdditionalAddressFamily, families),
    AddressErrorCode: st.builds(AddressErrorCode, families, errorCodes, texts(763)),
    AdditionalAddressFamilyDraft: st.builds(AdditionalAddressFamilyDraft, families),
    AddressErrorCodeDraft: st.builds(AddressErrorCodeDraft, families, errorCodes, texts(763)),
    Icmp: st.builds(Icmp, octets, octets, u32),
    ConnectionId: st.builds(ConnectionId, u32),
    Priority: st.builds(Priority, u32),
    UseCandidate: st.just(UseCandidate()),
    IceControlled: st.builds(IceControlled, u64),
    IceControlling: st.builds(IceControlling, u64),
    ResponseOrigin: st.builds(ResponseOrigin, hosts, ports),
}

#: Any attribute.
attributes = st.one_of(*ATTRIBUTE_STRATEGIES.values())

#: The attributes that can go anywhere in a message (not the integrity and fingerprint ones,
#: after which the decoder drops attributes).
PLACEABLE = [
    cls
    for cls in ATTRIBUTE_STRATEGIES
    if cls not in (MessageIntegrity, MessageIntegritySha256, Fingerprint)
]
placeableAttributes = st.one_of(*[ATTRIBUTE_STRATEGIES[cls] for cls in PLACEABLE])

#: Each fixed-length attribute class with its one valid value length.
FIXED_LENGTHS = {
    ChannelNumber: 4,
    Lifetime: 4,
    RequestedTransport: 4,
    RequestedAddressFamily: 4,
    AdditionalAddressFamily: 4,
    AdditionalAddressFamilyDraft: 4,
    EvenPort: 1,
    ReservationToken: 8,
    Userhash: 32,
    MessageIntegrity: 20,
    Fingerprint: 4,
    Priority: 4,
    ConnectionId: 4,
    IceControlled: 8,
    IceControlling: 8,
    Icmp: 8,
    DontFragment: 0,
    UseCandidate: 0,
}


class RegistryTests(SynchronousTestCase):
    """
    Tests for L{AttributeType} and L{ATTRIBUTE_CLASSES}.
    """

    def test_everyTypeHasAClass(self):
        """
        Every L{AttributeType} maps to a class whose C{TYPE} is that type, and nothing else is
        registered.
        """
        self.assertEqual(set(ATTRIBUTE_CLASSES), set(AttributeType))
        for attributeType, cls in ATTRIBUTE_CLASSES.items():
            self.assertIs(cls.TYPE, attributeType)

    def test_frozenDataclassesCitingTheirRfc(self):
        """
        Every attribute class is a frozen dataclass whose docstring cites an RFC section.
        """
        for cls in ATTRIBUTE_CLASSES.values():
            self.assertTrue(dataclasses.is_dataclass(cls), cls)
            self.assertTrue(cls.__dataclass_params__.frozen, cls)
            self.assertRegex(cls.__doc__, r"RFC \d+ section \d+(\.\d+)*", cls)

    def test_comprehensionRanges(self):
        """
        The types registered are the IANA code points: a sample of both ranges.
        """
        self.assertEqual(AttributeType.XOR_MAPPED_ADDRESS, 0x0020)
        self.assertEqual(AttributeType.MESSAGE_INTEGRITY_SHA256, 0x001C)
        self.assertEqual(AttributeType.RESERVATION_TOKEN, 0x0022)
        self.assertEqual(AttributeType.CONNECTION_ID, 0x002A)
        self.assertEqual(AttributeType.FINGERPRINT, 0x8028)
        self.assertEqual(AttributeType.ICMP, 0x8004)
        self.assertEqual(AttributeType.RESPONSE_ORIGIN, 0x802B)

    def test_everyClassHasAStrategy(self):
        """
        The round-trip tests below cover every registered attribute class.
        """
        self.assertEqual(set(ATTRIBUTE_STRATEGIES), set(ATTRIBUTE_CLASSES.values()))


class RoundTripTests(SynchronousTestCase):
    """
    Every attribute decodes to what it was encoded from; arbitrary values fail cleanly.
    """

    @given(attributes, transactionIds)
    def test_roundTrip(self, attribute, transactionId):
        """
        C{decodeValue(encodeValue(t), t)} gives back an equal attribute.
        """
        value = attribute.encodeValue(transactionId)
        self.assertEqual(type(attribute).decodeValue(value, transactionId), attribute)

    @given(st.sampled_from(sorted(ATTRIBUTE_CLASSES.values(), key=lambda c: c.TYPE)),
           st.binary(max_size=64), transactionIds)
    def test_arbitraryValues(self, cls, value, transactionId):
        """
        Decoding arbitrary bytes gives an instance of the class or raises L{StunDecodeError}
        naming the attribute, with no header.
        """
        try:
            decoded = cls.decodeValue(value, transactionId)
        except StunDecodeError as e:
            self.assertTrue(str(e).startswith(cls.TYPE.name.replace("_", "-") + ": "))
            self.assertIsNone(e.header)
        else:
            self.assertIsInstance(decoded, cls)

    def test_fixedLengths(self):
        """
        Fixed-length attributes refuse a value one byte shorter or longer.
        """
        for cls, size in FIXED_LENGTHS.items():
            for wrong in (size - 1, size + 1):
                if wrong < 0:
                    continue
                with self.assertRaises(StunDecodeError, msg=cls) as caught:
                    cls.decodeValue(b"\x01" * wrong, VECTOR_TRANSACTION_ID)
                self.assertIn(f"{wrong} bytes, expected {size}", str(caught.exception))


class AddressTests(SynchronousTestCase):
    """
    The plain and XOR address codecs.
    """

    def test_xorMappedIPv4Vector(self):
        """
        The XOR-MAPPED-ADDRESS value of RFC 5769 section 2.2 is 192.0.2.1 port 32853.
        """
        value = bytes.fromhex("0001a147e112a643")
        self.assertEqual(
            XorMappedAddress.decodeValue(value, VECTOR_TRANSACTION_ID),
            XorMappedAddress("192.0.2.1", 32853),
        )
        self.assertEqual(
            XorMappedAddress("192.0.2.1", 32853).encodeValue(VECTOR_TRANSACTION_ID), value
        )

    def test_xorMappedIPv6Vector(self):
        """
        The IPv6 XOR-MAPPED-ADDRESS of RFC 5769 section 2.3 is XOR-ed with the cookie and the
        transaction id.
        """
        value = bytes.fromhex("0002a1470113a9faa5d3f179bc25f4b5bed2b9d9")
        expected = XorMappedAddress("2001:db8:1234:5678:11:2233:4455:6677", 32853)
        self.assertEqual(XorMappedAddress.decodeValue(value, VECTOR_TRANSACTION_ID), expected)
        self.assertEqual(expected.encodeValue(VECTOR_TRANSACTION_ID), value)

    def test_xorAddressesShareOneCodec(self):
        """
        XOR-MAPPED, XOR-PEER and XOR-RELAYED-ADDRESS encode the same address identically.
        """
        for host in ("192.0.2.1", "2001:db8::1"):
            values = {
                cls(host, 5000).encodeValue(VECTOR_TRANSACTION_ID)
                for cls in (XorMappedAddress, XorPeerAddress, XorRelayedAddress)
            }
            self.assertEqual(len(values), 1)

    def test_plainAddressesAreNotObfuscated(self):
        """
        MAPPED-ADDRESS, ALTERNATE-SERVER and RESPONSE-ORIGIN carry the address as is.
        """
        for cls in (MappedAddress, AlternateServer, ResponseOrigin):
            self.assertEqual(
                cls("192.0.2.1", 32853).encodeValue(VECTOR_TRANSACTION_ID),
                bytes.fromhex("00018055c0000201"),
            )
            self.assertEqual(
                cls.decodeValue(bytes.fromhex("00020050" + "20010db8" + "00" * 11 + "01"), b""),
                cls("2001:db8::1", 80),
            )

    def test_badFamilyOrLength(self):
        """
        An unknown family, or a length that does not match the family, is a decode error.
        """
        bad = {
            "0003000102030405": "unknown address family 3",
            "0001000102030405" + "00" * 12: "20 bytes for address family 1, expected 8",
            "0002000102030405": "8 bytes for address family 2, expected 20",
            "0001": "2 bytes is too short",
        }
        for cls in (MappedAddress, XorPeerAddress):
            for value, reason in bad.items():
                with self.assertRaises(StunDecodeError) as caught:
                    cls.decodeValue(bytes.fromhex(value), VECTOR_TRANSACTION_ID)
                self.assertIn(reason, str(caught.exception))

    def test_encodeNotAnAddress(self):
        """
        Encoding a host that is not an IP literal raises L{ValueError}.
        """
        for host in ("example.com", "1.2.3", "::g"):
            with self.assertRaises(ValueError):
                XorPeerAddress(host, 1).encodeValue(VECTOR_TRANSACTION_ID)


class TextTests(SynchronousTestCase):
    """
    USERNAME, REALM, NONCE, SOFTWARE and ALTERNATE-DOMAIN.
    """

    def test_limits(self):
        """
        Each text attribute accepts its maximum length and refuses one byte more.
        """
        for cls, limit in ((Username, 513), (Realm, 763), (Nonce, 763), (Software, 763),
                           (AlternateDomain, 255)):
            self.assertEqual(cls.decodeValue(b"a" * limit, b""), cls("a" * limit))
            with self.assertRaises(StunDecodeError) as caught:
                cls.decodeValue(b"a" * (limit + 1), b"")
            self.assertIn(f"{limit + 1} bytes, at most {limit} allowed", str(caught.exception))

    def test_invalidUtf8(self):
        """
        Text that is not valid UTF-8 is a decode error.
        """
        for cls in (Username, Realm, Nonce, Software):
            with self.assertRaises(StunDecodeError) as caught:
                cls.decodeValue(b"ab\xff", b"")
            self.assertIn("not valid utf-8", str(caught.exception))

    def test_utf8Username(self):
        """
        A username is UTF-8 on the wire.
        """
        name = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
        self.assertEqual(Username(name).encodeValue(b""), name.encode("utf-8"))
        self.assertEqual(Username.decodeValue(name.encode("utf-8"), b""), Username(name))

    def test_alternateDomainIsAscii(self):
        """
        ALTERNATE-DOMAIN must be ASCII.
        """
        with self.assertRaises(StunDecodeError) as caught:
            AlternateDomain.decodeValue("b\u00fccher.example".encode("utf-8"), b"")
        self.assertIn("not valid ascii", str(caught.exception))


class ErrorCodeTests(SynchronousTestCase):
    """
    ERROR-CODE and ADDRESS-ERROR-CODE.
    """

    def test_encode(self):
        """
        The hundreds go in the class bits, the rest in the number byte, then the reason.
        """
        self.assertEqual(
            ErrorCode(420, "Unknown Attribute").encodeValue(b""),
            b"\x00\x00\x04\x14Unknown Attribute",
        )
        self.assertEqual(
            AddressErrorCode(2, 440, "Address Family not Supported").encodeValue(b""),
            b"\x02\x00\x04\x28Address Family not Supported",
        )

    def test_decode(self):
        """
        Decoding reads the class from the low three bits of byte 2 (the reserved bits above
        them are ignored).
        """
        self.assertEqual(
            ErrorCode.decodeValue(b"\xff\xff\xfc\x01Unauthorized", b""),
            ErrorCode(401, "Unauthorized"),
        )
        self.assertEqual(
            AddressErrorCode.decodeValue(b"\x01\x00\x05\x08Insufficient Capacity", b""),
            AddressErrorCode(1, 508, "Insufficient Capacity"),
        )

    def test_badValues(self):
        """
        A class outside 3-6, a number over 99, a short value and bad UTF-8 are decode
        errors.
        """
        cases = [
            (ErrorCode, b"\x00\x00\x02\x00", "error class 2 is not between 3 and 6"),
            (ErrorCode, b"\x00\x00\x07\x00", "error class 7 is not between 3 and 6"),
            (ErrorCode, b"\x00\x00\x04\x64", "error number 100 is not between 0 and 99"),
            (ErrorCode, b"\x00\x00\x04", "3 bytes, at least 4 expected"),
            (ErrorCode, b"\x00\x00\x04\x00\xc3", "not valid utf-8"),
            (AddressErrorCode, b"\x02\x00\x09\x28", "error class 1 is not between 3 and 6"),
        ]
        for cls, value, reason in cases:
            with self.assertRaises(StunDecodeError) as caught:
                cls.decodeValue(value, b"")
            self.assertIn(reason, str(caught.exception))


class DualStackResponseTests(SynchronousTestCase):
    """
    The attributes of a dual-stack Allocate success response (RFC 8656 section 7.2).
    """

    def test_twoRelayedAddressesInOrder(self):
        """
        Two XOR-RELAYED-ADDRESS attributes (IPv4 then IPv6) and an ADDRESS-ERROR-CODE survive
        a round trip through a message, in wire order, each obfuscated with the transaction
        id.
        """
        from twisted_turn.stun.message import MessageClass, Method, decodeMessage, encodeMessage

        transactionId = b"d" * 12
        relayed = [
            XorRelayedAddress("203.0.113.10", 50000), XorRelayedAddress("2001:db8::10", 50001)
        ]
        data = encodeMessage(
            Method.ALLOCATE, MessageClass.SUCCESS, transactionId,
            [*relayed, AddressErrorCode(2, 508, "Insufficient Capacity")],
        )
        message = decodeMessage(data)
        self.assertEqual(message.getAll(XorRelayedAddress), tuple(relayed))
        self.assertEqual(
            message.get(AddressErrorCode), AddressErrorCode(2, 508, "Insufficient Capacity")
        )
        self.assertNotIn(bytes.fromhex("20010db8"), data)

    def test_draftCodePoints(self):
        """
        The pre-RFC code points coturn's clients use, 0x8032 and 0x8033, decode to their own
        classes with the same value layout as ADDITIONAL-ADDRESS-FAMILY and ADDRESS-ERROR-CODE
        (and are not equal to them).
        """
        from twisted_turn.stun.message import MessageClass, Method, decodeMessage, encodeMessage

        data = encodeMessage(
            Method.ALLOCATE, MessageClass.REQUEST, b"d" * 12,
            [AdditionalAddressFamilyDraft(2), AddressErrorCodeDraft(2, 440, "x")],
        )
        self.assertEqual(data[20:28], b"\x80\x32\x00\x04\x02\x00\x00\x00")
        self.assertEqual(data[28:32], b"\x80\x33\x00\x05")
        message = decodeMessage(data)
        self.assertEqual(message.get(AdditionalAddressFamilyDraft).family, 2)
        self.assertIsNone(message.get(AdditionalAddressFamily))
        self.assertEqual(message.get(AddressErrorCodeDraft), AddressErrorCodeDraft(2, 440, "x"))
        self.assertNotEqual(AdditionalAddressFamilyDraft(2), AdditionalAddressFamily(2))

    def test_addressErrorCodeIPv6Layout(self):
        """
        ADDRESS-ERROR-CODE is the family byte, 11 reserved bits, then the class and number:
        the IPv6 508 is 02 00 05 08.
        """
        self.assertEqual(
            AddressErrorCode(2, 508, "Insufficient Capacity").encodeValue(b"")[:4],
            b"\x02\x00\x05\x08",
        )


class PasswordAlgorithmTests(SynchronousTestCase):
    """
    PASSWORD-ALGORITHMS and PASSWORD-ALGORITHM.
    """

    def test_encodePadsParameters(self):
        """
        Parameters are padded with zeros to 4 bytes within the attribute.
        """
        self.assertEqual(
            PasswordAlgorithms(((1, b""), (7, b"\xaa"), (2, b""))).encodeValue(b""),
            bytes.fromhex("00010000" "00070001aa000000" "00020000"),
        )
        self.assertEqual(PasswordAlgorithm(2).encodeValue(b""), bytes.fromhex("00020000"))

    def test_decode(self):
        """
        Entries are read in order; padding after parameters may hold any bytes.
        """
        self.assertEqual(
            PasswordAlgorithms.decodeValue(bytes.fromhex("00070001aaffffff00020000"), b""),
            PasswordAlgorithms(((7, b"\xaa"), (2, b""))),
        )
        self.assertEqual(
            PasswordAlgorithm.decodeValue(bytes.fromhex("00010000"), b""), PasswordAlgorithm(1)
        )

    def test_badValues(self):
        """
        Truncated entries, parameters running past the value, and a PASSWORD-ALGORITHM that
        does not hold exactly one entry are decode errors.
        """
        cases = [
            (PasswordAlgorithms, "000100", "truncated algorithm entry at offset 0"),
            (PasswordAlgorithms, "0001000400", "parameters of algorithm 1 run past"),
            (PasswordAlgorithm, "", "0 algorithms, expected exactly one"),
            (PasswordAlgorithm, "0001000000020000", "2 algorithms, expected exactly one"),
        ]
        for cls, value, reason in cases:
            with self.assertRaises(StunDecodeError) as caught:
                cls.decodeValue(bytes.fromhex(value), b"")
            self.assertIn(reason, str(caught.exception))


class OtherAttributeTests(SynchronousTestCase):
    """
    The layouts of the remaining attributes.
    """

    def test_layouts(self):
        """
        Each attribute encodes to the layout its RFC section draws.
        """
        cases = [
            (ChannelNumber(0x4001), "40010000"),
            (Lifetime(600), "00000258"),
            (RequestedTransport(17), "11000000"),
            (RequestedAddressFamily(2), "02000000"),
            (AdditionalAddressFamily(2), "02000000"),
            (EvenPort(True), "80"),
            (EvenPort(False), "00"),
            (DontFragment(), ""),
            (UseCandidate(), ""),
            (ReservationToken(b"12345678"), "3132333435363738"),
            (Icmp(3, 4, 1400), "0000030400000578"),
            (ConnectionId(0xDEADBEEF), "deadbeef"),
            (Priority(0x6E0001FF), "6e0001ff"),
            (IceControlled(0x932FF9B151263B36), "932ff9b151263b36"),
            (IceControlling(1), "0000000000000001"),
            (Fingerprint(0xE57A3BCF), "e57a3bcf"),
            (UnknownAttributes((0x7FFE, 0x0031)), "7ffe0031"),
            (Data(b"\x00\x01\x02"), "000102"),
        ]
        for attribute, value in cases:
            self.assertEqual(attribute.encodeValue(VECTOR_TRANSACTION_ID).hex(), value)

    def test_reservedBitsIgnored(self):
        """
        Reserved (RFFU) bits and bytes are ignored on reception.
        """
        self.assertEqual(ChannelNumber.decodeValue(b"\x40\x01\xff\xff", b""), ChannelNumber(0x4001))
        self.assertEqual(
            RequestedTransport.decodeValue(b"\x11\xff\xff\xff", b""), RequestedTransport(17)
        )
        self.assertEqual(EvenPort.decodeValue(b"\x7f", b""), EvenPort(False))
        self.assertEqual(EvenPort.decodeValue(b"\xff", b""), EvenPort(True))
        self.assertEqual(Icmp.decodeValue(b"\xff\xff\x03\x04\x00\x00\x05\x78", b""),
                         Icmp(3, 4, 1400))

    def test_anyFamilyCode(self):
        """
        REQUESTED-ADDRESS-FAMILY and ADDITIONAL-ADDRESS-FAMILY decode any family code, so the
        server can answer an unsupported one with 440 rather than 400.
        """
        for cls in (RequestedAddressFamily, AdditionalAddressFamily):
            self.assertEqual(cls.decodeValue(b"\x03\xff\x00\x00", b""), cls(3))

    def test_messageIntegritySha256Lengths(self):
        """
        MESSAGE-INTEGRITY-SHA256 accepts 16 to 32 bytes in steps of 4 only.
        """
        for size in range(0, 40):
            if size in (16, 20, 24, 28, 32):
                self.assertEqual(
                    MessageIntegritySha256.decodeValue(b"m" * size, b""),
                    MessageIntegritySha256(b"m" * size),
                )
            else:
                self.assertRaises(
                    StunDecodeError, MessageIntegritySha256.decodeValue, b"m" * size, b""
                )

    def test_unknownAttributesOddLength(self):
        """
        UNKNOWN-ATTRIBUTES must hold whole 16-bit types.
        """
        with self.assertRaises(StunDecodeError) as caught:
            UnknownAttributes.decodeValue(b"\x00\x01\x00", b"")
        self.assertIn("3 bytes is not a whole number of 16-bit types", str(caught.exception))
