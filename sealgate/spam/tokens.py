"""The words the Bayes classifier counts, in the manner of SpamBayes' tokenizer.

Only headers that describe the message itself are tokenized (Subject, From,
Reply-To, To/Cc shape, the mailer, content types), never the relay path
(Received, Delivered-To, List-*): those name the *receiving* site, so a model
that learned them would learn where a training corpus was collected, not
what spam looks like, and its measured accuracy would be a lie. X-Spam-*
headers are never read: they are what an earlier filter (or a spammer)
claimed.
"""

from __future__ import annotations

import re
from email.utils import getaddresses

from sealgate.spam.content import Content
from sealgate.spam.mime import MailView, decode_words

MIN_LEN = 3
MAX_LEN = 12
_WORD = re.compile(r"\S+")
_STRIP = "\"'`.,;:!?()[]{}<>*=_-|/\\~#"
_SUBJECT_WORD = re.compile(r"[\w$%!]+|[^\w\s]{2,}")


def words(text: str, prefix: str = "") -> set[str]:
    """Lower-case words of 3 to 12 characters; longer ones become a length class, as in
    SpamBayes: their spelling rarely repeats, their presence does."""
    found: set[str] = set()
    for raw in _WORD.findall(text.lower()):
        word = raw.strip(_STRIP)
        if MIN_LEN <= len(word) <= MAX_LEN:
            found.add(prefix + word)
        elif len(word) > MAX_LEN:
            found.add(f"{prefix}skip:{word[0]} {len(word) // 10 * 10}")
    return found


def address_tokens(name: str, values: list[str]) -> set[str]:
    found: set[str] = set()
    try:
        pairs = getaddresses(values)
    except Exception:  # noqa: BLE001 - email.utils has raised on hostile input in the past
        return {f"{name}:unparsable"}
    for display, addr in pairs:
        local, _, domain = addr.lower().rpartition("@")
        if domain:
            found.add(f"{name}:domain:{domain}")
            found.add(f"{name}:local-digits:{sum(c.isdigit() for c in local) > 3}")
        found |= words(decode_words(display), f"{name}:name:")
        if not display:
            found.add(f"{name}:no-display-name")
    return found


def header_tokens(view: MailView) -> set[str]:
    found: set[str] = set()
    subject = decode_words(view.first("subject"))
    found |= {"subject:" + w.lower() for w in _SUBJECT_WORD.findall(subject)}
    if subject and subject.upper() == subject and any(c.isalpha() for c in subject):
        found.add("subject:ALL-CAPS")
    found |= address_tokens("from", view.header("from"))
    found |= address_tokens("reply-to", view.header("reply-to"))
    recipients = sum(v.count("@") for v in view.header("to") + view.header("cc"))
    found.add(f"recipients:{min(recipients, 10)}")
    for name in ("x-mailer", "user-agent"):
        found |= words(view.first(name), f"{name}:")
    for name, value in view.headers:
        if name.startswith(("content-", "mime-version")):
            found.add(f"{name}:{value.split(';', 1)[0].strip().lower()[:40]}")
    return found


def message_tokens(view: MailView, content: Content) -> set[str]:
    found = header_tokens(view)
    found |= words(content.text)
    for host in content.url_hosts:
        labels = host.split(".")
        found |= {"url:" + ".".join(labels[i:]) for i in range(max(len(labels) - 3, 0), len(labels) - 1)}
    for attachment in view.attachments:
        found.add(f"attachment:{attachment.content_type}")
        found |= {f"attachment-ext:{f.rpartition('.')[2].lower()[:10]}" for f in attachment.filenames
                  if "." in f}
    found |= {f"anomaly:{a}" for a in view.anomalies}
    found.add(f"html-parts:{min(content.html_parts, 3)} plain-parts:{min(content.plain_parts, 3)}")
    return found
