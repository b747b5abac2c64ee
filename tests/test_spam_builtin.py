"""The builtin scorer: MIME walk of hostile and ambiguous mail, rules, Bayes, and its cost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from conftest import CORPORA

from sealgate.pipeline import AuthResult
from sealgate.spam import bayes, builtin
from sealgate.spam.mime import walk_message
from sealgate.spam.rules import BAYES_BANDS, RULES
from sealgate.spam.train import train

MIME = CORPORA / "mime"
TESTMSGS = MIME / "mime-tools-testmsgs"
SAMPLES = CORPORA / "spam" / "spamassassin-deb-samples"
NOW = 1_750_000_000.0


def score(raw: bytes, results: list[AuthResult] | None = None, model: str = "",
          min_trained: int = 1) -> builtin.ScanResult:
    return builtin.scan(raw, results or [], NOW, model, min_trained)


def corpus_messages() -> list[Path]:
    skip = (".ref", ".json", ".tsv", ".yml", ".yaml")
    return sorted(p for p in MIME.rglob("*") if p.is_file() and not p.name.endswith(skip)
                  and p.name not in ("LICENSE", "COPYING", "LICENSE-PSF.txt"))


def test_every_corpus_message_scores_without_exception() -> None:
    paths = corpus_messages()
    assert len(paths) > 150
    for path in paths:
        result = score(path.read_bytes())
        assert isinstance(result.score, float), path
        assert "MIME_PARSE_ERROR" not in walk_message(path.read_bytes()).anomalies, path


def test_gtube_is_spam_whatever_else_the_message_says() -> None:
    gtube = (SAMPLES / "sample-spam.txt").read_bytes()
    assert score(gtube).score >= 1000
    results = [AuthResult("dmarc", "pass", [("header", "from", "example.org")])]
    assert score(gtube, results).score >= 999


def test_known_ham_sample_scores_low() -> None:
    assert score((SAMPLES / "sample-nonspam.txt").read_bytes()).score < 2


@pytest.mark.parametrize("name, rule, hidden", [
    ("double-content-type.msg", "MIME_DOUBLE_CONTENT_TYPE", "gotcha"),
    ("double-boundary.msg", "MIME_DOUBLE_BOUNDARY", "--bar"),
    ("double-content-transfer-encoding.msg", "MIME_DOUBLE_ENCODING", ""),
    ("double-content-disposition.msg", "MIME_DOUBLE_FILENAME", ""),
    ("double-content-disposition-param.msg", "MIME_DOUBLE_PARAMETER", ""),
    ("hdr-fakeout.msg", "HEADER_GARBAGE", "not properly terminated"),
])
def test_ambiguous_mime_is_flagged_and_every_reading_is_scanned(name: str, rule: str,
                                                               hidden: str) -> None:
    raw = (TESTMSGS / name).read_bytes()
    assert rule in score(raw).rule_names()
    if hidden:
        assert any(hidden in part.text for part in walk_message(raw).texts)


def test_double_content_type_sees_the_attachment_and_the_text() -> None:
    view = walk_message((TESTMSGS / "double-content-type.msg").read_bytes())
    types = {a.content_type for a in view.attachments}
    assert "application/octet-stream" in types
    assert any(t.text == "gotcha\n" for t in view.texts)  # the base64 part read as text/plain
    assert "EXECUTABLE_ATTACHMENT" in score((TESTMSGS / "double-content-type.msg").read_bytes()).rule_names()


def test_double_boundary_reads_both_structures() -> None:
    view = walk_message((TESTMSGS / "double-boundary.msg").read_bytes())
    assert any("wookie.exe" in a.filenames for a in view.attachments)  # boundary "bar"
    assert any(t.text.startswith("Whatever") and "--bar" in t.text for t in view.texts)  # "foo"


def message(body: str, headers: str = "", content_type: str = "text/plain") -> bytes:
    return (f"From: A <a@example.org>\r\nTo: b@example.net\r\nSubject: hello\r\n"
            f"Date: Mon, 2 Jun 2025 10:00:00 +0000\r\nMessage-ID: <1@example.org>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: {content_type}\r\n{headers}\r\n{body}").encode()


def test_html_only_numeric_links_and_mismatched_link_text() -> None:
    html = ('<html><body><p>Your account</p><a href="http://192.0.2.7/login">'
            'https://www.bank.example/login</a></body></html>')
    names = score(message(html, content_type="text/html")).rule_names()
    assert {"HTML_ONLY", "URL_NUMERIC_HOST", "LINK_TEXT_MISMATCH"} <= set(names)


def test_links_to_many_hosts() -> None:
    body = " ".join(f"http://host{i}.example/" for i in range(25))
    assert "URL_MANY_HOSTS" in score(message(body)).rule_names()
    assert "URL_MANY_HOSTS" not in score(message("see http://one.example/")).rule_names()


def test_authentication_results_are_rules() -> None:
    results = [AuthResult("spf", "fail", [("smtp", "mailfrom", "example.org")]),
               AuthResult("dmarc", "fail", [("header", "from", "example.org"),
                                            ("policy", "dmarc", "reject")])]
    names = score(message("hello"), results).rule_names()
    assert "SPF_FAIL" in names and "DMARC_FAIL" in names
    assert "DMARC_PASS" in score(message("hello"), [AuthResult("dmarc", "pass")]).rule_names()


def test_missing_headers() -> None:
    names = score(b"Subject: x\r\n\r\nhello\r\n").rule_names()
    assert {"MISSING_FROM", "MISSING_DATE", "MISSING_MESSAGE_ID", "MISSING_TO"} <= set(names)


def test_bayes_learns_and_separates(tmp_path: Path) -> None:
    ham = [message(f"Minutes of the build meeting {i}: the release branch, test failures and "
                   f"the compiler upgrade were discussed.") for i in range(6)]
    spam = [message(f"Cheap replica watches {i}! Best prices, order now and save, limited "
                    f"offer for our valued customers.") for i in range(6)]
    model = str(tmp_path / "bayes.db")
    report = train(model, [("ham", m) for m in ham] + [("spam", m) for m in spam], 1 << 20)
    assert report.totals == (6, 6)
    hammy = score(message("Notes from the build meeting: release branch and compiler."),
                  model=model, min_trained=5)
    spammy = score(message("Replica watches at the best prices, order now!"),
                   model=model, min_trained=5)
    assert hammy.bayes_probability is not None and hammy.bayes_probability < 0.2
    assert spammy.bayes_probability is not None and spammy.bayes_probability > 0.8
    assert spammy.score > hammy.score
    untrained = score(message("Replica watches"), model=model, min_trained=100)
    assert untrained.bayes_probability is None  # below bayes_min_messages: rules only


def test_training_twice_counts_once_and_relabelling_moves(tmp_path: Path) -> None:
    model = str(tmp_path / "bayes.db")
    raw = message("one message")
    assert train(model, [("ham", raw)], 1 << 20).totals == (1, 0)
    assert train(model, [("ham", raw)], 1 << 20).known == 1
    moved = train(model, [("spam", raw)], 1 << 20)
    assert moved.relearned == 1 and moved.totals == (0, 1)


def test_a_corrupt_model_is_logged_and_ignored(tmp_path: Path) -> None:
    model = tmp_path / "bayes.db"
    model.write_bytes(b"not a database at all" * 100)
    assert score(message("hello"), model=str(model)).bayes_probability is None


def test_chi_squared_combining_is_symmetric() -> None:
    assert bayes.combine([0.99] * 20) > 0.99
    assert bayes.combine([0.01] * 20) < 0.01
    assert abs(bayes.combine([0.99, 0.01]) - 0.5) < 1e-9


def hostile_messages() -> list[bytes]:
    deep = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i)
                    for i in range(500))
    doubled = b"".join(b'Content-Type: multipart/mixed; boundary="x%d"; boundary="y%d"\r\n\r\n'
                       b"--x%d\r\n--y%d\r\n" % (i, i, i, i) for i in range(60))
    return [
        b"Content-Type: text/html\r\n\r\n" + b"<a href=x " * 40000,
        b"Content-Type: text/html\r\n\r\n" + b"<" * 300000,
        b"Content-Type: text/html\r\n\r\n" + b"<script>" * 40000,
        b"Subject: x\r\n" + deep,
        b"Subject: x\r\n" + doubled,
        b"Content-Type: text/plain; charset=base64\r\nContent-Transfer-Encoding: base64\r\n\r\n==",
        b"\x00\xff" * 100000,
        b"",
    ]


def test_hostile_input_is_bounded_in_time() -> None:
    for raw in hostile_messages():
        start = time.perf_counter()
        score(raw)
        assert time.perf_counter() - start < 2.0, raw[:60]


def test_every_rule_and_band_is_documented() -> None:
    doc = (Path(__file__).resolve().parents[1] / "docs" / "spam.md").read_text()
    missing = [r.name for r in RULES if f"`{r.name}`" not in doc and r.name not in doc]
    missing += [b.name for b in BAYES_BANDS if f"`{b.name}`" not in doc]
    assert not missing, f"docs/spam.md does not list {missing}"


def test_bayes_bands_are_spamassassins_and_rise_with_the_probability() -> None:
    from sealgate.spam.rules import bayes_band
    assert [bayes_band(p).name for p in (0.0, 0.02, 0.1, 0.3, 0.5, 0.7, 0.9, 0.97, 0.999)] == [
        "BAYES_00", "BAYES_05", "BAYES_20", "BAYES_40", "BAYES_50", "BAYES_60", "BAYES_80",
        "BAYES_95", "BAYES_99"]
    points = [b.score for b in reversed(BAYES_BANDS)]
    assert points == sorted(points)
    assert bayes_band(0.7).score < 5.0 <= bayes_band(0.85).score  # "unsure" alone is not spam


def test_gtube_stays_spam_when_bayes_calls_it_ham(tmp_path: Path) -> None:
    gtube = (SAMPLES / "sample-spam.txt").read_bytes()
    model = str(tmp_path / "bayes.db")
    train(model, [("ham", gtube.replace(b"GTUBE", b"gtube-" + bytes([65 + i]))) for i in range(3)]
          + [("spam", message(f"unrelated offer {i}")) for i in range(3)], 1 << 20)
    result = score(gtube, model=model, min_trained=3)
    assert result.bayes_probability is not None and result.bayes_probability < 0.5
    assert result.score >= 999


def test_retraining_is_seen_by_the_next_scan(tmp_path: Path) -> None:
    """Token counts are remembered between messages, but never across a commit of the model."""
    model = str(tmp_path / "bayes.db")
    hammy = [message(f"Quarterly figures {i} for the zanzibar project review.") for i in range(4)]
    spammy = [message(f"Unrelated cheap offer {i} today.") for i in range(4)]
    train(model, [("ham", m) for m in hammy] + [("spam", m) for m in spammy], 1 << 20)
    probe = message("zanzibar quarterly figures")
    before = score(probe, model=model, min_trained=2).bayes_probability
    assert before is not None and before < 0.2
    relabelled = [message(f"zanzibar quarterly figures, offer {i}") for i in range(30)]
    train(model, [("spam", m) for m in relabelled], 1 << 20)
    after = score(probe, model=model, min_trained=2).bayes_probability
    assert after is not None and after > before + 0.3


def test_a_deleted_or_replaced_model_is_noticed(tmp_path: Path) -> None:
    """The reader holds the model file open between messages: a deleted file must still end
    Bayes scoring, and a new file at the path (a fresh training) must be read."""
    model = tmp_path / "bayes.db"
    hammy = [message(f"Quarterly figures {i} for the zanzibar project review.") for i in range(4)]
    spammy = [message(f"Unrelated cheap offer {i} today.") for i in range(4)]
    train(str(model), [("ham", m) for m in hammy] + [("spam", m) for m in spammy], 1 << 20)
    probe = message("zanzibar quarterly figures")
    assert score(probe, model=str(model), min_trained=2).bayes_probability is not None
    model.unlink()
    assert score(probe, model=str(model), min_trained=2).bayes_probability is None
    train(str(model), [("spam", m) for m in hammy] + [("ham", m) for m in spammy], 1 << 20)
    again = score(probe, model=str(model), min_trained=2).bayes_probability
    assert again is not None and again > 0.8  # the new model's counts, not the old file's


@pytest.mark.parametrize("body, rule, fires", [
    ("Order now, before the offer ends.", "SALES_PRESSURE", True),
    ("The order of the agenda is now fixed.", "SALES_PRESSURE", False),
    ("You will earn $500 a day.", "MONEY_TALK", True),
    ("Please remove me; I wish to be removed from your list.", "REMOVAL_TEXT", True),
    ("Nothing to see here.", "REMOVAL_TEXT", False),
    ("THIS IS BIG NEWS\nACT NOW FOR FREE\nCALL US TODAY OK\nNO RISK AT ALL\nREAD THIS NOW\n" * 4,
     "CAPITAL_LINES", True),
    ("THIS IS BIG NEWS\nACT NOW FOR FREE\n" + "but only two lines shout here.\n" * 10,
     "CAPITAL_LINES", False),
])
def test_body_phrases_and_shouting(body: str, rule: str, fires: bool) -> None:
    assert (rule in score(message(body)).rule_names()) is fires
