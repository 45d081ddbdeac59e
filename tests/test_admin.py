"""
Tests for L{twisted_turn.admin}: the admin API and the status page of a L{TurnService} on
fakes, through twisted.web's whole stack (raw HTTP in, raw HTTP out).
"""

from __future__ import annotations

import base64
import json
from typing import Dict, Optional, Tuple

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn._version import __version__
from twisted_turn.admin import STATIC
from twisted_turn.admin.api import HISTORY_INTERVAL, HISTORY_LENGTH
from twisted_turn.config import ConfigError, makeConfig
from twisted_turn.service import StartupError, TurnService
from twisted_turn.stun.attributes import (
    ChannelNumber,
    ErrorCode,
    Lifetime,
    RequestedTransport,
    XorPeerAddress,
)
from twisted_turn.stun.channeldata import encodeChannelData
from twisted_turn.stun.message import MessageClass, Method
from twisted_turn.testing import MemoryUDPReactor, TestClient

PEER = ("8.8.8.8", 6000)
UDP = RequestedTransport(17)
PASSWORD = "hunter2-but-longer"


def basic(user: str, password: str) -> bytes:
    return b"Basic " + base64.b64encode(f"{user}:{password}".encode())


class Response:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.code = int(lines[0].split()[1])
        self.headers: Dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()

    def json(self):
        return json.loads(self.body)


class AdminTests(SynchronousTestCase):
    def service(self, **options):
        options.setdefault("listeningIps", ("198.51.100.1",))
        options.setdefault("relayIps", ("198.51.100.1",))
        options.setdefault("users", (("alice", "secret"), ("bob", "secret")))
        options.setdefault("webAdmin", True)
        options.setdefault("cliPassword", PASSWORD)
        self.reactor = MemoryUDPReactor()
        self.reactor.advance(1_700_000_000)
        service = TurnService(reactor=self.reactor, minPort=50000, maxPort=50099, **options)
        service.startService()
        self.addCleanup(service.stopService)
        self.site = self.reactor.tcpPorts[("127.0.0.1", 8080)]
        return service

    def request(
        self,
        method: bytes,
        path: bytes,
        authorization: Optional[bytes] = basic("admin", PASSWORD),
        source: Tuple[str, int] = ("127.0.0.1", 40000),
        headers: Tuple[Tuple[bytes, bytes], ...] = (),
    ) -> Response:
        """
        One request over a fresh connection from C{source}; the whole response.
        """
        protocol = self.site.buildProtocol(IPv4Address("TCP", *source))
        transport = StringTransport(
            peerAddress=IPv4Address("TCP", *source),
            hostAddress=IPv4Address("TCP", "127.0.0.1", 8080),
        )
        protocol.makeConnection(transport)
        lines = [method + b" " + path + b" HTTP/1.1", b"Host: 127.0.0.1:8080",
                 b"Connection: close", b"Content-Length: 0"]
        if authorization is not None:
            lines.append(b"Authorization: " + authorization)
        lines.extend(name + b": " + value for name, value in headers)
        protocol.dataReceived(b"\r\n".join(lines) + b"\r\n\r\n")
        raw = transport.value()
        protocol.connectionLost(None)
        return Response(raw)

    def clientOf(self, service, username="alice", port=1, password="secret"):
        listener = service.listeningPorts[0]
        return TestClient(listener.protocol, listener, ("192.0.2.5", port), username, password)

    def allocated(self, service, username="alice", port=1):
        client = self.clientOf(service, username, port)
        client.request(Method.ALLOCATE, [UDP])
        return client

    # -- access ------------------------------------------------------------------------------

    def test_needsAPassword(self):
        """
        Without --cli-password the admin API does not start, and says why.
        """
        reactor = MemoryUDPReactor()
        service = TurnService(reactor=reactor, listeningIps=("198.51.100.1",),
                              relayIps=("198.51.100.1",), webAdmin=True, minPort=50000,
                              maxPort=50099)
        with self.assertRaises(StartupError) as caught:
            service.startService()
        self.assertIn("--cli-password", str(caught.exception))
        self.assertEqual(reactor.tcpPorts, {})
        self.assertEqual(reactor.udpPorts, {})

    def test_offLoopbackNeedsACertificate(self):
        """
        On an address off loopback the admin API is served over TLS only: without --cert it
        does not start.
        """
        reactor = MemoryUDPReactor()
        service = TurnService(reactor=reactor, listeningIps=("198.51.100.1",),
                              relayIps=("198.51.100.1",), webAdmin=True,
                              webAdminIp="198.51.100.1", cliPassword=PASSWORD,
                              minPort=50000, maxPort=50099)
        with self.assertRaises(StartupError) as caught:
            service.startService()
        self.assertIn("--cert", str(caught.exception))
        self.assertIn("198.51.100.1", str(caught.exception))

    def test_optionsParse(self):
        config = makeConfig(webAdmin=True, webAdminIp="::1", webAdminPort=9000)
        self.assertEqual((config.webAdminIp, config.webAdminPort), ("::1", 9000))
        with self.assertRaises(ConfigError):
            makeConfig(webAdminIp="not-an-address")

    def test_credentials(self):
        """
        Any user name with --cli-password is let in; no credential, a wrong password or a
        malformed header gets 401 with a Basic challenge and no data.
        """
        service = self.service()
        self.allocated(service)
        self.assertEqual(self.request(b"GET", b"/api/v1/sessions",
                                      basic("someone", PASSWORD)).code, 200)
        for authorization in (None, basic("admin", "wrong"), b"Basic !!!", b"Bearer x",
                              basic("admin", PASSWORD + "x")):
            response = self.request(b"GET", b"/api/v1/sessions", authorization)
            self.assertEqual(response.code, 401, authorization)
            self.assertEqual(response.headers[b"www-authenticate"],
                             b'Basic realm="twisted-turn admin"')
            self.assertNotIn(b"alice", response.body)

    def test_failuresAreRateBounded(self):
        """
        After a burst of failed attempts from one source, its requests get 429 without a
        check, even with the right password; other sources are not affected, and the budget
        comes back with time.
        """
        self.service()
        codes = [self.request(b"GET", b"/api/v1/server", basic("a", str(n))).code
                 for n in range(30)]
        self.assertEqual(set(codes[:10]), {401})
        self.assertEqual(set(codes[10:]), {429})
        self.assertEqual(self.request(b"GET", b"/api/v1/server").code, 429)
        self.assertEqual(
            self.request(b"GET", b"/api/v1/server", source=("127.0.0.2", 1)).code, 200
        )
        self.reactor.advance(60)
        self.assertEqual(self.request(b"GET", b"/api/v1/server").code, 200)

    def test_goodRequestsAreNotBounded(self):
        self.service()
        for _ in range(100):
            self.assertEqual(self.request(b"GET", b"/api/v1/server").code, 200)

    def test_crossOriginRefused(self):
        """
        A request a page of another origin makes (its Origin header says so) is refused
        with 403, even with credentials; the page's own origin is served.
        """
        self.service()
        response = self.request(b"DELETE", b"/api/v1/sessions/x",
                                headers=((b"Origin", b"https://evil.example"),))
        self.assertEqual(response.code, 403)
        response = self.request(b"GET", b"/api/v1/server",
                                headers=((b"Origin", b"http://127.0.0.1:8080"),))
        self.assertEqual(response.code, 200)

    def test_passwordReloads(self):
        """
        A reload with another --cli-password takes effect for the next request.
        """
        service = self.service()
        service.reload(makeConfig(**{**_options(service), "cliPassword": "another-one"}))
        self.assertEqual(self.request(b"GET", b"/api/v1/server").code, 401)
        self.assertEqual(
            self.request(b"GET", b"/api/v1/server", basic("x", "another-one")).code, 200
        )

    # -- the API -----------------------------------------------------------------------------

    def test_server(self):
        """
        C{GET server}: version, uptime, workers, listeners, options in force with secrets
        left out, and counters.
        """
        service = self.service(staticAuthSecrets=("s3cret",), useAuthSecret=True,
                               users=())
        self.reactor.advance(12.5)
        response = self.request(b"GET", b"/api/v1/server")
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers[b"content-type"], b"application/json")
        self.assertEqual(response.headers[b"cache-control"], b"no-store")
        info = response.json()
        self.assertEqual(info["version"], __version__)
        self.assertEqual(info["uptime"], 12.5)
        self.assertEqual(info["workers"], 1)
        self.assertEqual(info["allocations"], 0)
        self.assertFalse(info["draining"])
        self.assertIn({"type": "IPv4Address", "protocol": "TCP", "host": "127.0.0.1",
                       "port": 8080}, info["listeners"])
        self.assertEqual(info["options"]["minPort"], 50000)
        self.assertEqual(info["options"]["webAdmin"], True)
        self.assertEqual(info["options"]["staticAuthSecrets"], "set")
        self.assertEqual(info["options"]["cliPassword"], "set")
        self.assertNotIn(b"s3cret", response.body)
        self.assertNotIn(PASSWORD.encode(), response.body)
        self.assertIn("counters", info)
        del service

    def test_userPasswordsNotShown(self):
        self.service()
        response = self.request(b"GET", b"/api/v1/server")
        self.assertEqual(response.json()["options"]["users"], ["alice", "bob"])
        self.assertNotIn(b"secret", response.body)

    def test_sessions(self):
        """
        C{GET sessions} lists the live allocations, oldest first, with traffic each way.
        """
        service = self.service()
        alice = self.allocated(service, "alice", 1)
        alice.request(Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)])
        self.reactor.advance(5)
        self.allocated(service, "bob", 2)
        [first, _] = sorted(service.server.table, key=lambda a: a.createdAt)
        for _ in range(3):
            alice.send(encodeChannelData(0x4000, b"x" * 100))
        first.relayPort.datagramReceived(b"y" * 40, PEER)
        page = self.request(b"GET", b"/api/v1/sessions").json()
        self.assertEqual(page["total"], 2)
        self.assertEqual([s["user"] for s in page["sessions"]], ["alice", "bob"])
        session = page["sessions"][0]
        self.assertEqual(session["id"], first.sessionId)
        self.assertEqual(session["transport"], "udp")
        self.assertEqual(session["client"], "192.0.2.5:1")
        self.assertEqual(session["server"], "198.51.100.1:3478")
        self.assertRegex(session["relayed"][0], r"^198\.51\.100\.1:500\d\d$")
        self.assertEqual(session["age"], 5.0)
        self.assertEqual(session["permissions"], 1)
        self.assertEqual(session["channels"], 1)
        self.assertEqual(session["traffic"], {
            "fromClient": {"packets": 3, "bytes": 300},
            "toClient": {"packets": 1, "bytes": 40},
        })
        self.assertEqual(session["worker"], 0)

    def test_sessionsFiltered(self):
        service = self.service()
        alice = self.allocated(service, "alice", 1)
        alice.request(Method.CREATE_PERMISSION, [XorPeerAddress(*PEER)])
        self.allocated(service, "bob", 2)
        self.allocated(service, "bob", 3)

        def users(query):
            page = self.request(b"GET", b"/api/v1/sessions?" + query).json()
            return page["total"], sorted(s["user"] for s in page["sessions"])

        self.assertEqual(users(b"user=bob"), (2, ["bob", "bob"]))
        self.assertEqual(users(b"peer=8.8.8.8"), (1, ["alice"]))
        self.assertEqual(users(b"peer=8.8.4.4"), (0, []))
        self.assertEqual(users(b"transport=udp"), (3, ["alice", "bob", "bob"]))
        self.assertEqual(users(b"transport=tcp"), (0, []))
        self.assertEqual(users(b"realm=" + service.config.realm.encode()),
                         (3, ["alice", "bob", "bob"]))
        self.assertEqual(users(b"realm=elsewhere"), (0, []))
        self.assertEqual(users(b"user=bob&transport=udp"), (2, ["bob", "bob"]))

    def test_sessionsPaginated(self):
        service = self.service()
        for port in range(1, 8):
            self.allocated(service, "alice", port)
            self.reactor.advance(1)
        ids = [a.sessionId for a in sorted(service.server.table, key=lambda a: a.createdAt)]
        page = self.request(b"GET", b"/api/v1/sessions?limit=3&offset=2").json()
        self.assertEqual((page["total"], page["offset"], page["limit"]), (7, 2, 3))
        self.assertEqual([s["id"] for s in page["sessions"]], ids[2:5])
        page = self.request(b"GET", b"/api/v1/sessions?limit=3&offset=6").json()
        self.assertEqual([s["id"] for s in page["sessions"]], ids[6:])
        self.assertEqual(self.request(b"GET", b"/api/v1/sessions?limit=0").json()["limit"], 1)
        self.assertEqual(
            self.request(b"GET", b"/api/v1/sessions?limit=99999").json()["limit"], 1000
        )
        response = self.request(b"GET", b"/api/v1/sessions?limit=many")
        self.assertEqual(response.code, 400)
        self.assertIn("whole numbers", response.json()["error"])

    def test_session(self):
        """
        C{GET sessions/ID}: permissions and channels with their lifetimes left, the
        allocation's lifetime left.
        """
        service = self.service()
        alice = self.allocated(service)
        alice.request(Method.CHANNEL_BIND, [ChannelNumber(0x4001), XorPeerAddress(*PEER)])
        self.reactor.advance(10)
        [allocation] = service.server.table
        session = self.request(
            b"GET", b"/api/v1/sessions/" + allocation.sessionId.encode()
        ).json()
        self.assertEqual(session["permissions"], [{"peer": "8.8.8.8", "expiresIn": 290.0}])
        self.assertEqual(session["channels"],
                         [{"number": 0x4001, "peer": "8.8.8.8:6000", "expiresIn": 590.0}])
        self.assertEqual(session["lifetimeLeft"], 590.0)
        self.assertEqual(session["age"], 10.0)
        response = self.request(b"GET", b"/api/v1/sessions/0123456789abcdef")
        self.assertEqual(response.code, 404)

    def test_endSession(self):
        """
        C{DELETE sessions/ID} ends the allocation: its relay port is free again and the
        client's next Refresh gets 437.
        """
        service = self.service()
        alice = self.allocated(service)
        bob = self.allocated(service, "bob", 2)
        [ended] = [a for a in service.server.table if a.username == "alice"]
        response = self.request(b"DELETE", b"/api/v1/sessions/" + ended.sessionId.encode())
        self.assertEqual((response.code, response.json()), (200, {"ended": ended.sessionId}))
        self.assertEqual([a.username for a in service.server.table], ["bob"])
        reply = alice.request(Method.REFRESH, [Lifetime(600)])
        self.assertEqual(reply.messageClass, MessageClass.ERROR)
        self.assertEqual(reply.get(ErrorCode).code, 437)
        reply = bob.request(Method.REFRESH, [Lifetime(600)])
        self.assertEqual(reply.messageClass, MessageClass.SUCCESS)
        response = self.request(b"DELETE", b"/api/v1/sessions/" + ended.sessionId.encode())
        self.assertEqual(response.code, 404)

    def test_drain(self):
        service = self.service()
        self.allocated(service)
        response = self.request(b"POST", b"/api/v1/drain")
        self.assertEqual((response.code, response.json()),
                         (202, {"draining": True, "allocations": 1}))
        self.assertTrue(service.server.draining)
        reply = self.clientOf(service, "bob", 9).request(Method.ALLOCATE, [UDP])
        self.assertEqual(reply.get(ErrorCode).code, 486)

    def test_reload(self):
        """
        C{POST reload} reads the configuration again and applies it; a configuration with an
        error changes nothing and is answered 400 naming the error.
        """
        service = self.service()
        configs = [makeConfig(**{**_options(service), "userQuota": 1})]
        service.configLoader = lambda: configs[0]
        response = self.request(b"POST", b"/api/v1/reload")
        self.assertEqual((response.code, response.json()),
                         (200, {"reloaded": True, "fromFile": True}))
        self.assertEqual(service.config.userQuota, 1)

        def broken():
            raise ConfigError("user-quota", "not a number: 'x'")

        service.configLoader = broken
        response = self.request(b"POST", b"/api/v1/reload")
        self.assertEqual(response.code, 400)
        self.assertIn("--user-quota: not a number", response.json()["error"])
        self.assertEqual(service.config.userQuota, 1)

    def test_wrongMethodsAndPaths(self):
        self.service()
        for method, path, code in [
            (b"POST", b"/api/v1/server", 405),
            (b"GET", b"/api/v1/drain", 405),
            (b"PUT", b"/api/v1/sessions/x", 404),
            (b"GET", b"/api/v1/nothing", 404),
            (b"GET", b"/api/v1/", 404),
        ]:
            response = self.request(method, path)
            self.assertEqual(response.code, code, (method, path))
            self.assertIn("error", response.json())

    # -- history and the page ----------------------------------------------------------------

    def test_history(self):
        """
        The history samples allocations, traffic, drops and authentication failures every
        L{HISTORY_INTERVAL} seconds and keeps the last L{HISTORY_LENGTH}.
        """
        service = self.service()
        alice = self.allocated(service)
        alice.request(Method.CHANNEL_BIND, [ChannelNumber(0x4000), XorPeerAddress(*PEER)])
        self.reactor.advance(HISTORY_INTERVAL)
        alice.send(encodeChannelData(0x4000, b"x" * 100))
        self.clientOf(service, "alice", 5, "wrong").request(Method.ALLOCATE, [UDP])
        self.reactor.advance(HISTORY_INTERVAL)
        history = self.request(b"GET", b"/api/v1/history").json()
        self.assertEqual(history["interval"], HISTORY_INTERVAL)
        first, second, third = history["samples"]
        self.assertEqual(third["time"] - second["time"], HISTORY_INTERVAL)
        self.assertEqual((first["allocations"], second["allocations"]), (0, 1))
        self.assertEqual(third["bytesFromClients"] - second["bytesFromClients"], 100)
        self.assertEqual(third["authFailures"] - second["authFailures"], 1)
        for _ in range(HISTORY_LENGTH + 10):
            self.reactor.advance(HISTORY_INTERVAL)
        self.assertEqual(len(service.adminSite.admin.history.samples), HISTORY_LENGTH)

    def test_historyStopsWithTheService(self):
        service = self.service()
        history = service.adminSite.admin.history
        service.stopService()
        count = len(history.samples)
        self.reactor.advance(HISTORY_INTERVAL * 5)
        self.assertEqual(len(history.samples), count)

    def test_page(self):
        """
        The status page and its files are served without credentials (they hold no data),
        with a content security policy that keeps the page to its own files.
        """
        self.service()
        response = self.request(b"GET", b"/", authorization=None)
        self.assertEqual(response.code, 200)
        self.assertIn(b"text/html", response.headers[b"content-type"])
        self.assertEqual(response.body, (STATIC / "index.html").read_bytes())
        policy = response.headers[b"content-security-policy"]
        self.assertIn(b"default-src 'none'", policy)
        self.assertIn(b"script-src 'self'", policy)
        for name, kind in [(b"app.js", b"text/javascript"), (b"style.css", b"text/css")]:
            response = self.request(b"GET", b"/static/" + name, authorization=None)
            self.assertEqual(response.code, 200)
            self.assertEqual(response.headers[b"content-type"].split(b";")[0], kind)
            self.assertEqual(response.body, (STATIC / name.decode()).read_bytes())
        self.assertEqual(self.request(b"GET", b"/static/../api.py").code, 404)

    def test_pageLoadsNothingFromElsewhere(self):
        """
        Every file of the page refers only to the page's own paths.
        """
        for path in STATIC.iterdir():
            text = path.read_text()
            self.assertNotIn("http://", text, path.name)
            self.assertNotIn("https://", text, path.name)
            self.assertNotIn("//cdn", text, path.name)


def _options(service) -> dict:
    """
    The keyword options C{service} was made with, as L{makeConfig} takes them.
    """
    import dataclasses

    config = service.config
    return {
        field.name: getattr(config, field.name)
        for field in dataclasses.fields(config)
        if field.name != "notImplemented"
    }
