"""training/data_files.py: the data home, the recorded checksums, find(), download() and `train.py download`.

No network: downloads come from an HTTP server on 127.0.0.1 in a thread, a file:// address or a closed port, and
a small stand-in file takes the place of the real ones (the checksum tests read the real copies when present).
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path

import pytest

from training import data as D
from training import data_files as DF
from training.options import OptionError

REPO = Path(__file__).resolve().parents[1]
DEMO = b"To be, or not to be, that is the question:\n" * 40


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty data home (not yet created) and an empty ../shared/data."""
    monkeypatch.setenv(DF.HOME_VAR, str(tmp_path / "home"))
    monkeypatch.setattr(DF, "SHARED_DIR", tmp_path / "shared")
    for var in ("no_proxy", "NO_PROXY"):  # a proxy from the environment must not carry the local requests
        monkeypatch.setenv(var, "127.0.0.1,localhost")
    return tmp_path / "home"


@pytest.fixture
def server(tmp_path):
    """(folder, base address) of an HTTP server on 127.0.0.1 that serves the folder."""
    www = tmp_path / "www"
    www.mkdir()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(www)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield www, f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture
def demo(home, server, monkeypatch):
    """The only known file: "demo/demo.txt", served as /demo.txt."""
    www, base = server
    (www / "demo.txt").write_bytes(DEMO)
    f = DF.DataFile(name="demo/demo.txt", group="demo", label="the demo text", url=f"{base}/demo.txt",
                    size=len(DEMO), sha256=hashlib.sha256(DEMO).hexdigest(), shared_name="demo_shared.txt")
    monkeypatch.setattr(DF, "FILES", {f.name: f})
    return f


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree(folder: Path) -> list:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")) if folder.exists() else []


# ----------------------------------------------------------------------------------------------- the data home


def test_data_home_is_the_variable_then_the_cache_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv(DF.HOME_VAR, raising=False)
    assert DF.data_home() == tmp_path / "user" / ".cache" / "transformers-from-scratch"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/cache")  # XDG: a relative path is to be ignored
    assert DF.data_home() == tmp_path / "user" / ".cache" / "transformers-from-scratch"
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert DF.data_home() == tmp_path / "xdg" / "transformers-from-scratch"
    monkeypatch.setenv(DF.HOME_VAR, str(tmp_path / "mine"))
    assert DF.data_home() == tmp_path / "mine"
    assert D.cache_dir() == tmp_path / "mine"  # train.py's download folder is the same one
    monkeypatch.setenv(DF.HOME_VAR, "")
    assert DF.data_home() == tmp_path / "xdg" / "transformers-from-scratch"


def test_places_are_the_data_home_then_shared_data(home, tmp_path):
    assert DF.places("gpt2/encoder.json") == [home / "gpt2" / "encoder.json", tmp_path / "shared" / "gpt2_encoder.json"]
    assert DF.places("tinyshakespeare.txt")[0] == home / "tinyshakespeare.txt"
    with pytest.raises(DF.DataFileError, match="unknown data file 'nope'; known: tinyshakespeare.txt"):
        DF.find("nope")


# ------------------------------------------------------------------- the recorded checksums, from the copies at hand


def copies(name: str) -> list:
    found = [p for p in DF.places(name) if p.is_file()]
    if not found:
        pytest.skip(DF.how_to_get(name))
    return found


def test_tinyshakespeare_checksum_is_the_corpus():
    f = DF.FILES["tinyshakespeare.txt"]
    for path in copies(f.name):
        data = path.read_bytes()
        text = data.decode("utf-8")
        assert len(text) == 1_115_394 and len(set(text)) == 65 and text.startswith("First Citizen:\n")
        assert (len(data), hashlib.sha256(data).hexdigest()) == (f.size, f.sha256)


def test_encoder_checksum_is_openais_serialization():
    # OpenAI wrote encoder.json with Python's json.dump defaults; the recorded size and SHA-256 are those bytes,
    # and any copy of the same 50,257 entries written again that way has them.
    f = DF.FILES["gpt2/encoder.json"]
    for path in copies(f.name):
        raw = path.read_bytes()
        encoder = json.loads(raw)
        assert len(encoder) == 50_257 and sorted(encoder.values()) == list(range(50_257))
        canonical = json.dumps(encoder).encode("ascii")
        assert (len(canonical), hashlib.sha256(canonical).hexdigest()) == (f.size, f.sha256)
        assert hashlib.sha256(raw).hexdigest() in (f.sha256, *f.equivalents)


def test_vocab_bpe_checksum_is_the_encoders_merges():
    # vocab.bpe is "#version: 0.2" and one "left right" line per merge in rank order; the merges follow from the
    # encoder's ranks, so the recorded checksum is checked without the file.
    from tokenizers import RegexTokenizer
    from tokenizers.gpt2 import bytes_to_unicode

    f = DF.FILES["gpt2/vocab.bpe"]
    gpt2 = RegexTokenizer.from_gpt2(copies("gpt2/encoder.json")[0])
    table = bytes_to_unicode()

    def spell(i):
        return "".join(table[b] for b in gpt2.vocab[i])

    text = "\n".join(["#version: 0.2"] + [f"{spell(a)} {spell(b)}" for a, b in gpt2.merges]) + "\n"
    data = text.encode("utf-8")
    assert (len(data), hashlib.sha256(data).hexdigest()) == (f.size, f.sha256)


def test_openais_vocab_bpe_gives_the_encoders_merges(data_file):
    from tokenizers import RegexTokenizer

    encoder, vocab_bpe = data_file("gpt2/encoder.json"), data_file("gpt2/vocab.bpe")
    explicit, recovered = RegexTokenizer.from_gpt2(encoder, vocab_bpe), RegexTokenizer.from_gpt2(encoder)
    assert list(explicit.merges.items()) == list(recovered.merges.items())


# ------------------------------------------------------------------------------------------------------ find()


def test_find_takes_the_first_copy_with_the_right_bytes(demo, home, tmp_path):
    shared = tmp_path / "shared" / "demo_shared.txt"
    assert DF.find(demo.name) is None
    shared.parent.mkdir()
    shared.write_bytes(DEMO)
    assert DF.find(demo.name) == shared
    (home / "demo").mkdir(parents=True)
    (home / "demo" / "demo.txt").write_bytes(DEMO)
    assert DF.find(demo.name) == home / "demo" / "demo.txt"
    (home / "demo" / "demo.txt").write_bytes(DEMO[:-1])  # truncated: passed over
    assert DF.find(demo.name) == shared
    shared.write_bytes(DEMO.upper())
    assert DF.find(demo.name) is None
    assert DF.how_to_get(demo.name) == (
        f"needs the demo text: run `python train.py download demo` ({home / 'demo' / 'demo.txt'}, {shared} has "
        "other bytes than the canonical file)"
    )


def test_find_accepts_a_listed_equivalent(demo, home, monkeypatch):
    other = DEMO.replace(b"\n", b"\r\n")
    monkeypatch.setitem(DF.FILES, demo.name, replace(demo, equivalents=(hashlib.sha256(other).hexdigest(),)))
    (home / "demo").mkdir(parents=True)
    (home / "demo" / "demo.txt").write_bytes(other)
    assert DF.find(demo.name) == home / "demo" / "demo.txt"


def test_a_missing_file_skips_with_the_command(data_file, home):
    with pytest.raises(pytest.skip.Exception) as info:
        data_file("gpt2/encoder.json")
    assert str(info.value) == "needs GPT-2's encoder.json: run `python train.py download gpt2`"


# -------------------------------------------------------------------------------------------------- download()


def test_download_writes_the_checked_file_into_the_data_home(demo, home, server):
    www, _ = server
    path = DF.download(demo.name)
    assert path == home / "demo" / "demo.txt" and path.read_bytes() == DEMO
    assert tree(home) == ["demo", "demo/demo.txt"]  # no temporary file left
    (www / "demo.txt").write_bytes(b"changed")
    assert DF.download(demo.name).read_bytes() == DEMO  # a valid copy is kept, not fetched again


def test_download_replaces_a_bad_copy(demo, home):
    (home / "demo").mkdir(parents=True)
    (home / "demo" / "demo.txt").write_bytes(b"half a fi")
    assert DF.download(demo.name).read_bytes() == DEMO


def test_download_from_a_file_address(demo, home, tmp_path):
    source = tmp_path / "elsewhere.txt"
    source.write_bytes(DEMO)
    assert DF.download(demo.name, url=source.as_uri()).read_bytes() == DEMO


def test_wrong_bytes_are_removed_with_both_checksums(demo, home, server):
    www, base = server
    (www / "demo.txt").write_bytes(DEMO[:-2] + b"?\n")
    with pytest.raises(DF.DataFileError) as info:
        DF.download(demo.name)
    got = hashlib.sha256(DEMO[:-2] + b"?\n").hexdigest()
    assert str(info.value) == (
        f"{base}/demo.txt sent {len(DEMO):,} bytes whose SHA-256 is {got}, but demo/demo.txt has SHA-256 "
        f"{demo.sha256} ({len(DEMO):,} bytes); nothing was kept"
    )
    assert not home.exists()  # not even the folders made for it


def test_a_longer_file_is_cut_short_and_refused(demo, home, server):
    www, base = server
    (www / "demo.txt").write_bytes(DEMO * 100)
    with pytest.raises(DF.DataFileError, match=f"{base}/demo.txt sent more than the {len(DEMO):,} bytes of demo"):
        DF.download(demo.name)
    assert not home.exists()


def test_an_unreachable_address_is_one_clear_error(demo, home):
    url = f"http://127.0.0.1:{closed_port()}/demo.txt"
    with pytest.raises(DF.DataFileError, match=rf"could not download demo/demo.txt from {url}: .*refused"):
        DF.download(demo.name, url=url, timeout=5)
    assert not home.exists()


def test_a_missing_address_names_the_http_status(demo, home, server):
    _, base = server
    with pytest.raises(DF.DataFileError, match=f"could not download demo/demo.txt from {base}/gone.txt: HTTP 404"):
        DF.download(demo.name, url=f"{base}/gone.txt")
    assert not home.exists()


def test_a_failed_download_leaves_an_existing_folder_and_its_files(demo, home):
    (home / "demo").mkdir(parents=True)
    (home / "demo" / "other.txt").write_text("mine")
    with pytest.raises(DF.DataFileError):
        DF.download(demo.name, url=f"http://127.0.0.1:{closed_port()}/demo.txt", timeout=5)
    assert tree(home) == ["demo", "demo/other.txt"]


# ------------------------------------------------------------------------------------------ python train.py download


def test_command_downloads_and_says_where(demo, home, capsys):
    import train

    assert train.main(["download"]) == 0  # no name: every known file
    assert capsys.readouterr().out == (
        f"demo/demo.txt: downloaded to {home / 'demo' / 'demo.txt'} ({len(DEMO):,} bytes, SHA-256 checked)\n"
    )
    assert train.main(["download", "demo"]) == 0
    assert capsys.readouterr().out == f"demo/demo.txt: already at {home / 'demo' / 'demo.txt'} (SHA-256 checked)\n"


def test_command_names_groups_and_files(monkeypatch):
    monkeypatch.setattr(DF, "FILES", DF.FILES.copy())
    assert DF._names(["gpt2"]) == ["gpt2/encoder.json", "gpt2/vocab.bpe"]
    assert DF._names(["gpt2/vocab.bpe", "tinyshakespeare"]) == ["tinyshakespeare.txt", "gpt2/vocab.bpe"]
    assert DF._names([]) == ["tinyshakespeare.txt", "gpt2/encoder.json", "gpt2/vocab.bpe"]


@pytest.mark.parametrize("case", ["unreachable", "mismatch", "unknown", "option"])
def test_command_failure_is_one_line_and_exit_2(case, demo, home, server, monkeypatch, capsys):
    import train

    www, _ = server
    args = ["download", "demo"]
    if case == "unreachable":
        monkeypatch.setitem(DF.FILES, demo.name, replace(demo, url=f"http://127.0.0.1:{closed_port()}/demo.txt"))
    elif case == "mismatch":
        (www / "demo.txt").write_bytes(DEMO.upper())
    else:
        args = ["download", "nope"] if case == "unknown" else ["download", "--force"]
    assert train.main(args) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("train.py download: error: ")
    expected = {"unreachable": "could not download demo/demo.txt", "mismatch": "whose SHA-256 is",
                "unknown": "unknown data 'nope'; known: demo, demo/demo.txt", "option": "unknown option --force"}
    assert expected[case] in captured.err
    assert not home.exists()


def test_command_help_and_a_users_mistake_as_a_user_runs_it(tmp_path):
    env = {**os.environ, DF.HOME_VAR: str(tmp_path / "home")}
    run = functools.partial(subprocess.run, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    shown = run([sys.executable, str(REPO / "train.py"), "download", "--help"])
    assert shown.returncode == 0
    assert f"into the data home, {tmp_path / 'home'}" in shown.stdout
    for f in DF.FILES.values():
        assert f.url in shown.stdout
    wrong = run([sys.executable, str(REPO / "train.py"), "download", "gpt3"])
    assert wrong.returncode == 2 and wrong.stdout == ""
    assert wrong.stderr == (
        "train.py download: error: unknown data 'gpt3'; known: gpt2, tinyshakespeare, tinyshakespeare.txt, "
        "gpt2/encoder.json, gpt2/vocab.bpe\n"
    )
    assert not (tmp_path / "home").exists()


# --------------------------------------------------------------------------- shakespeare_char's text (read_text)


@pytest.fixture
def small_shakespeare(home, server, monkeypatch):
    """tinyshakespeare.txt's entry pointed at a small stand-in text on the local server."""
    www, base = server
    (www / "input.txt").write_bytes(DEMO)
    real = DF.FILES["tinyshakespeare.txt"]
    stand_in = replace(real, url=f"{base}/input.txt", size=len(DEMO), sha256=hashlib.sha256(DEMO).hexdigest())
    monkeypatch.setitem(DF.FILES, real.name, stand_in)
    return stand_in


def test_read_text_downloads_tinyshakespeare_once(small_shakespeare, home, server):
    www, _ = server
    assert D.read_text("", "shakespeare_char") == DEMO.decode()
    assert tree(home) == ["tinyshakespeare.txt"]
    (www / "input.txt").unlink()
    assert D.read_text("", "shakespeare_char") == DEMO.decode()  # from the data home now


def test_read_text_without_network_says_what_to_do(small_shakespeare, home, monkeypatch):
    url = f"http://127.0.0.1:{closed_port()}/input.txt"
    monkeypatch.setitem(DF.FILES, "tinyshakespeare.txt", replace(small_shakespeare, url=url))
    with pytest.raises(OptionError, match=rf"could not download tinyshakespeare.txt from {url}: .*; pass --data PATH"):
        D.read_text("", "shakespeare_char")
    assert not home.exists()
