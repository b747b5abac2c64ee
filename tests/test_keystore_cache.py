"""The milter's caching keystore client against a real keystore: our domains and other domains'
bundles are asked once a minute, not once a message, DKIM selectors once until the keystore
refuses one as rotated; a temporary discovery failure is asked again at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from sealgate.keystore.cached import CachingKeystoreClient
from sealgate.keystore.errors import KeystoreError
from sealgate.testbed.keystore import KeystoreProcess
from sealgate.testbed.zones import txt


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
        with pytest.raises(KeystoreError, match=f"selector '{selector}': key .* is retired since"):
            client.dkim_sign_many("ours.test", [("ed25519-sha256", selector, bytes(32))])
        rotated = client.dkim_selector("ours.test", "ed25519-sha256")
        assert rotated != selector and calls.count("dkim_selector") == 2
        [signature] = client.dkim_sign_many("ours.test", [("ed25519-sha256", rotated, bytes(32))])
        assert len(signature) == 64


def test_other_domains_bundles_are_cached_unless_the_failure_is_temporary(tmp_path: Path) -> None:
    zone = tmp_path / "z.zone"
    unreachable = f"v=SG1; h={'0' * 64}; e=opt; t=opt; u=http://127.0.0.1:9/bundle.json"
    zone.write_text(txt("_sealgate.down.test", unreachable))
    keystore = KeystoreProcess(tmp_path / "ks", zone_files=[zone], directory=False)
    keystore.run("keys", "init", "ours.test")
    now = [1000.0]
    with keystore, CachingKeystoreClient(str(keystore.socket_path), clock=lambda: now[0]) as client:
        calls: list[str] = []
        original_call = client.call

        def counting(op: str, **args: object) -> object:
            calls.append(f"{op} {args.get('domain')}")
            return original_call(op, **args)

        client.call = counting  # type: ignore[method-assign]
        for _ in range(2):
            assert client.bundle("absent.test").status == "none"
            assert client.bundle("down.test").status == "temporary"
        assert calls == ["bundle absent.test", "bundle down.test", "bundle down.test"]
        now[0] += 61
        client.bundle("absent.test")
        assert calls.count("bundle absent.test") == 2
