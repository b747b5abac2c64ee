"""The OpenSPF RFC 7208 suite through sealgate's own SPF stage, DNS from a zone file made at run time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.name
import pytest
import yaml

from conftest import CORPORA
from sealgate.auth import spf
from sealgate.dns import Answer, DNSTempError
from sealgate.dns.zonefile import ZoneFileResolver

SUITE = CORPORA / "spf" / "rfc7208-tests.yml"


def _quoted(value: str) -> str:
    """A zone-file character-string: printable ASCII as is, everything else as \\DDD."""
    out = []
    for byte in value.encode("utf-8"):
        ch = chr(byte)
        out.append("\\" + ch if ch in '"\\' else ch if 32 <= byte < 127 else f"\\{byte:03d}")
    return '"' + "".join(out) + '"'


def _strings(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v) for v in value] or [""]  # a record of no strings reads as one empty one
    text = str(value)
    return [text[i:i + 250] for i in range(0, len(text), 250)] or [""]


def owner_text(name: str) -> str:
    """An owner name in master-file syntax, odd characters (spaces, %) escaped by dnspython."""
    return dns.name.Name([label.encode() for label in name.split(".")] + [b""]).to_text()


def zone_text(zonedata: dict[str, list[Any]]) -> tuple[str, set[str], set[tuple[str, str]]]:
    """Master-file text, names that time out (for types with no record), and (name, type) pairs
    that time out."""
    lines: list[str] = []
    timeout_names: set[str] = set()
    timeout_types: set[tuple[str, str]] = set()
    for name, entries in zonedata.items():
        owner = name.lower().rstrip(".")
        if any(len(label) > 63 for label in owner.split(".")):
            continue  # DNS cannot carry it; the lookup itself fails
        has_txt = any(isinstance(e, dict) and "TXT" in e for e in entries)
        for entry in entries:
            if entry == "TIMEOUT":
                timeout_names.add(owner)
                continue
            for rtype, value in entry.items():
                if value == "TIMEOUT":
                    timeout_types.add((owner, rtype))
                    continue
                if value == "NONE":
                    continue  # the suite's way of saying: no record of this type
                types = [rtype] + (["TXT"] if rtype == "SPF" and not has_txt else [])
                for t in types:
                    if t in ("TXT", "SPF"):
                        rdata = " ".join(_quoted(s) for s in _strings(value))
                    elif t == "MX":
                        rdata = f"{value[0]} {str(value[1]).rstrip('.')}."
                    elif t in ("PTR", "CNAME"):
                        rdata = f"{str(value).rstrip('.')}."
                    else:
                        rdata = str(value)
                    lines.append(f"{owner_text(owner)} 300 IN {t} {rdata}")
    return "\n".join(lines) + "\n", timeout_names, timeout_types


class SuiteResolver(ZoneFileResolver):
    """The zone file plus the suite's simulated timeouts, which a master file cannot express."""

    def __init__(self, path: Path, timeout_names: set[str], timeout_types: set[tuple[str, str]]):
        super().__init__([str(path)])
        self.timeout_names = timeout_names
        self.timeout_types = timeout_types

    def lookup(self, name: str, rdtype: str) -> Answer:
        owner = name.lower().rstrip(".")
        if (owner, rdtype) in self.timeout_types:
            raise DNSTempError(f"DNS timeout looking up {name}")
        answer = super().lookup(name, rdtype)
        if owner in self.timeout_names and not answer.records:
            raise DNSTempError(f"DNS timeout looking up {name}")  # as in pyspf's own harness
        if answer.nxdomain and owner.startswith("error."):
            raise DNSTempError(f"DNS SERVFAIL for {name}")
        return answer


def cases() -> list[Any]:
    params = []
    for scenario in yaml.safe_load_all(SUITE.read_text()):
        for test_id, test in scenario["tests"].items():
            params.append(pytest.param(scenario["zonedata"], test,
                                       id=f"{scenario['description'][:40]}:{test_id}"))
    return params


@pytest.mark.parametrize("zonedata, test", cases())
def test_rfc7208(tmp_path: Path, zonedata: dict[str, Any], test: dict[str, Any]) -> None:
    text, timeout_names, timeout_types = zone_text(zonedata)
    zone = tmp_path / "spf.zone"
    zone.write_text(text)
    resolver = SuiteResolver(zone, timeout_names, timeout_types)
    sender = test["mailfrom"] or f"postmaster@{test['helo']}"
    result, _ = spf.check(resolver, test["host"], sender, test["helo"], lookup_time=20)
    expected = test["result"] if isinstance(test["result"], list) else [test["result"]]
    assert result in expected, test.get("description", "")


def test_suite_size() -> None:
    assert len(cases()) >= 200
