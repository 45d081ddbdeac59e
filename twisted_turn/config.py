# -*- test-case-name: tests.test_config -*-
"""
Option definitions shared by the command line and C{turnserver.conf}.

Every option has coturn's name. L{TurnConfig} is the one typed representation of a server's
configuration; the command line, the config file and the embedding API all produce one, through
the same validation:

  - L{OPTIONS} is the table of every option: name, short letter, kind, the L{TurnConfig} field it
    sets, help text, and whether it is served yet;
  - L{parseConfigFile} turns the text of a C{turnserver.conf} into C{(key, value, lineNumber)}
    triples;
  - L{configFromPairs} turns such triples (file first, then the command line, so the command line
    wins) into a L{TurnConfig};
  - L{makeConfig} does the same from keyword arguments named like the L{TurnConfig} fields.

Bad input raises L{ConfigError} only, naming the option (and the file line).
"""

from __future__ import annotations

import dataclasses
import functools
import ipaddress
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, Iterable, List, Mapping, Optional, Tuple, Union

__all__ = [
    "OPTIONS",
    "OPTIONS_BY_NAME",
    "ConfigError",
    "Option",
    "TurnConfig",
    "configFromPairs",
    "makeConfig",
    "optionName",
    "parseConfigFile",
]


@dataclass(frozen=True)
class TurnConfig:
    """
    A validated server configuration. Field names are the coturn option names in camelCase;
    repeatable options are tuples.

    @ivar users: C{(name, secret)} pairs; C{secret} is a C{str} password or C{bytes} key
        (coturn's C{name:0xHEXKEY} form, the MD5 or SHA-256 long-term key).
    @ivar externalIps: C{(public, private)} pairs, C{private} may be L{None}.
    """

    listeningPort: int = 3478
    listeningIps: Tuple[str, ...] = ()
    relayIps: Tuple[str, ...] = ()
    externalIps: Tuple[Tuple[str, Optional[str]], ...] = ()
    minPort: int = 49152
    maxPort: int = 65535
    realm: str = "twisted-turn"
    users: Tuple[Tuple[str, object], ...] = ()
    ltCredMech: bool = False
    useAuthSecret: bool = False
    staticAuthSecrets: Tuple[str, ...] = ()
    restApiSeparator: str = ":"
    noAuth: bool = False
    nonceSecret: Optional[bytes] = None
    staleNonce: int = 600
    fingerprint: bool = False
    softwareAttribute: bool = False
    allowLoopbackPeers: bool = False
    noMulticastPeers: bool = False
    allowedPeerIps: Tuple[str, ...] = ()
    deniedPeerIps: Tuple[str, ...] = ()
    maxAllocateLifetime: int = 3600
    channelLifetime: int = 600
    permissionLifetime: int = 300
    userQuota: int = 0
    totalQuota: int = 0
    unauthorizedRatelimit: bool = True
    unauthorizedRatelimitRps: int = 10
    unauthorizedRatelimitBurst: int = 0
    userAuthFailuresPerMinute: int = 60
    maxBps: int = 0
    bpsCapacity: int = 0
    alternateServers: Tuple[Tuple[str, int], ...] = ()
    tlsAlternateServers: Tuple[Tuple[str, int], ...] = ()
    drainMinAllocations: int = 0
    drainTimeout: int = 0
    noUdp: bool = False
    noTcp: bool = False
    noTls: bool = False
    noDtls: bool = False
    tlsListeningPort: int = 5349
    cert: Optional[str] = None
    pkey: Optional[str] = None
    pkeyPwd: Optional[str] = None
    cipherList: Optional[str] = None
    noTlsv12: bool = False
    tcpRelay: bool = False
    udpRecvmmsg: Optional[bool] = None
    udpSendmmsg: Optional[bool] = None
    udpGso: Optional[bool] = None
    udpBatchSize: int = 64
    sockBufSize: int = 2097152
    prometheus: bool = False
    prometheusPort: int = 9641
    prometheusAddress: str = "0.0.0.0"
    prometheusPath: str = "/metrics"
    prometheusUsernameLabels: bool = False
    webAdmin: bool = False
    webAdminIp: str = "127.0.0.1"
    webAdminPort: int = 8080
    cliPassword: Optional[str] = None
    logFile: Optional[str] = None
    verbose: bool = False
    noLogAddresses: bool = False
    logFormat: str = "text"
    pidfile: Optional[str] = None
    notImplemented: Tuple[str, ...] = field(default=())


class ConfigError(ValueError):
    """
    An option has a bad value, is unknown, or contradicts another option.

    @ivar option: the option's coturn name (without dashes), or the unknown key as given.
    @ivar reason: what is wrong with it.
    @ivar lineNumber: the line of the config file it came from, or L{None} (command line,
        keyword argument, or a check across options).
    @ivar filename: the config file's name, used in the message when C{lineNumber} is set.
    """

    def __init__(
        self,
        option: str,
        reason: str,
        lineNumber: Optional[int] = None,
        filename: str = "turnserver.conf",
    ) -> None:
        super().__init__(option, reason, lineNumber, filename)
        self.option = option
        self.reason = reason
        self.lineNumber = lineNumber
        self.filename = filename

    def __str__(self) -> str:
        if self.lineNumber is not None:
            return f"{self.filename} line {self.lineNumber}: {self.option}: {self.reason}"
        # Known options are written as on the command line; anything else (an unknown keyword
        # argument of makeConfig) as given.
        if self.option in OPTIONS_BY_NAME:
            return f"--{self.option}: {self.reason}"
        return f"{self.option}: {self.reason}"


_TRUE = frozenset(["1", "true", "yes", "on", "t", "y"])
_FALSE = frozenset(["0", "false", "no", "off", "f", "n"])


def _parseBool(value: object) -> bool:
    # A bare flag (None, or "flag=" in the file) means true, as in coturn.
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        word = value.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(f"{value} is not a boolean (true/false, yes/no, on/off, 1/0)")


def _address(value: object) -> str:
    """
    An IPv4 or IPv6 literal, in its canonical spelling.
    """
    if isinstance(value, str) and "%" in value:
        raise ValueError(f"{value} has a zone index; scoped addresses are not supported")
    if isinstance(value, (str, ipaddress.IPv4Address, ipaddress.IPv6Address)):
        try:
            return str(ipaddress.ip_address(value.strip() if isinstance(value, str) else value))
        except ValueError:
            pass
    raise ValueError(f"{value} is not an IPv4 or IPv6 address")


def _specificAddress(value: object) -> str:
    """
    An address a relay can bind and a client can be told about: not 0.0.0.0 or ::.
    """
    address = _address(value)
    if ipaddress.ip_address(address).is_unspecified:
        raise ValueError(f"{address} is the wildcard address; give this host's own address")
    return address


def _externalIp(value: object) -> Tuple[str, Optional[str]]:
    """
    coturn's C{public} or C{public/private}, or an already split C{(public, private)} pair.
    """
    if isinstance(value, str):
        public, slash, private = value.partition("/")
        pair: Tuple[object, object] = (public, private if slash else None)
    elif isinstance(value, tuple) and len(value) == 2:
        pair = value
    else:
        raise ValueError(f"{value} is not an address or a public/private address pair")
    publicAddress = _specificAddress(pair[0])
    if pair[1] is None:
        return (publicAddress, None)
    privateAddress = _specificAddress(pair[1])
    if ipaddress.ip_address(publicAddress).version != ipaddress.ip_address(privateAddress).version:
        raise ValueError(f"{publicAddress} and {privateAddress} are not of the same family")
    return (publicAddress, privateAddress)


_KEY_SIZES = (16, 32)


def _user(value: object) -> Tuple[str, Union[str, bytes]]:
    """
    coturn's C{name:password} or C{name:0xHEXKEY}, or a C{(name, password or key)} pair.

    Messages name the user but never echo a password or key.
    """
    if isinstance(value, str):
        name, colon, secret = value.partition(":")
        if not colon:
            raise ValueError("expected name:password or name:0xKEY")
        typed: object = secret
        if secret.startswith("0x"):
            try:
                typed = bytes.fromhex(secret[2:])
            except ValueError:
                raise ValueError(f"the key of user {name!r} is not hexadecimal") from None
    elif isinstance(value, tuple) and len(value) == 2 and isinstance(value[0], str):
        name, typed = value
    else:
        raise ValueError("expected name:password, name:0xKEY or a (name, secret) pair")
    if not name:
        raise ValueError("the user name is empty")
    if isinstance(typed, bytes):
        if len(typed) not in _KEY_SIZES:
            raise ValueError(
                f"the key of user {name!r} is {len(typed)} bytes; a long-term key is "
                "16 (MD5) or 32 (SHA-256) bytes"
            )
        return (name, typed)
    if not isinstance(typed, str):
        raise ValueError(f"the password of user {name!r} is neither str nor bytes")
    if not typed:
        raise ValueError(f"user {name!r} has an empty password")
    return (name, typed)


def _addressRange(value: object) -> str:
    """
    A single address, C{low-high}, or CIDR with the host bits clear (as L{twisted_turn.policy}
    takes them). Returned as given, stripped.
    """
    if not isinstance(value, str):
        raise ValueError(f"{value} is not an address range")
    text = value.strip()
    try:
        if "/" in text:
            ipaddress.ip_network(text)
        else:
            low, dash, high = text.partition("-")
            lowAddress = ipaddress.ip_address(low.strip())
            if dash:
                highAddress = ipaddress.ip_address(high.strip())
                if lowAddress.version != highAddress.version:
                    raise ValueError("mixes IPv4 and IPv6")
                if highAddress < lowAddress:  # type: ignore[operator]
                    raise ValueError("ends before it starts")
    except ValueError as e:
        raise ValueError(
            f"{text} is not an address, a low-high range or a CIDR network ({e})"
        ) from None
    return text


# RFC 8489 section 14.9: REALM is fewer than 128 characters.
_MAX_REALM = 127


def _realm(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value} is not text")
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in value):
        raise ValueError("contains a control character")
    if len(value) > _MAX_REALM:
        raise ValueError(f"is {len(value)} characters; STUN allows at most {_MAX_REALM}")
    return value


def _path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or any(
        ord(c) <= 0x20 or c in "?#" for c in value
    ):
        raise ValueError(f"{value} is not an absolute URL path such as /metrics")
    return value


def _logFormat(value: object) -> str:
    if value not in ("text", "json"):
        raise ValueError(f"{value} is not a log format: text or json")
    return value  # type: ignore[return-value]


def _hostPort(value: object, defaultPort: int) -> Tuple[str, int]:
    """
    coturn's C{ip[:port]}, IPv6 in brackets when a port follows (C{[2001:db8::1]:3478}), or a
    C{(host, port)} pair.
    """
    if isinstance(value, tuple) and len(value) == 2:
        host, port = value
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            host, bracket, rest = text[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"{value} is not [IPv6]:port")
            port = rest[1:] or defaultPort
        elif text.count(":") == 1:
            host, _, port = text.partition(":")
        else:
            host, port = text, defaultPort
    else:
        raise ValueError(f"{value} is not an address with an optional port")
    try:
        number = int(port)
    except (TypeError, ValueError):
        raise ValueError(f"{port} is not a port number") from None
    if not 0 < number < 65536:
        raise ValueError(f"{number} is not a port number (1-65535)")
    return _specificAddress(host), number


def _alternateServer(value: object) -> Tuple[str, int]:
    return _hostPort(value, 3478)


def _tlsAlternateServer(value: object) -> Tuple[str, int]:
    return _hostPort(value, 5349)


def _separator(value: object) -> str:
    if not isinstance(value, str) or len(value) != 1:
        raise ValueError(f"{value} is not a single character")
    return value


def _nonceSecret(value: object) -> bytes:
    """
    C{0x} followed by hex digits, other text (its UTF-8 bytes), or C{bytes}.
    """
    if isinstance(value, bytes):
        secret = value
    elif isinstance(value, str) and value.startswith("0x"):
        try:
            secret = bytes.fromhex(value[2:])
        except ValueError:
            raise ValueError("the 0x form is not hexadecimal") from None
    elif isinstance(value, str):
        secret = value.encode("utf-8")
    else:
        raise ValueError("expected text, 0xHEX or bytes")
    if not secret:
        raise ValueError("must not be empty")
    return secret


@dataclass(frozen=True)
class Option:
    """
    One option of the command line and of C{turnserver.conf}.

    @ivar name: coturn's long name (C{--name} on the command line, C{name} in the file).
    @ivar short: coturn's one-letter form, or L{None}.
    @ivar kind: C{"flag"} (bare means true; an explicit true/false/yes/no/on/off/1/0 value is
        accepted), C{"int"} (bounded by C{minimum} and C{maximum}) or C{"str"}.
    @ivar field: the L{TurnConfig} field it sets, or L{None} when it is only recognised.
    @ivar help: one line for C{--help} and the docs.
    @ivar served: C{False} for options that are recognised (an existing coturn config still
        runs) but not implemented yet: giving one records its name in
        L{TurnConfig.notImplemented} so the service warns.
    @ivar repeatable: every occurrence adds to a tuple instead of replacing the value.
    @ivar parse: for C{"str"} options, converts and validates a value (raises L{ValueError}
        with the reason); without it any non-empty text is taken.
    @ivar inverted: a flag that sets C{field} to the opposite (coturn's C{no-...} spellings).
    @ivar valueOptional: an C{"int"} option that may be given bare, meaning the field's
        default (coturn's C{stale-nonce} and lifetimes).
    """

    name: str
    short: Optional[str]
    kind: str
    field: Optional[str]
    help: str
    served: bool = True
    repeatable: bool = False
    minimum: Optional[int] = None
    maximum: Optional[int] = None
    parse: Optional[Callable[[object], object]] = None
    inverted: bool = False
    valueOptional: bool = False

    def describeValue(self) -> str:
        """
        @return: what an C{"int"} option takes, for error messages.
        """
        if (self.minimum, self.maximum) == (1, 65535):
            return "a port number (1-65535)"
        if (self.minimum, self.maximum) == (0, 65535):
            return "a port number (1-65535, or 0 for the default)"
        if self.maximum is not None:
            return f"an integer from {self.minimum} to {self.maximum}"
        if self.minimum == 1:
            return "a positive integer"
        return "an integer >= 0"

    def convert(self, value: object) -> object:
        """
        Turn a value as given (C{str}, L{None} when bare, or already typed) into the field's type.

        @raise ValueError: the value is not valid; the message is the reason.
        """
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                # Undecodable command-line bytes arrive as lone surrogates.
                raise ValueError("is not valid UTF-8 (check the shell's locale)") from None
        if self.kind == "flag":
            return _parseBool(value) != self.inverted
        if value is None or value == "":
            if self.valueOptional:
                return _DEFAULTS.get(self.field)
            raise ValueError("needs a value")
        if self.kind == "int":
            return self._convertInt(value)
        if self.parse is not None:
            return self.parse(value)
        if not isinstance(value, str):
            raise ValueError(f"{value} is not text")
        return value

    def _convertInt(self, value: object) -> int:
        number: Optional[int] = None
        # bool is an int subclass; True is not a port number.
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        elif isinstance(value, str):
            try:
                number = int(value.strip(), 10)
            except ValueError:
                pass
        if (
            number is None
            or (self.minimum is not None and number < self.minimum)
            or (self.maximum is not None and number > self.maximum)
        ):
            raise ValueError(f"{value} is not {self.describeValue()}")
        return number


_DEFAULTS: Dict[Optional[str], object] = {
    f.name: f.default for f in dataclasses.fields(TurnConfig)
}


# Recognised now, served in a later issue (or never): the option is accepted and warned about.
_later = functools.partial(Option, served=False)


_PORT = {"minimum": 1, "maximum": 65535}
_ALT_PORT = {"minimum": 0, "maximum": 65535}
_POSITIVE = {"minimum": 1}
_COUNT = {"minimum": 0}
_SECONDS = {"minimum": 1, "valueOptional": True}

OPTIONS: Tuple[Option, ...] = (
    # Served now (DESIGN.md section 4), the primary spelling of each field first.
    Option("listening-port", "p", "int", "listeningPort",
           "UDP and TCP port to listen on for clients.", **_PORT),
    Option("listening-ip", "L", "str", "listeningIps",
           "Address to listen on; repeat for several. Default: 0.0.0.0 (all IPv4).",
           repeatable=True, parse=_address),
    Option("relay-ip", "E", "str", "relayIps",
           "Local address for relay sockets, one per family (IPv4, IPv6). Default: the "
           "specific --listening-ip of each family; for IPv4 otherwise the first interface "
           "address that is not loopback or link-local.", repeatable=True,
           parse=_specificAddress),
    Option("external-ip", "X", "str", "externalIps",
           "Public address behind NAT, as PUBLIC or PUBLIC/PRIVATE; repeat for several.",
           repeatable=True, parse=_externalIp),
    Option("min-port", None, "int", "minPort", "Lowest relay port.", **_PORT),
    Option("max-port", None, "int", "maxPort", "Highest relay port.", **_PORT),
    Option("realm", "r", "str", "realm", "Realm of the long-term credentials.", parse=_realm),
    Option("user", "u", "str", "users",
           "Static user as NAME:PASSWORD or NAME:0xKEY (16-byte MD5 or 32-byte SHA-256 key); "
           "repeat for several.", repeatable=True, parse=_user),
    Option("lt-cred-mech", "a", "flag", "ltCredMech",
           "Long-term credentials (the default whenever credentials are configured)."),
    Option("use-auth-secret", None, "flag", "useAuthSecret",
           "TURN REST API credentials signed with --static-auth-secret."),
    Option("static-auth-secret", None, "str", "staticAuthSecrets",
           "TURN REST API shared secret; repeat to accept several while rotating. Implies "
           "--use-auth-secret.", repeatable=True),
    Option("rest-api-separator", "C", "str", "restApiSeparator",
           "Character between expiry time and user id in REST API user names.",
           parse=_separator),
    Option("no-auth", "z", "flag", "noAuth",
           "Anonymous access: no credentials at all. Cannot be combined with credentials."),
    Option("nonce-secret", None, "str", "nonceSecret",
           "Secret for stateless nonces (0xHEX or text); give every process of a fleet the "
           "same one. Default: random per process.", parse=_nonceSecret),
    Option("stale-nonce", None, "int", "staleNonce", "Nonce lifetime in seconds.", **_SECONDS),
    Option("fingerprint", "f", "flag", "fingerprint", "Add FINGERPRINT to every response."),
    Option("software-attribute", None, "flag", "softwareAttribute",
           "Send the SOFTWARE attribute (off by default)."),
    Option("no-software-attribute", None, "flag", "softwareAttribute",
           "coturn's spelling: do not send SOFTWARE (already the default).", inverted=True),
    Option("prod", None, "flag", "softwareAttribute",
           "Old coturn spelling of --no-software-attribute.", inverted=True),
    Option("allow-loopback-peers", None, "flag", "allowLoopbackPeers",
           "Allow peers on 127.0.0.0/8 and ::1 (for tests only)."),
    Option("no-loopback-peers", None, "flag", "allowLoopbackPeers",
           "Old coturn flag: deny loopback peers (already the default).", inverted=True),
    Option("no-multicast-peers", None, "flag", "noMulticastPeers",
           "coturn's flag: deny multicast peers (denied by default here anyway)."),
    Option("allowed-peer-ip", None, "str", "allowedPeerIps",
           "Peer address, LOW-HIGH range or CIDR to allow, winning over a deny; repeatable.",
           repeatable=True, parse=_addressRange),
    Option("denied-peer-ip", None, "str", "deniedPeerIps",
           "Peer address, LOW-HIGH range or CIDR to deny, added to the defaults; repeatable.",
           repeatable=True, parse=_addressRange),
    Option("max-allocate-lifetime", None, "int", "maxAllocateLifetime",
           "Longest allocation lifetime a client may ask for, in seconds.", **_SECONDS),
    Option("channel-lifetime", None, "int", "channelLifetime",
           "Channel binding lifetime in seconds.", **_SECONDS),
    Option("permission-lifetime", None, "int", "permissionLifetime",
           "Permission lifetime in seconds.", **_SECONDS),
    Option("user-quota", "q", "int", "userQuota",
           "Most allocations per user at once; 0 for no limit.", **_COUNT),
    Option("total-quota", "Q", "int", "totalQuota",
           "Most allocations in total; 0 for no limit.", **_COUNT),
    Option("unauthorized-ratelimit", None, "flag", "unauthorizedRatelimit",
           "Rate-limit the answers sent over UDP before a request's integrity is proven "
           "(401, 438, 400, ...), per source address (IPv4, IPv6 /64); beyond the limit they "
           "are dropped unanswered. On by default here (coturn's is off)."),
    Option("no-unauthorized-ratelimit", None, "flag", "unauthorizedRatelimit",
           "Answer every unauthenticated request, however many.", inverted=True),
    Option("unauthorized-ratelimit-rps", None, "int", "unauthorizedRatelimitRps",
           "Unauthenticated answers per source address and second.", **_POSITIVE),
    Option("unauthorized-ratelimit-burst", None, "int", "unauthorizedRatelimitBurst",
           "Unauthenticated answers a source may get at once before the rate applies; 0 for "
           "the same as --unauthorized-ratelimit-rps.", **_COUNT),
    Option("user-auth-failures-per-minute", None, "int", "userAuthFailuresPerMinute",
           "Failed authentications per user name and minute (a burst of as many) before the "
           "name is checked only from addresses it authenticated from in the last day; "
           "beyond, requests are dropped unanswered. 0 for no limit.", **_COUNT),
    Option("max-bps", "s", "int", "maxBps",
           "Bandwidth limit of each allocation in bytes per second, each direction on its "
           "own (over it datagrams are dropped); 0 for none. SIGHUP applies a new value.",
           **_COUNT),
    Option("bps-capacity", "B", "int", "bpsCapacity",
           "Bandwidth in bytes per second the server hands out: each allocation reserves "
           "--max-bps of it, and Allocate gets 486 when it is used up; 0 for no limit. Needs "
           "--max-bps. SIGHUP applies a new value.", **_COUNT),
    Option("alternate-server", None, "str", "alternateServers",
           "Server to send UDP and TCP clients to with 300 ALTERNATE-SERVER, as IP[:PORT] "
           "(3478; [IPv6]:PORT), while draining or past --total-quota; repeat for several, "
           "used in turn for clients of their family.", repeatable=True,
           parse=_alternateServer),
    Option("tls-alternate-server", None, "str", "tlsAlternateServers",
           "The same for TLS and DTLS clients (port 5349 by default).", repeatable=True,
           parse=_tlsAlternateServer),
    Option("drain-min-allocations", None, "int", "drainMinAllocations",
           "Draining (SIGUSR1) ends, and the process exits, once this many allocations or "
           "fewer are left (coturn's option).", **_COUNT),
    Option("drain-timeout", None, "int", "drainTimeout",
           "Seconds after which draining ends whatever is left; 0 for no limit.", **_COUNT),
    Option("no-udp", None, "flag", "noUdp", "Do not listen for clients over UDP."),
    Option("no-tcp", None, "flag", "noTcp", "Do not listen for clients over TCP."),
    Option("no-tls", None, "flag", "noTls", "Do not listen for clients over TLS."),
    Option("no-dtls", None, "flag", "noDtls", "Do not listen for clients over DTLS."),
    Option("tls-listening-port", None, "int", "tlsListeningPort",
           "TLS (TCP) and DTLS (UDP) port to listen on for clients; they need --cert.", **_PORT),
    Option("cert", None, "str", "cert",
           "Certificate chain file (PEM, the server's certificate first) for TLS and DTLS. "
           "SIGHUP reloads it."),
    Option("pkey", None, "str", "pkey",
           "Private key file (PEM) of --cert. Default: the --cert file itself."),
    Option("pkey-pwd", None, "str", "pkeyPwd", "Password of an encrypted --pkey."),
    Option("cipher-list", None, "str", "cipherList",
           "OpenSSL cipher list for TLS 1.2 and DTLS 1.2 (default: ECDHE with AES-GCM or "
           "ChaCha20-Poly1305). TLS 1.3 suites are OpenSSL's."),
    Option("no-tlsv1_2", None, "flag", "noTlsv12", "Refuse TLS 1.2: TLS 1.3 only."),
    Option("tcp-relay", None, "flag", "tcpRelay",
           "Allow TCP relay allocations (RFC 6062) for clients over TCP and TLS. Off by "
           "default: a TCP relay reaches any TCP service the peer policy allows."),
    Option("no-tcp-relay", None, "flag", "tcpRelay",
           "coturn's flag: refuse TCP relay allocations (already the default).", inverted=True),
    Option("no-tlsv1", None, "flag", None, "coturn's flag: TLS 1.0 is always refused here."),
    Option("no-tlsv1_1", None, "flag", None, "coturn's flag: TLS 1.1 is always refused here."),
    Option("no-sslv2", None, "flag", None, "Removed from coturn: SSLv2 is never offered."),
    Option("no-sslv3", None, "flag", None, "Removed from coturn: SSLv3 is never offered."),
    Option("udp-recvmmsg", None, "flag", "udpRecvmmsg",
           "Receive UDP in batches with recvmmsg (default: on where the native module is "
           "built; --udp-recvmmsg=false turns it off)."),
    Option("udp-sendmmsg", None, "flag", "udpSendmmsg",
           "Queue UDP writes made while a batch is delivered and flush them with sendmmsg "
           "(default: on where the native module is built)."),
    Option("udp-gso", None, "flag", "udpGso",
           "Flush runs of equal-size datagrams to one destination as one UDP GSO send "
           "(default: on with --udp-sendmmsg; needs it)."),
    Option("udp-batch-size", None, "int", "udpBatchSize",
           "Datagrams per recvmmsg call.", minimum=1, maximum=1024),
    Option("sock-buf-size", None, "int", "sockBufSize",
           "Receive and send buffer of every UDP socket (listeners, relays, DTLS), in bytes; "
           "0 for the kernel's default. Past net.core.rmem_max/wmem_max only with "
           "CAP_NET_ADMIN.", **_COUNT),
    Option("prometheus", None, "flag", "prometheus",
           "Serve Prometheus metrics over HTTP (needs prometheus_client: pip install "
           "'twisted-turn[metrics]')."),
    Option("prometheus-port", None, "int", "prometheusPort",
           "Port of the metrics endpoint.", **_PORT, valueOptional=True),
    Option("prometheus-address", None, "str", "prometheusAddress",
           "Address of the metrics endpoint (all interfaces by default, as coturn's).",
           parse=_address),
    Option("prometheus-path", None, "str", "prometheusPath",
           "Path of the metrics endpoint.", parse=_path),
    Option("prometheus-username-labels", None, "flag", "prometheusUsernameLabels",
           "Label traffic and allocations with user names: one series per user, which grows "
           "with them (REST API user names are new every time)."),
    Option("web-admin", None, "flag", "webAdmin",
           "Serve the admin API and the live status page (docs/operations.md); needs "
           "--cli-password, and --cert off loopback."),
    Option("web-admin-ip", None, "str", "webAdminIp",
           "Address of the admin API; off loopback it is served over TLS only.",
           parse=_address),
    Option("web-admin-port", None, "int", "webAdminPort", "Port of the admin API.", **_PORT),
    Option("cli-password", None, "str", "cliPassword",
           "The admin API's password (HTTP Basic, any user name), as coturn's for its CLI."),
    Option("log-file", "l", "str", "logFile", "Write the log to this file."),
    Option("verbose", "v", "flag", "verbose", "Log at debug level."),
    Option("log-format", None, "str", "logFormat",
           "text, or json: twisted.logger's JSON, one event a line, for log shippers (on "
           "standard output under twistd, instead of twistd's text; and in --log-file).",
           parse=_logFormat),
    Option("no-log-addresses", None, "flag", "noLogAddresses",
           "Leave client and peer addresses out of the refusals logged at info, for operators "
           "who must not keep them."),
    Option("Verbose", "V", "flag", "verbose", "coturn's extra verbose: the same as --verbose."),
    Option("pidfile", None, "str", "pidfile", "Write the process id to this file."),
    # Recognised with a TurnConfig field, served in a later issue.
    # Recognised only, so that an existing coturn configuration runs; each warns when given.
    _later("listening-device", "d", "str", None, "Listen on this network device only."),
    _later("relay-device", "i", "str", None, "Relay through this network device only."),
    _later("alt-listening-port", None, "int", None,
           "Alternative port for RFC 5780 NAT behaviour discovery.", **_ALT_PORT),
    _later("alt-tls-listening-port", None, "int", None,
           "Alternative TLS port for RFC 5780.", **_ALT_PORT),
    _later("tcp-proxy-port", None, "int", None, "Port for TCP behind a proxy.", **_PORT),
    _later("aux-server", None, "str", None, "Auxiliary listening endpoint.", repeatable=True),
    _later("udp-self-balance", None, "flag", None, "Balance UDP over the auxiliary servers."),
    _later("relay-threads", "m", "int", None, "Number of relay threads.", **_COUNT),
    _later("no-udp-relay", None, "flag", None, "Refuse UDP relay allocations."),
    _later("userdb", "b", "str", None, "SQLite user database."),
    _later("db", None, "str", None, "Alias of --userdb."),
    _later("psql-userdb", "e", "str", None, "PostgreSQL user database."),
    _later("sql-userdb", None, "str", None, "Alias of --psql-userdb."),
    _later("mysql-userdb", "M", "str", None, "MySQL user database."),
    _later("mongo-userdb", "J", "str", None, "MongoDB user database."),
    _later("redis-userdb", "N", "str", None, "Redis user database."),
    _later("redis-statsdb", "O", "str", None, "Redis status and statistics database."),
    _later("secret-key-file", None, "str", None, "Key for encrypted database passwords."),
    _later("no-auth-pings", None, "flag", None, "No database pings."),
    _later("no-dynamic-ip-list", None, "flag", None, "No peer lists from the database."),
    _later("no-dynamic-realms", None, "flag", None, "No realms from the database."),
    _later("server-name", None, "str", None, "Server name for oAuth."),
    _later("oauth", None, "flag", None, "Third-party (oAuth) authorization."),
    _later("check-origin-consistency", None, "flag", None, "Check the ORIGIN attribute."),
    _later("stun-only", "S", "flag", None, "Answer STUN only, no TURN."),
    _later("no-stun", None, "flag", None, "Answer TURN only, no plain STUN."),
    _later("secure-stun", None, "flag", None, "Require credentials for Binding requests."),
    _later("raw-public-keys", None, "flag", None, "TLS raw public keys."),
    _later("CA-file", None, "str", None, "CA file for verifying client certificates."),
    _later("ec-curve-name", None, "str", None, "Curve for ECDHE."),
    _later("dh566", None, "flag", None, "566-bit DH parameters."),
    _later("dh1066", None, "flag", None, "1066-bit DH parameters."),
    _later("dh2066", None, "flag", None, "2066-bit DH parameters (old coturn)."),
    _later("dh-file", None, "str", None, "DH parameters file (PEM)."),
    _later("no-stdout-log", None, "flag", None, "Do not log to standard output."),
    _later("syslog", None, "flag", None, "Log to syslog."),
    _later("syslog-facility", None, "str", None, "Syslog facility."),
    _later("simple-log", None, "flag", None, "No log file rollover."),
    _later("new-log-timestamp", None, "flag", None, "coturn's newer log timestamp."),
    _later("new-log-timestamp-format", None, "str", None, "Log timestamp format."),
    _later("max-allocate-timeout", None, "int", None,
           "Seconds allowed for establishing an allocation.", **_POSITIVE),
    _later("proc-user", None, "str", None, "Drop privileges to this user."),
    _later("proc-group", None, "str", None, "Drop privileges to this group."),
    _later("mobility", None, "flag", None, "ICE mobility (MICE)."),
    _later("no-cli", None, "flag", None, "No telnet admin CLI."),
    _later("cli-ip", None, "str", None, "Admin CLI address."),
    _later("cli-port", None, "int", None, "Admin CLI port.", **_PORT),
    _later("cli-max-output-sessions", None, "int", None,
           "Sessions shown by the CLI ps command.", **_COUNT),
    _later("web-admin-listen-on-workers", None, "flag", None, "Web admin on the workers."),
    _later("server-relay", None, "flag", None, "No permission checks (dangerous)."),
    _later("ne", None, "int", None, "coturn network engine.", minimum=1, maximum=3),
    _later("keep-address-family", "K", "flag", None,
           "Relay in the client's address family."),
    _later("allocation-default-address-family", "A", "str", None,
           "Default relay family: ipv4, ipv6 or keep."),
    _later("acme-redirect", None, "str", None, "Redirect ACME challenges to this URL."),
    _later("log-binding", None, "flag", None, "Log Binding requests."),
    _later("no-rfc5780", None, "flag", None, "No RFC 5780 NAT behaviour discovery."),
    _later("no-stun-backward-compatibility", None, "flag", None, "No RFC 3489 STUN."),
    _later("response-origin-only-with-rfc5780", None, "flag", None,
           "RESPONSE-ORIGIN only with RFC 5780."),
    _later("respond-http-unsupported", None, "flag", None, "Answer HTTP with 400."),
    _later("daemon", "o", "flag", None, "Daemonise (twistd does that without -n)."),
    _later("no-config-file", "n", "flag", None,
           "coturn's -n: read no turnserver.conf (twisted-turn reads one only with -c)."),
    # Retired from coturn but still found in older configuration files.
    _later("sha256", None, "flag", None, "Removed from coturn: SHA-256 keys."),
    _later("sha384", None, "flag", None, "Removed from coturn: SHA-384 keys."),
    _later("sha512", None, "flag", None, "Removed from coturn: SHA-512 keys."),
    _later("secret-ts-exp-time", None, "int", None,
           "Removed from coturn: REST username lifetime.", **_COUNT),
)

OPTIONS_BY_NAME: Mapping[str, Option] = {option.name: option for option in OPTIONS}

# makeConfig's keyword arguments map to the primary spelling of each field.
_OPTION_FOR_FIELD: Dict[str, Option] = {}
for _option in OPTIONS:
    if _option.field is not None and not _option.inverted:
        _OPTION_FOR_FIELD.setdefault(_option.field, _option)
del _option


_KEY = re.compile(r"([^\s=]+)(\s*=\s*|\s+|$)")


def _stripComment(text: str) -> str:
    # A comment starts at a '#' preceded by whitespace, so '#' inside a value is kept.
    return re.split(r"\s#", text, maxsplit=1)[0].rstrip()


def parseConfigFile(
    text: str, filename: str = "turnserver.conf"
) -> List[Tuple[str, Optional[str], int]]:
    """
    Split the text of a C{turnserver.conf} into options, in coturn's syntax: C{key=value},
    C{key = value} or C{key value}; a bare C{key} for a flag; C{#} starts a comment (at the start
    of a line, or after whitespace); a value may be put in double quotes, which keep C{#} and
    surrounding spaces; a leading C{--} on a key is tolerated. Keys are not checked here.

    @param filename: used in error messages.
    @return: C{(key, value, lineNumber)} triples in file order; C{value} is L{None} for a bare
        key, and C{""} for C{key=} with nothing after it.
    @raise ConfigError: a line that is not an option, or an unterminated quote.
    """
    result: List[Tuple[str, Optional[str], int]] = []
    # Only "\n" ends a line (and a "\r" before it): str.splitlines() would also split on
    # U+2028 and others, turning the end of a comment into a setting.
    for lineNumber, line in enumerate(text.split("\n"), 1):
        line = line.removesuffix("\r")
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("--"):
            line = line[2:]
        match = _KEY.match(line)
        if match is None:
            raise ConfigError(line, "no option name before the value", lineNumber, filename)
        key, separator = match.group(1), match.group(2)
        rest = line[match.end():]
        value: Optional[str]
        if rest.startswith('"'):
            closing = rest.find('"', 1)
            if closing < 0:
                raise ConfigError(
                    key, "the quoted value has no closing quote", lineNumber, filename
                )
            if _stripComment(" " + rest[closing + 1:]):
                raise ConfigError(key, "text after the closing quote", lineNumber, filename)
            value = rest[1:closing]
        else:
            if rest.startswith("#") and separator[-1:].isspace():
                rest = ""
            value = _stripComment(rest)
            if not value and "=" not in separator:
                value = None
        result.append((key, value, lineNumber))
    return result


_Pair = Tuple[str, object, Optional[int]]


def configFromPairs(pairs: Iterable[_Pair], filename: str = "turnserver.conf") -> TurnConfig:
    """
    Build a L{TurnConfig} from options in the order given: a later value of a single-valued
    option replaces an earlier one, repeatable options accumulate, and a later C{user} with the
    same name replaces the earlier one. Pass the config file's pairs first and the command
    line's after them, so the command line wins.

    @param pairs: C{(key, value, lineNumber)} triples: C{key} an option name, C{value} a
        C{str}, L{None} for a bare option, or an already typed value; C{lineNumber} the config
        file line or L{None}.
    @param filename: the config file's name, for error messages.
    @raise ConfigError: an unknown key, a bad value, or options that contradict each other.
    """
    values: Dict[str, object] = {}
    lines: Dict[str, Optional[int]] = {}
    notImplemented: Dict[str, None] = {}
    for key, value, lineNumber in pairs:
        option = OPTIONS_BY_NAME.get(key)
        if option is None:
            raise ConfigError(key, "unknown option", lineNumber, filename)
        try:
            converted = option.convert(value)
        except ValueError as e:
            raise ConfigError(key, str(e), lineNumber, filename) from None
        lines[key] = lineNumber
        if not option.served:
            notImplemented[key] = None
        if option.field is None:
            continue
        if option.repeatable:
            values.setdefault(option.field, []).append(converted)  # type: ignore[union-attr]
        else:
            values[option.field] = converted

    def fail(option: str, reason: str) -> ConfigError:
        return ConfigError(option, reason, lines.get(option), filename)

    if "users" in values:
        values["users"] = list(dict(values["users"]).items())  # type: ignore[call-overload]
    if values.get("staticAuthSecrets"):
        values["useAuthSecret"] = True
    config = TurnConfig(
        **{name: tuple(v) if isinstance(v, list) else v for name, v in values.items()},
        notImplemented=tuple(notImplemented),
    )

    if config.minPort > config.maxPort:
        # Only reachable with max-port given, since min-port cannot exceed the default 65535.
        raise fail("max-port", f"the relay port range {config.minPort}-{config.maxPort} is empty")
    if config.useAuthSecret and not config.staticAuthSecrets:
        raise fail(
            "use-auth-secret",
            "needs at least one --static-auth-secret (secrets kept in a database are not "
            "supported)",
        )
    if config.noAuth:
        conflicts = [
            name
            for name, given in (
                ("user", config.users),
                ("lt-cred-mech", config.ltCredMech),
                ("use-auth-secret", config.useAuthSecret),
            )
            if given
        ]
        if conflicts:
            raise fail(
                "no-auth",
                "cannot be combined with "
                + ", ".join("--" + name for name in conflicts)
                + ": choose anonymous access or credentials",
            )
    if len(set(config.listeningIps)) != len(config.listeningIps):
        raise fail("listening-ip", "an address is given more than once")
    for wildcard in ("0.0.0.0", "::"):
        family = ipaddress.ip_address(wildcard).version
        others = [
            host for host in config.listeningIps
            if host != wildcard and ipaddress.ip_address(host).version == family
        ]
        if wildcard in config.listeningIps and others:
            raise fail(
                "listening-ip",
                f"{wildcard} already covers {', '.join(others)}: give either the wildcard or "
                f"specific addresses of that family",
            )
    bareFamilies = [
        ipaddress.ip_address(public).version
        for public, private in config.externalIps
        if private is None
    ]
    if len(bareFamilies) != len(set(bareFamilies)):
        raise fail(
            "external-ip",
            "more than one public address without a private one for the same family; map each "
            "as PUBLIC/PRIVATE",
        )
    if config.udpGso and config.udpSendmmsg is False:
        raise fail(
            "udp-gso",
            "needs --udp-sendmmsg: GSO is how queued datagrams are flushed, and with "
            "--udp-sendmmsg=false nothing is queued",
        )
    for name, value in (("pkey", config.pkey), ("pkey-pwd", config.pkeyPwd)):
        if value is not None and config.cert is None:
            raise fail(name, "needs --cert")
    if config.bpsCapacity and not config.maxBps:
        raise fail(
            "bps-capacity", "needs --max-bps: each allocation reserves that much of it"
        )
    if config.tlsListeningPort == config.listeningPort and config.cert is not None and not (
        (config.noTls or config.noTcp) and (config.noDtls or config.noUdp)
    ):
        raise fail(
            "tls-listening-port",
            f"is the same as --listening-port ({config.listeningPort}): TLS and DTLS need a "
            "port of their own",
        )
    return config


def optionName(fieldName: str) -> str:
    """
    The option (its primary spelling, with dashes) that sets L{TurnConfig} field
    C{fieldName}; the field name itself when no option does.
    """
    for option in OPTIONS:
        if option.field == fieldName and not option.inverted:
            return "--" + option.name
    return fieldName


def makeConfig(**fields: object) -> TurnConfig:
    """
    Build a L{TurnConfig} for embedding, validated exactly like the command line.

    Keyword arguments are L{TurnConfig} field names. Values may be typed (C{listeningPort=3478},
    C{users=[("alice", "secret")]}, C{nonceSecret=b"..."}) or strings in the command line's
    form (C{listeningPort="3478"}, C{users=["alice:secret"]}, C{externalIps=["203.0.113.7"]}).
    Repeatable fields take an iterable, or one string. L{None} leaves a field at its default.

    @raise ConfigError: an unknown keyword or a bad value, naming the coturn option.
    """
    pairs: List[_Pair] = []
    for name, value in fields.items():
        option = _OPTION_FOR_FIELD.get(name)
        if option is None:
            raise ConfigError(name, "unknown keyword argument: not a TurnConfig option field")
        if value is None:
            continue
        if not option.repeatable or isinstance(value, str):
            pairs.append((option.name, value, None))
            continue
        try:
            items = list(value)  # type: ignore[call-overload]
        except TypeError:
            raise ConfigError(option.name, f"{name} takes a list of values") from None
        pairs.extend((option.name, item, None) for item in items)
    return configFromPairs(pairs)
