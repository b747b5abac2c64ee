"""``sealgate probe``: the SMTP diagnostic client mail admins use instead of telnet.

Whole-line sends, every reply with its timing, TLS and certificate details,
AUTH without hand-made base64, macros for the common commands, and a
scripted mode with expected replies for monitoring. Stdlib only.
"""

from .cli import main

__all__ = ["main"]
