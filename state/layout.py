"""Byte layout of a stored user record: every constant of the format, in one place.

A value is ``[format version: u8] [body] [crc32 of version and body: u32 little-endian]``.

Integers are LEB128 varints (``uvarint``) or zigzag varints (``svarint``) unless stated; hashes are 8-byte
little-endian signed integers; floats are little-endian IEEE 754. Timestamps are stored as non-negative
offsets from the record's own ``first_event_ms`` / ``last_event_ms``, so most take one to three bytes.

Version 3 (current) body::

    u8       flags                      bit 0: hidden vectors stored as float16 (else float32);
                                        bit 1: the base hidden vector is known
    uvarint  version                    profile version
    uvarint  len, utf-8                 model_version
    uvarint  H, then H floats           hidden vector (2 or 4 bytes each, see flags)
    uvarint  B, then B floats           base hidden vector: the state after every event older than the recent
                                        window (B = 0: the initial state)
    uvarint  base_prev                  0: no event folded into the base; else 1 + (ts of the newest such
                                        event - first_event_ms)
    3 x uvarint  positions + 1          per event type, the highest source position processed (0: none)
    svarint  first_event_ms
    uvarint  last_event_ms - first_event_ms
    uvarint  event_count
    uvarint  N, then N events           recent window, ascending (ts_ms, event_id_hash):
        u8       head                   bits 0-1 type_code, bit 2 item, bit 3 category, bit 4 amount,
                                        bits 5-7 number of query terms (7: a uvarint count follows)
        uvarint  ts_ms - previous ts_ms (the first: ts_ms - first_event_ms)
        i64      event_id_hash
        i64      item_hash              if bit 2
        i64      category_hash          if bit 3
        i64 * T  query_terms
        svarint  quantity, svarint price in thousandths     if bit 4 (0 to MAX_STORED_AMOUNT each)
    uvarint  M, then M evicted ids      ascending (ts_ms, id): uvarint last_event_ms - ts_ms, i64 id
    uvarint  S, then S bucket series:
        u8       kind (1 type counts, 2 purchases)
        uvarint  bucket_ms, uvarint retain_buckets
        uvarint  B, then B buckets      newest first: uvarint gap from the previous bucket (the first: from
                                        the bucket of last_event_ms), then `width` svarint values, each a sum
                                        saturated at MAX_STORED_AMOUNT
    uvarint  W, then W weight tables:
        u8       kind (1 categories, 2 search terms)
        uvarint  half_life_ms, uvarint capacity
        svarint  last_event_ms - reference_ms
        uvarint  K, then K entries      ascending hash: i64 hash, f32 weight

Version 2: as version 3 without the base fields and the positions and without flag bit 1 (the base is unknown after
decoding; the worker re-encodes such a user from the window at its next event).

Version 1 (the first layout: no aggregates, no dedupe memory; decoded and upgraded, never written) body::

    uvarint  version; uvarint len, utf-8 model_version; uvarint H, H * f32 hidden
    svarint  first_event_ms; uvarint last_event_ms - first_event_ms; uvarint event_count
    uvarint  N, then N events: u8 type_code, uvarint ts delta (as in v2), i64 event_id_hash, i64 item_hash,
             i64 category_hash, uvarint T, T * i64 query_terms, svarint quantity, f64 price
"""

from __future__ import annotations

FORMAT_VERSION = 3
"""The version `encode_state` writes."""
FORMAT_V1 = 1
FORMAT_V2 = 2
READABLE_VERSIONS = frozenset({FORMAT_V1, FORMAT_V2, FORMAT_VERSION})

CRC_BYTES = 4
MIN_VALUE_BYTES = 1 + CRC_BYTES

FLAG_HIDDEN_FLOAT16 = 0x01
FLAG_BASE_KNOWN = 0x02
KNOWN_FLAGS = FLAG_HIDDEN_FLOAT16 | FLAG_BASE_KNOWN

HEAD_TYPE_MASK = 0x03
HEAD_HAS_ITEM = 0x04
HEAD_HAS_CATEGORY = 0x08
HEAD_HAS_AMOUNT = 0x10
HEAD_TERMS_SHIFT = 5
HEAD_TERMS_ESCAPE = 7
"""A term count of 7 or more is written as 7 in the head followed by a uvarint count."""

MAX_VARINT_BYTES = 10
"""A 64-bit value needs at most 10 LEB128 bytes; more means the data is corrupt."""

MIN_STORED_TS_MS = 946_684_800_000
"""2000-01-01: no record holds an earlier time (the event contract refuses earlier events)."""
MAX_STORED_TS_MS = 4_102_444_800_000
"""2100-01-01: no record holds this time or a later one (the event contract refuses such events)."""
MAX_STORED_COUNT = 2**63 - 1
"""The largest version, event count or input position a record holds: a signed 64-bit integer, as consumers of the
profile topic read it."""

MAX_STORED_AMOUNT = 2**62
"""The largest quantity, price in thousandths or bucket-series sum a record holds. Its zigzag form (2**63) fits
`MAX_VARINT_BYTES`, and it is a signed 64-bit integer for any reader in another language. `StateEvent` refuses
larger quantities and prices; bucket sums saturate here (`state.windows.BucketSeries.add`), since a user's
number of purchases, and so their spend, has no bound."""
