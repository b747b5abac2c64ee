"""The master key that encrypts every private key at rest, and its file.

The database alone is useless to a thief: each private key is sealed with
XChaCha20-Poly1305 under a 32-byte master key kept in a separate 0600 file
(or a systemd credential), bound to the key's id, purpose and domain so a
sealed blob cannot be moved to another row.
"""

from __future__ import annotations

import base64
import binascii
import os
import stat
from pathlib import Path
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions

KEY_BYTES = 32
_NONCE_BYTES = 24


class MasterKeyError(Exception):
    """The master key cannot be used; the message names the file and what to do."""


def master_key_path(keystore_config: Any) -> Path:
    """$CREDENTIALS_DIRECTORY/<master_key_credential> under systemd, else master_key_file."""
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials:
        candidate = Path(credentials) / str(keystore_config.master_key_credential)
        if candidate.exists():
            return candidate
    return Path(str(keystore_config.master_key_file))


def load_master_key(path: Path) -> bytes:
    """Read the key, refusing a file that anyone but its owner may read or write."""
    try:
        info = path.stat()
    except FileNotFoundError:
        raise MasterKeyError(f"master key file {path} does not exist; "
                             f"`sealgate keys init DOMAIN` creates it") from None
    except OSError as exc:
        raise MasterKeyError(f"master key file {path}: {exc.strerror}") from None
    if not stat.S_ISREG(info.st_mode):
        raise MasterKeyError(f"master key file {path} is not a regular file")
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise MasterKeyError(f"master key file {path} is accessible by group or others "
                             f"(mode {mode:04o}); refusing to use it: run `chmod 600 {path}` "
                             f"and consider replacing the key if others could have read it")
    try:
        key = base64.b64decode(path.read_bytes().strip(), validate=True)
    except (OSError, binascii.Error) as exc:
        raise MasterKeyError(f"master key file {path}: cannot read a base64 key: {exc}") from None
    if len(key) != KEY_BYTES:
        raise MasterKeyError(f"master key file {path}: expected {KEY_BYTES} bytes in base64, "
                             f"got {len(key)}")
    return key


def create_master_key(path: Path) -> None:
    """Write a new random key, mode 0600; never overwrite an existing file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(base64.b64encode(sodium.randombytes(KEY_BYTES)) + b"\n")


class Sealer:
    """Encrypts and decrypts private keys under the master key."""

    def __init__(self, master_key: bytes) -> None:
        self._key = master_key

    def seal(self, plaintext: bytes, binding: bytes) -> bytes:
        nonce = sodium.randombytes(_NONCE_BYTES)
        return nonce + sodium.crypto_aead_xchacha20poly1305_ietf_encrypt(
            plaintext, binding, nonce, self._key)

    def open(self, sealed: bytes, binding: bytes) -> bytes:
        try:
            return sodium.crypto_aead_xchacha20poly1305_ietf_decrypt(
                sealed[_NONCE_BYTES:], binding, sealed[:_NONCE_BYTES], self._key)
        except nacl.exceptions.CryptoError:
            raise MasterKeyError("a private key in the database does not open with this master "
                                 "key (wrong master key file, or the row was altered)") from None
