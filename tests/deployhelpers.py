"""Helpers for the deployment tests: a test CA, a TLS front, the admin listener,
and the way Kubernetes updates a ConfigMap mounted as a directory.

Everything listens on 127.0.0.1 and is stopped by the test that started it.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import os
import re
import secrets
import select
import shutil
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from http.client import HTTPConnection
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tests.helpers import Mitmdump

ADMIN_LINE = re.compile(r"tokenfix: admin listener on ([\d.]+):(\d+) ")


# -- a test CA -------------------------------------------------------------------


@dataclass
class Leaf:
    cert: Path  # the certificate alone
    key: Path
    bundle: Path  # key, certificate and CA, as mitmproxy's --certs wants them


class TestCA:
    """A CA made for one test, and leaf certificates for loopback servers."""

    __test__ = False  # not a pytest class

    def __init__(self, folder: Path, name: str = "tokenfix test CA") -> None:
        self.folder = folder
        self.key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        public = self.key.public_key()
        self.cert = (
            self._builder(subject, subject, public)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_usage(cert_sign=True), critical=True)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(public),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        self.path = folder / "ca.pem"
        self.path.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))

    def leaf(self, name: str, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")):
        key = ec.generate_private_key(ec.SECP256R1())
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hosts[0])])
        cert = (
            self._builder(subject, self.cert.subject, key.public_key())
            .add_extension(x509.SubjectAlternativeName(_names(hosts)), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), True)
            .add_extension(_usage(cert_sign=False), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(
                    self.key.public_key()
                ),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )
        cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        leaf = Leaf(
            self.folder / f"{name}.crt",
            self.folder / f"{name}.key",
            self.folder / f"{name}.pem",
        )
        leaf.cert.write_bytes(cert_pem)
        leaf.key.write_bytes(key_pem)
        leaf.bundle.write_bytes(key_pem + cert_pem + self.path.read_bytes())
        return leaf

    @staticmethod
    def _builder(subject, issuer, public) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), False)
        )


def _usage(*, cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _names(hosts: tuple[str, ...]) -> list[x509.GeneralName]:
    names: list[x509.GeneralName] = []
    for host in hosts:
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            names.append(x509.DNSName(host))
    return names


# -- a TLS front for a plain HTTP server ------------------------------------------


class TLSFront:
    """Terminates TLS on a loopback port and relays the bytes to a plain server.

    It makes an HTTPS upstream of the demo authorization server without
    touching it. One thread per connection; both directions in one select loop,
    as an SSL socket must not be read and written from two threads at once.
    """

    def __init__(self, target_port: int, leaf: Leaf) -> None:
        self.target_port = target_port
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(leaf.cert, leaf.key)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.handshakes = 0
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> TLSFront:
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._listener.close()

    def _accept(self) -> None:
        # closing a socket does not wake a thread blocked in accept(): poll
        self._listener.settimeout(0.1)
        while not self._stopped.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(10)
        try:
            tls = self.context.wrap_socket(conn, server_side=True)
        except (OSError, ssl.SSLError):
            conn.close()
            return
        self.handshakes += 1
        with tls, socket.create_connection(("127.0.0.1", self.target_port)) as plain:
            try:
                self._relay(tls, plain)
            except (OSError, ssl.SSLError):
                pass

    def _relay(self, tls: ssl.SSLSocket, plain: socket.socket) -> None:
        while not self._stopped.is_set():
            readable, _, _ = select.select([tls, plain], [], [], 0.2)
            for sock in readable:
                other = plain if sock is tls else tls
                data = sock.recv(65536)
                if not data:
                    return
                other.sendall(data)
                # records already decrypted do not show up in select
                while sock is tls and tls.pending():
                    other.sendall(tls.recv(65536))


# -- mitmdump in the production form ---------------------------------------------


class ReverseAtPort(Mitmdump):
    """mitmdump started as production runs it: `--mode reverse:URL@PORT`, with
    any `extra` arguments (such as `--certs`), and no --listen-port."""

    def __init__(self, *args, extra: tuple[str, ...] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.extra = list(extra)
        # with a certificate of its own, the proxy speaks TLS to its clients
        self.scheme = "https" if "--certs" in self.extra else "http"

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def command(self) -> list[str]:
        args = super().command()
        mode = args.index("--mode") + 1
        args[mode] = f"{args[mode]}@{self.port}"
        port_flag = args.index("--listen-port")
        del args[port_flag : port_flag + 2]
        return [*args, *self.extra]


# -- the admin listener ----------------------------------------------------------


def admin_address(proc: Mitmdump, timeout: float = 10.0) -> tuple[str, int]:
    """The admin listener's address, from the line tokenfix logs when it starts."""
    match = proc.wait_for_output(ADMIN_LINE, timeout=timeout)
    return match.group(1), int(match.group(2))


def admin_get(address: tuple[str, int], path: str) -> tuple[int, bytes]:
    conn = HTTPConnection(*address, timeout=5)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def health(address: tuple[str, int]) -> tuple[int, dict]:
    status, body = admin_get(address, "/health")
    return status, json.loads(body)


def metric(address: tuple[str, int], sample: str) -> float | None:
    """The value of one sample line of /metrics, such as `name{label="x"}`."""
    _, body = admin_get(address, "/metrics")
    for line in body.decode().splitlines():
        name, _, value = line.rpartition(" ")
        if name == sample:
            return float(value)
    return None


# -- a ConfigMap mounted as a directory ------------------------------------------


class ConfigMapVolume:
    """A folder updated the way the kubelet updates a mounted ConfigMap.

    The files live in a timestamped folder `..2024_01_02_03_04_05.123456789`;
    `..data` is a symlink to it and each key `NAME` a symlink to `..data/NAME`.
    An update writes a new timestamped folder, points a new symlink at it and
    renames that over `..data` (one atomic step), then removes the old folder.
    A reader of `NAME` sees the old file or the new one, never a mix.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)

    @property
    def data(self) -> Path:
        return self.root / "..data"

    def publish(self, files: dict[str, str]) -> Path:
        stamp = time.strftime("%Y_%m_%d_%H_%M_%S", time.gmtime())
        folder = self.root / f"..{stamp}.{secrets.randbelow(10**9):09d}"
        folder.mkdir()
        for name, text in files.items():
            (folder / name).write_text(text, encoding="utf-8")
        old = os.readlink(self.data) if self.data.is_symlink() else None

        staging = self.root / "..data_tmp"
        os.symlink(folder.name, staging)
        os.replace(staging, self.data)
        for name in files:
            link = self.root / name
            if not link.is_symlink():
                os.symlink(f"..data/{name}", link)
        if old is not None:
            shutil.rmtree(self.root / old)
        return folder
