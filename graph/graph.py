"""`build_graph()`: the annotation state machine of DESIGN.md, one slice per invocation.

    load -> measure -> describe (one branch per describer, in parallel)
         -> critique --(revise, round < max_rounds)--> describe
                     \\--> diagnose (on the post-critique findings) -> arbitrate -> persist

A slice whose describers all fail goes from critique straight to persist (status failed).

``graph`` at the bottom is what ``langgraph.json`` points LangGraph Studio at.
"""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from neuroonco.graph import nodes, routers
from neuroonco.graph.context import GraphContext
from neuroonco.graph.state import SliceInput, SliceState


def build_graph() -> CompiledStateGraph:
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
    builder.add_edge("arbitrate", "persist")
    builder.add_edge("persist", END)
    return builder.compile(name="neuroonco-annotate")


graph = build_graph()
