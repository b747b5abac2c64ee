"""`sealgate keys ...` (administration) and `sealgate keystore ...` (the service and its debug tools).

Admin commands work on the database directly, safely beside a running
service (WAL, one write transaction per change); the service reads key
states on every operation, so a change takes effect at once.
SEALGATE_KEYSTORE_NOW fixes the time they act at (see keystore/clock.py).
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
from pathlib import Path
from typing import Any, Callable

from sealgate.cli import config_arg
from sealgate.config import Config, load
from sealgate.keystore import lifecycle, mailbox, names
from sealgate.keystore.clock import clock_from_env
from sealgate.keystore.discovery import Discovery
from sealgate.keystore.encoding import iso
from sealgate.keystore.errors import KeystoreError
from sealgate.keystore.masterkey import MasterKeyError
from sealgate.keystore.operations import discovered_to_wire
from sealgate.keystore.publish import zone_lines
from sealgate.keystore.runtime import open_store, public_base_url, resolver, schedule
from sealgate.keystore.store import KeyRecord

Command = Callable[[argparse.Namespace, Config], int]


def _command(func: Command) -> Callable[[argparse.Namespace], int]:
    """Load the config, run, and turn a refusal into one line on stderr."""

    @functools.wraps(func)
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args, load(args.config))
        except KeystoreError as exc:
            print(f"sealgate: {exc}", file=sys.stderr)
            return 1
        except MasterKeyError as exc:
            print(f"sealgate: {exc}", file=sys.stderr)
            return 2

    return run


def _row(key: KeyRecord) -> str:
    until = iso(key.valid_until) if key.valid_until else "-"
    return (f"{key.key_id}  {key.purpose:<9} {key.algorithm:<8} {key.state:<9} "
            f"{iso(key.valid_from)}  {until:<20}  {key.owner or '-'}")


def _print_keys(keys: list[KeyRecord]) -> None:
    print(f"{'KEY ID':<36}  {'PURPOSE':<9} {'ALG':<8} {'STATE':<9} {'VALID FROM':<20}  "
          f"{'VALID UNTIL':<20}  OWNER")
    for key in keys:
        print(_row(key))


@_command
def cmd_init(args: argparse.Namespace, config: Config) -> int:
    store = open_store(config, with_master_key=True, create_key=True)
    made = lifecycle.init_domain(store, names.domain(args.domain), schedule(config),
                                 clock_from_env()(), args.mailbox_policy)
    _print_keys(made)
    print(f"# publish the records `sealgate keys dns {args.domain}` prints", file=sys.stderr)
    return 0


@_command
def cmd_rotate(args: argparse.Namespace, config: Config) -> int:
    owner = names.group(args.group) if args.group else None
    if args.purpose == "group" and owner is None:
        raise KeystoreError("bad-request", "--purpose group needs --group NAME")
    store = open_store(config, with_master_key=True)
    _print_keys(lifecycle.rotate(store, names.domain(args.domain), args.purpose, schedule(config),
                                 clock_from_env()(), owner))
    return 0


@_command
def cmd_revoke(args: argparse.Namespace, config: Config) -> int:
    store = open_store(config, with_master_key=True)
    made = lifecycle.revoke(store, args.key_id, args.reason, schedule(config), clock_from_env()())
    print(f"revoked {args.key_id}" + ("; successor:" if made else ""))
    for key in made:
        print(_row(key))
    return 0


@_command
def cmd_list(args: argparse.Namespace, config: Config) -> int:
    store = open_store(config, with_master_key=False)
    states = ("active", "retired", "revoked", "destroyed") if args.all else ("active", "retired")
    domain = names.domain(args.domain) if args.domain else None
    _print_keys([k for k in store.keys(domain, states=states)
                 if args.all or k.state == "active" or k.held])
    return 0


@_command
def cmd_show(args: argparse.Namespace, config: Config) -> int:
    key = open_store(config, with_master_key=False).key(args.key_id)
    if key is None:
        raise KeystoreError("not-found", f"no key {args.key_id}; `sealgate keys list` shows the ids")
    print(json.dumps(key.describe(), indent=2))
    return 0


@_command
def cmd_history(args: argparse.Namespace, config: Config) -> int:
    store = open_store(config, with_master_key=False)
    keys = sorted(store.keys(names.domain(args.domain)), key=lambda k: (k.created, k.purpose))
    for key in keys:
        events = [f"created {iso(key.created)}"]
        for state, at in (("retired", key.retired_at), ("revoked", key.revoked_at),
                          ("destroyed", key.destroyed_at)):
            if at:
                events.append(f"{state} {iso(at)}")
        if key.superseded_by:
            events.append(f"superseded by {key.superseded_by}")
        if key.reason:
            events.append(f"reason: {key.reason}")
        print(f"{key.key_id}  {key.purpose:<9} {key.algorithm:<8} {key.owner or '-'}: "
              + "; ".join(events))
    return 0


@_command
def cmd_export_public(args: argparse.Namespace, config: Config) -> int:
    latest = open_store(config, with_master_key=False).latest_bundle(names.domain(args.domain))
    if latest is None:
        raise KeystoreError("not-found", f"domain {args.domain} has no keys here")
    if args.output:
        args.output.write_bytes(latest[1])
        print(f"{args.output}: bundle sha256 {latest[0]}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(latest[1] + b"\n")
    return 0


@_command
def cmd_dns(args: argparse.Namespace, config: Config) -> int:
    settings = config.keystore
    for line in zone_lines(open_store(config, with_master_key=False), names.domain(args.domain),
                           public_base_url(config), settings.dns_ttl,
                           settings.encryption_required, settings.tls_required):
        print(line)
    return 0


@_command
def cmd_policy(args: argparse.Namespace, config: Config) -> int:
    store = open_store(config, with_master_key=args.mode == "corporate")
    made = mailbox.set_policy(store, names.domain(args.domain), args.mode, clock_from_env()())
    print(f"{args.domain}: mailbox policy {args.mode}")
    if made:
        _print_keys(made)
    return 0


@_command
def cmd_register_mailbox(args: argparse.Namespace, config: Config) -> int:
    text = args.request.read_text() if args.request else sys.stdin.read()
    try:
        parsed = json.loads(text)
    except ValueError:
        parsed = None  # mailbox.register names what is wrong with it
    # `sealgate mailbox-key generate` prints a list: the device key and the recovery key.
    requests = [json.dumps(r) for r in parsed] if isinstance(parsed, list) else [text]
    store = open_store(config, with_master_key=False)
    for request_text in requests:
        key = mailbox.register(store, request_text, clock_from_env()())
        print(f"registered {key.purpose} key {key.key_id} for {key.owner}")
    return 0


@_command
def cmd_mailbox(args: argparse.Namespace, config: Config) -> int:
    _print_keys(mailbox.mailbox_keys(open_store(config, with_master_key=False), args.address))
    return 0


@_command
def cmd_group(args: argparse.Namespace, config: Config) -> int:
    domain = names.domain(args.domain)
    if args.action == "list":
        store = open_store(config, with_master_key=False)
        for name, members in mailbox.groups(store, domain).items():
            print(f"{name}: {', '.join(members) or '(no members)'}")
        return 0
    if not args.name:
        raise KeystoreError("bad-request", f"keys group {args.action} needs a group NAME")
    name = names.group(args.name)
    if args.action == "create":
        store = open_store(config, with_master_key=True)
        _print_keys([mailbox.create_group(store, domain, name, clock_from_env()())])
        return 0
    if not args.address:
        raise KeystoreError("bad-request", f"keys group {args.action} needs an ADDRESS")
    mailbox.set_membership(open_store(config, with_master_key=False), domain, name,
                           names.address(args.address), member=args.action == "add")
    return 0


def _discovery(config: Config) -> Discovery:
    settings = config.keystore
    return Discovery(open_store(config, with_master_key=False), resolver(config), clock_from_env(),
                     settings.fetch_timeout, settings.max_bundle_size)


@_command
def cmd_unpin(args: argparse.Namespace, config: Config) -> int:
    domain = names.domain(args.domain)
    removed = _discovery(config).unpin(domain)
    print(f"{domain}: " + ("pin and cached bundle removed; the next lookup pins the key it finds"
                           if removed else "no pin"))
    return 0


@_command
def cmd_discover(args: argparse.Namespace, config: Config) -> int:
    found = _discovery(config).lookup(names.domain(args.domain))
    print(json.dumps(discovered_to_wire(found, clock_from_env()()), indent=2))
    return 0 if found.status == "found" else 1


@_command
def cmd_maintain(args: argparse.Namespace, config: Config) -> int:
    from sealgate.keystore.service import maintain_all
    maintain_all(open_store(config, with_master_key=True), config, clock_from_env())
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from sealgate.keystore.service import serve
    return serve(args.config)


def _add(sub: Any, name: str, func: Callable[[argparse.Namespace], int], help: str,
         *arguments: tuple[tuple[str, ...], dict[str, Any]]) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = sub.add_parser(name, help=help)
    for flags, options in arguments:
        parser.add_argument(*flags, **options)
    config_arg(parser)
    parser.set_defaults(func=func)
    return parser


def _arg(*flags: str, **options: Any) -> tuple[tuple[str, ...], dict[str, Any]]:
    return flags, options


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    keys = sub.add_parser("keys", help="manage this gateway's keys (docs/keystore.md)")
    k = keys.add_subparsers(dest="keys_command", required=True)
    domain = _arg("domain", metavar="DOMAIN")
    _add(k, "init", cmd_init, "create a domain's identity, transport and DKIM keys", domain,
         _arg("--mailbox-policy", choices=lifecycle.MAILBOX_POLICIES, default="isp"))
    _add(k, "rotate", cmd_rotate, "replace a domain's key of one purpose now", domain,
         _arg("--purpose", choices=lifecycle.ROTATABLE, default="transport"),
         _arg("--group", help="the group, for --purpose group"))
    _add(k, "revoke", cmd_revoke, "revoke a key for good (signed record, private half erased)",
         _arg("key_id", metavar="KEY_ID"), _arg("--reason", default="revoked by the administrator"))
    _add(k, "list", cmd_list, "keys in use (active, or retired with a private half still held)",
         _arg("domain", metavar="DOMAIN", nargs="?"),
         _arg("--all", action="store_true", help="also revoked, destroyed and client-held retired keys"))
    _add(k, "show", cmd_show, "one key's public details as JSON", _arg("key_id", metavar="KEY_ID"))
    _add(k, "history", cmd_history, "every key the domain ever had, with its state changes", domain)
    _add(k, "export-public", cmd_export_public, "the domain's signed bundle (what the directory serves)",
         domain, _arg("--output", type=Path, help="write to this file instead of stdout"))
    _add(k, "dns", cmd_dns, "zone-file lines to publish: the sealgate record and DKIM keys", domain)
    _add(k, "policy", cmd_policy, "set the domain's mailbox key policy", domain,
         _arg("mode", choices=lifecycle.MAILBOX_POLICIES))
    _add(k, "register-mailbox", cmd_register_mailbox,
         "register a client's mailbox or recovery key from its signed request",
         _arg("request", type=Path, nargs="?", help="request file (default: stdin)"))
    _add(k, "mailbox", cmd_mailbox, "the keys mail for an address is sealed to",
         _arg("address", metavar="ADDRESS"))
    _add(k, "group", cmd_group, "create groups and manage their members",
         _arg("action", choices=("create", "add", "remove", "list")), domain,
         _arg("name", metavar="NAME", nargs="?"), _arg("address", metavar="ADDRESS", nargs="?"))
    _add(k, "unpin", cmd_unpin, "forget another domain's pinned identity key (after checking "
                                "its change out of band)", domain)

    service = sub.add_parser("keystore", help="the key service")
    s = service.add_subparsers(dest="keystore_command", required=True)
    _add(s, "serve", cmd_serve, "run the keystore service (unix socket and public directory)")
    _add(s, "maintain", cmd_maintain, "rotate, retire and destroy keys as the schedule says, once")
    _add(s, "discover", cmd_discover, "look up another domain's keys as the service would", domain)
