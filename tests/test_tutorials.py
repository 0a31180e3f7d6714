"""The tutorials (docs/tutorials/) keep their promises: each page is run by test_docs_code.py, its figures come from
docs/figures.py, every page opens as a notebook that runs, the line numbers it tells a debugger are right, and its
links lead somewhere."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs_code import ENV, PAGES, TUTORIALS, python_blocks

REPO = Path(__file__).resolve().parents[1]
FIGURES = REPO / "docs" / "figures"
PNG = b"\x89PNG\r\n\x1a\n"

# The statement at each line a page tells pdb or VS Code to stop at: a line number cited in a page must still be
# that statement after the file changes.
PINNED = {
    "tinygrad_lite/autograd.py": "in_grads = ctx.backward(g)",
    "tinygrad_lite/ops/matmul.py": "a, b = self.a, self.b",
}


def referenced_figures() -> set[str]:
    return {name for page in TUTORIALS for name in re.findall(r"\]\(\.\./figures/([\w.-]+\.png)\)", page.read_text())}


def test_seven_tutorials_all_run_by_the_docs_test():
    assert len(TUTORIALS) == 7, [p.name for p in TUTORIALS]
    assert set(TUTORIALS) <= set(PAGES)


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.name)
def test_page_says_what_you_learn_and_where_to_go_next(page):
    text = page.read_text()
    assert text.startswith("# "), f"{page.name} does not start with a title"
    assert "**What you will learn.**" in "\n".join(text.splitlines()[:4]), f"{page.name}: no 'What you will learn'"
    assert "\n## Where to go next\n" in text, f"{page.name}: no 'Where to go next' section"
    i = TUTORIALS.index(page)
    if i + 1 < len(TUTORIALS):
        assert f"({TUTORIALS[i + 1].name})" in text.split("## Where to go next")[1], f"{page.name}: no link onward"


@pytest.mark.parametrize("page", [*TUTORIALS, REPO / "docs" / "tutorials" / "README.md"], ids=lambda p: p.name)
def test_relative_links_lead_to_files(page):
    missing = []
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        if not (page.parent / target.split("#")[0]).exists():
            missing.append(target)
    assert not missing, f"{page.name} links to missing files: {missing}"


def test_breakpoint_line_numbers_are_the_pinned_statements():
    cited = []
    for page in TUTORIALS:
        text = page.read_text()
        for path, line in re.findall(r"\bb (tinygrad_lite/[\w/]+\.py):(\d+)", text):
            cited.append((page.name, path, int(line)))
        for line in re.findall(r"gutter left of line (\d+)", text):  # the VS Code instruction, for autograd.py
            cited.append((page.name, "tinygrad_lite/autograd.py", int(line)))
        for line in re.findall(r"^(\d+):\s+in_grads = ctx\.backward\(g\)$", text, flags=re.M):  # grep's output
            cited.append((page.name, "tinygrad_lite/autograd.py", int(line)))
    assert len(cited) >= 4, cited
    for name, path, line in cited:
        assert path in PINNED, f"{name} cites {path}:{line}; add the statement it stops at to PINNED"
        source = (REPO / path).read_text().splitlines()
        assert source[line - 1].strip() == PINNED[path], (
            f"{name} says {path}:{line}, which is now {source[line - 1].strip()!r}, not {PINNED[path]!r}")


def test_figures_script_draws_every_figure_the_pages_show(tmp_path):
    pytest.importorskip("matplotlib", reason="docs/figures.py needs the plot extra: pip install -e '.[plot]'")
    wanted = referenced_figures()
    assert len(wanted) >= 6, wanted
    run = subprocess.run([sys.executable, str(REPO / "docs" / "figures.py"), "--out", str(tmp_path)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=600, env=ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    drawn = {p.name for p in tmp_path.glob("*.png")}
    assert wanted <= drawn, f"referenced but not drawn: {sorted(wanted - drawn)}"
    for name in drawn:
        assert (tmp_path / name).read_bytes().startswith(PNG)
    committed = {p.name for p in FIGURES.glob("*.png")}
    assert wanted <= committed, f"referenced but not committed in docs/figures/: {sorted(wanted - committed)}"
    assert committed <= wanted, f"committed but shown by no page: {sorted(committed - wanted)}"


def test_figures_script_refuses_an_unknown_name(tmp_path):
    pytest.importorskip("matplotlib", reason="docs/figures.py needs the plot extra: pip install -e '.[plot]'")
    run = subprocess.run([sys.executable, str(REPO / "docs" / "figures.py"), "--out", str(tmp_path), "nope"],
                         capture_output=True, text=True, timeout=120, env=ENV)
    assert run.returncode == 2 and "unknown figure 'nope'" in run.stderr and "Traceback" not in run.stderr


def _notebook_tools():
    reason = "the notebooks extra is not installed: pip install -e '.[notebooks]'"
    return (pytest.importorskip("jupytext", reason=reason), pytest.importorskip("nbclient", reason=reason),
            pytest.importorskip("ipykernel", reason=reason))


@pytest.mark.parametrize("page", TUTORIALS, ids=lambda p: p.name)
def test_jupytext_turns_exactly_the_python_blocks_into_code_cells(page):
    jupytext, _, _ = _notebook_tools()
    notebook = jupytext.read(page)
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    # A ```bash block would become a %%bash cell that runs; commands for a shell are ```console blocks.
    assert code == [block.rstrip("\n") for block in python_blocks(page.read_text())]


# One notebook runs in the default suite; the others are the same code, which test_docs_code.py already runs.
NOTEBOOKS = [pytest.param(p, marks=() if i == 0 else pytest.mark.slow, id=p.name) for i, p in enumerate(TUTORIALS)]


@pytest.mark.parametrize("page", NOTEBOOKS)
def test_notebook_runs_top_to_bottom(page, monkeypatch):
    jupytext, nbclient, _ = _notebook_tools()
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"):
        monkeypatch.setenv(name, ENV[name])  # the kernel inherits the environment
    notebook = jupytext.read(page)
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=300,
                                     resources={"metadata": {"path": str(REPO)}})
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.get("outputs", [])]
    assert not [o for o in outputs if o.get("output_type") == "error"]
    assert any(o.get("output_type") == "stream" for o in outputs)


def test_tokenization_page_runs_without_the_data_files():
    """A user without tinyshakespeare and GPT-2's encoder.json: the page trains on the docs and says so."""
    page = REPO / "docs" / "tutorials" / "06_tokenization.md"
    prelude = "import training.data_files\ntraining.data_files.find = lambda name: None  # nothing in the data folder\n"
    program = prelude + "\n\n".join(python_blocks(page.read_text()))
    run = subprocess.run([sys.executable, "-c", program], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env=ENV)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "training on the project's documentation" in run.stdout
    assert "encoder.json not found" in run.stdout
