"""Zone-file lines for tests and the demo: TXT strings split and quoted the way a master file needs."""

from __future__ import annotations


def txt(name: str, value: str, ttl: int = 300) -> str:
    chunks = [value[i:i + 250] for i in range(0, len(value), 250)] or [""]
    quoted = " ".join('"' + c.replace("\\", "\\\\").replace('"', '\\"') + '"' for c in chunks)
    return f"{name.rstrip('.')}. {ttl} IN TXT {quoted}\n"
