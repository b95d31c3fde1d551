"""Push the review queue to a Label Studio server and pull its annotations back, via its SDK.

Runs with the Label Studio virtualenv's Python (``make labelstudio-venv`` makes
``.venv-labelstudio``): ``label-studio-sdk`` pins versions our own venv cannot take, so this
script imports nothing from neuroonco and speaks only JSON files and the server's API.

    PY=.venv-labelstudio/bin/python
    export LABEL_STUDIO_URL=http://127.0.0.1:8080 LABEL_STUDIO_API_KEY=...   # or --url/--api-key
    $PY scripts/label_studio_sync.py push ls/tasks.json ls/labeling_config.xml --title "Run 7"
    $PY scripts/label_studio_sync.py pull PROJECT_ID ls/export.json
    $PY scripts/label_studio_sync.py annotate TASK_ID result.json   # a scripted decision

``push`` creates the project with the labeling config (showing the tasks' model version as
preselected answers), connects a Local Files storage when the tasks reference
``/data/local-files/`` URLs (the server must run with LABEL_STUDIO_LOCAL_FILES_SERVING_ENABLED=true
and LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT above the images folder), imports the tasks, and
prints ``{"project": ID, "tasks": [IDs]}``. ``pull`` writes the project's JSON export, the file
``neuroonco review --import-label-studio`` reads. Every failure is one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

LOCAL_FILES_PREFIX = "/data/local-files/?d="


def _fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def _client(args: argparse.Namespace) -> Any:
    try:
        from label_studio_sdk import LabelStudio
    except ImportError:
        _fail("label-studio-sdk is not installed here; run this with .venv-labelstudio/bin/python")
    url = args.url or os.environ.get("LABEL_STUDIO_URL")
    key = args.api_key or os.environ.get("LABEL_STUDIO_API_KEY")
    if not url or not key:
        _fail("give --url and --api-key (or set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY)")
    return LabelStudio(base_url=url, api_key=key, timeout=args.timeout)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        _fail(f"cannot read {path}: {exc}")


def _api_error(exc: Exception) -> str:
    body = getattr(exc, "body", None)
    status = getattr(exc, "status_code", None)
    return f"HTTP {status}: {json.dumps(body)[:600]}" if status else str(exc)


def push(args: argparse.Namespace) -> dict[str, Any]:
    """Create the project, connect its image storage, import the tasks."""
    tasks = _read_json(args.tasks)
    if not isinstance(tasks, list) or not tasks:
        _fail(
            f"{args.tasks} holds no task list; write it with "
            "`neuroonco review --export-label-studio`"
        )
    config = args.config.read_text(encoding="utf-8")
    versions = {p.get("model_version") for t in tasks for p in t.get("predictions") or []}
    client = _client(args)
    try:
        project = client.projects.create(
            title=args.title,
            label_config=config,
            model_version=next(iter(versions)) if len(versions) == 1 else None,
            show_collab_predictions=True,
            maximum_annotations=1,
        )
    except Exception as exc:  # the SDK raises ApiError subclasses; the message is what matters
        _fail(f"the server refused the project (labeling config {args.config}): {_api_error(exc)}")
    storage_dir = args.local_files_dir
    if storage_dir is None and any(
        str(v).startswith(LOCAL_FILES_PREFIX) for t in tasks for v in (t.get("data") or {}).values()
    ):
        storage_dir = args.tasks.parent / "images"
    if storage_dir is not None:
        try:
            client.import_storage.local.create(
                project=project.id,
                path=str(Path(storage_dir).resolve()),
                title="neuroonco images",
                use_blob_urls=False,  # tasks already name their files; nothing to scan
            )
        except Exception as exc:
            _fail(
                f"the server refused the Local Files storage {storage_dir} (is it under "
                f"LABEL_STUDIO_LOCAL_FILES_DOCUMENT_ROOT, with serving enabled?): {_api_error(exc)}"
            )
    try:
        client.projects.import_tasks(project.id, request=tasks, return_task_ids=True)
    except Exception as exc:
        _fail(f"the server refused the tasks of {args.tasks}: {_api_error(exc)}")
    ids = [t.id for t in client.tasks.list(project=project.id)]
    return {"project": project.id, "tasks": sorted(ids)}


def annotate(args: argparse.Namespace) -> dict[str, Any]:
    """Submit one annotation (a Label Studio result list) to a task, as a reviewer would."""
    result = _read_json(args.result)
    client = _client(args)
    try:
        ann = client.annotations.create(args.task, result=result, was_cancelled=False)
    except Exception as exc:
        _fail(f"the server refused the annotation of task {args.task}: {_api_error(exc)}")
    return {"annotation": ann.id, "task": args.task}


def pull(args: argparse.Namespace) -> dict[str, Any]:
    """Write the project's annotated tasks as Label Studio's JSON export."""
    client = _client(args)
    try:
        chunks = client.projects.exports.download_sync(args.project, export_type="JSON")
        data = b"".join(chunks)
        tasks = json.loads(data)
    except Exception as exc:
        _fail(f"cannot export project {args.project}: {_api_error(exc)}")
    # The export names each annotation's author by user id only; the reviews table wants a
    # person, so the id becomes {"id", "email"} (the form the importer reads).
    try:
        emails = {u.id: u.email for u in client.users.list()}
    except Exception as exc:
        _fail(
            f"cannot list the users of {args.url or os.environ.get('LABEL_STUDIO_URL')}: "
            f"{_api_error(exc)}"
        )
    for task in tasks:
        for ann in task.get("annotations") or []:
            who = ann.get("completed_by")
            if isinstance(who, int):
                ann["completed_by"] = {"id": who, "email": emails.get(who)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(tasks, indent=1), encoding="utf-8")
    return {"project": args.project, "tasks": len(tasks), "out": str(args.out)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="Label Studio URL (default: $LABEL_STUDIO_URL)")
    parser.add_argument("--api-key", help="API token (default: $LABEL_STUDIO_API_KEY)")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds per request")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("push", help="create a project from tasks.json and labeling_config.xml")
    p.add_argument("tasks", type=Path)
    p.add_argument("config", type=Path)
    p.add_argument("--title", default="NeuroOnco review")
    p.add_argument(
        "--local-files-dir",
        type=Path,
        help="folder to connect as Local Files storage (default: the tasks' images/ folder "
        "when they use /data/local-files/ URLs)",
    )
    p.set_defaults(run=push)
    a = sub.add_parser("annotate", help="submit a result list (JSON file) to a task")
    a.add_argument("task", type=int)
    a.add_argument("result", type=Path)
    a.set_defaults(run=annotate)
    q = sub.add_parser("pull", help="write a project's JSON export")
    q.add_argument("project", type=int)
    q.add_argument("out", type=Path)
    q.set_defaults(run=pull)
    args = parser.parse_args(argv)
    print(json.dumps(args.run(args)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
