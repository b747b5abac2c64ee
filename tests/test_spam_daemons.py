"""The spamd and rspamd backends against the real Debian daemons, started here on loopback."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from conftest import CORPORA

from sealgate import services
from sealgate.config import Config
from sealgate.message import Message
from sealgate.pipeline import Session, Transaction
from sealgate.spam import stage
from sealgate.spam.daemons import RSPAMD, SPAMD, Rspamd, Spamd, missing

SAMPLES = CORPORA / "spam" / "spamassassin-deb-samples"
GTUBE = (SAMPLES / "sample-spam.txt").read_bytes()
HAM = (SAMPLES / "sample-nonspam.txt").read_bytes()


@pytest.fixture(scope="module")
def spamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Spamd, str]]:
    """spamd on TCP and, through a second --listen, on a unix socket."""
    reason = missing(SPAMD, "spamd")
    if reason:
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("spamd")
    workdir.chmod(0o755)
    socket_path = workdir / "spamd.sock"
    with Spamd(workdir, extra=("-i", str(socket_path))) as daemon:
        deadline = time.monotonic() + 10
        while not socket_path.is_socket() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield daemon, f"unix:{socket_path}"


@pytest.fixture(scope="module")
def rspamd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rspamd]:
    reason = missing(RSPAMD, "rspamd")
    if reason:
        pytest.skip(reason)
    with Rspamd(tmp_path_factory.mktemp("rspamd")) as daemon:
        yield daemon


def evaluate(config: Config, raw: bytes, explain: bool = False,
             queue_id: str = "NOQUEUE") -> stage.Outcome:
    msg = Message.from_bytes(raw, "alice@example.org", ["bob@example.net"])
    msg.queue_id = queue_id
    txn = Transaction(Session(client_ip="192.0.2.1", helo="client.example.org",
                              client_name="client.example.org"), msg)
    return stage.evaluate(txn, services.build(config), explain=explain)


@pytest.fixture
def config_for(make_config: Callable[..., Config]) -> Callable[..., Config]:
    def make(**spam: Any) -> Config:
        return make_config(spam=spam, milter={"use_keystore": False})
    return make


def test_spamd_tcp_gtube_is_rejected(spamd: tuple[Spamd, str],
                                     config_for: Callable[..., Config]) -> None:
    outcome = evaluate(config_for(backend="spamd", spamd_address=spamd[0].address), GTUBE)
    assert outcome.result is not None and outcome.result.score >= 1000
    assert "GTUBE" in outcome.result.rule_names()
    assert outcome.verdict is not None and outcome.verdict.action == "reject"


def test_spamd_unix_socket_ham_is_marked(spamd: tuple[Spamd, str],
                                         config_for: Callable[..., Config]) -> None:
    outcome = evaluate(config_for(backend="spamd", spamd_address=spamd[1]), HAM)
    assert outcome.verdict is None
    headers = dict(outcome.headers)
    assert headers["X-Spam-Flag"] == "NO"
    assert "scanner=spamd" in headers["X-Spam-Status"]


def test_spamd_report_gives_points_per_rule(spamd: tuple[Spamd, str],
                                            config_for: Callable[..., Config]) -> None:
    outcome = evaluate(config_for(backend="spamd", spamd_address=spamd[0].address), GTUBE,
                       explain=True)
    assert outcome.result is not None
    gtube = next(h for h in outcome.result.hits if h.name == "GTUBE")
    assert gtube.score == 1000 and "Generic Test" in gtube.description


def test_rspamd_gtube_is_rejected(rspamd: Rspamd, config_for: Callable[..., Config]) -> None:
    outcome = evaluate(config_for(backend="rspamd", rspamd_url=rspamd.url), GTUBE)
    assert outcome.result is not None and outcome.result.score >= 15
    assert "GTUBE" in outcome.result.rule_names()
    assert outcome.verdict is not None and outcome.verdict.action == "reject"


def test_rspamd_ham_is_marked_and_smtp_facts_reach_it(rspamd: Rspamd,
                                                      config_for: Callable[..., Config]) -> None:
    outcome = evaluate(config_for(backend="rspamd", rspamd_url=rspamd.url), HAM,
                       queue_id="4XyzQ1")
    assert outcome.result is not None and outcome.verdict is None
    assert "scanner=rspamd" in dict(outcome.headers)["X-Spam-Status"]
    deadline = time.monotonic() + 5
    while "qid: <4XyzQ1>" not in rspamd.log_text() and time.monotonic() < deadline:
        time.sleep(0.1)
    line = next(line for line in rspamd.log_text().splitlines() if "qid: <4XyzQ1>" in line)
    assert "ip: 192.0.2.1" in line and "from: <alice@example.org>" in line


def test_rspamd_error_answer_is_unavailable_not_a_crash(rspamd: Rspamd,
                                                        config_for: Callable[..., Config]) -> None:
    outcome = evaluate(config_for(backend="rspamd", rspamd_url=rspamd.url + "/nowhere"), HAM)
    assert outcome.result is None and "HTTP 500" in outcome.problem
    assert dict(outcome.headers)["X-Spam-Status"].startswith("Unscanned")
