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


def domain_list(value: Any) -> str | None:
    for item in value:
        labels = item.rstrip(".").split(".")
        if not all(label and len(label) < 64 and label.replace("-", "").replace("_", "").isalnum()
                   and label.isascii() for label in labels):
            return f"domain names such as \"example.org\" (bad entry {item!r})"
    return None


def refusal_code(value: Any) -> str | None:
    if value == "530" or (len(value) == 3 and value.isdigit() and value[0] == "4"):
        return None
    return "\"530\" or a 4xx code such as \"450\""


def listen_address(value: Any) -> str | None:
    """host:port for a TCP listener, or empty for none."""
    host, sep, port = value.rpartition(":")
    if not value or (sep and host.strip("[]") and port.isdigit() and 0 < int(port) < 65536):
        return None
    return "host:port such as \"127.0.0.1:8470\", or \"\" for none"


def public_url(value: Any) -> str | None:
    return None if value == "" or value.startswith(("https://", "http://")) else "an https:// URL, or \"\""


def non_negative(value: Any) -> str | None:
    return None if value >= 0 else "a number 0 or greater"


def scanner_address(value: Any) -> str | None:
    """host:port or unix:/path for a spam scanner."""
    if value.startswith("unix:"):
        return None if value[5:].startswith("/") else "unix:/absolute/path"
    host, sep, port = value.rpartition(":")
    if sep and host.strip("[]") and port.isdigit() and 0 < int(port) < 65536:
        return None
    return "host:port such as \"127.0.0.1:783\", or unix:/path"


def http_url(value: Any) -> str | None:
    return None if value.startswith("http://") and len(value) > 7 else "an http:// URL"


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
    Option("milter", "workers", int, 0,
           "Processes answering the milter socket; 0 means one per CPU. Each has its own caches "
           "(DNS, keystore answers, spam model); a change takes effect at restart.", non_negative),
    Option("milter", "pin_workers", bool, True,
           "Run each worker on one CPU of those the daemon may use (round robin), which keeps its "
           "caches warm; false leaves the placement to the scheduler. Takes effect at restart."),
    Option("milter", "batch_scheduling", bool, True,
           "Run the daemon under Linux's SCHED_BATCH policy: a thread woken by the MTA waits for "
           "the running task's time slice rather than preempting it (fewer context switches a "
           "message, a little more latency on a busy CPU). A policy it was started under other "
           "than the default one (CPUSchedulingPolicy=, chrt) is kept; false schedules it as "
           "usual. Takes effect at restart."),
    Option("milter", "drain_timeout", int, 30,
           "Seconds SIGTERM waits for open connections to finish before exiting.", positive),
    Option("milter", "use_keystore", bool, True,
           "Sign, encrypt and decrypt through the keystore; false: verify incoming mail only and "
           "pass outgoing mail through."),
    # [outbound] — mail we send
    Option("outbound", "default_policy", str, "opportunistic",
           "Encryption to a destination domain: require, opportunistic or never "
           "(a domain whose record says e=req is always require).",
           one_of("require", "opportunistic", "never")),
    Option("outbound", "require_domains", list, [],
           "Destination domains whose mail must leave encrypted, or be refused.", domain_list),
    Option("outbound", "never_domains", list, [],
           "Destination domains whose mail always leaves in plaintext.", domain_list),
    Option("outbound", "mixed", str, "plaintext",
           "Opportunistic message with keyed and unkeyed recipients: plaintext (to all) or split "
           "(envelope to keyed domains, a plaintext copy re-injected for the others).",
           one_of("plaintext", "split")),
    Option("outbound", "reinject", str, "127.0.0.1:10026",
           "HOST:PORT of a Postfix smtpd without milters that takes split-off plaintext copies "
           "(docs/transport.md)."),
    Option("outbound", "dkim_sign", bool, True,
           "DKIM-sign outgoing mail of our domains (Ed25519 and RSA, RFC 8463)."),
    # [inbound] — envelopes and downgrades in mail we receive
    Option("inbound", "downgrade_action", str, "tag",
           "Plaintext from a domain whose record says encryption is required: tag "
           "(sealgate=fail in Authentication-Results) or reject.", one_of("tag", "reject")),
    # [envelope] — what stays visible outside an envelope
    Option("envelope", "outer_headers", list, ["From", "To", "Cc", "Date", "Message-ID"],
           "Headers copied to the outside of a transport envelope; all others travel only inside."),
    Option("envelope", "subject_placeholder", str, "...",
           "Subject shown outside a transport envelope (RFC 9788)."),
    # [seal] — sealing incoming mail at rest for the recipients' mailbox keys
    Option("seal", "enabled", bool, True,
           "Seal incoming mail for local recipients to their mailbox keys (by the domain's "
           "isp, corporate or groups policy)."),
    Option("seal", "missing_key", str, "deliver",
           "A local recipient without a mailbox key: deliver (unsealed, with a log line) or "
           "tempfail.", one_of("deliver", "tempfail")),
    Option("seal", "subject_visible", bool, True,
           "Keep Subject readable outside the seal (mail clients list by it; docs/sealing.md)."),
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
    Option("dns", "cache_size", int, 10000,
           "Entries kept in the TTL-honouring cache: answers, and SPF results until the first "
           "answer they read expires.", positive),
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
    # [spam] — spam scoring of incoming mail after decryption and authentication (docs/spam.md)
    Option("spam", "backend", str, "builtin",
           "Scanner: builtin (rules and Bayes, in the milter), spamd (SpamAssassin), rspamd, or off.",
           one_of("builtin", "spamd", "rspamd", "off")),
    Option("spam", "required_score", float, 5.0,
           "Score from which a message is spam: X-Spam-Flag YES, verdict spam in `sealgate spam score`.",
           non_negative),
    Option("spam", "quarantine_score", float, 10.0,
           "Score from which the message goes to the MTA's quarantine (Postfix: hold queue); 0 never.",
           non_negative),
    Option("spam", "reject_score", float, 15.0,
           "Score from which the message is refused with 550 5.7.1; 0 never.", non_negative),
    Option("spam", "unavailable_action", str, "deliver",
           "Scanner down, slow or answering nonsense: deliver (with X-Spam-Status: Unscanned) "
           "or tempfail (451, the sender retries).", one_of("deliver", "tempfail")),
    Option("spam", "timeout", float, 10.0,
           "Seconds one spamd or rspamd scan may take in all, connecting included.", positive),
    Option("spam", "max_size", int, 524288,
           "Bytes of the message the scanner reads; the rest of a larger message is not scanned.",
           positive),
    Option("spam", "spamd_address", str, "127.0.0.1:783",
           "Where spamd listens: host:port or unix:/path.", scanner_address),
    Option("spam", "spamd_user", str, "",
           "User name sent to spamd (its per-user settings); empty sends none."),
    Option("spam", "rspamd_url", str, "http://127.0.0.1:11333",
           "Base URL of rspamd's normal worker; /checkv2 is appended.", http_url),
    Option("spam", "rspamd_password", str, "",
           "Password header for rspamd, when its worker requires one."),
    Option("spam", "bayes_database", str, "/var/lib/sealgate/spam-bayes.db",
           "SQLite Bayes model of the builtin backend, written by `sealgate spam train`."),
    Option("spam", "bayes_min_messages", int, 50,
           "Bayes counts only once the model has learned this many ham and this many spam messages.",
           non_negative),
    # [tls] — inbound TLS requirement and the outbound TLS policy server (docs/tls.md)
    Option("tls", "required_networks", list, [],
           "Client networks that must use TLS.", cidr_list),
    Option("tls", "required_domains", list, [],
           "HELO names and MAIL FROM domains (with their subdomains) that must use TLS.",
           domain_list),
    Option("tls", "min_version", str, "TLSv1.2",
           "Oldest TLS version accepted from a peer that must use TLS.",
           one_of("TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3")),
    Option("tls", "use_dns_record", bool, True,
           "Peers whose HELO or MAIL FROM domain publishes t=req in its `_sealgate` record "
           "must use TLS."),
    Option("tls", "dns_error_action", str, "tempfail-if-known",
           "When that record cannot be looked up: tempfail-if-known (only for a domain seen "
           "with t=req within known_required_seconds), tempfail (always) or accept.",
           one_of("tempfail-if-known", "tempfail", "accept")),
    Option("tls", "known_required_seconds", int, 604800,
           "How long a domain whose record said t=req stays known as requiring TLS.", positive),
    Option("tls", "refusal_code", str, "530",
           "Reply to a peer that must use TLS and did not: 530 (5.7.0, refused) "
           "or a 4xx (4.7.0, retried).", refusal_code),
    Option("tls", "policy_socket", str, "unix:/run/sealgate/tls-policy.sock",
           "Where `sealgate policy serve` answers Postfix's socketmap queries: "
           "unix:/path or inet:PORT@HOST.", milter_socket),
    Option("tls", "policy_socket_mode", str, "0660",
           "Permissions of the policy unix socket; group-writable for Postfix (in group sealgate).",
           octal_mode),
    Option("tls", "policy_map_name", str, "sealgate",
           "The socketmap name the server answers (the last part of socketmap:unix:/path:NAME)."),
    Option("tls", "policy_level", str, "encrypt",
           "Policy returned for destinations whose record says t=req: encrypt (TLS mandatory), "
           "verify (also a trusted certificate for the MX name) "
           "or secure (trusted, matching the domain).", one_of("encrypt", "verify", "secure")),
    # [keystore] — the key service, its storage, publication and discovery (docs/keystore.md)
    Option("keystore", "socket", str, "/run/sealgate/keystore.sock",
           "Unix socket of the keystore service, for the milter and the admin tools."),
    Option("keystore", "socket_mode", str, "0660",
           "Permissions of the keystore socket; only its owner and group (sealgate) may connect.",
           octal_mode),
    Option("keystore", "socket_group", str, "sealgate",
           "Group given to the keystore socket when that group exists."),
    Option("keystore", "timeout", float, 2.0,
           "Seconds a client waits for one keystore operation before treating the keystore as unavailable.",
           positive),
    Option("keystore", "workers", int, 0,
           "Processes answering the keystore socket; 0 means one per CPU.", non_negative),
    Option("keystore", "max_request", int, 65536,
           "Largest request in bytes the keystore socket accepts; larger ones are refused.", positive),
    Option("keystore", "database", str, "/var/lib/sealgate/keystore.db",
           "SQLite database of keys, history, published bundles and other domains' cached bundles."),
    Option("keystore", "master_key_file", str, "/etc/sealgate/keystore.key",
           "File (mode 0600) with the master key that encrypts private keys; created by `keys init`."),
    Option("keystore", "master_key_credential", str, "keystore.key",
           "Name of the master key in $CREDENTIALS_DIRECTORY (systemd LoadCredential=), used when present."),
    Option("keystore", "directory_listen", str, "127.0.0.1:8470",
           "host:port of the read-only public key directory (HTTP, behind your web server); \"\" disables it.",
           listen_address),
    Option("keystore", "public_url", str, "",
           "Base URL where other domains fetch our bundles; empty means https://<this host's name>.",
           public_url),
    Option("keystore", "dns_ttl", int, 3600, "TTL of the records `sealgate keys dns` prints.", positive),
    Option("keystore", "encryption_required", bool, False,
           "Publish e=req: our domains require encrypted mail."),
    Option("keystore", "tls_required", bool, False, "Publish t=req: our MX hosts require TLS."),
    Option("keystore", "transport_window_days", int, 7,
           "Days each transport key is the newest before the next one starts.", positive),
    Option("keystore", "transport_overlap_days", int, 7,
           "Days a transport key stays valid after its successor starts (for cached bundles).", positive),
    Option("keystore", "transport_grace_days", int, 5,
           "Days a transport private key is kept after its validity ends (mail queued in transit), "
           "then destroyed.", non_negative),
    Option("keystore", "transport_prepublish_days", int, 182,
           "Transport keys are made and published this far ahead, in batches, so the DNS record "
           "changes about twice a year instead of at every rotation; 0 makes one key at a time.",
           non_negative),
    Option("keystore", "maintenance_interval", int, 300,
           "Seconds between the service's rotation and destruction checks.", positive),
    Option("keystore", "fetch_timeout", float, 10.0,
           "Seconds to fetch another domain's bundle before counting it a temporary failure.", positive),
    Option("keystore", "max_bundle_size", int, 262144,
           "Largest bundle in bytes accepted from another domain.", positive),
)

SECTIONS: tuple[str, ...] = tuple(dict.fromkeys(o.section for o in OPTIONS))
BY_KEY: dict[str, Option] = {o.key: o for o in OPTIONS}
