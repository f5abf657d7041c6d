"""The certificates and keys a test control plane needs, generated fresh for each run."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

_VALIDITY = datetime.timedelta(days=7)


@dataclass(frozen=True)
class Pki:
    """Paths of the PEM files written by `write_pki`."""

    ca_cert: Path
    ca_key: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    service_account_key: Path
    service_account_pub: Path


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization is not None:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def _builder(
    subject: x509.Name, issuer: x509.Name, public_key: ec.EllipticCurvePublicKey
) -> x509.CertificateBuilder:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + _VALIDITY)
    )


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signing for every certificate; certificate and CRL signing for the CA only."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _leaf(
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    subject: x509.Name,
    usage: x509.ObjectIdentifier,
    sans: list[x509.GeneralName] | None = None,
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = _key()
    builder = (
        _builder(subject, ca_cert.subject, key.public_key())
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(ca=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    return builder.sign(ca_key, hashes.SHA256()), key


def _cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, private: bool = False) -> Path:
    path.write_bytes(data)
    if private:
        path.chmod(0o600)
    return path


def write_pki(directory: Path) -> Pki:
    """Generate a CA, a serving certificate for 127.0.0.1/localhost, an admin client
    certificate (group ``system:masters``) and a service-account key pair into `directory`.
    """
    directory.mkdir(parents=True, exist_ok=True)
    ca_key = _key()
    ca_name = _name("trio-controller-envtest-ca")
    ca_cert = (
        _builder(ca_name, ca_name, ca_key.public_key())
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_key_usage(ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    serving_cert, serving_key = _leaf(
        ca_cert,
        ca_key,
        _name("kube-apiserver"),
        ExtendedKeyUsageOID.SERVER_AUTH,
        [
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.DNSName("localhost"),
        ],
    )
    admin_cert, admin_key = _leaf(
        ca_cert, ca_key, _name("envtest-admin", "system:masters"), ExtendedKeyUsageOID.CLIENT_AUTH
    )
    sa_key = _key()
    return Pki(
        ca_cert=_write(directory / "ca.crt", _cert_pem(ca_cert)),
        ca_key=_write(directory / "ca.key", _key_pem(ca_key), private=True),
        serving_cert=_write(directory / "apiserver.crt", _cert_pem(serving_cert)),
        serving_key=_write(directory / "apiserver.key", _key_pem(serving_key), private=True),
        admin_cert=_write(directory / "admin.crt", _cert_pem(admin_cert)),
        admin_key=_write(directory / "admin.key", _key_pem(admin_key), private=True),
        service_account_key=_write(directory / "sa.key", _key_pem(sa_key), private=True),
        service_account_pub=_write(
            directory / "sa.pub",
            sa_key.public_key().public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ),
        ),
    )


@dataclass(frozen=True)
class ServingCert:
    """A webhook serving certificate written as controller-runtime expects it:
    `dir/tls.crt` and `dir/tls.key`, signed by a CA of its own (`ca_pem` is the caBundle)."""

    directory: Path
    cert_file: Path
    key_file: Path
    ca_file: Path
    ca_pem: bytes


def write_serving_cert(
    directory: Path, hosts: tuple[str, ...] = ("127.0.0.1", "localhost")
) -> ServingCert:
    """A fresh CA and a serving certificate for `hosts` (IP addresses and DNS names) into
    `directory` as tls.crt/tls.key (ca.crt beside them). Writing again into the same
    folder keeps the CA when it is there (a rotation the same caBundle accepts)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_cert_path, ca_key_path = directory / "ca.crt", directory / "ca.key"
    if ca_cert_path.exists() and ca_key_path.exists():
        ca_cert = x509.load_pem_x509_certificate(ca_cert_path.read_bytes())
        loaded = serialization.load_pem_private_key(ca_key_path.read_bytes(), None)
        assert isinstance(loaded, ec.EllipticCurvePrivateKey)
        ca_key = loaded
    else:
        ca_key = _key()
        ca_name = _name("trio-controller-webhook-ca")
        ca_cert = (
            _builder(ca_name, ca_name, ca_key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(_key_usage(ca=True), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
            .sign(ca_key, hashes.SHA256())
        )
        _write(ca_cert_path, _cert_pem(ca_cert))
        _write(ca_key_path, _key_pem(ca_key), private=True)
    sans: list[x509.GeneralName] = []
    for host in hosts:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert, key = _leaf(
        ca_cert, ca_key, _name("webhook-server"), ExtendedKeyUsageOID.SERVER_AUTH, sans
    )
    # The key first, then the certificate, each replaced in one rename: a reader never
    # sees half a file.
    key_file, cert_file = directory / "tls.key", directory / "tls.crt"
    for path, data, private in (
        (key_file, _key_pem(key), True),
        (cert_file, _cert_pem(cert), False),
    ):
        scratch = path.with_name(f".{path.name}.tmp")
        _write(scratch, data, private=private)
        scratch.replace(path)
    return ServingCert(directory, cert_file, key_file, ca_cert_path, ca_cert_path.read_bytes())
