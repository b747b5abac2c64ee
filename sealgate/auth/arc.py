"""ARC (RFC 8617) chain validation, verify-only: the result is recorded, never acted on."""

from __future__ import annotations

import dkim

from sealgate.dns import DNSTempError
from sealgate.pipeline import AuthResult, Services, Transaction


def stage(txn: Transaction, services: Services) -> None:
    def txt_lookup(name: bytes, timeout: float = 5) -> bytes | None:
        texts = services.resolver.lookup(name.decode("ascii", "replace"), "TXT").texts()
        return texts[0] if texts else None

    try:
        cv, _results, comment = dkim.arc_verify(txn.message.as_bytes(), dnsfunc=txt_lookup)
    except DNSTempError as exc:
        txn.results.append(AuthResult("arc", "temperror", reason=str(exc)))
        return
    except dkim.DKIMException as exc:
        txn.results.append(AuthResult("arc", "fail", reason=f"malformed ARC set: {exc}"))
        return
    result = cv.decode("ascii") if isinstance(cv, bytes) else str(cv)
    reason = comment if result == "fail" and isinstance(comment, str) else ""
    txn.results.append(AuthResult("arc", result, reason=reason))
