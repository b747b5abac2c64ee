"""The keystore service as a real process: operations over its socket, bad input, access control,
concurrency, the public directory, and the typed errors its clients see when it is down or slow."""

from __future__ import annotations

import grp
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest

from sealgate.keystore import wrapping
from sealgate.keystore.client import KeystoreClient, KeystoreError, KeystoreUnavailable
from sealgate.testbed.keystore import KeystoreProcess
from sealgate.keystore.protocol import HEADER, FrameBuffer, read_frame
from sealgate.testbed import make_traversable

DOMAIN = "example.test"
SOCKET_GROUP = "daemon"


@pytest.fixture(scope="module")
def keystore(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeystoreProcess]:
    workdir = tmp_path_factory.mktemp("keystore")
    make_traversable(workdir)
    # A group other than root's own: pytest's directories give group root no access, which
    # would hide what the socket's mode does. Debian always has "daemon".
    keystore = KeystoreProcess(workdir / "ks", socket_group=SOCKET_GROUP)
    keystore.run("keys", "init", DOMAIN, "--mailbox-policy", "corporate")
    with keystore:
        yield keystore


@pytest.fixture
def client(keystore: KeystoreProcess) -> Iterator[KeystoreClient]:
    with keystore.client() as client:
        yield client


def test_operations_over_the_socket(client: KeystoreClient) -> None:
    assert client.ping()["domains"] == [DOMAIN]
    own = client.local_bundle(DOMAIN)
    assert own.found and own.transport is not None and own.identity is not None
    content_key = os.urandom(32)
    ephemeral, wrapped = wrapping.wrap(own.transport.public, content_key, b"slot")
    assert client.unwrap(own.transport.key_id, ephemeral, wrapped, b"slot") == content_key
    with pytest.raises(KeystoreError, match="does not open") as caught:
        client.unwrap(own.transport.key_id, ephemeral, wrapped, b"another slot")
    assert caught.value.code == "decrypt-failed"
    assert len(client.sign(DOMAIN, b"data")) == 64
    selector, signature = client.dkim_sign(DOMAIN, "rsa-sha256", hashlib.sha256(b"h").digest())
    assert client.dkim_selector(DOMAIN, "rsa-sha256") == selector
    assert selector.startswith("sg-") and selector.split("-")[2] == "rsa" and len(signature) == 256
    [corporate] = client.mailbox_keys(f"alice@{DOMAIN}")
    assert corporate.purpose == "mailbox" and corporate.owner == "*"
    assert client.unwrap(corporate.key_id, *wrapping.wrap(corporate.public, content_key, b"m"),
                         b"m") == content_key
    assert client.bundle("nowhere.test").status == "none"


@pytest.mark.parametrize("call, code, text", [
    (lambda c: c.sign("nosuch.test", b"x"), "not-found", "no active identity key for domain 'nosuch.test'"),
    (lambda c: c.sign("not a domain", b"x"), "bad-request", "is not a domain name"),
    (lambda c: c.dkim_sign(DOMAIN, "rsa-sha1", bytes(32)), "bad-request", "algorithm 'rsa-sha1'"),
    (lambda c: c.dkim_sign(DOMAIN, "rsa-sha256", b"short"), "bad-request", "field 'digest': expected 32 bytes"),
    (lambda c: c.unwrap("no-such-id", bytes(32), bytes(48), b""), "not-found", "no such key"),
    (lambda c: c.call("unwrap", key_id="x", ephemeral_public="***"), "bad-request",
     "field 'ephemeral_public': not valid base64"),
    (lambda c: c.call("give_me_the_keys"), "bad-request", "op 'give_me_the_keys': expected one of"),
    (lambda c: c.call("batch", requests=[]), "bad-request",
     "field 'requests': expected a list of 1 to 32 requests"),
    (lambda c: c.call("batch", requests=[{"op": "ping"}, {"op": "bundle", "domain": "x.test"}]),
     "bad-request", "requests[1]: op 'bundle' cannot be batched"),
    (lambda c: c.call("batch", requests=[{"op": "batch", "requests": [{"op": "ping"}]}]),
     "bad-request", "requests[0]: op 'batch' cannot be batched"),
])
def test_refusals_are_typed_and_name_the_problem(client: KeystoreClient, call: object, code: str,
                                                 text: str) -> None:
    with pytest.raises(KeystoreError) as caught:
        call(client)  # type: ignore[operator]
    assert caught.value.code == code and text in str(caught.value)


def test_a_batch_answers_each_request_as_alone_and_in_order(client: KeystoreClient) -> None:
    """unwrap with the mailbox keys sealing will need: one request; a refusal stays with its
    own entry (a slot that is not ours is raised, a domain that is not ours is returned)."""
    own = client.local_bundle(DOMAIN)
    assert own.transport is not None
    content_key = os.urandom(32)
    ephemeral, wrapped = wrapping.wrap(own.transport.public, content_key, b"slot")
    opened, keys = client.unwrap_with_mailbox_keys(
        own.transport.key_id, ephemeral, wrapped, b"slot", [f"alice@{DOMAIN}", "bob@elsewhere.test"])
    assert opened == content_key
    assert keys[f"alice@{DOMAIN}"] == client.mailbox_keys(f"alice@{DOMAIN}")
    refused = keys["bob@elsewhere.test"]
    assert isinstance(refused, KeystoreError) and refused.code == "not-found"
    with pytest.raises(KeystoreError) as caught:
        client.unwrap_with_mailbox_keys(own.transport.key_id, ephemeral, wrapped, b"other", [])
    assert caught.value.code == "decrypt-failed"
    answers = client.call("batch", requests=[{"op": "ping"}, {"op": "nope"}, {"op": "ping"}])
    assert [a["ok"] for a in answers["answers"]] == [True, False, True]
    assert "op 'nope'" in answers["answers"][1]["message"]
    many = [f"user{n}@{DOMAIN}" for n in range(40)]
    opened, keys = client.unwrap_with_mailbox_keys(own.transport.key_id, ephemeral, wrapped,
                                                   b"slot", many)
    assert opened == content_key and list(keys) == many[:31]  # the rest: asked on their own
    long = [f"{'x' * 2500}{n}@{DOMAIN}" for n in range(31)]  # a batch over max_request
    assert client.unwrap_with_mailbox_keys(own.transport.key_id, ephemeral, wrapped, b"slot",
                                           long) == (content_key, {})


def test_a_keystore_without_batch_still_opens_the_slot(client: KeystoreClient,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Between an upgrade and the keystore's restart: `batch` is an unknown op there."""
    own = client.local_bundle(DOMAIN)
    assert own.transport is not None
    content_key = os.urandom(32)
    ephemeral, wrapped = wrapping.wrap(own.transport.public, content_key, b"slot")
    call = KeystoreClient.call

    def older(self: KeystoreClient, op: str, **args: object) -> object:
        if op == "batch":
            raise KeystoreError("bad-request", "op 'batch': expected one of dkim_selector, ...")
        return call(self, op, **args)

    monkeypatch.setattr(KeystoreClient, "call", older)
    assert client.unwrap_with_mailbox_keys(own.transport.key_id, ephemeral, wrapped, b"slot",
                                           [f"alice@{DOMAIN}"]) == (content_key, {})


def raw_exchange(sock: socket.socket, payload: bytes) -> dict[str, object]:
    sock.sendall(HEADER.pack(len(payload)) + payload)
    answer: dict[str, object] = json.loads(read_frame(sock, 1 << 20))
    return answer


def test_malformed_requests_get_errors_and_the_service_keeps_running(keystore: KeystoreProcess,
                                                                     client: KeystoreClient) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(keystore.socket_path))
        sock.settimeout(5)
        for payload, message in [(b"{not json", "request is not UTF-8 JSON"),
                                 (b"\xff\xfe", "request is not UTF-8 JSON"),
                                 (b"[1, 2]", "expected a JSON object with an 'op' field"),
                                 (b'{"op": "sign", "domain": "example.test"}', "field 'data'")]:
            answer = raw_exchange(sock, payload)
            assert answer["ok"] is False and message in str(answer["message"]), answer
        assert raw_exchange(sock, b'{"op": "ping"}')["ok"] is True  # same connection still usable

    with socket.socket(socket.AF_UNIX) as sock:  # oversized: refused before it is read, connection closed
        sock.connect(str(keystore.socket_path))
        sock.settimeout(5)
        sock.sendall(HEADER.pack(10_000_000) + b"{")
        answer = json.loads(read_frame(sock, 1 << 20))
        assert answer["error"] == "too-large"
        assert "10000000 bytes exceeds the limit of 65536" in answer["message"]
        assert sock.recv(10) == b""

    with socket.socket(socket.AF_UNIX) as sock:  # half a message, then gone
        sock.connect(str(keystore.socket_path))
        sock.sendall(HEADER.pack(100) + b'{"op"')
    assert client.ping()["domains"] == [DOMAIN]


def test_pipelined_requests_are_answered_in_order(keystore: KeystoreProcess) -> None:
    """Requests sent back to back on one connection, one that may go to the network first."""
    payloads = [b'{"op": "bundle", "domain": "nowhere.test"}', b'{"op": "ping"}', b"{not json",
                b'{"op": "sign", "domain": "example.test", "data": "ZGF0YQ=="}']
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(keystore.socket_path))
        sock.settimeout(10)
        sock.sendall(b"".join(HEADER.pack(len(p)) + p for p in payloads))
        frames, answers = FrameBuffer(1 << 20), []
        while len(answers) < len(payloads):
            payload = frames.next()
            if payload is None:
                frames.feed(sock.recv(1 << 16))
            else:
                answers.append(json.loads(payload))
    assert answers[0]["result"]["status"] == "none"
    assert answers[1]["result"]["domains"] == [DOMAIN]
    assert answers[2]["error"] == "bad-request"
    assert len(answers[3]["result"]["signature"]) == 88  # 64 bytes in base64


CLIENT_AS_OTHER_USER = """
import sys
from sealgate.keystore.client import KeystoreClient, KeystoreUnavailable
try:
    KeystoreClient(sys.argv[1], 2).ping()
    print("connected")
except KeystoreUnavailable as exc:
    print(f"unavailable: {exc}")
"""


def test_socket_is_refused_to_users_outside_its_group(keystore: KeystoreProcess) -> None:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client as another user")
    info = keystore.socket_path.stat()
    assert info.st_mode & 0o777 == 0o660 and info.st_gid == grp.getgrnam(SOCKET_GROUP).gr_gid

    def as_nobody(extra_groups: list[int]) -> str:
        return subprocess.run([sys.executable, "-c", CLIENT_AS_OTHER_USER, str(keystore.socket_path)],
                              user="nobody", group="nogroup", extra_groups=extra_groups,
                              capture_output=True, text=True, timeout=30, cwd="/", check=False).stdout

    assert "unavailable: permission denied on keystore socket" in as_nobody([])
    assert as_nobody([info.st_gid]).strip() == "connected"  # the same user, in the socket's group


def test_hundred_concurrent_operations_without_error(keystore: KeystoreProcess) -> None:
    with keystore.client() as client:
        own = client.local_bundle(DOMAIN)
        assert own.transport is not None
        content_key = os.urandom(32)
        slot = wrapping.wrap(own.transport.public, content_key, b"c")
        digest = hashlib.sha256(b"m").digest()
        start = threading.Barrier(100)
        failures: list[BaseException] = []

        def one(n: int) -> None:
            start.wait()
            try:
                kind = n % 4
                if kind == 0:
                    assert client.unwrap(own.transport.key_id, *slot, b"c") == content_key  # type: ignore[union-attr]
                elif kind == 1:
                    assert len(client.sign(DOMAIN, digest)) == 64
                elif kind == 2:
                    assert len(client.dkim_sign(DOMAIN, "rsa-sha256", digest)[1]) == 256
                else:
                    assert client.local_bundle(DOMAIN).found
            except Exception as exc:  # collected, asserted below
                failures.append(exc)

        threads = [threading.Thread(target=one, args=(n,)) for n in range(100)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert failures == []


def test_admin_changes_take_effect_in_the_running_service(keystore: KeystoreProcess,
                                                          client: KeystoreClient) -> None:
    before = client.local_bundle(DOMAIN)
    assert before.transport is not None
    slot = wrapping.wrap(before.transport.public, bytes(32), b"c")
    # A connection per call, so every worker and reader thread has the key's record in its memo.
    scattered = KeystoreClient(keystore.socket_path, max_idle=0)
    for _ in range(8):
        assert scattered.unwrap(before.transport.key_id, *slot, b"c") == bytes(32)
    rotated = keystore.run("keys", "rotate", DOMAIN).stdout
    after = client.local_bundle(DOMAIN)
    assert after.transport is not None and after.transport.key_id in rotated
    assert after.hash != before.hash
    keystore.run("keys", "revoke", before.transport.key_id, "--reason", "test")
    for _ in range(8):
        with pytest.raises(KeystoreError, match="revoked") as caught:
            scattered.unwrap(before.transport.key_id, *slot, b"c")
        assert caught.value.code == "unusable-key"
    history = keystore.run("keys", "history", DOMAIN).stdout
    assert f"{before.transport.key_id}  transport" in history and "reason: test" in history


def get(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def test_public_directory_serves_signed_bundles_read_only(keystore: KeystoreProcess) -> None:
    base = f"http://127.0.0.1:{keystore.port}/.well-known/sealgate"
    exported = keystore.run("keys", "export-public", DOMAIN).stdout.strip().encode()
    digest = hashlib.sha256(exported).hexdigest()
    assert get(f"{base}/{DOMAIN}.json") == (200, exported)
    assert get(f"{base}/{DOMAIN}/{digest}.json") == (200, exported)
    assert f"{digest}.json" in keystore.run("keys", "dns", DOMAIN).stdout
    status, body = get(f"{base}/{DOMAIN}/revocations.json")
    assert status == 200 and json.loads(body)["domain"] == DOMAIN
    assert get(f"{base}/other.test.json")[0] == 404
    assert get(f"{base}/{DOMAIN}/{'0' * 64}.json")[0] == 404
    status, body = get(f"{base}/bad..name.json")
    assert status == 400 and b"not a domain name" in body
    post = urllib.request.Request(f"{base}/{DOMAIN}.json", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(post, timeout=5)
    assert caught.value.code == 501


def test_clients_see_a_missing_or_silent_keystore_as_unavailable(tmp_path: Path) -> None:
    with pytest.raises(KeystoreUnavailable, match="does not exist"):
        KeystoreClient(tmp_path / "none.sock").ping()
    stale = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX) as dead:
        dead.bind(str(stale))
    with pytest.raises(KeystoreUnavailable, match="cannot connect"):
        KeystoreClient(stale).ping()
    with socket.socket(socket.AF_UNIX) as silent:  # accepts, never answers
        silent.bind(str(tmp_path / "silent.sock"))
        silent.listen()
        with pytest.raises(KeystoreUnavailable, match="did not answer 'ping' within 0.3 s"):
            KeystoreClient(tmp_path / "silent.sock", timeout=0.3).ping()


def test_service_refuses_a_master_key_others_can_read(tmp_path: Path) -> None:
    keystore = KeystoreProcess(tmp_path / "ks", directory=False)
    keystore.run("keys", "init", DOMAIN)
    (tmp_path / "ks" / "master.key").chmod(0o644)
    done = keystore.run("keystore", "serve", check=False)
    assert done.returncode == 2
    assert f"master key file {tmp_path / 'ks' / 'master.key'} is accessible by group or others " \
           f"(mode 0644)" in done.stderr
    assert not keystore.socket_path.exists()


def test_a_worker_that_dies_is_replaced(tmp_path: Path) -> None:
    keystore = KeystoreProcess(tmp_path / "ks", directory=False, workers=2)
    keystore.run("keys", "init", DOMAIN)
    with keystore, keystore.client() as client:
        assert keystore.proc is not None
        children = Path(f"/proc/{keystore.proc.pid}/task/{keystore.proc.pid}/children")
        first = children.read_text().split()
        assert len(first) == 2
        os.kill(int(first[0]), 9)
        deadline = time.monotonic() + 10
        while set(children.read_text().split()) & {first[0]} or len(children.read_text().split()) < 2:
            assert time.monotonic() < deadline, keystore.log_text()
            time.sleep(0.1)
        for _ in range(20):  # pooled connections to the dead worker are replaced transparently
            assert client.ping()["domains"] == [DOMAIN]
    assert f"keystore worker {first[0]} exited (signal 9); starting another" in keystore.log_text()


def test_each_worker_loads_the_active_keys_before_its_first_request(tmp_path: Path) -> None:
    """An RSA key's first parse checks it for ~50 ms: no message may wait for that."""
    keystore = KeystoreProcess(tmp_path / "ks", directory=False, workers=2)
    keystore.run("keys", "init", DOMAIN)
    listed = keystore.run("keys", "list", DOMAIN).stdout
    active = sum(1 for line in listed.splitlines() if " active " in f" {line} ")
    with keystore:
        deadline = time.monotonic() + 10
        while keystore.log_text().count(" keys loaded") < 2:
            assert time.monotonic() < deadline, keystore.log_text()
            time.sleep(0.05)
    loaded = re.findall(r"keystore worker \d+ ready, (\d+) keys loaded", keystore.log_text())
    assert active >= 4 and loaded == [str(active)] * 2, (listed, loaded)
