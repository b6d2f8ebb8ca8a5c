"""Little-endian primitives for the record codec: varints, fixed-width integers and floats."""

from __future__ import annotations

import functools
import struct
from collections.abc import Sequence

from state.errors import CorruptStateError, TruncatedStateError
from state.layout import MAX_VARINT_BYTES

_I64 = struct.Struct("<q")
_F32 = struct.Struct("<f")
_F64 = struct.Struct("<d")


def zigzag(value: int) -> int:
    """Map signed to unsigned so that small magnitudes stay small: 0, -1, 1, -2 -> 0, 1, 2, 3."""
    return value * 2 if value >= 0 else -value * 2 - 1


def unzigzag(value: int) -> int:
    """Inverse of `zigzag`."""
    return value >> 1 if not value & 1 else -((value + 1) >> 1)


@functools.cache
def _packer(code: str, count: int) -> struct.Struct:
    return struct.Struct(f"<{count}{code}")


class ByteWriter:
    """Appends primitives to a growing buffer."""

    def __init__(self) -> None:
        self.buf = bytearray()

    def u8(self, value: int) -> None:
        """One byte, 0..255."""
        self.buf.append(value)

    def uvarint(self, value: int) -> None:
        """A non-negative integer as LEB128."""
        if value < 0:
            raise ValueError("uvarint needs a non-negative value")
        while value >= 0x80:
            self.buf.append((value & 0x7F) | 0x80)
            value >>= 7
        self.buf.append(value)

    def svarint(self, value: int) -> None:
        """A signed integer as a zigzag LEB128."""
        self.uvarint(zigzag(value))

    def i64(self, value: int) -> None:
        """An 8-byte signed integer."""
        self.buf += _I64.pack(value)

    def f32(self, value: float) -> None:
        """A 4-byte float."""
        self.buf += _F32.pack(value)

    def i64s(self, values: Sequence[int]) -> None:
        """Several 8-byte signed integers, packed in one call."""
        self.buf += _packer("q", len(values)).pack(*values)

    def raw(self, data: bytes) -> None:
        """Bytes as they are."""
        self.buf += data

    def text(self, value: str) -> None:
        """A uvarint length and UTF-8 bytes."""
        data = value.encode("utf-8")
        self.uvarint(len(data))
        self.buf += data


class ByteReader:
    """Reads primitives from a buffer; running past its end raises `TruncatedStateError`."""

    def __init__(self, data: bytes | memoryview, end: int | None = None) -> None:
        self.data = bytes(data)
        self.pos = 0
        self.end = len(self.data) if end is None else end

    def _advance(self, n: int) -> int:
        """Reserve `n` bytes and return where they start."""
        start = self.pos
        if n < 0 or start + n > self.end:
            raise TruncatedStateError(f"needed {n} bytes at offset {start}, {self.end - start} left")
        self.pos = start + n
        return start

    def u8(self) -> int:
        """One byte."""
        return self.data[self._advance(1)]

    def uvarint(self) -> int:
        """A LEB128 non-negative integer of at most 64 bits."""
        pos = self.pos
        if pos < self.end and self.data[pos] < 0x80:  # fast path: most values fit one byte
            self.pos = pos + 1
            return self.data[pos]
        result = 0
        for i in range(MAX_VARINT_BYTES):
            byte = self.u8()
            result |= (byte & 0x7F) << (7 * i)
            if not byte & 0x80:
                return result
        raise CorruptStateError(f"varint longer than {MAX_VARINT_BYTES} bytes at offset {self.pos}")

    def svarint(self) -> int:
        """A zigzag LEB128 signed integer."""
        return unzigzag(self.uvarint())

    def svarints(self, n: int) -> list[int]:
        """`n` zigzag varints; the loop is inlined because bucket series are mostly one-byte values."""
        data, end, values = self.data, self.end, []
        for _ in range(n):
            pos = self.pos
            if pos < end and data[pos] < 0x80:
                self.pos = pos + 1
                raw = data[pos]
            else:
                raw = self.uvarint()
            values.append(raw >> 1 if not raw & 1 else -((raw + 1) >> 1))
        return values

    def i64s(self, n: int) -> tuple[int, ...]:
        """`n` 8-byte signed integers."""
        if n == 0:
            return ()
        return _packer("q", n).unpack_from(self.data, self._advance(8 * n))

    def count(self, min_item_bytes: int) -> int:
        """A uvarint element count, checked against the bytes left so corrupt counts fail fast."""
        n = self.uvarint()
        if n * min_item_bytes > self.end - self.pos:
            raise TruncatedStateError(f"count {n} at offset {self.pos} exceeds the remaining bytes")
        return n

    def i64(self) -> int:
        """An 8-byte signed integer."""
        value: int = _I64.unpack_from(self.data, self._advance(8))[0]
        return value

    def f32(self) -> float:
        """A 4-byte float."""
        value: float = _F32.unpack_from(self.data, self._advance(4))[0]
        return value

    def f64(self) -> float:
        """An 8-byte float."""
        value: float = _F64.unpack_from(self.data, self._advance(8))[0]
        return value

    def raw(self, n: int) -> bytes:
        """`n` bytes."""
        start = self._advance(n)
        return self.data[start : start + n]

    def text(self) -> str:
        """A uvarint length and UTF-8 bytes."""
        data = self.raw(self.count(1))
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptStateError("model version is not valid UTF-8") from exc

    def at_end(self) -> bool:
        """Whether every byte has been read."""
        return self.pos == self.end
