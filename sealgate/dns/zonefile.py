"""Answers from BIND master files, read with dnspython: offline use and every test."""

from __future__ import annotations

from pathlib import Path

import dns.exception
import dns.name
import dns.node
import dns.rdataclass
import dns.rdatatype
import dns.zone

from sealgate.dns.resolver import Answer, DNSTempError

MAX_CNAME_CHAIN = 8
# The files are read once and their answers never change while the process runs: a negative
# answer may be cached as long as a typical SOA would allow.
NEGATIVE_TTL = 300


class ZoneFileResolver:
    """Names from several files share one tree; owners must be absolute or under the file's $ORIGIN."""

    def __init__(self, paths: list[str]) -> None:
        self._nodes: dict[dns.name.Name, dns.node.Node] = {}
        self._existing: set[dns.name.Name] = set()  # owners and their ancestors (empty non-terminals)
        for path in paths:
            self.add_file(Path(path))

    def add_file(self, path: Path) -> None:
        try:
            try:
                zone = dns.zone.from_file(str(path), origin=dns.name.root, relativize=False,
                                          check_origin=False)
            except ValueError:
                # A real zone with its SOA: read it at the origin its $ORIGIN names.
                zone = dns.zone.from_file(str(path), origin=None, relativize=False,
                                          check_origin=False)
        except (OSError, dns.exception.DNSException) as exc:
            raise ValueError(f"zone file {path}: {exc}") from None
        for name, node in zone.nodes.items():
            self._nodes.setdefault(name, dns.node.Node()).rdatasets.extend(node.rdatasets)
            while name != dns.name.root:
                self._existing.add(name)
                name = name.parent()

    def lookup(self, name: str, rdtype: str) -> Answer:
        try:
            qname = dns.name.from_text(name)
            qtype = dns.rdatatype.from_text(rdtype)
        except (dns.exception.DNSException, ValueError) as exc:
            # No resolver could be asked for such a name either; pyspf's DNS layer says temperror too.
            raise DNSTempError(f"invalid DNS name {name!r}: {exc}") from None
        for _ in range(MAX_CNAME_CHAIN):
            node = self._nodes.get(qname)
            if node is None:
                return Answer(nxdomain=qname not in self._existing, ttl=NEGATIVE_TTL)
            rdataset = node.get_rdataset(dns.rdataclass.IN, qtype)
            if rdataset is not None:
                return Answer(records=tuple(rdataset), ttl=rdataset.ttl)
            cname = node.get_rdataset(dns.rdataclass.IN, dns.rdatatype.CNAME)
            if cname is None or qtype == dns.rdatatype.CNAME:
                return Answer(ttl=NEGATIVE_TTL)
            qname = cname[0].target
        return Answer()  # a CNAME loop or an overlong chain leads nowhere: no data
