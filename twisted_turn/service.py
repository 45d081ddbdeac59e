# -*- test-case-name: tests.test_service -*-
"""
L{TurnService}: the TURN server as a Twisted service, for C{twistd turn} and for embedding.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import secrets
import signal
import socket
import struct
from collections import Counter
from typing import Any, Dict, List, Optional, Tuple

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IReactorFDSet
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import (
    ILogObserver,
    globalLogPublisher,
    jsonFileLogObserver,
    textFileLogObserver,
)

from twisted_turn import udp
from twisted_turn._log import makeLogger, setVerbose
from twisted_turn._native import NativeUnavailable, loadNative
from twisted_turn.auth import (
    FEATURE_PASSWORD_ALGORITHMS,
    FEATURE_USERNAME_ANONYMITY,
    Authenticator,
    NonceManager,
)
from twisted_turn.bandwidth import BandwidthPolicy
from twisted_turn.config import ConfigError, TurnConfig, makeConfig, optionName
from twisted_turn.hostaddress import isLocalAddress
from twisted_turn.policy import PeerPolicy
from twisted_turn.protocol import ListenerProtocol, RelayProtocol
from twisted_turn.ratelimit import SourceLimiter, UserFailureLimiter
from twisted_turn.relay import RelayPortAllocator, addressFamily
from twisted_turn.server import TurnServer
from twisted_turn.stream import StreamListenerFactory
from twisted_turn.tcprelay import TcpRelays
from twisted_turn.tls import CertificateError, ServerCredentials, certificateSubject

_log = makeLogger(__name__)

#: Seconds between sweeps of expired allocations, permissions, channels and reservations.
SWEEP_INTERVAL = 5.0

#: Seconds between checks of whether a drain is over.
DRAIN_CHECK_INTERVAL = 1.0

#: Seconds between the end of a drain and the stop of the process (under twistd).
DRAIN_EXIT_DELAY = 0.5

_SIOCGIFADDR = 0x8915

#: Descriptors beyond the relay ports: listeners, log files, the reactor's own.
FILE_MARGIN = 64

#: --log-file values that mean "the standard output", as in coturn: no file of our own.
_STDOUT_NAMES = ("stdout", "-")

#: Seconds between the info-level summaries of the UDP batching counters.
SUMMARY_INTERVAL = 60.0

#: Pending connections per stream listener (the kernel caps it at net.core.somaxconn).
STREAM_BACKLOG = 1024

#: Largest UDP payload we accept; Twisted's default (8192) would truncate jumbo ChannelData.
MAX_DATAGRAM = 65535


def _isWildcard(host: str) -> bool:
    return ipaddress.ip_address(host).is_unspecified


def _interfaceAddresses() -> List[str]:
    """
    The IPv4 addresses of this host's network interfaces (Linux: SIOCGIFADDR per interface),
    in interface order; empty where that is not available.
    """
    try:
        import fcntl

        names = [name for _, name in socket.if_nameindex()]
    except (ImportError, OSError, AttributeError):
        return []
    addresses = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        for name in names:
            request = struct.pack("256s", name.encode()[:15])
            try:
                answer = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, request)
            except OSError:
                continue  # an interface without an IPv4 address
            addresses.append(socket.inet_ntoa(answer[20:24]))
    return addresses


def defaultRelayHost() -> str:
    """
    The address relays bind to when neither --relay-ip nor a specific --listening-ip is given:
    the first IPv4 interface address that is neither loopback nor link-local, else the first
    such address of the host's name, else 127.0.0.1.
    """
    candidates = _interfaceAddresses()
    try:
        infos = socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET, socket.SOCK_DGRAM)
    except OSError:
        infos = []
    candidates += [info[4][0] for info in infos]
    for host in candidates:
        address = ipaddress.ip_address(host)
        if not (address.is_loopback or address.is_link_local or address.is_unspecified):
            return host
    return "127.0.0.1"


def raiseFileLimit(wanted: int) -> Optional[int]:
    """
    Raise the soft limit on open files towards C{wanted} (one descriptor per relay port, plus
    a margin), as far as the hard limit allows.  The usual soft limit, 1024, is far below the
    default relay range of 16384 ports.

    @return: the soft limit now in force, or L{None} where there are no such limits.
    """
    try:
        import resource
    except ImportError:
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


class StartupError(Exception):
    """
    The service cannot start: a file cannot be written or an address cannot be bound.  The
    message says which and why, in one line.
    """


class TurnService(MultiService):
    """
    A TURN/STUN server: UDP listeners, relay sockets and the periodic sweep.

    Build it from a L{TurnConfig}, or from the same options as keyword arguments
    (C{TurnService(listeningPort=3478, staticAuthSecrets=["..."], realm="example.org")}).

    @ivar server: the L{TurnServer} (its C{counters} and C{table} are readable).
    @ivar generatedUser: C{(name, password)} when started with no credentials configured.
    @ivar listeningPorts: the listening ports, once started.
    @ivar exitOnStartupError: turn a L{StartupError} into L{SystemExit} with its message, for
        twistd, where a traceback would hide the one line that matters.
    """

    exitOnStartupError = False
    #: Reload on SIGHUP and drain on SIGUSR1 (set by C{twistd turn}; an embedding application
    #: owns its signals and calls L{reload} and L{drain} itself).
    reloadOnSighup = False
    #: Stop the reactor when a drain is over (set by C{twistd turn}, so the process exits).
    stopWhenDrained = False
    #: What SIGHUP reads the configuration with (C{twistd turn} reads its -c file and command
    #: line again): a callable returning a L{TurnConfig} or raising L{ConfigError}; L{None}
    #: reloads the certificate only.
    configLoader: Any = None

    #: How long the reactor's iterations take, measured once --prometheus is on.
    reactorTimer: Any = None

    #: A log observer for the application this service joins (C{twistd turn --log-format
    #: json} sets one): twistd logs through an application's L{ILogObserver} component,
    #: instead of its own text observer, when it has one.
    applicationLogObserver: Any = None

    #: The options L{reload} applies to a running server; a change to any other takes a restart.
    RELOADABLE = (
        "users", "staticAuthSecrets", "useAuthSecret", "ltCredMech", "restApiSeparator",
        "allowedPeerIps", "deniedPeerIps", "allowLoopbackPeers", "noMulticastPeers",
        "userQuota", "totalQuota", "maxBps", "bpsCapacity", "verbose", "noLogAddresses",
        "unauthorizedRatelimit", "unauthorizedRatelimitRps", "unauthorizedRatelimitBurst",
        "userAuthFailuresPerMinute", "cert", "pkey", "pkeyPwd", "cliPassword",
    )

    def __init__(
        self, config: Optional[TurnConfig] = None, reactor: Any = None, **options: Any
    ) -> None:
        MultiService.__init__(self)
        if config is None:
            config = makeConfig(**options)
        elif options:
            raise TypeError("give either a TurnConfig or keyword options, not both")
        if reactor is None:
            from twisted.internet import reactor as globalReactor

            reactor = globalReactor
        self.config = config
        self._reactor = reactor
        self.listeningPorts: List[Any] = []
        self._sweeper: Optional[LoopingCall] = None
        self._summarizer: Optional[LoopingCall] = None
        self._lastSummary: Optional[Dict[str, Any]] = None
        #: How UDP ports batch; decided at start, from the options and the native module.
        self.batching = udp.STOCK
        self._logObserver: Any = None
        self._logFile: Any = None
        #: The TLS and DTLS certificate, once started with --cert.
        self.credentials: Optional[ServerCredentials] = None
        self._previousSighup: Any = None
        self._previousSigusr1: Any = None
        self._drained: Optional[Deferred] = None
        self._drainCheck: Optional[LoopingCall] = None
        #: The admin API's site, once started with --web-admin.
        self.adminSite: Any = None

        self.generatedUser: Optional[Tuple[str, str]] = None
        if not (config.noAuth or config.users or config.useAuthSecret):
            self.generatedUser = ("turn-" + secrets.token_hex(3), secrets.token_urlsafe(18))

        self.relayHosts = self._relayHosts()
        self.externalAddresses = self._externalAddresses()
        self.authenticator = self._makeAuthenticator(config)
        relays = RelayPortAllocator(
            self._openRelay, tuple(self.relayHosts), config.minPort, config.maxPort
        )
        # RFC 6062 TCP relays, only with --tcp-relay: their relayed addresses are TCP
        # listening sockets in the same port range (TCP ports are a space of their own).
        self.tcpRelays: Optional[TcpRelays] = None
        tcpRelayPorts: Optional[RelayPortAllocator] = None
        if config.tcpRelay:
            self.tcpRelays = TcpRelays(reactor, Counter())
            tcpRelayPorts = RelayPortAllocator(
                self.tcpRelays.open, tuple(self.relayHosts), config.minPort, config.maxPort
            )

        self._relayPortOpen = relays.holds
        self._tcpRelayPortOpen = (
            tcpRelayPorts.holds if tcpRelayPorts is not None else lambda host, port: False
        )
        policy = self._makePolicy(config)
        self.server = TurnServer(
            clock=reactor,
            authenticator=self.authenticator,
            nonces=NonceManager(
                config.nonceSecret or os.urandom(32),
                config.staleNonce,
                FEATURE_PASSWORD_ALGORITHMS | FEATURE_USERNAME_ANONYMITY,
            ),
            policy=policy,
            relays=relays,
            realm=config.realm,
            noAuth=config.noAuth,
            software=config.softwareAttribute,
            fingerprint=config.fingerprint,
            maxAllocateLifetime=config.maxAllocateLifetime,
            permissionLifetime=config.permissionLifetime,
            channelLifetime=config.channelLifetime,
            userQuota=config.userQuota,
            totalQuota=config.totalQuota,
            externalAddresses=self.externalAddresses,
            tcpRelays=self.tcpRelays,
            tcpRelayPorts=tcpRelayPorts,
            unauthenticatedLimit=self._makeUnauthenticatedLimit(config),
            authFailureLimit=self._makeAuthFailureLimit(config),
            bandwidth=BandwidthPolicy(config.maxBps, config.bpsCapacity),
            logAddresses=not config.noLogAddresses,
            alternateServers=config.alternateServers,
            tlsAlternateServers=config.tlsAlternateServers,
        )
        if self.tcpRelays is not None:
            self.tcpRelays.counters = self.server.counters

    # -- building ------------------------------------------------------------------------------

    def _makeAuthenticator(self, config: TurnConfig) -> Authenticator:
        users = list(config.users)
        if self.generatedUser is not None and not (users or config.useAuthSecret):
            users.append(self.generatedUser)
        return Authenticator(
            config.realm,
            users=users,
            authSecrets=config.staticAuthSecrets,
            restSeparator=config.restApiSeparator,
        )

    def _makePolicy(self, config: TurnConfig) -> PeerPolicy:
        return PeerPolicy(
            allowLoopback=config.allowLoopbackPeers,
            noMulticast=config.noMulticastPeers,
            allowed=config.allowedPeerIps,
            denied=config.deniedPeerIps,
            relayAddresses={
                **{host: host for host in self.relayHosts},
                **{public: private for private, public in self.externalAddresses.items()},
            },
            relayPortOpen=self._relayPortOpen,
            tcpRelayPortOpen=self._tcpRelayPortOpen,
            ownAddresses=[host for host in self._listeningHosts() if not _isWildcard(host)],
            isLocal=isLocalAddress,
        )

    @staticmethod
    def _makeUnauthenticatedLimit(config: TurnConfig) -> Optional[SourceLimiter]:
        if not config.unauthorizedRatelimit:
            return None
        return SourceLimiter(
            config.unauthorizedRatelimitRps,
            config.unauthorizedRatelimitBurst or config.unauthorizedRatelimitRps,
        )

    @staticmethod
    def _makeAuthFailureLimit(config: TurnConfig) -> Optional[UserFailureLimiter]:
        if not config.userAuthFailuresPerMinute:
            return None
        return UserFailureLimiter(config.userAuthFailuresPerMinute)

    def _listeningHosts(self) -> Tuple[str, ...]:
        return self.config.listeningIps or ("0.0.0.0",)

    def _relayHosts(self) -> List[str]:
        """
        One relay address per family: the first --relay-ip of each family when any is given;
        otherwise the specific --listening-ip of each family, and for IPv4 (the family clients
        get unless they ask otherwise) the host's default address when no IPv4 listening
        address is specific.
        """
        hosts: Dict[int, str] = {}
        if self.config.relayIps:
            for host in self.config.relayIps:
                hosts.setdefault(addressFamily(host), host)
            ignored = [host for host in self.config.relayIps if host not in hosts.values()]
            if ignored:
                _log.warn(
                    "One relay address per family is served; ignoring --relay-ip {ignored}",
                    ignored=", ".join(ignored),
                )
            return list(hosts.values())
        for host in self._listeningHosts():
            if not _isWildcard(host):
                hosts.setdefault(addressFamily(host), host)
        if 1 not in hosts:
            hosts[1] = defaultRelayHost()
        return sorted(hosts.values(), key=addressFamily)

    def _externalAddresses(self) -> Dict[str, str]:
        """
        Relay host to the public address announced in XOR-RELAYED-ADDRESS (--external-ip
        C{public[/private]}; without C{private} it applies to the relay address of its family).
        """
        mapping: Dict[str, str] = {}
        for public, private in self.config.externalIps:
            if private is not None:
                mapping[private] = public
            else:
                for host in self.relayHosts:
                    if addressFamily(host) == addressFamily(public):
                        mapping.setdefault(host, public)
        return mapping

    def _openRelay(self, host: str, port: int) -> RelayProtocol:
        protocol = RelayProtocol(self.server, self._reactor)
        try:
            udp.listenUDP(
                self._reactor, port, protocol, host, MAX_DATAGRAM, self.batching,
                self.config.sockBufSize,
            )
        except CannotListenError as e:
            # Keep the errno: the allocator tells "port taken" from "cannot open any socket".
            raise OSError(getattr(e.socketError, "errno", None), str(e)) from e
        return protocol

    # -- running -------------------------------------------------------------------------------

    def startService(self) -> None:
        """
        Open the log file and pid file, bind the listeners and start the sweep.

        @raise StartupError: a file cannot be written or an address cannot be bound; what was
            opened is closed again.  Under twistd (see L{twisted_turn.tap.makeService}) this
            ends the process with the one-line message instead.
        """
        try:
            self._start()
        except StartupError as e:
            self._close()
            if self.exitOnStartupError:
                raise SystemExit(f"twisted-turn: {e}") from None
            raise
        MultiService.startService(self)

    def _start(self) -> None:
        config = self.config
        setVerbose(config.verbose)
        if config.logFile and config.logFile not in _STDOUT_NAMES:
            try:
                self._logFile = open(config.logFile, "a")
            except OSError as e:
                raise StartupError(f"cannot write the log file {config.logFile}: {e.strerror}")
            self._logObserver = (
                jsonFileLogObserver(self._logFile, recordSeparator="")
                if config.logFormat == "json" else textFileLogObserver(self._logFile)
            )
            globalLogPublisher.addObserver(self._logObserver)
        if config.pidfile:
            try:
                with open(config.pidfile, "w") as f:
                    f.write(f"{os.getpid()}\n")
            except OSError as e:
                raise StartupError(f"cannot write the pid file {config.pidfile}: {e.strerror}")
        self._warnAboutConfiguration()
        self.batching = self._batchingOptions()
        _log.info("UDP runs on {description}", description=self.batching.describe())
        for host in self.relayHosts:
            self._probeRelayHost(host)
        if self.generatedUser is not None:
            self._announceGeneratedUser()
        if not config.noUdp:
            for host in self._listeningHosts():
                self._listen(host)
        if not config.noTcp:
            factory = StreamListenerFactory(self.server, self._reactor, "tcp")
            for host in self._listeningHosts():
                self._listenStream(host, config.listeningPort, factory, "TCP")
        self._startSecure()
        self._sweeper = LoopingCall(self._sweep)
        self._sweeper.clock = self._reactor
        self._sweeper.start(SWEEP_INTERVAL, now=False)
        if self.reloadOnSighup and hasattr(signal, "SIGHUP"):
            self._previousSighup = (signal.signal(signal.SIGHUP, self._sighup),)
            self._previousSigusr1 = (signal.signal(signal.SIGUSR1, self._sigusr1),)
        self._reportBufferSizes()
        if config.prometheus:
            self._startMetrics()
        if config.webAdmin:
            self._startAdmin()
        self._summarizer = LoopingCall(self._summarize)
        self._summarizer.clock = self._reactor
        self._summarizer.start(SUMMARY_INTERVAL, now=False)
        _log.info(
            "TURN server on {listeners} port {port} ({transports}), relaying on {relays} "
            "ports {minPort}-{maxPort}, realm {realm!r}",
            listeners=",".join(self._listeningHosts()),
            port=config.listeningPort,
            transports=", ".join(self._transports()) or "no transport",
            relays=",".join(self.relayHosts),
            minPort=config.minPort,
            maxPort=config.maxPort,
            realm=config.realm,
        )

    def _startMetrics(self) -> None:
        """
        Serve Prometheus metrics on --prometheus-address, --prometheus-port and
        --prometheus-path.

        @raise StartupError: prometheus_client is missing, or the port cannot be bound.
        """
        try:
            from prometheus_client import CollectorRegistry
        except ImportError:
            raise StartupError(
                "--prometheus needs prometheus_client: pip install 'twisted-turn[metrics]'"
            )
        from twisted.web.resource import Resource
        from twisted.web.server import Site

        from twisted_turn import metrics

        config = self.config
        if config.prometheusUsernameLabels:
            self.server.endedTrafficByUser = {}
        self.reactorTimer = metrics.ReactorTimer.install(self._reactor)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(metrics.TurnCollector(lambda: metrics.snapshot(self)))
        root: Resource = metrics.MetricsResource(registry)
        for segment in reversed([part for part in config.prometheusPath.split("/") if part]):
            parent = Resource()
            parent.putChild(segment.encode(), root)
            root = parent
        site = Site(root)
        site.noisy = False
        address = config.prometheusAddress
        try:
            listening = self._reactor.listenTCP(
                config.prometheusPort, site, interface=address
            )
        except CannotListenError as e:
            raise StartupError(
                f"--prometheus-port: cannot listen on {address}:{config.prometheusPort}: "
                f"{e.socketError}"
            )
        self.listeningPorts.append(listening)
        _log.info(
            "Prometheus metrics on http://{address}:{port}{path}",
            address=f"[{address}]" if ":" in address else address,
            port=listening.getHost().port, path=config.prometheusPath,
        )

    def _startAdmin(self) -> None:
        """
        Serve the admin API and the status page on --web-admin-ip and --web-admin-port: over
        TLS off loopback.

        @raise StartupError: no credential is configured, no certificate for an address off
            loopback, or the port cannot be bound.
        """
        from twisted_turn.admin import adminSite, isLoopback

        config = self.config
        if not config.cliPassword:
            raise StartupError(
                "--web-admin needs --cli-password: the admin API serves no request without "
                "a credential"
            )
        address = config.webAdminIp
        secure = not isLoopback(address)
        if secure:
            if config.cert is None:
                raise StartupError(
                    f"--web-admin-ip {address} is off loopback, so the admin API is served "
                    "over TLS only, and that needs --cert"
                )
            self._loadCredentials()
        self.adminSite = adminSite(self, self._reactor)
        factory: Any = self.adminSite
        if secure:
            from twisted.protocols.tls import TLSMemoryBIOFactory

            factory = TLSMemoryBIOFactory(self.credentials, False, self.adminSite)
            factory.noisy = False
        try:
            listening = self._reactor.listenTCP(config.webAdminPort, factory, interface=address)
        except CannotListenError as e:
            raise StartupError(
                f"--web-admin-port: cannot listen on {address}:{config.webAdminPort}: "
                f"{e.socketError}"
            )
        self.listeningPorts.append(listening)
        _log.info(
            "Admin API and status page on {scheme}://{address}:{port}/",
            scheme="https" if secure else "http",
            address=f"[{address}]" if ":" in address else address,
            port=listening.getHost().port,
        )

    def _loadCredentials(self) -> None:
        """
        Load --cert and --pkey, once.

        @raise StartupError: the certificate or key cannot be used.
        """
        if self.credentials is not None:
            return
        config = self.config
        try:
            self.credentials = ServerCredentials(
                config.cert,  # type: ignore[arg-type]
                config.pkey,
                config.pkeyPwd,
                config.cipherList,
                tls13Only=config.noTlsv12,
            )
        except CertificateError as e:
            raise StartupError(str(e))
        _log.info("TLS certificate: {subject}", subject=certificateSubject(config.cert))

    def _secureOn(self) -> Tuple[bool, bool]:
        """
        Whether the TLS and the DTLS listeners run: asked for and a certificate given.
        """
        config = self.config
        return (
            config.cert is not None and not config.noTls,
            config.cert is not None and not config.noDtls,
        )

    def _listeners(self) -> List[Tuple[str, int]]:
        """
        The client transports that listen, with their ports: C{("udp", 3478)}, C{("tcp",
        3478)}, C{("tls", 5349)}, C{("dtls", 5349)}, as configured.
        """
        config = self.config
        tls, dtls = self._secureOn()
        return [
            (name, port)
            for name, port, on in (
                ("udp", config.listeningPort, not config.noUdp),
                ("tcp", config.listeningPort, not config.noTcp),
                ("tls", config.tlsListeningPort, tls),
                ("dtls", config.tlsListeningPort, dtls),
            )
            if on
        ]

    def _transports(self) -> List[str]:
        """
        The listeners' transports and ports, for the start-up summary.
        """
        return [
            name.upper() if port == self.config.listeningPort else f"{name.upper()} on {port}"
            for name, port in self._listeners()
        ]

    def _startSecure(self) -> None:
        """
        Load the certificate and start the TLS and DTLS listeners on --tls-listening-port.

        @raise StartupError: the certificate or key cannot be used, or a port cannot be bound.
        """
        config = self.config
        tls, dtls = self._secureOn()
        if not (tls or dtls):
            if config.cert is None and not (config.noTls and config.noDtls):
                _log.info("No --cert given, so there are no TLS and DTLS listeners")
            return
        self._loadCredentials()
        port = config.tlsListeningPort
        if tls:
            from twisted.protocols.tls import TLSMemoryBIOFactory

            factory = TLSMemoryBIOFactory(
                self.credentials, False, StreamListenerFactory(self.server, self._reactor, "tls")
            )
            factory.noisy = False
            for host in self._listeningHosts():
                self._listenStream(host, port, factory, "TLS")
        if dtls:
            from twisted_turn.dtlslistener import DtlsListenerProtocol

            for host in self._listeningHosts():
                protocol = DtlsListenerProtocol(
                    self.server, self._reactor, self.credentials.currentDtlsContext
                )
                self._listen(host, port, protocol, "DTLS")

    def setServiceParent(self, parent: Any) -> None:
        if self.applicationLogObserver is not None and hasattr(parent, "setComponent"):
            parent.setComponent(ILogObserver, self.applicationLogObserver)
        MultiService.setServiceParent(self, parent)

    def _sighup(self, signalNumber: int, frame: Any) -> None:
        self._reactor.callFromThread(self._reloadFromSignal)

    def _sigusr1(self, signalNumber: int, frame: Any) -> None:
        self._reactor.callFromThread(self.drain)

    def drain(self) -> Deferred:
        """
        Drain before a restart (what SIGUSR1 does under twistd, as in coturn): new Allocates
        are sent to an alternate server (300, with --alternate-server) or refused (486);
        Refresh, permissions, channels and data go on.  The drain is over once
        --drain-min-allocations or fewer allocations are left, or --drain-timeout passed;
        under twistd the process then exits.

        @return: a L{Deferred} that fires with the number of allocations left when the drain
            is over (the same one if a drain is already under way).
        """
        if self._drained is not None:
            return self._drained
        self._drained = Deferred()
        self.server.draining = True
        config = self.config
        started = self._reactor.seconds()
        _log.info(
            "Draining: new allocations are {where}; exiting once {minimum} or fewer of the "
            "{count} allocations are left{timeout}",
            where="sent to the alternate servers" if config.alternateServers
            or config.tlsAlternateServers else "refused (486)",
            minimum=config.drainMinAllocations, count=len(self.server.table),
            timeout=f", or after {config.drainTimeout} s" if config.drainTimeout else "",
        )

        def check() -> None:
            left = len(self.server.table)
            timedOut = bool(config.drainTimeout) and (
                self._reactor.seconds() - started >= config.drainTimeout
            )
            if left > config.drainMinAllocations and not timedOut:
                return
            self._drainCheck.stop()
            _log.info(
                "Drained: {left} allocations left{why}", left=left,
                why=" (--drain-timeout)" if left > config.drainMinAllocations else "",
            )
            drained, self._drained = self._drained, None
            if self.stopWhenDrained:
                # Not at once: answers already written (the admin API's to POST drain) go
                # out first, where a stop now would drop them with the connections.
                self._reactor.callLater(DRAIN_EXIT_DELAY, self._reactor.stop)
            drained.callback(left)  # type: ignore[union-attr]

        self._drainCheck = LoopingCall(check)
        self._drainCheck.clock = self._reactor
        self._drainCheck.start(DRAIN_CHECK_INTERVAL, now=True)
        return self._drained if self._drained is not None else succeed(len(self.server.table))

    def _reloadFromSignal(self) -> None:
        self.reloadConfiguration()

    def reloadConfiguration(self) -> Optional[str]:
        """
        Read the configuration again with L{configLoader} and apply it (SIGHUP and the admin
        API's C{POST reload}); without a loader, reload the certificate only.

        @return: L{None}, or what is wrong with the configuration, which then changes
            nothing (and is logged once).
        """
        config: Optional[TurnConfig] = None
        if self.configLoader is not None:
            try:
                config = self.configLoader()
            except ConfigError as e:
                _log.warn("Keeping the current configuration: {error}", error=str(e))
                return str(e)
        self.reload(config)
        return None

    def reload(self, config: Optional[TurnConfig] = None) -> None:
        """
        Apply a new configuration to the running server (what SIGHUP does under twistd): the
        options in L{RELOADABLE} take effect at once (the bandwidth limits apply to live
        allocations too); changes to any other are logged as needing a restart.  The TLS and
        DTLS certificate is read again in any case (L{reloadCertificates}).

        @param config: the new configuration; L{None} reloads the certificate only.
        """
        if config is not None:
            self._apply(config)
        if self.credentials is not None:
            self.reloadCertificates()

    def _apply(self, config: TurnConfig) -> None:
        """
        Apply the reloadable options of C{config}; name the others that changed.
        """
        old = self.config
        changed = {
            field.name for field in dataclasses.fields(TurnConfig)
            if field.name != "notImplemented"
            and getattr(old, field.name) != getattr(config, field.name)
        }
        later = sorted(changed.difference(self.RELOADABLE))
        if config.noAuth != old.noAuth:
            later.append("noAuth")
        applied = dataclasses.replace(
            old, **{name: getattr(config, name) for name in self.RELOADABLE}
        )
        server = self.server
        if changed & {"users", "staticAuthSecrets", "useAuthSecret", "ltCredMech",
                      "restApiSeparator"}:
            self.authenticator = self._makeAuthenticator(applied)
            server.setAuthenticator(self.authenticator)
        if changed & {"allowedPeerIps", "deniedPeerIps", "allowLoopbackPeers",
                      "noMulticastPeers"}:
            pruned = server.setPolicy(self._makePolicy(applied))
            _log.info(
                "Peer policy reloaded; {pruned} permissions and channels to peers it now "
                "refuses were removed", pruned=pruned,
            )
        if changed & {"userQuota", "totalQuota"}:
            server.setQuotas(applied.userQuota, applied.totalQuota)
        if changed & {"maxBps", "bpsCapacity"}:
            server.setBandwidth(applied.maxBps, applied.bpsCapacity)
            _log.info(
                "Bandwidth limits now --max-bps {maxBps} and --bps-capacity {capacity} "
                "(0: none)", maxBps=applied.maxBps, capacity=applied.bpsCapacity,
            )
        if changed & {"unauthorizedRatelimit", "unauthorizedRatelimitRps",
                      "unauthorizedRatelimitBurst", "userAuthFailuresPerMinute"}:
            server.setLimits(
                self._makeUnauthenticatedLimit(applied), self._makeAuthFailureLimit(applied)
            )
        if "verbose" in changed:
            setVerbose(applied.verbose)
        if "noLogAddresses" in changed:
            server.setLogAddresses(not applied.noLogAddresses)
        if self.credentials is not None and changed & {"cert", "pkey", "pkeyPwd"}:
            self.credentials.setFiles(applied.cert, applied.pkey, applied.pkeyPwd)
        self.config = applied
        applies = sorted(changed.intersection(self.RELOADABLE))
        _log.info(
            "Configuration reloaded: {options}",
            options=", ".join(optionName(name) for name in applies) or "nothing changed",
        )
        if later:
            _log.warn(
                "Changed options that take a restart, not applied: {options}",
                options=", ".join(optionName(name) for name in later),
            )

    def reloadCertificates(self) -> bool:
        """
        Read --cert and --pkey again (what SIGHUP does under twistd).  New TLS connections and
        DTLS sessions get the new certificate; established ones keep theirs.  A file that
        cannot be used is logged and the current certificate stays.

        @return: whether a new certificate is in service.
        """
        if self.credentials is None:
            _log.warn("No TLS certificate to reload: the server runs without --cert")
            return False
        return self.credentials.reload()

    def _warnAboutConfiguration(self) -> None:
        config = self.config
        for name in config.notImplemented:
            _log.warn(
                "Option {option} is recognised but not served yet by twisted-turn; ignoring it",
                option=name,
            )
        wanted = config.maxPort - config.minPort + 1 + FILE_MARGIN
        limit = raiseFileLimit(wanted)
        if limit is not None and limit != -1 and limit < wanted:
            _log.warn(
                "Only {limit} open files are allowed (relay ports {minPort}-{maxPort} need "
                "{wanted}): past that, Allocate gets 508. Raise the limit (ulimit -n) or narrow "
                "the range.",
                limit=limit, minPort=config.minPort, maxPort=config.maxPort, wanted=wanted,
            )
        if config.noAuth:
            _log.warn(
                "--no-auth: this server relays for ANYONE who can reach it (an open relay). "
                "Use it only on a closed network."
            )
        if config.noUdp and config.noTcp:
            _log.warn("--no-udp and --no-tcp: there is no listener on --listening-port")
        if config.tcpRelay:
            if config.noTcp and (config.noTls or config.cert is None):
                _log.warn("--tcp-relay: TCP relays need clients over TCP or TLS, and there is "
                          "no TCP or TLS listener")
            else:
                _log.info("--tcp-relay: clients over TCP and TLS may allocate TCP relays "
                          "(RFC 6062); the peer policy applies to every outgoing connection")
        if config.nonceSecret is not None and len(config.nonceSecret) < 16:
            _log.warn("--nonce-secret is shorter than 16 bytes: nonces are easier to forge")
        for public, private in config.externalIps:
            if private is not None and private not in self.relayHosts:
                _log.warn(
                    "--external-ip {public}/{private}: {private} is not a relay address, so "
                    "the mapping is never used",
                    public=public, private=private,
                )

    def _batchingOptions(self) -> udp.BatchingOptions:
        """
        The UDP batching switches: each of --udp-recvmmsg, --udp-sendmmsg and --udp-gso is on
        unless switched off, where the native module is present (TWISTED_TURN_NATIVE policy).

        @raise StartupError: TWISTED_TURN_NATIVE=require and the module is missing.
        """
        config = self.config
        try:
            native, reason = loadNative()
        except NativeUnavailable as e:
            raise StartupError(str(e))
        if native is not None and not IReactorFDSet.providedBy(self._reactor):
            # The batching port watches its descriptor itself; a reactor that cannot (a test's
            # fake, or one without file descriptors) gets the stock ports it makes.
            native, reason = None, "the reactor does not provide IReactorFDSet"
        sendmmsg = config.udpSendmmsg is not False
        options = udp.BatchingOptions(
            native=native,
            recvmmsg=config.udpRecvmmsg is not False,
            sendmmsg=sendmmsg,
            gso=sendmmsg and config.udpGso is not False and udp.kernelHasGso(),
            batchSize=config.udpBatchSize,
            budget=max(udp.DEFAULT_BUDGET, config.udpBatchSize),
            nativeReason=reason,
        )
        if config.udpGso and native is not None and not udp.kernelHasGso():
            _log.warn("--udp-gso needs Linux 4.18 or later; this kernel is {release}, so GSO "
                      "is off", release=os.uname().release)
        if native is None:
            asked = [
                "--udp-" + name
                for name, value in (
                    ("recvmmsg", config.udpRecvmmsg),
                    ("sendmmsg", config.udpSendmmsg),
                    ("gso", config.udpGso),
                )
                if value
            ]
            if asked:
                _log.warn(
                    "{options} need the native module, which is not in use ({reason})",
                    options=", ".join(asked), reason=reason,
                )
        return options

    def udpCounters(self) -> Dict[str, Any]:
        """
        The UDP batching counters of this process (see L{udp.udpCounters}).
        """
        return udp.udpCounters(self.batching)

    def _reportBufferSizes(self) -> None:
        """
        Say which UDP socket buffers are in force, and warn when the kernel capped them below
        --sock-buf-size (no CAP_NET_ADMIN, and net.core.rmem_max or wmem_max lower).
        """
        wanted = self.config.sockBufSize
        sizes = next(
            filter(None, (udp.bufferSizes(port) for port in self.listeningPorts)), None
        )
        if sizes is None or not wanted:
            return
        receive, send = sizes
        if receive < wanted or send < wanted:
            _log.warn(
                "UDP socket buffers are {receive} bytes to receive and {send} to send, below "
                "--sock-buf-size {wanted}: the kernel caps them at net.core.rmem_max and "
                "wmem_max for a process without CAP_NET_ADMIN. Raise those (sysctl -w "
                "net.core.rmem_max={wanted} net.core.wmem_max={wanted}) or a burst of "
                "datagrams may be dropped (dropKernelQueue in the UDP summary).",
                receive=receive, send=send, wanted=wanted,
            )
        else:
            _log.info(
                "UDP socket buffers: {receive} bytes to receive, {send} to send",
                receive=receive, send=send,
            )

    def _summarize(self) -> None:
        # Only when something happened since the last one: an idle server stays quiet.
        counters = self.udpCounters()
        if counters == self._lastSummary:
            return
        self._lastSummary = counters
        histogram = counters.get("batchSizes", {})
        drops = {
            name: value for name, value in counters.items()
            if (name.startswith("drop") or name.endswith("Error")) and value
        }
        if counters["backend"] == "stock":
            if drops:
                _log.info(
                    "UDP on Twisted's stock port: drops {drops}",
                    drops=" ".join(f"{k}:{v}" for k, v in drops.items()), counters=counters,
                )
            return
        _log.info(
            "UDP: {datagramsReceived} datagrams in {recvmmsgCalls} recvmmsg calls (batch "
            "sizes {histogram}); {datagramsSent} sent in {flushes} flushes: {gsoSends} GSO "
            "sends of {gsoDatagrams} datagrams, {sendmmsgCalls} sendmmsg calls; GSO {gso}; "
            "drops {drops}",
            datagramsReceived=counters["datagramsReceived"],
            recvmmsgCalls=counters["recvmmsgCalls"],
            histogram=" ".join(f"{k}:{v}" for k, v in histogram.items() if v) or "none",
            datagramsSent=counters["datagramsSent"],
            flushes=counters["flushes"],
            gsoSends=counters["gsoSends"],
            gsoDatagrams=counters["gsoDatagrams"],
            sendmmsgCalls=counters["sendmmsgCalls"],
            gso="on" if counters["gsoEnabled"] else "off",
            drops=" ".join(f"{k}:{v}" for k, v in drops.items()) or "none",
            counters=counters,
        )

    def _probeRelayHost(self, host: str) -> None:
        """
        Bind and close a socket on a relay address, so a relay address this host does not have
        fails at start instead of every Allocate failing with 508.
        """
        quiet = DatagramProtocol()
        quiet.noisy = False
        try:
            probe = self._reactor.listenUDP(0, quiet, interface=host)
        except CannotListenError as e:
            raise StartupError(f"cannot bind the relay address {host}: {e.socketError}")
        probe.stopListening()

    def _sweep(self) -> None:
        # A failure must not end the LoopingCall: expired allocations would then live on.
        try:
            self.server.sweep()
        except Exception:
            _log.failure("Sweeping expired allocations failed; trying again next time")

    def _listen(
        self, host: str, port: Optional[int] = None, protocol: Any = None, kind: str = "UDP"
    ) -> None:
        """
        Listen for datagram clients: plain UDP by default, or C{protocol} (DTLS) on C{port}.
        """
        if protocol is None:
            protocol = ListenerProtocol(self.server, self._reactor)
        if port is None:
            port = self.config.listeningPort
        try:
            if host == "::":
                listening = self._listenIPv6Only(port, protocol)
            else:
                listening = udp.listenUDP(
                    self._reactor, port, protocol, host, MAX_DATAGRAM, self.batching,
                    self.config.sockBufSize,
                )
        except CannotListenError as e:
            where = f"[{host}]" if ":" in host else host
            suffix = "" if kind == "UDP" else f" over {kind}"
            raise StartupError(f"cannot listen on {where}:{port}{suffix}: {e.socketError}")
        self.listeningPorts.append(listening)

    def _listenIPv6Only(self, port: int, protocol: Any) -> Any:
        """
        Listen on the IPv6 wildcard for IPv6 only.  Twisted leaves IPV6_V6ONLY off, so C{::}
        would also take IPv4 (as ::ffff:a.b.c.d clients, answered with IPv6 mapped addresses)
        and collide with an IPv4 listener on the same port.
        """
        sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(("::", port))
            sock.setblocking(False)
            return udp.adoptDatagramPort(
                self._reactor, sock, protocol, MAX_DATAGRAM, self.batching,
                self.config.sockBufSize,
            )
        except OSError as e:
            raise CannotListenError("::", port, e) from e
        finally:
            sock.close()  # the reactor holds its own duplicate of the descriptor

    def _listenStream(self, host: str, port: int, factory: Any, kind: str) -> Any:
        """
        Listen for stream clients (TCP, or TLS with a wrapping factory) on C{host}.  The IPv6
        wildcard is IPv6 only, as for UDP, so it does not collide with an IPv4 listener.

        @raise StartupError: the address cannot be bound.
        """
        where = f"[{host}]" if ":" in host else host
        try:
            if host == "::":
                sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
                try:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    sock.bind(("::", port))
                    sock.listen(STREAM_BACKLOG)
                    sock.setblocking(False)
                    listening = self._reactor.adoptStreamPort(
                        sock.fileno(), socket.AF_INET6, factory
                    )
                finally:
                    sock.close()  # the reactor holds its own duplicate of the descriptor
            else:
                listening = self._reactor.listenTCP(
                    port, factory, backlog=STREAM_BACKLOG, interface=host
                )
        except (CannotListenError, OSError) as e:
            reason = getattr(e, "socketError", None) or e
            raise StartupError(f"cannot listen on {where}:{port} over {kind}: {reason}")
        self.listeningPorts.append(listening)
        return listening

    def _announceGeneratedUser(self) -> None:
        name, password = self.generatedUser  # type: ignore[misc]
        hosts = [host for host in self._listeningHosts() if not _isWildcard(host)]
        hosts = hosts or list(self.externalAddresses.values()) or self.relayHosts
        # Browsers reach TURN over UDP, TCP and TLS (turns:), never over DTLS.
        listening = dict(self._listeners())
        urls = [
            f"turn:{f'[{host}]' if ':' in host else host}:{listening[name]}?transport={name}"
            for host in hosts
            for name in ("udp", "tcp")
            if name in listening
        ]
        if "tls" in listening:
            urls += [
                f"turns:{f'[{host}]' if ':' in host else host}:{listening['tls']}"
                "?transport=tcp"
                for host in hosts
            ]
        snippet = json.dumps({"urls": urls, "username": name, "credential": password})
        _log.warn(
            "No credentials were configured, so this run made a user of its own: "
            "{user} / {password}. For an RTCPeerConnection: iceServers: [{snippet}]",
            user=name,
            password=password,
            snippet=snippet,
        )

    def stopService(self) -> Any:
        result = MultiService.stopService(self)
        if self._summarizer is not None and self._summarizer.running:
            # What happened since the last summary, before the sockets go.
            self._summarize()
        self._close()
        self.server.closeAll()
        return result

    def _close(self) -> None:
        """
        Undo what L{_start} did, as far as it got.
        """
        for loop in (self._sweeper, self._summarizer):
            if loop is not None and loop.running:
                loop.stop()
        for port in self.listeningPorts:
            port.stopListening()
        self.listeningPorts = []
        if self._previousSighup is not None:
            [previous] = self._previousSighup
            signal.signal(signal.SIGHUP, previous if previous is not None else signal.SIG_DFL)
            self._previousSighup = None
        if self._previousSigusr1 is not None:
            [previous] = self._previousSigusr1
            signal.signal(signal.SIGUSR1, previous if previous is not None else signal.SIG_DFL)
            self._previousSigusr1 = None
        if self._drainCheck is not None and self._drainCheck.running:
            self._drainCheck.stop()
        if self.adminSite is not None:
            self.adminSite.admin.history.stop()
        if self._logObserver is not None:
            globalLogPublisher.removeObserver(self._logObserver)
            self._logObserver = None
        if self._logFile is not None:
            self._logFile.close()
            self._logFile = None
        if self.config.pidfile and os.path.exists(self.config.pidfile):
            os.remove(self.config.pidfile)
