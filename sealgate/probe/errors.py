"""Failures of a probe run, each carrying the exit status it maps to.

Every failure is reported as one line on stderr; the exit status tells
monitoring *what kind* of failure it was without parsing that line.
"""


class ProbeFailure(Exception):
    """The session cannot go on: network, TLS or protocol trouble (exit 3)."""

    exit_status = 3


class UsageError(ProbeFailure):
    """Bad input from the user; nothing was sent for it (exit 2).

    In an interactive session it is reported and the session continues.
    """

    exit_status = 2


class UnexpectedReply(ProbeFailure):
    """A reply did not match what the script expected (exit 1)."""

    exit_status = 1
