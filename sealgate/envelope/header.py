"""The envelope's signed control block: what it is, who sent it, which keys can open it."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field

VERSION = 1
SUITE = "sg1"  # X25519+BLAKE2b slot wrap, XChaCha20-Poly1305 secretstream, Ed25519, SHA-256
SIGNING_PREFIX = b"sealgate-envelope-v1\n"
MAX_SLOTS = 256
MAX_CONTROL_BYTES = 64 * 1024


class EnvelopeError(ValueError):
    """An envelope that cannot be used; the message says what is wrong with it."""


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: object, what: str) -> bytes:
    if not isinstance(text, str):
        raise EnvelopeError(f"{what}: expected base64 text")
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise EnvelopeError(f"{what}: not valid base64") from None


@dataclass(frozen=True)
class Slot:
    """The content key wrapped to one recipient key (a domain's transport key, or a mailbox key)."""

    key_id: str
    ephemeral_public: bytes
    wrapped: bytes

    def context(self, stream_header: bytes) -> bytes:
        """Binds a slot to its key id and to this envelope's stream (docs/envelope.md)."""
        return b"sealgate-slot-v1|" + self.key_id.encode() + b"|" + stream_header


@dataclass(frozen=True)
class EnvelopeHeader:
    kind: str  # "transport" (gateway to gateway) or "mailbox" (sealed at rest)
    sender_domain: str
    signer_key_id: str
    created: int
    chunk_size: int
    stream_header: bytes
    ciphertext_sha256: str
    ciphertext_size: int
    slots: tuple[Slot, ...] = field(default=())
    version: int = VERSION
    suite: str = SUITE

    def to_json(self) -> dict[str, object]:
        return {"kind": self.kind, "sender_domain": self.sender_domain,
                "signer_key_id": self.signer_key_id, "created": self.created,
                "chunk_size": self.chunk_size, "stream_header": b64(self.stream_header),
                "ciphertext_sha256": self.ciphertext_sha256, "ciphertext_size": self.ciphertext_size,
                "slots": [{"key_id": s.key_id, "ephemeral_public": b64(s.ephemeral_public),
                           "wrapped": b64(s.wrapped)} for s in self.slots],
                "version": self.version, "suite": self.suite}

    def signing_payload(self) -> bytes:
        """Canonical JSON (sorted keys, no spaces) after a fixed prefix: what the identity key signs."""
        return SIGNING_PREFIX + json.dumps(self.to_json(), sort_keys=True,
                                           separators=(",", ":")).encode()

    @classmethod
    def from_json(cls, data: object) -> "EnvelopeHeader":
        if not isinstance(data, dict):
            raise EnvelopeError("control block: expected a JSON object")
        if data.get("version") != VERSION or data.get("suite") != SUITE:
            raise EnvelopeError(f"unsupported envelope version {data.get('version')!r} "
                                f"suite {data.get('suite')!r} (this gateway reads v{VERSION} {SUITE})")
        slots = data.get("slots")
        if not isinstance(slots, list) or not 0 < len(slots) <= MAX_SLOTS:
            raise EnvelopeError(f"slots: expected 1 to {MAX_SLOTS} entries")
        try:
            header = cls(
                kind=str(data["kind"]), sender_domain=str(data["sender_domain"]).lower(),
                signer_key_id=str(data["signer_key_id"]), created=int(data["created"]),
                chunk_size=int(data["chunk_size"]),
                stream_header=unb64(data["stream_header"], "stream_header"),
                ciphertext_sha256=str(data["ciphertext_sha256"]),
                ciphertext_size=int(data["ciphertext_size"]),
                slots=tuple(Slot(str(s["key_id"]), unb64(s["ephemeral_public"], "slot key"),
                                 unb64(s["wrapped"], "slot wrapped key")) for s in slots))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, EnvelopeError):
                raise
            raise EnvelopeError(f"control block: missing or malformed field {exc}") from None
        if header.kind not in ("transport", "mailbox"):
            raise EnvelopeError(f"kind: expected transport or mailbox, got {header.kind!r}")
        if not 0 < header.chunk_size <= 1 << 20:
            raise EnvelopeError(f"chunk_size {header.chunk_size} out of range")
        return header


def control_block(header: EnvelopeHeader, signature: bytes) -> bytes:
    """A line a field, so no line comes near SMTP's limit whatever the slots (the C encoder
    does this; json's indent would take its pure-Python one)."""
    return json.dumps({"header": header.to_json(), "signature": b64(signature)},
                      sort_keys=True, separators=(",\n", ":")).encode()


def parse_control_block(raw: bytes) -> tuple[EnvelopeHeader, bytes]:
    if len(raw) > MAX_CONTROL_BYTES:
        raise EnvelopeError(f"control block larger than {MAX_CONTROL_BYTES} bytes")
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise EnvelopeError(f"control block is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvelopeError("control block: expected a JSON object")
    return EnvelopeHeader.from_json(data.get("header")), unb64(data.get("signature"), "signature")
