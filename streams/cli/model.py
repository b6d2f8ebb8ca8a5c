"""Model commands of the ``profilestream`` CLI: train, evaluate, export item vectors, import the trivago data.

Offline data is read with the worker's own decoder and event conversion (:mod:`streams.offline.histories`), so the
profiles trained and measured here are the ones a worker publishes. Outputs of these commands belong under
``var/`` (ignored by git). The protocol and the numbers are in docs/evaluation.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streams.settings import Settings

if TYPE_CHECKING:  # building the parser imports no torch
    from models.checkpoint import CheckpointMetadata
    from models.events import EventInput

REPO_ROOT = Path(__file__).resolve().parents[2]
"""The checkout: the data folders are looked for beside it (`../shared/data`)."""
# Equal to models.evaluation's defaults (a test checks it); repeated so that building the parser imports no torch.
DEFAULT_TEST_FRACTION = 0.2
DEFAULT_K = 20
EARLY_STOPPING_FRACTION = 0.1
"""Share of the events (the latest) that `train --early-stopping` holds out as its validation slice."""


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def positive_int(text: str) -> int:
    """A count (epochs, threads, dimensions, the metrics' cut-off, users, events): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _fraction(text: str, *, zero: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    low_ok = value >= 0.0 if zero else value > 0.0
    if not (low_ok and value < 1.0):  # NaN fails both
        interval = "[0, 1)" if zero else "(0, 1)"
        raise argparse.ArgumentTypeError(f"must be a share in {interval}, not {text}")
    return value


def _held_out_fraction(text: str) -> float:
    """`train --test-fraction`: 0 (hold nothing out) up to, not including, 1."""
    return _fraction(text, zero=True)


def _test_fraction(text: str) -> float:
    """A test part's share (`evaluate`, `data split`): above 0 (a test part is needed) and below 1."""
    return _fraction(text, zero=False)


def _finite_json(value: Any) -> Any:
    """`value` with every NaN or infinite float replaced by None (JSON has no such numbers): a metric over a
    subset without targets is NaN in the tables and null in the JSON report."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite_json(v) for v in value]
    return value


def _write_report(path: Path, payload: dict[str, Any]) -> None:
    path.write_text(json.dumps(_finite_json(payload), indent=1, allow_nan=False) + "\n", encoding="utf-8")


def _size_text(path: Path) -> str:
    size = sum(f.stat().st_size for f in path.iterdir() if f.is_file())
    return f"{size / 1e6:.1f} MB on disk"


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    """Train an encoder on every event of a file (or all but its latest `--test-fraction`, kept for `evaluate`)."""
    from models.checkpoint import check_writable, save_checkpoint
    from models.encoder import EncoderConfig
    from models.evaluation import time_split
    from models.training import TrainConfig, data_fingerprint, fitted_sequences, train
    from streams.offline.histories import read_histories

    if args.no_refit and not args.early_stopping:
        raise SystemExit("--no-refit needs --early-stopping: without it nothing is held out, so there is no refit")
    out = Path(args.out)
    check_writable(out)  # before the training, which the refusal would otherwise throw away
    started = time.monotonic()
    histories, report = read_histories(Path(args.events))
    _log(report.summary())
    split = time_split(histories.inputs, args.test_fraction)
    sequences = [h for h in split.train if h]
    train_config = TrainConfig(
        seed=args.seed,
        epochs=args.epochs,
        validation_fraction=EARLY_STOPPING_FRACTION if args.early_stopping else 0.0,
        refit=args.early_stopping and not args.no_refit,
    )
    encoder_config = EncoderConfig(
        embedding_dim=args.dim,
        hidden_dim=args.hidden_dim,
        recency_memory=not args.no_recency_memory,
        item_category_vectors=not args.no_item_categories,
    )
    trained_from = time.monotonic()
    model, metrics = train(
        sequences, train_config, encoder_config, progress=not args.no_progress, item_ids=histories.item_ids()
    )
    train_s = time.monotonic() - trained_from
    # Early stopping without the refit keeps a model fitted on the events before its validation cutoff only: the
    # checkpoint names those (fingerprint, period), and the later ones, which chose the epoch, separately.
    fitted = fitted_sequences(sequences, metrics)
    fitted_events = sum(map(len, fitted))
    validation_only = sum(map(len, sequences)) - fitted_events
    extra: dict[str, Any] = {
        "events_file": Path(args.events).name,
        "bad_lines": report.bad_lines,
        "test_fraction": args.test_fraction,
        "test_cutoff_ms": split.cutoff_ms,
        "trained_until_ms": max((e.ts_ms for h in fitted for e in h), default=None),
        # Latest event of the validation slice when it was not trained on (it chose the epoch); else None.
        "validated_until_ms": max((e.ts_ms for h in sequences for e in h), default=None) if validation_only else None,
        "encoder_config": encoder_config.to_dict(),
    }
    version = save_checkpoint(model, out, training_fingerprint=data_fingerprint(fitted), metrics=metrics, extra=extra)
    parameters = sum(p.numel() for p in model.parameters())
    print(f"model {version} written to {out}")
    held_out = report.events - sum(map(len, sequences)) - report.duplicates
    left_out = []
    if args.test_fraction > 0:
        left_out.append(f"its latest {args.test_fraction:.0%} ({held_out} events, held out for `evaluate --events`)")
    if validation_only:
        left_out.append(
            f"the latest {train_config.validation_fraction:.0%} of the rest ({validation_only} events, early "
            "stopping's validation slice, not trained on)"
            if args.test_fraction > 0
            else f"its latest {train_config.validation_fraction:.0%} ({validation_only} events, early stopping's "
            "validation slice, not trained on)"
        )
    name = Path(args.events).name
    print(
        f"trained on {fitted_events} events of {len(fitted)} users, {model.features.num_items - 1} items: "
        + (f"{name} without " + " and ".join(left_out) if left_out else f"every event of {name}")
    )
    if args.early_stopping:
        print(
            f"early stopping on the latest {train_config.validation_fraction:.0%} of them: best epoch "
            f"{metrics['best_epoch']} of {metrics['epochs_run']}"
            + (
                f"; then refit on all of them for {len(metrics['refit_train_loss'])} epochs"
                if metrics["refit"]
                else "; no refit (the latest events are not trained on)"
            )
        )
        if "best_val_mrr@20" in metrics:
            print(f"validation MRR@20 {metrics['best_val_mrr@20']:.4f}, Recall@20 {metrics['best_val_recall@20']:.4f}")
    else:
        print(
            f"schedule: {metrics['epochs_run']} epochs on all of them, learning rate {train_config.lr:g} times "
            f"{train_config.lr_decay:g} after each epoch; nothing held out (no early stopping)"
        )
        if metrics["averaged_epochs"] > 1:
            print(f"model: the mean of the weights after each of the last {metrics['averaged_epochs']} epochs")
        print(f"training loss: first epoch {metrics['train_loss'][0]:.4f}, last {metrics['train_loss'][-1]:.4f}")
    print(f"model size: {parameters} parameters, {_size_text(out)}; per-user state {model.hidden_dim} floats")
    print(f"training time: {train_s:.1f} s (command {time.monotonic() - started:.1f} s)")
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate a checkpoint against the baselines on a time split of one file or on explicit train/test files."""
    if args.protocol == "standard":
        return cmd_evaluate_standard(args)
    import torch

    from models.checkpoint import load_checkpoint
    from models.evaluation import evaluate, explicit_split, time_split
    from streams.offline.histories import clickouts, read_histories, read_split_histories

    if len(args.model or []) != 1:
        _log("evaluate needs exactly one --model (several only with --protocol standard)")
        return 2
    args.model = args.model[0]
    if (args.events is None) == (args.train is None or args.test is None):
        _log("evaluate needs either --events FILE or both --train FILE and --test FILE")
        return 2
    started = time.monotonic()
    torch.set_num_threads(args.threads)
    model, metadata = load_checkpoint(Path(args.model))
    if args.events is not None:
        source = Path(args.events)
        histories, report = read_histories(source)
        _log(report.summary())
        split = time_split(histories.inputs, args.test_fraction)
        trained_until = metadata.extra.get("trained_until_ms")
        validated_until = metadata.extra.get("validated_until_ms")
        if trained_until is None:
            _log("warning: the checkpoint does not record its training period; leakage cannot be checked")
        elif split.cutoff_ms is not None and trained_until >= split.cutoff_ms:
            _log(
                f"the model was trained on events up to {trained_until} ms, at or after the test cutoff "
                f"{split.cutoff_ms} ms: its numbers would be inflated. Train it with --test-fraction "
                f"{args.test_fraction} (or evaluate with the fraction it was trained with)"
            )
            return 1
        elif split.cutoff_ms is not None and validated_until is not None and validated_until >= split.cutoff_ms:
            _log(
                f"the model's early stopping chose its epoch on events up to {validated_until} ms, at or after the "
                f"test cutoff {split.cutoff_ms} ms: its numbers would be inflated. Train it with --test-fraction "
                f"{args.test_fraction} (or evaluate with the fraction it was trained with)"
            )
            return 1
    else:
        source = Path(args.test)
        histories, train_report, test_report = read_split_histories(Path(args.train), source)
        _log(f"train file: {train_report.summary()}")
        _log(f"test file: {test_report.summary()}")
        split = explicit_split(histories.inputs, histories.is_test)
        if not _check_training_data(metadata, split.train, split.histories):
            return 1
    if not any(split.targets):
        # Every metric would be NaN over no targets, printed as a result with exit 0.
        _log(f"no test targets in {source}: nothing to evaluate (a test event needs an earlier event of its user)")
        return 2
    shown = _impressions(args.impressions, source)
    if shown is None:
        return 2
    report_ = evaluate(model, split, clickouts(histories, split.targets, shown), k=args.k)
    print(
        f"model {metadata.model_version}; split: "
        + ("time" if args.events else "explicit")
        + ", "
        + (
            f"cutoff {split.cutoff_ms} ms (test fraction {args.test_fraction})"
            if split.cutoff_ms is not None
            else ("test events from --test" if args.test else "no cutoff")
        )
    )
    print(report_.format_table())
    print(f"evaluation time: {time.monotonic() - started:.1f} s")
    if args.json_out:
        _write_report(Path(args.json_out), {"model_version": metadata.model_version, **report_.to_json()})
    return 0


def _impressions(given: str | None, source: Path) -> dict[str, tuple[str, ...]] | None:
    """The click-outs' impression lists: of ``given``, or of the side file beside ``source`` if there is one;
    None (after saying so) when a given file does not exist."""
    from streams.offline.trivago import impressions_path, read_impressions

    side = Path(given) if given else impressions_path(source)
    if given and not side.is_file():
        _log(f"the impressions file {side} does not exist")
        return None
    shown = read_impressions(side) if side.is_file() else {}
    if given and not shown:
        _log(f"no impressions in {side}")
    return shown


def _check_training_data(
    metadata: CheckpointMetadata,
    train_part: Sequence[Sequence[EventInput]],
    everything: Sequence[Sequence[EventInput]],
) -> bool:
    """On an explicit split, say whether the checkpoint was trained on exactly the training part (by the training
    data's fingerprint); False, after saying why, if it was trained on the training and test events together.

    `train_part` and `everything` are per-user histories in the worker's order, as `train` reads a file. A model
    trained on anything else (another file, a time split) gets a warning: whether it saw test events cannot be told.
    """
    from models.training import data_fingerprint, fitted_sequences

    name = f"model {metadata.model_version}"
    fitted_before = metadata.metrics.get("fitted_before_ms")
    if data_fingerprint(fitted_sequences(train_part, metadata.metrics)) == metadata.training_fingerprint:
        if fitted_before is None:
            _log(f"{name} trained on exactly the --train events: yes")
        else:
            _log(
                f"{name} trained on exactly the --train events before its early-stopping cutoff {fitted_before} ms "
                "(the later ones chose its epoch): yes"
            )
        return True
    if data_fingerprint(fitted_sequences(everything, metadata.metrics)) == metadata.training_fingerprint:
        _log(
            f"{name} was trained on the --train and --test events together: its numbers would be inflated. Train it "
            "on the --train file alone"
        )
        return False
    _log(
        f"{name} trained on exactly the --train events: no (fingerprint differs). Warning: if its training data "
        "held test events, its numbers are inflated"
    )
    return True


def cmd_evaluate_standard(args: argparse.Namespace) -> int:
    """The session-based protocol of the literature (models/sessionrec.py) on explicit train and test files."""
    import torch

    from models.checkpoint import load_checkpoint
    from models.sessionrec import SessionEncoder, baseline_scorers, evaluate_standard, prepare, write_session_tsv
    from streams.offline.standard import TSV_SUFFIXES, read_standard_input

    if args.train is None or args.test is None:
        _log("evaluate --protocol standard needs --train FILE and --test FILE")
        return 2
    started = time.monotonic()
    torch.set_num_threads(args.threads)
    read = read_standard_input(Path(args.train), Path(args.test))
    _log(f"train {read.train_text}")
    _log(f"test {read.test_text}")
    data = prepare(read.histories, read.keys, read.is_test)
    models = [load_checkpoint(Path(path)) for path in args.model or []]
    if models and {Path(args.train).suffix, Path(args.test).suffix} & TSV_SUFFIXES:
        _log(
            "warning: the models' training data cannot be compared with GRU4Rec-format files; if a model was "
            "trained on test sessions, its numbers are inflated"
        )
    elif models:
        train_part = [
            [e for e, t in zip(h, f, strict=True) if not t] for h, f in zip(read.histories, read.is_test, strict=True)
        ]
        if not all([_check_training_data(metadata, train_part, read.histories) for _, metadata in models]):
            return 1
    if args.export_tsv:
        folder = Path(args.export_tsv)
        rows = (
            write_session_tsv(data, folder / "train.tsv", test=False),
            write_session_tsv(data, folder / "test.tsv", test=True),
        )
        _log(f"wrote the protocol's sessions to {folder}/train.tsv ({rows[0]} rows) and test.tsv ({rows[1]} rows)")
    scorers: list[Any] = []
    for model, metadata in models:
        name = "encoder" if len(models) == 1 else f"encoder {metadata.model_version[:8]}"
        scorer = SessionEncoder(model, data, name)
        scorers.append(scorer)
        _log(f"model {metadata.model_version}: {metadata.extra.get('events_file', '?')}")
        unknown = int(scorer.unknown.sum())
        if unknown:
            _log(
                f"warning: model {metadata.model_version} has no vector for {unknown} of {len(data.candidates)} "
                "candidate items (trained on other data or other item ids?); targets among them count as misses"
            )
    report_ = evaluate_standard(data, [*scorers, *baseline_scorers(data)], exclude_previous=not args.keep_previous_item)
    print(report_.format_table())
    print(f"evaluation time: {time.monotonic() - started:.1f} s")
    if args.json_out:
        _write_report(Path(args.json_out), {"models": args.model or [], **report_.to_json()})
    return 0


def cmd_export_items(args: argparse.Namespace, settings: Settings) -> int:
    """Write the item vectors of a checkpoint (docs/item-vectors.md)."""
    from models.checkpoint import load_checkpoint
    from models.export import export_item_vectors

    model, metadata = load_checkpoint(Path(args.model))
    count = export_item_vectors(model, metadata.model_version, Path(args.out))
    print(f"wrote {count} item vectors of model {metadata.model_version} to {args.out}")
    return 0


def cmd_publish_items(args: argparse.Namespace, settings: Settings) -> int:
    """Publish a checkpoint's item vectors to the compacted items topic (docs/item-vectors.md, "On Kafka")."""
    import numpy as np

    from models.checkpoint import load_checkpoint
    from models.errors import CheckpointError
    from streams.client.items import publish_item_vectors
    from streams.client.security import kafka_client_options
    from streams.contract.topics import MODEL_ITEMS

    try:
        model, metadata = load_checkpoint(Path(args.model))
    except CheckpointError as exc:
        _log(f"profilestream model publish: cannot load the model: {exc}")
        return 2  # the other model commands' code for a checkpoint they cannot use (EXIT_INPUT)
    ids = model.features.item_ids
    if not ids or any(not i for i in ids):
        _log("profilestream model publish: the checkpoint's vocabulary has no item ids (train it with `train`)")
        return 2
    vectors = model.item_vectors()[1:].numpy().astype(np.float32)  # [N, D]; row 0 is the unknown item
    manifest = publish_item_vectors(
        settings.kafka_bootstrap,
        metadata.model_version,
        list(ids),
        vectors.tolist(),
        topic_prefix=settings.topic_prefix,
        **kafka_client_options(settings),  # a secured cluster's TLS and login, as every other Kafka command
    )
    print(
        f"published {manifest.count} item vectors (dim {manifest.dim}) of model {manifest.model_version} "
        f"to {settings.topic(MODEL_ITEMS)}"
    )
    return 0


def cmd_import_trivago(args: argparse.Namespace, settings: Settings) -> int:
    """Convert the trivago RecSys 2019 slice into contract-v1 JSON lines plus the impressions side file."""
    from streams.offline.trivago import default_source, import_trivago, impressions_path

    source = Path(args.source) if args.source else default_source(REPO_ROOT)
    out = Path(args.out)
    report = import_trivago(source, out)
    print(report.summary())
    print(f"events: {out}; impressions: {impressions_path(out)}")
    return 0


def cmd_import_yoochoose(args: argparse.Namespace, settings: Settings) -> int:
    """Convert the YOOCHOOSE 100k sample's train and test files into contract-v1 JSON lines."""
    from streams.offline.yoochoose import default_source, import_yoochoose

    source = Path(args.source) if args.source else default_source(REPO_ROOT)
    report = import_yoochoose(source, Path(args.out_dir))
    print(f"{report.summary()}; files: {args.out_dir}/train.jsonl, {args.out_dir}/test.jsonl")
    return 0


def cmd_split(args: argparse.Namespace, settings: Settings) -> int:
    """Split a contract-v1 file by session end time into train.jsonl and test.jsonl (the standard protocol's split)."""
    from models.sessionrec import session_split
    from streams.contract.events import encode_event
    from streams.offline.histories import read_histories
    from streams.offline.standard import session_keys

    read, report = read_histories(Path(args.events))
    _log(report.summary())
    keys = [session_keys(events) for events in read.events]
    flags = session_split(read.inputs, keys, args.test_fraction)
    in_test = sum(t for f in flags for t in f)
    if in_test == 0 or in_test == sum(len(f) for f in flags):
        # One side empty (one session, or all of them ending together): neither trains nor evaluates anything.
        side = "test" if in_test == 0 else "training"
        _log(f"the split leaves the {side} file empty: the file needs sessions ending at different times")
        return 2
    out = Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name, wanted in (("train", False), ("test", True)):
        chosen = [
            e
            for events, f in zip(read.events, flags, strict=True)
            for e, t in zip(events, f, strict=True)
            if t == wanted
        ]
        chosen.sort(key=lambda e: e.ts_ms)
        (out / f"{name}.jsonl").write_bytes(b"".join(encode_event(e) + b"\n" for e in chosen))
        print(f"{name}: {len(chosen)} events -> {out / f'{name}.jsonl'}")
    return 0


def _add_model_commands(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    kafka_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    """``profilestream model ...``: export or publish a checkpoint's item vectors."""
    model = sub.add_parser("model", help="work with checkpoints").add_subparsers(dest="model_command", required=True)
    export = model.add_parser("export-items", help="write a checkpoint's item vectors (docs/item-vectors.md)")
    export.add_argument("--model", required=True, help="checkpoint directory")
    export.add_argument("--out", required=True, help="JSON-lines file to write")
    export.set_defaults(handler=cmd_export_items)
    publish = model.add_parser(
        "publish", help="publish a checkpoint's item vectors to the compacted models.items topic (idempotent)"
    )
    publish.add_argument("--model", required=True, help="checkpoint directory")
    kafka_flags(publish)
    publish.set_defaults(handler=cmd_publish_items)


def register(
    sub: argparse._SubParsersAction,  # type: ignore[type-arg]
    kafka_flags: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Add the train, evaluate, model and data commands to the ``profilestream`` parser; ``kafka_flags`` adds
    the broker and topic-prefix flags to the commands that reach Kafka."""
    fraction_help = "latest share of events (by time) held out as the test part"
    train = sub.add_parser("train", help="train the profile encoder on a contract-v1 JSON-lines file")
    train.add_argument("--events", required=True, help="contract-v1 JSON-lines file")
    train.add_argument("--out", required=True, help="checkpoint directory to write (use var/...)")
    train.add_argument("--seed", type=int, default=0, help="random seed (training is deterministic for a seed)")
    train.add_argument(
        "--test-fraction",
        type=_held_out_fraction,
        default=0.0,
        help=f"{fraction_help}, never trained on, for `evaluate --events` on the same file [default 0: train on "
        "every event]",
    )
    train.add_argument(
        "--epochs",
        type=positive_int,
        default=10,
        # Literal figures: this module must not import torch (models.training) to build the parser; a test holds
        # them equal to TrainConfig's defaults.
        help="epochs of the learning-rate schedule (the rate falls by 0.85 after each; the model is the mean of the "
        "last 5 epochs' weights, at most the second half's); with --early-stopping the most it runs [default 10]",
    )
    train.add_argument(
        "--early-stopping",
        action="store_true",
        # %% because argparse formats help strings with %: a bare "10% of" made `train --help` fail.
        help=f"hold the latest {EARLY_STOPPING_FRACTION:.0%}% of the events out, stop when MRR@20 there stops "
        "improving, then refit on every event for the epochs it chose (default: the whole schedule on every "
        "event, which made seeds agree better; docs/model.md)",
    )
    train.add_argument("--dim", type=positive_int, default=64, help="profile and item-vector dimension [default 64]")
    train.add_argument(
        "--hidden-dim",
        type=positive_int,
        default=32,
        help="GRU hidden dimension; a user's state is hidden-dim + dim floats with the recency memory, and the "
        "worker keeps two such vectors per user [default 32, which keeps a record under 2 KiB]",
    )
    train.add_argument("--no-recency-memory", action="store_true", help="train the plain GRU (no recency memory)")
    train.add_argument(
        "--no-item-categories",
        action="store_true",
        help="item vectors without their category's part (docs/model.md); the category of an event is still an input",
    )
    train.add_argument(
        "--no-refit", action="store_true", help="with --early-stopping: keep the early-stopped model, skip the refit"
    )
    train.add_argument("--no-progress", action="store_true", help="no progress bar")
    train.set_defaults(handler=cmd_train)

    evaluate = sub.add_parser("evaluate", help="evaluate a checkpoint against popularity and item-kNN")
    evaluate.add_argument("--events", help="contract-v1 JSON-lines file, split by time")
    evaluate.add_argument("--train", help="explicit split: the training events")
    evaluate.add_argument("--test", help="explicit split: the test events")
    evaluate.add_argument(
        "--model", action="append", help="checkpoint directory (repeat it with --protocol standard to compare seeds)"
    )
    evaluate.add_argument(
        "--protocol",
        choices=("stream", "standard"),
        default="stream",
        help="stream: every next browse/purchase of the test part (docs/evaluation.md); standard: the session-based "
        "protocol of the literature on --train/--test files, GRU4Rec format (.tsv/.txt) or contract-v1 (.jsonl) "
        "[default stream]",
    )
    evaluate.add_argument(
        "--keep-previous-item",
        action="store_true",
        help="standard protocol: keep x_t among the candidates (it is never the target there)",
    )
    evaluate.add_argument("--export-tsv", help="standard protocol: write the filtered sessions as train.tsv/test.tsv")
    evaluate.add_argument(
        "--test-fraction", type=_test_fraction, default=DEFAULT_TEST_FRACTION, help=f"{fraction_help} [default 0.2]"
    )
    evaluate.add_argument(
        "--impressions", help="click-out impressions side file [default: <events or test stem>.impressions.jsonl]"
    )
    evaluate.add_argument(
        "--k", type=positive_int, default=DEFAULT_K, help=f"cut-off of the metrics [default {DEFAULT_K}]"
    )
    evaluate.add_argument("--threads", type=positive_int, default=2, help="torch threads [default 2]")
    evaluate.add_argument("--json-out", help="also write the report as JSON to this file")
    evaluate.set_defaults(handler=cmd_evaluate)

    _add_model_commands(sub, kafka_flags)

    data = sub.add_parser("data", help="import data sets").add_subparsers(dest="data_command", required=True)
    imports = data.add_parser("import", help="convert a data set to contract-v1 JSON lines").add_subparsers(
        dest="dataset", required=True
    )
    trivago = imports.add_parser("trivago", help="the trivago RecSys Challenge 2019 slice")
    trivago.add_argument(
        "--source", help="data folder with events.csv.gz [default: ../shared/data/trivago_rsc19_100k from the repo]"
    )
    trivago.add_argument("--out", required=True, help="JSON-lines file to write (use var/...)")
    trivago.set_defaults(handler=cmd_import_trivago)
    yoochoose = imports.add_parser("yoochoose", help="the YOOCHOOSE RecSys Challenge 2015 100k-click sample")
    yoochoose.add_argument(
        "--source", help="data folder with the two GRU4Rec-format files [default: ../shared/data/yoochoose_rsc15_100k]"
    )
    yoochoose.add_argument("--out-dir", required=True, help="folder for train.jsonl and test.jsonl (use var/...)")
    yoochoose.set_defaults(handler=cmd_import_yoochoose)
    split = data.add_parser("split", help="split a contract-v1 file by session end time into train and test files")
    split.add_argument("--events", required=True, help="contract-v1 JSON-lines file")
    split.add_argument("--out-dir", required=True, help="folder for train.jsonl and test.jsonl (use var/...)")
    split.add_argument(
        "--test-fraction",
        type=_test_fraction,
        default=DEFAULT_TEST_FRACTION,
        help=f"sessions ending in this latest share of event time are test sessions [default {DEFAULT_TEST_FRACTION}]",
    )
    split.set_defaults(handler=cmd_split)
