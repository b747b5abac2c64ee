"""What the text of a message contains: visible words, links, HTML tricks. Computed once per
message from the MIME view and shared by the rules and the Bayes tokenizer.

Regular expressions, not an HTML parser: spam HTML is deliberately broken,
and a regex pass over a few kilobytes costs far less than building a tree.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from functools import cached_property
from urllib.parse import urlsplit

from sealgate.spam.mime import MailView

# Every pattern is bounded or stops at the next "<", so hostile markup (thousands of unclosed
# tags) costs linear time, not quadratic.
_SCRIPT_STYLE = re.compile(r"<(script|style)\b.*?(?:</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_TAG = re.compile(r"<[^<>]*>")
_HREF = re.compile(r"""<a\b[^<>]{0,500}?\bhref\s*=\s*["']?([^"'\s<>]+)[^<>]{0,500}>(.{0,300}?)</a\s*>""",
                   re.IGNORECASE | re.DOTALL)
_HIDDEN = re.compile(r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*[01](px|pt)?\b"
                     r"|<font\b[^<>]{0,200}\bsize\s*=\s*[\"']?0[\"'\s>]")  # on lower-case markup
_URL = re.compile(r"\b(?:https?://|www\.)[^\s<>\"'()\[\]{}]+", re.IGNORECASE)
# Link text that is itself an address (scheme or www. first): "Example.com news" is a brand.
_HOST_IN_TEXT = re.compile(r"^(?:https?://(?:www\.)?|www\.)([a-z0-9.-]+\.[a-z]{2,})(?:[/:?#]\S*)?$", re.IGNORECASE)
_IP_HOST = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$|^\[?[0-9a-f:]+:[0-9a-f:]*\]?$", re.IGNORECASE)
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
PUNCTUATION = "\"'`.,;:!?()[]{}<>*=_-|/\\~#"  # stripped from both ends of a word


@dataclass
class Content:
    plain_text: str = ""  # every text/plain reading, joined
    html_text: str = ""  # visible text of every text/html reading, joined
    html_parts: int = 0
    plain_parts: int = 0
    urls: list[str] = field(default_factory=list)
    url_hosts: list[str] = field(default_factory=list)
    images: int = 0
    hidden_html: bool = False
    link_mismatch: bool = False  # link text names one domain, the link goes to another
    gtube: bool = False
    text: str = ""  # plain_text and html_text joined: what the body rules read
    lower: str = ""  # `text` in lower case, computed once for the phrase rules and the tokenizer

    @cached_property
    def words(self) -> frozenset[str]:
        """The text's distinct words, split once per message for both the Bayes tokens and the
        phrase rules' quick test."""
        return frozenset(distinct_words(self.lower))


def distinct_words(lower: str) -> set[str]:
    """The distinct words of a lower-case text, punctuation stripped from their ends."""
    return {raw.strip(PUNCTUATION) for raw in set(lower.split())}


def host_of(url: str) -> str:
    """The lower-case host of a URL, or "" when it has none or will not parse."""
    if url.lower().startswith("www."):
        url = "http://" + url
    try:
        return (urlsplit(url).hostname or "").rstrip(".")
    except ValueError:
        return ""


def is_ip_host(host: str) -> bool:
    return bool(_IP_HOST.match(host))


def visible_html(markup: str) -> str:
    text = _TAG.sub(" ", _COMMENT.sub(" ", _SCRIPT_STYLE.sub(" ", markup)))
    return html.unescape(text)


def _registered_part(host: str) -> str:
    """The last two labels: enough to tell "paypal.com" from "evil.example" in a link check."""
    return ".".join(host.split(".")[-2:])


def _mismatched(href: str, anchor: str) -> bool:
    shown = _HOST_IN_TEXT.match(visible_html(anchor).strip())
    target = host_of(href)
    return bool(shown and target and _registered_part(shown.group(1).lower()) != _registered_part(target))


def _hidden(lower_markup: str) -> bool:
    if "display" not in lower_markup and "visibility" not in lower_markup \
            and "size" not in lower_markup:
        return False  # the cheap test first: most HTML has none of these words
    return bool(_HIDDEN.search(lower_markup))


def analyse(view: MailView) -> Content:
    content = Content()
    plain: list[str] = []
    visible: list[str] = []
    for part in view.texts:
        if part.subtype == "html":
            content.html_parts += 1
            markup = part.text
            lower = markup.lower()
            content.images += lower.count("<img")
            content.hidden_html = content.hidden_html or _hidden(lower)
            for href, anchor in _HREF.findall(markup):
                content.urls.append(html.unescape(href))
                if not content.link_mismatch and _mismatched(html.unescape(href), anchor):
                    content.link_mismatch = True
            visible.append(visible_html(markup))
        else:
            content.plain_parts += 1
            plain.append(part.text)
    content.plain_text = "\n".join(plain)
    content.html_text = "\n".join(visible)
    content.text = content.plain_text + "\n" + content.html_text
    content.lower = content.text.lower()
    if "http" in content.lower or "www." in content.lower:
        content.urls += _URL.findall(content.text)
    content.url_hosts = [h for h in (host_of(u) for u in content.urls) if h]
    content.gtube = GTUBE in content.text or any(GTUBE in p.text for p in view.texts)
    return content
