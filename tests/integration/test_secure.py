# -*- test-case-name: tests.integration.test_secure -*-
"""
The TLS and DTLS listeners of a real C{twistd turn}: certificate checks by real clients,
protocol versions, ALPN, reloading the certificate, and what stops start-up.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import time
import warnings

import pytest

from tests.integration.harness import (
    HOST,
    PASSWORD,
    USER,
    bindingRequest,
    freeListeningPort,
    requireModule,
    runTwistdTurn,
    stunSummary,
    writeCertificate,
)
from tests.integration.test_aioice import echoAndRelay
from tests.integration.test_streams import closedByPeer, readMessages

pytestmark = pytest.mark.integration

STATIC = ("--user", f"{USER}:{PASSWORD}", "--allow-loopback-peers")


@pytest.fixture
def certificate(tmp_path):
    """
    C{(certFile, keyFile)}: a fresh self-signed certificate for 127.0.0.1.
    """
    certFile, keyFile, _ = writeCertificate(tmp_path / "tls", "turn-test")
    return certFile, keyFile


def secureServer(turnServer, certificate, *options):
    certFile, keyFile = certificate
    return turnServer(*STATIC, "--cert", certFile, "--pkey", keyFile, *options)


def clientContext(caFile: str, **settings) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=caFile)
    for name, value in settings.items():
        setattr(context, name, value)
    return context


def tlsConnect(port: int, context: ssl.SSLContext, alpn=None) -> ssl.SSLSocket:
    if alpn is not None:
        context.set_alpn_protocols(alpn)
    raw = socket.create_connection((HOST, port), timeout=5)
    return context.wrap_socket(raw, server_hostname=HOST)


def test_bindingOverVerifiedTls(turnServer, certificate) -> None:
    """
    A client that verifies the certificate against it (host name 127.0.0.1 included) completes
    the handshake with TLS 1.2 or later and gets Binding answered on the stream.
    """
    server = secureServer(turnServer, certificate)
    with tlsConnect(server.tlsPort, clientContext(certificate[0])) as sock:
        assert sock.version() in ("TLSv1.2", "TLSv1.3")
        request, transactionId = bindingRequest()
        sock.sendall(request)
        [response] = readMessages(sock, 1)
    assert response[8:20] == transactionId
    assert stunSummary(response) == (0x0101, None)


@pytest.mark.parametrize(
    "offered, selected",
    [(["stun.turn"], "stun.turn"), (["h2", "stun.turn"], "stun.turn"), (["h2"], None)],
)
def test_alpn(turnServer, certificate, offered, selected) -> None:
    """
    ALPN "stun.turn" (RFC 7443) is selected when offered; a client offering only other
    protocols still connects, without ALPN.
    """
    server = secureServer(turnServer, certificate)
    with tlsConnect(server.tlsPort, clientContext(certificate[0]), alpn=offered) as sock:
        assert sock.selected_alpn_protocol() == selected


def test_tls12Only(turnServer, certificate) -> None:
    """
    A client capped at TLS 1.2 connects; one capped at TLS 1.1 is refused; --no-tlsv1_2
    refuses TLS 1.2 and accepts 1.3.
    """
    server = secureServer(turnServer, certificate)
    capped = clientContext(certificate[0], maximum_version=ssl.TLSVersion.TLSv1_2)
    with tlsConnect(server.tlsPort, capped) as sock:
        assert sock.version() == "TLSv1.2"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        old = clientContext(
            certificate[0],
            minimum_version=ssl.TLSVersion.TLSv1_1,
            maximum_version=ssl.TLSVersion.TLSv1_1,
        )
    # Let this client offer TLS 1.1 at all, so the refusal is the server's.
    old.set_ciphers("DEFAULT:@SECLEVEL=0")
    with pytest.raises(ssl.SSLError) as refusal:
        tlsConnect(server.tlsPort, old).close()
    assert "PROTOCOL_VERSION" in str(refusal.value) or "protocol version" in str(refusal.value)

    strict = secureServer(turnServer, certificate, "--no-tlsv1_2")
    with pytest.raises((ssl.SSLError, ConnectionResetError)):
        tlsConnect(strict.tlsPort, capped).close()
    with tlsConnect(strict.tlsPort, clientContext(certificate[0])) as sock:
        assert sock.version() == "TLSv1.3"


def test_aioiceOverVerifiedTls(turnServer, certificate) -> None:
    """
    aioice's TURN client over TLS, verifying the server certificate, relays to a UDP peer and
    back.
    """
    server = secureServer(turnServer, certificate)
    turn = requireModule("aioice.turn")

    async def scenario() -> None:
        echoTransport, peer, relay, inbox = await echoAndRelay(
            turn, server.tlsPort, ssl=clientContext(certificate[0]), transport="tcp"
        )
        try:
            for payload in (b"over tls", b"\x01" * 1200):
                relay.sendto(payload, peer)
                assert await inbox.next() == (payload, peer)
        finally:
            relay.close()
            echoTransport.close()

    asyncio.run(asyncio.wait_for(scenario(), 30))


def test_aioiceRefusesUnknownCertificate(turnServer, certificate, tmp_path) -> None:
    """
    A client that trusts another certificate refuses the server's: the verification the
    other tests rely on is real.
    """
    server = secureServer(turnServer, certificate)
    otherCert, _, _ = writeCertificate(tmp_path / "other", "someone-else")
    with pytest.raises(ssl.SSLCertVerificationError):
        tlsConnect(server.tlsPort, clientContext(otherCert))


def peerCertificate(port: int) -> bytes:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with tlsConnect(port, context) as sock:
        return sock.getpeercert(binary_form=True)


def test_sighupReloadsCertificate(turnServer, certificate, tmp_path) -> None:
    """
    After the certificate files are replaced and the server gets SIGHUP, new connections see
    the new certificate, while a connection made before keeps relaying.
    """
    server = secureServer(turnServer, certificate)
    turn = requireModule("aioice.turn")
    certFile, keyFile = certificate
    before = peerCertificate(server.tlsPort)

    async def scenario() -> bytes:
        loop = asyncio.get_running_loop()
        echoTransport, peer, relay, inbox = await echoAndRelay(
            turn, server.tlsPort, ssl=clientContext(certFile), transport="tcp"
        )
        try:
            relay.sendto(b"before", peer)
            assert await inbox.next() == (b"before", peer)
            newCert, newKey, _ = writeCertificate(tmp_path / "new", "turn-renewed")
            os.replace(newCert, certFile)
            os.replace(newKey, keyFile)
            server.process.send_signal(signal.SIGHUP)
            deadline = time.monotonic() + 10
            after = await loop.run_in_executor(None, peerCertificate, server.tlsPort)
            while after == before and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
                after = await loop.run_in_executor(None, peerCertificate, server.tlsPort)
            relay.sendto(b"after", peer)
            assert await inbox.next() == (b"after", peer)
            return after
        finally:
            relay.close()
            echoTransport.close()

    after = asyncio.run(asyncio.wait_for(scenario(), 30))
    assert after != before
    with open(certificate[0], "rb") as f:
        assert ssl.PEM_cert_to_DER_cert(f.read().decode()) == after
    assert "Reloaded the TLS certificate: turn-renewed" in server.log()


def test_badReloadKeepsCertificate(turnServer, certificate) -> None:
    """
    SIGHUP with an unusable certificate file logs why and keeps serving the old one.
    """
    server = secureServer(turnServer, certificate)
    before = peerCertificate(server.tlsPort)
    with open(certificate[0], "w") as f:
        f.write("not a certificate\n")
    server.process.send_signal(signal.SIGHUP)
    server.waitForLog("Keeping the current TLS certificate")
    assert "--cert: cannot load a certificate" in server.log()
    assert peerCertificate(server.tlsPort) == before


def test_silentConnectionsClosed(turnServer, certificate) -> None:
    """
    A TLS connection whose handshake never starts, and a TCP connection that never sends, are
    both closed by the server within the 30-second idle limit (plus a margin).
    """
    server = secureServer(turnServer, certificate)
    started = time.monotonic()
    silentTls = socket.create_connection((HOST, server.tlsPort), timeout=40)
    silentTcp = socket.create_connection((HOST, server.port), timeout=40)
    with silentTls, silentTcp:
        assert closedByPeer(silentTls)
        assert closedByPeer(silentTcp)
    assert 25 < time.monotonic() - started < 40


@pytest.mark.parametrize("option", ["--no-tls", "--no-dtls"])
def test_switchOff(turnServer, certificate, option) -> None:
    """
    --no-tls leaves the TLS port closed for TCP; --no-dtls leaves it closed for UDP (a
    DTLS ClientHello gets no answer) while TLS still works.
    """
    server = secureServer(turnServer, certificate, option)
    if option == "--no-tls":
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((HOST, server.tlsPort), timeout=5)
        assert "DTLS on" in server.log()
    else:
        with tlsConnect(server.tlsPort, clientContext(certificate[0])) as sock:
            assert sock.version()
        assert "DTLS on" not in server.log()


def test_noCertificateNoSecureListeners(turnServer) -> None:
    """
    Without --cert there is no TLS listener, and the log says so once.
    """
    server = turnServer(*STATIC)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((HOST, server.tlsPort), timeout=5)
    assert "No --cert given, so there are no TLS and DTLS listeners" in server.log()


def test_badCertificateStopsStartup(tmp_path, certificate) -> None:
    """
    A missing certificate, a key that does not match, or an encrypted key without its password
    stops start-up with one line naming the option.
    """
    certFile, keyFile = certificate
    _, otherKey, _ = writeCertificate(tmp_path / "other", "other")
    _, lockedKey, _ = writeCertificate(tmp_path / "locked", "locked", password=b"pw")
    cases = [
        (("--cert", str(tmp_path / "missing.pem")), "--cert: cannot load a certificate"),
        (("--cert", certFile, "--pkey", otherKey), "--pkey: the key in"),
        (("--cert", certFile, "--pkey", lockedKey), "--pkey-pwd: the key in"),
        (("--cert", certFile, "--pkey", lockedKey, "--pkey-pwd", "wrong"),
         "--pkey-pwd: wrong password"),
    ]
    for options, message in cases:
        result = runTwistdTurn(
            "--listening-ip", HOST, "--relay-ip", HOST,
            "--listening-port", str(freeListeningPort()),
            "--tls-listening-port", str(freeListeningPort()), "--user", "a:b", *options,
        )
        assert result.returncode != 0, result
        assert message in result.stdout + result.stderr, (options, result)
