"""Every command's --help renders: argparse formats help strings with %, so a stray % breaks the help alone."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from streams.cli.main import build_parser


def _parsers(
    parser: argparse.ArgumentParser, path: str = "profilestream"
) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:  # argparse has no public way to list sub-parsers
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _parsers(child, f"{path} {name}")


def test_every_command_help_renders() -> None:
    rendered = {path: parser.format_help() for path, parser in _parsers(build_parser())}
    assert "profilestream train" in rendered and "profilestream topics create" in rendered
    assert "10% of the events" in " ".join(rendered["profilestream train"].split())
