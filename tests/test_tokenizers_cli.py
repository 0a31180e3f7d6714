"""The tokenizers command line: train, encode, decode, and one-line errors for user mistakes."""

import io
import subprocess
import sys
from pathlib import Path

import pytest

from tokenizers import load
from tokenizers.tools.cli import main

REPO = Path(__file__).resolve().parents[1]
TEXT = "First Citizen:\nBefore we proceed any further, hear me speak.\nAll:\nSpeak, speak.\n" * 20


def run(monkeypatch, capsys, argv, stdin=b""):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8"))
    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture()
def model(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "input.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    code, out, err = run(monkeypatch, capsys, ["train", "--vocab-size", "300", str(corpus), "-o", str(tmp_path / "m")])
    assert code == 0, err
    assert "44/44 merges" in err and "wrote" in err
    return tmp_path / "m.model"


def test_train_writes_model_and_vocab(model):
    assert model.exists() and model.with_suffix(".vocab").exists()
    tok = load(str(model))
    assert len(tok.merges) == 44
    assert tok.decode(tok.encode(TEXT)) == TEXT


def test_encode_decode_round_trip(model, monkeypatch, capsys):
    text = "Speak, speak! Ünïcode 🙂\n"
    code, out, err = run(monkeypatch, capsys, ["encode", "--model", str(model)], text.encode("utf-8"))
    assert code == 0, err
    ids = [int(x) for x in out.split()]
    assert ids == load(str(model)).encode(text)
    code, out, err = run(
        monkeypatch, capsys, ["decode", "--model", str(model)], f"[{', '.join(map(str, ids))}]".encode()
    )
    assert code == 0, err
    assert out == text


def test_basic_pattern(tmp_path, monkeypatch, capsys):
    corpus = tmp_path / "in.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    argv = ["train", "--vocab-size", "260", "--pattern", "none", str(corpus), "-o", str(tmp_path / "b")]
    assert run(monkeypatch, capsys, argv)[0] == 0
    assert load(str(tmp_path / "b.model")).pattern is None


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing", "no such file"),
        ("empty", "the file is empty"),
        ("bad model", "not a tokenizer model file"),
        ("bad id", "token id 99999 is not in the vocabulary"),
        ("not an id", "should hold token ids"),
        ("no folder", "does not exist"),
    ],
)
def test_user_mistakes_give_one_line(case, message, model, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    bad = tmp_path / "bad.model"
    bad.write_text("hello\n")
    argv, stdin = {
        "missing": (["train", str(tmp_path / "nope.txt"), "-o", str(tmp_path / "x")], b""),
        "empty": (["train", str(empty), "-o", str(tmp_path / "x")], b""),
        "bad model": (["encode", "--model", str(bad)], b"hi"),
        "bad id": (["decode", "--model", str(model)], b"1 2 99999"),
        "not an id": (["decode", "--model", str(model)], b"1 two 3"),
        "no folder": (["train", str(empty), "-o", str(tmp_path / "no" / "x")], b""),
    }[case]
    code, out, err = run(monkeypatch, capsys, argv, stdin)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and message in err
    assert out == ""


def test_special_tokens_on_the_command_line(model, monkeypatch, capsys):
    tok = load(str(model))
    tok.register_special_tokens({"<|endoftext|>": 300})
    tok.save(str(model.with_suffix("")))
    code, out, err = run(monkeypatch, capsys, ["encode", "--model", str(model)], b"a<|endoftext|>")
    assert code == 2 and "--allowed-special all" in err
    argv = ["encode", "--model", str(model), "--allowed-special", "all"]
    code, out, err = run(monkeypatch, capsys, argv, b"a<|endoftext|>")
    assert code == 0 and out.split()[-1] == "300"


def test_python_dash_m_reports_errors_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "tokenizers", "train", str(tmp_path / "missing.txt"), "-o", str(tmp_path / "x")],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert result.stderr.strip() == f"error: {tmp_path / 'missing.txt'}: no such file"
