# -*- test-case-name: tests.test_auth -*-
"""
Tests for L{twisted_turn.auth}.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re

from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.auth import (
    FEATURE_PASSWORD_ALGORITHMS,
    FEATURE_USERNAME_ANONYMITY,
    Authenticator,
    NonceManager,
    PasswordAlgorithm,
    longTermKey,
    parseNonceFeatures,
    restCredentials,
    restPassword,
)

USERNAME = "\u30de\u30c8\u30ea\u30c3\u30af\u30b9"
REALM = "example.org"
RAW_PASSWORD = "The\u00adM\u00aatr\u2168"
PREPPED_PASSWORD = "TheMatrIX"

# RFC 5769 section 2.4 (see VECTORS.md): MESSAGE-INTEGRITY is the last 20 bytes and the length
# field already counts it, so the HMAC covers everything before its 4-byte attribute header.
RFC5769_LONG_TERM = bytes.fromhex(
    "000100602112a44278ad3433c6ad72c029da412e00060012e3839ee38388e383aae38383e382afe382b9"
    "00000015001c662f2f3439396b39353464364f4c33346f4c39465354767936347341"
    "0014000b6578616d706c652e6f72670000080014f67024656dd64a3e02b8e0712e85c9a28ca89666"
)

# RFC 8489 Appendix B.1 with erratum 6268: MESSAGE-INTEGRITY-SHA256 is the last 32 bytes.
RFC8489_SHA256 = bytes.fromhex(
    "000100902112a44278ad3433c6ad72c029da412e001e00204a3cf38fef6992bda952c6780417da0f"
    "24819415569e60b205c46e41407f1704001500296f624d61744a6f733241414143662f2f3439396b"
    "39353464364f4c33346f4c39465354767936347341000000"
    "0014000b6578616d706c652e6f726700001d000400020000001c0020b5c7bf005b6c52a21c51c5e8"
    "92f81924136296cb927c43149309278cc6518e65"
)
RFC8489_NONCE = "obMatJos2AAACf//499k954d6OL34oL9FSTvy64sA"
RFC8489_USERHASH = bytes.fromhex("4a3cf38fef6992bda952c6780417da0f24819415569e60b205c46e41407f1704")

# RFC 8489 section 14.10: NONCE is qdtext / quoted-pair; the nonces here use base64 characters.
NONCE_CHARACTERS = re.compile(r"[A-Za-z0-9+/_-]+")


class LongTermKeyTests(SynchronousTestCase):
    """
    Tests for L{longTermKey}.
    """

    def test_rfc5769Md5Key(self) -> None:
        """
        The RFC 5769 section 2.4 key is MD5 of the SASLprep-ed credentials, whether the password
        is given as published or already prepared, and it verifies the vector's
        MESSAGE-INTEGRITY.
        """
        expected = hashlib.md5(f"{USERNAME}:{REALM}:{PREPPED_PASSWORD}".encode()).digest()
        key = longTermKey(USERNAME, REALM, RAW_PASSWORD, PasswordAlgorithm.MD5)
        self.assertEqual(key, expected)
        self.assertEqual(longTermKey(USERNAME, REALM, PREPPED_PASSWORD, 1), expected)
        mac = hmac.new(key, RFC5769_LONG_TERM[:-24], hashlib.sha1).digest()
        self.assertEqual(mac, RFC5769_LONG_TERM[-20:])

    def test_rfc8489Sha256Key(self) -> None:
        """
        The RFC 8489 Appendix B.1 key is SHA-256 of the same credentials and verifies the
        corrected vector's MESSAGE-INTEGRITY-SHA256.
        """
        expected = hashlib.sha256(f"{USERNAME}:{REALM}:{PREPPED_PASSWORD}".encode()).digest()
        key = longTermKey(USERNAME, REALM, RAW_PASSWORD, PasswordAlgorithm.SHA256)
        self.assertEqual(key, expected)
        mac = hmac.new(key, RFC8489_SHA256[:-36], hashlib.sha256).digest()
        self.assertEqual(mac, RFC8489_SHA256[-32:])

    def test_preparation(self) -> None:
        """
        Non-ASCII spaces in the password map to U+0020, "mapped to nothing" characters are
        dropped and the result is NFKC; the realm is prepared the same way.
        """
        md5 = PasswordAlgorithm.MD5
        for realm, password, preparedRealm, preparedPassword in [
            ("r", "pass\u00a0word\u200b", "r", "pass word"),
            ("r", "\ufb01x", "r", "fix"),
            ("re\u00adalm", "p", "realm", "p"),
        ]:
            self.assertEqual(
                longTermKey("u", realm, password, md5),
                longTermKey("u", preparedRealm, preparedPassword, md5),
            )
        self.assertNotEqual(longTermKey("u", "r", "p", md5), longTermKey("u", "r", "P", md5))

    def test_unknownAlgorithm(self) -> None:
        """
        An algorithm outside the registry raises L{ValueError}.
        """
        self.assertRaises(ValueError, longTermKey, "u", "r", "p", 3)


class RestApiTests(SynchronousTestCase):
    """
    Tests for L{restPassword} and L{restCredentials}.
    """

    def test_restPassword(self) -> None:
        """
        The password is standard padded base64 of HMAC-SHA1(secret, username); a C{str} secret
        is its UTF-8 bytes.
        """
        expected = base64.b64encode(
            hmac.new(b"north", b"1700000000:alice", hashlib.sha1).digest()
        ).decode()
        self.assertEqual(restPassword(b"north", "1700000000:alice"), expected)
        self.assertEqual(restPassword("north", "1700000000:alice"), expected)
        self.assertTrue(expected.endswith("="))

    def test_restCredentials(self) -> None:
        """
        The username is the expiry (C{now + ttl}, truncated), the separator and the user id;
        without a user id it is the expiry alone.
        """
        username, password = restCredentials("s3cret", "alice", 86400, 1700000000.75)
        self.assertEqual(username, "1700086400:alice")
        self.assertEqual(password, restPassword("s3cret", username))
        self.assertEqual(restCredentials("s", "bob", 10, 100, separator="-")[0], "110-bob")
        self.assertEqual(restCredentials("s", None, 10, 100)[0], "110")
        self.assertEqual(restCredentials("s", "", 10, 100)[0], "110")


class AuthenticatorTests(SynchronousTestCase):
    """
    Tests for L{Authenticator}.
    """

    def test_staticPasswordUser(self) -> None:
        """
        A static user with a password has a precomputed key for each algorithm.
        """
        auth = Authenticator(REALM, users=[(USERNAME, RAW_PASSWORD)])
        for algorithm in PasswordAlgorithm:
            self.assertEqual(
                auth.keysFor(USERNAME, algorithm, 0),
                [longTermKey(USERNAME, REALM, PREPPED_PASSWORD, algorithm)],
            )
        self.assertEqual(auth.keysFor("someone", PasswordAlgorithm.MD5, 0), [])
        self.assertEqual(auth.keysFor(USERNAME, 3, 0), [])

    def test_hexKeys(self) -> None:
        """
        A 16-byte key is an MD5 key and a 32-byte key a SHA-256 key; such a user has no key for
        the other algorithm.
        """
        md5Key = bytes(range(16))
        shaKey = bytes(range(32))
        auth = Authenticator("r", users=[("m", md5Key), ("s", shaKey)])
        self.assertEqual(auth.keysFor("m", PasswordAlgorithm.MD5, 0), [md5Key])
        self.assertEqual(auth.keysFor("m", PasswordAlgorithm.SHA256, 0), [])
        self.assertEqual(auth.keysFor("s", PasswordAlgorithm.SHA256, 0), [shaKey])
        self.assertEqual(auth.keysFor("s", PasswordAlgorithm.MD5, 0), [])

    def test_invalidUsers(self) -> None:
        """
        A key of another length, an empty password, an empty name or a secret of another type
        raise L{ValueError} naming the user.
        """
        for name, secret in [("carol", b"\x00" * 20), ("dave", ""), ("erin", 42)]:
            error = self.assertRaises(ValueError, Authenticator, "r", [(name, secret)])
            self.assertIn(repr(name), str(error))
        self.assertRaises(ValueError, Authenticator, "r", [("", "pw")])

    def test_invalidConfiguration(self) -> None:
        """
        An empty realm, REST separator or shared secret raises L{ValueError}.
        """
        self.assertRaises(ValueError, Authenticator, "")
        self.assertRaises(ValueError, Authenticator, "r", restSeparator="")
        self.assertRaises(ValueError, Authenticator, "r", authSecrets=["ok", ""])

    def test_userForHash(self) -> None:
        """
        USERHASH finds a static user; the RFC 8489 B.1 vector's USERHASH finds its user.
        """
        auth = Authenticator(REALM, users=[(USERNAME, RAW_PASSWORD), ("bob", "pw")])
        self.assertEqual(auth.userForHash(RFC8489_USERHASH), USERNAME)
        bobHash = hashlib.sha256(f"bob:{REALM}".encode()).digest()
        self.assertEqual(auth.userForHash(bobHash), "bob")
        self.assertIsNone(auth.userForHash(b"\x00" * 32))

    def test_addAndRemoveUser(self) -> None:
        """
        L{Authenticator.addUser} adds or replaces a user and L{Authenticator.removeUser} removes
        it, keeping the USERHASH lookup in step; removing an unknown user raises L{KeyError}.
        """
        auth = Authenticator(REALM)
        userhash = hashlib.sha256(f"alice:{REALM}".encode()).digest()
        auth.addUser("alice", "one")
        auth.addUser("alice", "two")
        self.assertEqual(
            auth.keysFor("alice", PasswordAlgorithm.MD5, 0),
            [longTermKey("alice", REALM, "two", PasswordAlgorithm.MD5)],
        )
        self.assertEqual(auth.userForHash(userhash), "alice")
        auth.removeUser("alice")
        self.assertEqual(auth.keysFor("alice", PasswordAlgorithm.MD5, 0), [])
        self.assertIsNone(auth.userForHash(userhash))
        self.assertRaises(KeyError, auth.removeUser, "alice")

    def test_restUsername(self) -> None:
        """
        With a shared secret, a username starting with a future expiry has the key derived from
        its REST password, for either algorithm.
        """
        auth = Authenticator(REALM, authSecrets=["s3cret"])
        username, password = restCredentials("s3cret", "alice", 600, 1000)
        for algorithm in PasswordAlgorithm:
            self.assertEqual(
                auth.keysFor(username, algorithm, 1000),
                [longTermKey(username, REALM, password, algorithm)],
            )
        bare = longTermKey("1600", REALM, restPassword("s3cret", "1600"), PasswordAlgorithm.MD5)
        self.assertEqual(auth.keysFor("1600", PasswordAlgorithm.MD5, 1000), [bare])

    def test_restExpiryBoundary(self) -> None:
        """
        A REST username is refused once its expiry is not after C{now}.
        """
        auth = Authenticator(REALM, authSecrets=[b"s3cret"])
        self.assertEqual(len(auth.keysFor("1600:alice", PasswordAlgorithm.MD5, 1599.999)), 1)
        self.assertEqual(auth.keysFor("1600:alice", PasswordAlgorithm.MD5, 1600), [])
        self.assertEqual(auth.keysFor("1600:alice", PasswordAlgorithm.MD5, 1600.001), [])

    def test_restNotATimestamp(self) -> None:
        """
        A username whose first part is not a decimal integer is not a REST username, and no
        username is one without a shared secret or for an unknown algorithm.
        """
        auth = Authenticator(REALM, authSecrets=["s"])
        for username in [
            "alice",
            "",
            ":alice",
            "16e9:a",
            "1.7e9:a",
            "+1700000000:a",
            " 1700000000:a",
            "1_700_000_000:a",
            "\u0661\u0662\u0663",
            "9" * 5000,
        ]:
            self.assertEqual(auth.keysFor(username, PasswordAlgorithm.MD5, 0), [], username)
        self.assertEqual(auth.keysFor("1600:a", 3, 0), [])
        self.assertEqual(Authenticator(REALM).keysFor("1600:a", PasswordAlgorithm.MD5, 0), [])

    def test_restSeparator(self) -> None:
        """
        The timestamp ends at the first configured separator.
        """
        auth = Authenticator(REALM, authSecrets=["s"], restSeparator="-")
        self.assertEqual(len(auth.keysFor("1600-a:b", PasswordAlgorithm.MD5, 0)), 1)
        self.assertEqual(auth.keysFor("1600:a", PasswordAlgorithm.MD5, 0), [])

    def test_rotatedSecrets(self) -> None:
        """
        Each shared secret gives one candidate key, so credentials from the old and the new
        secret both verify while a secret is rotated.
        """
        auth = Authenticator(REALM, authSecrets=["old", "new"])
        username = "1600:alice"
        self.assertEqual(
            auth.keysFor(username, PasswordAlgorithm.SHA256, 0),
            [
                longTermKey(username, REALM, restPassword(secret, username), 2)
                for secret in ("old", "new")
            ],
        )

    def test_staticUserTakesPrecedence(self) -> None:
        """
        A static user whose name looks like a REST username gets only its static key.
        """
        auth = Authenticator(REALM, users=[("1600:bob", "pw")], authSecrets=["s"])
        self.assertEqual(
            auth.keysFor("1600:bob", PasswordAlgorithm.MD5, 0),
            [longTermKey("1600:bob", REALM, "pw", PasswordAlgorithm.MD5)],
        )


class NonceTests(SynchronousTestCase):
    """
    Tests for L{NonceManager} and L{parseNonceFeatures}.
    """

    features = FEATURE_PASSWORD_ALGORITHMS | FEATURE_USERNAME_ANONYMITY

    def manager(self, secret: bytes = b"fleet secret", lifetime: float = 600) -> NonceManager:
        return NonceManager(secret, lifetime, self.features)

    def test_freshNonceOk(self) -> None:
        """
        A nonce checks out for the host it was issued to, and is short and made of characters
        a NONCE may hold.
        """
        nonce = self.manager().issue("192.0.2.1", 1000.25)
        self.assertEqual(self.manager().check(nonce, "192.0.2.1", 1000.25), "ok")
        self.assertLess(len(nonce), 128)
        self.assertIsNotNone(NONCE_CHARACTERS.fullmatch(nonce))
        self.assertTrue(nonce.startswith("obMatJos2"))

    def test_stale(self) -> None:
        """
        A nonce is fine for its lifetime and stale after it.
        """
        manager = self.manager(lifetime=600)
        nonce = manager.issue("192.0.2.1", 1000.5)
        self.assertEqual(manager.check(nonce, "192.0.2.1", 1600.5), "ok")
        self.assertEqual(manager.check(nonce, "192.0.2.1", 1600.502), "stale")

    def test_otherHost(self) -> None:
        """
        A nonce issued to one host is bad for another.
        """
        manager = self.manager()
        nonce = manager.issue("192.0.2.1", 1000)
        self.assertEqual(manager.check(nonce, "192.0.2.2", 1000), "bad")

    def test_sharedSecretAcrossProcesses(self) -> None:
        """
        Managers with the same secret accept each other's nonces; another secret does not.
        """
        nonce = self.manager(b"fleet").issue("2001:db8::1", 1000)
        self.assertEqual(self.manager(b"fleet").check(nonce, "2001:db8::1", 1001), "ok")
        self.assertEqual(self.manager(b"other").check(nonce, "2001:db8::1", 1001), "bad")

    def test_tampered(self) -> None:
        """
        Changing any character of a nonce, or truncating or extending it, makes it bad.
        """
        manager = self.manager()
        nonce = manager.issue("192.0.2.1", 1000)
        for i, c in enumerate(nonce):
            forged = nonce[:i] + ("B" if c == "A" else "A") + nonce[i + 1 :]
            self.assertEqual(manager.check(forged, "192.0.2.1", 1000), "bad", forged)
        for forged in [
            nonce[:-1],
            nonce + "A",
            nonce[:13],
            "",
            "obMatJos2",
            RFC8489_NONCE,
            nonce[:-1] + "\u00e9",
            nonce[:13] + "!!!!!!!!" + nonce[21:],
        ]:
            self.assertEqual(manager.check(forged, "192.0.2.1", 1000), "bad", forged)

    def test_featuresBound(self) -> None:
        """
        The feature set is covered by the MAC: a manager advertising other features refuses
        the nonce, which defeats a bid-down that rewrites the feature bits.
        """
        nonce = self.manager().issue("192.0.2.1", 1000)
        other = NonceManager(b"fleet secret", 600, FEATURE_PASSWORD_ALGORITHMS)
        self.assertEqual(other.check(nonce, "192.0.2.1", 1000), "bad")

    def test_future(self) -> None:
        """
        A nonce issued slightly in the future (clock skew within a fleet) is fine; one from
        further ahead is bad.
        """
        manager = self.manager()
        nonce = manager.issue("192.0.2.1", 1000)
        skew = NonceManager.clockSkew
        self.assertEqual(manager.check(nonce, "192.0.2.1", 1000 - skew + 0.01), "ok")
        self.assertEqual(manager.check(nonce, "192.0.2.1", 1000 - skew - 0.01), "bad")

    def test_featuresRoundTrip(self) -> None:
        """
        L{parseNonceFeatures} reads back the issued feature set.
        """
        for features in (0, FEATURE_PASSWORD_ALGORITHMS, FEATURE_USERNAME_ANONYMITY, 0xFFFFFF):
            nonce = NonceManager(b"k", 60, features).issue("h", 0)
            self.assertEqual(parseNonceFeatures(nonce), features)

    def test_rfc8489VectorFeatures(self) -> None:
        """
        The B.1 vector's "AAAC" is 0x000002, the username anonymity bit under least-significant
        bit numbering.
        """
        self.assertEqual(parseNonceFeatures(RFC8489_NONCE), FEATURE_USERNAME_ANONYMITY)
        self.assertEqual((FEATURE_PASSWORD_ALGORITHMS, FEATURE_USERNAME_ANONYMITY), (1, 2))

    def test_noCookie(self) -> None:
        """
        A nonce without the cookie, or with a malformed feature set after it, has no features.
        """
        for nonce in [
            "f//499k954d6OL34oL9FSTvy64sA",
            "",
            "obMatJos2",
            "obMatJos2AA",
            "obMatJos2AA==xyz",
            "obMatJos2!!!!abc",
            "obMatJos2\u00e9\u00e9\u00e9\u00e9",
        ]:
            self.assertIsNone(parseNonceFeatures(nonce), nonce)

    def test_invalidConfiguration(self) -> None:
        """
        An empty or non-bytes secret, a lifetime that is not positive and a feature set wider
        than 24 bits raise L{ValueError}.
        """
        self.assertRaises(ValueError, NonceManager, b"", 60, 0)
        self.assertRaises(ValueError, NonceManager, "text", 60, 0)
        self.assertRaises(ValueError, NonceManager, b"k", 0, 0)
        self.assertRaises(ValueError, NonceManager, b"k", 60, 1 << 24)
        self.assertRaises(ValueError, NonceManager, b"k", 60, -1)
