"""Seeded synthetic brain-MRI phantoms: the test data and demo data of the project.

Nothing can be downloaded here, so every reader, measurement and agent is exercised on phantoms.
A phantom is a head (scalp, skull, CSF, grey matter rim, white matter core, lateral ventricles)
with zero or more lesions (necrotic core, enhancing rim, surrounding edema), rendered as the four
BraTS sequences with plausible relative intensities. Arrays are in the canonical orientation of
:mod:`neuroonco.tools.readers.base`: ``(z, y, x)`` = (inferior->superior, anterior->posterior,
patient right->left), so a lesion on the patient's left has a larger ``x`` than the head centre.

Everything is vectorised (broadcast coordinates, a lookup table per sequence, smooth noise by
separable interpolation of a coarse grid), so a 155x240x240 four-sequence phantom takes a fraction
of a second. The same seed always gives the same phantom; different seeds give different heads.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from neuroonco.schemas.vocabulary import normalise_label

SEQUENCES = ("t1", "t1ce", "t2", "flair")
FULL_SHAPE = (155, 240, 240)
FOV_MM = (155.0, 240.0, 240.0)
"""Field of view of every phantom: a smaller shape means coarser voxels, not a smaller head."""

BG, SCALP, SKULL, CSF, GM, WM, NECROSIS, EDEMA, ENHANCING = range(9)
# Relative signal per tissue code above (BG, scalp, skull, CSF, GM, WM, necrosis, edema, enh.).
# t1: tumour hypo; t1ce: rim bright; t2/flair: edema and tumour hyper; flair: CSF dark.
_SIGNAL = {
    "t1": (0, 850, 110, 260, 560, 760, 220, 470, 500),
    "t1ce": (0, 850, 110, 260, 560, 760, 220, 470, 1150),
    "t2": (0, 550, 90, 1200, 760, 560, 1250, 1000, 880),
    "flair": (0, 480, 90, 150, 700, 540, 620, 1080, 920),
}
# Tissue by normalised head radius, in hundredths: WM < .72 <= GM < .84 <= CSF < .88 <= skull
# < .94 <= scalp < 1.0 <= background.
_LAYERS = np.array(
    [WM] * 72 + [GM] * 12 + [CSF] * 4 + [SKULL] * 6 + [SCALP] * 6 + [BG] * 2, dtype=np.uint8
)
_BRAIN_RHO, _SKULL_RHO = 0.84, 0.88

# Per diagnosis: necrotic core (fraction of the radius), edema extent (multiple of the radius),
# placement, default radius range in mm.
_KINDS = {
    "glioma": (0.55, (1.4, 1.9), "intra", (14.0, 26.0)),
    "meningioma": (0.0, (1.05, 1.35), "peripheral", (10.0, 20.0)),
    "pituitary_tumor": (0.0, (1.0, 1.0), "sellar", (6.0, 11.0)),
    "metastasis": (0.4, (1.8, 2.6), "intra", (5.0, 11.0)),
}


@dataclass
class Phantom:
    """Four sequences, a BraTS-2023-convention label map and the ground truth that made them."""

    volumes: dict[str, np.ndarray]
    """Sequence ("t1", "t1ce", "t2", "flair") -> float32 ``(z, y, x)`` volume."""
    mask: np.ndarray
    """uint8 labels: 0 background, 1 necrotic core, 2 edema, 3 enhancing."""
    truth: dict
    """JSON-safe facts: tumour, diagnosis, n_lesions, side, centre(s) in voxels, radius, ..."""
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Voxel size in mm, ``(z, y, x)`` order; 1 mm at the BraTS shape."""


@dataclass
class _Lesion:
    centre: np.ndarray  # voxels, (z, y, x)
    radius: float  # mm
    semi: np.ndarray  # per-axis stretch of the radius
    core: float
    edema: float
    kind: str  # round | lobulated | irregular
    placement: str  # intra | peripheral | sellar
    lobes: list[tuple[np.ndarray, float]] = field(default_factory=list)  # (offset mm, radius mm)


@dataclass
class _Head:
    centre: np.ndarray  # voxels, (z, y, x)
    semi: np.ndarray  # mm, (z, y, x)
    yaw: float  # radians, rotation in the axial plane
    egg: float = 0.0  # how much wider the back of the head is than the front

    def to_voxel(self, local: np.ndarray, spacing: np.ndarray) -> np.ndarray:
        """Head-local coordinates (units of the semi-axes; +x = patient left) to voxels."""
        mm = np.asarray(local, dtype=float) * self.semi
        c, s = np.cos(self.yaw), np.sin(self.yaw)
        x = c * mm[2] - s * mm[1]
        y = s * mm[2] + c * mm[1]
        return self.centre + np.array([mm[0], y, x]) / spacing


def _interp_matrix(n: int, c: int) -> np.ndarray:
    pos = np.linspace(0.0, c - 1.0, n)
    i0 = np.clip(np.floor(pos).astype(int), 0, c - 2)
    w = (pos - i0).astype(np.float32)
    m = np.zeros((n, c), dtype=np.float32)
    m[np.arange(n), i0] = 1.0 - w
    m[np.arange(n), i0 + 1] = w
    return m


def smooth_noise(rng: np.random.Generator, shape: tuple[int, ...], cells: int) -> np.ndarray:
    """A smooth zero-mean random field: a coarse Gaussian grid (``cells`` per axis at most)
    linearly interpolated to ``shape``. Separable matrix products keep it fast at full size."""
    coarse = rng.standard_normal(tuple(max(2, min(cells, n)) for n in shape)).astype(np.float32)
    out = coarse
    # Interpolate the last axes first so the final (largest) product comes out contiguous.
    for axis in reversed(range(len(shape))):
        out = np.tensordot(_interp_matrix(shape[axis], out.shape[axis]), out, axes=([1], [axis]))
        out = np.moveaxis(out, 0, axis)
    return np.ascontiguousarray(out)


def _make_head(rng: np.random.Generator, shape, spacing: np.ndarray, scale: float = 1.0) -> _Head:
    semi = np.array([70.0, 92.0, 72.0]) * rng.uniform(0.92, 1.08, 3) * scale
    shift_mm = rng.uniform([-5, -6, -4], [5, 6, 4])
    centre = (np.array(shape) - 1) / 2.0 + shift_mm / spacing
    yaw = float(np.deg2rad(rng.uniform(-8, 8)))
    return _Head(centre=centre, semi=semi, yaw=yaw, egg=float(rng.uniform(0.0, 0.12)))


def _place(rng, head: _Head, spacing, placement: str, sign: float, r_mm: float) -> np.ndarray:
    """Centre (voxels) of a lesion of radius ``r_mm`` for a placement kind and side sign."""
    r_norm = r_mm / float(head.semi.min())
    if placement == "sellar":
        return head.to_voxel(np.array([-0.42, -0.2, 0.0]), spacing)
    if placement == "peripheral":  # extra-axial: the lesion abuts the inner table of the skull
        d = np.array([rng.uniform(0.0, 0.5), rng.uniform(-0.5, 0.5), sign * rng.uniform(0.6, 1.0)])
        return head.to_voxel(d / np.linalg.norm(d) * (0.86 - 0.9 * r_norm), spacing)
    # Intra-axial: the enhancing lesion stays inside the brain and on its side of the midline.
    rx = r_mm / float(head.semi[2])
    x = min(max(rx + 0.04, rng.uniform(0.25, 0.55)), max(rx + 0.04, 0.8 - rx))
    yz = np.array([rng.uniform(-0.1, 0.4), rng.uniform(-0.45, 0.45)])
    budget = max((0.8 - r_norm) ** 2 - x**2, 0.0) ** 0.5
    if np.linalg.norm(yz) > budget:
        yz = yz * budget / np.linalg.norm(yz)
    return head.to_voxel(np.array([yz[0], yz[1], sign * x]), spacing)


def _make_lesions(rng, head, spacing, kind, n, sign, radius_mm, shape_kind) -> list[_Lesion]:
    core, (e_lo, e_hi), placement, (r_lo, r_hi) = _KINDS.get(kind, _KINDS["glioma"])
    lesions: list[_Lesion] = []
    for i in range(n):
        r = radius_mm if radius_mm is not None else rng.uniform(r_lo, r_hi)
        r = r if i == 0 else r * rng.uniform(0.45, 0.75)
        for _ in range(30):  # rejection sampling keeps lesions of one case apart
            c = _place(rng, head, spacing, placement if i == 0 else "intra", sign, r)
            if all(
                np.linalg.norm((c - o.centre) * spacing) > 1.8 * (r + o.radius) for o in lesions
            ):
                break
        lobes = []
        if shape_kind == "lobulated":
            for _ in range(int(rng.integers(3, 6))):
                d = rng.standard_normal(3)
                d[0] *= 0.5
                lobes.append((d / np.linalg.norm(d) * 0.8 * r, r * rng.uniform(0.45, 0.65)))
        stretch = rng.uniform(0.85, 1.15, 3) if shape_kind != "round" else rng.uniform(0.9, 1.1, 3)
        where = placement if i == 0 else "intra"
        edema = rng.uniform(e_lo, e_hi)
        lesions.append(_Lesion(c, r, stretch, core, edema, shape_kind, where, lobes))
    return lesions


def _box(centre, extent_mm, spacing, shape, z0: int, z1: int):
    lo = np.floor(centre - extent_mm / spacing).astype(int)
    hi = np.ceil(centre + extent_mm / spacing).astype(int) + 1
    lo = np.maximum(lo, [z0, 0, 0])
    hi = np.minimum(hi, [z1, shape[1], shape[2]])
    if (hi <= lo).any():
        return None, None
    grids = [((np.arange(lo[a], hi[a]) - centre[a]) * spacing[a]) for a in range(3)]
    coords = np.ix_(*grids)
    sl = (slice(lo[0] - z0, hi[0] - z0), slice(lo[1], hi[1]), slice(lo[2], hi[2]))
    return sl, coords


def _ellipsoid(coords, semi_mm) -> np.ndarray:
    z, y, x = coords
    return np.sqrt((z / semi_mm[0]) ** 2 + (y / semi_mm[1]) ** 2 + (x / semi_mm[2]) ** 2)


def _lesion_distance(les: _Lesion, coords, rng) -> np.ndarray:
    """Normalised distance from the lesion (1 at the enhancing rim's outer edge)."""
    d = _ellipsoid(coords, les.radius * les.semi)
    for offset, r in les.lobes:
        shifted = tuple(c - o for c, o in zip(coords, offset, strict=True))
        # Lobes are solid (no necrosis of their own): floor their distance above the core.
        lobe = np.maximum(_ellipsoid(shifted, np.array([r, r, r])), les.core + 0.1)
        d = np.minimum(d, lobe)
    if les.kind == "irregular":
        d = d + 0.35 * smooth_noise(rng, d.shape, 6)
    return d.astype(np.float32)


def _render(shape, spacing, head: _Head, lesions, vents, rng, z0=0, z1=None):
    """Tissue codes, label mask and texture field for slab ``z0:z1`` of a volume of ``shape``."""
    z1 = shape[0] if z1 is None else z1
    n = (z1 - z0, shape[1], shape[2])
    zz = ((np.arange(z0, z1) - head.centre[0]) * spacing[0] / head.semi[0]).astype(np.float32)
    y = ((np.arange(shape[1]) - head.centre[1]) * spacing[1]).astype(np.float32)[:, None]
    x = ((np.arange(shape[2]) - head.centre[2]) * spacing[2]).astype(np.float32)[None, :]
    c, s = np.cos(head.yaw), np.sin(head.yaw)
    v = (c * y - s * x) / head.semi[1]  # head-local anterior->posterior
    plane = ((c * x + s * y) / (head.semi[2] * (1.0 + head.egg * v))) ** 2 + v**2
    rho = np.add((zz**2)[:, None, None], plane[None])
    np.sqrt(rho, out=rho)
    texture = smooth_noise(rng, n, 24)
    rho += 0.02 * texture  # wavy tissue boundaries (gyri of sorts)
    idx = np.clip(rho * 100.0, 0, len(_LAYERS) - 1, out=rho).astype(np.uint8)
    tissue = _LAYERS[idx]
    mask = np.zeros(n, dtype=np.uint8)
    for centre, semi in vents:
        sl, coords = _box(centre, semi, spacing, shape, z0, z1)
        if sl is not None:
            t = tissue[sl]
            t[(_ellipsoid(coords, semi) < 1.0) & (t == WM)] = CSF
    for les in lesions:
        extent = les.radius * les.semi.max() * (les.edema + 0.6)
        sl, coords = _box(les.centre, np.full(3, extent), spacing, shape, z0, z1)
        if sl is None:
            continue
        d = _lesion_distance(les, coords, rng)
        limit = _SKULL_RHO if les.placement == "peripheral" else _BRAIN_RHO
        inside = idx[sl] < int(limit * 100)
        m, t = mask[sl], tissue[sl]
        edema = (d < les.edema) & (idx[sl] < int(_BRAIN_RHO * 100)) & (m == 0)
        m[edema], t[edema] = 2, EDEMA
        solid = (d < 1.0) & inside
        m[solid], t[solid] = 3, ENHANCING
        core = (d < les.core) & inside
        m[core], t[core] = 1, NECROSIS
    return tissue, mask, texture


def _ventricles(rng, head: _Head, spacing) -> list[tuple[np.ndarray, np.ndarray]]:
    semi = np.array([12.0, 26.0, 6.0]) * rng.uniform(0.8, 1.25, 3)
    lateral = rng.uniform(0.08, 0.12)
    return [(head.to_voxel(np.array([0.12, -0.05, s * lateral]), spacing), semi) for s in (-1, 1)]


def _signals(tissue, texture, rng, sequences) -> dict[str, np.ndarray]:
    """Per-sequence intensities: lookup by tissue, smooth gain (bias and texture), white noise."""
    n = tissue.shape
    gain = texture  # reused in place: the texture field is not needed afterwards
    gain *= 0.05
    gain += 1.0
    gain *= tissue != BG  # background stays exactly zero, as in skull-less BraTS files
    # One uniform noise draw (std 15, cheaper than Gaussian); each sequence takes a view shifted
    # by one voxel, which is independent enough for the eye and for measurements.
    noise = rng.random((*n[:2], n[2] + len(sequences)), dtype=np.float32)
    noise -= 0.5
    noise *= 15.0 * 12**0.5
    out = {}
    for k, seq in enumerate(sequences):
        vol = np.asarray(_SIGNAL[seq], dtype=np.float32)[tissue]
        vol += noise[..., k : k + n[2]]
        vol *= gain
        np.maximum(vol, 0.0, out=vol)
        out[seq] = vol
    return out


def _diagnosis(diagnosis: str | None, tumour: bool) -> tuple[str, str]:
    """(diagnosis value for the truth, key of _KINDS that shapes the lesion)."""
    label = normalise_label(diagnosis)
    value = label.value if label is not None else str(diagnosis)
    if not tumour or value == "no_tumor":
        return "no_tumor", "glioma"
    return value, value if value in _KINDS else "glioma"


def _side(rng, tumour_side: str | None, kind: str) -> tuple[str, float]:
    if _KINDS[kind][2] == "sellar":
        return "midline", 0.0
    if tumour_side not in (None, "left", "right"):
        raise ValueError(f"tumour_side must be 'left', 'right' or None, not {tumour_side!r}")
    side = tumour_side or ("left" if rng.random() < 0.5 else "right")
    return side, 1.0 if side == "left" else -1.0  # +x is the patient's left


def _check(shape_kind: str) -> None:
    if shape_kind not in ("round", "lobulated", "irregular"):
        raise ValueError(f"shape_kind must be round, lobulated or irregular, not {shape_kind!r}")


def _truth(head, lesions, spacing, diagnosis, side, shape_kind, seed) -> dict:
    def vox(v) -> list[float]:
        return [round(float(a), 2) for a in v]

    first = lesions[0] if lesions else None
    return {
        "tumour": bool(lesions),
        "diagnosis": diagnosis,
        "n_lesions": len(lesions),
        "side": side if lesions else None,
        "centre": vox(first.centre) if first else None,
        "centres": [vox(les.centre) for les in lesions],
        "radius_mm": round(float(first.radius), 2) if first else None,
        "radius_vox": round(float(first.radius / spacing[2]), 2) if first else None,
        "shape_kind": shape_kind if lesions else None,
        "head_centre": vox(head.centre),
        "spacing": vox(spacing),
        "seed": seed,
    }


def make_phantom(
    shape: tuple[int, int, int] = FULL_SHAPE,
    *,
    seed: int,
    n_lesions: int = 1,
    tumour: bool = True,
    tumour_side: str | None = None,
    radius_mm: float | None = None,
    shape_kind: str = "round",
    diagnosis: str = "glioma",
) -> Phantom:
    """A seeded four-sequence head phantom in canonical ``(z, y, x)`` orientation.

    ``tumour_side`` is the patient's side ("left" = larger x); ``diagnosis`` shapes the lesion
    (glioma: necrotic ring with edema; meningioma: solid, extra-axial; pituitary_tumor: small,
    sellar, midline; metastasis: small ring lesions). ``shape`` keeps the BraTS field of view, so
    smaller shapes have coarser voxels (see :attr:`Phantom.spacing`).
    """
    _check(shape_kind)
    rng = np.random.default_rng(seed)
    spacing = np.array(FOV_MM) / np.array(shape)
    head = _make_head(rng, shape, spacing)
    vents = _ventricles(rng, head, spacing)
    diag, kind = _diagnosis(diagnosis, tumour)
    side, sign = _side(rng, tumour_side, kind)
    n = n_lesions if diag != "no_tumor" else 0
    diag = diag if n > 0 else "no_tumor"
    lesions = _make_lesions(rng, head, spacing, kind, n, sign, radius_mm, shape_kind)
    tissue, mask, texture = _render(shape, spacing, head, lesions, vents, rng)
    volumes = _signals(tissue, texture, rng, SEQUENCES)
    truth = _truth(head, lesions, spacing, diag, side, shape_kind, seed)
    return Phantom(volumes, mask, truth, tuple(float(s) for s in spacing))


def make_slice_phantom(
    size: int = 256,
    *,
    seed: int,
    tumour: bool = True,
    diagnosis: str = "glioma",
    sequence: str = "t1ce",
    tumour_side: str | None = None,
    shape_kind: str = "round",
    radius_mm: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """One axial slice, Kaggle style: ``(image, mask)``, both uint8 ``(size, size)``.

    The slice passes through the lesion centre. The image is windowed to 0..255 with a seeded
    brightness and gamma; the head's size and position in the frame vary with the seed. The mask
    holds the labels of :class:`Phantom` (0 background, 1 core, 2 edema, 3 enhancing).
    """
    _check(shape_kind)
    rng = np.random.default_rng(seed)
    shape = (max(16, round(size * FOV_MM[0] / FOV_MM[1])), size, size)
    spacing = np.array(FOV_MM) / np.array(shape)
    head = _make_head(rng, shape, spacing, scale=rng.uniform(0.82, 1.05))
    vents = _ventricles(rng, head, spacing)
    diag, kind = _diagnosis(diagnosis, tumour)
    _, sign = _side(rng, tumour_side, kind)
    lesions = _make_lesions(
        rng, head, spacing, kind, int(diag != "no_tumor"), sign, radius_mm, shape_kind
    )
    z_mm = rng.uniform(-0.1, 0.35) * head.semi[0]
    z = lesions[0].centre[0] if lesions else head.centre[0] + z_mm / spacing[0]
    z = int(np.clip(round(z), 0, shape[0] - 1))
    tissue, mask, texture = _render(shape, spacing, head, lesions, vents, rng, z, z + 1)
    vol = _signals(tissue, texture, rng, (sequence,))[sequence][0]
    top = float(np.percentile(vol[vol > 0], 99.5)) if (vol > 0).any() else 1.0
    img = np.clip(vol / top, 0.0, 1.0) ** rng.uniform(0.85, 1.15) * rng.uniform(215, 255)
    return img.astype(np.uint8), mask[0]
