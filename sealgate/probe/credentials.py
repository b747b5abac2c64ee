"""Where AUTH gets its username and password: environment first, then a prompt.

Never from the command line (it would land in shell history and ``ps``),
and the password is read with getpass so it is not echoed.
"""

import getpass
import os
from dataclasses import dataclass

from .errors import UsageError

USER_VARIABLE = "SMTP_PROBE_USER"
PASSWORD_VARIABLE = "SMTP_PROBE_PASSWORD"


@dataclass(frozen=True)
class Credentials:
    """Asks for credentials each time AUTH runs, so a typo can be retried."""

    can_prompt: bool

    def username(self, given: str | None) -> str:
        """The macro's USER argument, else $SMTP_PROBE_USER, else a prompt."""
        user = given or os.environ.get(USER_VARIABLE)
        if user:
            return user
        self._require_prompt(USER_VARIABLE)
        try:
            user = input("username: ").strip()
        except EOFError:
            user = ""
        if not user:
            raise UsageError("no username given")
        return user

    def password(self, user: str) -> str:
        """$SMTP_PROBE_PASSWORD, else a prompt that does not echo."""
        secret = os.environ.get(PASSWORD_VARIABLE)
        if secret is not None:
            return secret
        self._require_prompt(PASSWORD_VARIABLE)
        try:
            return getpass.getpass(f"password for {user}: ")
        except EOFError:
            raise UsageError("no password given") from None

    def _require_prompt(self, variable: str) -> None:
        if not self.can_prompt:
            raise UsageError(f"no terminal to prompt on: set {variable}")
