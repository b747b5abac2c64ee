"""`sealgate policy serve` (the socketmap daemon) and `sealgate policy query` (the same answer for
one destination, printed: to see what Postfix will be told without Postfix)."""

from __future__ import annotations

import argparse
from typing import Any

from sealgate.cli import config_arg
from sealgate.config import load

EXIT_STATUS = {"OK": 0, "NOTFOUND": 1, "TEMP": 75}  # 75: EX_TEMPFAIL, try again later


def cmd_serve(args: argparse.Namespace) -> int:
    from sealgate.tlspolicy.server import serve
    return serve(args.config)


def cmd_query(args: argparse.Namespace) -> int:
    from sealgate import services
    from sealgate.tlspolicy import outbound
    reply = outbound.lookup(args.destination.lower(), services.build(load(args.config)))
    print(f"{reply.status} {reply.text}".rstrip())
    return EXIT_STATUS[reply.status]


def register(sub: Any) -> None:
    p = sub.add_parser("policy", help="outbound TLS policy for Postfix's smtp_tls_policy_maps")
    actions = p.add_subparsers(dest="policy_action", required=True)
    serve = actions.add_parser("serve", help="answer Postfix's socketmap queries on [tls] "
                                             "policy_socket")
    config_arg(serve)
    serve.set_defaults(func=cmd_serve)
    query = actions.add_parser("query", help="print the answer for one next-hop destination "
                                             "(exit 0 OK, 1 NOTFOUND, 75 TEMP)")
    config_arg(query)
    query.add_argument("destination", help="as Postfix looks it up: example.org, "
                                           "example.org:587, [mx.example.org]")
    query.set_defaults(func=cmd_query)
