#!/usr/bin/env python3
"""Files the package builds from the one config schema (sealgate/config/schema.py).

    generate.py conf   the commented default /etc/sealgate/sealgate.conf
    generate.py man5   the man page sealgate.conf(5), in roff

Run from anywhere: it imports sealgate from the source tree beside this file,
and needs nothing but the standard library (the package build has none of
sealgate's run-time dependencies). `sealgate config show` is not used for the
default file: it prints *effective* values, with this host's name filled in
for [verify] authserv_id, which must not be baked into a package.
"""

from __future__ import annotations

import os
import re
import sys
import textwrap
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sealgate import __version__
from sealgate.config.render import toml_value
from sealgate.config.schema import OPTIONS, SECTIONS

CONF_HEADER = """\
# /etc/sealgate/sealgate.conf: configuration of the sealgate mail filter (TOML).
#
# Every option is listed below, commented out, with its built-in default and
# its meaning. Uncomment a line under its [section] and change the value; an
# option left commented out keeps the default of the installed version.
# `sealgate config check` validates this file, `sealgate config show` prints
# the effective configuration, and sealgate.conf(5) describes every option.
# After a change: `systemctl reload sealgate-milter` (SIGHUP; a new [milter]
# socket needs a restart) and `systemctl restart sealgate-keystore`.
#
# This file is generated from the option schema when the package is built."""


def default_conf() -> str:
    lines = [CONF_HEADER]
    for section in SECTIONS:
        lines += ["", f"[{section}]"]
        for option in (o for o in OPTIONS if o.section == section):
            lines += textwrap.wrap(option.doc, 76, initial_indent="# ", subsequent_indent="# ",
                                   break_on_hyphens=False)
            lines.append(f"#{option.name} = {toml_value(option.default)}")
    return "\n".join(lines) + "\n"


def roff(text: str) -> str:
    """Text for a roff line: backslashes escaped, a leading . or ' kept from being a request,
    and the schema's `code` in bold."""
    text = re.sub(r"`([^`]+)`", r"\\fB\1\\fR", text.replace("\\", "\\e"))
    return "\\&" + text if text.startswith((".", "'")) else text


def man_date() -> str:
    """The build's date (SOURCE_DATE_EPOCH, set by dpkg-buildpackage), for a reproducible page."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    return time.strftime("%Y-%m-%d", time.gmtime(int(epoch))) if epoch else ""


def man5() -> str:
    out = [
        '.\\" Generated from sealgate/config/schema.py by packaging/generate.py; do not edit.',
        f'.TH SEALGATE.CONF 5 "{man_date()}" "sealgate {__version__}" "File Formats"',
        ".SH NAME",
        "sealgate.conf \\- configuration file of the sealgate mail filter",
        ".SH SYNOPSIS",
        ".I /etc/sealgate/sealgate.conf",
        ".SH DESCRIPTION",
        "The",
        ".BR sealgate (8)",
        "milter, keystore and TLS policy daemons and the administration commands read one",
        "TOML file, by default",
        ".IR /etc/sealgate/sealgate.conf ;",
        ".B \\-\\-config",
        ".I FILE",
        "chooses another.",
        "The file holds tables (sections) of",
        ".IB key \" = \" value",
        "lines; strings are quoted, lists are written",
        '.BR "[\\(dqa\\(dq, \\(dqb\\(dq]" .',
        ".PP",
        "Every key is optional: a missing key takes the default shown below.",
        "Unknown sections and keys, wrong types and bad values are refused when a program",
        "starts, each with the file, the key and what was expected.",
        ".B sealgate config check",
        "validates a file,",
        ".B sealgate config show",
        "prints the effective configuration with every value filled in.",
        ".PP",
        "The milter reloads the file on",
        ".B SIGHUP",
        '.RB ( "systemctl reload sealgate\\-milter" );',
        "a bad file is refused and the running configuration kept.",
        "A changed",
        ".B [milter] socket",
        "and every change for the keystore need a restart.",
        ".SH OPTIONS",
        "Each option is shown as",
        ".IR key \" = \" default ,",
        "followed by its type and meaning.",
    ]
    for section in SECTIONS:
        out.append(f".SS [{section}]")
        for option in (o for o in OPTIONS if o.section == section):
            default = roff(toml_value(option.default)).replace('"', "\\(dq")
            out += [".TP", f'.BR "{option.name}" " = {default}"',
                    f"({option.type.__name__}) {roff(option.doc)}"]
    out += [
        ".SH FILES",
        ".TP",
        ".I /etc/sealgate/sealgate.conf",
        "this file",
        ".TP",
        ".I /etc/sealgate/keystore.key",
        "the master key that encrypts every private key in the database",
        "(mode 0600, owned by the user sealgate)",
        ".TP",
        ".I /var/lib/sealgate/keystore.db",
        "the keystore's SQLite database",
        ".TP",
        ".I /run/sealgate/",
        "the milter, keystore and TLS policy sockets",
        ".SH SEE ALSO",
        ".BR sealgate (8),",
        ".BR postconf (5),",
        ".BR systemd.exec (5);",
        ".I /usr/share/doc/sealgate/config.md",
        "(the same reference as a table)",
    ]
    return "\n".join(out) + "\n"


def main(argv: list[str]) -> int:
    outputs = {"conf": default_conf, "man5": man5}
    if len(argv) != 1 or argv[0] not in outputs:
        print(f"usage: {Path(sys.argv[0]).name} {{{','.join(outputs)}}}", file=sys.stderr)
        return 2
    sys.stdout.write(outputs[argv[0]]())
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
