"""Fetching another domain's bundle: HTTPS (plain HTTP only to loopback, for tests), bounded in size and time."""

from __future__ import annotations

import ipaddress
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from sealgate.keystore.bundle import BundleRefused


class FetchFailed(Exception):
    """The bundle could not be fetched now (network, server error): a temporary failure."""


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """The URL came from the domain's own record; a redirect could lead anywhere, even to plain HTTP."""

    def redirect_request(self, *args: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(_NoRedirects)


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> None:
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname and _loopback(parts.hostname):
        return
    raise BundleRefused(f"bundle URL {url!r}: expected https:// (plain http only to loopback)")


def fetch(url: str, timeout: float, max_bytes: int) -> bytes:
    check_url(url)
    request = urllib.request.Request(url, headers={"Accept": "application/json",
                                                   "User-Agent": "sealgate-keystore"})
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            body: bytes = response.read(max_bytes + 1)
    except urllib.error.HTTPError as exc:
        raise FetchFailed(f"GET {url}: HTTP {exc.code} {exc.reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise FetchFailed(f"GET {url}: {getattr(exc, 'reason', exc)}") from None
    if len(body) > max_bytes:
        raise BundleRefused(f"bundle at {url} is larger than the {max_bytes}-byte limit "
                            f"([keystore] max_bundle_size)")
    return body
