"""Typed lines to actions: the macros, so nobody needs RFC 5321 at hand.

A line whose first word is a macro name (any case) runs the macro; any
other line is sent raw, exactly as typed. A leading ``!`` forces raw,
for SMTP commands that share a macro's name (``!DATA``, ``!HELP``).
"""

from collections.abc import Callable
from dataclasses import dataclass
from operator import methodcaller

from .auth import MECHANISMS
from .credentials import PASSWORD_VARIABLE, USER_VARIABLE
from .errors import UsageError
from .message import read_message
from .session import Session
from .transcript import Reply

Runner = Callable[[Session], Reply | None]
RAW_EXPECT = ("2", "3")


class _BadSyntax(UsageError):
    """A macro line that does not fit the macro's usage (which we then show)."""


@dataclass(frozen=True)
class Action:
    """A parsed line: what to run and which reply codes count as success."""

    line: str
    run: Runner
    expect: tuple[str, ...] = ("2",)
    has_reply: bool = True


@dataclass(frozen=True)
class Macro:
    """A macro's syntax, its one-line description and its argument parser."""

    usage: str
    summary: str
    build: Callable[[str], Runner]


def parse(line: str) -> Action:
    """Turn a typed line into an action; bad macro syntax raises UsageError."""
    text = line.strip()
    if text.startswith("!"):
        return Action(text, methodcaller("raw", text[1:]), RAW_EXPECT)
    name, _, arguments = text.replace("\t", " ").partition(" ")
    if name.lower() == "help":
        return Action(text, _print_help, has_reply=False)
    macro = MACROS.get(name.lower())
    if macro is None:
        return Action(text, methodcaller("raw", text), RAW_EXPECT)
    try:
        return Action(text, macro.build(arguments.strip()))
    except _BadSyntax as err:
        raise UsageError(f"{err} (usage: {macro.usage})") from None


def message_line(line: str) -> Action:
    """A line after a raw DATA got 354: message content up to the lone ``.``."""
    return Action(line, methodcaller("data_line", line), has_reply=line == ".")


def opens_message(action: Action) -> bool:
    """Whether a raw line is DATA, so the lines after it are message content."""
    return action.expect == RAW_EXPECT and action.line.lstrip("!").strip().upper() == "DATA"


def help_text() -> str:
    """The macro list, shown by ``help`` and at the end of ``--help``."""
    width = max(len(macro.usage) for macro in MACROS.values())
    lines = [f"  {macro.usage:<{width}}  {macro.summary}" for macro in MACROS.values()]
    lines += [
        f"  {'help':<{width}}  this list (!HELP asks the server)",
        "Any other line is sent to the server exactly as typed; start a line with !",
        "to send it raw even if it begins with a macro name (e.g. !DATA, then the",
        "message lines and a lone '.').",
        f"auth takes USER, else ${USER_VARIABLE}, and ${PASSWORD_VARIABLE}; it prompts",
        "for what is missing. The password is never echoed or shown.",
    ]
    return "\n".join(lines)


def _print_help(_: Session) -> None:
    print(help_text(), flush=True)


def _name(method: str) -> Callable[[str], Runner]:
    def build(arguments: str) -> Runner:
        if len(arguments.split()) > 1:
            raise _BadSyntax(f"{method} takes one name")
        return methodcaller(method, arguments or None)
    return build


def _bare(method: str) -> Callable[[str], Runner]:
    def build(arguments: str) -> Runner:
        if arguments:
            raise _BadSyntax(f"{method} takes no arguments")
        return methodcaller(method)
    return build


def _envelope(method: str, keyword: str, null_allowed: bool) -> Callable[[str], Runner]:
    def build(arguments: str) -> Runner:
        address, parameters, bracketed = _address(arguments, keyword)
        if not address and not (null_allowed and bracketed):
            raise _BadSyntax(f"{method} needs an address")
        return methodcaller(method, address, parameters)
    return build


def _address(arguments: str, keyword: str) -> tuple[str, str, bool]:
    """Split ``[from|to][:]<addr> [PARAMS]`` leniently, so RFC syntax works too.

    Returns the address, the parameters and whether the address was in <>.
    """
    rest = arguments
    if rest[:len(keyword)].lower() == keyword and rest[len(keyword):][:1] in ("", " ", ":"):
        rest = rest[len(keyword):].lstrip(" :")
    if not rest.startswith("<"):
        address, _, parameters = rest.partition(" ")
        return address, parameters.strip(), False
    end = rest.find(">")
    if end < 0:
        raise _BadSyntax("missing '>' after the address")
    return rest[1:end].strip(), rest[end + 1:].strip(), True


def _data(arguments: str) -> Runner:
    return methodcaller("data", read_message(arguments) if arguments else None)


def _auth(arguments: str) -> Runner:
    mechanism, _, user = arguments.partition(" ")
    if not mechanism:
        raise _BadSyntax("auth needs a mechanism")
    if mechanism.upper() not in MECHANISMS:
        raise _BadSyntax(f"unknown AUTH mechanism {mechanism!r}; send others raw with !AUTH")
    return methodcaller("auth", mechanism.upper(), user.strip() or None)


MACROS: dict[str, Macro] = {
    "ehlo": Macro("ehlo [NAME]", "EHLO with --helo's name or NAME", _name("ehlo")),
    "helo": Macro("helo [NAME]", "old-style HELO", _name("helo")),
    "starttls": Macro("starttls", "STARTTLS, handshake, show certificates", _bare("starttls")),
    "auth": Macro("auth plain|login|cram-md5 [USER]", "authenticate", _auth),
    "mail": Macro("mail [from] ADDRESS [PARAMS]", "MAIL FROM:<ADDRESS> (<> = null sender)",
                  _envelope("mail", "from", null_allowed=True)),
    "rcpt": Macro("rcpt [to] ADDRESS [PARAMS]", "RCPT TO:<ADDRESS>",
                  _envelope("rcpt", "to", null_allowed=False)),
    "data": Macro("data [FILE]", "send FILE (or a generated test message)", _data),
    "rset": Macro("rset", "RSET", _bare("rset")),
    "noop": Macro("noop", "NOOP", _bare("noop")),
    "quit": Macro("quit", "QUIT and leave", _bare("quit")),
}
