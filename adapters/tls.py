"""HTTPS for `huddle serve`: your certificate files (re-read on SIGHUP), or a local CA made once.

Browsers give cameras and microphones only to secure contexts: https://, or http://localhost. So a
huddle reached from another machine needs TLS, here or in a reverse proxy in front
(adapters/proxy.py). Three ways, chosen in :func:`server_certificate`:

- ``HUDDLE_TLS_CERT`` / ``HUDDLE_TLS_KEY``: PEM files (a certificate chain, an unencrypted key),
  checked at start (a clear error, no start) and re-read on SIGHUP (new connections get the new
  certificate; a bad file keeps the old one and says why in the log).
- ``--tls self-signed``: :class:`LocalCA` makes a small certificate authority and a server
  certificate for this machine's names into ``{data dir}/tls/``, once; later starts reuse them (the
  server certificate is re-issued, by the same CA, when the names change or it nears expiry), so a
  device that trusts the CA keeps trusting huddle. :func:`trust_instructions` says how.
- neither: plain HTTP, with :func:`plain_http_warning` when that cannot work for cameras.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import ipaddress
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from aiohttp import web
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from bot.config import Settings

log = logging.getLogger("huddle.tls")

#: The local CA outlives many server certificates: devices trust it once.
CA_LIFETIME = dt.timedelta(days=3650)
#: Under Apple's 398-day limit for server certificates, which the other browsers accept too.
LEAF_LIFETIME = dt.timedelta(days=397)
#: A server certificate this close to expiry is re-issued at start (or on SIGHUP).
RENEW_BEFORE = dt.timedelta(days=30)
#: Certificate files this close to expiry get a warning at load.
EXPIRY_WARNING = dt.timedelta(days=14)
#: Where phones download the local CA from (self-signed mode only).
CA_PATH = "/tls/ca.pem"
#: Names every self-signed server certificate carries, whatever else it serves.
LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


class TLSError(Exception):
    """A certificate or key that cannot be used; ``str(error)`` names the file and the fix."""


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 of the certificate as browsers and ``openssl x509 -fingerprint`` show it."""
    digest = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest().upper()
    return ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


# -- certificate files --------------------------------------------------------------------------


@dataclass(frozen=True)
class CertificateFiles:
    """A PEM certificate chain (server certificate first) and its private key."""

    cert: Path
    key: Path
    #: Named in error messages: the setting the paths came from.
    cert_label: str = "HUDDLE_TLS_CERT"
    key_label: str = "HUDDLE_TLS_KEY"


@dataclass(frozen=True)
class LoadedCertificate:
    """What was read from :class:`CertificateFiles`, checked to belong together."""

    chain: list[x509.Certificate]
    cert_pem: bytes
    key_pem: bytes

    @property
    def leaf(self) -> x509.Certificate:
        """The server certificate (the chain's first)."""
        return self.chain[0]


def _read(path: Path, label: str) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise TLSError(f"{label} {path}: no such file") from None
    except PermissionError:
        raise TLSError(f"{label} {path}: cannot read it (permission denied)") from None
    except IsADirectoryError:
        raise TLSError(f"{label} {path}: is a directory, not a PEM file") from None


def read_certificate(files: CertificateFiles) -> LoadedCertificate:
    """Read and check a certificate chain and key; :class:`TLSError` says what is wrong."""
    cert_pem = _read(files.cert, files.cert_label)
    key_pem = _read(files.key, files.key_label)
    try:
        chain = x509.load_pem_x509_certificates(cert_pem)
    except ValueError:
        raise TLSError(
            f"{files.cert_label} {files.cert}: no PEM certificate in it "
            "(expected -----BEGIN CERTIFICATE-----)"
        ) from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except TypeError:
        raise TLSError(
            f"{files.key_label} {files.key}: the private key is encrypted; huddle needs it "
            f"without a passphrase (openssl pkey -in {files.key} -out key.pem)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise TLSError(
            f"{files.key_label} {files.key}: no usable PEM private key in it "
            "(expected -----BEGIN PRIVATE KEY-----)"
        ) from None
    if key.public_key() != chain[0].public_key():
        raise TLSError(
            f"{files.key_label} {files.key} is not the key of the certificate in "
            f"{files.cert_label} {files.cert}"
        )
    return LoadedCertificate(chain=chain, cert_pem=cert_pem, key_pem=key_pem)


def _new_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["http/1.1"])
    return context


@contextlib.contextmanager
def _pem_files(loaded: LoadedCertificate) -> Iterator[tuple[str, str]]:
    # ssl loads only from files: the bytes already checked go through a private temporary
    # directory, so the live context gets exactly the pair that was checked even if the
    # originals change meanwhile (a renewal writing the certificate and then the key).
    with tempfile.TemporaryDirectory(prefix="huddle-tls-") as tmp:
        cert, key = Path(tmp, "cert.pem"), Path(tmp, "key.pem")
        cert.write_bytes(loaded.cert_pem)
        key.touch(mode=0o600)
        key.write_bytes(loaded.key_pem)
        yield str(cert), str(key)


class ServerCertificate:
    """The certificate `huddle serve` presents: one :class:`ssl.SSLContext`, reloadable.

    ``load_cert_chain`` on the live context replaces the chain for handshakes that start
    afterwards; connections already open keep theirs. A failed load can leave a context
    half-changed (new certificate, no key), so every load is first tried on a scratch context.
    """

    def __init__(self, source: Callable[[], CertificateFiles]) -> None:
        #: Called at each (re)load: the files to read (a self-signed source re-issues first).
        self._source = source
        self.context = _new_context()
        self.leaf: x509.Certificate | None = None
        self.load()

    def load(self) -> x509.Certificate:
        """Read the files and serve them from now on; :class:`TLSError` leaves the old ones."""
        files = self._source()
        loaded = read_certificate(files)
        with _pem_files(loaded) as (cert, key):
            try:
                _new_context().load_cert_chain(cert, key)
            except ssl.SSLError as exc:
                raise TLSError(
                    f"{files.cert_label} {files.cert} / {files.key_label} {files.key}: "
                    f"OpenSSL refuses them ({exc.reason or exc})"
                ) from None
            self.context.load_cert_chain(cert, key)
        self.leaf = loaded.leaf
        left = loaded.leaf.not_valid_after_utc - _utcnow()
        log.info(
            "tls certificate loaded file=%s subject=%s names=%s not_after=%s sha256=%s",
            files.cert,
            loaded.leaf.subject.rfc4514_string(),
            ",".join(certificate_names(loaded.leaf)),
            loaded.leaf.not_valid_after_utc.isoformat(),
            fingerprint(loaded.leaf),
        )
        if left < EXPIRY_WARNING:
            log.warning(
                "tls certificate %s file=%s not_after=%s: browsers refuse an expired certificate",
                "expired" if left.total_seconds() <= 0 else "expires soon",
                files.cert,
                loaded.leaf.not_valid_after_utc.isoformat(),
            )
        return loaded.leaf

    def reload(self) -> bool:
        """SIGHUP: serve the files as they are now; on any problem log it and keep the old ones."""
        try:
            self.load()
        except TLSError as exc:
            log.error("tls reload failed, still serving the previous certificate: %s", exc)
            return False
        except Exception:
            log.exception("tls reload failed, still serving the previous certificate")
            return False
        return True


def certificate_names(cert: x509.Certificate) -> list[str]:
    """The DNS names and IP addresses a certificate is valid for (subjectAltName)."""
    try:
        alt = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return []
    names: list[str] = list(alt.get_values_for_type(x509.DNSName))
    names += [str(ip) for ip in alt.get_values_for_type(x509.IPAddress)]
    return names


# -- the local CA (--tls self-signed) ------------------------------------------------------------


def _normal_name(name: str) -> str:
    name = name.strip().strip("[]").lower()
    with contextlib.suppress(ValueError):
        return str(ipaddress.ip_address(name))
    return name


def _is_wildcard(host: str) -> bool:
    return _normal_name(host) in ("", "0.0.0.0", "::")


def server_names(settings: Settings) -> list[str]:
    """What the self-signed server certificate is for: the public URL's host, the bind address
    when it is a specific one, and localhost (by name, IPv4 and IPv6)."""
    names: list[str] = []
    public_host = urlsplit(settings.public_url).hostname if settings.public_url else None
    for name in (public_host or "", settings.host, *LOCAL_NAMES):
        if not _is_wildcard(name) and _normal_name(name) not in names:
            names.append(_normal_name(name))
    return names


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _key_usage(*, signs_certificates: bool) -> x509.KeyUsage:
    # ECDSA keys sign (the TLS handshake, or certificates for the CA) and do nothing else.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=signs_certificates,
        crl_sign=signs_certificates,
        encipher_only=False,
        decipher_only=False,
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write_atomic(path: Path, data: bytes, mode: int) -> None:
    # Written beside and renamed: a crash never leaves half a key, and a reader sees old or new.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class IssuedCertificate:
    """The outcome of :meth:`LocalCA.ensure`: the files to serve and what was (re)made."""

    files: CertificateFiles
    ca_created: bool
    leaf_issued: bool


class LocalCA:
    """A certificate authority of this huddle only, in ``directory`` (``{data dir}/tls``).

    ``ca.pem`` is what devices trust; ``ca-key.pem`` signs server certificates and never leaves
    the data dir (0600, like ``server-key.pem``). Server certificates last :data:`LEAF_LIFETIME`
    and are re-issued by the same CA when needed, so trusting the CA once is enough.
    """

    def __init__(self, directory: Path, clock: Callable[[], dt.datetime] = _utcnow) -> None:
        self.directory = directory
        self.ca_cert = directory / "ca.pem"
        self.ca_key = directory / "ca-key.pem"
        self.cert = directory / "server.pem"
        self.key = directory / "server-key.pem"
        self._clock = clock

    def ensure(self, names: Sequence[str]) -> IssuedCertificate:
        """The server certificate for ``names``: the stored one if still right, else a new one."""
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        # Two processes starting on one data dir must not make two CAs.
        with open(self.directory / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            ca_created = False
            if not self.ca_cert.exists() and not self.ca_key.exists():
                self._make_ca()
                ca_created = True
            ca_cert, ca_key = self._load_ca()
            leaf_issued = False
            reason = self._leaf_problem(ca_cert, names)
            if reason:
                self._issue_leaf(ca_cert, ca_key, names)
                leaf_issued = True
                log.info(
                    "tls server certificate issued reason=%r names=%s", reason, ",".join(names)
                )
        files = CertificateFiles(
            self.cert, self.key, cert_label="self-signed certificate", key_label="its key"
        )
        return IssuedCertificate(files, ca_created=ca_created, leaf_issued=leaf_issued)

    def ca_certificate(self) -> x509.Certificate:
        """The CA certificate devices trust."""
        return x509.load_pem_x509_certificate(self.ca_cert.read_bytes())

    def _make_ca(self) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock()
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, "huddle"),
                x509.NameAttribute(
                    NameOID.COMMON_NAME,
                    f"huddle local CA {socket.gethostname()[:30]} {now:%Y-%m-%d}",
                ),
            ]
        )
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(now + CA_LIFETIME)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(_key_usage(signs_certificates=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .sign(key, hashes.SHA256())
        )
        _write_atomic(self.ca_key, _key_pem(key), 0o600)
        _write_atomic(self.ca_cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)
        log.info("tls local CA created file=%s sha256=%s", self.ca_cert, fingerprint(cert))

    def _load_ca(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        # A broken CA is not replaced silently: devices trust it, a new one would undo that.
        files = CertificateFiles(
            self.ca_cert, self.ca_key, cert_label="local CA certificate", key_label="local CA key"
        )
        try:
            loaded = read_certificate(files)
        except TLSError as exc:
            raise TLSError(
                f"{exc}. Restore it, or delete {self.directory} to make a new CA "
                "(every device must then trust the new one)"
            ) from None
        key = serialization.load_pem_private_key(loaded.key_pem, password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise TLSError(f"local CA key {self.ca_key}: not an EC key made by huddle")
        return loaded.leaf, key

    def _leaf_problem(self, ca: x509.Certificate, names: Sequence[str]) -> str:
        """Why the stored server certificate cannot be served as is ("" if it can)."""
        if not self.cert.exists() or not self.key.exists():
            return "none yet"
        try:
            loaded = read_certificate(CertificateFiles(self.cert, self.key))
            loaded.leaf.verify_directly_issued_by(ca)
        except (TLSError, ValueError, TypeError, InvalidSignature):
            return "unreadable or not from this CA"
        if sorted(certificate_names(loaded.leaf)) != sorted(names):
            return "names changed"
        if loaded.leaf.not_valid_after_utc - self._clock() < RENEW_BEFORE:
            return "near expiry"
        return ""

    def _issue_leaf(
        self, ca: x509.Certificate, ca_key: ec.EllipticCurvePrivateKey, names: Sequence[str]
    ) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        now = self._clock()
        public = key.public_key()
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])]))
            .issuer_name(ca.subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(hours=1))
            .not_valid_after(min(now + LEAF_LIFETIME, ca.not_valid_after_utc))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(signs_certificates=False), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([_general_name(name) for name in names]),
                critical=False,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                critical=False,
            )
            .sign(ca_key, hashes.SHA256())
        )
        _write_atomic(self.key, _key_pem(key), 0o600)
        _write_atomic(self.cert, cert.public_bytes(serialization.Encoding.PEM), 0o644)


def trust_instructions(ca_file: Path, ca_fingerprint: str, public_url: str) -> str:
    """How to make browsers trust the local CA, one line per system (printed at start)."""
    ca = str(ca_file.resolve())
    return "\n".join(
        [
            f"huddle: HTTPS with a local certificate authority (CA): {ca}",
            f"  its SHA-256 fingerprint: {ca_fingerprint}",
            f"  Browsers warn about {public_url} until each device trusts this CA once "
            "(compare the fingerprint):",
            f"  Chrome/Chromium on Linux: certutil -d sql:$HOME/.pki/nssdb -A -t C,, -n huddle "
            f"-i {ca}   (Debian: apt install libnss3-tools; on macOS and Windows Chrome uses "
            "the system's store, below)",
            "  Firefox: Settings > Privacy & Security > Certificates > View Certificates > "
            "Authorities > Import, tick 'Trust this CA to identify websites'",
            f"  macOS: sudo security add-trusted-cert -d -r trustRoot "
            f"-k /Library/Keychains/System.keychain {ca}",
            "  Windows (administrator prompt): certutil -addstore -f ROOT ca.pem",
            f"  Debian/Ubuntu (system-wide, curl, Python): sudo cp {ca} "
            "/usr/local/share/ca-certificates/huddle.crt && sudo update-ca-certificates",
            f"  Phones must install the CA too: open {public_url}{CA_PATH} "
            "(iPhone/iPad: install the profile in Settings, then Settings > General > About > "
            "Certificate Trust Settings > turn it on; Android: Settings > Security > "
            "Encryption & credentials > Install a certificate > CA certificate).",
        ]
    )


def add_ca_route(app: web.Application, ca_file: Path) -> None:
    """Serve the local CA certificate (public, not secret) at :data:`CA_PATH` for phones."""
    body = ca_file.read_bytes()

    async def ca(_: web.Request) -> web.Response:
        return web.Response(
            body=body,
            content_type="application/x-x509-ca-cert",
            headers={"Content-Disposition": 'attachment; filename="huddle-ca.pem"'},
        )

    app.router.add_get(CA_PATH, ca)


# -- choosing -----------------------------------------------------------------------------------


@dataclass
class ServerTLS:
    """What `huddle serve` runs with when TLS is on."""

    certificate: ServerCertificate
    #: The local CA (self-signed mode), else None.
    local_ca: LocalCA | None = None


def server_certificate(settings: Settings) -> ServerTLS | None:
    """The TLS `settings` ask for (None: plain HTTP); :class:`TLSError` if it cannot be served.

    Call after ``settings.resolve()``: the self-signed certificate is for the public URL's host.
    """
    if settings.tls_mode == "self-signed":
        if settings.tls_cert or settings.tls_key:
            raise TLSError(
                "--tls self-signed and HUDDLE_TLS_CERT/HUDDLE_TLS_KEY exclude each other: "
                "use your certificate files or a self-signed certificate, not both"
            )
        local_ca = LocalCA(settings.data_dir / "tls")
        names = server_names(settings)
        return ServerTLS(ServerCertificate(lambda: local_ca.ensure(names).files), local_ca)
    if settings.tls_cert or settings.tls_key:
        if not (settings.tls_cert and settings.tls_key):
            given, missing = (
                ("HUDDLE_TLS_CERT", "HUDDLE_TLS_KEY")
                if settings.tls_cert
                else ("HUDDLE_TLS_KEY", "HUDDLE_TLS_CERT")
            )
            raise TLSError(f"{given} is set but {missing} is not: HTTPS needs both files")
        files = CertificateFiles(settings.tls_cert, settings.tls_key)
        return ServerTLS(ServerCertificate(lambda: files))
    return None


def is_loopback(host: str) -> bool:
    """True when ``host`` (an address or a name) is reachable from this machine only."""
    name = _normal_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(name, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)


def plain_http_warning(settings: Settings, tls: ServerTLS | None) -> str | None:
    """The start-up warning for plain HTTP that other machines reach (None when not needed)."""
    if tls is not None or settings.trust_proxy or is_loopback(settings.host):
        return None
    return (
        f"huddle serves plain http:// on {settings.host}:{settings.port}: browsers on other "
        "machines refuse camera and microphone there (they need https://). Fix: "
        "--tls self-signed (a LAN), HUDDLE_TLS_CERT/HUDDLE_TLS_KEY (your certificate), or a "
        "reverse proxy doing TLS in front with HUDDLE_TRUST_PROXY=true (README: Run it for "
        "your team)."
    )
