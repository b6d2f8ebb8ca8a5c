"""The state room's exceptions; each docstring tells an operator what the error means and what to do."""

from __future__ import annotations


class StateError(Exception):
    """Base class of every error raised by `state/`. Catch this to handle any state failure in one place."""


class StateSpecError(StateError, ValueError):
    """A `StateSpec` (or RocksDB tuning) value is invalid, e.g. a window that is not a multiple of its bucket.

    Raised at start-up, before any record is touched. Fix the configuration named in the message and restart.
    """


class StateDecodeError(StateError):
    """A stored state value could not be decoded.

    The worker counts it, logs it (without the user id) and starts the user afresh. If the count keeps rising,
    check that every worker runs a release that knows the record's format version, and inspect one record with
    ``profilestream state inspect USER``.
    """


class UnknownFormatVersionError(StateDecodeError):
    """The value carries a format version this release cannot read: it was written by a newer release.

    Roll the newer release out to every worker (or roll it back everywhere) before records are rewritten; a
    worker that cannot read a record replaces it with a fresh one and the user's history is lost.
    """


class TruncatedStateError(StateDecodeError):
    """The value ends before the record does: a partial write or a value cut short in transit.

    Usually a bug or a damaged changelog message. The user starts afresh; report the count if it is not zero.
    """


class CorruptStateError(StateDecodeError):
    """The value's checksum or structure is wrong: the bytes are damaged or are not a state record at all.

    Check that nothing else writes to the state table or its changelog topic. The user starts afresh.
    """


class StoreNotFoundError(StateError):
    """The offline reader found no RocksDB database where it looked.

    Check the data directory (the worker's ``datadir``), the app version directory (``v1`` by default) and the
    table name; ``find_partition_stores`` lists what exists.
    """


class StoreOpenError(StateError):
    """The offline reader could not open a partition database, even after retrying.

    The worker may be compacting heavily or the files may not be readable by this user; retry, or run the
    reader as the user that runs the worker.
    """
