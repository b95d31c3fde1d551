"""Keeping patient identifiers out of everything we write.

Subjects get salted pseudonyms (HMAC-SHA256 with a per-installation secret salt, so the raw id
cannot be recovered by hashing guesses without the salt); free text and relative paths are
scrubbed of every identifier a reader found (case ids, DICOM PatientName/PatientID, ...).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

REMOVED = "[removed]"
SALT_BYTES = 32
MIN_PART = 3  # shorter parts of an identifier ("Li", "Jr") would erase ordinary text
MIN_WHOLE = 2  # a whole identifier shorter than this is not searched for at all
MIN_DIGITS = 5  # an all-digit part shorter than this is a counter, not an identifier

_SPLIT = re.compile(r"[\^,\s_\-]+")
# Suffixes kept on a hashed path component, so the file type stays readable.
_MULTI_SUFFIXES = (".nii.gz", ".tar.gz")
_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,6}$")


def subject_id(raw: str, salt: bytes) -> str:
    """Pseudonymous subject id: ``sub-`` + first 16 hex of HMAC-SHA256(salt, raw id).

    Surrounding whitespace of ``raw`` is ignored (readers disagree on padding DICOM strings)."""
    if not salt:
        raise ValueError("subject_id needs a non-empty salt (see load_or_create_salt)")
    digest = hmac.new(salt, raw.strip().encode("utf-8"), hashlib.sha256).hexdigest()
    return f"sub-{digest[:16]}"


def load_or_create_salt(path: Path) -> bytes:
    """The salt stored at ``path``, created once (32 random bytes, mode 0600) if missing.

    Losing or changing the salt changes every subject id, so it is never overwritten.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        # O_EXCL: two processes starting at once cannot both create (and disagree on) a salt.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        salt = path.read_bytes()
        if len(salt) < 16:
            raise ValueError(
                f"{path}: salt file holds {len(salt)} bytes, expected {SALT_BYTES}; restore it "
                "from a backup (deleting it changes every subject id)"
            ) from None
        return salt
    salt = os.urandom(SALT_BYTES)
    with os.fdopen(fd, "wb") as fh:
        fh.write(salt)
    return salt


def _distinctive(part: str) -> bool:
    """A part worth scrubbing on its own: long enough, and not a short counter like "0001"
    (which would hit every ``IM0001.dcm`` and ``Tr-gl_0001.jpg``)."""
    if len(part) < MIN_PART:
        return False
    return not part.isdigit() or len(part) >= MIN_DIGITS


def identifier_tokens(identifiers: Iterable[str]) -> list[str]:
    """Every string to scrub: each identifier and its parts split on ``^ , space _ -`` (parts
    of at least ``MIN_PART`` characters), lower-cased, longest first."""
    tokens: set[str] = set()
    for ident in identifiers:
        ident = (ident or "").strip()
        if len(ident) >= MIN_WHOLE:
            tokens.add(ident.lower())
        tokens.update(p.lower() for p in _SPLIT.split(ident) if _distinctive(p))
    return sorted(tokens, key=lambda t: (-len(t), t))


def _pattern(identifiers: Iterable[str]) -> re.Pattern[str] | None:
    tokens = identifier_tokens(identifiers)
    if not tokens:
        return None
    return re.compile("|".join(re.escape(t) for t in tokens), re.IGNORECASE)


def scrub_text(text: str, identifiers: Iterable[str]) -> str:
    """``text`` with every case-insensitive occurrence of each identifier, and of each of its
    parts, replaced by ``[removed]``. Occurrences inside longer words are replaced too: for
    identifiers, over-scrubbing is the safe side."""
    pattern = _pattern(identifiers)
    return text if pattern is None else pattern.sub(REMOVED, text)


def _suffix(name: str) -> str:
    lower = name.lower()
    for multi in _MULTI_SUFFIXES:
        if lower.endswith(multi) and len(name) > len(multi):
            return name[-len(multi) :]
    match = _SUFFIX.search(name)
    return match.group(0) if match and match.start() > 0 else ""


def scrub_relative_path(rel: str, identifiers: Iterable[str], salt: bytes) -> str:
    """``rel`` (a path relative to a source root) with each component that contains an
    identifier or one of its parts replaced by ``anon-<12 hex>`` (salted HMAC of the component,
    so equal names map to equal tokens) plus the component's extension (``.nii.gz``, ``.dcm``).

    Returned with ``/`` separators; a ``\\`` in ``rel`` counts as a separator too.
    """
    path = PurePosixPath(rel.replace("\\", "/"))
    if path.is_absolute():
        raise ValueError(f"scrub_relative_path needs a path relative to the source root: {rel}")
    pattern = _pattern(identifiers)
    parts = path.parts
    out = []
    for part in parts:
        if pattern is not None and pattern.search(part):
            digest = hmac.new(salt, part.encode("utf-8"), hashlib.sha256).hexdigest()
            part = f"anon-{digest[:12]}{_suffix(part)}"
        out.append(part)
    return "/".join(out)
