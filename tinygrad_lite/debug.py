"""Look at the graph: a text tree of ops and shapes, and Graphviz DOT text (no graphviz dependency).

    >>> y = (x @ w).relu().sum()
    >>> print_graph(y)
    Sum () float32
    └── Relu (4, 3) float32
        └── Matmul (4, 3) float32
            ├── leaf x (4, 5) float32 requires_grad
            └── leaf w (5, 3) float32 requires_grad

An op node reached twice (as `s` in `s = x + x; y = s * s`) is printed in full once and marked "(seen above)"
afterwards; leaves are short, so they are printed wherever they appear.
Anomaly detection (NaN/Inf naming the op and the user line) is `tinygrad_lite.detect_anomaly`.
"""

from __future__ import annotations

from .function import AnomalyError, detect_anomaly
from .tensor import Tensor

__all__ = ["AnomalyError", "detect_anomaly", "graph_lines", "print_graph", "to_dot"]


def _label(t: Tensor) -> str:
    shape = f"{tuple(t.shape)} {t.dtype}"
    if t._ctx is not None:
        return f"{type(t._ctx).__name__} {shape}"
    name = f" {t.name}" if t.name else ""
    return f"leaf{name} {shape}" + (" requires_grad" if t.requires_grad else "")


def _inputs(t: Tensor) -> tuple:
    return tuple(t._ctx.parents) if t._ctx is not None else ()


def graph_lines(t: Tensor) -> list:
    """The tree as a list of lines (iterative, so deep graphs print too)."""
    lines, seen = [], set()
    stack = [(t, "", "", True)]  # node, prefix for its line, prefix for its children, is root
    while stack:
        node, head, body, root = stack.pop()
        if id(node) in seen and node._ctx is not None:
            lines.append(f"{head}{_label(node)} (seen above)")
            continue
        seen.add(id(node))
        lines.append(head + _label(node))
        kids = _inputs(node)
        for i in reversed(range(len(kids))):
            last = i == len(kids) - 1
            stack.append((kids[i], body + ("└── " if last else "├── "), body + ("    " if last else "│   "), False))
    return lines


def print_graph(t: Tensor, file=None) -> None:
    print("\n".join(graph_lines(t)), file=file)


def to_dot(t: Tensor) -> str:
    """Graphviz DOT source: ops as boxes, leaves as ellipses, edges from inputs to outputs."""
    out = ["digraph G {", "  rankdir=BT;", "  node [fontname=monospace];"]
    seen, stack = set(), [t]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        shape = "box" if node._ctx is not None else "ellipse"
        label = _label(node).replace("\\", "\\\\").replace('"', '\\"')  # a tensor name may hold quotes
        out.append(f'  n{id(node)} [label="{label}", shape={shape}];')
        for parent in _inputs(node):
            out.append(f"  n{id(parent)} -> n{id(node)};")
            stack.append(parent)
    out.append("}")
    return "\n".join(out) + "\n"
