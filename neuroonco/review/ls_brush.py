"""A binary mask as Label Studio's brush RLE, so the mask arrives as a BrushLabels pre-annotation.

Label Studio stores a brush region as the run-length packing of thi.ng's ``rle-pack`` over the
flattened RGBA pixels (each mask byte repeated for the 4 channels): a bit stream of a 32-bit
value count, the word size less one (5 bits), four run-length field widths less one (4 bits
each), then runs. Each run here is a repeat run: bit ``1``, a 2-bit index into the widths, the run
length less one in that many bits, the 8-bit value. Runs longer than the widest field are split.
The stream is padded to whole bytes and given as a list of byte values. The real server's SDK
decodes what this writes in tests/neuroonco/review/test_label_studio_server.py.
"""

from __future__ import annotations

import numpy as np

WORD_BITS = 8
RUN_WIDTHS: tuple[int, ...] = (3, 4, 8, 16)  # bits for (run length - 1), chosen per run


def _runs(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lengths, values) of the runs of equal values in a 1-d array."""
    change = np.flatnonzero(values[1:] != values[:-1]) + 1
    starts = np.concatenate(([0], change))
    ends = np.concatenate((change, [values.size]))
    return ends - starts, values[starts]


def encode_rle(values: np.ndarray) -> list[int]:
    """Label Studio RLE bytes of a 1-d uint8 array."""
    flat = np.asarray(values, dtype=np.uint8).ravel()
    bits = [f"{flat.size:032b}", f"{WORD_BITS - 1:05b}"]
    bits += [f"{w - 1:04b}" for w in RUN_WIDTHS]
    longest = 1 << RUN_WIDTHS[-1]
    if flat.size:
        for length, value in zip(*_runs(flat), strict=True):
            left = int(length)
            while left > 0:
                n = min(left, longest)
                index = next(i for i, w in enumerate(RUN_WIDTHS) if n <= 1 << w)
                width = RUN_WIDTHS[index]
                bits.append(f"1{index:02b}{n - 1:0{width}b}{int(value):08b}")
                left -= n
    stream = "".join(bits)
    stream += "0" * (-len(stream) % 8)
    return [int(stream[i : i + 8], 2) for i in range(0, len(stream), 8)]


def mask_rle(mask: np.ndarray) -> list[int]:
    """The RLE of a 2-d mask (nonzero = lesion) as Label Studio draws it: 255 in every channel."""
    binary = np.where(np.asarray(mask) > 0, 255, 0).astype(np.uint8)
    return encode_rle(np.repeat(binary.ravel(), 4))
