"""Reading and writing the safetensors format by hand, so checkpoints load in Hugging Face tools and back.

The format (https://huggingface.co/docs/safetensors, "Format" section) is three parts, nothing else:

    [ N: u64, little-endian ][ N bytes: UTF-8 JSON header ][ byte buffer ]

The header is a JSON object mapping each tensor name to
``{"dtype": "F32", "shape": [2, 3], "data_offsets": [begin, end]}``, where the offsets are byte positions relative to
the start of the buffer, plus an optional ``"__metadata__"`` entry holding a str -> str map. Tensor bytes are
little-endian and in C (row-major) order. The buffer is fully covered: sorted by offsets, each tensor begins where the
previous one ended, and the last one ends at the end of the file. The header may end with spaces so that the buffer
starts 8-byte aligned.

To make our files byte-identical to the ``safetensors`` package's, the writer follows its layout choices: tensors are
ordered by descending dtype alignment (the rank below), then by name, the JSON is compact (no spaces) with
non-ASCII characters kept as UTF-8, and the header is padded with spaces to a multiple of 8 bytes. A ``__metadata__``
map is written with sorted keys (the package writes it in hash order, which varies from run to run).

No pickle anywhere: loading a file can only ever produce numeric arrays.
"""

from __future__ import annotations

import json
import os
import sys

import numpy as np

HEADER_LIMIT = 100_000_000  # the safetensors package's MAX_HEADER_SIZE; a header past this is refused

# Spec dtype name -> little-endian NumPy dtype. The rank orders tensors in the file as the safetensors package does
# (its Dtype enum is declared in increasing alignment order, and it sorts by that rank, descending).
_DTYPES = {
    "BOOL": np.dtype("?"),
    "U8": np.dtype("u1"),
    "I8": np.dtype("i1"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "F16": np.dtype("<f2"),
    "BF16": np.dtype("<u2"),  # read as raw bits, widened to float32 below
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "F32": np.dtype("<f4"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
}
_RANK = {name: rank for rank, name in enumerate(_DTYPES)}
_NAME_OF_KIND = {(dt.kind, dt.itemsize): name for name, dt in _DTYPES.items() if name != "BF16"}


# ---------------------------------------------------------------- writing


def _spec_dtype(key: str, arr: np.ndarray) -> str:
    name = _NAME_OF_KIND.get((arr.dtype.kind, arr.dtype.itemsize))
    if name is None:
        supported = ", ".join(n for n in _DTYPES if n != "BF16")
        raise ValueError(f"cannot save tensor {key!r}: dtype {arr.dtype} is not supported (supported: {supported})")
    return name


def _as_array(key, value) -> np.ndarray:
    if not isinstance(key, str):
        raise ValueError(f"tensor names must be str, got {type(key).__name__} {key!r}")
    if key == "__metadata__":
        raise ValueError("'__metadata__' is reserved by the safetensors format and cannot name a tensor")
    if isinstance(value, np.ndarray):
        return value
    # A Tensor (or anything holding its array in .data) is saved as its array; the format stores no gradients.
    data = getattr(value, "data", None)
    return data if isinstance(data, np.ndarray) else np.asarray(value)


def _tensor_bytes(arr: np.ndarray):
    """The bytes the file stores for `arr`: little-endian, C order. No copy when the array is already so."""
    le = arr.dtype.newbyteorder("<")
    if arr.dtype != le or not arr.flags.c_contiguous:
        arr = np.ascontiguousarray(arr, dtype=le)  # byteswaps big-endian input, packs strided views
    return arr.reshape(-1).view(np.uint8)  # a byte view that file.write takes without copying


def _header_bytes(header: dict) -> bytes:
    # Compact separators and raw UTF-8 reproduce serde_json's output, which the safetensors package writes.
    try:
        text = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as e:  # lone surrogates in a name cannot be UTF-8
        raise ValueError(f"tensor names and metadata must be valid Unicode text: {e}") from None
    return text + b" " * (-len(text) % 8)  # pad so the buffer starts 8-byte aligned


def save_safetensors(path, tensors: dict, metadata: dict | None = None) -> None:
    """Write `tensors` (name -> array) to `path` in the safetensors format, atomically.

    Everything is checked before the file is touched; the bytes go to a temporary file in the same directory, which
    `os.replace` then moves over `path` in one step, so a crash or error never leaves a half-written checkpoint and an
    existing file is replaced only by a complete one.
    """
    path = os.fspath(path)
    if metadata is not None:
        if not isinstance(metadata, dict):
            raise ValueError(f"metadata must be a dict of str -> str, got {type(metadata).__name__}")
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise ValueError(f"metadata must map str -> str, got {k!r}: {v!r} ({type(v).__name__})")

    arrays = {key: _as_array(key, value) for key, value in tensors.items()}
    dtypes = {key: _spec_dtype(key, arr) for key, arr in arrays.items()}
    order = sorted(arrays, key=lambda k: (-_RANK[dtypes[k]], k))

    header: dict = {}
    if metadata is not None:
        header["__metadata__"] = {k: metadata[k] for k in sorted(metadata)}
    offset = 0
    for key in order:
        arr = arrays[key]
        header[key] = {"dtype": dtypes[key], "shape": list(arr.shape), "data_offsets": [offset, offset + arr.nbytes]}
        offset += arr.nbytes
    head = _header_bytes(header)

    directory, base = os.path.split(os.path.abspath(path))
    tmp = os.path.join(directory, f".{base}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    # os.open with mode 0o666 lets the umask decide permissions, as a plain open() would for the final file.
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(len(head).to_bytes(8, "little"))
            f.write(head)
            for key in order:
                f.write(_tensor_bytes(arrays[key]))
            f.flush()
            os.fsync(f.fileno())  # the data must be on disk before the rename makes it the checkpoint
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


# ---------------------------------------------------------------- reading


def _bad(path: str, problem: str) -> ValueError:
    return ValueError(f"{path}: not a valid safetensors file: {problem}")


def _is_count(x) -> bool:
    # JSON `true` would pass isinstance(x, int); the upper bound keeps NumPy from overflowing on a hostile shape.
    return isinstance(x, int) and not isinstance(x, bool) and 0 <= x < 2**63


def _no_duplicates(pairs):
    seen = {}
    for k, v in pairs:
        if k in seen:
            raise ValueError(f"duplicate key {k!r}")
        seen[k] = v
    return seen


def _read_header(path: str, f, file_size: int):
    """Parse and fully validate the header. Returns (metadata, entries sorted by offset, buffer start)."""
    if file_size < 8:
        raise _bad(path, f"file is {file_size} bytes, shorter than the 8-byte header length")
    n = int.from_bytes(f.read(8), "little")
    if n > HEADER_LIMIT:
        raise _bad(path, f"header length {n} exceeds the {HEADER_LIMIT}-byte limit")
    if n > file_size - 8:
        raise _bad(path, f"header length {n} runs past the end of the file ({file_size} bytes)")
    raw = f.read(n)
    try:
        header = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as e:
        raise _bad(path, f"header is not valid UTF-8 ({e})") from None
    except ValueError as e:  # json.JSONDecodeError and duplicate keys
        raise _bad(path, f"header is not valid JSON ({e})") from None
    if not isinstance(header, dict):
        raise _bad(path, f"header must be a JSON object, got {type(header).__name__}")

    metadata = header.pop("__metadata__", None)
    if metadata is not None and not (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values())):
        raise _bad(path, f"__metadata__ must map str -> str, got {metadata!r}")

    entries = []
    for name, info in header.items():
        if not isinstance(info, dict):
            raise _bad(path, f"entry {name!r} must be an object, got {info!r}")
        missing = [k for k in ("dtype", "shape", "data_offsets") if k not in info]
        if missing:
            raise _bad(path, f"entry {name!r} is missing {', '.join(missing)}")
        dtype, shape, offs = info["dtype"], info["shape"], info["data_offsets"]
        if dtype not in _DTYPES:
            raise _bad(path, f"entry {name!r} has unknown or unsupported dtype {dtype!r}")
        if not isinstance(shape, list) or not all(_is_count(d) for d in shape):
            raise _bad(path, f"entry {name!r} has shape {shape!r}; expected a list of non-negative integers")
        if not (isinstance(offs, list) and len(offs) == 2 and all(_is_count(o) for o in offs) and offs[0] <= offs[1]):
            raise _bad(path, f"entry {name!r} has data_offsets {offs!r}; expected [begin, end] with 0 <= begin <= end")
        expected = _DTYPES[dtype].itemsize * int(np.prod(shape, dtype=object))  # object: exact, no int64 overflow
        if offs[1] - offs[0] != expected:
            raise _bad(
                path,
                f"entry {name!r} spans {offs[1] - offs[0]} bytes but dtype {dtype} and shape {shape} need {expected}",
            )
        entries.append((offs[0], offs[1], name, dtype, tuple(shape)))

    # Sorted by offsets, every tensor must start exactly where the previous one ended: no overlap, no hole.
    entries.sort(key=lambda e: (e[0], e[1]))
    buffer_size = file_size - 8 - n
    position = 0
    for begin, end, name, _, _ in entries:
        if begin < position:
            raise _bad(
                path, f"entry {name!r} at bytes [{begin}, {end}) overlaps the previous tensor (ends at {position})"
            )
        if begin > position:
            raise _bad(path, f"hole in the data: bytes [{position}, {begin}) before entry {name!r} belong to no tensor")
        position = end
    if position != buffer_size:
        what = "runs past the end of the file" if position > buffer_size else "leaves trailing bytes unused"
        raise _bad(path, f"tensor data ends at byte {position} of a {buffer_size}-byte buffer: the data {what}")
    return metadata, entries, 8 + n


def _open(path):
    path = os.fspath(path)
    try:
        return path, open(path, "rb")
    except FileNotFoundError:
        raise FileNotFoundError(f"no such safetensors file: {path}") from None


def load_safetensors(path, return_metadata: bool = False):
    """Read a safetensors file into a dict of writable, native-endian, C-contiguous arrays.

    Dtypes are kept as stored, except BF16, which NumPy lacks: a bfloat16 is the top 16 bits of a float32, so
    shifting its bits left by 16 inside a uint32 and viewing that as float32 gives the exact value.
    With `return_metadata=True` returns `(tensors, metadata)`, metadata being the header's str -> str map or None.

    The header is validated completely before any tensor is allocated, so a corrupt or hostile header can never make
    us allocate more than the file's size; each tensor is then read straight into its own array (aligned, writable).
    """
    path, f = _open(path)
    with f:
        file_size = os.fstat(f.fileno()).st_size
        metadata, entries, start = _read_header(path, f, file_size)
        tensors = {}
        f.seek(start)  # entries are sorted and contiguous, so one sequential pass reads them all
        for begin, end, name, dtype, shape in entries:
            arr = np.empty(shape, dtype=_DTYPES[dtype].newbyteorder("="))
            if end > begin and f.readinto(arr.reshape(-1).view(np.uint8)) != end - begin:
                raise _bad(path, f"file ended while reading entry {name!r}")
            if sys.byteorder == "big" and arr.dtype.itemsize > 1:
                arr.byteswap(inplace=True)  # the bytes on disk are little-endian
            if dtype == "BF16":
                arr = (arr.astype(np.uint32) << 16).view(np.float32)
            tensors[name] = arr
    return (tensors, metadata) if return_metadata else tensors


def load_safetensors_metadata(path) -> dict | None:
    """The `__metadata__` map (str -> str) of a safetensors file, or None; reads only the header."""
    path, f = _open(path)
    with f:
        return _read_header(path, f, os.fstat(f.fileno()).st_size)[0]
