"""`build_graph()`: the annotation state machine of DESIGN.md, one slice per invocation.

    load -> measure -> describe (one branch per describer, in parallel)
         -> critique --(revise, round < max_rounds)--> describe
                     \\--> diagnose (on the post-critique findings) -> arbitrate -> persist

A slice whose describers all fail goes from critique straight to persist (status failed).

``build_graph(review=True, checkpointer=...)`` (``annotate --review``) puts the person in the loop
between arbitrate and persist: ``arbitrate -> release -> review -> persist``, where ``review``
pauses a ``needs_review`` slice with ``interrupt`` (:mod:`neuroonco.graph.review`). Without it
the graph is the one above, compiled without a checkpointer.

``graph`` at the bottom is what ``langgraph.json`` points LangGraph Studio at.
"""

from __future__ import annotations

from typing import Any

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from neuroonco.graph import nodes, review, routers
from neuroonco.graph.context import GraphContext
from neuroonco.graph.state import SliceInput, SliceState


def build_graph(*, review_slices: bool = False, checkpointer: Any = None) -> CompiledStateGraph:
    """The annotation graph; ``review_slices`` pauses needs_review slices for a person (it needs
    a ``checkpointer`` to keep them)."""
    if review_slices and checkpointer is None:
        raise ValueError("a graph that pauses slices for review needs a checkpointer")
    builder = StateGraph(SliceState, context_schema=GraphContext, input_schema=SliceInput)
    builder.add_node("load", nodes.load_slice)
    builder.add_node("measure", nodes.measure_slice)
    builder.add_node("describe", nodes.describe_slice)
    builder.add_node("diagnose", nodes.diagnose_slice)
    builder.add_node("critique", nodes.critique_findings)
    builder.add_node("arbitrate", nodes.arbitrate_findings)
    builder.add_node("persist", nodes.persist_annotation)
    builder.add_edge(START, "load")
    builder.add_edge("load", "measure")
    builder.add_conditional_edges("measure", routers.route_to_describers, ["describe", "persist"])
    builder.add_edge("describe", "critique")
    builder.add_conditional_edges(
        "critique", routers.route_after_critique, ["describe", "diagnose", "persist"]
    )
    builder.add_edge("diagnose", "arbitrate")
    if review_slices:
        builder.add_node("release", review.release_images)
        builder.add_node(review.REVIEW_NODE, review.review_slice)
        builder.add_edge("arbitrate", "release")
        builder.add_edge("release", review.REVIEW_NODE)
        builder.add_edge(review.REVIEW_NODE, "persist")
    else:
        builder.add_edge("arbitrate", "persist")
    builder.add_edge("persist", END)
    return builder.compile(name="neuroonco-annotate", checkpointer=checkpointer)


graph = build_graph()
