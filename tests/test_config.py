"""The config file: defaults, clear refusals, and the docs reference generated from the schema."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sealgate.config import ConfigError, load, load_text
from sealgate.config.render import reference_markdown
from sealgate.config.schema import OPTIONS

ROOT = Path(__file__).resolve().parents[1]


def sealgate(*args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "sealgate", *args], input=stdin,
                          capture_output=True, timeout=60)


def test_empty_file_gives_every_default() -> None:
    config = load_text("", "empty.conf")
    assert config.milter.socket == "unix:/run/sealgate/milter.sock"
    assert config.verify.arc is False
    assert config.verify.dmarc_reject_action == "reject"
    assert config.verify.authserv_id  # filled with the host name


@pytest.mark.parametrize("text, expected", [
    ("[milter]\nbogus = 1\n", "bad.conf: [milter] unknown key 'bogus'"),
    ("[nosuch]\n", "bad.conf: unknown section [nosuch]"),
    ("[verify]\ndkim = \"yes\"\n", "bad.conf: [verify] dkim = 'yes': expected true or false"),
    ("[milter]\ntimeout = \"300\"\n", "[milter] timeout = '300': expected an integer"),
    ("[milter]\ntimeout = 0\n", "[milter] timeout = 0: expected a number greater than 0"),
    ("[milter]\nsocket = \"tcp:25\"\n", "expected unix:/path/to/socket or inet:PORT@HOST"),
    ("[milter]\ninternal_hosts = [\"10.0.0.0/33\"]\n", "bad entry '10.0.0.0/33'"),
    ("[verify]\ndmarc_reject_action = \"bounce\"\n",
     "expected one of 'reject', 'quarantine', 'record'"),
    ("[milter\n", "bad.conf: not valid TOML"),
])
def test_bad_values_are_refused_naming_file_key_and_expectation(text: str, expected: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_text(text, "bad.conf")
    assert expected in str(caught.value)


def test_all_problems_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_text("[milter]\na = 1\nb = 2\n", "x.conf")
    assert str(caught.value).count("unknown key") == 2


def test_missing_explicit_file_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load(tmp_path / "nope.conf")


def test_config_check_command(tmp_path: Path) -> None:
    good = tmp_path / "good.conf"
    good.write_text('[verify]\nauthserv_id = "mx.example.org"\n')
    done = sealgate("config", "check", "--config", str(good))
    assert done.returncode == 0 and b"OK" in done.stdout
    bad = tmp_path / "bad.conf"
    bad.write_text("[verify]\nspf = 1\n")
    done = sealgate("config", "check", "--config", str(bad))
    assert done.returncode == 2
    assert f"{bad}: [verify] spf = 1: expected true or false".encode() in done.stderr
    assert b"Traceback" not in done.stderr


def test_config_show_prints_effective_values_that_load_back(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text('[dns]\ntimeout = 2\n')
    done = sealgate("config", "show", "--config", str(conf))
    assert done.returncode == 0
    shown = load_text(done.stdout.decode(), "shown")
    assert shown.dns.timeout == 2.0
    assert shown.values == load(conf).values
    for option in OPTIONS:
        assert f"\n{option.name} = ".encode() in done.stdout


def test_docs_reference_is_generated_from_the_schema() -> None:
    assert (ROOT / "docs" / "config.md").read_text() == reference_markdown(), \
        "docs/config.md is stale: run `sealgate config reference > docs/config.md`"


def test_bad_zone_file_is_a_config_error(tmp_path: Path) -> None:
    conf = tmp_path / "c.conf"
    conf.write_text(f'[dns]\nbackend = "zone"\nzone_files = ["{tmp_path}/missing.zone"]\n'
                    f'[milter]\nsocket = "unix:{tmp_path}/s.sock"\n')
    done = sealgate("milter", "--config", str(conf))
    assert done.returncode == 2
    assert b"[dns] zone_files: zone file" in done.stderr and b"missing.zone" in done.stderr
