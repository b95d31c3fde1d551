"""Label Studio brush RLE: what we write decodes to the mask (a decoder written from the format).

The real server's SDK decodes it too, in test_label_studio_server.py.
"""

from __future__ import annotations

import numpy as np

from neuroonco.review.ls_brush import encode_rle, mask_rle


def decode(rle: list[int]) -> np.ndarray:
    """thi.ng rle-pack decode, as Label Studio's frontend does it."""
    bits = "".join(f"{b:08b}" for b in rle)
    pos = 0

    def read(n: int) -> int:
        nonlocal pos
        pos += n
        return int(bits[pos - n : pos], 2)

    num, word = read(32), read(5) + 1
    widths = [read(4) + 1 for _ in range(4)]
    out = np.zeros(num, np.uint8)
    i = 0
    while i < num:
        repeat = read(1)
        j = i + 1 + read(widths[read(2)])
        if repeat:
            out[i:j] = read(word)
        else:
            for k in range(i, j):
                out[k] = read(word)
        i = j
    return out


def test_mask_round_trips_in_every_channel():
    rng = np.random.default_rng(0)
    for mask in (
        np.zeros((5, 7), np.uint8),
        (rng.random((16, 16)) > 0.7).astype(np.uint8),
        np.pad(np.ones((40, 30), np.uint8), ((100, 116), (10, 216))),  # one long background run
    ):
        decoded = decode(mask_rle(mask)).reshape(*mask.shape, 4)
        assert (decoded == np.where(mask > 0, 255, 0)[..., None]).all()


def test_runs_longer_than_the_widest_field_are_split():
    values = np.full(70_000, 9, np.uint8)
    rle = encode_rle(values)
    assert (decode(rle) == 9).all() and len(rle) < 20
