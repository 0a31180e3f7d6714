"""Plausible wrong solutions of exercise 09 (backward_order): (what, text in the solution, replacement, diagnosis)."""

RECURSIVE = '''    order, visited = [], set()

    def visit(node):
        if id(node) in visited:
            return
        visited.add(id(node))
        for parent in inputs(node):
            visit(parent)
        order.append(node)

    visit(root)
    return order
'''

PRE_ORDER = '''    order, visited, stack = [], set(), [root]
    while stack:
        node = stack.pop()
        if id(node) in visited:
            continue
        visited.add(id(node))
        order.append(node)
        stack.extend(inputs(node))
    return order[::-1]
'''

BODY_START = "    order, visited = [], set()\n    stack = [(root, False)]"

MISTAKES = [
    ("recursive depth-first walk", BODY_START, RECURSIVE + "    stack = [(root, False)]", "explicit stack"),
    ("pre-order reversed", BODY_START, PRE_ORDER + "    stack = [(root, False)]", "after all of its inputs"),
    ("no visited set", "        if id(node) in visited:\n            continue\n", "", "more than once"),
    ("reached nodes never expanded", "        for parent in inputs(node):", "        for parent in inputs(node)[:1]:",
     "missing"),
]
