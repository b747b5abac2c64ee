"""Logging to stderr or syslog, one line per event, as the [log] section says."""

from __future__ import annotations

import logging
import logging.handlers
import sys
from typing import Any


def configure_logging(log_config: Any) -> None:
    # The logging HOWTO's optimizations: no lines show the caller, thread or process-pool
    # name, so none is looked up (the caller costs a stack walk per line).
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    root = logging.getLogger("sealgate")
    for old in list(root.handlers):
        root.removeHandler(old)
    handler: logging.Handler
    if log_config.target == "syslog":
        handler = logging.handlers.SysLogHandler(
            address="/dev/log", facility=log_config.syslog_facility)
        handler.setFormatter(logging.Formatter("sealgate[%(process)d]: %(message)s"))
    else:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s sealgate[%(process)d] %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(log_config.level.upper())
    root.propagate = False
