"""The data files that the optional tests, the benchmarks and the shakespeare_char preset read, and their home.

None of them is part of the project. Each has one canonical address and the SHA-256 of its bytes there, and a copy
is used only when its bytes hash to that (or to a listed equivalent), so a truncated download or another file of the
same name is never taken for the real one.

Where a file is looked for, in this order:

1. the data home: the folder named by $TRANSFORMERS_FROM_SCRATCH_DATA, else $XDG_CACHE_HOME/transformers-from-scratch,
   else ~/.cache/transformers-from-scratch. `python train.py download [NAME ...]` fetches into it;
2. ../shared/data beside the repository, a development machine's shared folder (with its own file names).

Standard library only, and urllib is imported when a download starts: the test suite and the benchmarks import this
module before NumPy's thread settings are made.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

HOME_VAR = "TRANSFORMERS_FROM_SCRATCH_DATA"
SHARED_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
COMMAND = "python train.py download"


class DataFileError(Exception):
    """An unknown name, a failed download or a download with the wrong bytes (printed as one line, exit status 2)."""


@dataclass(frozen=True)
class DataFile:
    name: str  # its path inside the data home, and the name find() and download() take
    group: str  # the name `train.py download` takes for it and the files that go with it
    label: str  # what a sentence calls it
    url: str
    size: int  # bytes at the canonical address
    sha256: str  # of the bytes at the canonical address
    shared_name: str  # its name in ../shared/data
    equivalents: tuple = ()  # SHA-256 of other known byte-for-byte different copies with the same content


FILES = {
    f.name: f
    for f in (
        # The corpus of char-rnn, the address nanoGPT's shakespeare_char prepare.py uses: 1,115,394 ASCII characters.
        DataFile(
            name="tinyshakespeare.txt",
            group="tinyshakespeare",
            label="tinyshakespeare",
            url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
            size=1_115_394,
            sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
            shared_name="tinyshakespeare.txt",
        ),
        # OpenAI's GPT-2 release (the 124M model's folder; the same bytes as tiktoken's encodings/main copy and as
        # Hugging Face's gpt2 vocab.json): 50,257 tokens, ranks equal ids.
        DataFile(
            name="gpt2/encoder.json",
            group="gpt2",
            label="GPT-2's encoder.json",
            url="https://openaipublic.blob.core.windows.net/gpt-2/models/124M/encoder.json",
            size=1_042_301,
            sha256="196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
            shared_name="gpt2_encoder.json",
            # The same 50,257 entries written without spaces and with "<", ">" as \u003C, \u003E (798,581 bytes).
            equivalents=("a2d6a81348c03831f7cf229a74875a8a70d2dc3a08009208108a1d5cf426002d",),
        ),
        # The 50,000 merges in rank order after a "#version: 0.2" line (Hugging Face's gpt2 merges.txt is the same).
        DataFile(
            name="gpt2/vocab.bpe",
            group="gpt2",
            label="GPT-2's vocab.bpe",
            url="https://openaipublic.blob.core.windows.net/gpt-2/models/124M/vocab.bpe",
            size=456_318,
            sha256="1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
            shared_name="gpt2_vocab.bpe",
        ),
    )
}


def data_home() -> Path:
    """$TRANSFORMERS_FROM_SCRATCH_DATA, else the per-user cache folder (XDG: an empty or relative value is unset)."""
    named = os.environ.get(HOME_VAR, "")
    if named:
        return Path(named).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return base / "transformers-from-scratch"


def known(name: str) -> DataFile:
    try:
        return FILES[name]
    except KeyError:
        raise DataFileError(f"unknown data file {name!r}; known: {', '.join(FILES)}") from None


def places(name: str) -> list:
    """Where `name` is looked for, in order: the data home, then ../shared/data."""
    f = known(name)
    return [data_home() / f.name, SHARED_DIR / f.shared_name]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def is_valid(path: Path, f: DataFile) -> bool:
    """Whether `path` is a file with the bytes of `f` (1 MB hashes in about 2 ms, so it is checked every time)."""
    try:
        return path.is_file() and sha256_of(path) in (f.sha256, *f.equivalents)
    except OSError:
        return False


def find(name: str) -> Path | None:
    """The first copy of `name` whose SHA-256 is right, from the data home then ../shared/data; else None."""
    f = known(name)
    return next((p for p in places(name) if is_valid(p, f)), None)


def how_to_get(name: str) -> str:
    """One sentence for a skipped test or a benchmark: what is missing and the command that fetches it."""
    f = known(name)
    bad = [str(p) for p in places(name) if p.is_file() and not is_valid(p, f)]
    note = f" ({', '.join(bad)} has other bytes than the canonical file)" if bad else ""
    return f"needs {f.label}: run `{COMMAND} {f.group}`{note}"


def _why(e: BaseException) -> str:
    from urllib.error import HTTPError, URLError

    if isinstance(e, HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, URLError):
        return str(e.reason)
    return f"{type(e).__name__}: {e}"


def _make_dirs(folder: Path) -> list:
    """Create `folder` and its missing parents; return those created, deepest first, to remove them on failure."""
    created = []
    for d in (folder, *folder.parents):
        if d.exists():
            break
        created.append(d)
    folder.mkdir(parents=True, exist_ok=True)
    return created


def _remove_empty(created: list) -> None:
    for d in created:  # deepest first; a folder something else has written into stays
        try:
            d.rmdir()
        except OSError:
            break


def download(name: str, url: str | None = None, timeout: float = 60.0) -> Path:
    """Fetch `name` into the data home (from `url`, default its canonical address) and return its path.

    A valid copy already there is kept. The bytes go to a temporary file beside the target, their SHA-256 is checked
    and only then are they renamed into place: a failed, interrupted or wrong download leaves nothing behind."""
    f = known(name)
    url = url or f.url
    target = data_home() / f.name
    if is_valid(target, f):
        return target
    created = []
    try:
        created = _make_dirs(target.parent)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    except OSError as e:
        _remove_empty(created)
        raise DataFileError(f"cannot write {f.name} into {target.parent}: {_why(e)}") from None
    tmp = Path(tmp_name)
    try:
        import urllib.request

        digest, got = hashlib.sha256(), 0
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(url, timeout=timeout) as response:
                    # At most one byte past the expected size: enough to tell a wrong file, never a flood.
                    while got <= f.size and (block := response.read(min(1 << 16, f.size + 1 - got))):
                        digest.update(block)
                        out.write(block)
                        got += len(block)
            except (OSError, ValueError) as e:  # URLError, HTTPError, timeouts; ValueError: a malformed address
                raise DataFileError(f"could not download {f.name} from {url}: {_why(e)}") from None
            out.flush()
            os.fsync(out.fileno())
        if got > f.size:
            raise DataFileError(f"{url} sent more than the {f.size:,} bytes of {f.name}; nothing was kept")
        if digest.hexdigest() != f.sha256:
            raise DataFileError(
                f"{url} sent {got:,} bytes whose SHA-256 is {digest.hexdigest()}, but {f.name} has SHA-256 "
                f"{f.sha256} ({f.size:,} bytes); nothing was kept"
            )
        os.replace(tmp, target)
        return target
    finally:
        if tmp.exists():
            tmp.unlink()
            _remove_empty(created)


def _names(args: list) -> list:
    """Group names ("gpt2") and file names ("gpt2/vocab.bpe") to file names, in FILES's order; none = all."""
    if not args:
        return list(FILES)
    wanted = set()
    for arg in args:
        group = [f.name for f in FILES.values() if f.group == arg]
        if not group and arg not in FILES:
            groups = sorted({f.group for f in FILES.values()})
            raise DataFileError(f"unknown data {arg!r}; known: {', '.join(groups + list(FILES))}")
        wanted.update(group or [arg])
    return [n for n in FILES if n in wanted]


def usage() -> str:
    lines = [
        f"usage: {COMMAND} [NAME ...]",
        "",
        f"Fetches data files the optional tests and benchmarks use into the data home, {data_home()}",
        f"(${HOME_VAR} names another folder), and checks each file's SHA-256. A file that is",
        "already there, or in ../shared/data beside the repository, is not fetched again. No NAME: all of them.",
        "",
    ]
    for f in FILES.values():
        lines.append(f"  {f.group:<16} {f.name:<20} {f.size:>9,} bytes  {f.url}")
    return "\n".join(lines)


def download_main(argv: list, out=None, err=None) -> int:
    """`python train.py download [NAME ...]`: one line per file saying where it is; exit status 2 on failure."""
    out, err = out or sys.stdout, err or sys.stderr
    if "-h" in argv or "--help" in argv:
        print(usage(), file=out)
        return 0
    try:
        options = [a for a in argv if a.startswith("-")]
        if options:
            raise DataFileError(f"unknown option {options[0]} (the command takes data names only; see --help)")
        for name in _names(argv):
            present = find(name)
            if present is not None:
                print(f"{name}: already at {present} (SHA-256 checked)", file=out)
                continue
            path = download(name)
            print(f"{name}: downloaded to {path} ({path.stat().st_size:,} bytes, SHA-256 checked)", file=out)
    except DataFileError as e:
        print(f"train.py download: error: {e}", file=err)
        return 2
    return 0
