"""Paraphrases through a real SDK client and a loopback server: kept only when no fact changed."""

from __future__ import annotations

import json

import sqlite_utils

from neuroonco.finetune import annotated
from neuroonco.finetune.instructions import InstructionOptions, build_instructions
from neuroonco.finetune.paraphrase import Paraphraser, paraphrase_problem
from neuroonco.finetune.questions import GenerationOptions, generate
from neuroonco.tools.synthetic_annotations import write_synthetic_store
from tests.support.loopback import LoopbackServer

ORIGINAL = "There is a small round-to-oval lesion without edema. It covers 0.6% of the image area."
KEYWORDS = ["small", "round"]


def test_validation_catches_changed_facts():
    ok = "A small, round-to-oval lesion is seen without edema, covering 0.6% of the image area."
    assert paraphrase_problem(ORIGINAL, ok, KEYWORDS) is None
    assert "drops" in paraphrase_problem(ORIGINAL, ok.replace("small, ", ""), KEYWORDS)
    assert "number" in paraphrase_problem(ORIGINAL, ok.replace("0.6%", "6%"), KEYWORDS)
    assert "negation" in paraphrase_problem(ORIGINAL, ok.replace("without", "with"), KEYWORDS)
    added = ok.replace("is seen", "is seen, heterogeneous,")
    assert "adds" in paraphrase_problem(ORIGINAL, added, KEYWORDS)


def test_paraphrase_by_an_openai_model_falls_back_when_rejected(tmp_path, monkeypatch):
    db = tmp_path / "s.db"
    write_synthetic_store(db, 1, seed=3, slices_per_subject=1)
    with LoopbackServer() as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-loopback")

        # The first open answer comes back faithfully reworded, the others lose every fact.
        conn = sqlite_utils.Database(db)
        (item,) = annotated.iter_slices(
            conn, annotated.choose_run(conn, None, "s.db"), ("accepted", "needs_review")
        )
        answers = [i.answer for i in generate(item, GenerationOptions()) if i.kind == "open"]
        server.enqueue({"text": "In other words: " + answers[0]})
        for _ in answers[1:]:
            server.enqueue({"text": "Nothing of note."})
        paraphraser = Paraphraser("openai:gpt-4o-mini")
        try:
            stats = build_instructions(
                InstructionOptions(db=db, out=tmp_path / "out"), paraphraser=paraphraser
            )
        finally:
            paraphraser.close()
        assert server.chat_requests()
    summary = stats["paraphrase"]
    assert summary["accepted"] == 1 and summary["rejected"] == len(answers) - 1 >= 1
    rows = list(sqlite_utils.Database(db).query("select * from instructions where kind='open'"))
    kept = [r for r in rows if r["paraphrased"]]
    assert [r["response"] for r in kept] == ["In other words: " + answers[0]]
    assert all(r["response"] in answers for r in rows if not r["paraphrased"])
    assert all(json.loads(r["keywords"]) for r in rows)
