"""Exercise 09, reference solution: the order of backward(), reverse topological, computed without recursion."""


def inputs(node) -> list:
    """The inputs of the op that made `node` which need a gradient ([] for a leaf)."""
    ctx = node._ctx
    return [] if ctx is None else [p for p in ctx.parents if p.requires_grad]


def topological_order(root) -> list:
    """Every tensor root depends on (root included), each once, each after all of its inputs."""
    order, visited = [], set()
    stack = [(root, False)]  # (node, its inputs already pushed)
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)  # every input is in the list already
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in inputs(node):
            if id(parent) not in visited:
                stack.append((parent, False))
    return order
