"""Fixtures of the reader tests; the builders live in :mod:`.builders`."""

from __future__ import annotations

from pathlib import Path

import pytest

from .builders import Sources


@pytest.fixture
def src(tmp_path: Path) -> Sources:
    return Sources(tmp_path)
