"""
Tests for L{twisted_turn.service}: the service wires the server to a reactor's UDP ports, runs
the sweep on the reactor's clock, and announces what an operator needs to know.
"""

import os
import select
import signal
import socket

from twisted.internet.interfaces import IReactorFDSet
from twisted.logger import LogLevel, capturedLogs, formatEvent
from zope.interface import implementer
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from twisted_turn import _native, udp
from twisted_turn._native import loadNative
from twisted_turn.config import ConfigError, makeConfig
from twisted_turn.service import (
    DRAIN_EXIT_DELAY,
    MAX_DATAGRAM,
    SUMMARY_INTERVAL,
    SWEEP_INTERVAL,
    StartupError,
    TurnService,
)
from twisted.protocols.tls import TLSMemoryBIOFactory

from twisted_turn.dtlslistener import DtlsListenerProtocol
from twisted_turn.stream import StreamListenerFactory
from twisted_turn.stun.attributes import (
    ErrorCode,
    Lifetime,
    RequestedAddressFamily,
    RequestedTransport,
    XorPeerAddress,
    XorRelayedAddress,
)
from twisted_turn.stun.message import MessageClass, Method, encodeMessage, newTransactionId
from twisted_turn.testing import MemoryUDPReactor, TestClient

from tests.integration.harness import freeUdpPort, writeCertificate

UDP = RequestedTransport(17)


class TurnServiceTests(SynchronousTestCase):
    def makeService(self, **options):
        options.setdefault("listeningIps", ("198.51.100.1",))
        options.setdefault("relayIps", ("198.51.100.1",))
        options.setdefault("users", (("alice", "secret"),))
        self.reactor = MemoryUDPReactor()
        self.reactor.advance(1_700_000_000)
        service = TurnService(reactor=self.reactor, **options)
        return service

    def clientOf(self, service, username="alice", password="secret", address=("192.0.2.5", 1)):
        """
        A test client talking to the service's first listener.
        """
        port = service.listeningPorts[0]
        return TestClient(port.protocol, port, address, username, password)

    def test_listensOnEachAddress(self):
        """
        The service listens on the listening port of every listening address, with a
        datagram size that does not truncate ChannelData, and stops listening when stopped.
        """
        service = self.makeService(
            listeningIps=("198.51.100.1", "2001:db8::1"), listeningPort=3479
        )
        service.startService()
        self.assertEqual(
            sorted(self.reactor.udpPorts), [("198.51.100.1", 3479), ("2001:db8::1", 3479)]
        )
        self.assertEqual(self.reactor.maxPacketSizes[("198.51.100.1", 3479)], MAX_DATAGRAM)
        self.assertEqual(self.reactor.maxPacketSizes[("2001:db8::1", 3479)], MAX_DATAGRAM)
        service.stopService()
        self.assertEqual(self.reactor.udpPorts, {})

    def test_tcpListenerOnEachAddress(self):
        """
        The service also listens for TCP on the listening port of every address, with a
        stream factory for the C{tcp} transport, and stops when stopped; --no-tcp turns it off.
        """
        service = self.makeService(
            listeningIps=("198.51.100.1", "2001:db8::1"), listeningPort=3479
        )
        service.startService()
        self.assertEqual(
            sorted(self.reactor.tcpPorts), [("198.51.100.1", 3479), ("2001:db8::1", 3479)]
        )
        factory = self.reactor.tcpPorts[("198.51.100.1", 3479)]
        self.assertIsInstance(factory, StreamListenerFactory)
        self.assertEqual(factory.protocolName, "tcp")
        service.stopService()
        self.assertEqual(self.reactor.tcpPorts, {})
        service = self.makeService(noTcp=True)
        service.startService()
        self.assertEqual(self.reactor.tcpPorts, {})
        self.assertEqual(len(self.reactor.udpPorts), 1)
        service.stopService()

    def test_tcpBindFailure(self):
        """
        A TCP listening address that cannot be bound stops start-up with a message naming the
        address, the port and TCP; the UDP listener opened before it is closed again.
        """
        service = self.makeService()
        original = self.reactor.listenTCP

        def busyTcp(port, factory, backlog=50, interface=""):
            self.reactor.busy.add((interface, port))
            try:
                return original(port, factory, backlog, interface)
            finally:
                self.reactor.busy.discard((interface, port))

        self.reactor.listenTCP = busyTcp
        error = self.assertRaises(StartupError, service.startService)
        self.assertIn("cannot listen on 198.51.100.1:3478 over TCP", str(error))
        self.assertEqual(self.reactor.udpPorts, {})

    def secureService(self, **options):
        certFile, keyFile, _ = writeCertificate(self.mktemp(), "turn-test")
        return self.makeService(cert=certFile, pkey=keyFile, **options)

    def test_secureListeners(self):
        """
        With --cert the service listens for TLS (a TLS wrapper around the stream factory, for
        transport C{tls}) and DTLS on --tls-listening-port of every address.
        """
        service = self.secureService(tlsListeningPort=5350)
        service.startService()
        self.addCleanup(service.stopService)
        factory = self.reactor.tcpPorts[("198.51.100.1", 5350)]
        self.assertIsInstance(factory, TLSMemoryBIOFactory)
        self.assertEqual(factory.wrappedFactory.protocolName, "tls")
        dtls = self.reactor.udpPorts[("198.51.100.1", 5350)].protocol
        self.assertIsInstance(dtls, DtlsListenerProtocol)
        self.assertIsNotNone(service.credentials)

    def test_secureSwitches(self):
        """
        --no-tls and --no-dtls each leave their listener out; without --cert neither starts
        and the log says so.
        """
        service = self.secureService(noTls=True)
        service.startService()
        self.assertNotIn(("198.51.100.1", 5349), self.reactor.tcpPorts)
        self.assertIn(("198.51.100.1", 5349), self.reactor.udpPorts)
        service.stopService()
        service = self.secureService(noDtls=True)
        service.startService()
        self.assertIn(("198.51.100.1", 5349), self.reactor.tcpPorts)
        self.assertNotIn(("198.51.100.1", 5349), self.reactor.udpPorts)
        service.stopService()
        service = self.makeService()
        with capturedLogs() as events:
            service.startService()
        self.addCleanup(service.stopService)
        self.assertNotIn(("198.51.100.1", 5349), self.reactor.tcpPorts)
        self.assertIn("No --cert given", " ".join(e["log_format"] for e in events))

    def test_badCertificate(self):
        """
        An unusable certificate stops start-up with the option and the reason, and what was
        opened is closed again.
        """
        service = self.makeService(cert="/nonexistent/cert.pem")
        error = self.assertRaises(StartupError, service.startService)
        self.assertIn("--cert: cannot load a certificate from /nonexistent/cert.pem", str(error))
        self.assertEqual((self.reactor.udpPorts, self.reactor.tcpPorts), ({}, {}))

    def test_reloadCertificates(self):
        """
        L{TurnService.reloadCertificates} reloads the files (the admin call behind SIGHUP);
        without --cert it says there is nothing to reload.
        """
        service = self.secureService()
        service.startService()
        self.addCleanup(service.stopService)
        self.assertTrue(service.reloadCertificates())
        self.assertEqual(service.credentials.reloads, 1)
        plain = self.makeService(listeningPort=3480)
        self.assertFalse(plain.reloadCertificates())

    def test_sighupOnlyUnderTwistd(self):
        """
        Only a service with C{reloadOnSighup} (twistd's) takes SIGHUP, and it gives the
        previous handler back when it stops; the handler reloads on the reactor thread.
        """
        previous = signal.getsignal(signal.SIGHUP)
        service = self.secureService()
        service.startService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)
        service.stopService()
        service = self.secureService()
        service.reloadOnSighup = True
        service.startService()
        handler = signal.getsignal(signal.SIGHUP)
        self.assertNotEqual(handler, previous)
        calls = []
        self.reactor.callFromThread = lambda f, *a: calls.append(f)
        handler(signal.SIGHUP, None)
        self.assertEqual(calls, [service._reloadFromSignal])
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)

    def test_sighupWithoutCertificate(self):
        """
        A twistd service without --cert takes SIGHUP too: it reloads the configuration.
        """
        previous = signal.getsignal(signal.SIGHUP)
        service = self.makeService()
        service.reloadOnSighup = True
        service.startService()
        self.assertNotEqual(signal.getsignal(signal.SIGHUP), previous)
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGHUP), previous)

    def test_reloadAppliesBandwidthLimits(self):
        """
        L{TurnService.reload} applies new --max-bps and --bps-capacity to the running server,
        live allocations included, and names the changed options that need a restart
        without applying them; what SIGHUP loads goes the same way, and a configuration that
        does not load keeps the current one.
        """
        service = self.makeService(maxBps=1000)
        service.startService()
        self.addCleanup(service.stopService)
        client = self.clientOf(service)
        client.request(Method.ALLOCATE, [RequestedTransport(17)])
        [allocation] = service.server.table
        self.assertEqual(allocation.bps, 1000)
        new = makeConfig(
            listeningIps=("198.51.100.1",), relayIps=("198.51.100.1",),
            users=(("alice", "secret"),), maxBps=5000, bpsCapacity=20000, realm="other",
        )
        with capturedLogs() as events:
            service.reload(new)
        self.assertEqual(allocation.bps, 5000)
        self.assertEqual(
            (service.config.maxBps, service.config.bpsCapacity, service.config.realm),
            (5000, 20000, "twisted-turn"),
        )
        self.assertEqual(service.server.bandwidth.reserved, 5000)
        messages = [formatEvent(e) for e in events]
        self.assertIn("Changed options that take a restart, not applied: --realm", messages)
        self.assertTrue(any("Bandwidth limits now --max-bps 5000" in m for m in messages))

        def broken():
            raise ConfigError("max-bps", "-1 is not an integer >= 0")

        service.configLoader = broken
        with capturedLogs() as events:
            service._reloadFromSignal()
        self.assertEqual(allocation.bps, 5000)
        self.assertIn(
            "Keeping the current configuration: --max-bps: -1 is not an integer >= 0",
            [formatEvent(e) for e in events],
        )

    def test_tcpRelayWiring(self):
        """
        --tcp-relay gives the server a TCP relay registry and a port allocator of its own on
        the relay addresses, whose ports the peer policy counts as the server's own for TCP
        connections only (and UDP relay ports for UDP only); without it there is none.
        """
        service = self.makeService(tcpRelay=True)
        self.assertIsNotNone(service.server.tcpRelays)
        self.assertIs(service.tcpRelays.counters, service.server.counters)
        ports = service.server.tcpRelayPorts
        self.assertEqual(ports.relayHosts, ("198.51.100.1",))
        ports.inUse["198.51.100.1"].add(50001)
        service.server.relays.inUse["198.51.100.1"].add(50003)
        policy = service.server._policy
        self.assertTrue(policy.isAllowed("198.51.100.1", 50001, tcp=True))
        self.assertFalse(policy.isAllowed("198.51.100.1", 50002, tcp=True))
        # A port held by one protocol opens nothing for the other.
        self.assertFalse(policy.isAllowed("198.51.100.1", 50001))
        self.assertFalse(policy.isAllowed("198.51.100.1", 50003, tcp=True))
        self.assertTrue(policy.isAllowed("198.51.100.1", 50003))
        self.assertIsNone(self.makeService().server.tcpRelays)

    def test_noUdp(self):
        """
        With noUdp there is no UDP listener.
        """
        service = self.makeService(noUdp=True)
        service.startService()
        self.assertEqual(self.reactor.udpPorts, {})
        service.stopService()

    def test_allocateThroughService(self):
        """
        A client allocates through the service's listener; the relay socket is opened on the
        relay address with the configured range, and closed when the service stops.
        """
        service = self.makeService(minPort=40000, maxPort=40009)
        service.startService()
        client = self.clientOf(service)
        response = client.request(Method.ALLOCATE, [UDP])
        relayed = response.get(XorRelayedAddress)
        self.assertEqual(relayed.host, "198.51.100.1")
        self.assertTrue(40000 <= relayed.port <= 40009)
        self.assertIn(("198.51.100.1", relayed.port), self.reactor.udpPorts)
        service.stopService()
        self.assertEqual(self.reactor.udpPorts, {})

    def test_sweepRunsOnClock(self):
        """
        The periodic sweep on the reactor's clock frees an expired allocation's port.
        """
        service = self.makeService()
        service.startService()
        client = self.clientOf(service)
        relayed = client.request(Method.ALLOCATE, [UDP, Lifetime(600)]).get(XorRelayedAddress)
        self.reactor.advance(600 + SWEEP_INTERVAL + 1)
        self.assertNotIn(("198.51.100.1", relayed.port), self.reactor.udpPorts)
        self.assertEqual(len(service.server.table), 0)
        service.stopService()

    def test_sweepSurvivesFailure(self):
        """
        An exception in one sweep is logged and the next sweep still runs.
        """
        service = self.makeService()
        service.startService()
        calls = []

        def failingOnce():
            calls.append(1)
            if len(calls) == 1:
                raise RuntimeError("boom")
            return 0

        self.patch(service.server, "sweep", failingOnce)
        with capturedLogs() as events:
            self.reactor.advance(SWEEP_INTERVAL)
            self.reactor.advance(SWEEP_INTERVAL)
        self.assertEqual(len(calls), 2)
        self.assertTrue(any("log_failure" in e for e in events))
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        service.stopService()

    def test_externalIp(self):
        """
        With --external-ip, XOR-RELAYED-ADDRESS announces the public address while the relay
        socket binds the private one.
        """
        service = self.makeService(externalIps=(("203.0.113.7", "198.51.100.1"),))
        service.startService()
        relayed = self.clientOf(service).request(Method.ALLOCATE, [UDP]).get(XorRelayedAddress)
        self.assertEqual(relayed.host, "203.0.113.7")
        self.assertIn(("198.51.100.1", relayed.port), self.reactor.udpPorts)
        service.stopService()

    def test_generatedUser(self):
        """
        Started with no credentials, the service makes a random user, logs it with an
        iceServers snippet, and that user can allocate.
        """
        service = self.makeService(users=())
        name, password = service.generatedUser
        self.assertEqual(len(password), 24)
        with capturedLogs() as events:
            service.startService()
        text = " ".join(e["log_format"].format(**e) for e in events if "user" in e)
        self.assertIn(name, text)
        self.assertIn(password, text)
        self.assertIn(
            '"urls": ["turn:198.51.100.1:3478?transport=udp", '
            '"turn:198.51.100.1:3478?transport=tcp"]',
            text,
        )
        client = self.clientOf(service, name, password)
        self.assertEqual(
            client.request(Method.ALLOCATE, [UDP]).messageClass, MessageClass.SUCCESS
        )
        other = self.makeService(users=())
        self.assertNotEqual(other.generatedUser, service.generatedUser)
        service.stopService()

    def test_noGeneratedUserWithCredentials(self):
        """
        Configured users, a REST secret, or --no-auth mean no generated user.
        """
        self.assertIsNone(self.makeService().generatedUser)
        self.assertIsNone(
            self.makeService(
                users=(), useAuthSecret=True, staticAuthSecrets=("s",)
            ).generatedUser
        )
        self.assertIsNone(self.makeService(users=(), noAuth=True).generatedUser)

    def test_noAuthWarns(self):
        """
        --no-auth logs a warning that the server is an open relay.
        """
        service = self.makeService(users=(), noAuth=True)
        with capturedLogs() as events:
            service.startService()
        self.assertTrue(any("open relay" in e.get("log_format", "") for e in events))
        service.stopService()

    def test_notImplementedWarns(self):
        """
        Each recognised-but-not-served option is named in a warning at start.
        """
        from twisted_turn.config import configFromPairs

        config = configFromPairs(
            [("listening-ip", "198.51.100.1", None), ("user", "a:b", None),
             ("relay-threads", "4", None)]
        )
        service = TurnService(config, reactor=MemoryUDPReactor())
        with capturedLogs() as events:
            service.startService()
        warned = [e["option"] for e in events if "option" in e]
        self.assertIn("relay-threads", warned)
        service.stopService()

    def test_relayHosts(self):
        """
        Relays bind --relay-ip when given (the first of each family, the others ignored with a
        warning), else the specific listening address of each family, and for IPv4 the host's
        default address when no IPv4 listening address is specific.
        """
        from twisted_turn import service as serviceModule

        self.patch(serviceModule, "defaultRelayHost", lambda: "192.0.2.77")
        self.assertEqual(self.makeService().relayHosts, ["198.51.100.1"])
        with capturedLogs() as events:
            hosts = self.makeService(
                relayIps=("198.51.100.1", "2001:db8::5", "198.51.100.2")
            ).relayHosts
        self.assertEqual(hosts, ["198.51.100.1", "2001:db8::5"])
        self.assertIn("198.51.100.2", [e.get("ignored") for e in events])
        self.assertEqual(
            self.makeService(relayIps=(), listeningIps=("198.51.100.9",)).relayHosts,
            ["198.51.100.9"],
        )
        self.assertEqual(
            self.makeService(relayIps=(), listeningIps=("0.0.0.0",)).relayHosts,
            ["192.0.2.77"],
        )
        self.assertEqual(
            self.makeService(relayIps=(), listeningIps=("0.0.0.0", "2001:db8::1")).relayHosts,
            ["192.0.2.77", "2001:db8::1"],
        )
        self.assertEqual(
            self.makeService(relayIps=(), listeningIps=("::1",)).relayHosts,
            ["192.0.2.77", "::1"],
        )

    def test_defaultRelayHostSkipsLoopback(self):
        """
        The default relay address is the first interface address that is neither loopback nor
        link-local; with none, 127.0.0.1.
        """
        from twisted_turn import service as serviceModule

        self.patch(
            serviceModule, "_interfaceAddresses",
            lambda: ["127.0.0.1", "169.254.1.1", "192.0.2.77", "192.0.2.78"],
        )
        self.assertEqual(serviceModule.defaultRelayHost(), "192.0.2.77")
        self.patch(serviceModule, "_interfaceAddresses", lambda: [])

        def noName(*args):
            raise OSError("no such host")

        self.patch(serviceModule.socket, "getaddrinfo", noName)
        self.assertEqual(serviceModule.defaultRelayHost(), "127.0.0.1")

    def test_interfaceAddresses(self):
        """
        On Linux the interface scan finds the loopback interface's 127.0.0.1.
        """
        from twisted_turn.service import _interfaceAddresses

        if not hasattr(__import__("socket"), "if_nameindex"):
            raise SkipTest("no interface enumeration on this platform")
        self.assertIn("127.0.0.1", _interfaceAddresses())

    def permissionCodes(self, service, hosts):
        """
        The error code (L{None} for success) of a CreatePermission for each of C{hosts}, from
        an IPv4 allocation on the started C{service}.
        """
        if not service.running:
            service.startService()
            self.addCleanup(service.stopService)
        client = self.clientOf(service, address=("192.0.2.5", len(hosts)))
        client.request(Method.ALLOCATE, [RequestedTransport(17)])
        codes = []
        for host in hosts:
            response = client.request(Method.CREATE_PERMISSION, [XorPeerAddress(host, 3478)])
            error = response.get(ErrorCode)
            codes.append(None if error is None else error.code)
        return codes

    def test_ownAddressesRefusedAsPeers(self):
        """
        The service's listening address is refused as a peer, and so is every IPv6 spelling of
        its listening and relay addresses; its public relay address itself may be permitted
        (relay to relay); another public address is an ordinary peer.
        """
        service = self.makeService(listeningIps=("8.8.4.4",), relayIps=("8.8.8.8",))
        self.assertEqual(
            self.permissionCodes(service, ["8.8.4.4", "8.8.8.8", "1.1.1.1"]), [403, None, None]
        )
        ipv6 = self.makeService(
            listeningIps=("8.8.4.4",), relayIps=("8.8.8.8", "2606:4700::8")
        )
        ipv6.startService()
        self.addCleanup(ipv6.stopService)
        client = self.clientOf(ipv6)
        client.request(Method.ALLOCATE, [RequestedTransport(17), RequestedAddressFamily(2)])
        for host, code in [("64:ff9b::808:808", 403), ("64:ff9b::808:404", 403),
                           ("2002:808:404::1", 403), ("64:ff9b::101:101", None)]:
            response = client.request(Method.CREATE_PERMISSION, [XorPeerAddress(host, 1)])
            error = response.get(ErrorCode)
            self.assertEqual(None if error is None else error.code, code, host)

    def unauthenticatedAnswers(self, service, count=100):
        """
        How many of C{count} unauthenticated Allocates from one source, at one instant, the
        started C{service} answers.
        """
        service.startService()
        self.addCleanup(service.stopService)
        client = self.clientOf(service)
        for _ in range(count):
            client.send(encodeMessage(
                Method.ALLOCATE, MessageClass.REQUEST, newTransactionId(), [RequestedTransport(17)]
            ))
        return len(client.received())

    def test_unauthenticatedRateLimitByDefault(self):
        """
        By default a source gets 10 unauthenticated answers at once (the burst is the rate);
        the burst and the rate are options, and no-unauthorized-ratelimit answers all.
        """
        self.assertEqual(self.unauthenticatedAnswers(self.makeService()), 10)
        self.assertEqual(
            self.unauthenticatedAnswers(self.makeService(unauthorizedRatelimitBurst=25)), 25
        )
        self.assertEqual(
            self.unauthenticatedAnswers(self.makeService(unauthorizedRatelimitRps=40)), 40
        )
        self.assertEqual(
            self.unauthenticatedAnswers(self.makeService(unauthorizedRatelimit=False)), 100
        )

    def test_authFailureLimitByDefault(self):
        """
        By default a user name gets 60 failed authentications (then one a second) from an
        address it never authenticated from; 0 turns the limit off.
        """
        for perMinute, expected in ((60, 60), (0, 80)):
            service = self.makeService(
                userAuthFailuresPerMinute=perMinute, unauthorizedRatelimit=False
            )
            service.startService()
            self.addCleanup(service.stopService)
            guesser = self.clientOf(service, password="wrong", address=("192.0.2.66", 1))
            answered = sum(
                guesser.request(Method.ALLOCATE, [RequestedTransport(17)]) is not None
                for _ in range(80)
            )
            self.assertEqual(answered, expected, perMinute)

    def test_bufferSizesReported(self):
        """
        At start the UDP buffers in force are logged; below --sock-buf-size (the kernel capped
        them), a warning names the sysctls to raise.
        """
        for sizes, level, text in [
            ((2097152, 2097152), LogLevel.info, "UDP socket buffers: 2097152 bytes to receive"),
            ((212992, 212992), LogLevel.warn, "below --sock-buf-size 2097152"),
        ]:
            self.patch(udp, "bufferSizes", lambda port, sizes=sizes: sizes)
            service = self.makeService()
            with capturedLogs() as events:
                service.startService()
            service.stopService()
            [event] = [e for e in events if "UDP socket buffers" in e.get("log_format", "")]
            self.assertEqual(event["log_level"], level)
            self.assertIn(text, formatEvent(event))

    def test_kernelDropsSummarizedOnStop(self):
        """
        On the stock port too, the UDP summary names the kernel's drops, and the last one is
        logged when the service stops.
        """
        self.patch(udp, "kernelDrops", lambda: 7)
        service = self.makeService()
        service.startService()
        with capturedLogs() as events:
            service.stopService()
        self.assertIn(
            "UDP on Twisted's stock port: drops dropKernelQueue:7",
            [formatEvent(e) for e in events],
        )

    def reloaded(self, service, **changes):
        """
        Reload C{service} with its configuration changed by C{changes}; the log's lines.
        """
        import dataclasses

        with capturedLogs() as events:
            service.reload(dataclasses.replace(service.config, **changes))
        return [formatEvent(e) for e in events]

    def test_reloadUsersAndSecrets(self):
        """
        A reload with other users and REST secrets takes effect at the next request: a new
        user allocates, a removed one gets 401, and the live allocation of a user that stays
        keeps refreshing.
        """
        service = self.makeService(users=(("alice", "secret"), ("bob", "pw")))
        service.startService()
        self.addCleanup(service.stopService)
        alice = self.clientOf(service)
        alice.request(Method.ALLOCATE, [RequestedTransport(17)])
        lines = self.reloaded(service, users=(("alice", "secret"), ("carol", "new")))
        self.assertIn("Configuration reloaded: --user", lines)
        self.assertEqual(
            alice.request(Method.REFRESH, [Lifetime(600)]).messageClass, MessageClass.SUCCESS
        )
        carol = self.clientOf(service, "carol", "new", address=("192.0.2.6", 1))
        self.assertEqual(
            carol.request(Method.ALLOCATE, [RequestedTransport(17)]).messageClass,
            MessageClass.SUCCESS,
        )
        bob = self.clientOf(service, "bob", "pw", address=("192.0.2.7", 1))
        self.assertEqual(
            bob.request(Method.ALLOCATE, [RequestedTransport(17)]).get(ErrorCode).code, 401
        )

    def test_reloadPeerRanges(self):
        """
        A reload that denies a range removes live permissions to it at once (data to it is
        dropped), and one that allows a range lets new permissions through.
        """
        service = self.makeService()
        service.startService()
        self.addCleanup(service.stopService)
        client = self.clientOf(service)
        client.request(Method.ALLOCATE, [RequestedTransport(17)])
        self.assertIsNone(client.request(
            Method.CREATE_PERMISSION, [XorPeerAddress("8.8.8.8", 1)]).get(ErrorCode))
        lines = self.reloaded(
            service, deniedPeerIps=("8.8.8.0/24",), allowedPeerIps=("10.1.0.0/16",)
        )
        self.assertIn(
            "Peer policy reloaded; 1 permissions and channels to peers it now refuses were "
            "removed", lines,
        )
        [allocation] = service.server.table
        self.assertEqual(allocation.permissions, {})
        self.assertEqual(client.request(
            Method.CREATE_PERMISSION, [XorPeerAddress("8.8.8.8", 1)]).get(ErrorCode).code, 403)
        self.assertIsNone(client.request(
            Method.CREATE_PERMISSION, [XorPeerAddress("10.1.2.3", 1)]).get(ErrorCode))

    def test_reloadQuotasVerbosityAndLimits(self):
        """
        Quotas, verbosity, address logging and the rate limits change on reload; options that
        cannot (the port range, the listening port) are named, not applied.
        """
        from twisted_turn import _log

        self.addCleanup(_log.setVerbose, False)
        service = self.makeService()
        service.startService()
        self.addCleanup(service.stopService)
        lines = self.reloaded(
            service, userQuota=1, totalQuota=5, verbose=True, noLogAddresses=True,
            unauthorizedRatelimitRps=50, minPort=50000, listeningPort=3480,
        )
        self.assertEqual((service.server._userQuota, service.server._totalQuota), (1, 5))
        self.assertEqual(service.server._unauthenticatedLimit.rate, 50)
        self.assertFalse(service.server._logAddresses)
        self.assertEqual(
            (service.config.minPort, service.config.listeningPort), (49152, 3478)
        )
        self.assertIn(
            "Changed options that take a restart, not applied: --listening-port, --min-port",
            lines,
        )
        client = self.clientOf(service)
        client.request(Method.ALLOCATE, [RequestedTransport(17)])
        second = self.clientOf(service, address=("192.0.2.5", 2))
        self.assertEqual(
            second.request(Method.ALLOCATE, [RequestedTransport(17)]).get(ErrorCode).code, 486
        )

    def test_drainEndsWhenAllocationsAreGone(self):
        """
        L{TurnService.drain} refuses new allocations and fires once the allocations fall to
        --drain-min-allocations; under twistd (stopWhenDrained) it then stops the reactor.
        """
        service = self.makeService(drainMinAllocations=1)
        service.stopWhenDrained = True
        stopped = []
        self.reactor.stop = lambda: stopped.append(True)
        service.startService()
        self.addCleanup(service.stopService)
        first = self.clientOf(service)
        second = self.clientOf(service, address=("192.0.2.5", 2))
        for client in (first, second):
            client.request(Method.ALLOCATE, [RequestedTransport(17)])
        results = []
        service.drain().addCallback(results.append)
        self.assertIs(service.drain(), service._drained)
        late = self.clientOf(service, address=("192.0.2.5", 3))
        self.assertEqual(
            late.request(Method.ALLOCATE, [RequestedTransport(17)]).get(ErrorCode).code, 486
        )
        self.reactor.advance(5)
        self.assertEqual(results, [])
        second.request(Method.REFRESH, [Lifetime(0)])
        self.reactor.advance(1)
        self.assertEqual((results, stopped), ([1], []))
        # A moment later, so that answers already written go out before the stop.
        self.reactor.advance(DRAIN_EXIT_DELAY)
        self.assertEqual(stopped, [True])

    def test_drainTimeout(self):
        """
        With --drain-timeout, a drain ends after that many seconds whatever is left.
        """
        service = self.makeService(drainTimeout=30)
        service.startService()
        self.addCleanup(service.stopService)
        self.clientOf(service).request(Method.ALLOCATE, [RequestedTransport(17)])
        results = []
        service.drain().addCallback(results.append)
        self.reactor.advance(29)
        self.assertEqual(results, [])
        self.reactor.advance(1)
        self.assertEqual(results, [1])

    def test_sigusr1Drains(self):
        """
        Under twistd SIGUSR1 drains (on the reactor thread), and the previous handler comes
        back when the service stops.
        """
        previous = signal.getsignal(signal.SIGUSR1)
        service = self.makeService()
        service.reloadOnSighup = True
        service.startService()
        handler = signal.getsignal(signal.SIGUSR1)
        self.assertNotEqual(handler, previous)
        calls = []
        self.reactor.callFromThread = lambda f, *a: calls.append(f)
        handler(signal.SIGUSR1, None)
        self.assertEqual(calls, [service.drain])
        service.stopService()
        self.assertEqual(signal.getsignal(signal.SIGUSR1), previous)

    def test_noLogAddresses(self):
        """
        --no-log-addresses keeps the client's and the peer's addresses out of the refusals.
        """
        service = self.makeService(noLogAddresses=True)
        with capturedLogs() as events:
            self.permissionCodes(service, ["10.1.2.3"])
        [line] = [formatEvent(e) for e in events if e.get("refusal") == 403]
        self.assertNotIn("192.0.2.5", line)
        self.assertNotIn("10.1.2.3", line)

    def test_hostAddressesRefusedAsPeers(self):
        """
        Whatever it listens on, the service refuses as peers the addresses of its host (asked
        of L{twisted_turn.hostaddress.isLocalAddress} at each request), in every spelling.
        """
        from twisted_turn import service as serviceModule

        local = {"93.184.215.14", "2606:4700::5"}
        self.patch(serviceModule, "isLocalAddress", lambda host: host in local)
        service = self.makeService(listeningIps=("0.0.0.0",), relayIps=("8.8.8.8",))
        self.assertEqual(
            self.permissionCodes(service, ["93.184.215.14", "93.184.215.15"]), [403, None]
        )
        local.add("93.184.215.15")
        self.assertEqual(self.permissionCodes(service, ["93.184.215.15"]), [403])

    def test_raiseFileLimit(self):
        """
        The soft open-file limit is raised toward what the relay range needs, capped by the
        hard limit; the service warns when the range still does not fit.
        """
        import resource

        from twisted_turn import service as serviceModule

        limits = {"value": (1024, 4096)}
        self.patch(resource, "getrlimit", lambda which: limits["value"])

        def setrlimit(which, value):
            limits["value"] = value

        self.patch(resource, "setrlimit", setrlimit)
        self.assertEqual(serviceModule.raiseFileLimit(2000), 2000)
        self.assertEqual(limits["value"], (2000, 4096))
        self.assertEqual(serviceModule.raiseFileLimit(100000), 4096)
        self.assertEqual(serviceModule.raiseFileLimit(10), 4096)

        limits["value"] = (1024, 1024)
        service = self.makeService(minPort=40000, maxPort=49999)
        with capturedLogs() as events:
            service.startService()
        service.stopService()
        self.assertTrue(
            any(e.get("limit") == 1024 and e.get("wanted") == 10064 for e in events), events
        )

    def test_startupErrors(self):
        """
        A busy listening address, a relay address the host does not have, or an unwritable
        log file raise L{StartupError} with a one-line reason, and whatever was opened is
        closed again; under twistd the same ends the process with that line.
        """
        service = self.makeService(listeningIps=("198.51.100.1", "198.51.100.2"))
        self.reactor.busy.add(("198.51.100.2", 3478))
        error = self.assertRaises(StartupError, service.startService)
        self.assertEqual(
            str(error), "cannot listen on 198.51.100.2:3478: [Errno 98] in use"
        )
        self.assertEqual(self.reactor.udpPorts, {})
        self.assertFalse(service.running)

        service = self.makeService(relayIps=("198.51.100.9",))
        self.reactor.busy.add(("198.51.100.9", 0))
        error = self.assertRaises(StartupError, service.startService)
        self.assertIn("cannot bind the relay address 198.51.100.9", str(error))

        service = self.makeService(logFile=self.mktemp() + "/missing/turn.log")
        service.exitOnStartupError = True
        exit = self.assertRaises(SystemExit, service.startService)
        self.assertIn("twisted-turn: cannot write the log file", str(exit))

    def test_logFileStdout(self):
        """
        --log-file stdout or - (coturn's names for the standard output) opens no file.
        """
        for name in ("stdout", "-"):
            service = self.makeService(logFile=name)
            service.startService()
            self.assertIsNone(service._logFile)
            service.stopService()
            self.assertFalse(os.path.exists(name))

    def test_configurationWarnings(self):
        """
        --no-udp with --no-tcp, a short --nonce-secret and an --external-ip mapping for an
        address that is not a relay each get a warning at start.
        """
        service = self.makeService(
            noUdp=True, noTcp=True, nonceSecret=b"short",
            externalIps=(("203.0.113.7", "198.51.100.5"),),
        )
        with capturedLogs() as events:
            service.startService()
        service.stopService()
        text = " ".join(e["log_format"].format(**e) for e in events)
        self.assertIn("--no-udp and --no-tcp: there is no listener", text)
        self.assertIn("--nonce-secret is shorter than 16 bytes", text)
        self.assertIn("198.51.100.5 is not a relay address", text)

    def test_configOrOptions(self):
        """
        The service takes a L{TurnConfig} or keyword options, not both; bad options raise
        L{ConfigError} naming the option.
        """
        self.assertRaises(
            TypeError, TurnService, makeConfig(), MemoryUDPReactor(), realm="x"
        )
        error = self.assertRaises(
            ConfigError, TurnService, reactor=MemoryUDPReactor(), minPort=0
        )
        self.assertIn("min-port", str(error))

    def test_pidfileAndLogFile(self):
        """
        --pidfile is written at start and removed at stop; --log-file receives the log.
        """
        pidfile = self.mktemp()
        logfile = self.mktemp()
        service = self.makeService(pidfile=pidfile, logFile=logfile)
        service.startService()
        with open(pidfile) as f:
            self.assertEqual(int(f.read()), os.getpid())
        service.stopService()
        self.assertFalse(os.path.exists(pidfile))
        with open(logfile) as f:
            self.assertIn("TURN server on 198.51.100.1", f.read())


@implementer(IReactorFDSet)
class MemoryFDReactor(MemoryUDPReactor):
    """
    A L{MemoryUDPReactor} that also takes descriptors to watch (and never watches them), so
    the service chooses the batching port, which then binds real sockets.
    """

    def __init__(self) -> None:
        MemoryUDPReactor.__init__(self)
        self.readers: set = set()

    def addReader(self, reader):
        self.readers.add(reader)

    def removeReader(self, reader):
        self.readers.discard(reader)

    def addWriter(self, writer):
        pass

    def removeWriter(self, writer):
        pass

    def removeAll(self):
        readers, self.readers = list(self.readers), set()
        return readers

    def getReaders(self):
        return list(self.readers)

    def getWriters(self):
        return []


class BatchingServiceTests(SynchronousTestCase):
    """
    The service runs its UDP sockets on the batching port where the native module is present,
    as --udp-recvmmsg, --udp-sendmmsg and --udp-gso say.
    """

    def setUp(self):
        self.native, why = loadNative({})
        if self.native is None:
            if os.environ.get("CI"):
                raise AssertionError(why)
            raise SkipTest(why)

    def startService(self, **options):
        options.setdefault("listeningIps", ("127.0.0.1",))
        options.setdefault("relayIps", ("127.0.0.1",))
        options.setdefault("users", (("alice", "secret"),))
        options.setdefault("listeningPort", freeUdpPort())
        options.setdefault("noTcp", True)  # these tests are about the UDP ports
        self.reactor = MemoryFDReactor()
        service = TurnService(reactor=self.reactor, **options)
        with capturedLogs() as events:
            service.startService()
        self.addCleanup(self.stop, service)
        self.startLog = [formatEvent(e) for e in events]
        return service

    def stop(self, service):
        service.stopService()
        self.reactor.advance(0)

    def test_batchingByDefault(self):
        """
        By default listeners are batching ports with recvmmsg, sendmmsg and GSO, and the
        start-up log says so in one line.
        """
        service = self.startService()
        [port] = service.listeningPorts
        self.assertIsInstance(port, udp.BatchingPort)
        self.assertIn(port, self.reactor.readers)
        self.assertEqual(
            (service.batching.recvmmsg, service.batching.sendmmsg, service.batching.gso),
            (True, True, True),
        )
        lines = [line for line in self.startLog if line.startswith("UDP runs on")]
        self.assertEqual(
            lines, ["UDP runs on the batching UDP port: recvmmsg batches of 64, sendmmsg, UDP GSO"]
        )
        self.assertEqual(service.udpCounters()["backend"], "native")

    def test_relaySocketsBatch(self):
        """
        Relay sockets opened for allocations are batching ports too.
        """
        service = self.startService()
        relay = service.server.relays._opener("127.0.0.1", 0)
        self.addCleanup(relay.close)
        self.assertIsInstance(relay.transport, udp.BatchingPort)

    def test_switchesOff(self):
        """
        --udp-gso=false keeps batching without GSO; --udp-batch-size sets the batch;
        --udp-recvmmsg=false with --udp-sendmmsg=false is the stock port.
        """
        service = self.startService(udpGso=False, udpBatchSize=16)
        self.assertEqual((service.batching.gso, service.batching.batchSize), (False, 16))
        self.assertIsInstance(service.listeningPorts[0], udp.BatchingPort)
        service = self.startService(udpRecvmmsg=False, udpSendmmsg=False)
        self.assertNotIsInstance(service.listeningPorts[0], udp.BatchingPort)
        self.assertEqual(service.udpCounters()["backend"], "stock")
        self.assertIn(
            "UDP runs on Twisted's stock UDP port (--udp-recvmmsg and --udp-sendmmsg are off)",
            self.startLog,
        )

    def test_policyOff(self):
        """
        TWISTED_TURN_NATIVE=off runs on the stock port and says why in one line; a switch
        asked for explicitly is named in a warning.
        """
        self.patch(os, "environ", {"TWISTED_TURN_NATIVE": "off"})
        service = self.startService(udpGso=True)
        self.assertNotIsInstance(service.listeningPorts[0], udp.BatchingPort)
        self.assertIn("UDP runs on Twisted's stock UDP port: TWISTED_TURN_NATIVE=off",
                      self.startLog)
        self.assertIn(
            "--udp-gso need the native module, which is not in use (TWISTED_TURN_NATIVE=off)",
            self.startLog,
        )

    def test_oldKernelNoGso(self):
        """
        On a kernel older than 4.18 GSO stays off, and an explicit --udp-gso says why.
        """
        self.patch(udp, "kernelHasGso", lambda: False)
        service = self.startService(udpGso=True)
        self.assertEqual((service.batching.sendmmsg, service.batching.gso), (True, False))
        self.assertTrue(
            [line for line in self.startLog if line.startswith("--udp-gso needs Linux 4.18")],
            self.startLog,
        )

    def test_requireMissing(self):
        """
        TWISTED_TURN_NATIVE=require without the module stops the start with a clear message.
        """

        def missing():
            raise ImportError("No module named 'twisted_turn._turnio'")

        self.patch(os, "environ", {"TWISTED_TURN_NATIVE": "require"})
        self.patch(_native, "_importModule", missing)
        service = TurnService(
            reactor=MemoryFDReactor(), listeningIps=("127.0.0.1",), relayIps=("127.0.0.1",),
            users=(("a", "b"),),
        )
        e = self.assertRaises(StartupError, service.startService)
        self.assertIn("TWISTED_TURN_NATIVE=require", str(e))
        self.assertEqual(service.listeningPorts, [])

    def test_summaryEvery60Seconds(self):
        """
        Every 60 seconds the counters are logged at info level in one line, when they changed
        since the last summary.
        """
        service = self.startService()
        [port] = service.listeningPorts
        client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(client.close)
        client.settimeout(5)

        def bindingRoundTrip():
            request = encodeMessage(
                Method.BINDING, MessageClass.REQUEST, newTransactionId(), []
            )
            client.sendto(request, (port.getHost().host, port.getHost().port))
            select.select([port.fileno()], [], [], 5)
            port.doRead()
            client.recv(1000)

        bindingRoundTrip()
        with capturedLogs() as events:
            self.reactor.advance(SUMMARY_INTERVAL - 1)
            self.assertEqual(events, [])
            self.reactor.advance(1)
            [summary] = [e for e in events if "recvmmsg calls" in e["log_format"]]
            self.assertEqual(summary["log_level"], LogLevel.info)
            self.assertGreaterEqual(summary["counters"]["datagramsReceived"], 1)
            self.assertIn("GSO on", formatEvent(summary))
            self.reactor.advance(SUMMARY_INTERVAL)
            self.assertEqual(len([e for e in events if "recvmmsg calls" in e["log_format"]]), 1)
            bindingRoundTrip()
            self.reactor.advance(SUMMARY_INTERVAL)
            self.assertEqual(len([e for e in events if "recvmmsg calls" in e["log_format"]]), 2)
