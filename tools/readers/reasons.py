"""Rejection reasons a person can act on: one line, no library internals, no absolute paths.

ITK's exceptions run to a dozen lines naming its own build tree
(``/tmp/SimpleITK-build/ITK/Modules/IO/...``, object addresses) and the absolute input path;
Python exceptions can carry newlines too. :func:`itk_reason` keeps the informative sentence of an
ITK error, and :func:`one_line` is the last pass over every reason before it is stored.
"""

from __future__ import annotations

import re
from pathlib import Path

# A reason longer than this is cut at a word boundary (never inside a path).
MAX_REASON = 400

_ADDRESS = re.compile(r"\s*\(0x[0-9a-fA-F]+\)")
_ITK_PREFIX = re.compile(r"^(?:s?itk(?:::|\s+))?(?:ERROR|WARNING|ExceptionObject)\s*:?\s*", re.I)
# An absolute POSIX or Windows path (its components may not contain whitespace or quotes).
_ABS_PATH = re.compile(r"""(?<![\w.])(?:[A-Za-z]:\\|/)[^\s'"():,;]+""")


def _basename(match: re.Match[str]) -> str:
    text = match.group(0).rstrip(".")
    name = re.split(r"[\\/]", text)[-1]
    return name or text


def one_line(reason: str, root: Path | None = None) -> str:
    """``reason`` as one line: whitespace collapsed, ``root`` shown by its name, any other
    absolute path (a library's build tree, a temporary file) reduced to its file name, and cut
    at a word boundary beyond :data:`MAX_REASON` characters."""
    text = reason
    if root is not None:
        text = text.replace(str(root), root.name)
    text = _ADDRESS.sub("", text)
    text = _ABS_PATH.sub(_basename, text)
    text = " ".join(text.split())
    if len(text) > MAX_REASON:
        text = text[:MAX_REASON].rsplit(" ", 1)[0] + " ..."
    return text


def itk_reason(exc: BaseException) -> str:
    """The informative sentence of an ITK exception, without file names, lines or addresses."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    detail = next((ln for ln in reversed(lines) if ln.lower().startswith("description")), None)
    if detail is not None:
        text = detail.split(":", 1)[-1].strip()
    else:
        # Skip the "Exception thrown in ... /src/....cxx:99:" location lines.
        useful = [ln for ln in lines if not re.search(r"\.(cxx|hxx|h|txx):\d+:?$", ln)]
        text = useful[-1] if useful else (lines[-1] if lines else type(exc).__name__)
    text = _ITK_PREFIX.sub("", text)
    # "ImageFileReader(0x55d...): Could not create IO object for reading file /x/y.nii"
    text = re.sub(r"^\w+\s*:\s*", "", _ADDRESS.sub("", text))
    return one_line(text).rstrip(".") or type(exc).__name__
