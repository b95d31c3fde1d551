"""`bench build`: our benchmark in the official MM-NeuroOnco-Bench v1.0 format, from the TEST split.

``closed.json``: a list of ``{"id", "image_path", "vqa_pairs"}``, each pair ``{"question_type",
"question", "options": {"A": ..., "E": "None of the above"}, "answer": "<letter>"}`` plus
``"meta_trap": true`` and ``"meta_original_answer"`` on traps (the official layout: no question ids
in the file; the k-th pair of record N is ``N_qk``). ``open.json``: ``{"id", "image_path",
"qa_pairs"}`` with ``{"question_id": "N_qk", "question_type": "Detail" | "Location" | "Reasoning",
"question", "reference_answer", "eval_keywords"}``. A record's id is shared by its closed and open
entries, as in the official files. Images are copied beside them (``images/<slice id>.png``).

The questions are the instruction generator's (same seed, same split), asked in the letter style:
options are vocabulary display names, so no question offers two spellings of one concept.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from neuroonco import store
from neuroonco.errors import ConfigError
from neuroonco.finetune import annotated
from neuroonco.finetune.annotated import NothingToExport
from neuroonco.finetune.instructions import atomic_dir
from neuroonco.finetune.names import NONE_OF_THE_ABOVE
from neuroonco.finetune.questions import GenerationOptions, generate
from neuroonco.finetune.splits import plan_splits

OPEN_TYPES = {"report": "Detail", "location": "Location", "reasoning": "Reasoning"}


@dataclass
class BenchBuildOptions:
    db: Path
    out: Path
    run: str | None = None
    include: tuple[str, ...] = ()
    keep_source_splits: bool = False
    seed: int = 0
    trap_rate: float = 0.19
    split: str = "test"
    force: bool = False


def closed_pair(ins: Any) -> dict[str, Any]:
    pair = {
        "question_type": ins.task,
        "question": ins.question,
        "options": dict(ins.options),
        "answer": ins.answer,
    }
    if ins.trap:
        pair["meta_original_answer"] = ins.original_answer
        pair["meta_trap"] = True
    return pair


def build_bench(opts: BenchBuildOptions) -> dict[str, Any]:
    """Write closed.json, open.json and images/ into ``opts.out``; returns counts."""
    if opts.out.exists() and not opts.force:
        raise ConfigError(f"{opts.out} exists: pass --force to replace it, or choose another --out")
    if not Path(opts.db).is_file():
        raise NothingToExport(f"no store at {opts.db}: run `neuroonco annotate SRC --db {opts.db}`")
    statuses = ("accepted", *(s for s in opts.include if s != "accepted"))
    gen = GenerationOptions(seed=opts.seed, trap_rate=opts.trap_rate, cot_rate=0.0)
    db = store.connect(opts.db)
    try:
        choice = annotated.choose_run(db, opts.run, str(opts.db))
        annotated.check_selection(db, choice, statuses, str(opts.db))
        plan = plan_splits(
            annotated.iter_split_keys(db, choice, statuses),
            seed=opts.seed,
            keep_source_splits=opts.keep_source_splits,
        )
        closed: list[dict[str, Any]] = []
        open_: list[dict[str, Any]] = []
        with atomic_dir(opts.out, opts.force) as tmp:
            (tmp / "images").mkdir()
            for item in annotated.iter_slices(db, choice, statuses):
                if plan.split_of(item.subject_id) != opts.split:
                    continue
                made = generate(item, gen)
                record_id = len(closed) + 1
                image = f"images/{item.slice_id}.png"
                shutil.copyfile(Path(opts.db).parent / item.image_path, tmp / image)
                pairs = [closed_pair(i) for i in made if i.kind == "closed"]
                closed.append({"id": record_id, "image_path": image, "vqa_pairs": pairs})
                qa = [i for i in made if i.kind == "open"]
                if qa:
                    open_.append(
                        {
                            "id": record_id,
                            "image_path": image,
                            "qa_pairs": [
                                {
                                    "question_id": f"{record_id}_q{k}",
                                    "question_type": OPEN_TYPES[i.task],
                                    "question": i.question,
                                    "reference_answer": i.answer,
                                    "eval_keywords": list(i.keywords),
                                }
                                for k, i in enumerate(qa, start=1)
                            ],
                        }
                    )
            if not closed:
                raise NothingToExport(
                    f"the {opts.split} split of run {choice.run_id} is empty (too few subjects?);"
                    " annotate more slices first; nothing written"
                )
            for name, data in (("closed.json", closed), ("open.json", open_)):
                text = json.dumps(data, indent=1, ensure_ascii=False)
                (tmp / name).write_text(text + "\n", encoding="utf-8")
    finally:
        db.close()
    pairs = [p for r in closed for p in r["vqa_pairs"]]
    return {
        "run_id": choice.run_id,
        "records": len(closed),
        "closed_questions": len(pairs),
        "traps": sum(1 for p in pairs if p.get("meta_trap")),
        "refusal_option": NONE_OF_THE_ABOVE,
        "open_questions": sum(len(r["qa_pairs"]) for r in open_),
    }
