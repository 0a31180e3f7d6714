"""Exercise 09: the order of backward(), reverse topological, computed without recursion.

Where it runs: every loss.backward() of training walks the graph of the step, from the loss back to the
parameters, once. A node may pass its gradient on to its inputs only when it is complete, that is when every node
that used it has added its contribution. micrograd's case:

    a = Tensor(2.0); b = a + a; c = b + b      dc/db = 2 (two uses), dc/da = dc/db * 2 = 4

If a received b's gradient before b had both of c's contributions, a.grad would come out 2, not 4. The cure is an
order: list every node AFTER all of its inputs (a topological order: a, b, c); backward visits it reversed (c, b,
a), so each node comes after all of its consumers.

Task: write topological_order(root) -> list of Tensors: root and every tensor it depends on through inputs(node),
each exactly once, each after all of its inputs. Use a loop with an explicit stack, not recursion: a graph of a
few thousand ops (a long sequence, or many layers) is deeper than Python's recursion limit (1000). A depth-first
walk that appends a node when it is LEFT (after its inputs, "post-order") does it; `visited` holds id(node), since
Tensors compare elementwise.

`inputs(node)` (given below) is the list of the inputs of the op that made node which need a gradient; [] for a
leaf (a tensor you made, a parameter).

The grader checks your list on b = a + a; c = b + b, a diamond (one input used by two branches that meet again), a
node with an input that needs no gradient, a single leaf, and a chain of 3,000 ops: every node there, once, after
its inputs. Then it runs a small backward loop in your order and compares every gradient with the library's
loss.backward() (tinygrad_lite/autograd.py). The library's training runs its own order (this exercise is not
plugged into train.py).

    python -m exercises check backward_order        python -m exercises hint backward_order
"""


def inputs(node) -> list:
    """The inputs of the op that made `node` which need a gradient ([] for a leaf)."""
    ctx = node._ctx
    return [] if ctx is None else [p for p in ctx.parents if p.requires_grad]


def topological_order(root) -> list:
    """Every tensor root depends on (root included), each once, each after all of its inputs."""
    raise NotImplementedError  # TODO
