"""Byte and time encodings shared by the socket protocol, the bundle and the database."""

from __future__ import annotations

import base64
import binascii
import calendar
import json
import time
from typing import Any


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: Any, what: str) -> bytes:
    """Decode standard base64; ValueError naming `what` when it is not."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected a base64 string, got {type(text).__name__}")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise ValueError(f"{what}: not valid base64") from None


def canonical_json(value: Any) -> bytes:
    """The one serialization that is signed and hashed: sorted keys, no spaces, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def iso(timestamp: int | float) -> str:
    """UTC time as 2026-11-22T14:00:00Z (whole seconds), the form used in documents."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(timestamp)))


def parse_iso(text: Any, what: str) -> int:
    """Seconds since the epoch from the `iso` form; ValueError naming `what` otherwise."""
    if not isinstance(text, str):
        raise ValueError(f"{what}: expected a time like 2026-11-22T14:00:00Z")
    try:
        return calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%SZ"))
    except ValueError:
        raise ValueError(f"{what}: {text!r} is not a time like 2026-11-22T14:00:00Z") from None
