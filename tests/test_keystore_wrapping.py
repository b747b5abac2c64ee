"""The slot construction shared by the envelope writer, the keystore and the mail client."""

from __future__ import annotations

import os

import nacl.public
import pytest

from sealgate.keystore import wrapping


def keypair() -> tuple[bytes, bytes]:
    private = nacl.public.PrivateKey.generate()
    return bytes(private), bytes(private.public_key)


def test_wrap_then_unwrap_returns_the_content_key() -> None:
    private, public = keypair()
    content_key = os.urandom(32)
    ephemeral, wrapped = wrapping.wrap(public, content_key, b"envelope 1")
    assert len(ephemeral) == 32 and len(wrapped) == wrapping.WRAPPED_BYTES
    assert wrapping.unwrap(private, ephemeral, wrapped, b"envelope 1") == content_key
    assert wrapping.unwrap(private, ephemeral, wrapped, b"envelope 1", own_public=public) == content_key


def test_each_wrap_uses_a_fresh_ephemeral_key() -> None:
    _, public = keypair()
    assert wrapping.wrap(public, bytes(32), b"")[0] != wrapping.wrap(public, bytes(32), b"")[0]


@pytest.mark.parametrize("change", ["context", "wrapped", "ephemeral", "key"])
def test_any_change_makes_the_slot_unopenable(change: str) -> None:
    private, public = keypair()
    ephemeral, wrapped = wrapping.wrap(public, os.urandom(32), b"ctx")
    context = b"ctx"
    if change == "context":
        context = b"other"
    elif change == "wrapped":
        wrapped = bytes([wrapped[0] ^ 1]) + wrapped[1:]
    elif change == "ephemeral":
        ephemeral = keypair()[1]
    else:
        private = keypair()[0]
    with pytest.raises(wrapping.WrapError, match="does not open"):
        wrapping.unwrap(private, ephemeral, wrapped, context)


def test_low_order_and_malformed_keys_are_refused() -> None:
    private, public = keypair()
    with pytest.raises(wrapping.WrapError, match="low-order"):
        wrapping.wrap(bytes(32), os.urandom(32), b"")
    with pytest.raises(wrapping.WrapError, match="low-order"):
        wrapping.unwrap(private, bytes(32), bytes(wrapping.WRAPPED_BYTES), b"")
    with pytest.raises(wrapping.WrapError, match="content key must be 32 bytes"):
        wrapping.wrap(public, b"short", b"")
    with pytest.raises(wrapping.WrapError, match="wrapped key must be 48 bytes"):
        wrapping.unwrap(private, public, b"x", b"")
