"""Which headers stay visible outside an envelope (RFC 9788 header confidentiality)."""

from __future__ import annotations

from typing import Any


def outer_headers(headers: list[tuple[str, bytes]], envelope: Any,
                  keep_subject: bool = False) -> list[tuple[str, bytes]]:
    """Keep the configured headers as they are; Subject becomes the placeholder unless kept."""
    keep = {name.lower() for name in envelope.outer_headers}
    outer = [(n, v) for n, v in headers if n.lower() in keep and n.lower() != "subject"]
    subject = [(n, v) for n, v in headers if n.lower() == "subject"][:1]
    if keep_subject or "subject" in keep:
        return outer + subject
    return outer + [("Subject", b" " + envelope.subject_placeholder.encode())]
