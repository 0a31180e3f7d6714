"""The processors against transformers' own (TopK/TopP/MinP/Temperature warpers, RepetitionPenaltyLogitsProcessor
and the chain `generate` builds from them) on random float32 logits, ties included.

transformers is run in a separate Python process: it imports Hugging Face's `tokenizers`, which this project's own
top-level `tokenizers` package would shadow. The child runs isolated (`python -I`, working directory outside the
repository), reads the cases from an .npz file and writes its outputs to another. One process for every case keeps
the import cost (a few seconds) paid once.
"""

import importlib.util
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest

from samplers import (
    apply_repetition_penalty,
    apply_temperature,
    min_p_filter,
    process_logits,
    softmax,
    top_k_filter,
    top_p_filter,
)

pytestmark = pytest.mark.ref

CHILD = r"""
import json, sys
from pathlib import Path

# Belt and braces: the repository root must not be importable here, or `tokenizers` would be the wrong one. Only the
# root itself: a virtual environment may live inside the repository (CI's does), and its site-packages must stay.
_root = str(Path(sys.argv[2]).resolve())
sys.path = [p for p in sys.path if str(Path(p or ".").resolve()) != _root]
import numpy as np

try:
    import torch
    from transformers.generation.logits_process import (
        LogitsProcessorList, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
        TopKLogitsWarper, TopPLogitsWarper,
    )
except ImportError as error:
    print(f"transformers is not importable: {error}")
    sys.exit(3)

BUILD = {
    "temperature": lambda a: TemperatureLogitsWarper(float(a["t"])),
    "repetition": lambda a: RepetitionPenaltyLogitsProcessor(penalty=float(a["penalty"])),
    "top_k": lambda a: TopKLogitsWarper(top_k=a["k"], min_tokens_to_keep=a.get("m", 1)),
    "top_p": lambda a: TopPLogitsWarper(top_p=a["p"], min_tokens_to_keep=a.get("m", 1)),
    "min_p": lambda a: MinPLogitsWarper(min_p=a["p"], min_tokens_to_keep=a.get("m", 1)),
}

work = Path(sys.argv[1])
cases = json.loads((work / "cases.json").read_text())
arrays = np.load(work / "inputs.npz")
outputs = {}
for case in cases:
    scores = torch.from_numpy(arrays[case["logits"]])
    ids = torch.from_numpy(arrays[case["ids"]]) if case.get("ids") else None
    chain = LogitsProcessorList([BUILD[kind](args) for kind, args in case["chain"]])
    outputs[case["name"]] = chain(ids, scores.clone()).numpy()
np.savez(work / "outputs.npz", **outputs)
"""


def _cases():
    """(cases, arrays): each case names its logits (and ids) in `arrays` and lists (processor, arguments) to apply."""
    rng = np.random.default_rng(20240601)
    arrays = {
        # Three scales: flat, typical, and peaked enough that most of the vocabulary is negligible.
        "smooth": np.concatenate([rng.normal(size=(4, 200)) * s for s in (0.5, 2.0, 8.0)]).astype(np.float32),
        "ties": rng.integers(-3, 4, size=(8, 40)).astype(np.float32),
        "signed": (rng.normal(size=(4, 64)) * 2).astype(np.float32),
        "history": rng.integers(0, 64, size=(4, 20)),  # with repeats, so deduplication matters
        "history_100": rng.integers(0, 100, size=(4, 30)),
        "chain": (rng.normal(size=(4, 100)) * 3).astype(np.float32),
    }
    cases = []

    def add(name, logits, chain, ids=None):
        cases.append({"name": name, "logits": logits, "chain": chain, "ids": ids})

    for t in (0.3, 0.7, 1.5, 2.0):
        add(f"temperature-{t}", "signed", [("temperature", {"t": t})])
    for penalty in (0.5, 1.2, 2.0):
        add(f"repetition-{penalty}", "signed", [("repetition", {"penalty": penalty})], ids="history")
    for logits in ("smooth", "ties"):
        for k in (1, 2, 5, 39, 40, 100):
            for m in (1, 4):
                add(f"top_k-{logits}-{k}-{m}", logits, [("top_k", {"k": k, "m": m})])
        for p in (0.0, 0.05, 0.3, 0.6, 0.9, 0.95, 0.99):
            for m in (1, 3):
                add(f"top_p-{logits}-{p}-{m}", logits, [("top_p", {"p": p, "m": m})])
        # min_tokens_to_keep > 1 among ties is where min-p differs on purpose (see min_p.py): smooth logits only.
        for p in (0.0, 0.01, 0.1, 0.4, 0.9, 1.0):
            for m in (1, 3) if logits == "smooth" else (1,):
                add(f"min_p-{logits}-{p}-{m}", logits, [("min_p", {"p": p, "m": m})])
    add("top_p-ties-1.0-1", "ties", [("top_p", {"p": 1.0})])  # no float32 underflow on these logits
    add(
        "chain-all",
        "chain",
        [
            ("repetition", {"penalty": 1.3}),
            ("temperature", {"t": 0.7}),
            ("top_k", {"k": 20}),
            ("top_p", {"p": 0.9}),
            ("min_p", {"p": 0.05}),
        ],
        ids="history_100",
    )
    add("chain-warm", "chain", [("temperature", {"t": 1.5}), ("top_k", {"k": 50}), ("top_p", {"p": 0.95})])
    return cases, arrays


CASES, ARRAYS = _cases()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
        pytest.skip("torch and transformers are needed for the reference tests (the `ref` extra)")
    work = tmp_path_factory.mktemp("samplers_ref")
    (work / "cases.json").write_text(json.dumps(CASES))
    np.savez(work / "inputs.npz", **ARRAYS)
    (work / "child.py").write_text(CHILD)
    repo = str(Path(__file__).resolve().parents[1])
    proc = subprocess.run(
        [sys.executable, "-I", str(work / "child.py"), str(work), repo],
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if proc.returncode == 3:
        pytest.skip(proc.stdout.strip())
    if proc.returncode != 0:
        pytest.fail(f"the transformers reference process failed:\n{proc.stderr[-3000:]}")
    with np.load(work / "outputs.npz") as outputs:
        return {name: outputs[name] for name in outputs.files}


def _ours(case):
    x = ARRAYS[case["logits"]]
    if case["name"].startswith("chain"):
        settings = dict(case["chain"])
        return process_logits(
            x,
            temperature=settings.get("temperature", {"t": 1.0})["t"],
            top_k=settings.get("top_k", {}).get("k"),
            top_p=settings.get("top_p", {}).get("p"),
            min_p=settings.get("min_p", {}).get("p"),
            repetition_penalty=settings.get("repetition", {}).get("penalty"),
            prev_ids=ARRAYS[case["ids"]] if case["ids"] else None,
        )
    ((kind, args),) = case["chain"]
    if kind == "temperature":
        return apply_temperature(x, args["t"])
    if kind == "repetition":
        return apply_repetition_penalty(x, ARRAYS[case["ids"]], args["penalty"])
    m = args.get("m", 1)
    if kind == "top_k":
        return top_k_filter(x, args["k"], m)
    if kind == "top_p":
        return top_p_filter(x, args["p"], m)
    return min_p_filter(x, args["p"], m)


def _near_boundary(case) -> np.ndarray:
    """Rows where a float32 (transformers) and a float64 (here) softmax could honestly disagree: an unprotected
    top-p cumulative sum within 1e-6 of 1 - p, or a min-p probability ratio within a relative 1e-6 of p (the maximum
    and its ties compare equal in any precision). Such rows are left out of the comparison."""
    x = ARRAYS[case["logits"]]
    near = np.zeros(x.shape[0], dtype=bool)
    if case["name"].startswith("chain"):
        return near
    ((kind, args),) = case["chain"]
    if kind == "top_p":
        order = np.argsort(x, axis=-1, kind="stable")
        cumulative = np.cumsum(np.take_along_axis(softmax(x), order, axis=-1), axis=-1)
        unprotected = cumulative[:, : x.shape[-1] - args.get("m", 1)]
        near |= (np.abs(unprotected - (1 - args["p"])) < 1e-6).any(axis=-1)
    if kind == "min_p":
        probs = softmax(x)
        ratio = probs / probs.max(axis=-1, keepdims=True)
        near |= ((np.abs(ratio - args["p"]) < 1e-6 * args["p"]) & (ratio != 1)).any(axis=-1)
    return near


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_matches_transformers(reference, case):
    ours, theirs = _ours(case), reference[case["name"]]
    assert ours.dtype == theirs.dtype == np.float32
    rows = ~_near_boundary(case)
    assert rows.sum() >= 0.75 * len(rows), "too many rows sit on a threshold for the comparison to mean much"
    ours, theirs = ours[rows], theirs[rows]
    if case["name"].startswith("top_p-ties"):
        # Which of several tied tokens straddling the cut survives depends on the sort order among ties. Ours is
        # stable (lower indices dropped first); torch.sort's default on CPU is not stable beyond a few elements, so
        # transformers' choice is arbitrary. The kept values must still agree as multisets: the same number of
        # tokens from every tie group, hence the same distribution up to relabelling tied tokens.
        ours, theirs = np.sort(ours, axis=-1), np.sort(theirs, axis=-1)
    # Exact: kept logits are copied, and a temperature or penalty is one correctly rounded float32 * or / in both.
    np.testing.assert_array_equal(ours, theirs)


def test_every_kind_has_cases():
    kinds = {kind for case in CASES for kind, _ in case["chain"]}
    assert kinds == {"temperature", "repetition", "top_k", "top_p", "min_p"}
