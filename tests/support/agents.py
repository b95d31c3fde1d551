"""A loopback responder that answers each agent role with a valid, schema-shaped JSON object.

It reads which answer schema a request asks for in each wire protocol (OpenAI/Anthropic tool
name, Ollama `format` title, OpenAI `response_format`) and returns a canned answer for it, so
graph tests and benchmarks can drive the real SDK clients through the whole graph.
"""

from __future__ import annotations

from typing import Any

DESCRIBER = {
    "lesion_found": True,
    "modality": None,
    "size": "medium",
    "shape": "round_oval",
    "spread": "solitary",
    "location": "center",
    "laterality": "left",
    "margins": "well_circumscribed",
    "texture": "heterogeneous",
    "enhancement": None,
    "edema": None,
    "signal_intensity": None,
    "rationale": "A medium, round lesion near the centre.",
}
DIAGNOSTICIAN = {
    "diagnosis": "glioma",
    "reasoning": "An intra-axial mass with a necrotic centre and surrounding signal change.",
    "differential": ["metastasis"],
    "confidence": 0.7,
    "conflicts_with_source": False,
    "conflict_note": None,
}
CRITIC = {"verdicts": {}, "revise": False, "summary": "Nothing to correct."}
ANSWERS = {"SliceFindings": DESCRIBER, "DiagnosisOpinion": DIAGNOSTICIAN, "Critique": CRITIC}


def schema_name(body: Any) -> str | None:
    """The answer schema a chat request asks for, whichever API it speaks."""
    if not isinstance(body, dict):
        return None
    for tool in body.get("tools") or ():
        name = tool.get("name") or (tool.get("function") or {}).get("name")
        if name:
            return name
    fmt = body.get("format")
    if isinstance(fmt, dict) and fmt.get("title"):
        return fmt["title"]
    rf = body.get("response_format") or {}
    js = rf.get("json_schema") if isinstance(rf, dict) else None
    if isinstance(js, dict):
        return js.get("name") or (js.get("schema") or {}).get("title")
    return None


def agent_responder(body: Any) -> dict[str, Any]:
    """Loopback `responder`: a valid answer for the schema the request names."""
    name = schema_name(body)
    if name not in ANSWERS:
        raise ValueError(f"agent_responder: no canned answer for schema {name!r}")
    return ANSWERS[name]
