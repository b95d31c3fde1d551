"""A mixed sample tree of every supported public layout, written from phantoms, with a manifest.

The demo and the tests ingest it: BraTS 2021/2023 cases, figshare ``.mat`` slices, Kaggle class
folders (one image a resized JPEG copy of a figshare slice: a repackaged duplicate), image/mask
pairs in three styles, YOLO seg and det sets, a DICOM series with planted identifiers, plain NIfTI
volumes and a folder of broken files. :class:`SampleManifest` says what a reader should find.

``python -m neuroonco.tools.sample_tree OUT_DIR [--seed N] [--full]`` writes it.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from neuroonco.schemas.vocabulary import normalise_label
from neuroonco.tools.phantom import (
    FULL_SHAPE,
    SEQUENCES,
    make_phantom,
    make_slice_phantom,
)
from neuroonco.tools.sample_sources import (
    BAD_INPUT_PROBLEMS,
    ensure_dir,
    mask_to_box,
    mask_to_polygon,
    to_uint8,
    write_bad_inputs,
    write_brats2021_case,
    write_brats2023_case,
    write_class_folder_image,
    write_dicom_series,
    write_figshare_mat,
    write_image_mask_pair,
    write_nifti_volume,
    write_yolo_sample,
)

PLANTED_PHI = {
    "patient_name": "PHANTOM^PLANTED",
    "patient_id": "PID-PLANTED-12345",
    "institution": "PLANTED GENERAL HOSPITAL",
    "study_date": "20240102",
    "birth_date": "19700101",
    "referring_physician": "PLANTED^REFERRER",
    "accession": "ACC-PLANTED-0001",
}


@dataclass
class ExpectedCase:
    """What a reader should find for one written case (paths relative to the tree root)."""

    reader: str
    path: str
    files: list[str]
    label: str | None
    modalities: list[str | None]
    has_mask: bool
    mask_kind: str | None = None
    split_hint: str | None = None
    case_id: str | None = None
    """The raw identifier in the source (BraTS case id, figshare PID, DICOM PatientID)."""
    phi: list[str] = field(default_factory=list)
    truth: dict = field(default_factory=dict)
    """The phantom's ground truth (3D cases): side, centre, n_lesions, ..."""


@dataclass
class SampleManifest:
    root: str
    seed: int
    small: bool
    cases: list[ExpectedCase] = field(default_factory=list)
    duplicates: list[dict[str, str]] = field(default_factory=list)
    """``{"path", "duplicate_of", "how"}``: a repackaged copy of another case's image."""
    bad_files: dict[str, str] = field(default_factory=dict)
    """Relative path -> the problem planted in it."""
    planted_phi: dict[str, str] = field(default_factory=lambda: dict(PLANTED_PHI))

    def to_dict(self) -> dict:
        return asdict(self)

    def by_reader(self) -> dict[str, list[ExpectedCase]]:
        out: dict[str, list[ExpectedCase]] = {}
        for case in self.cases:
            out.setdefault(case.reader, []).append(case)
        return out


class _Tree:
    """Seeds, sizes and manifest bookkeeping shared by the parts of the sample tree."""

    def __init__(self, root: Path, seed: int, small: bool) -> None:
        self.root, self.seed, self.count = root, seed, 0
        self.shape = (48, 96, 96) if small else FULL_SHAPE
        self.size2d, self.mat_size = (128, 256) if small else (512, 512)
        self.manifest = SampleManifest(root=str(root), seed=seed, small=small)

    def next_seed(self) -> int:
        self.count += 1
        return self.seed * 10_007 + self.count

    def rel(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    def add(self, reader: str, paths: list[Path], label: str | None, mods, mask: bool, **kw):
        files = [self.rel(p) for p in paths]
        case = ExpectedCase(reader, files[0], files, label, list(mods), mask, **kw)
        self.manifest.cases.append(case)


def _brats_part(t: _Tree) -> None:
    for i, side in enumerate(("left", "right")):
        ph = make_phantom(t.shape, seed=t.next_seed(), tumour_side=side, shape_kind="round")
        cid = f"BraTS2021_{i:05d}"
        paths = write_brats2021_case(t.root / "BraTS2021_TrainingData", cid, ph)
        seg = {"mask_kind": "segmentation", "case_id": cid, "truth": ph.truth}
        t.add("brats2021", paths, "glioma", SEQUENCES, True, split_hint="train", **seg)
    for i, (tag, diag, kind) in enumerate(
        (("GLI", "glioma", "irregular"), ("MEN", "meningioma", "lobulated"))
    ):
        ph = make_phantom(t.shape, seed=t.next_seed(), diagnosis=diag, shape_kind=kind)
        cid = f"BraTS-{tag}-{i:05d}-000"
        paths = write_brats2023_case(t.root / f"BraTS2023_{tag}", cid, ph)
        seg = {"mask_kind": "segmentation", "case_id": cid, "truth": ph.truth}
        t.add("brats2023", paths, diag, SEQUENCES, True, **seg)


def _figshare_part(t: _Tree) -> np.ndarray:
    """Four slices (labels 1, 2, 3, and a second slice of the glioma patient); returns the first
    image, which the Kaggle part repackages."""
    specs = [
        (1, "meningioma", "100360"),
        (2, "glioma", "112649"),
        (3, "pituitary", "MR040237"),
        (2, "glioma", "112649"),
    ]
    first = None
    for k, (code, diag, pid) in enumerate(specs, start=1):
        img, mask = make_slice_phantom(t.mat_size, seed=t.next_seed(), diagnosis=diag)
        image = img.astype(np.int16) * 4  # figshare images are int16, roughly 0..1000
        path = write_figshare_mat(
            t.root / "figshare_brain_tumor" / f"{k}.mat", image, mask, label=code, pid=pid
        )
        label = normalise_label(diag).value
        t.add("figshare_mat", [path], label, ["t1ce"], True, mask_kind="segmentation", case_id=pid)
        first = image if first is None else first
    return first


def _kaggle_part(t: _Tree, repackage: np.ndarray) -> None:
    top = t.root / "kaggle_brain_tumor_mri"
    short = {"glioma": "gl", "meningioma": "me", "pituitary": "pi", "notumor": "no"}
    for split, prefix, count in (("Training", "Tr", 2), ("Testing", "Te", 1)):
        for cls, abbrev in short.items():
            diag = normalise_label(cls).value
            for k in range(count):
                img, _ = make_slice_phantom(
                    t.size2d,
                    seed=t.next_seed(),
                    diagnosis=diag,
                    tumour=diag != "no_tumor",
                    sequence=SEQUENCES[k],
                )
                path = write_class_folder_image(
                    top, split, cls, f"{prefix}-{abbrev}_{k:04d}", img, rgb=k == 1
                )
                t.add("class_folder", [path], diag, [None], False, split_hint=split[:-3].lower())
    # A repackaged duplicate: figshare's 1.mat windowed, resized and re-encoded as JPEG.
    side = t.size2d * 7 // 8
    small = np.asarray(Image.fromarray(to_uint8(repackage)).resize((side, side), Image.BILINEAR))
    dup = write_class_folder_image(top, "Training", "meningioma", "Tr-me_0002", small)
    t.add("class_folder", [dup], "meningioma", [None], False, split_hint="train")
    how = f"JPEG re-encoding of the image, resized {repackage.shape[0]} -> {side} px"
    t.manifest.duplicates.append(
        {"path": t.rel(dup), "duplicate_of": "figshare_brain_tumor/1.mat", "how": how}
    )
    for cls, diag, letter in (("yes", "tumor", "Y"), ("no", "no_tumor", "N")):
        for k in (1, 2):
            img, _ = make_slice_phantom(
                t.size2d, seed=t.next_seed(), tumour=diag == "tumor", sequence="t2"
            )
            path = write_class_folder_image(
                t.root / "brain_mri_yes_no", None, cls, f"{letter}{k}", img
            )
            t.add("class_folder", [path], diag, [None], False)


def _pairs_part(t: _Tree) -> None:
    for style, name in (("folders", "case"), ("suffix", "slice"), ("kaggle", "glioma")):
        for k in (1, 2):
            img, mask = make_slice_phantom(t.size2d, seed=t.next_seed(), sequence="flair")
            # Label values (0..3) in one style, 0/255 (as most public sets) in the others.
            m = mask if style == "folders" else (mask > 0).astype(np.uint8) * 255
            stem = name if style == "kaggle" else f"{name}_{k:03d}"
            paths = write_image_mask_pair(
                t.root / f"pairs_{style}", stem, img, m, style=style, index=k
            )
            label = "glioma" if style == "kaggle" else "tumor"
            t.add("image_mask_pairs", paths, label, [None], True, mask_kind="segmentation")


def _yolo_part(t: _Tree) -> None:
    classes = ["glioma", "meningioma", "pituitary"]
    for kind, names_style in (("seg", "list"), ("det", "dict")):
        for k, cls in enumerate(classes):
            img, mask = make_slice_phantom(t.size2d, seed=t.next_seed(), diagnosis=cls)
            geom = mask_to_polygon(mask, 24) if kind == "seg" else mask_to_box(mask)
            paths = write_yolo_sample(
                t.root / f"yolo_{kind}",
                f"img_{k:03d}",
                img,
                [(k, geom)],
                classes=classes,
                kind=kind,
                names_style=names_style,
            )
            mask_kind = "segmentation" if kind == "seg" else "box"
            label = normalise_label(cls).value
            t.add("yolo", paths[:2], label, [None], True, mask_kind=mask_kind)


def _volume_part(t: _Tree) -> None:
    ph = make_phantom(t.shape, seed=t.next_seed(), tumour_side="left")
    folder = t.root / "dicom" / PLANTED_PHI["patient_id"] / "T1_POST"  # PHI in the path, too
    keys = (
        "patient_name",
        "patient_id",
        "institution",
        "study_date",
        "birth_date",
        "referring_physician",
        "accession",
    )
    paths = write_dicom_series(
        folder, ph.volumes["t1ce"], spacing=ph.spacing, **{k: PLANTED_PHI[k] for k in keys}
    )
    t.add(
        "dicom",
        paths,
        None,
        ["t1ce"],
        False,
        case_id=PLANTED_PHI["patient_id"],
        phi=list(PLANTED_PHI.values()),
        truth=ph.truth,
    )
    ph = make_phantom(t.shape, seed=t.next_seed(), tumour_side="right")
    paths = write_nifti_volume(
        t.root / "nifti" / "scan_001.nii.gz", ph.volumes["flair"], mask=ph.mask, spacing=ph.spacing
    )
    # No class in the source: the case has no label; its slices get one from the mask.
    t.add("nifti", paths, None, [None], True, mask_kind="segmentation", truth=ph.truth)
    ph = make_phantom(t.shape, seed=t.next_seed(), tumour_side="left")
    paths = write_nifti_volume(
        t.root / "nifti" / "scan_002.nii.gz", ph.volumes["t2"], spacing=ph.spacing, ras=True
    )
    t.add("nifti", paths, None, [None], False, truth=ph.truth)


def write_sample_tree(root: Path, *, seed: int = 0, small: bool = True) -> SampleManifest:
    """A mixed source tree with every supported layout and a set of broken files.

    ``small=True`` uses (48, 96, 96) volumes and 128-256 px images (about a second);
    ``small=False`` BraTS-size volumes and 512 px images. The manifest lists what each reader
    should find; it is not written into the tree (it would be an unclaimed file there).
    """
    root = ensure_dir(Path(root))
    t = _Tree(root, seed, small)
    _brats_part(t)
    first_mat = _figshare_part(t)
    _kaggle_part(t, first_mat)
    _pairs_part(t)
    _yolo_part(t)
    _volume_part(t)
    bad = write_bad_inputs(root / "bad_inputs", seed=seed)
    t.manifest.bad_files = {t.rel(p): BAD_INPUT_PROBLEMS[key] for key, p in bad.items()}
    return t.manifest


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m neuroonco.tools.sample_tree",
        description="Write a mixed tree of synthetic brain-MRI sources in the public layouts.",
    )
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--full", action="store_true", help="BraTS-size volumes (slower)")
    parser.add_argument("--manifest", type=Path, help="also write the manifest as JSON here")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    manifest = write_sample_tree(args.out_dir, seed=args.seed, small=not args.full)
    if args.manifest:
        args.manifest.write_text(json.dumps(manifest.to_dict(), indent=2))
    counts = ", ".join(f"{k} {len(v)}" for k, v in manifest.by_reader().items())
    print(
        f"wrote {len(manifest.cases)} cases ({counts}) and {len(manifest.bad_files)} bad files "
        f"under {args.out_dir} in {time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    main()
