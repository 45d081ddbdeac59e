"""
Tests for L{twisted_turn.tls}: server contexts from certificate files, and reloading them.
"""

import os

from OpenSSL import SSL
from twisted.logger import capturedLogs
from twisted.trial.unittest import SynchronousTestCase

from twisted_turn.tls import (
    ALPN_STUN_TURN,
    CertificateError,
    ServerCredentials,
    _selectAlpn,
    certificateSubject,
    makeContext,
)
from tests.integration.harness import writeCertificate


def handshake(serverContext, clientContext, mtu=None):
    """
    Run a TLS (or, with an C{mtu}, DTLS) handshake between two contexts on memory BIOs; return
    the two connections.  C{serverContext} may also be a server connection already made.
    """
    if isinstance(serverContext, SSL.Connection):
        server = serverContext
    else:
        server = SSL.Connection(serverContext, None)
    server.set_accept_state()
    client = SSL.Connection(clientContext, None)
    client.set_connect_state()
    if mtu is not None:
        server.set_ciphertext_mtu(mtu)
        client.set_ciphertext_mtu(mtu)
    for _ in range(10):
        for source, sink in ((client, server), (server, client)):
            try:
                source.do_handshake()
            except SSL.WantReadError:
                pass
            try:
                sink.bio_write(source.bio_read(65536))
            except SSL.WantReadError:
                pass
    return server, client


class MakeContextTests(SynchronousTestCase):
    def setUp(self):
        self.directory = self.mktemp()
        self.certFile, self.keyFile, _ = writeCertificate(self.directory, "server")

    def test_tls12And13(self):
        """
        A client capped at TLS 1.2 and a client allowing 1.3 both connect; ALPN "stun.turn" is
        selected when offered.
        """
        context = makeContext(self.certFile, self.keyFile)
        client = SSL.Context(SSL.TLS_CLIENT_METHOD)
        client.set_max_proto_version(SSL.TLS1_2_VERSION)
        server, _ = handshake(context, client)
        self.assertEqual(server.get_protocol_version_name(), "TLSv1.2")
        client = SSL.Context(SSL.TLS_CLIENT_METHOD)
        client.set_alpn_protos([b"stun.turn"])
        server, peer = handshake(context, client)
        self.assertEqual(server.get_protocol_version_name(), "TLSv1.3")
        self.assertEqual(peer.get_alpn_proto_negotiated(), b"stun.turn")

    def test_tls13Only(self):
        """
        With C{tls13Only} a TLS 1.2 client gets no session.
        """
        context = makeContext(self.certFile, self.keyFile, tls13Only=True)
        client = SSL.Context(SSL.TLS_CLIENT_METHOD)
        client.set_max_proto_version(SSL.TLS1_2_VERSION)
        self.assertRaises(SSL.Error, handshake, context, client)

    def test_selectAlpn(self):
        """
        "stun.turn" is chosen when offered among others; otherwise no protocol is chosen and
        the handshake goes on.
        """
        self.assertEqual(_selectAlpn(None, [b"h2", ALPN_STUN_TURN]), ALPN_STUN_TURN)
        self.assertIs(_selectAlpn(None, [b"h2"]), SSL.NO_OVERLAPPING_PROTOCOLS)

    def test_combinedPem(self):
        """
        Without a key file the key is read from the certificate file.
        """
        combined = os.path.join(self.directory, "combined.pem")
        with open(combined, "wb") as out:
            for name in (self.certFile, self.keyFile):
                with open(name, "rb") as f:
                    out.write(f.read())
        makeContext(combined)

    def test_errorsNameTheOption(self):
        """
        Each unusable file gives a L{CertificateError} naming the option at fault.
        """
        _, otherKey, _ = writeCertificate(self.directory + "/other", "other")
        lockedCert, lockedKey, _ = writeCertificate(
            self.directory + "/locked", "locked", password=b"pw"
        )
        cases = [
            ((os.path.join(self.directory, "nope.pem"),), "cert"),
            ((self.certFile,), "cert"),  # no key in the certificate file
            ((self.certFile, otherKey), "pkey"),
            ((self.certFile, os.path.join(self.directory, "nokey.pem")), "pkey"),
            ((self.certFile, lockedKey), "pkey-pwd"),
            ((self.certFile, lockedKey, "wrong"), "pkey-pwd"),
            ((self.certFile, self.keyFile, None, "NOTHING-MATCHES"), "cipher-list"),
        ]
        for arguments, option in cases:
            error = self.assertRaises(CertificateError, makeContext, *arguments)
            self.assertEqual(error.option, option, (arguments, str(error)))
            self.assertTrue(str(error).startswith(f"--{option}: "), str(error))
        makeContext(lockedCert, lockedKey, "pw")

    def test_dtlsContext(self):
        """
        The DTLS context speaks DTLS 1.2 only.
        """
        context = makeContext(self.certFile, self.keyFile, dtls=True)
        client = SSL.Context(SSL.DTLS_CLIENT_METHOD)
        client.set_options(SSL.OP_NO_QUERY_MTU)
        server, _ = handshake(context, client, mtu=1200)
        self.assertEqual(server.get_protocol_version_name(), "DTLSv1.2")

    def test_subject(self):
        """
        L{certificateSubject} names the certificate and its expiry for the log.
        """
        self.assertTrue(certificateSubject(self.certFile).startswith("server (expires 20"))
        self.assertEqual(certificateSubject("/nonexistent"), "/nonexistent")


class ServerCredentialsTests(SynchronousTestCase):
    def setUp(self):
        self.directory = self.mktemp()
        self.certFile, self.keyFile, self.first = writeCertificate(self.directory, "first")
        self.credentials = ServerCredentials(self.certFile, self.keyFile)

    def peerCertificate(self):
        server = self.credentials.serverConnectionForTLS(None)
        _, peer = handshake(server, SSL.Context(SSL.TLS_CLIENT_METHOD))
        return peer.get_peer_certificate().to_cryptography()

    def test_reloadTakesNewFiles(self):
        """
        After the files change, L{ServerCredentials.reload} makes new connections (and DTLS
        sessions) use the new certificate; a connection made before keeps its context.
        """
        old = self.credentials.serverConnectionForTLS(None)
        oldDtls = self.credentials.currentDtlsContext()
        self.assertEqual(self.peerCertificate(), self.first)
        newCert, newKey, second = writeCertificate(self.directory + "/new", "second")
        os.replace(newCert, self.certFile)
        os.replace(newKey, self.keyFile)
        with capturedLogs() as events:
            self.assertTrue(self.credentials.reload())
        self.assertEqual(self.peerCertificate(), second)
        self.assertIsNot(self.credentials.currentDtlsContext(), oldDtls)
        self.assertEqual(old.get_context().__class__, SSL.Context)
        self.assertEqual(self.credentials.reloads, 1)
        self.assertIn("second", " ".join(str(e.get("subject")) for e in events))

    def test_badReloadKeepsOld(self):
        """
        A reload from unusable files returns C{False}, warns with the reason, and keeps the
        certificate in service.
        """
        with open(self.certFile, "w") as f:
            f.write("garbage")
        with capturedLogs() as events:
            self.assertFalse(self.credentials.reload())
        self.assertEqual(self.peerCertificate(), self.first)
        self.assertIn("--cert: cannot load a certificate", events[0]["error"])
        self.assertEqual(self.credentials.reloads, 0)
