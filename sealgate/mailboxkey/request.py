"""The registration request a client sends its administrator: the public keys, signed by the key itself.

The keystore (`sealgate keys register-mailbox`) accepts a key only when the
signature verifies with the Ed25519 key in the request and the X25519 key
is the one derived from it, so nobody registers a key they do not hold.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import nacl.bindings as sodium
import nacl.exceptions
import nacl.signing

from sealgate.keystore.encoding import b64, canonical_json, unb64
from sealgate.mailboxkey.keyfile import PURPOSES, MailboxKey

FORMAT = "sealgate-mailbox-registration-1"
FIELDS = ("format", "address", "key_id", "purpose", "public", "signing_public", "created")


class RegistrationRefused(ValueError):
    """A request that does not prove possession of its key, or is malformed; says which."""


@dataclass(frozen=True)
class Registration:
    address: str
    key_id: str
    purpose: str
    public: bytes          # X25519, what mail is sealed to
    signing_public: bytes  # Ed25519, what signed the request
    text: str              # the request as received, kept in history


def signed_message(fields: dict[str, Any]) -> bytes:
    """What the signature covers: the format line, then the fields as canonical JSON."""
    return f"{FORMAT}\n".encode() + canonical_json(fields)


def make(key: MailboxKey, created: str) -> dict[str, Any]:
    fields = {"format": FORMAT, "address": key.address, "key_id": key.key_id,
              "purpose": key.purpose, "public": b64(key.public),
              "signing_public": b64(key.signing_public), "created": created}
    return {**fields, "signature": b64(key.signing_key.sign(signed_message(fields)).signature)}


def verify(text: str) -> Registration:
    """Parse and check a request; RegistrationRefused says what is wrong."""
    try:
        request = json.loads(text)
    except ValueError as exc:
        raise RegistrationRefused(f"not JSON: {exc}") from None
    if not isinstance(request, dict) or request.get("format") != FORMAT:
        raise RegistrationRefused(f"not a mailbox key registration (format {FORMAT!r})")
    missing = [f for f in (*FIELDS, "signature") if not isinstance(request.get(f), str)]
    if missing:
        raise RegistrationRefused(f"missing or non-text fields: {', '.join(missing)}")
    if request["purpose"] not in PURPOSES:
        raise RegistrationRefused(f"purpose {request['purpose']!r}: expected mailbox or recovery")
    try:
        uuid.UUID(request["key_id"])
        public = unb64(request["public"], "public")
        signing_public = unb64(request["signing_public"], "signing_public")
        signature = unb64(request["signature"], "signature")
        derived = sodium.crypto_sign_ed25519_pk_to_curve25519(signing_public)
        nacl.signing.VerifyKey(signing_public).verify(
            signed_message({f: request[f] for f in FIELDS}), signature)
    except nacl.exceptions.BadSignatureError:
        raise RegistrationRefused(f"signature does not verify with the key being registered for "
                                  f"{request['address']}: the request was altered or not made by "
                                  f"that key's holder") from None
    except (ValueError, nacl.exceptions.CryptoError, nacl.exceptions.TypeError) as exc:
        raise RegistrationRefused(f"malformed key material: {exc}") from None
    if derived != public:
        raise RegistrationRefused("public is not the X25519 key derived from signing_public")
    return Registration(request["address"], request["key_id"], request["purpose"], public,
                        signing_public, text.strip())
