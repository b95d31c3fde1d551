"""`neuroonco annotate` as a user runs it: a subprocess on a source tree, offline."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import sqlite_utils

from neuroonco.errors import ConfigError
from neuroonco.graph.context import AnnotateConfig
from neuroonco.graph.runner import Runner
from neuroonco.ingest import IngestOptions, ingest
from neuroonco.tools.sample_tree import write_sample_tree
from tests.support.agents import agent_responder
from tests.support.loopback import LoopbackServer, refused_url


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroonco.cli", *args],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=300,
        env={**os.environ, "COLUMNS": "120", **(env or {})},
    )


def test_annotate_ingests_then_annotates_and_prints_a_summary(tmp_path: Path) -> None:
    write_sample_tree(tmp_path / "src", seed=1, small=True)
    db = tmp_path / "out" / "n.db"
    result = run_cli("annotate", str(tmp_path / "src"), "--db", str(db), "--concurrency", "4")
    assert result.returncode == 0, result.stderr
    assert "slices annotated" in result.stdout and "accepted" in result.stdout
    store = sqlite_utils.Database(db)
    unique = store.execute("select count(*) from slices where duplicate_of is null").fetchone()[0]
    assert store["annotations"].count == unique > 0
    # Same command again: nothing left to do, no model call.
    again = run_cli("annotate", str(tmp_path / "src"), "--db", str(db))
    assert again.returncode == 0, again.stderr
    assert store["annotations"].count == unique
    last = json.loads(
        store.execute("select summary from runs order by started_at desc limit 1").fetchone()[0]
    )
    assert last["done"] == 0 and last["calls"] == 0


def test_config_file_and_options(tmp_path: Path) -> None:
    write_sample_tree(tmp_path / "src", seed=2, small=True)
    db = tmp_path / "n.db"
    assert run_cli("ingest", str(tmp_path / "src"), "--db", str(db)).returncode == 0
    config = tmp_path / "panel.json"
    config.write_text(json.dumps({"describers": ["builtin", "builtin"], "rule": "unanimous"}))
    result = run_cli("annotate", "--db", str(db), "--config", str(config), "--limit", "3")
    assert result.returncode == 0, result.stderr
    run = next(iter(sqlite_utils.Database(db)["runs"].rows))
    saved = json.loads(run["config"])
    assert saved["describers"] == ["builtin", "builtin"] and saved["rule"] == "unanimous"
    assert saved["limit"] == 3


def test_bad_spec_and_bad_config_are_one_clean_line(tmp_path: Path) -> None:
    db = tmp_path / "n.db"
    result = run_cli("annotate", "--db", str(db), "--describers", "gemini:pro")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "gemini" in result.stderr and "builtin" in result.stderr
    bad = tmp_path / "bad.json"
    bad.write_text('{"describers": ["builtin"], "colour": "blue"}')
    result = run_cli("annotate", "--db", str(db), "--config", str(bad))
    assert result.returncode == 2 and "colour" in result.stderr


def _no_model_env(**extra: str) -> dict[str, str]:
    prefixes = ("OPENAI", "ANTHROPIC", "OLLAMA")
    return {**{k: v for k, v in os.environ.items() if not k.startswith(prefixes)}, **extra}


def _cli_clean(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "neuroonco.cli", *args],
        capture_output=True,
        encoding="utf-8",
        errors="replace",
        timeout=120,
        env={**env, "COLUMNS": "120"},
    )


def _setup_error(result: subprocess.CompletedProcess) -> str:
    """The one error line of a run stopped at setup."""
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_missing_api_key_says_how_to_fix_and_writes_nothing(tmp_path: Path) -> None:
    write_sample_tree(tmp_path / "src", seed=1, small=True)
    db = tmp_path / "n.db"
    result = _cli_clean(
        "annotate",
        str(tmp_path / "src"),
        "--db",
        str(db),
        "--describers",
        "openai:gpt-4o-mini",
        env=_no_model_env(),
    )
    line = _setup_error(result)
    assert "OPENAI_API_KEY" in line and "builtin" in line
    assert not db.exists()  # nothing ingested, nothing written


def _check(config: AnnotateConfig, **kwargs) -> str:
    """The setup error a run of ``config`` stops with, checked in-process as the CLI does."""
    with pytest.raises(ConfigError) as caught:
        asyncio.run(Runner(Path("unused.db"), config, **kwargs).check())
    return str(caught.value)


def test_setup_errors_stop_the_run_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "n.db"
    with LoopbackServer(responder=agent_responder, openai_models=["served-model"]) as srv:
        monkeypatch.setenv("OPENAI_BASE_URL", srv.openai_base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "k")
        monkeypatch.setenv("OLLAMA_HOST", srv.ollama_host)
        no_vision = _check(AnnotateConfig(describers=["ollama:llama3.2:3b"]))
        assert "cannot read images" in no_vision and "ollama pull" in no_vision
        assert "does not serve 'other-model'" in _check(
            AnnotateConfig(describers=["openai:other-model"])
        )
        # A model that only criticises sees no image; a listed model passes.
        asyncio.run(
            Runner(
                db, AnnotateConfig(describers=["openai:served-model"], critic="ollama:llama3.2:3b")
            ).check()
        )
        # As a user sees it: one line, exit 2, no store.
        env = _no_model_env(OLLAMA_HOST=srv.ollama_host)
        line = _setup_error(
            _cli_clean("annotate", "--db", str(db), "--describers", "ollama:llava:13b", env=env)
        )
        assert "run `ollama pull llava:13b`" in line
    dead = refused_url()
    monkeypatch.setenv("OLLAMA_HOST", dead)
    monkeypatch.setenv("OPENAI_BASE_URL", dead + "/v1")
    line = _check(AnnotateConfig(describers=["ollama:qwen2.5vl:7b"]))
    assert "cannot reach Ollama" in line and "OLLAMA_HOST" in line
    line = _check(AnnotateConfig(describers=["openai:m"]))
    assert "cannot reach" in line and "OPENAI_BASE_URL" in line
    assert not db.exists()


def test_an_unpriced_model_under_a_budget_needs_a_price(tmp_path: Path) -> None:
    write_sample_tree(tmp_path / "src", seed=2, small=True)
    db = tmp_path / "n.db"
    ingest([tmp_path / "src"], db, IngestOptions())
    with LoopbackServer(responder=agent_responder, usage=(2_000, 300)) as srv:
        env = _no_model_env(OPENAI_BASE_URL=srv.openai_base_url)
        args = ["annotate", "--db", str(db), "--describers", "openai:my-finetune"]
        line = _setup_error(_cli_clean(*args, "--max-cost", "1", env=env))
        assert "no price known for openai:my-finetune" in line
        assert "--price openai:my-finetune=IN/OUT" in line
        store = sqlite_utils.Database(db)
        assert store["runs"].count == 0 and store["agent_calls"].count == 0
        priced = _cli_clean(
            *args, "--max-cost", "0.02", "--price", "openai:my-finetune=2/8", "--yes", env=env
        )
        assert priced.returncode == 0, priced.stderr
    # The estimate used the real request size; the budget held with the given price.
    assert "estimated at most" in priced.stdout and "stopped early" in priced.stdout
    costs = [r["cost_usd"] for r in store["agent_calls"].rows_where("model = 'openai:my-finetune'")]
    assert costs and all(c == pytest.approx((2_000 * 2 + 300 * 8) / 1e6) for c in costs)
    assert sum(costs) <= 0.02


def test_per_model_options_from_the_config_reach_the_server(tmp_path: Path) -> None:
    write_sample_tree(tmp_path / "src", seed=2, small=True)
    db = tmp_path / "n.db"
    ingest([tmp_path / "src"], db, IngestOptions())
    config = tmp_path / "panel.toml"
    config.write_text(
        'describers = ["openai:lm-studio-model"]\nmax_rounds = 1\n'
        '[models."openai:lm-studio-model"]\n'
        'mode = "json"\nmulti_image = false\nsend_temperature = false\nmax_tokens = 333\n'
        "concurrency = 1\ntimeout_s = 5\n"
    )
    with LoopbackServer(responder=agent_responder) as srv:
        env = _no_model_env(OPENAI_BASE_URL=srv.openai_base_url)
        args = ["annotate", "--db", str(db), "--config", str(config), "--limit", "4"]
        result = _cli_clean(*args, "--concurrency", "4", env=env)
        assert result.returncode == 0, result.stderr
        bodies = [r.body for r in srv.chat_requests()]
    assert bodies and srv.max_in_flight == 1
    for body in bodies:
        assert body["response_format"] == {"type": "json_object"} and "tools" not in body
        assert "temperature" not in body and body["max_tokens"] == 333
        images = [
            p
            for m in body["messages"]
            if isinstance(m["content"], list)
            for p in m["content"]
            if p["type"] == "image_url"
        ]
        assert len(images) == 1


def test_every_command_has_help() -> None:
    for command in ("ingest", "annotate"):
        result = run_cli(command, "--help")
        assert result.returncode == 0 and "--db" in result.stdout


def test_the_cost_estimate_uses_the_real_request_size(tmp_path: Path) -> None:
    from neuroonco import store
    from neuroonco.agents.providers.base import schema_fingerprint
    from neuroonco.agents.providers.pricing import Prices, estimate_tokens
    from neuroonco.commands.annotate import estimate_cost, sample_requests
    from neuroonco.graph.runner import pending_slices

    write_sample_tree(tmp_path / "src", seed=2, small=True)
    db = tmp_path / "n.db"
    ingest([tmp_path / "src"], db, IngestOptions())
    config = AnnotateConfig(describers=["openai:gpt-4o"], max_rounds=1)
    conn = store.connect(db)
    row = next(r for r in pending_slices(conn, config.config_hash()) if len(r["siblings"]) == 3)
    conn.close()
    requests = sample_requests(config, row, tmp_path)
    describer = requests["describer"]
    assert len(describer.images) == 4
    tokens_in, _ = estimate_tokens(describer, schema_fingerprint(describer.response_model))
    assert 2_000 <= tokens_in <= 4_000  # 4 images and the schema: not the 1,500 of a guess
    one_image = AnnotateConfig(
        describers=["openai:gpt-4o"], max_rounds=1, models={"openai:gpt-4o": {"multi_image": False}}
    )
    prices = Prices()
    assert estimate_cost(one_image, 10, prices, requests) < estimate_cost(
        config, 10, prices, requests
    )
