"""Label Studio: the review queue as tasks, a labeling config from the vocabulary, and back.

Export (`export_queue`) writes ``tasks.json`` (Label Studio's import format: one task per slice,
``data`` with the image, a mask overlay image, the slice id and each describer's vote as text,
and one ``predictions`` entry, the model consensus, so every field's consensus value is
preselected) and ``labeling_config.xml`` (one single-choice ``Choices`` per reviewable field,
its choices the vocabulary: the display name shown, the vocabulary value as the ``alias`` that
lands in the results). The mask is a read-only ``BrushLabels`` region of the prediction drawn
on the slice (Label Studio's brush RLE, :mod:`neuroonco.review.ls_brush`), and also an overlay
image next to the slice: the reviewer judges the findings against it; mask edits are not imported
(the mask is the source dataset's measurement, not an opinion; reject the mask-derived fields of
a wrong one instead).

The PNGs are always written to ``<out>/images/``; the tasks reference them in one of three ways:
embedded as ``data:`` URIs (the default: works with any server, but every task carries its images);
``local_files_root``, the server's LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, above ``out``: Label
Studio's own ``/data/local-files/?d=<path below the root>`` URLs, served by the server itself once
a Local Files storage on ``<out>/images`` is connected to the project
(``scripts/label_studio_sync.py push`` does that); or ``url_prefix``: ``<url_prefix>/<file>``, for
a web server of your own that serves ``<out>/images/``.

Import (`import_export`) reads Label Studio's JSON export (a list of tasks with
``annotations``): per task its latest non-cancelled annotation; per field a choice equal to the
consensus is ``accept``, another choice ``edit``, a cleared consensus value ``reject``. An
annotation already imported (same id and update time) is skipped, so importing twice is safe.
"""

from __future__ import annotations

import base64
import io
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import quoteattr

import sqlite_utils

from neuroonco.errors import NeuroOncoError
from neuroonco.review import gold
from neuroonco.review.queue import QueueItem
from neuroonco.review.votes import VOTED_FIELDS
from neuroonco.schemas.vocabulary import FIELDS

LS_FIELDS: tuple[str, ...] = VOTED_FIELDS
TO_NAME = "image"
MODEL_VERSION = "neuroonco-consensus"
MASK_NAME = "lesion_mask"
MASK_LABEL = "lesion (mask)"
LOCAL_FILES_URL = "/data/local-files/?d="
LESION_YES, LESION_NO = "yes", "no"  # lesion_found's choices (the vocabulary reads both)


def _choices(field: str) -> list[tuple[str, str]]:
    """(shown text, vocabulary value) of each choice of ``field``."""
    if field == "lesion_found":
        # Not "true"/"false": Label Studio's frontend turns those attribute strings into booleans
        # and then cannot render the config at all (seen in a browser against label-studio
        # 1.23: "No matching type for union (string | null?)"); the server accepts it silently.
        return [("lesion present", LESION_YES), ("no lesion", LESION_NO)]
    from neuroonco.schemas.vocabulary import display_name

    out = []
    for member in FIELDS[field]:
        try:
            shown = display_name(field, member.value)
        except (ValueError, KeyError):
            shown = member.value
        out.append((shown, member.value))
    return out


def labeling_config() -> str:
    """The Label Studio labeling config XML for the reviewable fields."""
    lines = [
        "<View>",
        '  <Header value="$slice_id"/>',
        f'  <Image name="{TO_NAME}" value="$image" zoom="true"/>',
        f'  <BrushLabels name="{MASK_NAME}" toName="{TO_NAME}">',
        f'    <Label value="{MASK_LABEL}" background="#ff0000"/>',
        "  </BrushLabels>",
        '  <Image name="mask" value="$mask"/>',
        '  <Header value="Describer votes"/>',
        '  <Text name="votes" value="$votes"/>',
    ]
    for field in LS_FIELDS:
        lines.append(f"  <Header value={quoteattr(field)}/>")
        lines.append(
            f'  <Choices name="{field}" toName="{TO_NAME}" choice="single" showInline="true">'
        )
        for shown, value in _choices(field):
            lines.append(f"    <Choice value={quoteattr(shown)} alias={quoteattr(value)}/>")
        lines.append("  </Choices>")
    lines.append("</View>")
    return "\n".join(lines) + "\n"


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _choice_value(value: Any) -> str | None:
    """A finding value as the alias of its choice in the labeling config."""
    if isinstance(value, bool):
        return LESION_YES if value else LESION_NO
    return _text(value)


def _db_dir(db: sqlite_utils.Database) -> Path:
    for row in db.conn.execute("PRAGMA database_list"):
        if row[1] == "main" and row[2]:
            return Path(row[2]).parent
    return Path.cwd()


def _overlay(image: Path, mask: Path | None) -> bytes:
    """The slice with the mask's lesion pixels tinted red (the slice alone without a mask)."""
    from PIL import Image

    base = Image.open(image).convert("RGB")
    if mask is not None and mask.exists():
        m = Image.open(mask).convert("L").resize(base.size)
        red = Image.new("RGB", base.size, (255, 0, 0))
        alpha = m.point(lambda v: 110 if v > 0 else 0)
        base = Image.composite(red, base, alpha)
    buf = io.BytesIO()
    base.save(buf, format="PNG")
    return buf.getvalue()


def _images_below(out: Path, local_files_root: Path) -> str:
    """The path of ``<out>/images`` below the server's document root, as a URL path."""
    images = (out / "images").resolve()
    root = local_files_root.resolve()
    if images == root or root not in images.parents:
        raise NeuroOncoError(
            f"--local-files-root {local_files_root} must be a folder above {out}; Label Studio "
            "serves only files below its LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT"
        )
    return images.relative_to(root).as_posix()


def _mask_region(slice_id: str, image: Path, mask: Path | None) -> dict[str, Any] | None:
    """The mask as a read-only brush region of the prediction (None without a mask file)."""
    if mask is None or not mask.exists():
        return None
    import numpy as np
    from PIL import Image

    from neuroonco.review.ls_brush import mask_rle

    size = Image.open(image).size
    m = Image.open(mask).convert("L")
    if m.size != size:
        m = m.resize(size, Image.Resampling.NEAREST)
    return {
        "id": f"{slice_id}-{MASK_NAME}",
        "from_name": MASK_NAME,
        "to_name": TO_NAME,
        "type": "brushlabels",
        "readonly": True,
        "original_width": size[0],
        "original_height": size[1],
        "image_rotation": 0,
        "value": {"format": "rle", "rle": mask_rle(np.asarray(m)), "brushlabels": [MASK_LABEL]},
    }


def _uri(data: bytes, out: Path, name: str, url_prefix: str | None, local_path: str | None) -> str:
    (out / "images").mkdir(parents=True, exist_ok=True)
    (out / "images" / name).write_bytes(data)
    if local_path is not None:
        return LOCAL_FILES_URL + quote(f"{local_path}/{name}")
    if url_prefix:
        return f"{url_prefix.rstrip('/')}/{name}"
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def export_queue(
    db: sqlite_utils.Database,
    items: list[QueueItem],
    out: Path,
    *,
    url_prefix: str | None = None,
    local_files_root: Path | None = None,
    run_id: str | None = None,
) -> tuple[Path, Path]:
    """Write ``tasks.json`` and ``labeling_config.xml`` for ``items`` into ``out``."""
    if url_prefix and local_files_root is not None:
        raise NeuroOncoError("give either --image-url-prefix or --local-files-root, not both")
    out.mkdir(parents=True, exist_ok=True)
    local_path = _images_below(out, local_files_root) if local_files_root is not None else None
    base = _db_dir(db)
    tasks = []
    for item in items:
        rows = list(
            db.query("SELECT image_path, mask_path FROM slices WHERE id = ?", [item.slice_id])
        )
        if not rows or not rows[0]["image_path"]:
            raise NeuroOncoError(f"slice {item.slice_id} has no stored image; re-run ingest")
        image = base / rows[0]["image_path"]
        if not image.exists():
            raise NeuroOncoError(f"the image of slice {item.slice_id} is missing: {image}")
        mask = base / rows[0]["mask_path"] if rows[0]["mask_path"] else None
        votes = "\n".join(
            f"{rater}: " + ", ".join(f"{k}={_text(v)}" for k, v in values.items() if v is not None)
            for rater, values in item.votes.items()
        )
        result = [
            {
                "id": f"{item.slice_id}-{field}",
                "from_name": field,
                "to_name": TO_NAME,
                "type": "choices",
                "value": {"choices": [_choice_value(item.consensus.get(field))]},
            }
            for field in LS_FIELDS
            if item.consensus.get(field) is not None
        ]
        region = _mask_region(item.slice_id, image, mask)
        if region is not None:
            result.append(region)
        tasks.append(
            {
                "data": {
                    "slice_id": item.slice_id,
                    "run_id": run_id,
                    "image": _uri(
                        image.read_bytes(), out, f"{item.slice_id}.png", url_prefix, local_path
                    ),
                    "mask": _uri(
                        _overlay(image, mask),
                        out,
                        f"{item.slice_id}_overlay.png",
                        url_prefix,
                        local_path,
                    ),
                    "votes": votes or "(no describer vote)",
                    "agreement": item.agreement,
                    "disputed": ", ".join(item.disputed),
                },
                "predictions": [
                    {"model_version": MODEL_VERSION, "score": item.agreement, "result": result}
                ],
            }
        )
    tasks_path = out / "tasks.json"
    tasks_path.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    config_path = out / "labeling_config.xml"
    config_path.write_text(labeling_config(), encoding="utf-8")
    return tasks_path, config_path


def _reviewer(annotation: dict[str, Any], override: str | None) -> str:
    if override:
        return override
    who = annotation.get("completed_by")
    if isinstance(who, dict):
        who = who.get("email") or who.get("id")
    return f"label_studio:{who}" if who is not None else "label_studio"


def _choice(result: list[dict[str, Any]], field: str) -> tuple[bool, Any]:
    """(field answered, its value) from an annotation's result list."""
    for r in result:
        if r.get("from_name") == field and r.get("type") == "choices":
            picked = (r.get("value") or {}).get("choices") or []
            if picked:
                return True, picked[0]
    return False, None


def import_export(
    db: sqlite_utils.Database,
    path: Path,
    *,
    run_id: str | None = None,
    reviewer: str | None = None,
) -> list[dict[str, Any]]:
    """Record the decisions of a Label Studio JSON export; returns the rows written."""
    try:
        tasks = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise NeuroOncoError(f"cannot read the Label Studio export {path}: {exc}") from exc
    if not isinstance(tasks, list):
        raise NeuroOncoError(f"{path} is not a Label Studio JSON export (a list of tasks)")
    seen = {
        r["note"]
        for r in db.query("SELECT note FROM reviews WHERE source = 'label_studio'")
        if r["note"]
    }
    planned: list[dict[str, Any]] = []
    for task in tasks:
        data = task.get("data") or {}
        slice_id = data.get("slice_id")
        annotations = [a for a in task.get("annotations") or [] if not a.get("was_cancelled")]
        if not slice_id or not annotations:
            continue
        ann = max(annotations, key=lambda a: a.get("updated_at") or a.get("created_at") or "")
        note = f"ls_annotation={ann.get('id')}@{ann.get('updated_at') or ann.get('created_at')}"
        if note in seen:
            continue
        task_run = data.get("run_id") or run_id
        for field in LS_FIELDS:
            answered, value = _choice(ann.get("result") or [], field)
            current = gold.consensus_value(db, slice_id, field, task_run)
            if answered:
                # Compared as vocabulary values, so older exports ("true"/"false") read the
                # same; a value outside the vocabulary refuses the whole file before any write.
                parsed = gold.check_value(field, value)
                decision, new = ("accept", None) if parsed == current else ("edit", value)
            elif current is not None:
                decision, new = "reject", None
            else:
                continue
            planned.append(
                {
                    "slice_id": slice_id,
                    "field": field,
                    "decision": decision,
                    "value": new,
                    "run_id": task_run,
                    "reviewer": _reviewer(ann, reviewer),
                    "note": note,
                }
            )
    return [
        gold.record(
            db, p.pop("slice_id"), p.pop("field"), p.pop("decision"), source="label_studio", **p
        )
        for p in planned
    ]
