"""Stages take turns: two messages' stages never interleave, and a stage waiting on a DNS server
that does not answer lets the other messages through meanwhile."""

from __future__ import annotations

import threading
import time

from sealgate import pipeline, turn
from sealgate.dns import DNSTempError
from sealgate.dns.network import NetworkResolver
from sealgate.message import Message
from sealgate.pipeline import Services, Session, Transaction, Verdict


def _run(stage: pipeline.Stage) -> Verdict:
    txn = Transaction(Session(), Message.from_bytes(b"Subject: x\r\n\r\nbody\r\n"))
    return pipeline.run([("test", stage)], txn, Services(config=None, resolver=None))


def test_stages_of_two_messages_never_interleave() -> None:
    events: list[str] = []

    def stage(name: str) -> pipeline.Stage:
        def run(txn: Transaction, services: Services) -> None:
            events.append(f"{name} in")
            time.sleep(0.05)  # releases the GIL, not the turn
            events.append(f"{name} out")
        return run

    threads = [threading.Thread(target=_run, args=(stage(n),)) for n in ("a", "b", "c")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(events) == 6
    assert all(events[i].split()[0] == events[i + 1].split()[0] and events[i].endswith("in")
               for i in range(0, 6, 2)), events


def test_a_stage_waiting_on_dns_lets_other_messages_through(silent_server: int) -> None:
    resolver = NetworkResolver(["127.0.0.1"], silent_server, timeout=1.5)
    asking = threading.Event()
    outcome: list[str] = []

    def slow(txn: Transaction, services: Services) -> None:
        asking.set()
        try:
            resolver.lookup("example.org", "TXT")
        except DNSTempError as exc:
            outcome.append(str(exc))

    slow_message = threading.Thread(target=_run, args=(slow,))
    slow_message.start()
    assert asking.wait(5)
    started = time.monotonic()
    assert _run(lambda txn, services: Verdict.reject("no")).action == "reject"
    assert time.monotonic() - started < 0.5
    assert not outcome  # the slow one is still waiting for its answer
    slow_message.join()
    assert outcome and "timeout" in outcome[0]


def test_waiting_without_the_turn_and_computing_twice_are_harmless() -> None:
    with turn.waiting():  # a CLI call outside any pipeline
        pass
    with turn.computing(), turn.computing(), turn.waiting():
        pass
    with turn.computing():  # the turn was handed back
        pass
