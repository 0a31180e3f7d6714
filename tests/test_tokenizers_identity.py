"""This project's `tokenizers` and Hugging Face's, which has the same name: each mix-up explains itself.

A non-editable install puts this package in site-packages/tokenizers/, where installing Hugging Face's package
writes its files, __init__.py included, over ours. That is simulated here by a stand-in package ahead on the path:
a copy of ours whose __init__.py is replaced by a fake of Hugging Face's.
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import tokenizers
from tokenizers.tools.identity import ADVICE, HUGGING_FACE_NAMES, PROJECT, exit_unless_ours

REPO = Path(__file__).resolve().parents[1]
# `python train.py` as run_path does it, without putting the repository (and our package) first on the path.
TRAIN_PY = (
    "import runpy, sys; sys.argv = ['train.py']; "
    f"runpy.run_path({str(REPO / 'train.py')!r}, run_name='__main__')"
)
FAKE_INIT = '''"""A stand-in for Hugging Face's tokenizers/__init__.py."""
__version__ = "0.0.stand-in"


class AddedToken:
    pass


class Tokenizer:
    pass
'''


@pytest.fixture()
def overwritten(tmp_path):
    """A folder holding a `tokenizers` package as Hugging Face's install leaves ours: their __init__.py, our rest."""
    site = tmp_path / "site"
    shutil.copytree(REPO / "tokenizers", site / "tokenizers", ignore=shutil.ignore_patterns("__pycache__"))
    (site / "tokenizers" / "__init__.py").write_text(FAKE_INIT)
    return site


def run(args, site, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = os.pathsep.join([str(site), str(REPO)])  # the stand-in first, then the repository
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )


def assert_one_sentence(result):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.count("\n") == 1
    assert "package" in result.stderr and "is not this project's (most likely Hugging Face's" in result.stderr
    assert "give transformers-from-scratch a virtual environment of its own" in result.stderr
    assert "outside the repository" in result.stderr
    assert result.stdout == ""


def test_train_py_stops_with_one_sentence(overwritten, tmp_path):
    result = run(["-c", TRAIN_PY], overwritten, tmp_path)
    assert_one_sentence(result)
    assert result.stderr.startswith("train.py: error: ")


def test_train_py_check_needs_nothing_but_the_stand_in(tmp_path):
    # Hugging Face's package alone (none of our files beside its __init__.py): train.py still explains.
    site = tmp_path / "bare"
    (site / "tokenizers").mkdir(parents=True)
    (site / "tokenizers" / "__init__.py").write_text(FAKE_INIT)
    assert_one_sentence(run(["-c", TRAIN_PY], site, tmp_path))


def test_python_dash_m_tokenizers_stops_with_one_sentence(overwritten, tmp_path):
    result = run(["-m", "tokenizers", "encode", "--gpt2", "encoder.json"], overwritten, tmp_path)
    assert_one_sentence(result)
    assert result.stderr.startswith("error: ")
    assert str(overwritten / "tokenizers") in result.stderr  # where the other package is


def test_ours_passes_the_check(tmp_path):
    exit_unless_ours()  # returns: this process imported our package
    assert tokenizers.__project__ == PROJECT
    result = run(["-m", "tokenizers", "--help"], REPO, tmp_path)
    assert result.returncode == 0 and "train" in result.stdout


def test_hugging_face_names_raise_an_explaining_import_error():
    with pytest.raises(ImportError) as info:
        from tokenizers import AddedToken  # noqa: F401
    message = str(info.value)
    assert "'AddedToken' is Hugging Face's" in message
    assert f"is {PROJECT}'s, not Hugging Face's" in message and ADVICE in message
    assert str(REPO / "tokenizers") in message
    for name in ("Encoding", "NormalizedString", "PreTokenizedString", "Regex", "pre_tokenizers", "models",
                 "normalizers", "decoders", "processors", "trainers"):
        assert name in HUGGING_FACE_NAMES
        with pytest.raises(ImportError, match="not Hugging Face's"):
            getattr(tokenizers, name)
    assert "Tokenizer" not in HUGGING_FACE_NAMES and tokenizers.Tokenizer.__module__ == "tokenizers.base"


def test_other_missing_names_are_plain_attribute_errors():
    assert not hasattr(tokenizers, "no_such_name")
    with pytest.raises(ImportError, match="cannot import name 'no_such_name'"):
        from tokenizers import no_such_name  # noqa: F401


def test_import_in_a_fresh_interpreter_gives_the_message(tmp_path):
    # The same from outside pytest: `from tokenizers import AddedToken` with our package first on the path.
    result = run(["-c", "from tokenizers import AddedToken"], REPO, tmp_path)
    assert result.returncode == 1
    assert "ImportError: 'AddedToken' is Hugging Face's" in result.stderr and ADVICE in result.stderr
