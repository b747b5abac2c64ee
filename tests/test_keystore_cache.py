"""The milter's caching keystore client against a real keystore: our domains and DKIM selectors
are asked once a minute, not once a message, and a rotation shows on the next signature."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealgate.keystore.cached import CachingKeystoreClient
from sealgate.keystore.errors import KeystoreError
from sealgate.testbed.keystore import KeystoreProcess


def test_answers_are_cached_and_a_rotated_selector_is_picked_up(tmp_path: Path) -> None:
    keystore = KeystoreProcess(tmp_path / "ks", directory=False)
    keystore.run("keys", "init", "ours.test")
    now = [1000.0]
    with keystore, CachingKeystoreClient(str(keystore.socket_path), clock=lambda: now[0]) as client:
        calls = []
        original_call = client.call

        def counting(op: str, **args: object) -> object:
            calls.append(op)
            return original_call(op, **args)

        client.call = counting  # type: ignore[method-assign]
        assert client.local_bundle("ours.test").found
        assert client.local_bundle("ours.test").found
        with pytest.raises(KeystoreError):
            client.local_bundle("other.test")
        with pytest.raises(KeystoreError):
            client.local_bundle("other.test")
        assert calls.count("local_bundle") == 2
        now[0] += 61
        client.local_bundle("ours.test")
        assert calls.count("local_bundle") == 3

        selector = client.dkim_selector("ours.test", "ed25519-sha256")
        assert client.dkim_selector("ours.test", "ed25519-sha256") == selector
        assert calls.count("dkim_selector") == 1
        keystore.run("keys", "rotate", "ours.test", "--purpose", "dkim")
        used, _ = client.dkim_sign("ours.test", "ed25519-sha256", b"\0" * 32)
        assert used != selector
        assert client.dkim_selector("ours.test", "ed25519-sha256") == used
