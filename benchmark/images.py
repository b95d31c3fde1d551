"""Benchmark images: resolved safely under an images root and read as PNG bytes.

A record's `image_path` is relative to the images root. A path that leaves the root (`../x`, an
absolute path, a symlink pointing out) or a file that is missing or unreadable raises
`ImageProblem`, which `bench run` records against that question and goes on.
"""

from __future__ import annotations

import functools
import hashlib
import io
from pathlib import Path

from PIL import Image, UnidentifiedImageError

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class ImageProblem(Exception):
    """One question's image cannot be used; the message says which file and why."""


def resolve_image(root: Path, image_path: str) -> Path:
    """The file `image_path` names under `root`; ImageProblem if it escapes root or is absent."""
    root = root.resolve()
    candidate = Path(image_path)
    if candidate.is_absolute():
        raise ImageProblem(
            f"image path {image_path!r} is absolute: paths must be relative to --images-root"
        )
    resolved = (root / candidate).resolve()
    if not resolved.is_relative_to(root):
        raise ImageProblem(f"image path {image_path!r} escapes --images-root {root}")
    if not resolved.is_file():
        raise ImageProblem(f"image not found: {root / candidate} (check --images-root)")
    return resolved


@functools.lru_cache(maxsize=64)
def png_bytes(path: Path) -> bytes:
    """The image as PNG bytes (PNG files are passed through, other formats converted)."""
    data = path.read_bytes()
    if data.startswith(PNG_MAGIC):
        return data
    try:
        with Image.open(io.BytesIO(data)) as image:
            out = io.BytesIO()
            image.convert("RGB" if image.mode not in ("L", "RGB", "RGBA") else image.mode).save(
                out, format="PNG"
            )
    except (UnidentifiedImageError, OSError) as exc:
        raise ImageProblem(f"cannot read image {path}: {exc}") from None
    return out.getvalue()


@functools.lru_cache(maxsize=4096)
def file_digest(path: Path) -> str:
    """sha256 of a file's bytes (the cache key's view of an image)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
