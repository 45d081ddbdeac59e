# -*- test-case-name: tests.integration -*-
"""
Helpers for the integration tests: free ports, a real C{twistd turn} process, coturn's test
tools, and REST credentials computed independently of the server's own code.

Nothing here imports C{twisted_turn}: the tests judge the server only through what real clients
we did not write can see on the wire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import importlib
import os
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
REALM = "example.org"
USER = "alice"
PASSWORD = "secret"
REST_SECRET = "sekrit"

#: Relay ports per server: enough for uclient's clients, aioice's endpoints and their RTCP.
RELAY_RANGE = 20

#: Seconds a server, a peer or a proxy gets to come up.
READY_TIMEOUT = 10.0

#: Seconds any client tool may run: a hung client fails its test instead of the whole run.
TOOL_TIMEOUT = 60.0

#: twistd under this interpreter. C{python -m twisted} is C{twist}, not C{twistd}, and the
#: C{twistd} script on PATH may belong to another Python.
TWISTD = (sys.executable, "-c", "from twisted.scripts.twistd import run; run()")

_MAGIC_COOKIE = 0x2112A442
_ERROR_CODE = 0x0009


def checkoutEnvironment(**extra: str) -> Dict[str, str]:
    """
    This process's environment with the checkout first on C{PYTHONPATH}, so a twistd started
    with it finds the plugin and the package of this checkout, installed or not; plus C{extra}.
    """
    path = os.pathsep.join([str(REPO_ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return dict(os.environ, PYTHONPATH=path, **extra)


def requireTool(name: str) -> str:
    """
    The path of an external tool. Without it the test is skipped, except under CI (the C{CI}
    environment variable is set), where it fails: CI must never pass by skipping everything.
    """
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install coturn provides it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return path


def requireModule(name: str):
    """
    Import a Python module the tests need, with the same skip-or-fail rule as L{requireTool}.
    """
    try:
        return importlib.import_module(name)
    except ImportError:
        reason = f"{name} is not installed (pip install -e '.[test]' provides it)"
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {reason}", pytrace=False)
        pytest.skip(reason)


def udpPortFree(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return False
    return True


def _family(host: str) -> int:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def freeUdpPort(host: str = HOST) -> int:
    """
    A UDP port on C{host} (127.0.0.1 by default) that is free right now (the kernel's choice).
    """
    with socket.socket(_family(host), socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def freeListeningPort() -> int:
    """
    A port on 127.0.0.1 free right now for both UDP and TCP, since a server listens on both.
    """
    for _ in range(100):
        port = freeUdpPort()
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((HOST, port))
            except OSError:
                continue
        return port
    raise AssertionError("no port free for both UDP and TCP on 127.0.0.1")


_takenRanges: Set[int] = set()


def freeRelayRange(size: int = RELAY_RANGE) -> Tuple[int, int]:
    """
    C{(minPort, maxPort)}: C{size} consecutive free UDP ports, distinct from every range handed
    out before in this run, and below the kernel's ephemeral range so that clients' own sockets
    (and L{freeUdpPort}) never land inside a relay range.
    """
    low, high = 10000, 32000
    try:
        ephemeralLow = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
        high = min(high, ephemeralLow)
    except (OSError, ValueError, IndexError):
        pass
    for _ in range(200):
        base = random.randrange(low, high - size, size)
        if base in _takenRanges:
            continue
        if all(udpPortFree(port) for port in range(base, base + size)):
            _takenRanges.add(base)
            return base, base + size - 1
    raise RuntimeError(f"no {size} consecutive free UDP ports between {low} and {high}")


def bindingRequest() -> Tuple[bytes, bytes]:
    """
    A minimal STUN Binding request (RFC 8489 section 5): C{(bytes, transactionId)}.
    """
    transactionId = os.urandom(12)
    return struct.pack("!HHI", 0x0001, 0, _MAGIC_COOKIE) + transactionId, transactionId


def stunSummary(data: bytes) -> Optional[Tuple[int, Optional[int]]]:
    """
    C{(messageType, errorCode or None)} of a STUN message, or L{None} for anything else
    (ChannelData, garbage).
    """
    if len(data) < 20 or data[0] >> 6 != 0:
        return None
    messageType, length, cookie = struct.unpack("!HHI", data[:8])
    if cookie != _MAGIC_COOKIE:
        return None
    offset, end = 20, min(len(data), 20 + length)
    while offset + 4 <= end:
        attrType, attrLength = struct.unpack("!HH", data[offset : offset + 4])
        value = data[offset + 4 : offset + 4 + attrLength]
        if attrType == _ERROR_CODE and len(value) >= 4:
            return messageType, (value[2] & 0x07) * 100 + value[3]
        offset += 4 + attrLength + (-attrLength % 4)
    return messageType, None


def waitForStun(port: int, timeout: float = READY_TIMEOUT, isAlive=lambda: True) -> bool:
    """
    Send STUN Binding requests to C{127.0.0.1:port} until a Binding success response with the
    same transaction id comes back (C{True}), C{timeout} passes or C{isAlive()} turns false.
    """
    deadline = time.monotonic() + timeout
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline and isAlive():
            request, transactionId = bindingRequest()
            s.sendto(request, (HOST, port))
            try:
                data, _ = s.recvfrom(2048)
            except (socket.timeout, ConnectionRefusedError):
                continue
            if data[8:20] == transactionId and stunSummary(data) == (0x0101, None):
                return True
    return False


def waitForEcho(
    port: int, timeout: float = READY_TIMEOUT, isAlive=lambda: True, host: str = HOST
) -> bool:
    """
    Send datagrams to a UDP echo service on C{host} until one comes back.
    """
    deadline = time.monotonic() + timeout
    with socket.socket(_family(host), socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        while time.monotonic() < deadline and isAlive():
            probe = os.urandom(8)
            s.sendto(probe, (host, port))
            try:
                data, _ = s.recvfrom(2048)
            except (socket.timeout, ConnectionRefusedError):
                continue
            if data == probe:
                return True
    return False


def stopProcess(process: subprocess.Popen) -> None:
    """
    Stop one process we started: SIGTERM, then SIGKILL if it lingers.
    """
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


class TurnServerProcess:
    """
    A C{twistd -n turn} process on 127.0.0.1 with its own listening port and relay range,
    logging to a file.

    @ivar port: the listening port.
    @ivar tlsPort: the TLS and DTLS listening port (used with C{--cert}).
    @ivar minPort: the first relay port.
    @ivar maxPort: the last relay port.
    """

    def __init__(
        self,
        logPath: Path,
        args: Sequence[str],
        twistdArgs: Sequence[str] = (),
        environment: Optional[Dict[str, str]] = None,
        relayHosts: Sequence[str] = (HOST,),
    ) -> None:
        self.port = freeListeningPort()
        self.tlsPort = freeListeningPort()
        self.minPort, self.maxPort = freeRelayRange()
        self.logPath = logPath
        self.command = [
            *TWISTD,
            "-n",
            "--pidfile=",
            *twistdArgs,
            "turn",
            "--listening-ip",
            HOST,
            "--listening-port",
            str(self.port),
            "--tls-listening-port",
            str(self.tlsPort),
            *(option for host in relayHosts for option in ("--relay-ip", host)),
            "--min-port",
            str(self.minPort),
            "--max-port",
            str(self.maxPort),
            "--realm",
            REALM,
            *args,
        ]
        env = checkoutEnvironment(PYTHONUNBUFFERED="1", **(environment or {}))
        with open(logPath, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not waitForStun(self.port, isAlive=lambda: self.process.poll() is None):
            self.stop()
            raise AssertionError(
                f"twistd turn did not answer a STUN Binding request within {READY_TIMEOUT}s "
                f"(exit status {self.process.returncode})\ncommand: {' '.join(self.command)}\n"
                f"log:\n{self.log()}"
            )

    def log(self) -> str:
        """
        Everything the server wrote so far.
        """
        return self.logPath.read_text(errors="replace")

    def waitForLog(self, text: str, timeout: float = READY_TIMEOUT) -> None:
        """
        Wait until the server has logged C{text}.

        @raise AssertionError: it has not within C{timeout} seconds (the log is the message).
        """
        deadline = time.monotonic() + timeout
        while text not in self.log():
            assert time.monotonic() < deadline, f"no {text!r} in the log:\n{self.log()}"
            time.sleep(0.05)

    def stop(self) -> None:
        stopProcess(self.process)


_STUN_HEADER = struct.Struct("!HHI12s")

#: STUN methods, classes and attribute types this client uses (RFC 8489, RFC 8656).
ALLOCATE, CREATE_PERMISSION, CHANNEL_BIND, SEND = 0x003, 0x008, 0x009, 0x006
XOR_PEER_ADDRESS, XOR_RELAYED_ADDRESS, DATA = 0x0012, 0x0016, 0x0013
CHANNEL_NUMBER, REQUESTED_TRANSPORT = 0x000C, 0x0019
REQUESTED_ADDRESS_FAMILY, ADDITIONAL_ADDRESS_FAMILY = 0x0017, 0x8000
_USERNAME, _MESSAGE_INTEGRITY, _REALM, _NONCE = 0x0006, 0x0008, 0x0014, 0x0015


def xorAddress(host: str, port: int, transactionId: bytes) -> bytes:
    """
    The value of an XOR-*-ADDRESS attribute (RFC 8489 section 14.2), for either family.
    """
    packed = socket.inet_pton(_family(host), host)
    mask = struct.pack("!I", _MAGIC_COOKIE) + transactionId
    family = 1 if len(packed) == 4 else 2
    xored = bytes(b ^ m for b, m in zip(packed, mask))
    return struct.pack("!BBH", 0, family, port ^ (_MAGIC_COOKIE >> 16)) + xored


def unxorAddress(value: bytes, transactionId: bytes) -> Tuple[str, int]:
    mask = struct.pack("!I", _MAGIC_COOKIE) + transactionId
    port = struct.unpack("!H", value[2:4])[0] ^ (_MAGIC_COOKIE >> 16)
    packed = bytes(b ^ m for b, m in zip(value[4:], mask))
    return socket.inet_ntop(socket.AF_INET if len(packed) == 4 else socket.AF_INET6, packed), port


class RawTurnClient:
    """
    A minimal long-term-credential TURN client over UDP, written from RFC 8489 and RFC 8656
    alone, for the requests a ready-made client would never send (peers in odd spellings,
    data to refused peers). One request at a time; the response is read back synchronously.
    """

    def __init__(self, serverPort: int, username: str = USER, password: str = PASSWORD,
                 serverHost: str = HOST, sourceHost: Optional[str] = None) -> None:
        self.server = (serverHost, serverPort)
        self.username = username
        self.password = password
        self.realm: Optional[bytes] = None
        self.nonce: Optional[bytes] = None
        self.sock = socket.socket(_family(serverHost), socket.SOCK_DGRAM)
        self.sock.bind((sourceHost or serverHost, 0))
        self.sock.settimeout(5)

    def close(self) -> None:
        self.sock.close()

    @staticmethod
    def _attributes(attributes: Sequence[Tuple[int, bytes]]) -> bytes:
        return b"".join(
            struct.pack("!HH", kind, len(value)) + value + b"\0" * (-len(value) % 4)
            for kind, value in attributes
        )

    def _signed(self, method: int, transactionId: bytes, body: bytes) -> bytes:
        credentials = self._attributes([
            (_USERNAME, self.username.encode()), (_REALM, self.realm or b""),
            (_NONCE, self.nonce or b""),
        ])
        body += credentials
        key = hashlib.md5(
            b":".join([self.username.encode(), self.realm or b"", self.password.encode()])
        ).digest()
        header = _STUN_HEADER.pack(method, len(body) + 24, _MAGIC_COOKIE, transactionId)
        mac = hmac.new(key, header + body, hashlib.sha1).digest()
        return header + body + struct.pack("!HH", _MESSAGE_INTEGRITY, 20) + mac

    def request(
        self, method: int, attributes: Sequence[Tuple[int, Any]]
    ) -> Tuple[int, Optional[int], Dict[int, List[bytes]], bytes]:
        """
        Send a request (attribute values as bytes, or a C{(host, port)} for the XOR address
        types), answering a 401 or 438 once with the realm and nonce it brings.

        @return: C{(messageType, errorCode or None, attributes by type, transactionId)}.
        """
        for _ in range(3):
            transactionId = os.urandom(12)
            encoded = [
                (kind, xorAddress(*value, transactionId) if isinstance(value, tuple) else value)
                for kind, value in attributes
            ]
            body = self._attributes(encoded)
            if self.nonce is None:
                data = _STUN_HEADER.pack(method, len(body), _MAGIC_COOKIE, transactionId) + body
            else:
                data = self._signed(method, transactionId, body)
            self.sock.sendto(data, self.server)
            while True:
                answer, _ = self.sock.recvfrom(65535)
                if answer[8:20] == transactionId:
                    break
            messageType, code = stunSummary(answer)  # type: ignore[misc]
            values = self._parse(answer)
            if code in (401, 438) and (code == 438 or self.nonce is None):
                self.realm, self.nonce = values[_REALM][0], values[_NONCE][0]
                continue
            return messageType, code, values, transactionId
        return messageType, code, values, transactionId

    @staticmethod
    def _parse(data: bytes) -> Dict[int, List[bytes]]:
        values: Dict[int, List[bytes]] = {}
        offset, end = 20, 20 + struct.unpack("!H", data[2:4])[0]
        while offset + 4 <= end:
            kind, length = struct.unpack("!HH", data[offset : offset + 4])
            values.setdefault(kind, []).append(data[offset + 4 : offset + 4 + length])
            offset += 4 + length + (-length % 4)
        return values

    def allocate(self, *attributes: Tuple[int, bytes]) -> List[Tuple[str, int]]:
        """
        Allocate a UDP relay with C{attributes} added (an address family); its relayed
        addresses, IPv4 first.

        @raise AssertionError: the server answered with an error.
        """
        _, code, values, transactionId = self.request(
            ALLOCATE, [(REQUESTED_TRANSPORT, b"\x11\0\0\0"), *attributes]
        )
        assert code is None, f"Allocate failed with {code}"
        return [unxorAddress(value, transactionId) for value in values[XOR_RELAYED_ADDRESS]]

    def createPermission(self, peer: Tuple[str, int]) -> Optional[int]:
        """
        The error code of a CreatePermission for C{peer} (L{None} on success).
        """
        return self.request(CREATE_PERMISSION, [(XOR_PEER_ADDRESS, peer)])[1]

    def channelBind(self, channel: int, peer: Tuple[str, int]) -> Optional[int]:
        """
        The error code of a ChannelBind of C{channel} to C{peer} (L{None} on success).
        """
        return self.request(
            CHANNEL_BIND, [(CHANNEL_NUMBER, struct.pack("!HH", channel, 0)),
                           (XOR_PEER_ADDRESS, peer)],
        )[1]

    def sendIndication(self, peer: Tuple[str, int], payload: bytes) -> None:
        transactionId = os.urandom(12)
        body = self._attributes(
            [(XOR_PEER_ADDRESS, xorAddress(*peer, transactionId)), (DATA, payload)]
        )
        self.sock.sendto(
            _STUN_HEADER.pack(0x0016, len(body), _MAGIC_COOKIE, transactionId) + body,
            self.server,
        )

    def channelData(self, channel: int, payload: bytes) -> None:
        self.sock.sendto(struct.pack("!HH", channel, len(payload)) + payload, self.server)


class UdpEchoPeer:
    """
    C{turnutils_peer}, coturn's UDP echo peer, on C{host} (127.0.0.1 by default).
    """

    def __init__(self, logPath: Path, host: str = HOST) -> None:
        self.host = host
        self.port = freeUdpPort(host)
        with open(logPath, "wb") as log:
            self.process = subprocess.Popen(
                [requireTool("turnutils_peer"), "-L", host, "-p", str(self.port)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        if not waitForEcho(
            self.port, isAlive=lambda: self.process.poll() is None, host=host
        ):
            self.stop()
            raise AssertionError(f"turnutils_peer did not echo on {host} port {self.port}")

    def stop(self) -> None:
        stopProcess(self.process)


class SniffingProxy:
    """
    A one-client UDP proxy in front of a server that records the STUN type and error code of
    every datagram the server sends back, so a test can see what the server answered a client
    that does not print it.

    @ivar answers: C{(messageType, errorCode)} per STUN datagram from the server, in order.
    """

    def __init__(self, serverPort: int) -> None:
        self.answers: List[Tuple[int, Optional[int]]] = []
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind((HOST, 0))
        self._back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._back.connect((HOST, serverPort))
        self.port = self._front.getsockname()[1]
        self._client: Optional[Tuple[str, int]] = None
        self._running = True
        self._threads = [
            threading.Thread(target=self._pump, args=(self._front, True), daemon=True),
            threading.Thread(target=self._pump, args=(self._back, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _pump(self, sock: socket.socket, fromClient: bool) -> None:
        sock.settimeout(0.2)
        while self._running:
            try:
                data, source = sock.recvfrom(65535)
            except (socket.timeout, ConnectionRefusedError):
                continue
            except OSError:
                return
            if fromClient:
                self._client = source
                self._back.send(data)
            elif self._client is not None:
                summary = stunSummary(data)
                if summary is not None:
                    self.answers.append(summary)
                self._front.sendto(data, self._client)

    def stop(self) -> None:
        self._running = False
        for thread in self._threads:
            thread.join(timeout=2)
        self._front.close()
        self._back.close()


def writeCertificate(
    directory, commonName: str, password: Optional[bytes] = None,
    hosts: Sequence[str] = (HOST, "::1", "localhost"),
) -> Tuple[str, str, Any]:
    """
    Write a fresh self-signed P-256 certificate for C{hosts} (its subject alternative names)
    and its key into C{directory}.  A client can trust it by giving the certificate file as
    its CA file.

    @return: the certificate file, the key file and the certificate.
    """
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = str(directory)
    os.makedirs(directory, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, commonName)])
    now = datetime.datetime.now(datetime.timezone.utc)
    names: List[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    certFile = os.path.join(directory, commonName + ".crt")
    keyFile = os.path.join(directory, commonName + ".key")
    with open(certFile, "wb") as f:
        f.write(certificate.public_bytes(serialization.Encoding.PEM))
    encryption = (
        serialization.BestAvailableEncryption(password)
        if password
        else serialization.NoEncryption()
    )
    with open(keyFile, "wb") as f:
        f.write(
            key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
            )
        )
    return certFile, keyFile, certificate


def restCredentials(secret: str, user: str, expires: int) -> Tuple[str, str]:
    """
    TURN REST API credentials (draft-uberti-behave-turn-rest): the username is
    C{expiry:user}, the password base64(HMAC-SHA1(secret, username)).
    """
    username = f"{expires}:{user}"
    digest = hmac.new(secret.encode(), username.encode(), hashlib.sha1).digest()
    return username, base64.b64encode(digest).decode()


class UclientResult:
    """
    What one C{turnutils_uclient} run did.

    @ivar returncode: its exit status.
    @ivar output: stdout and stderr, interleaved.
    @ivar stats: the final statistics block (C{sent}, C{received}, C{lost}, C{sendDropped}),
        or L{None} when the run never got that far.
    """

    _TOTALS = re.compile(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)")
    _LOSS = re.compile(r"Total lost packets (\d+) \([^)]*\), total send dropped (\d+)")

    def __init__(self, returncode: int, output: str) -> None:
        self.returncode = returncode
        self.output = output
        totals = self._TOTALS.findall(output)
        loss = self._LOSS.findall(output)
        self.stats: Optional[Dict[str, int]] = None
        if totals and loss:
            (sent, received), (lost, dropped) = totals[-1], loss[-1]
            self.stats = {
                "sent": int(sent),
                "received": int(received),
                "lost": int(lost),
                "sendDropped": int(dropped),
            }

    def __repr__(self) -> str:
        return f"<uclient exit {self.returncode} stats {self.stats}>\n{self.output[-3000:]}"


#: turnutils_uclient's flags for each client transport.
UCLIENT_TRANSPORTS: Dict[str, Tuple[str, ...]] = {
    "udp": (),
    "tcp": ("-t",),
    "tls": ("-t", "-S"),
    "dtls": ("-S",),
}


def uclientCommand(
    serverPort: int,
    peerPort: int,
    credentials: Sequence[str],
    *,
    messages: int = 50,
    clients: int = 2,
    sendIndications: bool = False,
    serverHost: str = HOST,
    transport: str = "udp",
    peerHost: str = HOST,
    familyFlags: Sequence[str] = ("-X",),
) -> List[str]:
    """
    The C{turnutils_uclient} command line of L{runUclient}, for a test that runs it itself.
    """
    return [
        requireTool("turnutils_uclient"),
        "-e",
        peerHost,
        "-r",
        str(peerPort),
        "-p",
        str(serverPort),
        *credentials,
        "-n",
        str(messages),
        "-m",
        str(clients),
        "-l",
        "120",
        "-z",
        "10",
        "-c",
        *familyFlags,
        *(["-s"] if sendIndications else []),
        *UCLIENT_TRANSPORTS[transport],
        serverHost,
    ]


def runUclient(
    serverPort: int,
    peerPort: int,
    credentials: Sequence[str],
    **options: Any,
) -> UclientResult:
    """
    Run C{turnutils_uclient} against 127.0.0.1: C{clients} clients each allocate an IPv4 relay
    (-X), skip RTCP (-c), and send C{messages} 120-byte messages, one every 10 ms, to the echo
    peer, by ChannelData or (C{sendIndications}) Send indications (-s).

    @param credentials: the authentication flags, e.g. C{("-u", "alice", "-w", "secret")}.
    @param options: as L{uclientCommand} takes them: C{messages} (50), C{clients} (2),
        C{sendIndications}; C{serverHost}, the server address uclient talks to (C{::1} for an
        IPv6 listener); C{transport}, how uclient reaches the server: C{udp}, C{tcp} (-t),
        C{tls} (-t -S) or C{dtls} (-S); C{peerHost}, the echo peer's address (C{::1} for an
        IPv6 peer); C{familyFlags}, the relay family flags: C{-X} an IPv4 relayed address (the
        default), C{-x} an IPv6 one, C{-Z} with either a dual-stack allocation.
    """
    command = uclientCommand(serverPort, peerPort, credentials, **options)
    # stdout and stderr apart: a shared pipe could splice a stderr write into a stats line.
    try:
        completed = subprocess.run(
            command, stdin=subprocess.DEVNULL, capture_output=True, timeout=TOOL_TIMEOUT
        )
    except subprocess.TimeoutExpired as e:
        output = (e.stdout or b"").decode(errors="replace")
        raise AssertionError(
            f"turnutils_uclient ran past {TOOL_TIMEOUT}s: {' '.join(command)}\n{output[-3000:]}"
        ) from None
    output = (completed.stdout + completed.stderr).decode(errors="replace")
    return UclientResult(completed.returncode, output)


def assertNoLoss(result: UclientResult, expected: int) -> None:
    """
    uclient sent C{expected} messages, every one came back from the echo peer, and uclient
    says so.
    """
    assert result.returncode == 0, result
    assert result.stats == {
        "sent": expected, "received": expected, "lost": 0, "sendDropped": 0,
    }, result


def runTwistdTurn(*arguments: str, **environment: str) -> subprocess.CompletedProcess:
    """
    Run C{twistd -n turn} with C{arguments} to its end (for options that must stop it), with
    C{environment} added to the checkout's.
    """
    return subprocess.run(
        [*TWISTD, "-n", "--pidfile=", "turn", *arguments],
        cwd=REPO_ROOT, env=checkoutEnvironment(**environment), stdin=subprocess.DEVNULL,
        capture_output=True, text=True, timeout=60,
    )
