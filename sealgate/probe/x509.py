"""Just enough DER decoding to show an X.509 certificate to a mail admin.

Stdlib only: Python 3.11 hands out peer certificates as DER bytes but has
no public decoder, and ``cryptography`` is not a dependency of sealgate.
"""

import hashlib
import ipaddress
from dataclasses import dataclass
from datetime import datetime, timezone

_NAME_KEYS = {
    "2.5.4.3": "CN", "2.5.4.5": "serialNumber", "2.5.4.6": "C", "2.5.4.7": "L",
    "2.5.4.8": "ST", "2.5.4.10": "O", "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress", "0.9.2342.19200300.100.1.25": "DC",
}
_SUBJECT_ALT_NAME = "2.5.29.17"
_STRING_CODECS = {0x1E: "utf-16-be", 0x1C: "utf-32-be", 0x14: "latin-1"}
_SEQUENCE, _OID, _UTC_TIME, _EXTENSIONS = 0x30, 0x06, 0x17, 0xA3


@dataclass(frozen=True)
class Certificate:
    """The fields an admin checks first when TLS between gateways fails."""

    subject: str
    issuer: str
    not_before: datetime
    not_after: datetime
    alt_names: tuple[str, ...]
    sha256: str


@dataclass(frozen=True)
class _Node:
    tag: int
    data: bytes


def parse_certificate(der: bytes) -> Certificate:
    """Decode a DER certificate; raises ValueError if it is not one."""
    try:
        return _decode(der)
    except (IndexError, UnicodeDecodeError):
        raise ValueError("malformed certificate") from None


def _decode(der: bytes) -> Certificate:
    certificate = _children(_single(der, _SEQUENCE))
    fields = _children(_expect(certificate[0], _SEQUENCE))
    if fields[0].tag == 0xA0:  # explicit version; v1 certificates omit it
        fields = fields[1:]
    issuer, validity, subject = fields[2], _children(fields[3]), fields[4]
    extensions = next((node for node in fields[5:] if node.tag == _EXTENSIONS), None)
    return Certificate(
        subject=_name(subject), issuer=_name(issuer),
        not_before=_time(validity[0]), not_after=_time(validity[1]),
        alt_names=_alt_names(extensions) if extensions else (),
        sha256=":".join(f"{byte:02X}" for byte in hashlib.sha256(der).digest()),
    )


def _read(data: bytes, pos: int) -> tuple[_Node, int]:
    """One tag-length-value at pos; returns it and where the next one starts."""
    if pos + 2 > len(data):
        raise ValueError("truncated DER")
    tag, length = data[pos], data[pos + 1]
    pos += 2
    if length & 0x80:
        size = length & 0x7F
        length = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return _Node(tag, data[pos:pos + length]), pos + length


def _children(node: _Node) -> list[_Node]:
    nodes, pos = [], 0
    while pos < len(node.data):
        child, pos = _read(node.data, pos)
        nodes.append(child)
    return nodes


def _single(data: bytes, tag: int) -> _Node:
    node, end = _read(data, 0)
    if end != len(data):
        raise ValueError("trailing bytes after certificate")
    return _expect(node, tag)


def _expect(node: _Node, tag: int) -> _Node:
    if node.tag != tag:
        raise ValueError(f"unexpected DER tag 0x{node.tag:02x}, wanted 0x{tag:02x}")
    return node


def _oid(node: _Node) -> str:
    raw = _expect(node, _OID).data
    first = min(raw[0] // 40, 2)
    arcs, value = [first, raw[0] - 40 * first], 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return ".".join(map(str, arcs))


def _string(node: _Node) -> str:
    return node.data.decode(_STRING_CODECS.get(node.tag, "utf-8"), "replace")


def _name(node: _Node) -> str:
    """A distinguished name in the usual ``C=.., O=.., CN=..`` order."""
    parts = []
    for relative in _children(node):
        for attribute in _children(relative):
            key, value = _children(attribute)[:2]
            parts.append(f"{_NAME_KEYS.get(_oid(key), _oid(key))}={_string(value)}")
    return ", ".join(parts) or "(empty)"


def _time(node: _Node) -> datetime:
    text = node.data.decode("ascii").rstrip("Z")
    if node.tag == _UTC_TIME:
        text = ("19" if int(text[:2]) >= 50 else "20") + text
    return datetime.strptime(text[:14], "%Y%m%d%H%M%S").replace(tzinfo=timezone.utc)


def _alt_names(extensions: _Node) -> tuple[str, ...]:
    """DNS names and IP addresses from subjectAltName: what hostnames are checked against."""
    for extension in _children(_children(extensions)[0]):
        parts = _children(extension)
        if _oid(parts[0]) == _SUBJECT_ALT_NAME:
            names = _single(parts[-1].data, _SEQUENCE)
            return tuple(filter(None, map(_general_name, _children(names))))
    return ()


def _general_name(node: _Node) -> str:
    if node.tag == 0x82:
        return "DNS:" + node.data.decode("ascii", "replace")
    if node.tag == 0x87:
        return "IP:" + str(ipaddress.ip_address(node.data))
    if node.tag == 0x81:
        return "email:" + node.data.decode("ascii", "replace")
    return ""
