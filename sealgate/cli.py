"""The `sealgate` command: one entry point, a subcommand per job."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from sealgate import __version__
from sealgate.config import ConfigError, load


# Each feature adds its own subcommands: module.register(subparsers), using config_arg().
FEATURE_COMMANDS: tuple[str, ...] = ("sealgate.tlspolicy.cli", "sealgate.keystore.cli", "sealgate.mailboxkey.cli", "sealgate.spam.cli")


def config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, default=None,
                        help="config file (default /etc/sealgate/sealgate.conf)")


def cmd_config(args: argparse.Namespace) -> int:
    from sealgate.config.render import effective_toml, reference_markdown
    if args.action == "reference":
        sys.stdout.write(reference_markdown())
        return 0
    config = load(args.config)
    if args.action == "show":
        sys.stdout.write(effective_toml(config))
    else:
        print(f"{config.source}: OK")
    return 0


def cmd_milter(args: argparse.Namespace) -> int:
    from sealgate.milter.daemon import serve
    return serve(args.config)


def cmd_verify(args: argparse.Namespace) -> int:
    from sealgate.offline import verify_message
    config = load(args.config)
    raw = sys.stdin.buffer.read()
    line, verdict = verify_message(config, raw, zone=args.zone, client_ip=args.client_ip,
                                   helo=args.helo, mail_from=args.mail_from,
                                   authserv_id=args.authserv_id)
    print(line)
    if verdict.action != "accept":
        print(f"# the milter would answer: {verdict.action}"
              + (f" {verdict.code} {verdict.dsn} {verdict.text}" if verdict.text else ""),
              file=sys.stderr)
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from sealgate.probe import main as probe_main
    return probe_main(args.probe_args)


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="sealgate", description=__doc__)
    top.add_argument("--version", action="version", version=f"sealgate {__version__}")
    sub = top.add_subparsers(dest="command", required=True)

    p = sub.add_parser("config", help="check, show or document the configuration")
    p.add_argument("action", choices=["check", "show", "reference"])
    config_arg(p)
    p.set_defaults(func=cmd_config)

    p = sub.add_parser("milter", help="run the milter daemon")
    config_arg(p)
    p.set_defaults(func=cmd_milter)

    p = sub.add_parser("verify", help="run the incoming checks on a message read from stdin "
                                      "and print the Authentication-Results header")
    config_arg(p)
    p.add_argument("--zone", type=Path, action="append", default=[],
                   help="BIND zone file to take DNS answers from (repeatable)")
    p.add_argument("--client-ip", required=True)
    p.add_argument("--helo", default="")
    p.add_argument("--mail-from", default="")
    p.add_argument("--authserv-id", default=None)
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("probe", help="interactive SMTP diagnostic client", add_help=False)
    p.add_argument("probe_args", nargs=argparse.REMAINDER)
    p.set_defaults(func=cmd_probe)

    for module in FEATURE_COMMANDS:
        importlib.import_module(module).register(sub)
    return top


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ConfigError as exc:
        print(f"sealgate: configuration error:\n{exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
