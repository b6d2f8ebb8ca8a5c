"""The model commands the docs show work as shown: each evaluated model is trained the way its evaluation needs."""

from __future__ import annotations

import argparse
import re
import shlex
from pathlib import Path

import pytest

from streams.cli.main import build_parser

REPO = Path(__file__).resolve().parents[2]
DOCS = sorted([REPO / "README.md", *(REPO / "docs").glob("*.md")])
SEEDS = [str(seed) for seed in range(10)]


def _commands(document: Path) -> list[list[list[str]]]:
    """The `profilestream` commands of each code block of a document, as argument lists (comments and `\\`
    continuations handled, `VAR=value` prefixes dropped)."""
    blocks = re.findall(r"```[a-z]*\n(.*?)```", document.read_text(encoding="utf-8"), flags=re.DOTALL)
    found = []
    for block in blocks:
        commands = []
        for line in block.replace("\\\n", " ").splitlines():
            if not re.match(r"(?:[A-Z_]+=\S*\s+)*profilestream\s", line):
                continue  # other commands, output, or text that is not a shell line
            words = shlex.split(line, comments=True)
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):
                words = words[1:]
            if words[:1] == ["profilestream"]:
                commands.append(words[1:])
        found.append(commands)
    return found


def _parsed(argv: list[str]) -> argparse.Namespace:
    # $SEED stands for any seed: the first one is enough to parse it.
    return build_parser().parse_args([word.replace("$SEED", "0") for word in argv])


def _trainer(commands: list[list[str]], model: str) -> argparse.Namespace:
    for argv in commands:
        if argv[:1] == ["train"]:
            out = argv[argv.index("--out") + 1]
            if model in {out.replace("$SEED", seed) for seed in SEEDS}:
                return _parsed(argv)
    raise AssertionError(f"no `profilestream train` writes {model} in the same code block")


def _evaluations(protocol: str) -> list[tuple[str, argparse.Namespace, list[list[str]]]]:
    found = []
    for document in DOCS:
        for commands in _commands(document):
            for argv in commands:
                if argv[:1] == ["evaluate"] and _parsed(argv).protocol == protocol:
                    found.append((document.name, _parsed(argv), commands))
    return found


def test_a_model_evaluated_on_a_time_split_was_trained_with_that_test_fraction() -> None:
    evaluations = _evaluations("stream")
    assert {name for name, _, _ in evaluations} >= {"evaluation.md", "model.md"}
    for name, evaluate, commands in evaluations:
        if evaluate.events is None:
            continue
        for model in evaluate.model:
            trained = _trainer(commands, model)
            assert trained.events == evaluate.events, name
            # `evaluate --events` refuses a model whose training reaches its test cutoff.
            assert trained.test_fraction == evaluate.test_fraction, f"{name}: {model}"


def test_a_model_evaluated_under_the_standard_protocol_was_trained_on_the_training_file() -> None:
    evaluations = _evaluations("standard")
    assert {name for name, _, _ in evaluations} >= {"evaluation.md", "model.md"}
    for name, evaluate, commands in evaluations:
        for model in evaluate.model or []:
            trained = _trainer(commands, model)
            assert (trained.events, trained.test_fraction) == (evaluate.train, 0.0), f"{name}: {model}"


@pytest.mark.parametrize("document", DOCS, ids=lambda path: path.name)
def test_every_complete_tune_encoder_command_has_its_required_flags(document: Path) -> None:
    text = document.read_text(encoding="utf-8")
    for command in re.findall(r"`python -m\s+bench\.tune_encoder([^`]*)`", text):
        if "..." in command:
            continue  # an abbreviation of a command given in full nearby
        words = command.split()
        assert {"--train", "--val", "--out"} <= set(words), f"{document.name}: {' '.join(words)}"
