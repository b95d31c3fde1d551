"""Pseudonyms, the salt file and scrubbing of text and paths."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from neuroonco.tools.phi import (
    date_spellings,
    identifier_tokens,
    load_or_create_salt,
    mentions,
    scrub_name,
    scrub_relative_path,
    scrub_text,
    subject_id,
)

SALT = b"s" * 32


def test_subject_id_is_salted_and_stable() -> None:
    sid = subject_id("BraTS2021_00042", SALT)
    assert sid.startswith("sub-") and len(sid) == 4 + 16
    int(sid[4:], 16)
    assert sid == subject_id("BraTS2021_00042", SALT)
    assert sid == subject_id(" BraTS2021_00042 ", SALT)
    assert sid != subject_id("BraTS2021_00043", SALT)
    assert sid != subject_id("BraTS2021_00042", b"t" * 32)
    assert "00042" not in sid
    with pytest.raises(ValueError, match="salt"):
        subject_id("x", b"")


def test_salt_is_created_once_with_private_mode(tmp_path: Path) -> None:
    path = tmp_path / "state" / "salt.bin"
    salt = load_or_create_salt(path)
    assert len(salt) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_salt(path) == salt
    assert load_or_create_salt(tmp_path / "other.bin") != salt


def test_truncated_salt_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "salt.bin"
    path.write_bytes(b"short")
    with pytest.raises(ValueError, match="backup"):
        load_or_create_salt(path)
    assert path.read_bytes() == b"short"  # never overwritten


def test_scrub_text_whole_identifier_and_parts() -> None:
    text = "Patient DOE^JOHN, also written john doe or Doe-John; MRN 123456 (mrn:123456)."
    out = scrub_text(text, ["DOE^JOHN", "123456"])
    for leaked in ("DOE", "Doe", "john", "JOHN", "123456"):
        assert leaked not in out
    assert out.startswith("Patient [removed], also written [removed] [removed] or ")
    assert "MRN [removed]" in out


def test_scrub_text_ignores_short_parts_and_empty_identifiers() -> None:
    assert scrub_text("Li went to the lab", ["Li^Wei"]) == "Li went to the lab"
    assert scrub_text("Wei and Li", ["Li^Wei"]) == "[removed] and Li"
    assert scrub_text("nothing here", []) == "nothing here"
    assert scrub_text("nothing here", ["", " ", None]) == "nothing here"  # type: ignore[list-item]


def test_scrub_text_prefers_the_longest_match() -> None:
    assert scrub_text("id BraTS2021_00042 done", ["BraTS2021_00042"]) == "id [removed] done"


def test_identifier_tokens() -> None:
    tokens = identifier_tokens(["Doe^John Q"])
    assert tokens == ["doe^john q", "doejohnq", "johnqdoe", "john", "doe"]


def test_scrub_relative_path_hashes_identifying_components() -> None:
    rel = "Doe_John/series 1/DOE.JOHN.0001.dcm"
    out = scrub_relative_path(rel, ["DOE^JOHN"], SALT)
    parts = out.split("/")
    assert len(parts) == 3
    assert parts[0].startswith("anon-") and len(parts[0]) == 5 + 12
    assert parts[1] == "series 1"
    assert parts[2].startswith("anon-") and parts[2].endswith(".dcm")
    assert "doe" not in out.lower() and "john" not in out.lower()
    assert out == scrub_relative_path(rel, ["DOE^JOHN"], SALT)
    assert out != scrub_relative_path(rel, ["DOE^JOHN"], b"t" * 32)


def test_scrub_relative_path_keeps_compound_extensions_and_clean_paths() -> None:
    rel = "Training\\BraTS2021_00042\\BraTS2021_00042_flair.nii.gz"
    out = scrub_relative_path(rel, ["BraTS2021_00042"], SALT)
    assert out.endswith(".nii.gz") and "00042" not in out
    assert out.count("/") == 2
    assert out.startswith("Training/anon-")
    assert scrub_relative_path("a/b/c.png", ["someone"], SALT) == "a/b/c.png"
    assert scrub_relative_path("a/b/c.png", [], SALT) == "a/b/c.png"
    with pytest.raises(ValueError, match="relative"):
        scrub_relative_path("/home/doe/x.png", ["doe"], SALT)


def test_every_common_date_spelling_is_scrubbed() -> None:
    tcia = "TCGA-06-0123/03-14-2019-NA-MRI BRAIN-51234/2.000000-T2-40712/1-01.dcm"
    out = scrub_relative_path(tcia, ["20190314"], SALT)
    assert out.split("/")[1].startswith("anon-") and out.split("/")[2:] == [
        "2.000000-T2-40712",
        "1-01.dcm",
    ]
    for spelling in (
        "2019-03-14",
        "14.03.2019",
        "14-Mar-2019",
        "190314",
        "2019_03_14",
        "3-14-2019",
    ):
        assert scrub_text(f"scan {spelling} done", ["20190314"]) == "scan [removed] done", spelling
    assert date_spellings("20190231") == set()  # not a date: nothing extra to search
    assert scrub_text("id 120190314 and 2019031400", ["20190314"]) == "id 120190314 and 2019031400"


def test_short_values_match_only_as_whole_tokens() -> None:
    ids = ["10", "S1", "MC", "Anon"]
    assert scrub_relative_path("n10_probmask/S1x/MCI/anonymised.png", ids, SALT) == (
        "n10_probmask/S1x/MCI/anonymised.png"
    )
    out = scrub_relative_path("10/S1_T2/mc-scan/anon.png", ids, SALT).split("/")
    assert all(part.startswith("anon-") for part in out)
    assert scrub_text("10 mm from S1", ["10", "S1"]) == "[removed] mm from [removed]"


def test_placeholders_name_nobody() -> None:
    assert identifier_tokens(["----", "^", " "]) == []
    assert scrub_text("a ---- b", ["----"]) == "a ---- b"


def test_placeholder_and_function_words_are_not_scrubbed_alone() -> None:
    """pydicom's examples_ybr_color.dcm holds "Not connected": its "not" erased the word from
    every rejection reason beside it ("Modality CT, [removed] MR")."""
    assert identifier_tokens(["Not connected"]) == ["not connected"]
    ids = ["Not connected", "Doe^Jane", "Unknown Of The Hospital"]
    assert scrub_text("Modality CT, not MR; connected", ids, whole_words=True) == (
        "Modality CT, not MR; connected"
    )
    assert scrub_text("by Not Connected, of Jane Doe", ids, whole_words=True) == (
        "by [removed], of [removed] [removed]"
    )
    assert "hospital" in identifier_tokens(ids) and "the" not in identifier_tokens(ids)


def test_cjk_two_character_name_parts_are_kept() -> None:
    name = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    tokens = identifier_tokens([name])
    assert {"山田", "太郎", "やまだ", "たろう", "yamada", "tarou", "山田太郎"} <= set(tokens)
    assert scrub_text("検査_山田太郎_T2", [name]) == "検査_[removed]_T2"
    assert scrub_text("王小明", ["王^小明"]) == "[removed]"


def test_latin1_file_names_are_always_replaced() -> None:
    latin1 = os.fsdecode("Buc_J\xe9r\xf4me".encode("latin-1"))  # not UTF-8: surrogate escapes
    out = scrub_relative_path(f"{latin1}/flair/IM0001.dcm", [], SALT)
    assert out.startswith("anon-") and out.endswith("/flair/IM0001.dcm")
    out.encode("utf-8")  # storable
    assert scrub_name(latin1, [], SALT).startswith("anon-")


def test_a_latin1_folder_name_is_recognised_as_the_patient() -> None:
    latin1 = os.fsdecode("M\xfcller_J\xfcrgen".encode("latin-1"))
    assert mentions(latin1, ["Müller^Jürgen"])
    assert not mentions(latin1, ["Schmidt^Anna"])


def test_prose_is_scrubbed_by_whole_words_only() -> None:
    ids = ["OTHER-5521^Hartmann", "山田^太郎"]
    reason = "radiotherapy dose from Hartmann, other 山田太郎 file"
    out = scrub_text(reason, ids, whole_words=True)
    assert out == "radiotherapy dose from [removed], [removed] [removed] file"
    assert scrub_text("radiotherapy", ids) == "radi[removed]apy"  # paths: the safe side
