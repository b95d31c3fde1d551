"""Mask geometry and intensity hints on synthetic masks and images with known answers."""

from __future__ import annotations

import json
import time
from collections import deque

import numpy as np
import pytest

from neuroonco.tools.measurements import (
    dilate,
    erode,
    intensity_stats,
    label_components,
    mask_vocabulary,
    measure_mask,
)

H = W = 240
YY, XX = np.mgrid[:H, :W]


def disc(cx: float, cy: float, r: float) -> np.ndarray:
    return ((XX - cx) ** 2 + (YY - cy) ** 2 <= r * r).astype(np.uint8)


def ellipse(cx: float, cy: float, a: float, b: float) -> np.ndarray:
    return (((XX - cx) / a) ** 2 + ((YY - cy) / b) ** 2 <= 1).astype(np.uint8)


def star(cx: float, cy: float, r0: float, r1: float, arms: int) -> np.ndarray:
    angle = np.arctan2(YY - cy, XX - cx)
    radius = np.hypot(XX - cx, YY - cy)
    return (radius <= r0 + (r1 - r0) * np.abs(np.cos(arms * angle / 2)) ** 8).astype(np.uint8)


def measure(mask: np.ndarray, **kw) -> dict:
    result = measure_mask(mask, orientation_known=kw.pop("orientation_known", False), **kw)
    assert result is not None
    return result


# --- connected components -------------------------------------------------------------------


def flood_labels(fg: np.ndarray, connectivity: int) -> np.ndarray:
    """Reference labelling by breadth-first flood fill."""
    steps = [(-1, 0), (1, 0), (0, -1), (0, 1)]
    if connectivity == 8:
        steps += [(-1, -1), (-1, 1), (1, -1), (1, 1)]
    labels = np.zeros(fg.shape, int)
    n = 0
    for y, x in zip(*np.nonzero(fg), strict=True):
        if labels[y, x]:
            continue
        n += 1
        labels[y, x] = n
        queue = deque([(y, x)])
        while queue:
            cy, cx = queue.popleft()
            for dy, dx in steps:
                ny, nx = cy + dy, cx + dx
                inside = 0 <= ny < fg.shape[0] and 0 <= nx < fg.shape[1]
                if inside and fg[ny, nx] and not labels[ny, nx]:
                    labels[ny, nx] = n
                    queue.append((ny, nx))
    return labels


@pytest.mark.parametrize("connectivity", [4, 8])
@pytest.mark.parametrize("density", [0.3, 0.5, 0.6])
def test_label_components_matches_flood_fill(connectivity: int, density: float) -> None:
    rng = np.random.default_rng(int(density * 10) + connectivity)
    fg = rng.random((40, 50)) < density
    labels, n = label_components(fg, connectivity=connectivity)
    ref = flood_labels(fg, connectivity)
    assert n == ref.max()
    assert ((labels > 0) == fg).all()
    # Same partition: the label pairs correspond one to one.
    pairs = set(zip(labels[fg].tolist(), ref[fg].tolist(), strict=True))
    assert len(pairs) == n


def test_label_components_diagonal_and_empty() -> None:
    m = np.zeros((5, 5), np.uint8)
    m[1, 1] = m[2, 2] = 1
    assert label_components(m)[1] == 1
    assert label_components(m, connectivity=4)[1] == 2
    assert label_components(np.zeros((4, 4)))[1] == 0
    with pytest.raises(ValueError):
        label_components(m, connectivity=6)


def test_label_components_is_fast_on_a_noisy_slice() -> None:
    noisy = np.random.default_rng(0).random((H, W)) < 0.5
    start = time.perf_counter()
    label_components(noisy)
    assert time.perf_counter() - start < 0.2  # ~10 ms typical; loose for slow CI machines


def test_dilate_and_erode() -> None:
    d = disc(120, 120, 20).astype(bool)
    assert (dilate(d, 3) >= d).all() and dilate(d, 3).sum() > d.sum()
    assert (erode(d, 3) <= d).all() and erode(d, 3).sum() < d.sum()
    edge = np.ones((10, 10), bool)
    assert not erode(edge, 1)[0].any()  # outside the image counts as background


# --- measure_mask ---------------------------------------------------------------------------


def test_empty_mask_gives_none() -> None:
    assert measure_mask(np.zeros((H, W), np.uint8), orientation_known=False) is None


@pytest.mark.parametrize("r", [5, 12, 30, 60])
def test_disc_is_round_solitary(r: int) -> None:
    m = measure(disc(120.3, 110.6, r))
    assert 0.85 <= m["circularity"] <= 1.0
    assert m["elongation"] < 1.15
    assert m["shape"] == "round_oval"
    assert m["components"] == 1 and m["spread"] == "solitary"
    assert m["largest_component_ratio"] == 1.0


def test_elongated_ellipse_is_lobulated() -> None:
    m = measure(ellipse(120, 120, 50, 20))
    assert m["elongation"] == pytest.approx(2.5, abs=0.1)
    assert m["shape"] == "lobulated"


def test_star_is_irregular() -> None:
    m = measure(star(120, 120, 6, 45, 5))
    assert m["circularity"] < 0.5
    assert m["shape"] == "irregular"


def test_holes_do_not_make_a_ring_irregular() -> None:
    ring = disc(120, 120, 40) & ~disc(120, 120, 25).astype(bool)
    assert measure(ring.astype(np.uint8))["shape"] == "round_oval"


def test_keys_are_json_plain() -> None:
    m = measure(disc(60, 60, 10), orientation_known=True)
    assert json.loads(json.dumps(m)) == m
    for key in ("area_px", "area_fraction", "circularity", "elongation", "components", "bbox"):
        assert key in m
    assert m["bbox"] == [50, 50, 70, 70]
    assert m["laterality_source"] == "orientation"


def rect_mask(*boxes: tuple[int, int, int, int], size: int = 100) -> np.ndarray:
    m = np.zeros((size, size), np.uint8)
    for x0, y0, w, h in boxes:
        m[y0 : y0 + h, x0 : x0 + w] = 1
    return m


@pytest.mark.parametrize(
    ("box", "size"),
    [((10, 10, 9, 11), "small"), ((10, 10, 10, 10), "medium"), ((10, 10, 499, 1), None)],
)
def test_size_thresholds(box: tuple[int, int, int, int], size: str | None) -> None:
    if size is None:  # 499 px of 10,000: just below 5%
        m = measure(rect_mask((0, 10, 100, 4), (0, 20, 99, 1)))
        assert m["area_px"] == 499 and m["size"] == "medium"
        m = measure(rect_mask((0, 10, 100, 5)))
        assert m["area_px"] == 500 and m["size"] == "large"
    else:
        assert measure(rect_mask(box))["size"] == size


def test_vocabulary_rule_boundaries() -> None:
    assert mask_vocabulary(0.0099, 0.9, 1.0, 1, 1.0)["size"] == "small"
    assert mask_vocabulary(0.01, 0.9, 1.0, 1, 1.0)["size"] == "medium"
    assert mask_vocabulary(0.05, 0.9, 1.0, 1, 1.0)["size"] == "large"
    assert mask_vocabulary(0.1, 0.499, 1.0, 1, 1.0)["shape"] == "irregular"
    assert mask_vocabulary(0.1, 0.5, 1.0, 1, 1.0)["shape"] == "lobulated"
    assert mask_vocabulary(0.1, 0.8, 1.5, 1, 1.0)["shape"] == "round_oval"
    assert mask_vocabulary(0.1, 0.8, 1.51, 1, 1.0)["shape"] == "lobulated"
    assert mask_vocabulary(0.1, 0.79, 1.0, 1, 1.0)["shape"] == "lobulated"
    assert mask_vocabulary(0.1, 0.9, 1.0, 2, 0.7)["spread"] == "dominant_with_satellites"
    assert mask_vocabulary(0.1, 0.9, 1.0, 2, 0.69)["spread"] == "multifocal"


def test_spread_from_component_sizes() -> None:
    dominant = measure(rect_mask((10, 10, 10, 7), (50, 50, 10, 3)))  # 70 + 30 px
    assert dominant["components"] == 2 and dominant["largest_component_ratio"] == 0.7
    assert dominant["spread"] == "dominant_with_satellites"
    multi = measure(rect_mask((10, 10, 23, 3), (50, 50, 31, 1)))  # 69 + 31 px
    assert multi["spread"] == "multifocal"
    three = measure((disc(50, 50, 10) | disc(150, 60, 9) | disc(100, 180, 10)).astype(np.uint8))
    assert three["components"] == 3 and three["spread"] == "multifocal"


def test_specks_do_not_count_as_lesions() -> None:
    m = disc(100, 100, 20)
    m[5, 5] = m[5, 6] = 1  # a 2-px speck
    result = measure(m)
    assert result["components"] == 1 and result["spread"] == "solitary"
    assert result["area_px"] == int(disc(100, 100, 20).sum()) + 2


@pytest.mark.parametrize(
    ("cx", "cy", "location"),
    [
        (30, 30, "upper_left"),
        (120, 30, "upper_center"),
        (210, 30, "upper_right"),
        (30, 120, "center_left"),
        (120, 120, "center"),
        (210, 120, "center_right"),
        (30, 210, "lower_left"),
        (120, 210, "lower_center"),
        (210, 210, "lower_right"),
    ],
)
def test_location_grid(cx: int, cy: int, location: str) -> None:
    m = measure(disc(cx, cy, 10))
    assert m["location"] == location
    assert m["centroid"] == pytest.approx([(cx + 0.5) / W, (cy + 0.5) / H], abs=1e-3)


def test_laterality_radiological_convention() -> None:
    on_image_left = measure(disc(60, 120, 15))
    assert on_image_left["laterality"] == "right"  # image left = patient's right
    assert on_image_left["laterality_source"] == "radiological_convention"
    assert measure(disc(180, 120, 15))["laterality"] == "left"
    assert measure(disc(120, 120, 30))["laterality"] == "midline"
    both = (disc(60, 120, 15) | disc(180, 120, 15)).astype(np.uint8)
    assert measure(both)["laterality"] == "bilateral"
    # 95% on the image's left: the minority side (< 10%) is ignored.
    mostly_left = (disc(60, 120, 30) | disc(180, 120, 6)).astype(np.uint8)
    assert measure(mostly_left)["laterality"] == "right"
    # Just over 10% across the midline, in one piece: midline.
    crossing = ellipse(105, 120, 30, 10)
    m = measure(crossing)
    assert 0.1 < m["image_right_share"] < 0.3 and m["laterality"] == "midline"


def test_subregions_with_several_labels() -> None:
    m = disc(120, 120, 30)
    m[disc(120, 120, 15).astype(bool)] = 2
    names = {1: "edema", 2: "enhancing"}
    result = measure(m, mask_labels=names)
    assert set(result["subregions"]) == {"edema", "enhancing"}
    assert sum(result["subregions"].values()) == pytest.approx(1.0, abs=1e-3)
    assert "subregions" not in measure(disc(120, 120, 30), mask_labels=names)


# --- intensity_stats ------------------------------------------------------------------------


def head(seed: int = 0, noise: float = 3.0) -> np.ndarray:
    """A 'brain' of mean 100 in an ellipse on a zero background."""
    rng = np.random.default_rng(seed)
    img = np.zeros((H, W))
    brain = ellipse(120, 120, 100, 110).astype(bool)
    img[brain] = 100 + rng.normal(0, noise, brain.sum())
    return img


def blur(img: np.ndarray, passes: int) -> np.ndarray:
    for _ in range(passes):
        p = np.pad(img, 1, mode="edge")
        img = sum(p[dy : dy + H, dx : dx + W] for dy in range(3) for dx in range(3)) / 9
    return img


LESION = disc(120, 110, 25)


def with_lesion(value: float, mask: np.ndarray = LESION, seed: int = 0) -> np.ndarray:
    img = head(seed)
    fg = mask != 0
    img[fg] = value + np.random.default_rng(seed + 1).normal(0, 3, fg.sum())
    return img


def test_empty_mask_gives_no_stats() -> None:
    assert intensity_stats({"t1": head()}, np.zeros((H, W), np.uint8)) == {}


def test_hyper_hypo_iso_mixed() -> None:
    hyper = intensity_stats({"t2": with_lesion(160)}, LESION)["t2"]
    assert hyper["contrast_ratio"] > 1.15 and hyper["signal_intensity"] == "hyperintense"
    assert hyper["normal_mean"] == pytest.approx(100, abs=2)
    assert intensity_stats({"t1": with_lesion(60)}, LESION)["t1"]["signal_intensity"] == (
        "hypointense"
    )
    assert intensity_stats({"t1": with_lesion(102)}, LESION)["t1"]["signal_intensity"] == (
        "isointense"
    )
    mixed = with_lesion(160)
    mixed[LESION.astype(bool) & (XX < 120)] = 40
    assert intensity_stats({"t2": mixed}, LESION)["t2"]["signal_intensity"] == "mixed"


def test_texture() -> None:
    stats = intensity_stats({"t1": with_lesion(160)}, LESION)["t1"]
    assert stats["cv"] < 0.15 and stats["texture"] == "homogeneous"
    img = head()
    rng = np.random.default_rng(3)
    img[LESION.astype(bool)] = rng.choice([60.0, 200.0], LESION.sum())
    assert intensity_stats({"t1": img}, LESION)["t1"]["texture"] == "heterogeneous"


def test_margins_sharp_and_blurred() -> None:
    sharp = intensity_stats({"t2": with_lesion(180)}, LESION)["t2"]
    assert sharp["margins"] == "well_circumscribed" and sharp["edge_sharpness"] > 0.3
    soft = intensity_stats({"t2": blur(with_lesion(180), 6)}, LESION)["t2"]
    assert soft["margins"] == "ill_defined"
    iso = intensity_stats({"t2": with_lesion(101)}, LESION)["t2"]
    assert iso["margins"] is None  # no edge to judge


def test_ring_enhancement_only_on_t1ce() -> None:
    img = with_lesion(60)
    rim = LESION.astype(bool) & ~disc(120, 110, 19).astype(bool)
    img[rim] = 220
    stats = intensity_stats({"t1ce": img, "t1": img}, LESION)
    assert stats["t1ce"]["enhancement"] == "ring"
    assert stats["t1"]["enhancement"] is None


def test_solid_patchy_and_no_enhancement() -> None:
    assert intensity_stats({"t1ce": with_lesion(200)}, LESION)["t1ce"]["enhancement"] == "solid"
    assert intensity_stats({"t1ce": with_lesion(100)}, LESION)["t1ce"]["enhancement"] == "none"
    patchy = with_lesion(100)
    for cx, cy in [(110, 100), (132, 118), (115, 125)]:
        patchy[disc(cx, cy, 5).astype(bool)] = 220
    assert intensity_stats({"t1ce": patchy}, LESION)["t1ce"]["enhancement"] == "patchy"


def test_edema_from_named_label() -> None:
    mask = disc(120, 110, 30)
    mask[disc(120, 110, 14).astype(bool)] = 3  # core ~22% of the lesion, edema ~78%
    img = with_lesion(150, mask)
    labels = {2: "edema", 3: "enhancing"}
    mask[mask == 1] = 2
    stats = intensity_stats({"flair": img, "t1": img}, mask, mask_labels=labels)
    assert stats["flair"]["edema"] == "extensive"
    assert stats["t1"]["edema"] is None
    assert set(stats["flair"]["subregion_means"]) == {"edema", "enhancing"}


def test_edema_from_peri_lesional_signal() -> None:
    img = with_lesion(150)
    halo = disc(120, 110, 40).astype(bool) & ~LESION.astype(bool)
    img[halo] = 150
    assert intensity_stats({"flair": img}, LESION)["flair"]["edema"] == "extensive"
    assert intensity_stats({"flair": with_lesion(150)}, LESION)["flair"]["edema"] == "none"


def test_negative_scale_gives_no_ratio_hints() -> None:
    img = with_lesion(160) - 100  # z-score-like: negative values, ratios meaningless
    img[head() == 0] = 0
    stats = intensity_stats({"t1ce": img}, LESION)["t1ce"]
    assert stats["contrast_ratio"] is None and stats["signal_intensity"] is None
    assert stats["enhancement"] is None
    assert json.loads(json.dumps(stats)) == stats


def test_shape_mismatch_is_an_error() -> None:
    with pytest.raises(ValueError, match="shape"):
        intensity_stats({"t1": np.ones((10, 10))}, LESION)


def test_sagittal_laterality_is_the_slice_position() -> None:
    from neuroonco.tools.measurements import sagittal_side

    mask = np.zeros((40, 40), np.uint8)
    mask[5:15, 2:12] = 1  # on the image's left: meaningless for side in a sagittal slice
    for position, side in ((0.2, "right"), (0.52, "midline"), (0.8, "left")):
        facts = measure_mask(
            mask, orientation_known=True, plane="sagittal", slice_position=position
        )
        assert facts["laterality"] == side and facts["laterality_source"] == "slice_position"
        assert "image_left_share" not in facts
    assert sagittal_side(None) is None
    unknown = measure_mask(mask, orientation_known=True, plane="sagittal")
    assert unknown["laterality"] is None and unknown["laterality_source"] is None
    # Axial and coronal slices keep the image-half rule (radiological: image left = patient right).
    assert measure_mask(mask, orientation_known=True, plane="coronal")["laterality"] == "right"
