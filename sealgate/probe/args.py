"""The command line: ``sealgate probe [options] HOST[:PORT]``."""

import argparse
import ipaddress
import math
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

from .errors import UsageError
from .macros import help_text

PROG = "sealgate probe"
SMTP_PORT, SMTPS_PORT = 25, 465

EPILOG = f"""\
macros (type them at the smtp> prompt, or put them in a --script):
{help_text()}

script lines: a macro or raw line, optionally ending in 'expect CODES'
(e.g. 'rcpt to x@example.org expect 550', 'expect 4,5', 'expect 25x');
without it, 2xx is expected (2xx or 3xx for raw lines). A first line
'greeting expect CODES' checks the banner. '#' starts a comment line.

exit status: 0 ok, 1 unexpected reply, 2 bad input, 3 connection or TLS failure.
"""


@dataclass(frozen=True)
class Options:
    """Everything the command line decides, checked and with defaults applied."""

    host: str
    port: int
    implicit_tls: bool
    starttls: bool
    bind: str | None
    helo: str
    timeout: float
    insecure: bool
    cafile: str | None
    server_name: str
    script: str | None
    quiet: bool


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad input as one line, like every other error here."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def parse_arguments(argv: Sequence[str] | None) -> Options:
    """Options from argv; raises UsageError on bad input, SystemExit for --help."""
    namespace = _parser().parse_args(argv)
    default_port = SMTPS_PORT if namespace.tls else SMTP_PORT
    host, port = split_target(namespace.target, default_port)
    return Options(
        host=host, port=port, implicit_tls=namespace.tls, starttls=namespace.starttls,
        bind=namespace.bind, helo=namespace.helo or socket.getfqdn(),
        timeout=namespace.timeout, insecure=namespace.insecure, cafile=namespace.cafile,
        server_name=namespace.servername or host, script=namespace.script,
        quiet=namespace.quiet,
    )


def split_target(target: str, default_port: int) -> tuple[str, int]:
    """HOST, HOST:PORT, [IPv6]:PORT or a bare IPv6 address."""
    if target.startswith("["):
        host, bracket, port = target[1:].partition("]")
        if not bracket or port[:1] not in ("", ":"):
            raise UsageError(f"bad address {target!r}: use [IPv6] or [IPv6]:PORT")
        port = port[1:]
    elif target.count(":") == 1:
        host, _, port = target.partition(":")
    else:
        host, port = target, ""
    if not host:
        raise UsageError(f"no host in {target!r}")
    if not port:
        return host, default_port
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"bad port {port!r} in {target!r}")
    return host, int(port)


def _parser() -> _Parser:
    parser = _Parser(
        prog=PROG, formatter_class=argparse.RawDescriptionHelpFormatter, epilog=EPILOG,
        description="Talk SMTP to a server by hand or by script: whole-line sends,\n"
                    "reply timings, TLS details, AUTH without base64 by hand.")
    parser.add_argument("target", metavar="HOST[:PORT]",
                        help=f"server to probe (port {SMTP_PORT}, or {SMTPS_PORT} with --tls)")
    tls = parser.add_mutually_exclusive_group()
    tls.add_argument("--starttls", action="store_true",
                     help="send EHLO and STARTTLS right after the greeting")
    tls.add_argument("--tls", "--smtps", action="store_true",
                     help="implicit TLS from the first byte (port 465 by default)")
    trust = parser.add_mutually_exclusive_group()
    trust.add_argument("--insecure", action="store_true",
                       help="do not verify the certificate (it is still shown)")
    trust.add_argument("--cafile", metavar="FILE",
                       help="trust the CAs in FILE instead of the system store")
    parser.add_argument("--servername", metavar="NAME",
                        help="TLS server name to send and verify (default: HOST)")
    parser.add_argument("--bind", metavar="ADDRESS", type=_ip_address,
                        help="local source address, e.g. to test one IP's reputation")
    parser.add_argument("--helo", metavar="NAME",
                        help="name for ehlo/helo (default: this host's FQDN)")
    parser.add_argument("--timeout", metavar="SECONDS", type=_seconds, default=30.0,
                        help="for connecting and for each reply (default: 30)")
    parser.add_argument("--script", metavar="FILE",
                        help="run macro lines from FILE ('-' for stdin), checking replies")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="no transcript, only errors (for monitoring)")
    return parser


def _ip_address(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"not a positive, finite number of seconds: {text!r}")
    return value
