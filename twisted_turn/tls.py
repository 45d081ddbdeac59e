# -*- test-case-name: tests.test_tls -*-
"""
TLS and DTLS contexts from C{--cert}, C{--pkey}, C{--pkey-pwd} and C{--cipher-list}, replaceable
while the server runs.

L{ServerCredentials} builds both contexts from the same files and hands them out: to Twisted's
TLS wrapper as an C{IOpenSSLServerConnectionCreator} (one C{SSL.Connection} per accepted
connection, from the context current at that moment) and to the DTLS listener through
L{ServerCredentials.dtlsContext}.  L{ServerCredentials.reload} reads the files again: new
connections get the new certificate, established ones keep the context they started with, and a
bad new file leaves the old certificate in service.
"""

from __future__ import annotations

from typing import Any, Callable, List, Optional

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import NameOID
from OpenSSL import SSL
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from zope.interface import implementer

from twisted_turn._log import makeLogger

_log = makeLogger(__name__)

#: RFC 7443: the ALPN protocol id of TURN over (D)TLS.
ALPN_STUN_TURN = b"stun.turn"

#: TLS 1.2 and DTLS 1.2 suites (TLS 1.3 has its own, all AEAD with forward secrecy): ECDHE key
#: exchange and AEAD ciphers only, for ECDSA and RSA certificates, as Mozilla's "intermediate"
#: profile without its DHE suites (which would need DH parameters).
DEFAULT_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)

#: The protocol version number of DTLS 1.2 (pyOpenSSL has no constant for it).
DTLS1_2_VERSION = 0xFEFD

_OPTIONS = (
    SSL.OP_NO_COMPRESSION
    | SSL.OP_CIPHER_SERVER_PREFERENCE
    | SSL.OP_NO_RENEGOTIATION
    | SSL.OP_SINGLE_ECDH_USE
    | SSL.OP_SINGLE_DH_USE
)


class CertificateError(ValueError):
    """
    A certificate or key file cannot be used.

    @ivar option: the option at fault (C{cert}, C{pkey}, C{pkey-pwd} or C{cipher-list}).
    @ivar reason: why, in words.
    """

    def __init__(self, option: str, reason: str) -> None:
        ValueError.__init__(self, f"--{option}: {reason}")
        self.option = option
        self.reason = reason


def _sslReason(error: Exception) -> str:
    """
    The most telling words of an OpenSSL error (its reason strings), or the exception's text.
    """
    if isinstance(error, SSL.Error) and error.args and isinstance(error.args[0], list):
        reasons = [entry[-1] for entry in error.args[0] if entry and entry[-1]]
        if reasons:
            return "; ".join(dict.fromkeys(reasons))
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__


def _loadKey(path: str, option: str, password: Optional[str]) -> Any:
    """
    The private key in C{path} (PEM, encrypted when C{password} is given), through
    C{cryptography}: pyOpenSSL's passphrase callback is deprecated.

    @raise CertificateError: unreadable, not a key, or the password is missing or wrong.
    """
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as e:
        raise CertificateError(option, f"cannot read {path}: {e.strerror}") from None
    secret = password.encode("utf-8") if password is not None else None
    try:
        return serialization.load_pem_private_key(data, secret)
    except TypeError:
        # Encrypted without a password given, or a password for a key that is not encrypted.
        if password is None:
            raise CertificateError("pkey-pwd", f"the key in {path} is encrypted; give its "
                                   "password") from None
        raise CertificateError("pkey-pwd", f"the key in {path} is not encrypted") from None
    except ValueError as e:
        words = str(e).lower()
        if password is not None and ("password" in words or "decrypt" in words):
            raise CertificateError("pkey-pwd", f"wrong password for the key in {path}") \
                from None
        raise CertificateError(option, f"no usable PEM private key in {path}") from None
    except Exception as e:  # an unsupported key type, say
        raise CertificateError(option, f"cannot use the key in {path}: {e}") from None


def _selectAlpn(connection: Any, offered: List[bytes]) -> bytes:
    # A client offering other protocols but not TURN still gets TURN over plain TLS.
    if ALPN_STUN_TURN in offered:
        return ALPN_STUN_TURN
    return SSL.NO_OVERLAPPING_PROTOCOLS


def makeContext(
    certFile: str,
    keyFile: Optional[str] = None,
    password: Optional[str] = None,
    cipherList: Optional[str] = None,
    dtls: bool = False,
    tls13Only: bool = False,
) -> SSL.Context:
    """
    A server context: TLS 1.2 and 1.3 (or 1.3 only), or DTLS 1.2; the certificate chain from
    C{certFile}, the key from C{keyFile} (default: C{certFile}, a combined PEM), decrypted with
    C{password}; ALPN C{stun.turn} accepted; no client certificate asked for.

    @raise CertificateError: a file is missing or unreadable, the key does not match the
        certificate or needs a password that was not given or is wrong, or the cipher list
        selects nothing.
    """
    context = SSL.Context(SSL.DTLS_SERVER_METHOD if dtls else SSL.TLS_SERVER_METHOD)
    if dtls:
        context.set_min_proto_version(DTLS1_2_VERSION)
        context.set_max_proto_version(DTLS1_2_VERSION)
    else:
        context.set_min_proto_version(SSL.TLS1_3_VERSION if tls13Only else SSL.TLS1_2_VERSION)
    # DTLS: no MTU query, since the DTLS listener works on memory BIOs and sets the MTU itself.
    context.set_options(_OPTIONS | (SSL.OP_NO_QUERY_MTU if dtls else 0))
    context.set_verify(SSL.VERIFY_NONE)
    try:
        # Opened here first: OpenSSL would only say "system lib" for a missing file.
        open(certFile, "rb").close()
        context.use_certificate_chain_file(certFile)
    except (SSL.Error, OSError) as e:
        raise CertificateError("cert", f"cannot load a certificate from {certFile}: "
                               f"{_sslReason(e)}") from None
    keyPath = keyFile or certFile
    try:
        context.use_privatekey(_loadKey(keyPath, "pkey" if keyFile else "cert", password))
        context.check_privatekey()
    except SSL.Error:
        raise CertificateError(
            "pkey", f"the key in {keyPath} does not match the certificate in {certFile}"
        ) from None
    try:
        context.set_cipher_list((cipherList or DEFAULT_CIPHERS).encode("ascii"))
    except (SSL.Error, UnicodeEncodeError) as e:
        raise CertificateError("cipher-list", f"selects no usable cipher: {_sslReason(e)}") \
            from None
    context.set_alpn_select_callback(_selectAlpn)
    return context


def certificateSubject(certFile: str) -> str:
    """
    The common name (or subject) and expiry date of the first certificate in C{certFile}, for
    the log.
    """
    try:
        with open(certFile, "rb") as f:
            certificate = x509.load_pem_x509_certificate(f.read())
    except (OSError, ValueError):
        return certFile
    names = certificate.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    subject = str(names[0].value) if names else certificate.subject.rfc4514_string()
    return f"{subject} (expires {certificate.not_valid_after_utc:%Y-%m-%d})"


@implementer(IOpenSSLServerConnectionCreator)
class ServerCredentials:
    """
    The server's certificate for TLS and DTLS, reloadable.

    @ivar context: the TLS context new connections get.
    @ivar dtlsContext: the DTLS context new DTLS sessions get.
    @ivar reloads: how many reloads succeeded.
    """

    def __init__(
        self,
        certFile: str,
        keyFile: Optional[str] = None,
        password: Optional[str] = None,
        cipherList: Optional[str] = None,
        tls13Only: bool = False,
        makeContext: Callable[..., SSL.Context] = makeContext,
    ) -> None:
        """
        @raise CertificateError: as L{makeContext}.
        """
        self._arguments = (certFile, keyFile, password, cipherList)
        self._tls13Only = tls13Only
        self._makeContext = makeContext
        self.certFile = certFile
        self.reloads = 0
        self.context, self.dtlsContext = self._load()

    def _load(self) -> tuple:
        tls = self._makeContext(*self._arguments, dtls=False, tls13Only=self._tls13Only)
        dtls = self._makeContext(*self._arguments, dtls=True)
        return tls, dtls

    def reload(self) -> bool:
        """
        Read the certificate and key files again.  On success new connections and DTLS
        sessions use them; on failure a warning says why and the old ones stay in service.
        Established connections are never touched.
        """
        try:
            self.context, self.dtlsContext = self._load()
        except CertificateError as e:
            _log.warn("Keeping the current TLS certificate: {error}", error=str(e))
            return False
        self.reloads += 1
        _log.info("Reloaded the TLS certificate: {subject}",
                  subject=certificateSubject(self.certFile))
        return True

    def setFiles(
        self, certFile: Optional[str], keyFile: Optional[str], password: Optional[str]
    ) -> None:
        """
        Take other certificate and key files (a reload that names new ones); the next
        L{reload} reads them.  Without a certificate file the current files stay.
        """
        if certFile is None:
            return
        self._arguments = (certFile, keyFile, password, self._arguments[3])
        self.certFile = certFile

    def currentDtlsContext(self) -> SSL.Context:
        return self.dtlsContext

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self.context, None)
