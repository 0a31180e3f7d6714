"""Plausible wrong solutions of exercise 03 (broadcast): (what, text in the solution, replacement, diagnosis)."""

MUL = "unbroadcast(grad * self.b, self.a.shape), unbroadcast(grad * self.a, self.b.shape)"

MISTAKES = [
    ("no unbroadcast at all", "    extra = grad.ndim - len(shape)\n", "    return grad\n", "returned grad unchanged"),
    ("size-1 axes dropped", "grad.sum(axis=stretched, keepdims=True)", "grad.sum(axis=stretched)", "keepdims=True"),
    ("leading axes kept", "    grad = grad.sum(axis=tuple(range(extra)))  # the leading axes the input did not have\n",
     "    return grad.sum(axis=tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape) if n == 1), "
     "keepdims=True)\n", "without keepdims"),
    ("mean instead of sum", "grad = grad.sum(axis=tuple(range(extra)))",
     "grad = grad.mean(axis=tuple(range(extra)))", "averaged"),
    ("Add without unbroadcast", "return unbroadcast(grad, self.a_shape), unbroadcast(grad, self.b_shape)",
     "return grad, grad", "must be unbroadcast"),
    ("Mul with the inputs swapped", MUL,
     "unbroadcast(grad * self.a, self.a.shape), unbroadcast(grad * self.b, self.b.shape)", "the other input"),
    ("Mul without the chain rule", MUL,
     "unbroadcast(self.b + 0 * grad, self.a.shape), unbroadcast(self.a + 0 * grad, self.b.shape)", "multiply by grad"),
    ("Mul unbroadcasting before the product", MUL,
     "unbroadcast(grad, self.a.shape) * unbroadcast(self.b + 0 * grad, self.a.shape), "
     "unbroadcast(grad, self.b.shape) * unbroadcast(self.a + 0 * grad, self.b.shape)", "then unbroadcast"),
    ("Mul's da sign flipped", "return unbroadcast(grad * self.b, self.a.shape)",
     "return unbroadcast(-grad * self.b, self.a.shape)", "sign is flipped"),
]
