"""Non-interactive runs for monitoring: macro lines, each with an expected reply.

Syntax, one step per line::

    # comment (blank lines are ignored too)
    greeting expect 220            only as first step: check the banner
    ehlo probe.example.org         default expectation: 2xx
    rcpt to nobody@example.org expect 550
    rcpt to other@example.org expect 4,5    4xx or 5xx
    !DATA                          raw: expects 2xx or 3xx; the lines up to
    Subject: hi                    a lone "." are message content (unless
    .                              DATA is expected to fail); "." takes the
                                   expect for the message

The whole script is checked before connecting; the run stops with one
line naming the step at the first reply that does not match.
"""

import re
import sys
from dataclasses import dataclass

from .errors import UnexpectedReply, UsageError
from .macros import Action, message_line, opens_message, parse
from .session import Session
from .transcript import Reply, Transcript

_EXPECT = re.compile(r"^(?P<line>.*?)\s*\bexpect\s+(?P<codes>[0-9x]{1,3}(?:\s*,\s*[0-9x]{1,3})*)\s*$",
                     re.IGNORECASE)
_LOOKS_LIKE_EXPECT = re.compile(r"(^|\s)expect(\s|$)", re.IGNORECASE)


@dataclass(frozen=True)
class Expectation:
    """Reply codes that count as success, as prefixes: "2" means any 2xx."""

    prefixes: tuple[str, ...]

    def matches(self, code: int) -> bool:
        """Whether the reply code starts with one of the prefixes."""
        return str(code).startswith(self.prefixes)

    def __str__(self) -> str:
        return " or ".join(prefix.ljust(3, "x") for prefix in self.prefixes)


@dataclass(frozen=True)
class Step:
    """One script line: where it is, what it runs and what it must get back."""

    where: str
    action: Action
    expect: Expectation
    in_message: bool = False


@dataclass(frozen=True)
class Script:
    """A checked script, ready to run against an open session."""

    greeting: Expectation
    steps: tuple[Step, ...]


def load_script(path: str) -> Script:
    """Read and check a script file (``-`` for stdin) before anything connects."""
    name = "<stdin>" if path == "-" else path
    try:
        if path == "-":
            text = sys.stdin.read()
        else:
            with open(path, encoding="utf-8") as handle:
                text = handle.read()
    except OSError as err:
        raise UsageError(f"cannot read script {name}: {err.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"script {name} is not UTF-8 text") from None
    return parse_script(text, name)


def parse_script(text: str, name: str) -> Script:
    """Turn script text into steps; any bad line is a UsageError naming it."""
    greeting, steps, in_message = Expectation(("2",)), [], False
    for number, line in enumerate(text.splitlines(), start=1):
        where = f"{name}:{number}"
        if in_message and not _ends_message(line):
            steps.append(Step(where, message_line(line), Expectation(()), in_message=True))
            continue
        if not in_message and (not line.strip() or line.lstrip().startswith("#")):
            continue
        command, codes = _split_expect(line, where)
        if not command.strip():
            raise UsageError(f"{where}: expect needs a command before it")
        if command.strip().lower() == "greeting" and not steps:
            greeting = codes or greeting
            continue
        step = _step(command, codes, where, in_message)
        steps.append(step)
        in_message = not in_message and opens_message(step.action) and step.expect.matches(354)
    if in_message:
        opening = next(step for step in reversed(steps) if not step.in_message)
        raise UsageError(f"{opening.where}: the message after raw DATA has no final '.' line")
    return Script(greeting, tuple(steps))


def _step(command: str, codes: Expectation | None, where: str, in_message: bool) -> Step:
    try:
        action = message_line(command.strip()) if in_message else parse(command)
    except UsageError as err:
        raise UsageError(f"{where}: {err}") from None
    if codes is not None and not action.has_reply:
        raise UsageError(f"{where}: '{command.strip()}' gets no reply to expect")
    return Step(where, action, codes or Expectation(action.expect), in_message)


def _ends_message(line: str) -> bool:
    match = _EXPECT.match(line)
    return (match["line"] if match else line).strip() == "."


def _split_expect(line: str, where: str) -> tuple[str, Expectation | None]:
    """Separate a trailing ``expect CODE[,CODE...]`` clause from the command."""
    match = _EXPECT.match(line)
    if match is None:
        if _LOOKS_LIKE_EXPECT.search(line):
            raise UsageError(f"{where}: bad expect clause (use e.g. 'expect 250' or 'expect 4,5')")
        return line, None
    prefixes = tuple(code.strip().lower().rstrip("x") for code in match["codes"].split(","))
    if not all(prefix.isdigit() and prefix[0] in "12345" for prefix in prefixes):
        raise UsageError(f"{where}: bad reply code in expect clause: {match['codes']}")
    return match["line"], Expectation(prefixes)


def run_script(session: Session, greeting: Reply, script: Script, transcript: Transcript) -> int:
    """Run every step; the first reply that does not match ends the run."""
    _check(greeting, script.greeting, "greeting")
    for step in script.steps:
        if not session.open:
            raise UnexpectedReply(f"{step.where}: the connection is already closed")
        try:
            reply = step.action.run(session)
        except UsageError as err:
            raise UsageError(f"{step.where}: {err}") from None
        if reply is not None:
            _check(reply, step.expect, f"{step.where}: {step.action.line}")
    transcript.info("script done: every reply was as expected")
    return 0


def _check(reply: Reply, expect: Expectation, what: str) -> None:
    if not expect.matches(reply.code):
        raise UnexpectedReply(f"{what}: expected {expect}, got {reply.text}")
