"""DKIM (RFC 6376): every signature verified on its own by dkimpy, RSA and Ed25519 (RFC 8463).

RFC 8301 is enforced here: rsa-sha1 signatures and RSA keys under the
configured size never pass.
"""

from __future__ import annotations

import dkim

from sealgate.auth import rsa_verify
from sealgate.dns import DNSTempError, Resolver
from sealgate.pipeline import AuthResult, Services, Transaction

rsa_verify.install()


def verify_all(message: bytes, resolver: Resolver, min_key_bits: int) -> list[AuthResult]:
    """One result per DKIM-Signature header, in header order."""
    verifier = dkim.DKIM(message, minkey=min_key_bits)
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
    message = txn.message.as_bytes()
    results = verify_all(message, services.resolver, services.config.verify.dkim_min_key_bits)
    txn.results.extend(results or [AuthResult("dkim", "none", reason="message not signed")])
