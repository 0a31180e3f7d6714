"""Backpropagation: walk the graph from an output back to the leaves, calling each Function's backward.

The order is reverse topological: a node's gradient is passed on only after every consumer of the node has added
its contribution (micrograd's `b = a + a; c = b + b` case: b's two contributions must both arrive before a gets
anything). The order is computed iteratively, so a chain of 100,000 ops needs no recursion.

Gradients are kept per node as [array, owned]: the first contribution is stored as is (it may be a view shared with
other nodes), and only an array the loop allocated itself is ever accumulated into in place. After a node's
backward has run, its Function releases its saved arrays and parent links (unless retain_graph=True), so the
memory of the graph is freed as the walk goes.
"""

from __future__ import annotations

import numpy as np

from . import function as _function


def backward(output, grad=None, retain_graph: bool = False) -> None:
    """Accumulate d(output)/d(leaf) * grad into every leaf's .grad (implicit grad 1 for a one-element tensor).

    The loop below is the whole of backprop. A good place for a breakpoint is the line `in_grads = ctx.backward(g)`,
    where `node` is the tensor whose gradient `g` is complete and `ctx` the Function that made it.
    """
    if not output.requires_grad:
        raise RuntimeError("backward() on a tensor that does not require grad (no input had requires_grad=True)")
    if grad is None:
        if output.data.size != 1:
            raise RuntimeError(f"backward() without a gradient needs a one-element output, got shape {output.shape}")
        grad = np.ones(output.data.shape, dtype=output.data.dtype)
    else:
        grad = np.asarray(grad, dtype=output.dtype)  # an array or a Tensor (Tensor.__array__)
        if grad.shape != output.shape:
            raise ValueError(f"backward(): gradient of shape {grad.shape} for a tensor of shape {output.shape}")

    topo = _function._implementations.get("backward_order", topological_order)(output)  # exercises/ may swap it
    grads = {id(output): [grad, False]}  # id -> [array, owned]; owned arrays may be accumulated into in place
    anomaly = _function._anomaly_enabled
    pop, get = grads.pop, grads.get
    for node in reversed(topo):
        entry = pop(id(node), None)
        if entry is None:  # no gradient reached this node (a backward returned None for it): free it all the same
            if not retain_graph and node._ctx is not None:
                node._ctx.release()
            continue
        g = entry[0]
        if node._hooks:
            for hook in node._hooks:
                out = hook(g)
                if out is not None:
                    g = np.asarray(out, dtype=node.dtype)
                    if g.shape != node.shape:
                        raise ValueError(f"hook {getattr(hook, '__name__', hook)!r} returned a gradient of shape "
                                         f"{g.shape} for a tensor of shape {node.shape}")
                    entry[1] = False
        ctx = node._ctx
        if ctx is None or node._retains_grad:
            if node.grad is None:
                node.grad = g if entry[1] else np.array(g, order="C")  # np.array: a 0-d grad stays an ndarray
            else:
                node.grad += g
        if ctx is None:
            for hook in node._post_hooks or ():
                hook(node)  # this leaf's .grad is final for this backward
            continue
        if ctx.released:
            raise RuntimeError(f"backward through {type(ctx).__name__} a second time: its saved arrays were freed by "
                               "the first backward. Pass retain_graph=True to the first backward() to keep them.")
        in_grads = ctx.backward(g)
        parents = ctx.parents
        if type(in_grads) is not tuple:
            in_grads = tuple(in_grads) if type(in_grads) is list else (in_grads,)
        if len(in_grads) != len(parents):
            raise RuntimeError(f"{type(ctx).__name__}.backward returned {len(in_grads)} gradients for "
                               f"{len(parents)} inputs")
        for parent, pg, needed in zip(parents, in_grads, ctx.needs_input_grad):
            if pg is None or not needed:
                continue
            if type(pg) is not np.ndarray:
                pg = np.asarray(pg)  # NumPy returns scalars from arithmetic on 0-d arrays
            pdata = parent.data
            if pg.shape != pdata.shape:
                raise RuntimeError(
                    f"{type(ctx).__name__}.backward returned a gradient of shape {pg.shape} "
                    f"for an input of shape {pdata.shape}"
                )
            if pg.dtype != pdata.dtype:
                pg = pg.astype(pdata.dtype)
            if anomaly and not _function._finite(pg):
                where = ctx.created_at or "<unknown: the forward ran outside detect_anomaly()>"
                raise _function.AnomalyError(
                    f"{type(ctx).__name__} produced NaN/Inf in backward; the op was created at {where}"
                )
            slot = get(id(parent))
            if slot is None:
                grads[id(parent)] = [pg, False]
            elif slot[1]:
                np.add(slot[0], pg, out=slot[0])
            else:
                slot[0] = np.asarray(slot[0] + pg)  # a fresh array we own (asarray: 0-d sums are scalars)
                slot[1] = True
        if not retain_graph:
            ctx.release()


def topological_order(root) -> list:
    """Iterative depth-first post-order: every node appears after all of its inputs.

    Inputs are explored first one first, so the weights an op takes after its activation (linear, layer_norm)
    come right before the op: in reverse, their gradients are complete, and their post-accumulate hooks run, as
    soon as backward has passed the op, not at its very end (data parallelism sends them off meanwhile)."""
    order, visited = [], set()
    stack = [(root, False)]
    push, pop, seen = stack.append, stack.pop, visited.add
    while stack:
        node, expanded = pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        seen(id(node))
        push((node, True))
        ctx = node._ctx
        if ctx is not None:
            for parent in reversed(ctx.parents):  # the stack pops the first input first
                if parent.requires_grad and id(parent) not in visited:
                    push((parent, False))
    return order
