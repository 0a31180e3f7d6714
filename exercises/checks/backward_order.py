"""Grader of exercise 09: topological_order on small graphs and a deep chain, then a backward loop in its order."""

from __future__ import annotations

import numpy as np

from tinygrad_lite import Tensor

from ..grading.helpers import Failure, case, check_true, compare

TOPIC = "reverse topological order of backward() (b = a + a; c = b + b)"
LIBRARY = "tinygrad_lite/autograd.py (topological_order, backward)"
HINTS = [
    "Post-order depth-first: a node goes into the list when all of its inputs are in it. With a stack, push "
    "(node, False) to mean 'visit its inputs', and when you pop it the first time push (node, True) back, then its "
    "inputs; popping (node, True) means its inputs are done: append it.",
    "Keep visited = set() of id(node) and skip a node already visited: in b = a + a, a is an input twice, and must "
    "be in the list once.",
    "Recursion (def visit(node): for p in inputs(node): visit(p); order.append(node)) gives the right order but "
    "fails past about 1,000 nested ops: Python's recursion limit. The explicit stack has no such limit.",
]


def _twice():
    a = Tensor(np.array(2.0), requires_grad=True)
    b = a + a
    c = b + b
    return c, {"a": a, "b": b, "c": c}, [a]


def _diamond():
    x = Tensor(np.array([1.0, -2.0, 3.0]), requires_grad=True)
    y = x * 2.0
    z = x + 1.0
    w = (y * z).sum()
    return w, {"x": x, "y = x * 2": y, "z = x + 1": z, "w = (y * z).sum()": w}, [x]


def _constant():
    x = Tensor(np.array([1.0, 2.0]), requires_grad=True)
    k = Tensor(np.array([3.0, 4.0]))  # needs no gradient
    y = (x * k).sum()
    return y, {"x": x, "y = (x * k).sum()": y}, [x]


def _leaf():
    a = Tensor(np.array(1.5), requires_grad=True)
    return a, {"a": a}, [a]


def _chain(n=3000):
    x = Tensor(np.array(0.5), requires_grad=True)
    h, names = x, {"x": x}
    for _ in range(n):
        h = h * 1.0001 + 0.0
    names["the last node"] = h
    return h, names, [x]


GRAPHS = [("b = a + a; c = b + b", _twice), ("a diamond: y = x * 2, z = x + 1, w = (y * z).sum()", _diamond),
          ("y = (x * k).sum() with a constant k (needs no gradient)", _constant), ("a single leaf a", _leaf),
          ("a chain of 3,000 ops, h = h * 1.0001 + 0.0", _chain)]


def _all_nodes(root, inputs) -> list:
    seen, stack, out = set(), [root], []
    while stack:
        node = stack.pop()
        if id(node) not in seen:
            seen.add(id(node))
            out.append(node)
            stack.extend(inputs(node))
    return out


def _check_order(order, root, names, inputs) -> None:
    label = {id(t): n for n, t in names.items()}

    def name(t):
        return label.get(id(t), "a node")

    check_true(isinstance(order, list), f"topological_order returned a {type(order).__name__}; return a list")
    nodes = _all_nodes(root, inputs)
    ids = {id(t) for t in nodes}
    stray = [t for t in order if id(t) not in ids]
    check_true(not stray, f"the list holds {len(stray)} item(s) that are not tensors of this graph (the first: "
                          f"{type(stray[0]).__name__ if stray else ''}): list the Tensors themselves")
    pos = {}
    for i, t in enumerate(order):
        if id(t) in pos:
            raise Failure(f"{name(t)} is in the list more than once: keep a set of visited id(node) and skip a node "
                          "already visited")
        pos[id(t)] = i
    missing = [t for t in nodes if id(t) not in pos]
    check_true(not missing, f"{name(missing[0]) if missing else ''} is missing from the list ({len(missing)} of the "
                            f"graph's {len(nodes)} nodes missing): every input of every node in the list must be in "
                            "it too")
    for t in order:
        for p in inputs(t):
            check_true(pos[id(p)] < pos[id(t)], f"{name(t)} comes before its input {name(p)}: a node goes in the "
                                                "list after all of its inputs (append it when you leave it, "
                                                "post-order, not when you reach it)")


def _backward_in(order, root) -> dict:
    """Gradients of every leaf, passing each node's gradient on in reversed `order` (no accumulation tricks)."""
    grads, leaves = {id(root): np.ones_like(root.data)}, {}
    for node in reversed(order):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._ctx is None:
            leaves[id(node)] = g
            continue
        for parent, pg, needed in zip(node._ctx.parents, node._ctx.backward(g), node._ctx.needs_input_grad):
            if needed and pg is not None and parent.requires_grad:
                grads[id(parent)] = grads[id(parent)] + pg if id(parent) in grads else np.asarray(pg)
    return leaves


def check(mod) -> None:
    for desc, build in GRAPHS:
        with case(desc):
            root, names, leaves = build()
            _check_order(mod.topological_order(root), root, names, mod.inputs)
            got = _backward_in(mod.topological_order(root), root)
            root2, _, leaves2 = build()
            root2.backward()
            leaf_ids = {id(t) for t in leaves}
            for name, leaf, leaf2 in zip((n for n, t in names.items() if id(t) in leaf_ids), leaves, leaves2):
                compare(f"the gradient of {name} by a backward loop in your order", got.get(id(leaf)), leaf2.grad)


def plug(mod) -> dict:
    """Not plugged into training: the library's backward keeps its own order."""
    return {}
