"""Bits per frame of an H.264/HEVC Annex-B elementary stream: split it into access units
at NAL-unit start codes and read each slice header's picture type, so every frame's size
(parameter sets included) is known and their sum equals the file size."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class AccessUnit:
    """One coded frame in the elementary stream: its bytes (start codes and parameter
    sets included) and picture type from the slice header."""

    kind: str                  # "I", "P" or "B"
    size: int                  # bytes
    nal_types: list[int] = field(default_factory=list)


def _nal_units(data: bytes) -> list[tuple[int, int]]:
    """(start, header) offsets of the NAL units in an Annex-B stream: ``start`` at the
    first byte of the start code (a leading zero_byte included), ``header`` just after it."""
    units = []
    i = data.find(b"\x00\x00\x01")
    while i != -1:
        start = i - 1 if i > 0 and data[i - 1] == 0 else i
        units.append((start, i + 3))
        i = data.find(b"\x00\x00\x01", i + 3)
    return units


class _Bits:
    """MSB-first reader over an RBSP (emulation-prevention bytes removed)."""

    def __init__(self, payload: bytes):
        rbsp = bytearray()
        zeros = 0
        for byte in payload:
            if zeros >= 2 and byte == 3:
                zeros = 0
                continue
            rbsp.append(byte)
            zeros = zeros + 1 if byte == 0 else 0
        self.data = bytes(rbsp)
        self.pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            if self.pos >= 8 * len(self.data):
                raise ValueError("slice header ends early")
            value = (value << 1) | ((self.data[self.pos // 8] >> (7 - self.pos % 8)) & 1)
            self.pos += 1
        return value

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise ValueError("bad exp-Golomb code")
        return (1 << zeros) - 1 + self.u(zeros)


_H264_SLICE = {0: "P", 1: "B", 2: "I", 3: "P", 4: "I"}  # SP counts as P, SI as I
_HEVC_SLICE = {0: "B", 1: "P", 2: "I"}


def split_access_units(data: bytes, codec: str) -> list[AccessUnit]:
    """Split a raw ``hevc`` or ``h264`` Annex-B stream into access units (coded frames).

    Every byte belongs to exactly one unit (parameter sets and SEI go with the frame
    that follows them), so the sizes add up to the file size. A new unit starts at the
    first slice of a picture (HEVC ``first_slice_segment_in_pic_flag``, H.264
    ``first_mb_in_slice == 0``) or at a parameter set / SEI / delimiter after a slice.
    """
    if codec not in ("hevc", "h264"):
        raise ValueError(f"unknown elementary stream {codec!r}")
    nals = _nal_units(data)
    if not nals or nals[0][0] != 0:
        raise ValueError(f"not an Annex-B {codec} stream (no start code at byte 0)")
    units: list[AccessUnit] = []
    boundaries: list[int] = []
    seen_slice = False
    extra_bits: dict[int, int] = {}  # HEVC PPS id -> num_extra_slice_header_bits
    for n, (start, header) in enumerate(nals):
        end = nals[n + 1][0] if n + 1 < len(nals) else len(data)
        payload = data[header:end]
        if not payload:
            raise ValueError(f"empty NAL unit at byte {start}")
        if codec == "hevc":
            nal_type = (payload[0] >> 1) & 0x3F
            is_slice = nal_type < 32
            starts_au = nal_type in (32, 33, 34, 35, 39) or 41 <= nal_type <= 44 or 48 <= nal_type <= 55
        else:
            nal_type = payload[0] & 0x1F
            is_slice = nal_type in (1, 5)
            starts_au = nal_type in (6, 7, 8, 9) or 14 <= nal_type <= 18
        kind = None
        first = False
        if is_slice:
            bits = _Bits(payload[2:64] if codec == "hevc" else payload[1:64])
            if codec == "hevc":
                first = bool(bits.u(1))
                if first:
                    if 16 <= nal_type <= 23:
                        bits.u(1)  # no_output_of_prior_pics_flag
                    pps = bits.ue()
                    bits.u(extra_bits.get(pps, 0))
                    kind = _HEVC_SLICE.get(bits.ue(), "?")
            else:
                first = bits.ue() == 0
                if first:
                    kind = _H264_SLICE.get(bits.ue() % 5, "?")
        elif codec == "hevc" and nal_type == 34:  # PPS: remember its extra slice-header bits
            bits = _Bits(payload[2:64])
            pps_id = bits.ue()
            bits.ue()  # sps id
            bits.u(2)  # dependent_slice_segments_enabled_flag, output_flag_present_flag
            extra_bits[pps_id] = bits.u(3)
        if not units or (seen_slice and (starts_au or first)):
            units.append(AccessUnit(kind="?", size=0))
            boundaries.append(start)
            seen_slice = False
        unit = units[-1]
        unit.nal_types.append(nal_type)
        if is_slice:
            seen_slice = True
            if kind is not None:
                unit.kind = kind
    boundaries.append(len(data))
    for unit, (a, b) in zip(units, zip(boundaries, boundaries[1:])):
        unit.size = b - a
    if units and not seen_slice:
        raise ValueError(f"{codec} stream ends without a slice")
    return units
