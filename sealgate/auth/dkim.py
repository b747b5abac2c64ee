"""DKIM (RFC 6376): every signature verified on its own by dkimpy, RSA and Ed25519 (RFC 8463).

RFC 8301 is enforced here: rsa-sha1 signatures and RSA keys under the
configured size never pass.
"""

from __future__ import annotations

import base64
import re
from typing import IO

import dkim

from sealgate.auth import dkimpy_speedups
from sealgate.auth.dkim_body import body_hash
from sealgate.dns import DNSTempError, Resolver
from sealgate.pipeline import AuthResult, Services, Transaction

dkimpy_speedups.install()


BODY_CANONICALIZATIONS = {b"simple": False, b"relaxed": True}
BODY_HASHES = {b"rsa-sha256": "sha256", b"ed25519-sha256": "sha256", b"rsa-sha1": "sha1"}


class StreamingVerifier(dkim.DKIM):
    """dkimpy checks the tags, fetches the key and verifies the header signature; the body hash
    is checked here against the spooled body, so the body is never copied into memory."""

    def __init__(self, headers: list[tuple[bytes, bytes]], body: IO[bytes], minkey: int) -> None:
        super().__init__(minkey=minkey)
        # Already split by the MTA: no second parse of the header block.
        self.headers = dkimpy_speedups.SignedHeaders(headers)
        self.spooled_body = body
        self.hashes: dict[tuple[bool, str, int | None], bytes] = {}  # signatures share them

    def verify_headerprep(self, idx: int = 0):  # type: ignore[no-untyped-def]
        prep = super().verify_headerprep(idx)
        if prep:
            self._check_body_hash(prep[0])
        return prep

    def _check_body_hash(self, sig: dict[bytes, bytes]) -> None:
        """Check bh= and remove it from the tags dkimpy goes on with; anything unusual stays for
        dkimpy to refuse in its own words."""
        canonicalization = sig.get(b"c", b"simple/simple").split(b"/")
        body_c = canonicalization[1] if len(canonicalization) > 1 else b"simple"
        if b"bh" not in sig or body_c not in BODY_CANONICALIZATIONS or \
                sig.get(b"a") not in BODY_HASHES or not sig.get(b"l", b"0").isdigit():
            return
        how = (BODY_CANONICALIZATIONS[body_c], BODY_HASHES[sig[b"a"]],
               int(sig[b"l"]) if b"l" in sig else None)
        if how not in self.hashes:
            self.hashes[how] = body_hash(self.spooled_body, *how)
        digest = self.hashes[how]
        expected = base64.b64decode(re.sub(rb"\s+", b"", sig.pop(b"bh")))
        if digest != expected:
            raise dkim.ValidationError("body hash mismatch")


def verify_all(headers: list[tuple[bytes, bytes]], body: IO[bytes], resolver: Resolver,
               min_key_bits: int) -> list[AuthResult]:
    """One result per DKIM-Signature header, in header order; `headers` as Message.wire_headers."""
    verifier = StreamingVerifier(headers, body, min_key_bits)
    count = sum(1 for name, _ in verifier.headers if name.lower() == b"dkim-signature")
    keys_found: dict[str, bool] = {}

    def txt_lookup(name: bytes, timeout: float = 5) -> bytes | None:
        """dkimpy's dnsfunc; a temporary failure propagates as DNSTempError (dkimpy would say fail)."""
        qname = name.decode("ascii", "replace")
        texts = resolver.lookup(qname, "TXT").texts()
        keys_found[qname] = bool(texts)
        return texts[0] if texts else None

    results = []
    for idx in range(count):
        keys_found.clear()
        try:
            ok = verifier.verify(idx=idx, dnsfunc=txt_lookup)
            result, reason = ("pass", "") if ok else ("fail", "signature did not verify")
        except DNSTempError as exc:
            result, reason = "temperror", str(exc)
        except dkim.KeyFormatError as exc:
            result, reason = ("policy", f"RSA key under {min_key_bits} bits (RFC 8301)") \
                if "too small" in str(exc) else ("permerror", f"bad key: {exc}")
        except dkim.DKIMException as exc:
            result, reason = "permerror", f"bad signature: {exc}"
        fields = verifier.signature_fields or {}
        if result == "fail" and keys_found and not any(keys_found.values()):
            result, reason = "permerror", "no key published for the selector"
        if result == "pass" and fields.get(b"a") == b"rsa-sha1":
            result, reason = "policy", "rsa-sha1 is not accepted (RFC 8301)"
        properties = [("header", "d", fields.get(b"d", b"").decode("ascii", "replace").lower()),
                      ("header", "s", fields.get(b"s", b"").decode("ascii", "replace")),
                      ("header", "a", fields.get(b"a", b"").decode("ascii", "replace")),
                      ("header", "b", b"".join(fields.get(b"b", b"").split())[:8]
                       .decode("ascii", "replace"))]
        results.append(AuthResult("dkim", result, [p for p in properties if p[2]], reason=reason))
        verifier.signature_fields = {}
    return results


def stage(txn: Transaction, services: Services) -> None:
    msg = txn.message
    results = verify_all(msg.wire_headers(), msg.body, services.resolver,
                         services.config.verify.dkim_min_key_bits)
    txn.results.extend(results or [AuthResult("dkim", "none", reason="message not signed")])
