"""Every configuration option: its section, type, default and meaning, in one place.

The loader, `sealgate config show` and docs/config.md are all derived from
this table, so an option documented anywhere exists here and nowhere else.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Any, Callable

Check = Callable[[Any], str | None]
"""Returns None when a value is acceptable, else what was expected."""


@dataclass(frozen=True)
class Option:
    section: str
    name: str
    type: type
    default: Any
    doc: str
    check: Check | None = None

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"


def one_of(*choices: str) -> Check:
    def check(value: Any) -> str | None:
        return None if value in choices else "one of " + ", ".join(repr(c) for c in choices)
    return check


def positive(value: Any) -> str | None:
    return None if value > 0 else "a number greater than 0"


def octal_mode(value: Any) -> str | None:
    try:
        mode = int(value, 8)
    except ValueError:
        return "an octal file mode such as \"0660\""
    return None if 0 <= mode <= 0o777 else "an octal file mode such as \"0660\""


def cidr_list(value: Any) -> str | None:
    for item in value:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            return f"IP networks in CIDR notation (bad entry {item!r})"
    return None


def milter_socket(value: Any) -> str | None:
    if value.startswith("unix:") or value.startswith("local:"):
        return None if len(value.split(":", 1)[1]) > 0 else "unix:/path/to/socket"
    if value.startswith("inet:") or value.startswith("inet6:"):
        port, _, host = value.split(":", 1)[1].partition("@")
        if port.isdigit() and 0 < int(port) < 65536 and host:
            return None
    return "unix:/path/to/socket or inet:PORT@HOST"


OPTIONS: tuple[Option, ...] = (
    # [milter] — the daemon and its socket
    Option("milter", "socket", str, "unix:/run/sealgate/milter.sock",
           "Where the milter listens: unix:/path (recommended) or inet:PORT@HOST.", milter_socket),
    Option("milter", "socket_mode", str, "0660",
           "Permissions of a unix socket; group-writable so Postfix's smtpd (in group sealgate) can connect.",
           octal_mode),
    Option("milter", "timeout", int, 300,
           "Seconds the MTA waits for an answer to one milter step before giving up.", positive),
    Option("milter", "spool_threshold", int, 1048576,
           "Message bodies larger than this many bytes are spooled to a temporary file.", positive),
    Option("milter", "spool_dir", str, "",
           "Directory for spooled bodies; empty means the system temporary directory."),
    Option("milter", "internal_hosts", list, ["127.0.0.0/8", "::1/128"],
           "Client networks whose mail is outgoing (submitted by us), not verified as incoming.",
           cidr_list),
    Option("milter", "drain_timeout", int, 30,
           "Seconds SIGTERM waits for open connections to finish before exiting.", positive),
    # [log]
    Option("log", "target", str, "stderr", "Where log lines go: stderr or syslog.",
           one_of("stderr", "syslog")),
    Option("log", "level", str, "info", "Least severe level logged.",
           one_of("debug", "info", "warning", "error")),
    Option("log", "syslog_facility", str, "mail", "Syslog facility when target is syslog.",
           one_of("mail", "daemon", "local0", "local1", "local2", "local3", "local4",
                  "local5", "local6", "local7")),
    # [dns]
    Option("dns", "backend", str, "system",
           "Where answers come from: system (resolvers, with a cache) or zone (BIND master files, offline).",
           one_of("system", "zone")),
    Option("dns", "zone_files", list, [], "BIND master files read by the zone backend."),
    Option("dns", "nameservers", list, [],
           "Resolver addresses for the system backend; empty means those in /etc/resolv.conf."),
    Option("dns", "port", int, 53, "Port of the resolvers in nameservers.", positive),
    Option("dns", "timeout", float, 5.0,
           "Seconds one lookup may take before it counts as a temporary error.", positive),
    Option("dns", "cache_size", int, 10000, "Answers kept in the TTL-honouring cache.", positive),
    # [verify] — authentication of incoming mail
    Option("verify", "authserv_id", str, "",
           "Our authserv-id in Authentication-Results; empty means this host's name."),
    Option("verify", "spf", bool, True, "Check SPF for the HELO name and MAIL FROM."),
    Option("verify", "dkim", bool, True, "Verify every DKIM signature."),
    Option("verify", "dmarc", bool, True, "Evaluate DMARC for the From domain."),
    Option("verify", "arc", bool, False,
           "Verify ARC chains (result recorded only; ARC is on its way to historic status)."),
    Option("verify", "dkim_min_key_bits", int, 1024,
           "RSA keys shorter than this never pass (RFC 8301).", positive),
    Option("verify", "spf_lookup_time", float, 20.0,
           "Seconds all DNS lookups of one SPF evaluation may take together (RFC 7208 4.6.4).",
           positive),
    Option("verify", "dmarc_discovery", str, "tree-walk",
           "How the DMARC policy and organizational domain are found: tree-walk (RFC 9989) "
           "or psl (RFC 7489, public suffix list).", one_of("tree-walk", "psl")),
    Option("verify", "psl_file", str, "",
           "Public suffix list for dmarc_discovery = psl; empty means the copy shipped with publicsuffix2."),
    Option("verify", "dmarc_reject_action", str, "reject",
           "What a DMARC failure under policy reject does: reject (550 5.7.1), quarantine or record.",
           one_of("reject", "quarantine", "record")),
    Option("verify", "dmarc_quarantine_action", str, "quarantine",
           "What a DMARC failure under policy quarantine does: quarantine or record.",
           one_of("quarantine", "record")),
    Option("verify", "temperror_action", str, "tempfail-if-reject",
           "What a DNS temperror does: tempfail-if-reject (only where a DMARC reject could apply), "
           "tempfail (always) or accept.", one_of("tempfail-if-reject", "tempfail", "accept")),
)

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(o.section for o in OPTIONS))
BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}
