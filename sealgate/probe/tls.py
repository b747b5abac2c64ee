"""TLS: the client context, the handshake with one-line failures, and what to show.

Admins debugging gateway TLS need to see the chain *as the server sent it*
(a missing intermediate is the classic fault), the protocol and the cipher.
"""

import _ssl
import socket
import ssl
from dataclasses import dataclass
from datetime import datetime, timezone

from .errors import ProbeFailure, UsageError
from .x509 import parse_certificate


@dataclass(frozen=True)
class TLSClient:
    """How to start TLS: the context and the name the certificate must match."""

    context: ssl.SSLContext
    server_name: str
    trust: str

    def handshake(self, sock: socket.socket) -> ssl.SSLSocket:
        """Wrap the socket in TLS, turning every failure into one clear line."""
        try:
            return self.context.wrap_socket(sock, server_hostname=self.server_name)
        except ssl.SSLCertVerificationError as err:
            raise ProbeFailure(
                f"TLS certificate verification failed: {err.verify_message}"
                " (inspect it with --insecure, or trust its CA with --cafile FILE)") from None
        except ssl.SSLError as err:
            reason = err.reason.replace("_", " ").lower() if err.reason else str(err)
            hint = " (is the server speaking TLS on this port?)" if "version" in reason else ""
            raise ProbeFailure(f"TLS handshake failed: {reason}{hint}") from None
        except TimeoutError:
            raise ProbeFailure("TLS handshake timed out") from None
        except OSError as err:
            raise ProbeFailure(f"TLS handshake failed: {err.strerror or err}") from None


def make_client(server_name: str, cafile: str | None, insecure: bool) -> TLSClient:
    """Build the context up front, so a bad --cafile is reported before connecting."""
    if insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return TLSClient(context, server_name, "NOT verified (--insecure)")
    try:
        context = ssl.create_default_context(cafile=cafile)
    except (OSError, ssl.SSLError) as err:
        raise UsageError(f"cannot load --cafile {cafile}: {err.strerror or err}") from None
    trust = f"--cafile {cafile}" if cafile else "the system trust store"
    return TLSClient(context, server_name, f"verified for {server_name} against {trust}")


def describe(sock: ssl.SSLSocket, client: TLSClient) -> list[str]:
    """Protocol, cipher, verification status and the certificate chain, as lines."""
    cipher, _, bits = sock.cipher() or ("?", "?", 0)
    lines = [f"TLS {sock.version()}, cipher {cipher} ({bits} bits)",
             f"certificate {client.trust}"]
    chain = peer_chain(sock)
    lines.append(f"certificate chain as sent by the server ({len(chain)}):")
    for index, der in enumerate(chain):
        lines.extend(_describe_certificate(index, der))
    return lines


def peer_chain(sock: ssl.SSLSocket) -> list[bytes]:
    """DER certificates the server sent, leaf first.

    Python 3.13 has a public ``get_unverified_chain``; 3.10-3.12 have the
    same method on the private ``_sslobj``. Without either, only the leaf.
    """
    public = getattr(sock, "get_unverified_chain", None)
    if public is not None:
        return [bytes(der) for der in public() or ()]
    private = getattr(getattr(sock, "_sslobj", None), "get_unverified_chain", None)
    chain = private() if private is not None else None
    if chain:
        return [certificate.public_bytes(_ssl.ENCODING_DER) for certificate in chain]
    leaf = sock.getpeercert(binary_form=True)
    return [leaf] if leaf else []


def _describe_certificate(index: int, der: bytes) -> list[str]:
    try:
        cert = parse_certificate(der)
    except ValueError as err:
        return [f"  [{index}] cannot decode: {err}"]
    lines = [f"  [{index}] subject: {cert.subject}",
             f"      issuer:  {cert.issuer}",
             f"      valid:   {cert.not_before:%Y-%m-%d %H:%M} .. {cert.not_after:%Y-%m-%d %H:%M} UTC"
             f"{_validity_note(cert.not_before, cert.not_after)}"]
    if cert.alt_names:
        lines.append(f"      names:   {', '.join(cert.alt_names)}")
    lines.append(f"      sha256:  {cert.sha256}")
    return lines


def _validity_note(not_before: datetime, not_after: datetime) -> str:
    now = datetime.now(timezone.utc)
    if now < not_before:
        return " (NOT YET VALID)"
    if now > not_after:
        return " (EXPIRED)"
    days = (not_after - now).days
    return f" ({days} day{'' if days == 1 else 's'} left)"
