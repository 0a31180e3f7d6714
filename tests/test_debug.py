"""tinygrad_lite.debug: the text tree of a graph and its Graphviz DOT export."""

from __future__ import annotations

import io
import re

import numpy as np

from tinygrad_lite import Tensor
from tinygrad_lite.debug import graph_lines, print_graph, to_dot


def _mlp():
    x = Tensor(np.ones((4, 5), np.float32), requires_grad=True, name="x")
    w = Tensor(np.ones((5, 3), np.float32), requires_grad=True, name="w")
    return (x @ w).relu().sum()


def test_print_graph_tree_of_ops_and_shapes(capsys):
    print_graph(_mlp())
    assert capsys.readouterr().out == (
        "Sum () float32\n"
        "└── Relu (4, 3) float32\n"
        "    └── Matmul (4, 3) float32\n"
        "        ├── leaf x (4, 5) float32 requires_grad\n"
        "        └── leaf w (5, 3) float32 requires_grad\n"
    )


def test_print_graph_to_a_file_and_repeated_nodes():
    x = Tensor(np.ones(2), requires_grad=True, name="x")
    s = x + x
    y = s * s
    buf = io.StringIO()
    print_graph(y, file=buf)
    assert buf.getvalue().splitlines() == [
        "Mul (2,) float64",
        "├── Add (2,) float64",
        "│   ├── leaf x (2,) float64 requires_grad",
        "│   └── leaf x (2,) float64 requires_grad",
        "└── Add (2,) float64 (seen above)",
    ]


def test_constants_appear_as_leaves_without_requires_grad():
    x = Tensor(np.ones(3, np.float32), requires_grad=True)
    lines = graph_lines(x * 2.0)
    assert lines == ["Mul (3,) float32", "├── leaf (3,) float32 requires_grad", "└── leaf () float32"]


def test_graph_lines_deeper_than_the_recursion_limit():
    x = Tensor(np.ones(1), requires_grad=True)
    y = x
    for _ in range(1_200):
        y = y + 1.0
    lines = graph_lines(y)
    assert len(lines) == 1 + 2 * 1_200 and lines[-1].strip(" │└├─") == "leaf () float64"


def test_to_dot_is_valid_graphviz_text():
    dot = to_dot(_mlp())
    assert dot.startswith("digraph G {") and dot.rstrip().endswith("}")
    nodes = dict(re.findall(r'^  (n\d+) \[label="([^"]*)", shape=\w+\];$', dot, flags=re.M))
    edges = re.findall(r"^  (n\d+) -> (n\d+);$", dot, flags=re.M)
    assert sorted(nodes.values()) == sorted([
        "Sum () float32", "Relu (4, 3) float32", "Matmul (4, 3) float32",
        "leaf x (4, 5) float32 requires_grad", "leaf w (5, 3) float32 requires_grad"])
    by_label = {label.split(" (")[0]: node for node, label in nodes.items()}
    assert set(edges) == {(by_label["Relu"], by_label["Sum"]), (by_label["Matmul"], by_label["Relu"]),
                          (by_label["leaf x"], by_label["Matmul"]), (by_label["leaf w"], by_label["Matmul"])}
    assert 'shape=box' in dot and 'shape=ellipse' in dot


def test_to_dot_escapes_quotes_in_names_and_handles_deep_graphs():
    x = Tensor(np.ones(1), requires_grad=True, name='my "input"')
    assert r'leaf my \"input\" (1,)' in to_dot(x * 2.0)
    y = x
    for _ in range(5_000):
        y = y * 1.0
    assert to_dot(y).count("->") == 2 * 5_000
