"""Keeping patient identifiers out of everything we write.

Subjects get salted pseudonyms (HMAC-SHA256 with a per-installation secret salt, so the raw id
cannot be recovered by hashing guesses without the salt); free text and relative paths are
scrubbed of every identifier a reader found (case ids, DICOM PatientName/PatientID, dates, ...).

How a value is searched for (see :func:`identifier_tokens`):

- a distinctive value or name part (five or more characters with a letter, or any run of two or
  more CJK/Hangul/kana characters, which are written without separators) is scrubbed wherever it
  occurs, inside longer words too: for identifiers, over-scrubbing is the safe side;
- a short or numeric value (``10``, ``S1``, ``MC``, ``Anon``, a date, a UID) only as a whole
  token: not preceded or followed by a letter or digit, so ``10`` never hits ``n10_probmask``;
- a value with no letter or digit (``----``, DICOM's placeholder) names nobody and is skipped;
- a part that is a placeholder or function word (``Not connected``, ``Unknown``, ``the``, what
  devices and anonymisers write where a value is missing) is not searched for alone; the whole
  value still is, as a whole token: "Not connected" must not erase "not" from every reason;
- a DICOM date (``YYYYMMDD``) in every common spelling: ``2019-03-14``, ``03-14-2019`` (the TCIA
  folder layout), ``14.03.2019``, ``14-Mar-2019``, ``190314`` ...
"""

from __future__ import annotations

import calendar
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path, PurePosixPath

REMOVED = "[removed]"
SALT_BYTES = 32
MIN_PART = 3  # shorter Latin parts of an identifier ("Li", "Jr") would erase ordinary text
MIN_WIDE_PART = 2  # CJK given and family names are often two characters (山田, 太郎)
MIN_WHOLE = 2  # a whole identifier shorter than this is not searched for at all
MIN_DIGITS = 5  # an all-digit part shorter than this is a counter, not an identifier
MIN_LOOSE = 5  # a token this long (with a letter) is scrubbed inside longer words too

# Words devices and anonymisers write where a value is missing, and function words: no name
# part worth scrubbing alone (the whole value still is).
_COMMON_WORDS_TEXT = """
not connected specified available applicable unknown none null nil empty blank n/a anonymous
anonymised anonymized deidentified identified removed redacted withheld patient name missing
default the and for with from into onto over under than that this these those was were are has
had have its our out but nor yet all any can may one two per via
"""
COMMON_WORDS = frozenset(_COMMON_WORDS_TEXT.split())
# DICOM PN: "^" between name parts, "=" between alphabetic/ideographic/phonetic groups.
_SPLIT = re.compile(r"[\^=,\s_\-]+")
# CJK ideographs, kana, Hangul, full/half-width forms: scripts written without spaces.
_WIDE = re.compile(r"[\u2e80-\u9fff\uac00-\ud7af\uf900-\ufaff\uff00-\uffef]")
_ALNUM = re.compile(r"[^\W_]")
_DATE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DATE_SEPARATORS = ("", "-", ".", "_", " ")
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
    if _WIDE.search(part):
        return len(part) >= MIN_WIDE_PART
    if len(part) < MIN_PART:
        return False
    return not part.isdigit() or len(part) >= MIN_DIGITS


def date_spellings(value: str) -> set[str]:
    """The common spellings of a DICOM date (``YYYYMMDD``, or the date of a ``DT``): ISO,
    US (``MM-DD-YYYY``, TCIA folders), European, two-digit years, month names; none if
    ``value`` is not a valid date."""
    match = _DATE.match(value.strip())
    if not match:
        return set()
    year, month, day = (int(g) for g in match.groups())
    if not (1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]):
        return set()
    years = (f"{year:04d}", f"{year % 100:02d}")
    months = {f"{month:02d}", str(month)}
    days = {f"{day:02d}", str(day)}
    names = {calendar.month_abbr[month], calendar.month_name[month]}
    out: set[str] = set()
    for sep in _DATE_SEPARATORS:
        for y in years:
            for m in months:
                for d in days:
                    if not sep and (len(m) < 2 or len(d) < 2):
                        continue  # "2019314" is ambiguous: only padded forms run together
                    out.update((f"{y}{sep}{m}{sep}{d}", f"{m}{sep}{d}{sep}{y}"))
                    out.add(f"{d}{sep}{m}{sep}{y}")
            for name in names:
                for d in days:
                    out.update((f"{d}{sep}{name}{sep}{y}", f"{name}{sep}{d}{sep}{y}"))
                    out.add(f"{y}{sep}{name}{sep}{d}")
    return {s.lower() for s in out}


def _name_forms(ident: str, parts: list[str]) -> set[str]:
    """A person name also written run together, either way round (``DoeJane``, ``JaneDoe``,
    ``山田太郎``)."""
    if "^" not in ident and "=" not in ident:
        return set()
    out = set()
    for group in ident.split("="):
        names = [p for p in group.split("^") if p.strip()][:2]
        if len(names) == 2:
            out.update(("".join(names).replace(" ", ""), "".join(names[::-1]).replace(" ", "")))
    return {o for o in out if o not in parts}


def identifier_tokens(identifiers: Iterable[str]) -> list[str]:
    """Every string to scrub: each identifier, its parts split on ``^ = , space _ -`` (Latin parts
    of at least ``MIN_PART`` characters, CJK ones of at least ``MIN_WIDE_PART``), a person name's
    run-together forms and a date's other spellings; lower-cased, longest first."""
    tokens: set[str] = set()
    for ident in identifiers:
        ident = (ident or "").strip()
        if len(ident) < MIN_WHOLE and not _WIDE.search(ident):
            continue
        if not _ALNUM.search(ident):  # "----", "^": placeholders that name nobody
            continue
        tokens.add(ident.lower())
        parts = [
            p for p in _SPLIT.split(ident) if _distinctive(p) and p.lower() not in COMMON_WORDS
        ]
        tokens.update(p.lower() for p in parts)
        tokens.update(f.lower() for f in _name_forms(ident, parts))
        tokens.update(date_spellings(ident))
    return sorted(tokens, key=lambda t: (-len(t), t))


def _loose(token: str) -> bool:
    """Whether ``token`` is distinctive enough to scrub inside longer words."""
    if _WIDE.search(token):
        return True
    return len(token) >= MIN_LOOSE and any(c.isalpha() for c in token) and not _date_like(token)


def _date_like(token: str) -> bool:
    """A spelled date like ``14-mar-2019`` stays a whole token (``mar`` is in ``mark``)."""
    return sum(c.isdigit() for c in token) >= 2


def distinctive_tokens(identifiers: Iterable[str]) -> list[str]:
    """The tokens of ``identifiers`` that cannot plausibly name anything but the patient (a name
    part of five letters or more, a CJK name part): safe to scrub anywhere under a source root,
    where short values (``10``, ``S1``) are scrubbed only in their own subject's folder. Each is
    a single token, so searching it again finds only itself."""
    return [t for t in identifier_tokens(identifiers) if _loose(t) and not _SPLIT.search(t)]


class _Matcher:
    """Finds identifier tokens in text, case-insensitively: loose ones anywhere, the others only
    as whole tokens. Plain substring search: a series' hundreds of instance UIDs and date
    spellings would make one regular expression slow to compile for every case."""

    def __init__(self, tokens: list[str]) -> None:
        self.tokens = [(t, _loose(t)) for t in tokens]  # longest first

    def spans(self, text: str, whole_words: bool = False) -> list[tuple[int, int]]:
        low = text.lower()
        if len(low) != len(text):  # rare case mappings change lengths: keep positions exact
            low = "".join(c.lower() if len(c.lower()) == 1 else c for c in text)
        found = []
        for token, loose in self.tokens:
            start = low.find(token)
            while start != -1:
                end = start + len(token)
                free = loose and not (whole_words and not _WIDE.search(token))
                if free or (not _glued(low, start - 1) and not _glued(low, end)):
                    found.append((start, end))
                start = low.find(token, start + 1)
        found.sort(key=lambda span: (span[0], -span[1]))
        kept: list[tuple[int, int]] = []
        for start, end in found:  # leftmost, then longest, never overlapping
            if not kept or start >= kept[-1][1]:
                kept.append((start, end))
        return kept

    def search(self, text: str) -> bool:
        return bool(self.spans(text))

    def sub(self, replacement: str, text: str, whole_words: bool = False) -> str:
        out, last = [], 0
        for start, end in self.spans(text, whole_words):
            out += [text[last:start], replacement]
            last = end
        return "".join([*out, text[last:]])


def _glued(text: str, i: int) -> bool:
    """Whether position ``i`` of ``text`` holds a letter or digit (of any script)."""
    return 0 <= i < len(text) and text[i].isalnum()


@lru_cache(maxsize=256)
def _compiled(identifiers: frozenset[str]) -> _Matcher | None:
    tokens = identifier_tokens(identifiers)
    return _Matcher(tokens) if tokens else None


def _pattern(identifiers: Iterable[str]) -> _Matcher | None:
    return _compiled(frozenset(i for i in identifiers if i))


def scrub_text(text: str, identifiers: Iterable[str], *, whole_words: bool = False) -> str:
    """``text`` with every case-insensitive occurrence of each identifier token (see the module
    docstring for which match inside words and which only whole) replaced by ``[removed]``.

    ``whole_words``: every Latin token only as a whole word, for prose of our own (a rejection
    reason) where a name part like ``Other`` must not cut ``radiotherapy``."""
    pattern = _pattern(identifiers)
    return text if pattern is None else pattern.sub(REMOVED, text, whole_words)


def _suffix(name: str) -> str:
    lower = name.lower()
    for multi in _MULTI_SUFFIXES:
        if lower.endswith(multi) and len(name) > len(multi):
            return name[-len(multi) :]
    match = _SUFFIX.search(name)
    return match.group(0) if match and match.start() > 0 else ""


def _undecodable(part: str) -> bool:
    """A file name that is not valid UTF-8 (Python keeps its bytes as surrogate escapes): it
    cannot be stored as text, and is typically a Latin-1 name (``M\\xfcller``)."""
    return any("\udc80" <= c <= "\udcff" for c in part)


def mentions(name: str, identifiers: Iterable[str]) -> bool:
    """Whether ``name`` holds an identifier token; a name that is not UTF-8 is read as the
    Latin-1 (Windows-1252) bytes such names almost always are."""
    pattern = _pattern(identifiers)
    if pattern is None:
        return False
    if _undecodable(name):
        name = name.encode("utf-8", "surrogateescape").decode("cp1252", "replace")
    return pattern.search(name)


def scrub_name(name: str, identifiers: Iterable[str], salt: bytes) -> str:
    """A free-standing name (a dataset's folder name) with identifier tokens replaced by
    ``[removed]``; one that is not valid UTF-8 becomes ``anon-<12 hex>`` (it cannot be stored,
    and may hide a Latin-1 name)."""
    if _undecodable(name):
        return scrub_relative_path(name.replace("/", "_"), (), salt)
    return scrub_text(name, identifiers)


def scrub_relative_path(rel: str, identifiers: Iterable[str], salt: bytes) -> str:
    """``rel`` (a path relative to a source root) with each component that contains an
    identifier token, or is not valid UTF-8, replaced by ``anon-<12 hex>`` (salted HMAC of the
    component, so equal names map to equal tokens) plus the component's extension
    (``.nii.gz``, ``.dcm``).

    Returned with ``/`` separators; a ``\\`` in ``rel`` counts as a separator too.
    """
    path = PurePosixPath(rel.replace("\\", "/"))
    if path.is_absolute():
        raise ValueError(f"scrub_relative_path needs a path relative to the source root: {rel}")
    pattern = _pattern(identifiers)
    out = []
    for part in path.parts:
        if _undecodable(part) or (pattern is not None and pattern.search(part)):
            raw = part.encode("utf-8", "surrogateescape")
            digest = hmac.new(salt, raw, hashlib.sha256).hexdigest()
            part = f"anon-{digest[:12]}{_suffix(part)}"
        out.append(part)
    return "/".join(out)
