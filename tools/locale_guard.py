"""Keep the process locale as it was around SimpleITK calls.

GDCM (SimpleITK's DICOM writer) switches the C locale to "C" and leaves it there, which turns
Python's default text encoding into ASCII for the rest of the process: a later ``open()`` of a
UTF-8 file (the official benchmark JSON, a report) then fails. Every DICOM read and write of ours
goes through :func:`locale_kept`.
"""

from __future__ import annotations

import locale
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def locale_kept() -> Iterator[None]:
    """Restore every locale category after the block, whatever the block (or GDCM) changed."""
    saved = locale.setlocale(locale.LC_ALL)
    try:
        yield
    finally:
        if locale.setlocale(locale.LC_ALL) != saved:
            locale.setlocale(locale.LC_ALL, saved)
