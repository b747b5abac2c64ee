"""KeystoreClient: what the milter and the CLI use to ask the keystore for operations.

One client is shared by all threads of a process. It keeps up to `max_idle`
connections open and lends each call one of them, so a busy milter does
not pay a connect per operation and no two threads share a socket at once.
A connection found dead (the service restarted) is replaced once; a timeout
is never retried: a slow keystore is reported, not hammered.
"""

from __future__ import annotations

import json
import socket
import struct
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from sealgate.keystore.encoding import b64, unb64
from sealgate.keystore.errors import KeystoreError, KeystoreUnavailable
from sealgate.keystore.protocol import (
    MAX_BATCH,
    ConnectionClosed,
    FrameTooLarge,
    read_frame,
    write_frame,
)

__all__ = ["BundleAnswer", "KeystoreClient", "KeystoreError", "KeystoreUnavailable",
           "MailboxKeyInfo", "PublicKey", "TransportKeyInfo"]
_RESPONSE_LIMIT = 16 << 20


@dataclass(frozen=True)
class PublicKey:
    key_id: str
    public: bytes


@dataclass(frozen=True)
class TransportKeyInfo:
    key_id: str
    public: bytes  # X25519: wrap content keys to it (sealgate.keystore.wrapping.wrap)
    valid_from: str
    valid_until: str


@dataclass(frozen=True)
class BundleAnswer:
    """A domain's verified keys, or why there are none.

    status: "found"; "none" (the domain publishes no sealgate record);
    "temporary" (DNS or fetch failed, try later: tempfail); "refused" (a
    record exists but it or its bundle failed a check: `reason` says which).
    """

    status: str
    domain: str
    reason: str
    authenticated: bool         # the DNS answer was DNSSEC-validated (AD bit)
    encryption_required: bool   # the domain's record says e=req
    tls_required: bool          # the domain's record says t=req
    hash: str | None = None
    identity: PublicKey | None = None          # Ed25519: verifies the domain's envelope signatures
    transport: TransportKeyInfo | None = None  # the key to encrypt to now
    document: dict[str, Any] | None = None     # the whole verified bundle (docs/bundle.md)

    @property
    def found(self) -> bool:
        return self.status == "found"

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> "BundleAnswer":
        identity = wire.get("identity")
        transport = wire.get("transport")
        return cls(wire["status"], wire["domain"], wire.get("reason", ""),
                   bool(wire.get("authenticated")), bool(wire.get("encryption_required")),
                   bool(wire.get("tls_required")), wire.get("hash"),
                   PublicKey(identity["key_id"], unb64(identity["public"], "identity"))
                   if identity else None,
                   TransportKeyInfo(transport["key_id"], unb64(transport["public"], "transport"),
                                    transport["valid_from"], transport["valid_until"])
                   if transport else None,
                   wire.get("document"))


@dataclass(frozen=True)
class MailboxKeyInfo:
    key_id: str
    public: bytes  # X25519
    purpose: str   # mailbox | group | recovery
    owner: str     # the address, the group name, or "*" for a corporate domain key


class KeystoreClient:
    """Thread-safe; every method raises KeystoreUnavailable (no answer) or KeystoreError (refused)."""

    def __init__(self, socket_path: str | Path, timeout: float = 2.0, max_idle: int = 16) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout
        self._max_idle = max_idle
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except FileNotFoundError:
            sock.close()
            raise KeystoreUnavailable(f"keystore socket {self.socket_path} does not exist; "
                                      f"is `sealgate keystore serve` running?") from None
        except PermissionError:
            sock.close()
            raise KeystoreUnavailable(f"permission denied on keystore socket {self.socket_path}: "
                                      f"this user must be in the socket's group (sealgate)") from None
        except OSError as exc:
            sock.close()
            raise KeystoreUnavailable(f"cannot connect to keystore socket {self.socket_path}: "
                                      f"{exc.strerror or exc}") from None
        # The kernel enforces the timeout (SO_RCVTIMEO): a blocking socket costs one system call
        # per send or receive, where Python's own timeout adds a poll() before each.
        sock.settimeout(None)
        seconds = int(self.timeout)
        timeval = struct.pack("ll", seconds, int((self.timeout - seconds) * 1e6))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, timeval)
        return sock

    @staticmethod
    def _exchange(sock: socket.socket, request: dict[str, Any]) -> Any:
        write_frame(sock, request)
        return json.loads(read_frame(sock, _RESPONSE_LIMIT))

    def call(self, op: str, **args: Any) -> Any:
        """One operation; the result object of the answer."""
        request = {"op": op, **args}
        with self._lock:
            sock = self._idle.pop() if self._idle else None
        for attempt in range(2):
            reused = sock is not None
            if sock is None:
                sock = self._connect()
            try:
                response = self._exchange(sock, request)
            except (BlockingIOError, TimeoutError):  # SO_RCVTIMEO/SO_SNDTIMEO expired
                sock.close()
                raise KeystoreUnavailable(f"keystore at {self.socket_path} did not answer {op!r} "
                                          f"within {self.timeout} s") from None
            except (ConnectionClosed, OSError, ValueError, FrameTooLarge) as exc:
                sock.close()
                sock = None
                if reused and attempt == 0 and isinstance(exc, (ConnectionClosed, OSError)):
                    continue  # an idle connection the service closed: try a fresh one once
                raise KeystoreUnavailable(f"keystore at {self.socket_path} failed during {op!r}: "
                                          f"{exc}") from None
            break
        assert sock is not None
        if not isinstance(response, dict) or "ok" not in response:
            sock.close()
            raise KeystoreUnavailable(f"keystore at {self.socket_path} sent a malformed answer to {op!r}")
        if response.get("error") == "too-large":
            sock.close()  # the service closes the connection after refusing an oversized request
        else:
            with self._lock:
                if len(self._idle) < self._max_idle:
                    self._idle.append(sock)
                    sock = None
            if sock is not None:
                sock.close()
        return _result(response, op)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    def __enter__(self) -> "KeystoreClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # The operations (docs/keystore.md).

    def ping(self) -> dict[str, Any]:
        result: dict[str, Any] = self.call("ping")
        return result

    def unwrap(self, key_id: str, ephemeral_public: bytes, wrapped: bytes, context: bytes) -> bytes:
        """Open a slot wrapped (sealgate.keystore.wrapping.wrap) to our transport, mailbox or group key."""
        request = _unwrap_request(key_id, ephemeral_public, wrapped, context)
        return _content_key(self.call(**request))

    def unwrap_with_mailbox_keys(self, key_id: str, ephemeral_public: bytes, wrapped: bytes,
                                 context: bytes, addresses: Sequence[str],
                                 ) -> tuple[bytes, dict[str, list[MailboxKeyInfo] | KeystoreError]]:
        """`unwrap` and the `mailbox_keys` of the addresses in one request (`batch`): an incoming
        envelope's content key and the keys its recipients' copy will be sealed to. Raises as
        `unwrap` does; a refused `mailbox_keys` is returned as its KeystoreError. Addresses past
        what one batch holds are left out, and all of them when the keystore refuses the batch
        as a whole (larger than its max_request; a keystore that predates `batch`, restart
        pending after an upgrade): the slot is then opened alone, and the caller asks for the
        mailbox keys on its own."""
        addresses = addresses[:MAX_BATCH - 1]
        requests = [_unwrap_request(key_id, ephemeral_public, wrapped, context)]
        requests += [{"op": "mailbox_keys", "address": address} for address in addresses]
        try:
            answers = self.call("batch", requests=requests)["answers"]
        except KeystoreError:  # the entries' own refusals come as answers, not here
            return self.unwrap(key_id, ephemeral_public, wrapped, context), {}
        if not isinstance(answers, list) or len(answers) != len(requests):
            raise KeystoreUnavailable(f"keystore at {self.socket_path} sent a malformed answer to "
                                      f"'batch'")
        content_key = _content_key(_result(answers[0], "unwrap"))
        keys: dict[str, list[MailboxKeyInfo] | KeystoreError] = {}
        for address, answer in zip(addresses, answers[1:]):
            try:
                keys[address] = _mailbox_keys(_result(answer, "mailbox_keys"))
            except KeystoreError as exc:
                keys[address] = exc
        return content_key, keys

    def sign(self, domain: str, data: bytes) -> bytes:
        """Detached Ed25519 signature by the domain's identity key."""
        return unb64(self.call("sign", domain=domain, data=b64(data))["signature"], "signature")

    def dkim_selector(self, domain: str, algorithm: str) -> str:
        """The selector dkim_sign uses now, to name in the DKIM-Signature header before signing."""
        selector: str = self.call("dkim_selector", domain=domain, algorithm=algorithm)["selector"]
        return selector

    def dkim_sign(self, domain: str, algorithm: str, digest: bytes) -> tuple[str, bytes]:
        """(selector, signature) over a SHA-256 digest; algorithm rsa-sha256 or ed25519-sha256."""
        result = self.call("dkim_sign", domain=domain, algorithm=algorithm, digest=b64(digest))
        return result["selector"], unb64(result["signature"], "signature")

    def dkim_sign_many(self, domain: str,
                       digests: Sequence[tuple[str, str, bytes]]) -> list[bytes]:
        """Signatures over (algorithm, selector, digest) triples, one per algorithm, in one
        request and in that order; the whole request is refused (`unusable-key`, `not-found`)
        when a selector no longer signs for the domain (rotated, revoked)."""
        result = self.call("dkim_sign_many", domain=domain, signatures=[
            {"algorithm": algorithm, "selector": selector, "digest": b64(digest)}
            for algorithm, selector, digest in digests])
        return [unb64(signature, "signature") for signature in result["signatures"]]

    def bundle(self, domain: str, with_document: bool = False) -> BundleAnswer:
        """Another domain's verified keys, found by discovery and cached."""
        return BundleAnswer.from_wire(self.call("bundle", domain=domain,
                                                with_document=with_document))

    def local_bundle(self, domain: str, with_document: bool = False) -> BundleAnswer:
        """One of our own domains' current bundle, as others see it."""
        return BundleAnswer.from_wire(self.call("local_bundle", domain=domain,
                                                with_document=with_document))

    def mailbox_keys(self, address: str) -> list[MailboxKeyInfo]:
        """The keys to seal mail for `address` to, by its domain's policy; empty when none."""
        return _mailbox_keys(self.call("mailbox_keys", address=address))


def _result(response: Any, op: str) -> Any:
    """The result of one answer; a refusal raised as KeystoreError."""
    if not isinstance(response, dict) or "ok" not in response:
        raise KeystoreUnavailable(f"keystore sent a malformed answer to {op!r}")
    if not response["ok"]:
        raise KeystoreError(str(response.get("error")), str(response.get("message")))
    return response["result"]


def _unwrap_request(key_id: str, ephemeral_public: bytes, wrapped: bytes,
                    context: bytes) -> dict[str, Any]:
    return {"op": "unwrap", "key_id": key_id, "ephemeral_public": b64(ephemeral_public),
            "wrapped": b64(wrapped), "context": b64(context)}


def _content_key(result: dict[str, Any]) -> bytes:
    return unb64(result["content_key"], "content_key")


def _mailbox_keys(result: dict[str, Any]) -> list[MailboxKeyInfo]:
    return [MailboxKeyInfo(k["key_id"], unb64(k["public"], "public"), k["purpose"], k["owner"])
            for k in result["keys"]]
