"""Ingestion of trees built from the DICOM files pydicom ships: no identifier of any planted file
reaches any written byte (first run, incremental run, rejections), short values scrub only their
own subject, identical re-runs add nothing, broken links and read-only stores are clean errors."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import numpy as np
import pydicom
import pytest
from PIL import Image

from neuroonco.errors import NeuroOncoError
from neuroonco.ingest import ingest
from neuroonco.store import images_dir
from tests.conftest import snapshot_files
from tests.neuroonco.test_cli_ingest import _run as _run_cli
from tests.support.real_dicom import charset_name, copy_shipped, mr_series

# Values of the identifying attributes checked in every written byte (PS3.15 Basic Profile).
_CHECKED = (
    "PatientName",
    "PatientID",
    "OtherPatientIDs",
    "AccessionNumber",
    "InstitutionName",
    "ReferringPhysicianName",
    "StudyID",
    "StudyDate",
    "SeriesDate",
    "PatientBirthDate",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
)


def _person(name: str, tags: dict) -> dict:
    return {
        "PatientName": name,
        "OtherPatientIDs": "OTHER-" + tags["PatientID"],
        "ReferringPhysicianName": "Referrer^Hermann",
        "InstitutionName": "Klinikum Süd",
        **tags,
    }


def _tree(root: Path) -> None:
    """Patients named in Latin-1, Japanese and UTF-8, folders named after them (one in raw
    Latin-1 bytes), the TCIA date folder layout, non-MR objects in patient folders, a broken
    annex link and a preview image beside a series."""
    latin, mueller = charset_name("chrGerm.dcm")  # ISO_IR 100: Äneas^Rüdiger
    japanese, yamada = charset_name("chrH31.dcm")  # ISO 2022 IR 87: Yamada^Tarou=山田^太郎=...
    french, buc = charset_name("chrFren.dcm")
    patients = [
        (root / "Äneas_Rüdiger" / "T2", latin, mueller, "RA-778812", "19991231"),
        (root / "山田太郎" / "series_2", japanese, yamada, "H31EXAMPLE", "20011105"),
    ]
    latin_folder = root / os.fsdecode("Buc_J\xe9r\xf4me".encode("latin-1")) / "flair"
    patients.append((latin_folder, french, buc, "FR-55431", "19870612"))
    for folder, charset, name, pid, date in patients:
        tags = {"SpecificCharacterSet": charset, "PatientID": pid, "StudyDate": date}
        tags |= {"SeriesDate": date, "AccessionNumber": "A" + pid[-5:]}
        mr_series(folder, 4, tags=_person(name, tags))
    # TCIA: patient / date-description-accession / series number-description-uid part.
    tcia = root / "TCGA-06-0123" / "03-14-2019-NA-MRI BRAIN-51234" / "2.000000-T2 AX-40712"
    tcia_tags = {"PatientID": "TCGA-06-0123", "StudyDate": "20190314", "AccessionNumber": "51234"}
    mr_series(tcia, 4, tags=_person("TCGA-06-0123", tcia_tags), name=lambda ds, i: f"1-0{i}.dcm")
    # Non-MR objects kept in folders named after their own patients: refused, names scrubbed.
    copy_shipped("CT_small.dcm", root / "CompressedSamples_CT1" / "CT_small.dcm")
    copy_shipped("rtdose.dcm", root / "Lastname_Firstname" / "id11111_dose.dcm")
    # A preview beside the Japanese series, a report and a dangling annex link beside another.
    ph = pydicom.dcmread(mr_series(root / "tmp", 1)[0]).pixel_array
    shutil.rmtree(root / "tmp")
    Image.fromarray((ph / ph.max() * 255).astype("uint8")).save(root / "山田太郎" / "preview.png")
    (root / "Äneas_Rüdiger" / "RA-778812_report.docx").write_bytes(b"report " * 20)
    (root / "Äneas_Rüdiger" / "RA-778812_t1.nii.gz").symlink_to(root / ".git/annex/objects/x")


def _planted_values(root: Path) -> set[str]:
    """Every checked identifying value of every DICOM file under ``root``, name parts and the
    TCIA date spelling included (read independently of the code under test)."""
    values: set[str] = {"03-14-2019", "2019-03-14", "51234"}
    for path in root.rglob("*.dcm"):
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        for keyword in _CHECKED:
            value = str(ds.get(keyword, "") or "").strip()
            if not value:
                continue
            values.add(value)
            values.update(p for p in re.split(r"[\^=\s]+", value) if len(p) >= 2)
    return {v for v in values if len(v) >= 2}


def _leaks(out: Path, values: set[str]) -> list[str]:
    """Every (file, value) where the value occurs in the file's bytes in UTF-8 or Latin-1.

    Short and numeric values must stand alone (PNG and hex bytes are full of digit runs)."""
    found = []
    for path in sorted(p for p in out.rglob("*") if p.is_file()):
        data = path.read_bytes()
        for value in values:
            for encoding in ("utf-8", "latin-1"):
                try:
                    raw = value.encode(encoding)
                except UnicodeEncodeError:
                    continue
                loose = len(value) >= 5 and not any(c.isdigit() for c in value)
                edge = re.escape(raw) if loose else rb"(?<![0-9A-Za-z.])%s(?![0-9A-Za-z])"
                pattern = edge if loose else edge % re.escape(raw)
                if re.search(pattern, data, re.I if value.isascii() else 0):
                    found.append(f"{path.name}: {value!r} ({encoding})")
    return found


def _dump(db_path: Path) -> dict[str, list[tuple]]:
    with closing(sqlite3.connect(db_path)) as conn:
        tables = [r[0] for r in conn.execute("select name from sqlite_master where type='table'")]
        return {t: conn.execute(f"select * from [{t}] order by rowid").fetchall() for t in tables}


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    root = tmp_path / "archive"
    _tree(root)
    return root


def test_no_identifier_of_any_planted_file_reaches_any_written_byte(planted, tmp_path):
    db_path = tmp_path / "out" / "neuroonco.db"
    snapshots = []

    def grab(_summary) -> None:  # while the store is open: its -wal holds the latest writes
        snapshots.append({p.name: p.read_bytes() for p in db_path.parent.glob("neuroonco.db*")})

    summary = ingest([planted], db_path, on_case=grab)
    assert summary.cases == 5 and summary.slices == 5  # four series and the preview
    assert summary.rejected == 4  # CT, RTDOSE, the report, the dangling link
    rejected = dict(_dump(db_path)["rejected_inputs"][i][:2] for i in range(4))
    reasons = " | ".join(rejected.values())
    for expected in ("Modality CT", "Modality RTDOSE", "dangling symbolic link"):
        assert expected in reasons
    wal = tmp_path / "wal"
    wal.mkdir()
    for i, snap in enumerate(snapshots[-1:] + snapshots[:1]):
        for name, data in snap.items():
            (wal / f"{i}_{name}").write_bytes(data)
    assert any("-wal" in p.name for p in wal.iterdir())
    values = _planted_values(planted)
    assert {"Äneas", "Rüdiger", "山田", "太郎", "Yamada", "Jérôme", "TCGA-06-0123"} <= values
    assert _leaks(db_path.parent, values) == []
    assert _leaks(wal, values) == []
    # Nothing identifying, and still useful: the layout's neutral folder names are kept.
    paths = [r[0] for r in _dump(db_path)["slices"]]
    assert paths
    rows = sqlite3.connect(db_path).execute("select source_path from slices").fetchall()
    assert any(p.endswith("/T2/IM0001.dcm") for (p,) in rows), rows


def test_incremental_run_scrubs_new_files_beside_an_unchanged_series(planted, tmp_path):
    db_path = tmp_path / "out" / "neuroonco.db"
    ingest([planted], db_path)
    # New files appear beside series that are now skipped as unchanged.
    (planted / "Äneas_Rüdiger" / "T2" / "Rüdiger_notes.docx").write_bytes(b"n" * 40)
    Image.new("L", (32, 32), 7).save(planted / "山田太郎" / "series_2" / "山田_key.png")
    summary = ingest([planted], db_path)
    assert summary.skipped_cases == 5 and summary.rejected >= 1
    assert _leaks(db_path.parent, _planted_values(planted)) == []


def test_identical_rerun_adds_nothing_anywhere(planted, tmp_path):
    db_path = tmp_path / "out" / "neuroonco.db"
    ingest([planted], db_path)
    before, images = _dump(db_path), snapshot_files(images_dir(db_path))
    assert before["rejected_inputs"] and before["slices"]
    summary = ingest([planted], db_path)
    assert (summary.cases, summary.slices, summary.rejected) == (0, 0, 0)
    assert _dump(db_path) == before  # every table, every column (created_at included)
    assert snapshot_files(images_dir(db_path)) == images


def test_short_values_scrub_only_their_own_subject_as_whole_tokens(tmp_path):
    root = tmp_path / "src"
    placeholders = {"PatientID": "10", "OtherPatientIDs": "S1", "InstitutionName": "MC"}
    placeholders |= {"PatientName": "Anon", "OperatorsName": "----", "StudyDate": "20010203"}
    mr_series(root / "10" / "MC_S1", 3, tags=placeholders)
    for i, folder in enumerate(("n10_probmask", "S1x", "cohort_MC2", "10mm")):
        (root / "other" / folder).mkdir(parents=True)
        ramp = np.add.outer(np.arange(32), np.arange(32) * (i + 1)).astype(np.uint8)
        Image.fromarray(ramp).save(root / "other" / folder / "slice.png")
    db_path = tmp_path / "out" / "neuroonco.db"
    ingest([root], db_path)
    paths = {p for (p,) in sqlite3.connect(db_path).execute("select source_path from slices")}
    unrelated = {f"other/{f}/slice.png" for f in ("n10_probmask", "S1x", "cohort_MC2", "10mm")}
    assert unrelated <= paths  # untouched: another subject, and no whole-token match
    (dicom,) = paths - unrelated
    assert re.fullmatch(r"anon-[0-9a-f]{12}/anon-[0-9a-f]{12}/IM\d{4}\.dcm", dicom), dicom


def test_dangling_links_and_folder_link_loops_are_handled(tmp_path):
    root = tmp_path / "src"
    mr_series(root / "real" / "T1", 3)
    (root / "again").symlink_to(root / "real")  # the same folder twice: read once
    (root / "real" / "loop").symlink_to(root)  # a loop back up the tree
    (root / "real" / "T1" / "missing.dcm").symlink_to(root / "nowhere.dcm")
    db_path = tmp_path / "out" / "neuroonco.db"
    summary = ingest([root], db_path)
    assert (summary.cases, summary.rejected) == (1, 1)
    (reason,) = [
        r for (r,) in sqlite3.connect(db_path).execute("select reason from rejected_inputs")
    ]
    assert "dangling symbolic link" in reason and "git annex get" in reason


def _make_read_only(folder: Path) -> None:
    """Unwritable even for root: replaced by a link into sysfs when running as root."""
    if os.geteuid() != 0:
        for path in [folder, *(p for p in folder.rglob("*") if p.is_dir())]:
            path.chmod(0o555)
        return
    if not Path("/sys/kernel").is_dir():
        pytest.skip("no read-only folder available for root")
    shutil.rmtree(folder)
    folder.symlink_to("/sys/kernel")


@pytest.mark.parametrize("which", ["store folder", "images folder"])
def test_read_only_store_is_one_line_before_anything_is_written(tmp_path, which):
    src = tmp_path / "src"
    mr_series(src / "s", 3)
    db_path = tmp_path / "out" / "neuroonco.db"
    db_path.parent.mkdir()
    if which == "images folder":
        images_dir(db_path).mkdir()
        (images_dir(db_path) / "ab").mkdir()
        _make_read_only(images_dir(db_path))
    else:
        _make_read_only(db_path.parent)
    try:
        before = sorted(p.name for p in tmp_path.rglob("*") if "src" not in p.parts)
        with pytest.raises(NeuroOncoError, match="read-only"):
            ingest([src], db_path)
        assert sorted(p.name for p in tmp_path.rglob("*") if "src" not in p.parts) == before
        result = _run_cli("ingest", src, "--db", db_path)
        assert result.returncode == 2, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "read-only" in lines[0], result.stderr
        assert "Traceback" not in result.stderr + result.stdout
    finally:
        for path in tmp_path.rglob("*"):
            if path.is_dir() and not path.is_symlink():
                path.chmod(0o755)


def _plain_tree(root: Path) -> None:
    """ASCII names only: a patient folder with a series, a report and a preview beside it."""
    tags = _person("DOE^JANE", {"PatientID": "JD-30417", "StudyDate": "20120704"})
    mr_series(root / "DOE_JANE" / "T2", 4, tags=tags)
    (root / "DOE_JANE" / "JD-30417_report.docx").write_bytes(b"report " * 20)
    copy_shipped("CT_small.dcm", root / "DOE_JANE" / "CT" / "CT_small.dcm")


def test_incremental_run_knows_the_identifiers_of_skipped_cases(tmp_path):
    root = tmp_path / "src"
    _plain_tree(root)
    db_path = tmp_path / "out" / "neuroonco.db"
    ingest([root], db_path)
    (root / "DOE_JANE" / "T2" / "notes_DOE.docx").write_bytes(b"n" * 40)  # beside a skipped case
    summary = ingest([root], db_path)
    values = {"DOE", "JANE", "JD-30417", "2012-07-04", "20120704", "CompressedSamples", "1CT1"}
    assert _leaks(db_path.parent, values) == []
    assert summary.skipped_cases == 1 and summary.rejected == 1


def test_identical_rerun_of_a_plain_tree_adds_nothing(tmp_path):
    root = tmp_path / "src"
    _plain_tree(root)
    db_path = tmp_path / "out" / "neuroonco.db"
    ingest([root], db_path)
    before = _dump(db_path)
    summary = ingest([root], db_path)
    assert _dump(db_path) == before  # every table and column, created_at included
    assert summary.rejected == 0 and len(before["rejected_inputs"]) == 2  # the report and the CT


def test_distinctive_name_parts_are_scrubbed_anywhere_under_the_root(tmp_path):
    root = tmp_path / "src"
    mr_series(root / "cohort" / "P7" / "T2", 3, tags={"PatientName": "Hartmann^Ilse"})
    (root / "exports").mkdir()
    ramp = np.add.outer(np.arange(32), np.arange(32)).astype(np.uint8)
    Image.fromarray(ramp).save(root / "exports" / "hartmann_axial.png")  # outside P7/
    Image.fromarray(ramp.T.copy()).save(root / "exports" / "ilse_b.png")  # a short part: kept
    db_path = tmp_path / "out" / "neuroonco.db"
    ingest([root], db_path)
    paths = {p for (p,) in sqlite3.connect(db_path).execute("select source_path from slices")}
    assert "exports/ilse_b.png" in paths
    assert not any("hartmann" in p.lower() for p in paths)
    assert any(re.fullmatch(r"exports/anon-[0-9a-f]{12}\.png", p) for p in paths), paths


def test_rejection_reasons_name_the_file_as_shown_and_keep_our_words(planted, tmp_path):
    db_path = tmp_path / "out" / "neuroonco.db"
    ingest([planted], db_path)
    rows = sqlite3.connect(db_path).execute("select path, reason from rejected_inputs").fetchall()
    (dose,) = [r for p, r in rows if "RTDOSE" in r]
    assert "radiotherapy dose" in dose  # a planted name part ("OTHER-...") does not cut words
    assert all(str(planted) not in r and "\n" not in r for _, r in rows)


def test_placeholder_values_do_not_erase_words_of_the_reasons_beside_them(tmp_path):
    """pydicom's examples_ybr_color.dcm carries "Not connected" in an identifying attribute;
    the CT file beside it must still be refused as "..., not MR", not "[removed] MR"."""
    copy_shipped("examples_ybr_color.dcm", tmp_path / "src" / "a.dcm")
    copy_shipped("CT_small.dcm", tmp_path / "src" / "b.dcm")
    ds = pydicom.dcmread(tmp_path / "src" / "a.dcm", stop_before_pixels=True)
    assert any(str(e.value) == "Not connected" for e in ds.iterall())
    db_path = tmp_path / "out" / "neuroonco.db"
    ingest([tmp_path / "src"], db_path)
    with closing(sqlite3.connect(db_path)) as con:
        reasons = dict(con.execute("select path, reason from rejected_inputs"))
    assert "not MR" in reasons["src/b.dcm"] and "[removed]" not in reasons["src/b.dcm"]
