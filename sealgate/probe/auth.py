"""SASL mechanisms, so nobody has to build base64 strings by hand.

Each mechanism is a generator: it yields ``(line to send, line to show)``
and receives the decoded 334 challenge. The shown line never holds a secret.
"""

import base64
import hmac
from collections.abc import Callable, Generator

Exchange = Generator[tuple[str, str], bytes, None]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode("ascii")


def plain(user: str, password: str) -> Exchange:
    """RFC 4616, sent as an initial response: one round trip."""
    yield f"AUTH PLAIN {_b64(chr(0) + user + chr(0) + password)}", "AUTH PLAIN ***"


def login(user: str, password: str) -> Exchange:
    """The de-facto LOGIN mechanism: username and password each after a 334."""
    yield "AUTH LOGIN", "AUTH LOGIN"
    yield _b64(user), "*** (username)"
    yield _b64(password), "*** (password)"


def cram_md5(user: str, password: str) -> Exchange:
    """RFC 2195: the password only keys an HMAC over the server's challenge."""
    challenge = yield "AUTH CRAM-MD5", "AUTH CRAM-MD5"
    digest = hmac.new(password.encode(), challenge, "md5").hexdigest()
    yield _b64(f"{user} {digest}"), "*** (username and digest)"


MECHANISMS: dict[str, Callable[[str, str], Exchange]] = {
    "PLAIN": plain, "LOGIN": login, "CRAM-MD5": cram_md5,
}


def decode_challenge(argument: str) -> bytes | None:
    """The bytes of a 334 challenge, or None if it is not valid base64."""
    try:
        return base64.b64decode(argument, validate=True)
    except ValueError:
        return None
