"""The words the Bayes classifier counts, in the manner of SpamBayes' tokenizer.

Only headers that describe the message itself are tokenized (Subject, From,
Reply-To, the number of recipients, the mailer, content types, the names of
the sender's headers), never the relay path or what the receiving side
added (Received, Delivered-To, List-*, X-Keywords ...): those describe the
*receiving* site, so a model that learned them would learn where a training
corpus was collected, not what spam looks like, and its measured accuracy
would be a lie. X-Spam-*
headers are never read: they are what an earlier filter (or a spammer)
claimed.
"""

from __future__ import annotations

import re

from sealgate.spam.content import Content, distinct_words
from sealgate.spam.mime import MailView, decode_words

# Added by relays, mailing lists, the receiving site's delivery agent or the reader's mail
# client (X-Keywords, X-Status, Delivery-Date: in the sample corpus they tell which mailbox a
# message was collected from), not by the sender.
PATH_HEADERS = ("received", "return-path", "delivered-to", "x-original-to", "list-", "x-beenthere",
                "x-mailman", "precedence", "errors-to", "sender", "x-loop", "x-spam", "x-virus",
                "authentication-results", "arc-", "x-authentication-warning", "mailing-list",
                "x-original", "x-mime-autoconverted", "x-egroups", "x-yahoo", "x-mailer-version",
                "x-keywords", "x-status", "status", "delivery-date", "x-uid", "content-length",
                "lines", "x-evolution", "x-ms-has-attach", "x-ms-tnef", "x-gm", "x-pop3",
                "x-envelope-", "envelope-to", "x-rcpt-to", "x-mdrcpt", "x-mdaemon", "x-return-path",
                "x-imap", "x-mozilla-status", "x-account-key", "x-sieve", "x-virtual")
MIN_LEN = 3
MAX_LEN = 12
_ADDRESS = re.compile(r"([^\s<>()\[\],;:\"@]+)@([A-Za-z0-9.-]+)")
_ADDRESS_OR_BRACKETS = re.compile(r"<[^<>]*>|\S+@\S+|[()]")
_DIGITS = re.compile(r"\d")
_SUBJECT_WORD = re.compile(r"[\w$%!]+|[^\w\s]{2,}")


def words(text: str, prefix: str = "") -> set[str]:
    """Lower-case words of 3 to 12 characters of a header value."""
    return word_tokens(distinct_words(text.lower()), prefix)


def word_tokens(distinct: set[str] | frozenset[str], prefix: str = "") -> set[str]:
    """Words of 3 to 12 characters; longer ones become a length class, as in SpamBayes: their
    spelling rarely repeats, their presence does."""
    # Set comprehensions over each distinct word once: this runs on every message's whole text.
    found = {prefix + word for word in distinct if MIN_LEN <= len(word) <= MAX_LEN}
    found.update(f"{prefix}skip:{word[0]} {len(word) // 10 * 10}" for word in distinct
                 if len(word) > MAX_LEN)
    return found


def address_tokens(name: str, values: list[str]) -> set[str]:
    """Domains, digit-heavy local parts and display-name words of an address header. A regex,
    not email.utils: tokens need no exact parse, and this runs on every message."""
    found: set[str] = set()
    for value in values:
        text = decode_words(value)
        addresses = _ADDRESS.findall(text)
        for local, domain in addresses:
            found.add(f"{name}:domain:{domain.lower().rstrip('.>')}")
            found.add(f"{name}:local-digits:{len(_DIGITS.findall(local)) > 3}")
        display = _ADDRESS_OR_BRACKETS.sub(" ", text)
        found |= words(display, f"{name}:name:")
        if addresses and not display.strip(' "\''):
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
    found |= {"header:" + n for n, _ in view.headers if not n.startswith(PATH_HEADERS)}
    for name, value in view.headers:
        if name.startswith(("content-", "mime-version")):
            found.add(f"{name}:{value.split(';', 1)[0].strip().lower()[:40]}")
    return found


def message_tokens(view: MailView, content: Content) -> set[str]:
    found = header_tokens(view)
    found |= word_tokens(content.words)
    for host in content.url_hosts:
        labels = host.split(".")
        found |= {"url:" + ".".join(labels[i:]) for i in range(max(len(labels) - 3, 0), len(labels) - 1)}
    for attachment in view.attachments:
        found.add(f"attachment:{attachment.content_type}")
        found |= {f"attachment-ext:{f.rpartition('.')[2].lower()[:10]}" for f in attachment.filenames
                  if "." in f}
    found |= {f"anomaly:{a}" for a in view.anomalies}
    found.add(f"url-hosts:{min(len(set(content.url_hosts)), 10)}")
    found.add(f"html-parts:{min(content.html_parts, 3)} plain-parts:{min(content.plain_parts, 3)}")
    return found
