"""Real mail servers on loopback for tests, the demo and benchmarks.

`PrivatePostfix` runs a second Postfix instance (as root) with all its
state in a work directory; `SmtpSink` runs Postfix's smtp-sink as the next
hop for a relay-mode instance. Nothing here is imported by the milter.
"""

from .ports import free_port, port_accepts, smtp_greets, wait_until
from .postfix import (
    Delivery,
    PrivatePostfix,
    SinkMessage,
    SmtpSink,
    TestbedError,
    make_traversable,
    parse_sink_dump,
    postfix_available,
    require_root,
)

__all__ = [
    "Delivery",
    "PrivatePostfix",
    "SinkMessage",
    "SmtpSink",
    "TestbedError",
    "free_port",
    "make_traversable",
    "parse_sink_dump",
    "port_accepts",
    "postfix_available",
    "require_root",
    "smtp_greets",
    "wait_until",
]
