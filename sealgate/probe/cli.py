"""Entry point: wire options to a session and map every failure to one line."""

import sys
from collections.abc import Sequence

from .args import PROG, parse_arguments
from .credentials import Credentials
from .errors import ProbeFailure, UnexpectedReply
from .interactive import run_interactive
from .script import load_script, run_script
from .session import Session, open_session
from .tls import make_client
from .transcript import Reply, Transcript


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sealgate probe``; returns the exit status (see --help)."""
    try:
        return _run(argv)
    except ProbeFailure as failure:
        print(f"{PROG}: {failure}", file=sys.stderr, flush=True)
        return failure.exit_status
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr, flush=True)
        return 130


def _run(argv: Sequence[str] | None) -> int:
    try:
        options = parse_arguments(argv)
    except SystemExit as done:  # --help
        return int(done.code or 0)
    # Everything the user can get wrong is checked before connecting.
    script = load_script(options.script) if options.script else None
    tls = make_client(options.server_name, options.cafile, options.insecure)
    transcript = Transcript(quiet=options.quiet)
    session, greeting = open_session(
        options.host, options.port, bind=options.bind, timeout=options.timeout,
        implicit_tls=options.implicit_tls, transcript=transcript, tls=tls,
        credentials=Credentials(can_prompt=sys.stdin.isatty() and options.script != "-"),
        helo=options.helo)
    with session:
        if options.starttls:
            _upgrade(session, greeting)
        if script is not None:
            return run_script(session, greeting, script, transcript)
        return run_interactive(session, transcript)


def _upgrade(session: Session, greeting: Reply) -> None:
    """--starttls: EHLO and STARTTLS before the user or the script takes over."""
    if greeting.code >= 400:
        raise UnexpectedReply(f"cannot start TLS after the greeting {greeting.text}")
    ehlo = session.ehlo()
    if ehlo.code >= 400:
        raise UnexpectedReply(f"cannot start TLS after EHLO got {ehlo.text}")
    reply = session.starttls()
    if reply.code != 220:
        raise UnexpectedReply(f"the server refused STARTTLS: {reply.text}")
