"""SimpleITK's DICOM writer must not leave the process in the ASCII "C" locale."""

from __future__ import annotations

import locale
from pathlib import Path

from neuroonco.tools.sample_tree import write_sample_tree


def test_writing_and_reading_dicom_keeps_the_locale(tmp_path: Path) -> None:
    before = locale.setlocale(locale.LC_ALL)
    write_sample_tree(tmp_path / "src", seed=3)  # writes DICOM series through GDCM
    assert locale.setlocale(locale.LC_ALL) == before
    # The text encoding every later open() uses is still the one the process started with.
    assert locale.getpreferredencoding(False) != "ANSI_X3.4-1968" or before == "C"
