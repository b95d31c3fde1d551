"""The VLMEvalKit TSV, read back with pandas as VLMEvalKit reads it."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from neuroonco.benchmark.files import load_bench
from neuroonco.benchmark.vlmevalkit import export_vlmevalkit
from neuroonco.errors import ConfigError
from tests.benchmark.conftest import OFFICIAL_CLOSED


def test_tsv_reads_back_with_pandas(small_bench: Path, tmp_path: Path) -> None:
    bench = load_bench(small_bench / "closed.json")
    out = tmp_path / "NeuroOnco.tsv"
    assert export_vlmevalkit(bench, small_bench, out) == 7
    frame = pd.read_csv(out, sep="\t")  # what VLMEvalKit's load() does
    assert list(frame["index"]) == list(range(7))
    for column in ("image", "question", "A", "B", "C", "D", "E", "answer", "category"):
        assert column in frame.columns
    first = frame.iloc[0]
    assert first["question"] == "What is the most likely diagnosis?"
    assert [first[c] for c in "ABCDE"] == [
        "glioma",
        "meningioma",
        "metastasis",
        "schwannoma",
        "None of the above",
    ]
    assert first["answer"] == "A" and first["category"] == "diagnosis"
    two = frame[frame["question_id"] == "3_q1"].iloc[0]
    assert pd.isna(two["C"]) and pd.isna(two["E"])  # VLMEvalKit skips NaN options
    assert list(frame["l2-category"]).count("trap") == 2
    with Image.open(io.BytesIO(base64.b64decode(first["image"]))) as image:
        assert image.size == (16, 16)


def test_missing_images_are_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="images cannot be exported"):
        export_vlmevalkit(load_bench(OFFICIAL_CLOSED), tmp_path, tmp_path / "x.tsv")
    assert not (tmp_path / "x.tsv").exists()
