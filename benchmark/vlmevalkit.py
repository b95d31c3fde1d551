"""`bench export --format vlmevalkit`: a closed benchmark as VLMEvalKit's custom MCQ TSV.

VLMEvalKit runs any TSV placed in its data folder (`$LMUData/<NAME>.tsv`, run as `--data NAME`)
as a multiple-choice benchmark when it has the columns `index` (integer), `image` (the image file
base64-encoded), `question`, one column per option `A`..`E` (empty where a question has fewer
options) and `answer` (a letter); `category` groups its accuracy table. We add `l2-category`
(`trap` or `answerable`) and our `question_id`, so its results map back to our questions.
Note that VLMEvalKit's own answer matching may fall back to a random option; `bench score` does
not.
"""

from __future__ import annotations

import base64
import csv
from pathlib import Path

from neuroonco.benchmark.files import Bench
from neuroonco.benchmark.images import ImageProblem, resolve_image
from neuroonco.errors import ConfigError

LETTERS = ("A", "B", "C", "D", "E")
COLUMNS = (
    "index",
    "question_id",
    "image",
    "question",
    *LETTERS,
    "answer",
    "category",
    "l2-category",
)


def export_vlmevalkit(bench: Bench, images_root: Path, out: Path) -> int:
    """Write the TSV; returns the number of rows. Every image must be present."""
    if bench.kind != "closed":
        raise ConfigError(f"{bench.path}: VLMEvalKit's MCQ format takes closed questions only")
    encoded: dict[str, str] = {}
    problems: list[str] = []
    for q in bench.closed:
        if q.image_path in encoded:
            continue
        try:
            path = resolve_image(images_root, q.image_path)
            encoded[q.image_path] = base64.b64encode(path.read_bytes()).decode("ascii")
        except (ImageProblem, OSError) as exc:
            problems.append(str(exc))
    if problems:
        raise ConfigError(
            f"{len(problems)} images cannot be exported, e.g. {problems[0]} "
            "(the TSV embeds every image: give --images-root the folder they are under)"
        )
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle, delimiter="\t", quoting=csv.QUOTE_MINIMAL, lineterminator="\n")
        writer.writerow(COLUMNS)
        for index, q in enumerate(bench.closed):
            options = [q.options.get(letter, "") for letter in LETTERS]
            extra = set(q.options) - set(LETTERS)
            if extra:
                raise ConfigError(f"{q.question_id}: option letters {sorted(extra)} beyond A-E")
            writer.writerow(
                [
                    index,
                    q.question_id,
                    encoded[q.image_path],
                    q.question,
                    *options,
                    q.answer,
                    q.question_type,
                    "trap" if q.trap else "answerable",
                ]
            )
    return len(bench.closed)
