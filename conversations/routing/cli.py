"""Command-line routing: ``gateway route --jsonl FILE`` and ``gateway route evaluate FILE``.

``route_jsonl`` reads ``{"id", "text", "channel"?}`` lines and writes one line per message:
``{"id", "category", "administration", "place", "confidence"}`` (``category`` null = human triage).
Blank lines are skipped; a malformed line is reported on stderr with its number and makes the
return code 1, and the other lines are still routed. ``-`` reads standard input.
"""
from __future__ import annotations

import json
import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Sequence, TextIO

from config.loader import GatewayConfig, load_config
from conversations.routing.evaluate import evaluate_main
from conversations.routing.evaluate import main as evaluate_cli
from conversations.routing.router import Router

__all__ = ["route_jsonl", "evaluate_main", "main"]


def route_jsonl(config: GatewayConfig, in_path: str, out: TextIO) -> int:
    """Route every message of the JSONL file ``in_path`` and write the results to ``out``.

    Returns 0 when every line was routed, 1 when a line was malformed (or the file unreadable).
    """
    router = Router.from_config(config)
    status = 0
    try:
        source = nullcontext(sys.stdin) if in_path == "-" else open(in_path, encoding="utf-8")
    except OSError as exc:
        sys.stderr.write(f"{in_path}: cannot read ({exc.strerror})\n")
        return 1
    with source as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as exc:
                sys.stderr.write(f"{in_path}: line {number}: not valid JSON ({exc.msg}); skipped\n")
                status = 1
                continue
            if not isinstance(item, dict) or not isinstance(item.get("text"), str):
                sys.stderr.write(f"{in_path}: line {number}: expected an object with a \"text\" string; skipped\n")
                status = 1
                continue
            channel = item.get("channel")
            result = router.route(item["text"], channel if isinstance(channel, str) else None)
            out.write(json.dumps({
                "id": item.get("id"),
                "category": result.category,
                "administration": result.administration,
                "place": result.place,
                "confidence": result.confidence,
            }, ensure_ascii=False) + "\n")
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m conversations.routing.cli FILE`` routes; ``... evaluate FILE [--cv K]`` evaluates."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "evaluate":
        return evaluate_cli(args[1:])
    if len(args) != 1:
        sys.stderr.write("usage: python -m conversations.routing.cli FILE|-  |  evaluate FILE [--cv K]\n")
        return 2
    config_path = os.environ.get("GATEWAY_CONFIG")
    return route_jsonl(load_config(Path(config_path) if config_path else None), args[0], sys.stdout)


if __name__ == "__main__":
    raise SystemExit(main())
