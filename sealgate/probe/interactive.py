"""The telnet replacement: read a whole typed line, then send it at once.

Servers drop clients that send one character at a time; input() gives us
the finished line, with readline's editing and history on a terminal.
"""

import sys

from .errors import UsageError
from .macros import message_line, parse
from .session import Session
from .transcript import Transcript


def run_interactive(session: Session, transcript: Transcript) -> int:
    """Run typed lines until ``quit``, end of input, or the server hangs up."""
    on_terminal = sys.stdin.isatty()
    if on_terminal:
        _enable_line_editing()
    transcript.info("type help for the macros, quit to leave")
    while session.open:
        prompt = ("data> " if session.in_data else "smtp> ") if on_terminal else ""
        try:
            line = input(prompt)
        except EOFError:
            print(flush=True)  # end the prompt's line before the farewell
            break
        if session.in_data:
            message_line(line).run(session)
        elif line.strip():
            _run_line(session, line)
    return 0


def _run_line(session: Session, line: str) -> None:
    """One command line; a mistake costs one error line, not the session."""
    try:
        parse(line).run(session)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)


def _enable_line_editing() -> None:
    """Importing readline gives input() editing and history, where it exists."""
    try:
        import readline  # noqa: F401
    except ImportError:
        pass
