# -*- test-case-name: tests.test_auth -*-
"""
Credentials for the STUN long-term credential mechanism (RFC 8489 section 9.2).

Three pieces, none of which does I/O or reads a clock (time is passed in as C{now}, float
seconds since the epoch):

  - L{longTermKey} and the TURN REST API helpers L{restPassword} and L{restCredentials};
  - L{Authenticator}, which maps a USERNAME (or USERHASH) to the candidate HMAC keys of static
    users and of REST usernames signed with a shared secret;
  - L{NonceManager}, which issues and checks stateless nonces: an HMAC of the client address and
    the issue time, so that no state is kept for a source before it proves MESSAGE-INTEGRITY and
    every process holding the same secret accepts the others' nonces.

Decisions (password preparation, security feature bit numbering) are explained in
C{docs/security.md}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import stringprep
import unicodedata
from enum import IntEnum
from typing import Dict, Iterable, List, Optional, Tuple, Union

__all__ = [
    "FEATURE_PASSWORD_ALGORITHMS",
    "FEATURE_USERNAME_ANONYMITY",
    "NONCE_COOKIE",
    "Authenticator",
    "NonceManager",
    "PasswordAlgorithm",
    "longTermKey",
    "parseNonceFeatures",
    "restCredentials",
    "restPassword",
]


class PasswordAlgorithm(IntEnum):
    """
    The STUN Password Algorithms registry (RFC 8489 section 18.5).
    """

    MD5 = 1
    SHA256 = 2


_HASHES = {PasswordAlgorithm.MD5: hashlib.md5, PasswordAlgorithm.SHA256: hashlib.sha256}
_KEY_ALGORITHMS = {16: PasswordAlgorithm.MD5, 32: PasswordAlgorithm.SHA256}

NONCE_COOKIE = "obMatJos2"

# RFC 8489 section 18.1 numbers the 24 bits of the security feature set; the IANA registry note
# (and libjuice) count from the least significant bit. docs/security.md has the reasoning.
FEATURE_PASSWORD_ALGORITHMS = 1 << 0
FEATURE_USERNAME_ANONYMITY = 1 << 1

# A REST username's expiry: decimal digits only (int() would also take "+1", " 1", "1_0" and
# non-ASCII digits), and few enough of them that int() never refuses the string.
_REST_TIMESTAMP = re.compile(r"[0-9]{1,20}")


def _prep(text: str) -> str:
    """
    Prepare a password or realm the way SASLprep (RFC 4013) maps it: drop the characters
    "commonly mapped to nothing" (RFC 3454 table B.1, such as U+00AD), map non-ASCII spaces to
    U+0020, then normalise to NFKC. This is what reproduces the RFC 5769 and RFC 8489 test
    vectors; see C{docs/security.md} for how it relates to RFC 8265 OpaqueString.
    """
    if text.isascii():
        # Neither table holds an ASCII character and NFKC leaves ASCII alone.
        return text
    mapped = "".join(
        " " if stringprep.in_table_c12(c) else c for c in text if not stringprep.in_table_b1(c)
    )
    return unicodedata.normalize("NFKC", mapped)


def longTermKey(
    username: str, realm: str, password: str, algorithm: Union[PasswordAlgorithm, int]
) -> bytes:
    """
    Compute the long-term credential key (RFC 8489 section 9.2.2): the MD5 or SHA-256 digest of
    C{username:realm:password} in UTF-8, with the realm and password prepared first. The
    username is used as it appears in USERNAME (the client already prepared it).

    @param algorithm: a L{PasswordAlgorithm} value.
    @return: 16 bytes for MD5, 32 for SHA-256.
    @raise ValueError: C{algorithm} is not a known password algorithm, or a string cannot be
        encoded as UTF-8 (a lone surrogate).
    """
    digest = _HASHES[PasswordAlgorithm(algorithm)]
    return digest(f"{username}:{_prep(realm)}:{_prep(password)}".encode("utf-8")).digest()


def _userhash(username: str, realm: str) -> bytes:
    """
    USERHASH (RFC 8489 section 14.4): SHA-256 of the prepared C{username:realm}.
    """
    return hashlib.sha256(f"{_prep(username)}:{_prep(realm)}".encode("utf-8")).digest()


def _asBytes(secret: Union[str, bytes]) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else secret


def restPassword(secret: Union[str, bytes], username: str) -> str:
    """
    The TURN REST API password for C{username}: base64 (standard alphabet, with padding) of
    HMAC-SHA1 keyed with the shared secret over the username.

    @param secret: the shared secret (coturn's C{static-auth-secret}); a C{str} is used as UTF-8.
    """
    mac = hmac.new(_asBytes(secret), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(mac).decode("ascii")


def restCredentials(
    secret: Union[str, bytes],
    user: Optional[str],
    ttl: float,
    now: float,
    separator: str = ":",
) -> Tuple[str, str]:
    """
    Make TURN REST API credentials valid for C{ttl} seconds from C{now}, for an application that
    hands them out to its clients.

    @param user: the application's user id, or L{None} / C{""} for a username that is only the
        expiry timestamp.
    @return: C{(username, password)}, where C{username} is C{"<expiry><separator><user>"}.
    """
    expiry = str(int(now + ttl))
    username = f"{expiry}{separator}{user}" if user else expiry
    return username, restPassword(secret, username)


class Authenticator:
    """
    Find the candidate HMAC keys for a USERNAME.

    Static users have their keys computed once, so a lookup is a dict access. A username that is
    not a static user is tried as a TURN REST API username when shared secrets are configured:
    its part before the first separator must be an integer expiry timestamp in the future, and
    each secret (several while one is being rotated) gives one candidate key.

    @ivar realm: the realm every key is computed for.
    """

    def __init__(
        self,
        realm: str,
        users: Iterable[Tuple[str, Union[str, bytes]]] = (),
        authSecrets: Iterable[Union[str, bytes]] = (),
        restSeparator: str = ":",
    ) -> None:
        """
        @param users: C{(name, secret)} pairs, see L{addUser}.
        @param authSecrets: the TURN REST API shared secrets.
        @param restSeparator: what separates the expiry from the user id in a REST username.
        @raise ValueError: an empty realm, separator or secret, or an invalid user (see
            L{addUser}).
        """
        if not realm:
            raise ValueError("the realm must not be empty")
        if not restSeparator:
            raise ValueError("the REST API username separator must not be empty")
        self.realm = realm
        self._restSeparator = restSeparator
        self._authSecrets = tuple(_asBytes(secret) for secret in authSecrets)
        if not all(self._authSecrets):
            raise ValueError("a REST API shared secret must not be empty")
        self._keys: Dict[str, Dict[int, bytes]] = {}
        self._userhashes: Dict[bytes, str] = {}
        for name, secret in users:
            self.addUser(name, secret)

    def addUser(self, name: str, password: Union[str, bytes]) -> None:
        """
        Add a static user, or replace the credentials of an existing one.

        @param password: a C{str} password (keys for every algorithm are derived from it) or a
            C{bytes} key (coturn's C{name:0xHEXKEY} form): 16 bytes are an MD5 key, 32 bytes a
            SHA-256 key, and the user then has a key for that algorithm only.
        @raise ValueError: an empty name or password, a key of another length, or a password
            that is neither C{str} nor C{bytes}; the message names the user.
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a user name must be a non-empty string, not {name!r}")
        if isinstance(password, str):
            if not password:
                raise ValueError(f"user {name!r} has an empty password")
            keys = {
                algorithm: longTermKey(name, self.realm, password, algorithm)
                for algorithm in PasswordAlgorithm
            }
        elif isinstance(password, bytes):
            algorithm = _KEY_ALGORITHMS.get(len(password))
            if algorithm is None:
                raise ValueError(
                    f"user {name!r} has a {len(password)}-byte key; a key is 16 bytes (MD5) "
                    f"or 32 bytes (SHA-256)"
                )
            keys = {algorithm: password}
        else:
            raise ValueError(f"user {name!r} needs a str password or a bytes key")
        self._keys[name] = keys
        self._userhashes[_userhash(name, self.realm)] = name

    def removeUser(self, name: str) -> None:
        """
        Remove a static user.

        @raise KeyError: there is no such static user.
        """
        del self._keys[name]
        del self._userhashes[_userhash(name, self.realm)]

    def keysFor(
        self, username: str, algorithm: Union[PasswordAlgorithm, int], now: float
    ) -> List[bytes]:
        """
        The keys a request from C{username} may be signed with.

        @param algorithm: the L{PasswordAlgorithm} the client uses.
        @param now: the current time, to refuse expired REST usernames.
        @return: the candidate keys; empty for an unknown user, a REST username that has expired
            (its timestamp is not after C{now}) or is not one, or no key for that algorithm.
        """
        static = self._keys.get(username)
        if static is not None:
            key = static.get(algorithm)
            return [] if key is None else [key]
        if not self._authSecrets or algorithm not in _HASHES:
            return []
        timestamp = username.partition(self._restSeparator)[0]
        if not _REST_TIMESTAMP.fullmatch(timestamp) or int(timestamp) <= now:
            return []
        return [
            longTermKey(username, self.realm, restPassword(secret, username), algorithm)
            for secret in self._authSecrets
        ]

    def userForHash(self, userhash: bytes) -> Optional[str]:
        """
        The static user whose USERHASH (RFC 8489 section 14.4) is C{userhash}, or L{None}.
        REST usernames cannot be found this way: the hash hides the expiry timestamp.
        """
        return self._userhashes.get(userhash)


def parseNonceFeatures(nonce: str) -> Optional[int]:
    """
    The security feature set (RFC 8489 section 9.2) a nonce advertises.

    @return: the 24-bit set (test it with L{FEATURE_PASSWORD_ALGORITHMS} and
        L{FEATURE_USERNAME_ANONYMITY}), or L{None} when the nonce does not start with the nonce
        cookie followed by four base64 characters.
    """
    if not nonce.startswith(NONCE_COOKIE):
        return None
    encoded = nonce[len(NONCE_COOKIE) : len(NONCE_COOKIE) + 4]
    try:
        raw = base64.b64decode(encoded.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        return None
    return int.from_bytes(raw, "big") if len(raw) == 3 else None


class NonceManager:
    """
    Issue and check stateless nonces.

    A nonce is the cookie C{obMatJos2}, the security feature set (4 base64 characters), the
    issue time in milliseconds (8 URL-safe base64 characters) and an HMAC-SHA256 under
    C{secret} of all that and the client's host, truncated to 96 bits (16 URL-safe base64
    characters): 37 characters, all valid in a NONCE, kept short because every 401 carries one
    to a source that has proven nothing. Nothing is stored, so a flood of unauthenticated
    requests costs no memory, and every process configured with the same secret accepts the
    nonces of the others.

    @ivar features: the security feature set advertised in every nonce.
    @cvar clockSkew: how far in the future (seconds) an issue time may be, for a fleet whose
        clocks differ slightly; a nonce from further ahead is refused as forged.
    """

    clockSkew = 5.0

    _TIME_BYTES = 6
    _MAC_BYTES = 12

    def __init__(self, secret: bytes, lifetime: float, features: int) -> None:
        """
        @param secret: the HMAC key; share it across processes that serve the same clients.
        @param lifetime: seconds after which a nonce is stale (438).
        @param features: the security feature set to advertise, a 24-bit integer.
        @raise ValueError: an empty secret, a lifetime that is not positive, or a feature set
            outside 24 bits.
        """
        if not isinstance(secret, bytes) or not secret:
            raise ValueError("the nonce secret must be non-empty bytes")
        if not lifetime > 0:
            raise ValueError(f"the nonce lifetime must be positive, not {lifetime!r}")
        if not 0 <= features < 1 << 24:
            raise ValueError(f"the security feature set is 24 bits, not {features!r}")
        self._secret = secret
        self._lifetime = lifetime
        self.features = features
        self._prefix = NONCE_COOKIE + base64.b64encode(features.to_bytes(3, "big")).decode()

    def _make(self, issuedMs: int, clientHost: str) -> str:
        stamp = issuedMs.to_bytes(self._TIME_BYTES, "big")
        message = self._prefix.encode("ascii") + stamp + clientHost.encode("utf-8")
        mac = hmac.new(self._secret, message, hashlib.sha256).digest()[: self._MAC_BYTES]
        return self._prefix + base64.urlsafe_b64encode(stamp + mac).decode("ascii")

    def issue(self, clientHost: str, now: float) -> str:
        """
        A nonce for requests from C{clientHost}, issued at C{now}.
        """
        return self._make(int(now * 1000), clientHost)

    def check(self, nonce: str, clientHost: str, now: float) -> str:
        """
        Check a nonce a request from C{clientHost} carries.

        @return: C{"ok"}; C{"stale"} when it is older than the lifetime; C{"bad"} when it is
            malformed, was not issued by a holder of this secret with this feature set for this
            host, or claims an issue time beyond the allowed clock skew.
        """
        prefixLength = len(self._prefix)
        if not nonce.isascii() or not nonce.startswith(self._prefix):
            return "bad"
        try:
            stamp = base64.urlsafe_b64decode(nonce[prefixLength : prefixLength + 8])
        except (binascii.Error, ValueError):
            return "bad"
        issuedMs = int.from_bytes(stamp, "big")
        # Rebuilding the whole nonce and comparing it also refuses any non-canonical spelling.
        expected = self._make(issuedMs, clientHost)
        if not hmac.compare_digest(nonce.encode("ascii"), expected.encode("ascii")):
            return "bad"
        age = now - issuedMs / 1000
        if age < -self.clockSkew:
            return "bad"
        return "stale" if age > self._lifetime else "ok"
