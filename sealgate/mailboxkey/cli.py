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
from sealgate.mailboxkey import keyfile, request


def _created() -> str:
    return iso(clock_from_env()())


def cmd_generate(args: argparse.Namespace) -> int:
    try:
        address = names.address(args.address)
        if args.recovery:
            phrase = keyfile.recovery_phrase()
            key = keyfile.from_recovery_phrase(address, phrase)
            print(f"Recovery phrase for {address} (write it down and keep it offline; it is "
                  f"shown only once):\n\n    {phrase}\n", file=sys.stderr)
        else:
            if args.output is None:
                raise keyfile.KeyFileError("--output FILE is needed: where the private key is kept")
            key = keyfile.generate(address)
            keyfile.write(args.output, key)
            print(f"private key written to {args.output} (mode 0600); keep it on this machine",
                  file=sys.stderr)
    except (KeystoreError, keyfile.KeyFileError) as exc:
        print(f"sealgate: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(request.make(key, _created()), indent=2))
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


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    top = sub.add_parser("mailbox-key", help="your own mailbox key (client side)")
    actions = top.add_subparsers(dest="mailbox_key_command", required=True)
    p = actions.add_parser("generate", help="make a key and print its signed registration request")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--output", type=Path, help="private key file to create (mode 0600)")
    p.add_argument("--recovery", action="store_true",
                   help="make the recovery key instead: shown as a phrase, no file written")
    p.set_defaults(func=cmd_generate)
    p = actions.add_parser("recover", help="rebuild the recovery key from its phrase (read from stdin)")
    p.add_argument("address", metavar="ADDRESS")
    p.add_argument("--output", type=Path, required=True, help="private key file to create (mode 0600)")
    p.set_defaults(func=cmd_recover)
