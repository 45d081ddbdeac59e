# -*- test-case-name: tests.test_admin -*-
"""
The admin API and the live status page (C{--web-admin}): twisted.web resources, and the page's
static assets, which ship in the package (no script or style is fetched from elsewhere).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Dict, Tuple

from twisted.web.pages import notFound
from twisted.web.resource import Resource
from twisted.web.server import Site

from twisted_turn.admin.api import AdminApi

__all__ = ["AdminApi", "STATIC", "adminSite"]

#: The status page's files.
STATIC = Path(__file__).resolve().with_name("static")

#: What the page may load: its own files and its own API, nothing else, no inline script.
_CSP = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'"
)


#: The page's files by name, with their content types.
_TYPES = {".html": b"text/html; charset=utf-8", ".js": b"text/javascript; charset=utf-8",
          ".css": b"text/css; charset=utf-8"}


class StaticFiles(Resource):
    """
    The page's files, read once, with headers that keep the browser to them; nothing else
    (no listing, no other file of the directory).
    """

    def __init__(self, directory: Path = STATIC) -> None:
        Resource.__init__(self)
        self._files: Dict[bytes, Tuple[bytes, bytes]] = {
            path.name.encode(): (_TYPES[path.suffix], path.read_bytes())
            for path in sorted(directory.iterdir()) if path.suffix in _TYPES
        }

    def getChild(self, name: bytes, request: Any) -> Resource:
        if name in self._files:
            return _File(*self._files[name])
        return notFound()


class _File(Resource):
    isLeaf = True

    def __init__(self, contentType: bytes, body: bytes) -> None:
        Resource.__init__(self)
        self._contentType = contentType
        self._body = body

    def render_GET(self, request: Any) -> bytes:
        request.setHeader(b"content-type", self._contentType)
        request.setHeader(b"content-security-policy", _CSP)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"referrer-policy", b"no-referrer")
        request.setHeader(b"cache-control", b"no-cache")
        return self._body

    render_HEAD = render_GET


def adminSite(service: Any, clock: Any) -> Site:
    """
    The admin site of C{service}: the API and the status page, its history sampler started.
    """
    root = AdminApi(service, clock, StaticFiles())
    site = Site(root, reactor=clock)
    site.noisy = False
    site.admin = root  # type: ignore[attr-defined]
    root.history.start()
    return site


def isLoopback(host: str) -> bool:
    return ipaddress.ip_address(host).is_loopback
