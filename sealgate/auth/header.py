"""The Authentication-Results header (RFC 8601): built with authres, and forged copies removed."""

from __future__ import annotations

import re

import authres

from sealgate.message import HeaderEdit
from sealgate.pipeline import AuthResult, Services, Transaction

HEADER = "Authentication-Results"
_COMMENT = re.compile(r"\([^()]*\)")


def header_value(authserv_id: str, results: list[AuthResult]) -> str:
    entries = [authres.AuthenticationResult(
        method=r.method, result=r.result, result_comment=r.comment or None,
        reason=r.reason or None,
        properties=[authres.core.AuthenticationResultProperty(t, n, v) for t, n, v in r.properties])
        for r in results]
    if not entries:
        entries = [authres.NoneAuthenticationResult()]
    text = str(authres.AuthenticationResultsHeader(authserv_id=authserv_id, results=entries))
    return text.partition(": ")[2]


def authserv_id_of(value: bytes) -> str:
    """The authserv-id an existing header claims (comments removed), lower-cased."""
    text = value.decode("utf-8", "replace")
    while _COMMENT.search(text):
        text = _COMMENT.sub(" ", text)
    head = text.split(";", 1)[0].split()
    return head[0].lower() if head else ""


def forged_edits(txn: Transaction, authserv_id: str) -> list[HeaderEdit]:
    """Deletes for every incoming header that claims our authserv-id, highest index first so that
    each delete leaves the indexes of the others unchanged."""
    ours = authserv_id.lower()
    indexes = [i for i, value in enumerate(txn.message.header_values(HEADER), start=1)
               if authserv_id_of(value) == ours]
    return [HeaderEdit("delete", HEADER, index=i) for i in reversed(indexes)]


def stage(txn: Transaction, services: Services) -> None:
    authserv_id = services.config.verify.authserv_id
    msg = txn.message
    if msg.mta_headers is None:  # a replaced message has its headers all written anew
        msg.edits.extend(forged_edits(txn, authserv_id))
    msg.headers = [(n, v) for n, v in msg.headers
                   if n.lower() != HEADER.lower() or authserv_id_of(v) != authserv_id.lower()]
    msg.edits.append(HeaderEdit("insert", HEADER, header_value(authserv_id, txn.results)))
