"""LangGraph Studio opens the graph that langgraph.json names, loaded by file path as it does."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_langgraph_json_points_at_the_compiled_graph() -> None:
    spec = json.loads((ROOT / "langgraph.json").read_text())["graphs"]["annotate"]
    path, _, name = spec.partition(":")
    module_spec = importlib.util.spec_from_file_location("studio_graph", ROOT / path)
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    graph = getattr(module, name)
    nodes = set(graph.get_graph().nodes)
    assert {"load", "measure", "describe", "diagnose", "critique", "arbitrate", "persist"} <= nodes
