"""Node-link JSON as a user saves graphs, on every networkx the floors allow.

The keyword naming the edge list is `link` up to networkx 3.3 and `edges` from 3.4 (3.6 drops
`link`); `edge_list(name)` gives whichever the installed networkx takes.
"""

import inspect
import json

import networkx as nx


def edge_list(name: str) -> dict:
    """`{keyword: name}` for node_link_data/node_link_graph: the edge list stored under `name`."""
    keyword = "edges" if "edges" in inspect.signature(nx.node_link_data).parameters else "link"
    return {keyword: name}


def round_trip(g: nx.DiGraph, name: str = "links") -> nx.DiGraph:
    """`g` through node-link JSON text and back, as a saved file is."""
    data = nx.node_link_data(g, **edge_list(name))
    return nx.node_link_graph(json.loads(json.dumps(data)), **edge_list(name))
