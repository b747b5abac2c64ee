"""The keystore's notion of now: the system clock, or a fixed time for tests.

Lifecycle code takes a `Clock` argument. Commands and the service build it
with `clock_from_env()`: when SEALGATE_KEYSTORE_NOW holds a time
(2026-11-22T14:00:00Z or seconds since the epoch) that time is "now",
so tests drive rotation and destruction through real processes.
"""

from __future__ import annotations

import os
import time
from typing import Callable

from sealgate.keystore.encoding import parse_iso

Clock = Callable[[], int]
ENV_NOW = "SEALGATE_KEYSTORE_NOW"
DAY = 86400


def system_clock() -> int:
    return int(time.time())


def fixed_clock(now: int) -> Clock:
    return lambda: now


def clock_from_env() -> Clock:
    text = os.environ.get(ENV_NOW, "").strip()
    if not text:
        return system_clock
    if text.isdigit():
        return fixed_clock(int(text))
    try:
        return fixed_clock(parse_iso(text, ENV_NOW))
    except ValueError as exc:
        raise SystemExit(f"sealgate: {exc} (or seconds since the epoch)") from None
