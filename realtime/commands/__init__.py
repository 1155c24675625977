"""Subcommands of `python -m realtime` beside the live pipeline: `realtime NAME --help` for each."""

from __future__ import annotations

import importlib

# Subcommand -> module with `build_parser()` and `main(argv) -> int`; imported only when chosen,
# so the live pipeline never loads the training code (torch, Lightning).
COMMANDS: dict[str, str] = {
    "train": "realtime.commands.train",
    "evaluate": "realtime.commands.evaluate",
    "extract-poses": "realtime.commands.extract_poses",
}


def run_command(name: str, argv: list[str]) -> int:
    """Run one subcommand; RealtimeError subclasses propagate to the caller's one-line report."""
    return int(importlib.import_module(COMMANDS[name]).main(argv))
