"""The two ways a keystore operation fails, as its clients see them."""

from __future__ import annotations


class KeystoreError(Exception):
    """The keystore answered and refused: `code` classifies why, the message names the input.

    Codes: bad-request (malformed or unknown request), too-large, not-found
    (no such key, domain or address), unusable-key (revoked, destroyed, wrong
    purpose, not held here), decrypt-failed (the wrapped key did not open),
    refused (a registration or change that fails a check), internal.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class KeystoreUnavailable(Exception):
    """No answer: socket missing or refused, permission denied, timeout, connection dropped.

    The milter answers tempfail: the MTA retries later, nothing is lost.
    """
