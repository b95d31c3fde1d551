"""End-to-end ingestion of the sample tree: every layout, masks, measurements, duplicates,
rejections, privacy and re-runs, checked against the manifest and the phantoms' ground truth.

The tree and the default-options store are session fixtures (tests/conftest.py); tests that
write take a copy. Known bugs are strict xfails naming the cause.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import h5py
import numpy as np
import pytest
import SimpleITK as sitk
import sqlite_utils
from PIL import Image

from neuroonco.ingest import IngestOptions, ingest
from neuroonco.schemas.vocabulary import Laterality, Location, Shape, Size, Spread
from neuroonco.tools.phantom import make_phantom, make_slice_phantom
from neuroonco.tools.sample_sources import to_uint8, write_dicom_series
from neuroonco.tools.sample_tree import PLANTED_PHI, ExpectedCase
from tests.conftest import IngestedStore, SampleTree, snapshot_files

READERS = (
    "brats2021",
    "brats2023",
    "figshare_mat",
    "class_folder",
    "image_mask_pairs",
    "yolo",
    "dicom",
    "nifti",
)
VOLUME_READERS = {"brats2021", "brats2023", "dicom", "nifti"}
DESIGN_KEYS = {"area_fraction", "circularity", "components", "centroid"} | {
    "size",
    "shape",
    "spread",
    "location",
    "laterality",
}


def _png(store: IngestedStore, rel: str) -> np.ndarray:
    return np.asarray(Image.open(store.out_dir / rel))


def _canonical(path: Path) -> np.ndarray:
    """A volume as the readers promise it: reoriented to LPS, (z, y, x)."""
    return sitk.GetArrayFromImage(sitk.DICOMOrient(sitk.ReadImage(str(path)), "LPS"))


def _seg(tree: SampleTree, case: ExpectedCase) -> np.ndarray:
    seg = _canonical(tree.root / case.files[-1]).astype(np.uint8)
    seg[seg == 4] = 3  # BraTS 2021 enhancing tumour is stored as 3
    return seg


def _rows_of(case: ExpectedCase, rows: list[dict]) -> list[dict]:
    if case.reader == "dicom":  # its path is scrubbed of the PatientID; the tree has one series
        return [r for r in rows if r["source_format"] == "dicom"]
    files = set(case.files)  # a BraTS row names its own sequence's file
    return [r for r in rows if r["source_path"] in files]


_BRATS2023_NAMES = {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f"}


def _source_file(case: ExpectedCase, modality: str | None) -> str:
    """The file a slice of ``case`` in ``modality`` was read from."""
    if case.reader == "brats2021":
        return next(f for f in case.files if f.endswith(f"_{modality}.nii.gz"))
    if case.reader == "brats2023":
        return next(f for f in case.files if f.endswith(f"-{_BRATS2023_NAMES[modality]}.nii.gz"))
    return case.path


def _cases(tree: SampleTree, *readers: str) -> list[ExpectedCase]:
    return [c for c in tree.manifest.cases if c.reader in readers]


def _expected_label(case: ExpectedCase) -> str | None:
    # A volume with a mask but no class: its max-tumour slice is "tumor" (DESIGN vocabulary).
    return case.label if case.label is not None else ("tumor" if case.has_mask else None)


def test_summary_counts_every_case_slice_and_rejection(ingested_db, sample_tree):
    manifest = sample_tree.manifest
    s = ingested_db.summary
    expected_slices = sum(len(c.modalities) for c in manifest.cases)
    assert (s.cases, s.slices, s.duplicates) == (len(manifest.cases), expected_slices, 1)
    assert s.rejected == len(manifest.bad_files)
    assert len(ingested_db.slices()) == expected_slices
    assert set(s.by_format) == set(READERS)


def test_sample_covers_every_layout_variant(ingested_db):
    rows = ingested_db.slices()

    def of(fmt: str, key: str) -> set:
        return {r[key] for r in rows if r["source_format"] == fmt}

    assert of("brats2023", "dataset") == {"BraTS-GLI", "BraTS-MEN"}
    assert of("class_folder", "split_hint") == {"train", "test", None}
    assert {"tumor", "no_tumor"} <= of("class_folder", "label")  # the yes/no set
    pair_sets = {p.split("/")[0] for p in of("image_mask_pairs", "source_path")}
    assert pair_sets == {"pairs_folders", "pairs_suffix", "pairs_kaggle"}
    assert of("yolo", "mask_kind") == {"segmentation", "box"}
    assert {r["mask_path"] is None for r in rows if r["source_format"] == "nifti"} == {True, False}


@pytest.mark.parametrize("reader", READERS)
def test_each_layout_is_ingested_with_labels_and_provenance(ingested_db, sample_tree, reader):
    rows = ingested_db.slices()
    cases = _cases(sample_tree, reader)
    assert cases
    for case in cases:
        got = _rows_of(case, rows)
        where = f"{reader}: {case.path}"
        assert sorted(str(r["modality"]) for r in got) == sorted(map(str, case.modalities)), where
        assert {r["source_format"] for r in got} == {reader}, where
        assert {r["label"] for r in got} == {_expected_label(case)}, where
        assert {r["mask_path"] is not None for r in got} == {case.has_mask}, where
        assert {r["mask_kind"] for r in got} == {case.mask_kind if case.has_mask else None}, where
        assert {r["split_hint"] for r in got} == {case.split_hint}, where
        assert len({r["group_id"] for r in got}) == 1, where  # one position, all sequences
        assert len({r["subject_id"] for r in got}) == 1, where
        for r in got:
            assert (ingested_db.out_dir / r["image_path"]).is_file(), where
            if r["mask_path"]:
                assert (ingested_db.out_dir / r["mask_path"]).is_file(), where
            if reader == "dicom":
                assert re.fullmatch(r"dicom/anon-[0-9a-f]{12}/T1_POST/[^/]+\.dcm", r["source_path"])
            else:
                assert r["source_path"] == _source_file(case, r["modality"]), where
                assert (sample_tree.root / r["source_path"]).is_file()
            if reader in VOLUME_READERS:
                assert r["plane"] == "axial" and isinstance(r["slice_index"], int), where
            else:
                assert r["plane"] is None and r["slice_index"] is None, where


def test_group_ids_tie_the_four_sequences_of_one_position_only(ingested_db, sample_tree):
    rows = ingested_db.slices()
    groups = []
    for case in _cases(sample_tree, "brats2021", "brats2023"):
        got = _rows_of(case, rows)
        assert {r["modality"] for r in got} == {"t1", "t1ce", "t2", "flair"}
        assert len({r["slice_index"] for r in got}) == 1
        groups.append(got[0]["group_id"])
    all_groups = [r["group_id"] for r in rows]
    assert len(set(groups)) == len(groups)
    assert all(all_groups.count(g) == 4 for g in groups)


def test_volume_slice_is_the_max_tumour_slice_or_the_brain_middle(ingested_db, sample_tree):
    rows = ingested_db.slices()
    for case in _cases(sample_tree, *VOLUME_READERS):
        index = _rows_of(case, rows)[0]["slice_index"]
        if case.has_mask:
            areas = np.count_nonzero(_seg(sample_tree, case), axis=(1, 2))
            assert index == int(areas.argmax()), case.path
        else:
            depth = (
                _canonical(sample_tree.root / case.files[0]).shape[0]
                if case.reader == ("nifti")
                else len(case.files)
            )
            assert abs(index - depth // 2) <= depth // 4, case.path


def test_masked_slices_carry_the_design_measurements(ingested_db):
    rows = ingested_db.slices()
    masked = [r for r in rows if r["mask_path"]]
    assert len(masked) == 33
    for r in masked:
        m = json.loads(r["measurements"])
        assert m.keys() >= DESIGN_KEYS, r["source_path"]
        assert m["components"] >= 1 and len(m["centroid"]) == 2
        fraction = float((_png(ingested_db, r["mask_path"]) > 0).mean())
        assert m["area_fraction"] == pytest.approx(fraction, abs=1e-5)  # measured as stored
        Shape(m["shape"]), Spread(m["spread"]), Location(m["location"]), Laterality(m["laterality"])
        expected_size = "small" if fraction < 0.01 else "medium" if fraction < 0.05 else "large"
        assert Size(m["size"]) == expected_size
    assert all(r["measurements"] is None for r in rows if not r["mask_path"])


def test_mask_pngs_keep_subregion_labels_on_the_image_grid(ingested_db, sample_tree):
    rows = ingested_db.slices()
    for r in rows:
        if r["mask_path"]:
            mask = _png(ingested_db, r["mask_path"])
            assert set(np.unique(mask).tolist()) <= {0, 1, 2, 3}
            assert mask.shape == _png(ingested_db, r["image_path"]).shape
    for case in _cases(sample_tree, "brats2021", "brats2023", "nifti"):
        if not case.has_mask:
            continue
        seg = _seg(sample_tree, case)
        for r in _rows_of(case, rows):
            stored = _png(ingested_db, r["mask_path"])
            np.testing.assert_array_equal(stored, seg[r["slice_index"]], err_msg=case.path)
            if "MEN" not in case.path:  # gliomas have all three sub-regions; 2021's 4 became 3
                assert set(np.unique(stored).tolist()) == {0, 1, 2, 3}


def test_figshare_mask_is_transposed_back_from_matlab_order(ingested_db, sample_tree):
    rows = ingested_db.slices()
    for case in _cases(sample_tree, "figshare_mat"):
        (r,) = _rows_of(case, rows)
        with h5py.File(sample_tree.root / case.path, "r") as f:
            expected = np.asarray(f["cjdata/tumorMask"]).T > 0
        np.testing.assert_array_equal(_png(ingested_db, r["mask_path"]) > 0, expected)


def test_yolo_boxes_and_polygons_become_masks(ingested_db, sample_tree):
    rows = ingested_db.slices()
    for case in _cases(sample_tree, "yolo"):
        (r,) = _rows_of(case, rows)
        mask = _png(ingested_db, r["mask_path"]) > 0
        ys, xs = np.nonzero(mask)
        box = mask[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
        if case.mask_kind == "box":
            assert box.all()
            cx, cy, w, h = map(float, (sample_tree.root / case.files[1]).read_text().split()[1:])
            size = mask.shape[1]
            assert xs.min() == pytest.approx((cx - w / 2) * size, abs=1.5)
            assert ys.max() + 1 == pytest.approx((cy + h / 2) * size, abs=1.5)
        else:
            assert 0.5 < box.mean() < 0.95  # a filled outline, not its bounding box


def test_sequences_are_not_swapped(ingested_db, sample_tree):
    """Phantom physics: enhancing rim bright on t1ce only; necrosis above edema on t2, below
    it on flair (BraTS 2023 names t1n/t1c/t2w/t2f must map to the right modality)."""
    rows = ingested_db.slices()
    for case in _cases(sample_tree, "brats2021", "brats2023"):
        if "MEN" in case.path:
            continue
        by_mod = {r["modality"]: r for r in _rows_of(case, rows)}
        seg = _png(ingested_db, by_mod["t1"]["mask_path"])
        images = {mod: _png(ingested_db, r["image_path"]) for mod, r in by_mod.items()}

        def mean(mod: str, label: int, images=images, seg=seg) -> float:
            return float(images[mod][seg == label].mean())

        assert mean("t1ce", 3) > 1.5 * mean("t1ce", 2), case.path
        assert mean("t1", 3) < 1.3 * mean("t1", 2), case.path
        assert mean("t2", 1) > mean("t2", 2) and mean("flair", 1) < mean("flair", 2), case.path


def test_laterality_follows_the_phantom_tumour_side(ingested_db, sample_tree):
    rows = ingested_db.slices()
    cases = [c for c in _cases(sample_tree, "brats2021", "brats2023", "nifti") if c.has_mask]
    assert {c.truth["side"] for c in cases} == {"left", "right"}
    for case in cases:
        for r in _rows_of(case, rows):
            m = json.loads(r["measurements"])
            assert m["laterality"] == case.truth["side"], case.path
            assert m["laterality_source"] == "orientation"


def test_repackaged_copy_is_the_only_duplicate(ingested_db, sample_tree):
    rows = ingested_db.slices()
    (planted,) = sample_tree.manifest.duplicates
    (copy,) = [r for r in rows if r["source_path"] == planted["path"]]
    (original,) = [r for r in rows if r["source_path"] == planted["duplicate_of"]]
    flagged = [(r["id"], r["duplicate_of"]) for r in rows if r["duplicate_of"]]
    assert flagged == [(copy["id"], original["id"])]


_REASONS = {
    "truncated.nii.gz": r"truncated|corrupt",
    "empty.png": r"empty|0 bytes",
    "notes.docx": r"not a recognised",
    "mismatch.png": r"mask shape .* differs",
    "mismatch_mask.png": r"mask shape .* differs",
    "nan_volume.nii.gz": r"nan",
    "timeseries_4d.nii.gz": r"4d",
    "corrupt.mat": r"not a readable|corrupt",
}
_FIX_HINT = r"re-download|remove|fix|drop|split|export|must|supported"


def test_bad_files_are_rejected_with_actionable_reasons(ingested_db, sample_tree):
    rejected = ingested_db.query("select path, reason from rejected_inputs")
    assert len(rejected) == len(sample_tree.manifest.bad_files)  # no good file rejected
    for rel in sample_tree.manifest.bad_files:
        (reason,) = [r["reason"] for r in rejected if r["path"].endswith("/" + rel)]
        assert re.search(_REASONS[Path(rel).name], reason, re.I), (rel, reason)
        assert re.search(_FIX_HINT, reason, re.I), (rel, reason)
        assert not reason.startswith("could not read:"), reason  # a reader crash, not a check
        assert str(sample_tree.root) not in reason  # paths relative to the source root


def _identifier_patterns(tree: SampleTree) -> list[re.Pattern[bytes]]:
    """Planted identifiers, their distinctive parts, the DICOM dates and UIDs, the figshare PIDs.

    Digit-only tokens must stand alone (hex hashes and floats are full of digit runs)."""
    reader = sitk.ImageFileReader()
    dicom = next(c for c in tree.manifest.cases if c.reader == "dicom")
    reader.SetFileName(str(tree.root / dicom.path))
    reader.ReadImageInformation()
    uids = [reader.GetMetaData(t).strip() for t in ("0020|000d", "0020|000e", "0008|0018")]
    words = [*PLANTED_PHI.values(), "planted", "phantom", "referrer", "general hospital"]
    numbers = ["12345", "20240102", "19700101", "2024-01-02", "1970-01-01", *uids]
    numbers += [c.case_id for c in tree.manifest.cases if c.reader == "figshare_mat"]
    pats = [re.compile(re.escape(w.encode()), re.I) for w in words]
    edge = rb"(?<![0-9A-Za-z.])%s(?![0-9A-Za-z])"
    return pats + [re.compile(edge % re.escape(n.encode()), re.I) for n in numbers]


def _leaks(out_dir: Path, patterns: list[re.Pattern[bytes]]) -> list[str]:
    found = []
    for path in sorted(p for p in out_dir.rglob("*") if p.is_file()):
        data = path.read_bytes()
        found += [f"{path.name}: {p.pattern!r}" for p in patterns if p.search(data)]
    return found


def test_no_identifier_reaches_any_written_byte(ingested_db, sample_tree):
    written = [p for p in ingested_db.out_dir.rglob("*") if p.is_file()]
    assert len(written) > 50 and ingested_db.db_path in written  # db, salt, every PNG
    assert _leaks(ingested_db.out_dir, _identifier_patterns(sample_tree)) == []


def test_subject_ids_are_salted_pseudonyms(ingested_db, sample_tree):
    rows = ingested_db.slices()
    assert all(re.fullmatch(r"sub-[0-9a-f]{16}", r["subject_id"]) for r in rows)
    subject = {}
    for case in sample_tree.manifest.cases:
        (sub,) = {r["subject_id"] for r in _rows_of(case, rows)}
        subject[case.path] = sub
        if case.case_id:
            assert case.case_id.lower() not in sub.lower()
    fig = "figshare_brain_tumor/{}.mat"
    assert subject[fig.format(2)] == subject[fig.format(4)]  # same PID, two slices
    assert subject[fig.format(1)] != subject[fig.format(2)]


def test_ingest_writes_nothing_into_the_source_tree(ingested_db, sample_tree):
    assert snapshot_files(sample_tree.root) == sample_tree.files


def test_second_ingest_of_the_same_tree_adds_and_touches_nothing(ingested_db_copy, sample_tree):
    store = ingested_db_copy
    tables = ("slices", "ingested_sources")
    before = {t: store.query(f"select * from {t} order by rowid") for t in tables}
    rejected = store.query("select path, reason from rejected_inputs order by path")
    images = snapshot_files(store.images_dir)
    summary = ingest([sample_tree.root], store.db_path)
    assert (summary.cases, summary.slices, summary.duplicates) == (0, 0, 0)
    assert summary.skipped_cases == len(sample_tree.manifest.cases)
    assert {t: store.query(f"select * from {t} order by rowid") for t in tables} == before
    assert store.query("select path, reason from rejected_inputs order by path") == rejected
    assert snapshot_files(store.images_dir) == images


def test_a_second_tree_repackaging_stored_images_is_marked_duplicate(ingested_db_copy, tmp_path):
    store = ingested_db_copy
    by_source = {(r["source_path"], r["modality"]): r for r in store.slices()}
    fig = by_source[("figshare_brain_tumor/2.mat", "t1ce")]
    brats = by_source[("BraTS2023_GLI/BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1c.nii.gz", "t1ce")]
    folder = tmp_path / "mirror" / "glioma"
    folder.mkdir(parents=True)
    img = Image.open(store.out_dir / fig["image_path"]).resize((200, 200), Image.BILINEAR)
    img.convert("RGB").save(folder / "a.jpg", quality=85)
    img = Image.open(store.out_dir / brats["image_path"]).resize((128, 128), Image.BILINEAR)
    img.save(folder / "b.jpg", quality=85)
    fresh, _ = make_slice_phantom(128, seed=999, diagnosis="glioma")
    Image.fromarray(to_uint8(fresh)).save(folder / "c.jpg")
    summary = ingest([tmp_path / "mirror"], store.db_path)
    assert (summary.cases, summary.slices, summary.duplicates) == (3, 3, 2)
    new = {r["source_path"]: r for r in store.slices() if r["dataset"] == "mirror"}
    assert new["glioma/a.jpg"]["duplicate_of"] == fig["id"]
    assert new["glioma/b.jpg"]["duplicate_of"] == brats["id"]
    assert new["glioma/c.jpg"]["duplicate_of"] is None
    assert {r["label"] for r in new.values()} == {"glioma"}


# --- --per-volume 3 --negatives 1 ------------------------------------------------------------


@pytest.fixture(scope="module")
def per_volume_db(sample_tree, tmp_path_factory) -> IngestedStore:
    db_path = tmp_path_factory.mktemp("per_volume") / "neuroonco.db"
    summary = ingest([sample_tree.root], db_path, IngestOptions(per_volume=3, negatives=1))
    return IngestedStore(db_path, sample_tree.root, summary)


def test_per_volume_spreads_positions_and_adds_a_negative(per_volume_db, sample_tree):
    rows = per_volume_db.slices()
    for case in _cases(sample_tree, "brats2021", "brats2023"):
        got = _rows_of(case, rows)
        seg = _seg(sample_tree, case)
        areas = np.count_nonzero(seg, axis=(1, 2))
        positions = sorted({r["slice_index"] for r in got})
        assert len(positions) == 4 and len(got) == 16, case.path  # 3 tumour + 1 negative
        assert len({r["group_id"] for r in got}) == 4
        tumour = [i for i in positions if areas[i] > 0]
        (negative,) = [i for i in positions if areas[i] == 0]
        assert int(areas.argmax()) in tumour and len(tumour) == 3
        extent = np.nonzero(areas >= 0.1 * areas.max())[0]
        assert tumour[-1] - tumour[0] >= 0.5 * (extent[-1] - extent[0]), (case.path, tumour)
        for r in got:
            m = json.loads(r["measurements"])
            if r["slice_index"] == negative:
                assert r["label"] == "no_tumor" and r["mask_path"], case.path
                assert not _png(per_volume_db, r["mask_path"]).any()
                assert m["area_fraction"] == 0 and m["components"] == 0
            else:
                assert r["label"] == case.label and m["area_fraction"] > 0


def test_subject_ids_depend_on_the_store_salt(per_volume_db, ingested_db, sample_tree):
    case = _cases(sample_tree, "brats2021")[0]
    (ours,) = {r["subject_id"] for r in _rows_of(case, per_volume_db.slices())}
    (theirs,) = {r["subject_id"] for r in _rows_of(case, ingested_db.slices())}
    assert ours != theirs


def test_positions_of_one_volume_are_not_duplicates_of_each_other(per_volume_db):
    """Positions (and sequences) of one patient look alike without being copies."""
    rows = per_volume_db.slices()
    by_id = {r["id"]: r for r in rows}
    same_subject = [
        (r["source_path"], r["modality"], r["slice_index"], by_id[r["duplicate_of"]]["slice_index"])
        for r in rows
        if r["duplicate_of"] and by_id[r["duplicate_of"]]["subject_id"] == r["subject_id"]
    ]
    assert same_subject == []


def test_only_the_planted_copy_is_a_duplicate_with_more_slices_per_volume(
    per_volume_db, sample_tree
):
    (planted,) = sample_tree.manifest.duplicates
    flagged = [r["source_path"] for r in per_volume_db.slices() if r["duplicate_of"]]
    assert flagged == [planted["path"]]


# --- identifiers known only from DICOM headers ------------------------------------------------


@pytest.mark.parametrize("start", ["tree", "patient_folder"])
def test_patient_folder_names_are_scrubbed_from_every_file_in_them(tmp_path, sample_tree, start):
    """Identifiers read from DICOM headers also scrub the other files of the folder (a report,
    a preview image) and the root's own name when the root is the patient folder."""
    root = tmp_path / "src"
    patient = root / "dicom" / PLANTED_PHI["patient_id"]
    ph = make_phantom((24, 48, 48), seed=3, tumour_side="left")
    keys = ("patient_name", "patient_id", "institution", "study_date", "birth_date")
    tags = {k: PLANTED_PHI[k] for k in keys}
    write_dicom_series(patient / "T1_POST", ph.volumes["t1ce"], spacing=ph.spacing, **tags)
    (patient / "report.docx").write_bytes(b"not an image " * 10)  # rejected
    Image.fromarray(to_uint8(ph.volumes["t1ce"][12])).save(patient / "preview.jpg")  # ingested
    db_path = tmp_path / "out" / "neuroonco.db"
    summary = ingest([root if start == "tree" else patient], db_path)
    assert summary.slices == 2 and summary.rejected == 1
    patterns = [re.compile(b"planted", re.I), re.compile(rb"(?<![0-9a-z.])12345(?![0-9a-z])")]
    assert _leaks(db_path.parent, patterns) == []


def test_a_fixed_file_leaves_rejected_inputs_on_the_next_run(tmp_path):
    """A file refused once (here: not gzip at all) and replaced by a readable one is ingested
    by the next run, and its old rejection row goes: it would send the user to fix a good file."""
    src = tmp_path / "src" / "nifti"
    src.mkdir(parents=True)
    bad = src / "case01_t1.nii.gz"
    bad.write_bytes(b"this was a broken download " * 40)
    db_path = tmp_path / "out" / "neuroonco.db"
    first = ingest([tmp_path / "src"], db_path)
    assert first.slices == 0 and first.rejected == 1
    ph = make_phantom((24, 48, 48), seed=5, tumour_side="left")
    image = sitk.GetImageFromArray(ph.volumes["t1"].astype(np.float32))
    image.SetSpacing(tuple(float(s) for s in ph.spacing[::-1]))
    sitk.WriteImage(image, str(bad))
    second = ingest([tmp_path / "src"], db_path)
    assert second.slices >= 1
    db = sqlite_utils.Database(db_path)
    assert list(db["rejected_inputs"].rows) == []
    assert db["slices"].count == second.slices
