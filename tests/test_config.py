# -*- test-case-name: tests.test_config -*-
"""
Tests for L{twisted_turn.config}: the option table, C{turnserver.conf} syntax, value validation
and the rules between options.
"""

from __future__ import annotations

import dataclasses

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.config import (
    OPTIONS,
    OPTIONS_BY_NAME,
    ConfigError,
    TurnConfig,
    configFromPairs,
    makeConfig,
    parseConfigFile,
)

# DESIGN.md section 4 lists these as the first set; nonce-secret and rest-api-separator are
# served too, and so are the UDP batching switches. no-tcp, no-tls, no-dtls, tls-listening-port,
# cert and pkey come with a later issue.
SERVED = (
    "listening-port listening-ip relay-ip external-ip min-port max-port realm user lt-cred-mech "
    "use-auth-secret static-auth-secret no-auth fingerprint allow-loopback-peers denied-peer-ip "
    "allowed-peer-ip no-multicast-peers max-allocate-lifetime channel-lifetime "
    "permission-lifetime stale-nonce software-attribute no-udp user-quota total-quota log-file "
    "verbose pidfile nonce-secret rest-api-separator udp-recvmmsg udp-sendmmsg udp-gso "
    "udp-batch-size no-tcp no-tls no-dtls tls-listening-port cert pkey pkey-pwd cipher-list "
    "no-tlsv1 no-tlsv1_1 no-tlsv1_2 tcp-relay no-tcp-relay"
).split()
NOT_SERVED_YET = (
    "no-udp-relay"
).split()


def fromFile(text: str, filename: str = "turnserver.conf") -> TurnConfig:
    """
    The configuration a C{turnserver.conf} with C{text} gives.
    """
    return configFromPairs(parseConfigFile(text, filename=filename), filename=filename)


class OptionTableTests(SynchronousTestCase):
    """
    L{OPTIONS} holds coturn's names, letters and the served status of each option.
    """

    def test_servedOptions(self) -> None:
        """
        Every option of the first set is served; TLS, TCP, DTLS, batching and bandwidth options
        are recognised but not served yet.
        """
        for name in SERVED:
            self.assertTrue(OPTIONS_BY_NAME[name].served, name)
        for name in NOT_SERVED_YET:
            self.assertFalse(OPTIONS_BY_NAME[name].served, name)

    def test_everyFieldHasAnOption(self) -> None:
        """
        Every L{TurnConfig} field but C{notImplemented} is set by a non-inverted option, so
        L{makeConfig} accepts it.
        """
        fields = {f.name for f in dataclasses.fields(TurnConfig)} - {"notImplemented"}
        covered = {o.field for o in OPTIONS if o.field is not None and not o.inverted}
        self.assertEqual(fields, covered)

    def test_coturnShortLetters(self) -> None:
        """
        The short letters are coturn's.
        """
        shorts = {o.short: o.name for o in OPTIONS if o.short}
        self.assertEqual(
            {letter: shorts[letter] for letter in "pLEXuravfl"},
            {
                "p": "listening-port",
                "L": "listening-ip",
                "E": "relay-ip",
                "X": "external-ip",
                "u": "user",
                "r": "realm",
                "a": "lt-cred-mech",
                "v": "verbose",
                "f": "fingerprint",
                "l": "log-file",
            },
        )

    def test_shortLettersUnique(self) -> None:
        """
        No two options share a letter, and none takes C{-c} (the config file) or C{-h} (help);
        C{-n} is coturn's "no config file", accepted so that coturn's usual Docker command
        line runs.
        """
        shorts = [o.short for o in OPTIONS if o.short]
        self.assertEqual(len(shorts), len(set(shorts)))
        self.assertFalse(set(shorts) & {"c", "h"})
        self.assertEqual(OPTIONS_BY_NAME["no-config-file"].short, "n")

    def test_namesUnique(self) -> None:
        """
        Each name appears once in the table.
        """
        self.assertEqual(len(OPTIONS), len(OPTIONS_BY_NAME))


class ParseConfigFileTests(SynchronousTestCase):
    """
    L{parseConfigFile} reads coturn's C{turnserver.conf} syntax.
    """

    def test_keyValueForms(self) -> None:
        """
        C{key=value}, C{key = value}, C{key value} and a tab all separate key and value.
        """
        text = "realm=a\nrealm = b\nrealm c\nrealm\td\n"
        self.assertEqual(
            parseConfigFile(text),
            [("realm", "a", 1), ("realm", "b", 2), ("realm", "c", 3), ("realm", "d", 4)],
        )

    def test_bareKeyAndEmptyValue(self) -> None:
        """
        A bare key has the value L{None}; C{key=} with nothing after it has C{""}.
        """
        self.assertEqual(
            parseConfigFile("fingerprint\nrealm=\n"), [("fingerprint", None, 1), ("realm", "", 2)]
        )

    def test_comments(self) -> None:
        """
        Whole-line comments (indented or not), blank lines and comments after whitespace are
        skipped; a C{#} inside a value is kept; line numbers count every line.
        """
        text = (
            "# a comment\n"
            "\n"
            "   # indented comment\n"
            "realm=example.org   # trailing comment\n"
            "user=alice:pass#word\n"
            "fingerprint # flag with a comment\n"
            "cli-password =#value\n"
        )
        self.assertEqual(
            parseConfigFile(text),
            [
                ("realm", "example.org", 4),
                ("user", "alice:pass#word", 5),
                ("fingerprint", None, 6),
                ("cli-password", "#value", 7),
            ],
        )

    def test_quotedValue(self) -> None:
        """
        Double quotes around a value are removed, and keep spaces and C{#}; a comment may
        follow the closing quote.
        """
        text = 'pidfile="/var/run/turnserver.pid"\nuser = " a:b #c "  # comment\n'
        self.assertEqual(
            parseConfigFile(text),
            [("pidfile", "/var/run/turnserver.pid", 1), ("user", " a:b #c ", 2)],
        )

    def test_unterminatedQuote(self) -> None:
        """
        A quote without its closing quote is an error naming the key and the line.
        """
        e = self.assertRaises(ConfigError, parseConfigFile, '\nrealm="example.org\n')
        self.assertEqual((e.option, e.lineNumber), ("realm", 2))
        self.assertEqual(
            str(e), "turnserver.conf line 2: realm: the quoted value has no closing quote"
        )

    def test_textAfterQuote(self) -> None:
        """
        Text after the closing quote (other than a comment) is an error.
        """
        e = self.assertRaises(ConfigError, parseConfigFile, 'realm="a" b\n')
        self.assertEqual((e.option, e.lineNumber), ("realm", 1))

    def test_noKey(self) -> None:
        """
        A line starting with C{=} has no option name: an error with its line number.
        """
        e = self.assertRaises(ConfigError, parseConfigFile, "fingerprint\n=3478\n")
        self.assertEqual(e.lineNumber, 2)

    def test_leadingDashesTolerated(self) -> None:
        """
        A key written like a command line option, C{--key=value}, is read as C{key}.
        """
        self.assertEqual(
            parseConfigFile("--listening-port=3479\n--verbose\n"),
            [("listening-port", "3479", 1), ("verbose", None, 2)],
        )

    def test_crlfLines(self) -> None:
        """
        Windows line endings are not part of the value.
        """
        self.assertEqual(
            parseConfigFile("realm=a\r\nverbose\r\n"), [("realm", "a", 1), ("verbose", None, 2)]
        )

    def test_filenameInErrors(self) -> None:
        """
        The given file name is used in messages.
        """
        e = self.assertRaises(ConfigError, parseConfigFile, 'realm="a', filename="/etc/t.conf")
        self.assertTrue(str(e).startswith("/etc/t.conf line 1: realm:"), str(e))

    @given(st.text())
    def test_anyTextRaisesOnlyConfigError(self, text: str) -> None:
        """
        Whatever the text, reading it and building a configuration either succeeds or raises
        L{ConfigError}.
        """
        try:
            fromFile(text)
        except ConfigError:
            pass


class FileErrorTests(SynchronousTestCase):
    """
    Errors from a config file name the option and the line.
    """

    def test_unknownKey(self) -> None:
        """
        An unknown key is an error naming the key and its line.
        """
        e = self.assertRaises(ConfigError, fromFile, "# x\nfingerprint\nfrobnicate=1\n")
        self.assertEqual(str(e), "turnserver.conf line 3: frobnicate: unknown option")

    def test_keysAreCaseSensitive(self) -> None:
        """
        As in coturn, C{Listening-Port} is not C{listening-port}.
        """
        e = self.assertRaises(ConfigError, fromFile, "Listening-Port=3478\n")
        self.assertEqual(e.option, "Listening-Port")

    def test_badValue(self) -> None:
        """
        A bad value names the file, the line, the option and the reason.
        """
        e = self.assertRaises(ConfigError, fromFile, "\n\nmin-port=70000\n", "/etc/turn.conf")
        self.assertEqual(
            str(e), "/etc/turn.conf line 3: min-port: 70000 is not a port number (1-65535)"
        )

    def test_missingValue(self) -> None:
        """
        An option that needs a value, given bare, is an error.
        """
        e = self.assertRaises(ConfigError, fromFile, "realm\n")
        self.assertEqual(str(e), "turnserver.conf line 1: realm: needs a value")

    def test_crossCheckNamesLine(self) -> None:
        """
        A contradiction between options names the line of the option at fault.
        """
        e = self.assertRaises(ConfigError, fromFile, "min-port=5000\nmax-port=4000\n")
        self.assertEqual((e.option, e.lineNumber), ("max-port", 2))


class FlagTests(SynchronousTestCase):
    """
    Boolean options take the bare form or an explicit value.
    """

    def test_bare(self) -> None:
        """
        A bare flag is true.
        """
        self.assertTrue(fromFile("fingerprint\n").fingerprint)
        self.assertFalse(fromFile("").fingerprint)

    def test_explicitValues(self) -> None:
        """
        true/false, yes/no, on/off and 1/0 are accepted in any case, and C{flag=} means true.
        """
        for word in ["true", "YES", "On", "1", "t", ""]:
            self.assertTrue(fromFile(f"fingerprint={word}\n").fingerprint, word)
        for word in ["false", "No", "OFF", "0", "f"]:
            self.assertFalse(fromFile(f"fingerprint={word}\n").fingerprint, word)

    def test_badValue(self) -> None:
        """
        Any other value is an error naming the option.
        """
        e = self.assertRaises(ConfigError, fromFile, "fingerprint=maybe\n")
        self.assertEqual(
            str(e),
            "turnserver.conf line 1: fingerprint: maybe is not a boolean "
            "(true/false, yes/no, on/off, 1/0)",
        )

    def test_autoSwitchesStayNone(self) -> None:
        """
        udp-recvmmsg, udp-sendmmsg and udp-gso are L{None} (auto) unless given.
        """
        config = fromFile("udp-gso=false\nudp-recvmmsg\n")
        self.assertEqual(
            (config.udpRecvmmsg, config.udpSendmmsg, config.udpGso), (True, None, False)
        )

    def test_gsoNeedsSendmmsg(self) -> None:
        """
        --udp-gso with --udp-sendmmsg=false is an error that says why; --udp-gso=false with it,
        or --udp-sendmmsg=false alone, is fine.
        """
        e = self.assertRaises(ConfigError, fromFile, "udp-gso\nudp-sendmmsg=false\n")
        self.assertEqual(e.option, "udp-gso")
        self.assertIn("needs --udp-sendmmsg", str(e))
        self.assertEqual(e.lineNumber, 1)
        self.assertFalse(fromFile("udp-gso=false\nudp-sendmmsg=false\n").udpSendmmsg)
        self.assertIsNone(fromFile("udp-sendmmsg=false\n").udpGso)

    def test_batchSizeBounds(self) -> None:
        """
        --udp-batch-size is 64 by default and takes 1 to 1024.
        """
        self.assertEqual(fromFile("").udpBatchSize, 64)
        self.assertEqual(fromFile("udp-batch-size=8\n").udpBatchSize, 8)
        for bad in ("0", "1025", "x"):
            e = self.assertRaises(ConfigError, fromFile, f"udp-batch-size={bad}\n")
            self.assertEqual(e.option, "udp-batch-size")

    def test_laterValueWins(self) -> None:
        """
        A later occurrence of a flag replaces an earlier one.
        """
        self.assertFalse(fromFile("verbose\nverbose=off\n").verbose)

    def test_invertedSpellings(self) -> None:
        """
        coturn's no-software-attribute and prod clear software-attribute, no-loopback-peers
        clears allow-loopback-peers, and Verbose is verbose.
        """
        self.assertFalse(fromFile("software-attribute\nno-software-attribute\n").softwareAttribute)
        self.assertFalse(fromFile("software-attribute\nprod\n").softwareAttribute)
        self.assertTrue(fromFile("no-software-attribute=false\n").softwareAttribute)
        self.assertFalse(
            fromFile("allow-loopback-peers\nno-loopback-peers\n").allowLoopbackPeers
        )
        self.assertTrue(fromFile("Verbose\n").verbose)


class NumberTests(SynchronousTestCase):
    """
    Ports, lifetimes and quotas are bounded integers.
    """

    def test_ports(self) -> None:
        """
        Ports are 1 to 65535.
        """
        config = fromFile("listening-port=1\nmin-port=1000\nmax-port=65535\n")
        self.assertEqual((config.listeningPort, config.minPort, config.maxPort), (1, 1000, 65535))
        for bad in ["0", "65536", "-1", "http", "12.5"]:
            e = self.assertRaises(ConfigError, makeConfig, listeningPort=bad)
            self.assertEqual(str(e), f"--listening-port: {bad} is not a port number (1-65535)")

    def test_portRange(self) -> None:
        """
        min-port must not be above max-port; equal is one port.
        """
        self.assertEqual(makeConfig(minPort=50000, maxPort=50000).minPort, 50000)
        e = self.assertRaises(ConfigError, makeConfig, minPort=60000, maxPort=50000)
        self.assertEqual(str(e), "--max-port: the relay port range 60000-50000 is empty")

    def test_lifetimesPositive(self) -> None:
        """
        Lifetimes and stale-nonce are positive numbers of seconds.
        """
        config = fromFile(
            "max-allocate-lifetime=7200\nchannel-lifetime=300\npermission-lifetime=60\n"
            "stale-nonce=30\n"
        )
        self.assertEqual(
            (
                config.maxAllocateLifetime,
                config.channelLifetime,
                config.permissionLifetime,
                config.staleNonce,
            ),
            (7200, 300, 60, 30),
        )
        for name in ["max-allocate-lifetime", "channel-lifetime", "permission-lifetime",
                     "stale-nonce"]:
            e = self.assertRaises(ConfigError, fromFile, f"{name}=0\n")
            self.assertEqual(e.reason, "0 is not a positive integer")

    def test_bareLifetimeMeansDefault(self) -> None:
        """
        As in coturn, a bare stale-nonce or lifetime means its default.
        """
        config = fromFile("stale-nonce=5\nstale-nonce\nchannel-lifetime\n")
        self.assertEqual((config.staleNonce, config.channelLifetime), (600, 600))

    def test_quotas(self) -> None:
        """
        Quotas are 0 (no limit) or more.
        """
        config = fromFile("user-quota=0\ntotal-quota=100\n")
        self.assertEqual((config.userQuota, config.totalQuota), (0, 100))
        e = self.assertRaises(ConfigError, fromFile, "user-quota=-1\n")
        self.assertEqual(e.reason, "-1 is not an integer >= 0")

    def test_unauthorizedRatelimit(self) -> None:
        """
        The 401 rate limit is on by default at 10 a second (coturn's default rate, though
        coturn's limit is off by default); coturn's flag is accepted, no-unauthorized-ratelimit
        turns it off, the rate is 1 or more and the burst 0 (the rate) or more.
        """
        config = fromFile("")
        self.assertEqual(
            (config.unauthorizedRatelimit, config.unauthorizedRatelimitRps,
             config.unauthorizedRatelimitBurst), (True, 10, 0),
        )
        self.assertTrue(fromFile("unauthorized-ratelimit\n").unauthorizedRatelimit)
        self.assertFalse(fromFile("no-unauthorized-ratelimit\n").unauthorizedRatelimit)
        config = fromFile("unauthorized-ratelimit-rps=50\nunauthorized-ratelimit-burst=200\n")
        self.assertEqual(
            (config.unauthorizedRatelimitRps, config.unauthorizedRatelimitBurst), (50, 200)
        )
        e = self.assertRaises(ConfigError, fromFile, "unauthorized-ratelimit-rps=0\n")
        self.assertEqual(
            (e.option, e.reason), ("unauthorized-ratelimit-rps", "0 is not a positive integer")
        )

    def test_userAuthFailuresPerMinute(self) -> None:
        """
        Failed authentications per user name and minute: 60 by default, 0 for no limit.
        """
        self.assertEqual(fromFile("").userAuthFailuresPerMinute, 60)
        self.assertEqual(
            fromFile("user-auth-failures-per-minute=0\n").userAuthFailuresPerMinute, 0
        )
        self.assertRaises(ConfigError, fromFile, "user-auth-failures-per-minute=-1\n")


class AddressTests(SynchronousTestCase):
    """
    Address options take IP literals.
    """

    def test_listeningAndRelayIps(self) -> None:
        """
        listening-ip and relay-ip accumulate, IPv6 in its canonical spelling.
        """
        config = fromFile(
            "listening-ip=192.0.2.1\nlistening-ip=2001:DB8:0::1\nrelay-ip=198.51.100.2\n"
        )
        self.assertEqual(config.listeningIps, ("192.0.2.1", "2001:db8::1"))
        self.assertEqual(config.relayIps, ("198.51.100.2",))

    def test_badAddress(self) -> None:
        """
        A host name or garbage is an error naming the option and the value.
        """
        e = self.assertRaises(ConfigError, makeConfig, relayIps=["turn.example.org"])
        self.assertEqual(str(e), "--relay-ip: turn.example.org is not an IPv4 or IPv6 address")
        e = self.assertRaises(ConfigError, fromFile, "listening-ip=1.2.3\n")
        self.assertEqual((e.option, e.lineNumber), ("listening-ip", 1))

    def test_wildcardRelayAndExternalRefused(self) -> None:
        """
        A relay or external address cannot be the wildcard: it would be announced to clients
        in XOR-RELAYED-ADDRESS. A wildcard listening address is fine.
        """
        e = self.assertRaises(ConfigError, makeConfig, relayIps=["0.0.0.0"])
        self.assertEqual(
            str(e), "--relay-ip: 0.0.0.0 is the wildcard address; give this host's own address"
        )
        e = self.assertRaises(ConfigError, makeConfig, externalIps=["203.0.113.7/::"])
        self.assertEqual(e.option, "external-ip")
        self.assertEqual(makeConfig(listeningIps=["::"]).listeningIps, ("::",))

    def test_duplicateListeningIp(self) -> None:
        """
        The same listening address twice is an error at configuration time, not a failure to
        bind at start.
        """
        e = self.assertRaises(ConfigError, makeConfig, listeningIps=["::1", "0:0::1"])
        self.assertEqual(str(e), "--listening-ip: an address is given more than once")

    def test_externalIp(self) -> None:
        """
        external-ip is PUBLIC or PUBLIC/PRIVATE.
        """
        config = fromFile("external-ip=203.0.113.7\nexternal-ip=203.0.113.8/10.0.0.8\n")
        self.assertEqual(
            config.externalIps, (("203.0.113.7", None), ("203.0.113.8", "10.0.0.8"))
        )

    def test_externalIpErrors(self) -> None:
        """
        A bad half, mixed families, or two bare public addresses of the same family are errors.
        """
        for bad in ["203.0.113.7/", "203.0.113.7/x", "2001:db8::1/10.0.0.1"]:
            e = self.assertRaises(ConfigError, makeConfig, externalIps=[bad])
            self.assertEqual(e.option, "external-ip")
        e = self.assertRaises(
            ConfigError, fromFile, "external-ip=203.0.113.7\nexternal-ip=203.0.113.9\n"
        )
        self.assertEqual((e.option, e.lineNumber), ("external-ip", 2))

    def test_externalIpOnePerFamily(self) -> None:
        """
        One bare public address per family is fine.
        """
        config = makeConfig(externalIps=["203.0.113.7", "2001:db8::7"])
        self.assertEqual(config.externalIps, (("203.0.113.7", None), ("2001:db8::7", None)))

    def test_peerRanges(self) -> None:
        """
        allowed-peer-ip and denied-peer-ip take an address, LOW-HIGH or CIDR, and accumulate.
        """
        config = fromFile(
            "denied-peer-ip=83.166.64.0-83.166.95.255\ndenied-peer-ip=fd00::/8\n"
            "allowed-peer-ip=83.166.68.45\n"
        )
        self.assertEqual(config.deniedPeerIps, ("83.166.64.0-83.166.95.255", "fd00::/8"))
        self.assertEqual(config.allowedPeerIps, ("83.166.68.45",))

    def test_badPeerRanges(self) -> None:
        """
        Host bits in a CIDR, a backwards range, mixed families or garbage are errors naming
        the option and the value.
        """
        for bad in ["10.0.0.1/8", "10.0.0.9-10.0.0.1", "10.0.0.1-::1", "everything"]:
            e = self.assertRaises(ConfigError, makeConfig, deniedPeerIps=[bad])
            self.assertEqual(e.option, "denied-peer-ip")
            self.assertIn(bad, e.reason)
        e = self.assertRaises(ConfigError, fromFile, "allowed-peer-ip=10.0.0.300\n")
        self.assertEqual((e.option, e.lineNumber), ("allowed-peer-ip", 1))


class CredentialTests(SynchronousTestCase):
    """
    Users, REST API secrets, the realm, the nonce secret and the rules between them.
    """

    def test_passwordUsers(self) -> None:
        """
        user=NAME:PASSWORD accumulates; the password may contain a colon.
        """
        config = fromFile("user=alice:secret\nuser=bob:a:b\n")
        self.assertEqual(config.users, (("alice", "secret"), ("bob", "a:b")))

    def test_keyUsers(self) -> None:
        """
        user=NAME:0xKEY gives the key as bytes, 16 (MD5) or 32 (SHA-256) bytes long.
        """
        md5 = "bc807ee29df3c9ffa736523fb2c4e8ee"
        config = fromFile(f"user=ninefingers:0x{md5}\nuser=sha:0x{'ab' * 32}\n")
        self.assertEqual(
            config.users, (("ninefingers", bytes.fromhex(md5)), ("sha", b"\xab" * 32))
        )

    def test_keyErrors(self) -> None:
        """
        A key of another length or that is not hex is an error naming the option and the user,
        without the key.
        """
        e = self.assertRaises(ConfigError, makeConfig, users=["carol:0x" + "11" * 20])
        self.assertEqual(
            str(e),
            "--user: the key of user 'carol' is 20 bytes; a long-term key is 16 (MD5) or "
            "32 (SHA-256) bytes",
        )
        e = self.assertRaises(ConfigError, fromFile, "user=carol:0xzz\n")
        self.assertEqual(
            str(e), "turnserver.conf line 1: user: the key of user 'carol' is not hexadecimal"
        )

    def test_userErrorsHidePasswords(self) -> None:
        """
        A malformed user entry is an error that does not repeat the password.
        """
        for bad in ["hunter2", ":hunter2", "dave:"]:
            e = self.assertRaises(ConfigError, makeConfig, users=[bad])
            self.assertEqual(e.option, "user")
            self.assertNotIn("hunter2", str(e))

    def test_laterUserReplaces(self) -> None:
        """
        A user given again (say, on the command line after the file) replaces the first entry.
        """
        config = fromFile("user=alice:one\nuser=bob:two\nuser=alice:three\n")
        self.assertEqual(config.users, (("alice", "three"), ("bob", "two")))

    def test_staticAuthSecretImpliesUseAuthSecret(self) -> None:
        """
        static-auth-secret accumulates (for rotation) and turns use-auth-secret on, as in coturn.
        """
        config = fromFile("static-auth-secret=new\nstatic-auth-secret=old\n")
        self.assertEqual(config.staticAuthSecrets, ("new", "old"))
        self.assertTrue(config.useAuthSecret)

    def test_useAuthSecretNeedsSecret(self) -> None:
        """
        use-auth-secret without a static-auth-secret is an error that says why.
        """
        e = self.assertRaises(ConfigError, fromFile, "\nuse-auth-secret\n")
        self.assertEqual((e.option, e.lineNumber), ("use-auth-secret", 2))
        self.assertIn("static-auth-secret", e.reason)
        self.assertTrue(fromFile("use-auth-secret\nstatic-auth-secret=s\n").useAuthSecret)

    def test_emptySecret(self) -> None:
        """
        An empty static-auth-secret is an error.
        """
        e = self.assertRaises(ConfigError, fromFile, 'static-auth-secret=""\n')
        self.assertEqual(e.reason, "needs a value")

    def test_usersAndSecretsTogether(self) -> None:
        """
        Static users and REST API secrets may be combined (coturn lets the secret win).
        """
        config = makeConfig(users=["alice:pw"], staticAuthSecrets=["s"], ltCredMech=True)
        self.assertEqual((config.users, config.staticAuthSecrets), ((("alice", "pw"),), ("s",)))

    def test_noAuthRefusesCredentials(self) -> None:
        """
        no-auth together with users, lt-cred-mech or REST secrets is an error naming them.
        """
        e = self.assertRaises(
            ConfigError, fromFile, "user=a:b\nlt-cred-mech\nstatic-auth-secret=s\nno-auth\n"
        )
        self.assertEqual((e.option, e.lineNumber), ("no-auth", 4))
        self.assertIn("--user, --lt-cred-mech, --use-auth-secret", e.reason)

    def test_noAuthAlone(self) -> None:
        """
        no-auth alone is accepted, and no-auth=false lifts the conflict.
        """
        self.assertTrue(fromFile("no-auth\n").noAuth)
        config = fromFile("no-auth\nuser=a:b\nno-auth=false\n")
        self.assertEqual((config.noAuth, config.users), (False, (("a", "b"),)))

    def test_realm(self) -> None:
        """
        The realm is non-empty and at most 127 characters.
        """
        self.assertEqual(fromFile("realm=example.org\n").realm, "example.org")
        e = self.assertRaises(ConfigError, makeConfig, realm="")
        self.assertEqual(str(e), "--realm: needs a value")
        e = self.assertRaises(ConfigError, makeConfig, realm="r" * 128)
        self.assertEqual(e.option, "realm")

    def test_restApiSeparator(self) -> None:
        """
        rest-api-separator is one character.
        """
        self.assertEqual(fromFile("rest-api-separator=-\n").restApiSeparator, "-")
        e = self.assertRaises(ConfigError, fromFile, "rest-api-separator=::\n")
        self.assertEqual(e.option, "rest-api-separator")

    def test_nonceSecret(self) -> None:
        """
        nonce-secret is 0xHEX (bytes) or text (its UTF-8 bytes).
        """
        self.assertEqual(fromFile("nonce-secret=0x00ff\n").nonceSecret, b"\x00\xff")
        self.assertEqual(fromFile("nonce-secret=grüße\n").nonceSecret, "grüße".encode())
        self.assertEqual(makeConfig(nonceSecret=b"\x01").nonceSecret, b"\x01")
        for bad in ["0xgg", "0x"]:
            e = self.assertRaises(ConfigError, makeConfig, nonceSecret=bad)
            self.assertEqual(e.option, "nonce-secret")
        e = self.assertRaises(ConfigError, makeConfig, nonceSecret=b"")
        self.assertEqual(str(e), "--nonce-secret: must not be empty")


class MergeTests(SynchronousTestCase):
    """
    L{configFromPairs} merges the file and the command line.
    """

    def test_defaults(self) -> None:
        """
        No options give the default configuration.
        """
        self.assertEqual(configFromPairs([]), TurnConfig())

    def test_commandLineWins(self) -> None:
        """
        Pairs given later (the command line after the file) replace single values and add to
        repeatable ones.
        """
        filePairs = parseConfigFile("listening-port=3478\nuser=a:b\nverbose\n")
        commandLine = [("listening-port", "3479", None), ("user", "c:d", None),
                       ("verbose", "false", None)]
        config = configFromPairs(filePairs + commandLine)
        self.assertEqual(config.listeningPort, 3479)
        self.assertEqual(config.users, (("a", "b"), ("c", "d")))
        self.assertFalse(config.verbose)

    def test_commandLineErrorHasNoLine(self) -> None:
        """
        An error in a command line pair is written like the option on the command line.
        """
        e = self.assertRaises(
            ConfigError, configFromPairs, [("realm", "x", 1), ("min-port", "0", None)]
        )
        self.assertEqual(str(e), "--min-port: 0 is not a port number (1-65535)")

    @given(
        st.lists(
            st.tuples(
                st.one_of(st.sampled_from(sorted(OPTIONS_BY_NAME)), st.text()),
                st.one_of(st.none(), st.text(), st.integers(), st.booleans(), st.binary()),
                st.one_of(st.none(), st.integers(1, 100)),
            )
        )
    )
    def test_anyPairsRaiseOnlyConfigError(self, pairs: list) -> None:
        """
        Whatever the pairs, the result is a L{TurnConfig} or a L{ConfigError}.
        """
        try:
            self.assertIsInstance(configFromPairs(pairs), TurnConfig)
        except ConfigError:
            pass


class NotImplementedTests(SynchronousTestCase):
    """
    Options recognised but not served yet are accepted and recorded.
    """

    def test_recorded(self) -> None:
        """
        Their names are recorded once each, in order; served options are not.
        """
        config = fromFile(
            "oauth\nfingerprint\nrelay-threads=4\noauth\nCA-file=/etc/ca.pem\n"
        )
        self.assertEqual(config.notImplemented, ("oauth", "relay-threads", "CA-file"))
        self.assertEqual(fromFile("fingerprint\nrealm=x\n").notImplemented, ())

    def test_valuesValidated(self) -> None:
        """
        Even without a field, a value of the wrong kind is an error.
        """
        e = self.assertRaises(ConfigError, fromFile, "relay-threads=many\n")
        self.assertEqual((e.option, e.lineNumber), ("relay-threads", 1))
        e = self.assertRaises(ConfigError, fromFile, "no-cli=perhaps\n")
        self.assertEqual(e.option, "no-cli")

    def test_coturnExampleRuns(self) -> None:
        """
        A configuration in the style of coturn's example turnserver.conf runs.
        """
        config = fromFile(
            "listening-port=3478\n"
            "tls-listening-port=5349\n"
            "listening-ip=172.17.19.101\n"
            "relay-ip=172.17.19.105\n"
            "external-ip=60.70.80.91/172.17.19.101\n"
            "min-port=49152\n"
            "max-port=65535\n"
            "verbose\n"
            "fingerprint\n"
            "lt-cred-mech\n"
            "user=ninefingers:youhavetoberealistic\n"
            "realm=mycompany.org\n"
            "total-quota=100\n"
            "stale-nonce=600\n"
            'cert="/usr/local/etc/turn_server_cert.pem"\n'
            "pkey=/usr/local/etc/turn_server_pkey.pem\n"
            'cipher-list="DEFAULT"\n'
            "no-stdout-log\n"
            "log-file=/var/tmp/turn.log\n"
            "simple-log\n"
            "no-multicast-peers\n"
            "denied-peer-ip=83.166.64.0-83.166.95.255\n"
            'pidfile="/var/run/turnserver.pid"\n'
            "no-cli\n"
            "no-tlsv1\n"
            "no-tlsv1_1\n"
        )
        self.assertEqual(config.realm, "mycompany.org")
        self.assertEqual(config.pidfile, "/var/run/turnserver.pid")
        self.assertEqual(
            config.notImplemented,
            ("no-stdout-log", "simple-log", "no-cli"),
        )


class MakeConfigTests(SynchronousTestCase):
    """
    L{makeConfig} builds a configuration from keyword arguments, validated the same way.
    """

    def test_typedValues(self) -> None:
        """
        Typed values are taken as they are.
        """
        config = makeConfig(
            listeningPort=3479,
            listeningIps=("127.0.0.1",),
            users=[("alice", "0xnot-a-key"), ("bob", b"k" * 16)],
            externalIps=[("203.0.113.7", "10.0.0.7")],
            fingerprint=True,
            maxBps=1000,
        )
        self.assertEqual(config.listeningPort, 3479)
        self.assertEqual(config.listeningIps, ("127.0.0.1",))
        # A str password is a password even if it starts with 0x: only bytes are keys.
        self.assertEqual(config.users, (("alice", "0xnot-a-key"), ("bob", b"k" * 16)))
        self.assertEqual(config.externalIps, (("203.0.113.7", "10.0.0.7"),))
        self.assertTrue(config.fingerprint)
        self.assertEqual((config.maxBps, config.notImplemented), (1000, ()))

    def test_stringValues(self) -> None:
        """
        Strings are read as on the command line; a repeatable field takes one string too.
        """
        self.assertEqual(
            makeConfig(listeningPort="3479", users="alice:pw", verbose="yes"),
            configFromPairs(
                [("listening-port", "3479", None), ("user", "alice:pw", None),
                 ("verbose", "yes", None)]
            ),
        )

    def test_noneMeansDefault(self) -> None:
        """
        L{None} leaves the field at its default.
        """
        self.assertEqual(makeConfig(logFile=None, listeningPort=None), TurnConfig())

    def test_unknownKeyword(self) -> None:
        """
        An unknown keyword, or the computed notImplemented, is an error naming it.
        """
        for name in ["listening_port", "notImplemented"]:
            e = self.assertRaises(ConfigError, makeConfig, **{name: 1})
            self.assertEqual(e.option, name)
            self.assertEqual(str(e), f"{name}: unknown keyword argument: not a TurnConfig "
                                     "option field")

    def test_badValuesNameTheOption(self) -> None:
        """
        A bad value names the coturn option, whatever its type.
        """
        for fields, option in [
            ({"listeningPort": True}, "listening-port"),
            ({"listeningPort": 3478.0}, "listening-port"),
            ({"fingerprint": 2}, "fingerprint"),
            ({"realm": 5}, "realm"),
            ({"logFile": b"/tmp/x"}, "log-file"),
            ({"listeningIps": [5]}, "listening-ip"),
            ({"users": 5}, "user"),
            ({"users": [("alice", 5)]}, "user"),
            ({"nonceSecret": 5}, "nonce-secret"),
        ]:
            e = self.assertRaises(ConfigError, makeConfig, **fields)
            self.assertEqual(e.option, option, fields)
            self.assertTrue(str(e).startswith(f"--{option}: "), str(e))
