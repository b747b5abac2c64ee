"""A mailbox private key on the client: its file (0600 JSON) and the recovery phrase it can come from."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
import stat
import uuid
from dataclasses import dataclass
from pathlib import Path

import nacl.pwhash
import nacl.signing

FORMAT = "sealgate-mailbox-key-1"
PURPOSES = ("mailbox", "recovery")
_RECOVERY_NAMESPACE = uuid.UUID("5e41a7e0-6b1f-4d57-9a60-2f3c1b8e0d11")


class KeyFileError(Exception):
    """A key file that cannot be written or used; the message names the file."""


@dataclass(frozen=True)
class MailboxKey:
    address: str
    key_id: str
    purpose: str
    seed: bytes  # Ed25519 seed: the only secret

    @property
    def signing_key(self) -> nacl.signing.SigningKey:
        return nacl.signing.SigningKey(self.seed)

    @property
    def signing_public(self) -> bytes:
        return bytes(self.signing_key.verify_key)

    @property
    def public(self) -> bytes:
        """X25519 public key that mail is sealed to."""
        return bytes(self.signing_key.verify_key.to_curve25519_public_key())

    @property
    def private(self) -> bytes:
        """X25519 private key that opens it (sealgate.keystore.wrapping.unwrap)."""
        return bytes(self.signing_key.to_curve25519_private_key())


def generate(address: str) -> MailboxKey:
    return MailboxKey(address, str(uuid.uuid4()), "mailbox", secrets.token_bytes(32))


def recovery_phrase() -> str:
    """160 random bits as eight groups of base32: written down once, kept offline."""
    text = base64.b32encode(secrets.token_bytes(20)).decode()
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def from_recovery_phrase(address: str, phrase: str) -> MailboxKey:
    """The same phrase and address always give the same key (and key id)."""
    normalized = "".join(phrase.upper().split()).replace("-", "")
    try:
        if len(base64.b32decode(normalized)) != 20:
            raise ValueError
    except ValueError:
        raise KeyFileError("recovery phrase: expected eight groups of four letters and digits "
                           "as printed by `sealgate mailbox-key generate --recovery`") from None
    salt = hashlib.blake2b(address.lower().encode(), digest_size=nacl.pwhash.argon2id.SALTBYTES,
                           person=b"sealgate-recover").digest()
    seed = nacl.pwhash.argon2id.kdf(32, normalized.encode(), salt,
                                    opslimit=nacl.pwhash.argon2id.OPSLIMIT_INTERACTIVE,
                                    memlimit=nacl.pwhash.argon2id.MEMLIMIT_INTERACTIVE)
    public = bytes(nacl.signing.SigningKey(seed).verify_key)
    return MailboxKey(address, str(uuid.uuid5(_RECOVERY_NAMESPACE, public.hex())), "recovery", seed)


def write(path: Path, key: MailboxKey) -> None:
    """Create the file with mode 0600; an existing file is never overwritten."""
    body = json.dumps({"format": FORMAT, "address": key.address, "key_id": key.key_id,
                       "purpose": key.purpose,
                       "seed": base64.b64encode(key.seed).decode()}, indent=2) + "\n"
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise KeyFileError(f"{path} already exists; choose another file or move the old key "
                           f"away (it still opens the mail sealed to it)") from None
    with os.fdopen(fd, "w") as out:
        out.write(body)


def read(path: Path) -> MailboxKey:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: cannot read a mailbox key: {exc}") from None
    if mode & 0o077:
        raise KeyFileError(f"{path} is accessible by group or others (mode {mode:04o}); "
                           f"run `chmod 600 {path}`")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise KeyFileError(f"{path}: not a sealgate mailbox key (format {FORMAT!r})")
    try:
        seed = base64.b64decode(data["seed"], validate=True)
        key = MailboxKey(str(data["address"]), str(data["key_id"]), str(data["purpose"]), seed)
    except (KeyError, ValueError) as exc:
        raise KeyFileError(f"{path}: damaged mailbox key file ({exc})") from None
    if len(seed) != 32 or key.purpose not in PURPOSES:
        raise KeyFileError(f"{path}: damaged mailbox key file (bad seed or purpose)")
    return key
