# -*- test-case-name: tests.test_admin -*-
"""
The admin API (C{--web-admin}): JSON under C{/api/v1/}, on twisted.web.

  - C{GET server}: version, uptime, workers, listeners, the options in force (secrets
    left out), counters;
  - C{GET sessions}: the live allocations, filtered by C{user}, C{realm}, C{peer} and
    C{transport}, C{limit} (100, at most 1000) at a time from C{offset};
  - C{GET sessions/ID}: one of them: 5-tuple, relayed addresses, permissions, channels,
    traffic each way, age, lifetime left;
  - C{DELETE sessions/ID}: end it (the client's next Refresh gets 437);
  - C{GET history}: samples of allocations, traffic, drops and authentication failures
    over the last minutes, for the status page's graphs;
  - C{POST drain}, C{POST reload}: what SIGUSR1 and SIGHUP do.

Every request needs HTTP Basic credentials: any user name with C{--cli-password}.  Failed
attempts are bounded per source address (then 429 without checking), logged like other
refusals.  A request with an C{Origin} header from another origin is refused (403), so a page
elsewhere cannot use credentials a browser cached for this one.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hmac
import json
from collections import deque
from typing import Any, Deque, Dict, List, Optional, Tuple
from urllib.parse import urlsplit

from twisted.internet.task import LoopingCall
from twisted.web.pages import notFound
from twisted.web.resource import Resource

from twisted_turn._log import RefusalLog, makeLogger
from twisted_turn._version import __version__
from twisted_turn.ratelimit import SourceLimiter

__all__ = ["AdminApi", "History", "describeSession"]

_log = makeLogger(__name__)

#: Sessions per page at most.
MAX_LIMIT = 1000

#: Seconds between the history's samples, and how many it keeps (ten minutes).
HISTORY_INTERVAL = 2.0
HISTORY_LENGTH = 300

#: Options shown as "set" rather than their value.
_SECRET_OPTIONS = frozenset({"staticAuthSecrets", "nonceSecret", "pkeyPwd", "cliPassword"})


def _address(address: Tuple[str, int]) -> str:
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def describeSession(allocation: Any, now: float, realm: str, detail: bool = False) -> dict:
    """
    One allocation as the API shows it; with C{detail}, its permissions and channels too.
    """
    fiveTuple = allocation.fiveTuple
    session: Dict[str, Any] = {
        "id": allocation.sessionId,
        "user": allocation.username,
        "realm": realm,
        "transport": fiveTuple.transport,
        "client": _address(fiveTuple.client),
        "server": _address(fiveTuple.server),
        "relayed": [_address(relayed.externalAddress) for relayed in allocation.relayed],
        "tcpRelay": allocation.tcp,
        "age": round(now - allocation.createdAt, 3),
        "lifetimeLeft": round(max(0.0, allocation.expiresAt - now), 3),
        "permissions": len(allocation.permissions),
        "channels": len(allocation.channels),
        "traffic": {
            "fromClient": {"packets": allocation.upPackets, "bytes": allocation.upBytes},
            "toClient": {"packets": allocation.downPackets, "bytes": allocation.downBytes},
        },
        "bandwidthLimit": allocation.bps or None,
        # Which worker process serves it: 0 while the server runs as one process.
        "worker": 0,
    }
    if detail:
        session["permissions"] = [
            {"peer": host, "expiresIn": round(expires - now, 3)}
            for host, expires in sorted(allocation.permissions.items())
        ]
        session["channels"] = [
            {"number": number, "peer": _address(binding.peer),
             "expiresIn": round(binding.expiresAt - now, 3)}
            for number, binding in sorted(allocation.channels.items())
        ]
    return session


class History:
    """
    A sample every L{HISTORY_INTERVAL} seconds of what the status page graphs, the last
    L{HISTORY_LENGTH} kept: fixed memory.
    """

    def __init__(self, service: Any, clock: Any) -> None:
        self._service = service
        self._clock = clock
        self.samples: Deque[dict] = deque(maxlen=HISTORY_LENGTH)
        self._loop = LoopingCall(self.sample)
        self._loop.clock = clock

    def start(self) -> None:
        self._loop.start(HISTORY_INTERVAL, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def sample(self) -> None:
        server = self._service.server
        up = list(server.endedTraffic)
        for allocation in server.table:
            up[0] += allocation.upPackets
            up[1] += allocation.upBytes
            up[2] += allocation.downPackets
            up[3] += allocation.downBytes
        counters = server.counters
        udp = self._service.udpCounters()
        self.samples.append({
            "time": self._clock.seconds(),
            "allocations": len(server.table),
            "bytesFromClients": up[1],
            "bytesToClients": up[3],
            "drops": sum(v for k, v in counters.items() if k.startswith("drop"))
            + sum(v for k, v in udp.items() if k.startswith("drop") and isinstance(v, int)),
            "authFailures": counters.get("authFailed", 0)
            + counters.get("dropAuthFailureLimited", 0),
        })


class AdminApi(Resource):
    """
    The root of the admin site: C{/api/v1/...} (with credentials) and the status page.
    """

    def __init__(self, service: Any, clock: Any, static: Optional[Resource] = None) -> None:
        Resource.__init__(self)
        self._service = service
        self._clock = clock
        self.history = History(service, clock)
        self._failures = SourceLimiter(rate=1 / 6, burst=10, slots=1024)
        self._refusals = RefusalLog(_log, clock)
        api = _Api(self)
        versions = Resource()
        versions.putChild(b"v1", api)
        self.putChild(b"api", versions)
        if static is not None:
            self.putChild(b"static", static)
            self._static = static
        else:
            self._static = None

    def getChild(self, name: bytes, request: Any) -> Resource:
        if name == b"" and self._static is not None:
            return self._static.getChild(b"index.html", request)
        return notFound()

    # -- access ------------------------------------------------------------------------------

    def authorized(self, request: Any) -> bool:
        """
        Whether C{request} may use the API; when not, the answer (401, 403 or 429) is set.
        """
        origin = request.getHeader(b"origin")
        if origin is not None:
            host = request.getHeader(b"host") or b""
            if urlsplit(origin.decode("latin-1")).netloc.encode("latin-1") != host:
                request.setResponseCode(403)
                return False
        source = request.getClientAddress()
        sourceHost = getattr(source, "host", "")
        now = self._clock.seconds()
        if not self._failures.available(sourceHost, now):
            request.setResponseCode(429)
            return False
        password = self._service.config.cliPassword or ""
        given = _basicPassword(request.getHeader(b"authorization"))
        if given is not None and password and hmac.compare_digest(
            given.encode("utf-8"), password.encode("utf-8")
        ):
            return True
        self._failures.allow(sourceHost, now)
        self._refusals.refused(
            "admin", "Refused admin API request from {client}: 401 {why}",
            client=sourceHost if self._service.server._logAddresses else "a client",
            why="bad credentials" if given is not None else "no credentials",
        )
        request.setResponseCode(401)
        request.setHeader(b"www-authenticate", b'Basic realm="twisted-turn admin"')
        return False


def _basicPassword(header: Optional[bytes]) -> Optional[str]:
    if not header or not header[:6].lower() == b"basic ":
        return None
    try:
        decoded = base64.b64decode(header[6:].strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, colon, password = decoded.partition(":")
    return password if colon else None


class _Api(Resource):
    """
    C{/api/v1/...}: routes by the rest of the path, answers JSON.
    """

    isLeaf = True

    def __init__(self, admin: AdminApi) -> None:
        Resource.__init__(self)
        self._admin = admin

    def render(self, request: Any) -> bytes:
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        if not self._admin.authorized(request):
            return json.dumps({"error": "unauthorized"}).encode() + b"\n"
        path = [segment.decode("utf-8", "replace") for segment in request.postpath if segment]
        method = request.method.decode("ascii", "replace")
        try:
            code, body = self._route(method, path, request)
        except _HttpError as e:
            code, body = e.code, {"error": e.message}
        request.setResponseCode(code)
        return json.dumps(body, indent=1).encode("utf-8") + b"\n"

    def _route(self, method: str, path: List[str], request: Any) -> Tuple[int, Any]:
        service = self._admin._service
        if path == ["server"] and method == "GET":
            return 200, self._serverInfo()
        if path == ["history"] and method == "GET":
            return 200, {"interval": HISTORY_INTERVAL,
                         "samples": list(self._admin.history.samples)}
        if path == ["sessions"] and method == "GET":
            return 200, self._sessions(request)
        if len(path) == 2 and path[0] == "sessions":
            allocation = service.server.table.bySessionId(path[1])
            if allocation is None:
                raise _HttpError(404, f"no session {path[1]}")
            if method == "GET":
                return 200, describeSession(
                    allocation, self._admin._clock.seconds(), service.config.realm, True
                )
            if method == "DELETE":
                service.server.deallocate(allocation)
                _log.info("Session {id} of {user!r} ended through the admin API",
                          id=allocation.sessionId, user=allocation.username)
                return 200, {"ended": allocation.sessionId}
            raise _HttpError(405, f"{method} is not allowed here")
        if path == ["drain"] and method == "POST":
            service.drain()
            return 202, {"draining": True, "allocations": len(service.server.table)}
        if path == ["reload"] and method == "POST":
            error = service.reloadConfiguration()
            if error is not None:
                raise _HttpError(400, f"the configuration was not reloaded: {error}")
            return 200, {"reloaded": True, "fromFile": service.configLoader is not None}
        if path and path[0] in ("server", "history", "sessions", "drain", "reload"):
            raise _HttpError(405, f"{method} is not allowed here")
        raise _HttpError(404, "no such resource")

    def _serverInfo(self) -> dict:
        service = self._admin._service
        server = service.server
        config = service.config
        options: Dict[str, Any] = {}
        for field in dataclasses.fields(config):
            value = getattr(config, field.name)
            if field.name in _SECRET_OPTIONS:
                value = bool(value) and "set"
            elif field.name == "users":
                value = [name for name, _ in value]
            elif isinstance(value, bytes):
                value = "set"
            elif isinstance(value, tuple):
                value = [list(v) if isinstance(v, tuple) else v for v in value]
            options[field.name] = value
        listeners = []
        for port in service.listeningPorts:
            host = port.getHost() if hasattr(port, "getHost") else None
            if host is not None:
                listeners.append({"type": type(host).__name__, "protocol":
                                  getattr(host, "type", None), "host": host.host,
                                  "port": host.port})
        return {
            "version": __version__,
            "uptime": round(self._admin._clock.seconds() - server.startedAt, 3),
            "workers": 1,
            "draining": server.draining,
            "allocations": len(server.table),
            "listeners": listeners,
            "options": options,
            "counters": dict(server.counters),
            "udp": service.udpCounters(),
        }

    def _sessions(self, request: Any) -> dict:
        service = self._admin._service
        args = {key.decode(): values[-1].decode("utf-8", "replace")
                for key, values in request.args.items() if values}
        try:
            limit = min(MAX_LIMIT, max(1, int(args.get("limit", "100"))))
            offset = max(0, int(args.get("offset", "0")))
        except ValueError:
            raise _HttpError(400, "limit and offset are whole numbers")
        realm = service.config.realm
        if "realm" in args and args["realm"] != realm:
            matching: List[Any] = []
        else:
            matching = [
                allocation for allocation in service.server.table
                if ("user" not in args or allocation.username == args["user"])
                and ("transport" not in args
                     or allocation.fiveTuple.transport == args["transport"])
                and ("peer" not in args or args["peer"] in allocation.permissions
                     or any(binding.peer[0] == args["peer"]
                            for binding in allocation.channels.values()))
            ]
        matching.sort(key=lambda allocation: (allocation.createdAt, allocation.sessionId))
        now = self._admin._clock.seconds()
        return {
            "total": len(matching),
            "offset": offset,
            "limit": limit,
            "sessions": [describeSession(a, now, realm)
                         for a in matching[offset:offset + limit]],
        }


class _HttpError(Exception):
    def __init__(self, code: int, message: str) -> None:
        Exception.__init__(self, code, message)
        self.code = code
        self.message = message
