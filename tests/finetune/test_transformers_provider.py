"""`transformers:` specs: structured output validated and re-asked; a tiny describer in annotate."""

from __future__ import annotations

import asyncio
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils
from PIL import Image

from neuroonco.agents.providers.base import ImagePart, ModelRequest
from neuroonco.agents.providers.registry import make_provider
from neuroonco.agents.providers.transformers_provider import TransformersProvider, json_text
from neuroonco.finetune.inference import Generation
from neuroonco.tools.phantom import make_slice_phantom
from neuroonco.tools.sample_tree import write_sample_tree
from tests.agents.providers.helpers import Tiny


def _png(seed: int = 0) -> bytes:
    pixels, _ = make_slice_phantom(56, seed=seed)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def _request(**kwargs) -> ModelRequest:
    return ModelRequest(
        role="describer",
        system="You describe MRI slices.",
        prompt="Diagnosis?",
        response_model=Tiny,
        images=(ImagePart(_png(), "axial t1ce"),),
        **kwargs,
    )


class ScriptedVLM:
    """Stands in for the model: returns the scripted answers in turn, records what it was sent."""

    def __init__(self, *answers: str) -> None:
        self.answers = list(answers)
        self.sent: list = []

    def generate(self, chats):
        self.sent.extend(chats)
        return [Generation(self.answers.pop(0), 100, 10, True, 5.0) for _ in chats]


def test_json_is_found_in_fenced_or_chatty_answers():
    assert json_text('```json\n{"a": 1}\n```') == '{"a": 1}'
    assert json_text('Sure! {"a": {"b": 2}} hope it helps') == '{"a": {"b": 2}}'


def test_invalid_answers_are_reasked_with_the_error_and_the_context_applies():
    vlm = ScriptedVLM(
        "not json", '{"label": "glioma", "score": 0.5}', '{"label": "meningioma", "score": 0.7}'
    )
    provider = TransformersProvider("tiny", vlm=vlm)
    result = asyncio.run(
        provider.complete(_request(validation_context={"allowed": ["meningioma"]}))
    )
    assert result.ok and result.output.label == "meningioma"
    assert [a.outcome for a in result.attempts] == ["invalid_output", "invalid_output", "ok"]
    assert result.input_tokens == 300 and result.cost_usd is None
    last = vlm.sent[-1].messages
    assert "did not validate" in last[-1]["content"][0]["text"]
    assert "must be one of" in last[-1]["content"][0]["text"]
    first_user = vlm.sent[0].messages[1]["content"]
    assert {"type": "image"} in first_user and "JSON schema" in first_user[-1]["text"]
    assert len(vlm.sent[0].images) == 1


def test_giving_up_after_the_re_asks_is_a_result_not_a_crash():
    provider = TransformersProvider("tiny", vlm=ScriptedVLM("{}", "{}", "{}"))
    result = asyncio.run(provider.complete(_request()))
    assert not result.ok and result.error.startswith("invalid output after 3 answers")


def test_the_real_tiny_model_answers_through_the_registry():
    provider = make_provider("transformers:tiny?max_new_tokens=6")
    assert provider.spec == "transformers:tiny"
    result = asyncio.run(provider.complete(_request()))
    # A random model cannot write valid JSON: the call fails cleanly, with its attempts recorded.
    assert not result.ok and result.attempts
    assert result.attempts[0].input_tokens > 16  # the image's tokens reached the model
    assert result.attempts[0].output_tokens <= 7


@pytest.mark.slow
def test_a_transformers_describer_runs_inside_annotate(tmp_path: Path):
    write_sample_tree(tmp_path / "src", seed=3, small=True)
    db = tmp_path / "n.db"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "120"}
    command = [
        sys.executable, "-m", "neuroonco.cli", "annotate", str(tmp_path / "src"), "--db", str(db),
        "--describers", "transformers:tiny?max_new_tokens=8,builtin", "--limit", "2",
    ]  # fmt: skip
    done = subprocess.run(
        command, capture_output=True, encoding="utf-8", errors="replace", env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "slices annotated" in done.stdout
    store = sqlite_utils.Database(db)
    calls = list(store["agent_calls"].rows_where("model like 'transformers:tiny%'"))
    assert calls and all(c["role"] == "describer" for c in calls)
    # Validated like every provider: the random model's answer is rejected, never stored as is.
    assert all(c["error"] and c["output"] is None for c in calls)
    assert all(json.loads(c["attempt_log"]) for c in calls)
    builtin = list(store["agent_calls"].rows_where("model = ?", ["builtin"]))
    assert {c["role"] for c in builtin} >= {"describer", "diagnostician"}
