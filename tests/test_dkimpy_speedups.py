"""The replacements for dkimpy's hot spots must answer exactly what dkimpy's own code answers."""

from __future__ import annotations

import random
import re

import dkim
import pytest

from sealgate.auth import dkimpy_speedups

dkimpy_speedups.install()  # what importing the DKIM stage does

# dkimpy's own pattern, as its source spells it.
DKIMPY_BTAG = re.compile(rb"([;\s]b" + dkim.FWS + rb"=)(?:" + dkim.FWS + rb"[a-zA-Z0-9+/=])*(?:\r?\n\Z)?")
PIECES = [b"b", b"=", b"A", b"z", b"9", b"+", b"/", b" ", b"\t", b"\r\n", b"\n", b"\r", b";", b"x",
          b"-", b"b=", b" b =", b";b=", b"\r\n ", b"bh="]


def test_the_b_tag_pattern_blanks_what_dkimpys_blanks() -> None:
    rnd = random.Random(8463)
    samples = [b"".join(rnd.choice(PIECES) for _ in range(rnd.randint(0, 30))) for _ in range(50000)]
    samples.append(b" v=1; a=rsa-sha256; d=x.test; s=s;\r\n bh=AAAA=;\r\n b=abc/+\r\n def==\r\n")
    for sample in samples:
        assert dkimpy_speedups.RE_BTAG.sub(rb"\1", sample) == DKIMPY_BTAG.sub(rb"\1", sample), sample


def test_parsed_key_records_are_remembered_and_bad_ones_refused_every_time() -> None:
    record = b"v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    first = dkim.evaluate_pk(b"s._domainkey.x.test.", record)
    assert dkim.evaluate_pk(b"s._domainkey.x.test.", record) is first
    assert first[1:3] == (256, b"ed25519")
    for _ in range(2):
        with pytest.raises(dkim.KeyFormatError):
            dkim.evaluate_pk(b"s._domainkey.x.test.", b"v=DKIM1; k=rsa; p=bm90IGEga2V5")


def test_relaxed_header_canonicalization_is_dkimpys() -> None:
    from dkim.canonicalization import compress_whitespace, unfold_header_value
    pieces = [b"a", b"B", b" ", b"  ", b"\t", b"\r\n", b"\n", b"\r", b"\r\n\t", b":", b"\x0b", b"\xff"]
    rnd = random.Random(6376)
    headers = [(b"".join(rnd.choice([b"Sub", b"J", b" ", b"\t"]) for _ in range(rnd.randint(1, 4))),
                b"".join(rnd.choice(pieces) for _ in range(rnd.randint(0, 25))))
               for _ in range(50000)]
    dkimpys = [(name.lower().rstrip(), compress_whitespace(unfold_header_value(value)).strip() + b"\r\n")
               for name, value in headers]
    assert dkim.canonicalization.Relaxed.canonicalize_headers(headers) == dkimpys
