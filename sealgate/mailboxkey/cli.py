"""`sealgate mailbox-key`: run by the mail user on their own machine, never on the server."""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from pathlib import Path

from sealgate.keystore import names
from sealgate.keystore.clock import clock_from_env
from sealgate.keystore.encoding import iso
from sealgate.keystore.errors import KeystoreError
from sealgate.config import ConfigError
from sealgate.keystore.wrapping import WrapError, unwrap
from sealgate.mailboxkey import keyfile, request, unseal


def _created() -> str:
    return iso(clock_from_env()())


def cmd_generate(args: argparse.Namespace) -> int:
    """The device key (a file) and, unless --no-recovery, the recovery key (a phrase): a lost
    device then does not lose the mail sealed to both."""
    keys = []
    try:
        address = names.address(args.address)
        if not args.recovery:
            if args.output is None:
                raise keyfile.KeyFileError("--output FILE is needed: where the private key is kept")
            keys.append(keyfile.generate(address))
            keyfile.write(args.output, keys[0])
            print(f"private key written to {args.output} (mode 0600); keep it on this machine",
                  file=sys.stderr)
        if args.recovery or not args.no_recovery:
            phrase = keyfile.recovery_phrase()
            keys.append(keyfile.from_recovery_phrase(address, phrase))
            print(f"Recovery phrase for {address} (write it down and keep it offline; it is "
                  f"shown only once):\n\n    {phrase}\n", file=sys.stderr)
    except (KeystoreError, keyfile.KeyFileError) as exc:
        print(f"sealgate: {exc}", file=sys.stderr)
        return 1
    requests = [request.make(key, _created()) for key in keys]
    print(json.dumps(requests if len(requests) > 1 else requests[0], indent=2))
    print("# send the request above to your mail administrator: "
          "sealgate keys register-mailbox FILE", file=sys.stderr)
    return 0


def cmd_recover(args: argparse.Namespace) -> int:
    phrase = (getpass.getpass("recovery phrase: ") if sys.stdin.isatty()
              else sys.stdin.readline())
    try:
        key = keyfile.from_recovery_phrase(names.address(args.address), phrase)
        keyfile.write(args.output, key)
    except (KeystoreError, keyfile.KeyFileError) as exc:
        print(f"sealgate: {exc}", file=sys.stderr)
        return 1
    print(f"recovery key {key.key_id} written to {args.output} (mode 0600)", file=sys.stderr)
    return 0


def _opener(args: argparse.Namespace) -> tuple[set[str] | None, unseal.Opener]:
    """Which key ids are ours (None: let the keystore say) and how a slot is opened."""
    if args.keystore:
        from sealgate.config import load
        from sealgate.keystore.client import KeystoreClient
        config = load(args.config)
        client = KeystoreClient(config.keystore.socket, config.keystore.timeout)

        def by_keystore(key_id: str, ephemeral: bytes, wrapped: bytes, context: bytes) -> bytes:
            try:
                return client.unwrap(key_id, ephemeral, wrapped, context)
            except KeystoreError as exc:
                raise WrapError(str(exc)) from None
        return None, by_keystore
    if args.key is not None:
        key = keyfile.read(args.key)
    else:
        phrase = (getpass.getpass("recovery phrase: ") if sys.stdin.isatty()
                  else sys.stdin.readline())
        key = keyfile.from_recovery_phrase(names.address(args.recovery_phrase), phrase)
    return {key.key_id}, lambda _id, ephemeral, wrapped, context: unwrap(
        key.private, ephemeral, wrapped, context)


def cmd_unseal(args: argparse.Namespace) -> int:
    try:
        key_ids, opener = _opener(args)
    except (KeystoreError, keyfile.KeyFileError, ConfigError) as exc:
        print(f"sealgate: {exc}", file=sys.stderr)
        return 2
    source = args.source
    if source is None:
        if args.recovery_phrase is not None:
            print("sealgate: with --recovery-phrase, give the mail as SOURCE (stdin holds the "
                  "phrase)", file=sys.stderr)
            return 2
        raw = sys.stdin.buffer.read()
        try:
            original = unseal.unseal(raw, key_ids, opener)
        except unseal.NotOpened as exc:
            print(f"sealgate: cannot unseal: {exc}", file=sys.stderr)
            return 1
        (args.output.write_bytes if args.output else sys.stdout.buffer.write)(original)
        return 0
    if not source.exists():
        print(f"sealgate: {source}: no such file or directory", file=sys.stderr)
        return 2
    report = unseal.unseal_path(source, args.output, key_ids, opener, sys.stdout.buffer)
    for problem in report.problems:
        print(f"sealgate: cannot unseal {problem}", file=sys.stderr)
    print(f"{report.opened} message(s) unsealed, {len(report.problems)} not", file=sys.stderr)
    return 1 if report.problems else 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    top = sub.add_parser("mailbox-key", help="your own mailbox key (client side)")
    actions = top.add_subparsers(dest="mailbox_key_command", required=True)
    p = actions.add_parser("generate", help="make a key and print its signed registration request")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--output", type=Path, help="private key file to create (mode 0600)")
    p.add_argument("--recovery", action="store_true",
                   help="make only the recovery key: shown as a phrase, no file written")
    p.add_argument("--no-recovery", action="store_true",
                   help="make only the device key (for a second device)")
    p.set_defaults(func=cmd_generate)
    p = actions.add_parser("recover", help="rebuild the recovery key from its phrase (read from stdin)")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--output", type=Path, required=True, help="private key file to create (mode 0600)")
    p.set_defaults(func=cmd_recover)

    p = sub.add_parser("unseal", help="open mail sealed at rest with your key (client side)")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--key", type=Path, help="your mailbox key file")
    who.add_argument("--recovery-phrase", metavar="ADDRESS",
                     help="use the recovery key of ADDRESS; the phrase is asked for (or read "
                          "from stdin)")
    who.add_argument("--keystore", action="store_true",
                     help="ask the keystore to open group or corporate slots (on the server)")
    p.add_argument("source", type=Path, nargs="?",
                   help="a message file, a Maildir or an mbox (default: one message on stdin)")
    p.add_argument("--output", type=Path,
                   help="where the originals go (default: stdout for one message, "
                        "SOURCE.unsealed for a Maildir or mbox)")
    p.add_argument("--config", type=Path, default=None, help="for --keystore: the config file")
    p.set_defaults(func=cmd_unseal)
