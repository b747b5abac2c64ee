"""Domain names, mail addresses and group names as the keystore stores them (lower case, no root dot)."""

from __future__ import annotations

import re

from sealgate.keystore.errors import KeystoreError

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]{1,64}$")
_GROUP = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")


def domain(text: str) -> str:
    name = text.strip().rstrip(".").lower()
    labels = name.split(".")
    if len(name) > 253 or len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise KeystoreError("bad-request", f"{text!r} is not a domain name such as example.org")
    return name


def address(text: str) -> str:
    """local@domain, all lower case: one mailbox, one spelling for lookups."""
    local, at, rest = text.strip().rpartition("@")
    if not at or not _LOCAL.match(local):
        raise KeystoreError("bad-request", f"{text!r} is not a mail address such as alice@example.org")
    return f"{local.lower()}@{domain(rest)}"


def group(text: str) -> str:
    name = text.strip().lower()
    if not _GROUP.match(name):
        raise KeystoreError("bad-request", f"{text!r} is not a group name (letters, digits, . _ -; "
                                           f"at most 64 characters)")
    return name
