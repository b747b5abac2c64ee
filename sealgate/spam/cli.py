"""`sealgate spam score` (the milter's spam stage on one message) and `sealgate spam train`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sealgate.cli import config_arg
from sealgate.config import load

EXIT_HAM, EXIT_SPAM, EXIT_UNSCANNED, EXIT_BAD_INPUT = 0, 1, 75, 2


def cmd_score(args: argparse.Namespace) -> int:
    from sealgate import services
    from sealgate.spam import offline
    from sealgate.spam.stage import evaluate
    config = load(args.config)
    if args.backend:
        config.spam.backend = args.backend
    cfg = config.spam
    if cfg.backend == "off":
        print("sealgate spam score: [spam] backend is off; choose one with --backend",
              file=sys.stderr)
        return EXIT_UNSCANNED
    raw = sys.stdin.buffer.read()
    if not raw.strip():
        print("sealgate spam score: no message on standard input", file=sys.stderr)
        return EXIT_BAD_INPUT
    txn = offline.transaction(raw, config.verify.authserv_id)
    outcome = evaluate(txn, services.build(config), explain=args.explain)
    result = outcome.result
    verdict = "unscanned" if result is None else "spam" if outcome.is_spam(cfg.required_score) else "ham"
    action = outcome.verdict.action if outcome.verdict else "accept"
    if args.json:
        report: dict[str, Any] = {
            "score": None if result is None else result.score, "verdict": verdict,
            "required_score": cfg.required_score, "action": action,
            "scanner": cfg.backend, "headers": dict(outcome.headers)}
        if result is not None:
            report["bayes_probability"] = result.bayes_probability
            report["rules"] = [{"name": h.name, "score": h.score, "description": h.description}
                               for h in result.hits]
        if outcome.problem:
            report["problem"] = outcome.problem
        print(json.dumps(report, indent=2))
    elif result is None:
        print(f"unscanned: {outcome.problem} (the milter would {action})")
    else:
        print(f"{result.score:.1f} {verdict} (required {cfg.required_score:.1f}, "
              f"scanner {cfg.backend}, the milter would {action})")
        if args.explain:
            for hit in sorted(result.hits, key=lambda h: -abs(h.score)):
                print(f"  {hit.score:7.1f}  {hit.name:28} {hit.description}")
    return EXIT_UNSCANNED if result is None else EXIT_SPAM if verdict == "spam" else EXIT_HAM


def labelled(args: argparse.Namespace) -> Iterator[tuple[str, bytes]]:
    from sealgate.spam.mailsource import messages
    for label, paths in (("ham", args.ham), ("spam", args.spam)):
        for path in paths:
            for _, raw in messages(path):
                yield label, raw


def cmd_train(args: argparse.Namespace) -> int:
    from sealgate.spam.bayesdb import ModelError
    from sealgate.spam.mailsource import SourceError
    from sealgate.spam.train import train
    config = load(args.config)
    cfg = config.spam
    if not args.ham and not args.spam and not args.reset:
        print("sealgate spam train: give --ham and/or --spam (Maildir, mbox or folder)",
              file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        report = train(cfg.bayes_database, labelled(args), cfg.max_size, reset=args.reset)
    except (SourceError, ModelError) as exc:
        print(f"sealgate spam train: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    ham, spam = report.totals
    print(f"learned {report.learned['ham']} ham and {report.learned['spam']} spam messages "
          f"({report.known} already known, {report.relearned} moved to the other label); "
          f"{cfg.bayes_database} now holds {ham} ham and {spam} spam")
    if min(ham, spam) < cfg.bayes_min_messages:
        print(f"note: Bayes is used once both counts reach [spam] bayes_min_messages "
              f"= {cfg.bayes_min_messages}", file=sys.stderr)
    return 0


def register(sub: Any) -> None:
    p = sub.add_parser("spam", help="score a message or train the builtin spam model")
    actions = p.add_subparsers(dest="spam_action", required=True)

    score = actions.add_parser("score", help="run the milter's spam stage on a message from stdin "
                                             "(exit 0 ham, 1 spam, 75 not scanned)")
    config_arg(score)
    score.add_argument("--explain", action="store_true", help="list every rule that fired")
    score.add_argument("--json", action="store_true",
                       help="one JSON object: score, verdict, action, rules, headers")
    score.add_argument("--backend", choices=["builtin", "spamd", "rspamd"],
                       help="override [spam] backend for this run")
    score.set_defaults(func=cmd_score)

    train = actions.add_parser("train", help="teach the builtin backend's Bayes model "
                                             "([spam] bayes_database)")
    config_arg(train)
    train.add_argument("--ham", type=Path, action="append", default=[],
                       help="Maildir, mbox or folder of good mail (repeatable)")
    train.add_argument("--spam", type=Path, action="append", default=[],
                       help="Maildir, mbox or folder of spam (repeatable)")
    train.add_argument("--reset", action="store_true", help="forget everything learned before")
    train.set_defaults(func=cmd_train)
