"""A small QR code encoder (byte mode, error correction L, versions 1-6) and a PNG writer.

Loop creation answers ``qr_code_base64`` (a PNG data URI) and ``qr_code_url`` as strings
(HITL.sh's openapi.json requires them). The only thing a local loop's QR code carries is its
absolute ``join_url``, at most 134 bytes, so a full QR library is not worth a dependency:
this follows ISO/IEC 18004 for the few versions needed, with the fixed mask 0 (any mask
decodes; the penalty rules only tune scanning contrast).
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["MAX_QR_BYTES", "qr_matrix", "qr_png"]

# version -> (data codewords per block, number of blocks, EC codewords per block), level L
_BLOCKS: dict[int, tuple[int, int, int]] = {
    1: (19, 1, 7),
    2: (34, 1, 10),
    3: (55, 1, 15),
    4: (80, 1, 20),
    5: (108, 1, 26),
    6: (68, 2, 18),
}
_ALIGN = {2: 18, 3: 22, 4: 26, 5: 30, 6: 34}
MAX_QR_BYTES = 134
"""The longest text :func:`qr_matrix` encodes (version 6-L in byte mode)."""

_EXP = [0] * 512
_LOG = [0] * 256
_value = 1
for _i in range(255):
    _EXP[_i] = _value
    _LOG[_value] = _i
    _value <<= 1
    if _value & 0x100:
        _value ^= 0x11D
for _i in range(255, 512):
    _EXP[_i] = _EXP[_i - 255]


def _mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else _EXP[_LOG[a] + _LOG[b]]


def _ec_codewords(data: list[int], count: int) -> list[int]:
    generator = [1]
    for i in range(count):
        generator = [
            (generator[j] if j < len(generator) else 0)
            ^ (_mul(generator[j - 1], _EXP[i]) if j > 0 else 0)
            for j in range(len(generator) + 1)
        ]
    remainder = [*data, *([0] * count)]
    for i in range(len(data)):
        factor = remainder[i]
        if factor:
            for j, coefficient in enumerate(generator):
                remainder[i + j] ^= _mul(coefficient, factor)
    return remainder[len(data) :]


def _codewords(text: bytes) -> tuple[int, list[int]]:
    # The smallest version whose data codewords hold the 12-bit header and the text.
    fits = [v for v, (per, count, _) in _BLOCKS.items() if len(text) + 2 <= per * count]
    if not fits:
        raise ValueError(f"{len(text)} bytes do not fit a version 1-6 QR code")
    version = fits[0]
    per_block, blocks, ec = _BLOCKS[version]
    capacity = per_block * blocks
    bits = [0, 1, 0, 0]  # byte mode
    bits += [(len(text) >> i) & 1 for i in range(7, -1, -1)]
    for byte in text:
        bits += [(byte >> i) & 1 for i in range(7, -1, -1)]
    bits += [0] * min(4, capacity * 8 - len(bits))  # terminator
    bits += [0] * (-len(bits) % 8)
    data = [int("".join(map(str, bits[i : i + 8])), 2) for i in range(0, len(bits), 8)]
    pad = 0
    while len(data) < capacity:
        data.append((0xEC, 0x11)[pad % 2])
        pad += 1
    chunks = [data[i * per_block : (i + 1) * per_block] for i in range(blocks)]
    ecs = [_ec_codewords(chunk, ec) for chunk in chunks]
    out = [chunk[i] for i in range(per_block) for chunk in chunks]
    out += [block[i] for i in range(ec) for block in ecs]
    return version, out


def _format_bits(mask: int) -> int:
    value = (0b01 << 3) | mask  # error correction level L
    remainder = value << 10
    for shift in range(4, -1, -1):
        if remainder & (1 << (shift + 10)):
            remainder ^= 0b10100110111 << shift
    return ((value << 10) | remainder) ^ 0b101010000010010


def qr_matrix(text: str) -> list[list[bool]]:
    """The QR code of ``text`` (UTF-8, at most :data:`MAX_QR_BYTES` bytes) as rows of
    modules, True for dark, without the quiet zone."""
    version, codewords = _codewords(text.encode("utf-8"))
    size = 17 + 4 * version
    dark = [[False] * size for _ in range(size)]
    fixed = [[False] * size for _ in range(size)]

    def put(row: int, col: int, value: bool) -> None:
        dark[row][col] = value
        fixed[row][col] = True

    for top, left in ((0, 0), (0, size - 7), (size - 7, 0)):
        for r in range(-1, 8):
            for c in range(-1, 8):
                row, col = top + r, left + c
                if 0 <= row < size and 0 <= col < size:
                    ring = max(abs(r - 3), abs(c - 3))
                    put(row, col, ring != 2 and ring != 4)
    for i in range(8, size - 8):
        put(6, i, i % 2 == 0)
        put(i, 6, i % 2 == 0)
    if version in _ALIGN:
        center = _ALIGN[version]
        for r in range(-2, 3):
            for c in range(-2, 3):
                put(center + r, center + c, max(abs(r), abs(c)) != 1)
    put(size - 8, 8, True)  # the dark module
    # Reserve the format areas (filled after masking).
    for i in range(9):
        fixed[8][i] = fixed[i][8] = True
    for i in range(8):
        fixed[8][size - 1 - i] = fixed[size - 1 - i][8] = True

    bits = [(byte >> i) & 1 for byte in codewords for i in range(7, -1, -1)]
    index = 0
    upward = True
    col = size - 1
    while col > 0:
        if col == 6:
            col -= 1  # the vertical timing pattern
        rows = range(size - 1, -1, -1) if upward else range(size)
        for row in rows:
            for c in (col, col - 1):
                if fixed[row][c]:
                    continue
                bit = bits[index] if index < len(bits) else 0
                index += 1
                dark[row][c] = bool(bit) ^ ((row + c) % 2 == 0)  # mask 0
        upward = not upward
        col -= 2

    fmt = _format_bits(0)
    for i in range(15):
        bit = bool((fmt >> i) & 1)
        # Around the top-left finder...
        if i < 6:
            dark[i][8] = bit
        elif i < 8:
            dark[i + 1][8] = bit
        else:
            dark[8][14 - i + (1 if i < 9 else 0)] = bit
        # ...and split between the other two.
        if i < 8:
            dark[8][size - 1 - i] = bit
        else:
            dark[size - 15 + i][8] = bit
    return dark


def qr_png(text: str, *, scale: int = 6, border: int = 4) -> bytes:
    """A black-on-white PNG of the QR code of ``text``."""
    matrix = qr_matrix(text)
    side = (len(matrix) + 2 * border) * scale
    rows = []
    for y in range(side):
        my = y // scale - border
        line = bytearray([0])  # filter type: none
        for x in range(side):
            mx = x // scale - border
            on = 0 <= my < len(matrix) and 0 <= mx < len(matrix) and matrix[my][mx]
            line.append(0 if on else 255)
        rows.append(bytes(line))

    def chunk(kind: bytes, payload: bytes) -> bytes:
        crc = zlib.crc32(kind + payload) & 0xFFFFFFFF
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b"".join(rows), 9))
        + chunk(b"IEND", b"")
    )
