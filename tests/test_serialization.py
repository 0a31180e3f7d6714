"""safetensors reading and writing: round trips, the exact byte layout, corrupt files, atomic writes.

Corrupt files are built byte by byte here, from the format description
(u64 little-endian header length, JSON header, data buffer), not with the code under test.
"""

import json
import os
import re
import struct
import tempfile

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tinygrad_lite import serialization
from tinygrad_lite.serialization import load_safetensors, load_safetensors_metadata, save_safetensors

ALL_DTYPES = [np.float64, np.float32, np.float16, np.int64, np.int32, np.int16, np.int8, np.uint8, np.bool_]


def _sample(dtype, shape=(2, 3)):
    n = int(np.prod(shape))
    if dtype == np.bool_:
        return (np.arange(n) % 3 == 0).reshape(shape)
    return (np.arange(n) * 7 - 5).astype(dtype).reshape(shape)


def _same(a, b):
    """Same dtype (up to byte order), shape and values, bit for bit (so NaN payloads and -0.0 count)."""
    native = np.dtype(a.dtype).newbyteorder("=")
    return b.dtype == native and b.shape == a.shape and np.ascontiguousarray(a, native).tobytes() == b.tobytes()


def _raw_file(path, header, data=b"", n=None):
    """Write a safetensors-shaped file by hand. `header` is a dict (dumped as JSON) or raw bytes."""
    head = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head) if n is None else n) + head + data)
    return path


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", ALL_DTYPES, ids=lambda d: np.dtype(d).name)
def test_round_trip_every_dtype(tmp_path, dtype):
    arr = _sample(dtype)
    save_safetensors(tmp_path / "x.safetensors", {"w": arr})
    out = load_safetensors(tmp_path / "x.safetensors")
    assert list(out) == ["w"] and _same(arr, out["w"])


def test_round_trip_many_tensors_zero_d_and_empty(tmp_path):
    tensors = {
        "scalar": np.array(3.5, dtype=np.float32),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "empty_i8": np.zeros((4, 0), dtype=np.int8),
        "w": _sample(np.float64, (3, 4)),
        "b": _sample(np.int16, (5,)),
    }
    save_safetensors(str(tmp_path / "m.safetensors"), tensors)
    out = load_safetensors(str(tmp_path / "m.safetensors"))
    assert sorted(out) == sorted(tensors)
    for k, v in tensors.items():
        assert _same(v, out[k]), k
    assert out["scalar"].shape == () and out["empty"].shape == (0, 3)


def test_empty_dict_round_trip(tmp_path):
    save_safetensors(tmp_path / "e.safetensors", {})
    raw = (tmp_path / "e.safetensors").read_bytes()
    assert raw == struct.pack("<Q", 8) + b"{}      "  # padded to 8 bytes, no data
    assert load_safetensors(tmp_path / "e.safetensors") == {}


def test_metadata_round_trip(tmp_path):
    p = tmp_path / "m.safetensors"
    meta = {"format": "np", "step": "100", "ünïcode": 'väl\n"ue"'}
    save_safetensors(p, {"w": _sample(np.float32)}, metadata=meta)
    tensors, got = load_safetensors(p, return_metadata=True)
    assert got == meta and load_safetensors_metadata(p) == meta
    assert _same(_sample(np.float32), tensors["w"])
    save_safetensors(p, {"w": _sample(np.float32)})
    assert load_safetensors(p, return_metadata=True)[1] is None


def test_non_contiguous_and_big_endian_inputs(tmp_path):
    base = _sample(np.float32, (4, 6))
    tensors = {
        "strided": base[:, ::2],
        "transposed": base.T,
        "big_f": _sample(np.float64, (3, 2)).astype(">f8"),
        "big_i": _sample(np.int32, (5,)).astype(">i4"),
        "big_strided": base.astype(">f4")[::2, 1::3],
    }
    p = tmp_path / "x.safetensors"
    save_safetensors(p, tensors)
    out = load_safetensors(p)
    for k, v in tensors.items():
        assert _same(v, out[k]), k
    # Stored little-endian: the bytes of the big-endian F64 tensor in the file are the little-endian ones.
    assert np.ascontiguousarray(tensors["big_f"], "<f8").tobytes() in p.read_bytes()


def test_loaded_arrays_are_writable_native_contiguous_aligned(tmp_path):
    tensors = {"a": _sample(np.int8, (3,)), "b": _sample(np.float64, (2, 2)), "c": _sample(np.float16, (3,))}
    save_safetensors(tmp_path / "x.safetensors", tensors)
    for arr in load_safetensors(tmp_path / "x.safetensors").values():
        assert arr.flags.writeable and arr.flags.c_contiguous and arr.flags.aligned and arr.flags.owndata
        assert arr.dtype.isnative
        arr[...] = 0  # writable for real


def test_layout_matches_the_spec(tmp_path):
    """Header order (descending dtype alignment, then name), compact JSON, 8-byte padding, contiguous data."""
    p = tmp_path / "x.safetensors"
    f32 = np.array([1.0, 2.0], dtype=np.float32)
    f64 = np.array([3.0], dtype=np.float64)
    u8 = np.array([7, 8, 9], dtype=np.uint8)
    save_safetensors(p, {"z_u8": u8, "b_f32": f32, "a_f32": f32, "f64": f64}, metadata={"k": "v"})
    raw = p.read_bytes()
    n = struct.unpack("<Q", raw[:8])[0]
    assert n % 8 == 0
    header = raw[8 : 8 + n]
    expected = (
        '{"__metadata__":{"k":"v"},'
        '"f64":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},'
        '"a_f32":{"dtype":"F32","shape":[2],"data_offsets":[8,16]},'
        '"b_f32":{"dtype":"F32","shape":[2],"data_offsets":[16,24]},'
        '"z_u8":{"dtype":"U8","shape":[3],"data_offsets":[24,27]}}'
    )
    assert header.rstrip(b" ") == expected.encode() and set(header[len(expected) :]) <= {ord(" ")}
    assert raw[8 + n :] == f64.astype("<f8").tobytes() + 2 * f32.astype("<f4").tobytes() + u8.tobytes()


def test_accepts_tensor_like_objects(tmp_path):
    class HasData:  # stands in for Tensor: the array lives in .data
        def __init__(self, data):
            self.data = data

    save_safetensors(tmp_path / "x.safetensors", {"w": HasData(_sample(np.float32)), "s": np.float64(2.0)})
    out = load_safetensors(tmp_path / "x.safetensors")
    assert _same(_sample(np.float32), out["w"]) and _same(np.array(2.0), out["s"])


_dtypes = st.sampled_from(
    [np.dtype(d) for d in ALL_DTYPES] + [np.dtype(">f4"), np.dtype(">i8"), np.dtype(">f2"), np.dtype("<u2")]
)
_arrays = _dtypes.flatmap(lambda dt: hnp.arrays(dt, hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)))


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(st.text(min_size=1, max_size=8).filter(lambda s: s != "__metadata__"), _arrays, max_size=4))
def test_round_trip_property(tensors):
    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, "h.safetensors")
        save_safetensors(p, tensors)
        out = load_safetensors(p)
    assert sorted(out) == sorted(tensors)
    for k, v in tensors.items():
        assert _same(v, out[k]), k


# ---------------------------------------------------------------- bf16


def test_bf16_is_read_as_float32(tmp_path):
    values = np.array([1.0, -2.5, 0.0, -0.0, np.inf, 3.140625, 1e-40], dtype=np.float32)
    # bfloat16 = the top half of a float32's bits; these values fit exactly except the subnormal, which truncates.
    bits = (values.view(np.uint32) >> 16).astype("<u2")
    header = {"w": {"dtype": "BF16", "shape": [7], "data_offsets": [0, 14]}}
    p = _raw_file(tmp_path / "b.safetensors", header, bits.tobytes())
    out = load_safetensors(p)["w"]
    assert out.dtype == np.float32 and out.flags.writeable
    expected = (bits.astype(np.uint32) << 16).view(np.float32)
    assert out.tobytes() == expected.tobytes()
    assert np.array_equal(out[:6], values[:6])


# ---------------------------------------------------------------- writer errors and atomicity


def test_unsupported_dtype_names_key_and_dtype(tmp_path):
    for bad in [np.zeros(2, np.complex64), np.array(["a"]), np.zeros(1, object), np.zeros(1, "datetime64[s]")]:
        with pytest.raises(ValueError, match=rf"'bad'.*{re.escape(str(bad.dtype))}"):
            save_safetensors(tmp_path / "x.safetensors", {"good": _sample(np.float32), "bad": bad})


@pytest.mark.parametrize("meta", [{"a": 1}, {"a": None}, {1: "a"}, ["a"]])
def test_non_string_metadata_refused(tmp_path, meta):
    with pytest.raises(ValueError, match="metadata"):
        save_safetensors(tmp_path / "x.safetensors", {"w": _sample(np.float32)}, metadata=meta)
    assert os.listdir(tmp_path) == []


def test_bad_names_refused(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        save_safetensors(tmp_path / "x.safetensors", {"__metadata__": _sample(np.float32)})
    with pytest.raises(ValueError, match="str"):
        save_safetensors(tmp_path / "x.safetensors", {3: _sample(np.float32)})
    assert os.listdir(tmp_path) == []


def test_failed_save_leaves_no_file_and_keeps_the_old_one(tmp_path):
    p = tmp_path / "ckpt.safetensors"
    with pytest.raises(ValueError):
        save_safetensors(p, {"a": _sample(np.float32), "b": np.zeros(2, np.complex128)})
    assert os.listdir(tmp_path) == []

    save_safetensors(p, {"a": _sample(np.float32)})
    before = p.read_bytes()
    with pytest.raises(ValueError):
        save_safetensors(p, {"a": _sample(np.float64), "b": np.zeros(2, np.complex128)})
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_io_error_mid_write_leaves_old_file_intact(tmp_path, monkeypatch):
    p = tmp_path / "ckpt.safetensors"
    save_safetensors(p, {"a": _sample(np.float32)})
    before = p.read_bytes()

    real, calls = serialization._tensor_bytes, []

    def failing(arr):  # the first tensor's bytes are written, then the "disk" fails
        calls.append(1)
        if len(calls) == 2:
            raise OSError("disk full (simulated)")
        return real(arr)

    monkeypatch.setattr(serialization, "_tensor_bytes", failing)
    with pytest.raises(OSError, match="simulated"):
        save_safetensors(p, {"a": _sample(np.float64), "b": _sample(np.float32)})
    assert len(calls) == 2
    assert p.read_bytes() == before and os.listdir(tmp_path) == ["ckpt.safetensors"]


def test_save_overwrites_existing_file(tmp_path):
    p = tmp_path / "x.safetensors"
    save_safetensors(p, {"a": _sample(np.float32)})
    save_safetensors(p, {"b": _sample(np.int64)})
    assert list(load_safetensors(p)) == ["b"] and os.listdir(tmp_path) == ["x.safetensors"]


# ---------------------------------------------------------------- malformed files


def _entry(dtype="F32", shape=(2,), offsets=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offsets)}


MALFORMED = {
    "header_not_utf8": (b'{"\xff\xfe": 1}', b"", "UTF-8"),
    "header_not_json": (b"{not json", b"", "JSON"),
    "header_truncated_json": (b'{"w": {"dtype": "F32"', b"", "JSON"),
    "header_not_object": (b"[1, 2]", b"", "object"),
    "duplicate_key": (b'{"w": {}, "w": {}}', b"", "duplicate"),
    "entry_not_object": ({"w": [1, 2]}, b"", "'w'"),
    "missing_dtype": ({"w": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8), "missing dtype"),
    "missing_shape": ({"w": {"dtype": "F32", "data_offsets": [0, 8]}}, bytes(8), "missing shape"),
    "missing_offsets": ({"w": {"dtype": "F32", "shape": [2]}}, bytes(8), "missing data_offsets"),
    "unknown_dtype": ({"w": _entry(dtype="Q8")}, bytes(8), "dtype 'Q8'"),
    "negative_shape": ({"w": _entry(shape=(-2,))}, bytes(8), "shape"),
    "float_shape": ({"w": _entry(shape=(2.0,))}, bytes(8), "shape"),
    "bool_shape": ({"w": _entry(shape=(True, 2))}, bytes(8), "shape"),
    "shape_not_list": ({"w": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}, bytes(8), "shape"),
    "offsets_reversed": ({"w": _entry(offsets=(8, 0))}, bytes(8), "data_offsets"),
    "offsets_negative": ({"w": _entry(offsets=(-8, 0))}, bytes(8), "data_offsets"),
    "offsets_wrong_length": ({"w": _entry(offsets=(0, 4, 8))}, bytes(8), "data_offsets"),
    "offsets_past_end": ({"w": _entry(offsets=(0, 8))}, bytes(4), "past the end"),
    "trailing_bytes": ({"w": _entry(offsets=(0, 8))}, bytes(12), "trailing"),
    "overlap": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(4, 12))}, bytes(12), "overlaps"),
    "hole": ({"a": _entry(offsets=(0, 8)), "b": _entry(offsets=(12, 20))}, bytes(20), "hole"),
    "hole_at_start": ({"a": _entry(offsets=(4, 12))}, bytes(12), "hole"),
    "size_mismatch": ({"w": _entry(shape=(3,), offsets=(0, 8))}, bytes(8), "need 12"),
    "huge_shape_small_data": ({"w": _entry(shape=(2**40, 2**20), offsets=(0, 8))}, bytes(8), "need"),
    "metadata_not_str": ({"__metadata__": {"a": 1}}, b"", "__metadata__"),
    "metadata_not_object": ({"__metadata__": "text"}, b"", "__metadata__"),
}


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_header(tmp_path, case):
    header, data, message = MALFORMED[case]
    p = _raw_file(tmp_path / f"{case}.safetensors", header, data)
    with pytest.raises(ValueError, match=message) as info:
        load_safetensors(p)
    assert str(p) in str(info.value)  # the message names the file


def test_file_shorter_than_8_bytes(tmp_path):
    p = tmp_path / "short.safetensors"
    for content in (b"", b"\x08\x00\x00"):
        p.write_bytes(content)
        with pytest.raises(ValueError, match=r"short.safetensors.*shorter than"):
            load_safetensors(p)


def test_header_length_beyond_file(tmp_path):
    p = _raw_file(tmp_path / "x.safetensors", b"{}      ", n=1000)
    with pytest.raises(ValueError, match=r"x.safetensors.*header length 1000 runs past the end"):
        load_safetensors(p)


def test_header_length_past_limit(tmp_path):
    p = _raw_file(tmp_path / "x.safetensors", b"{}      ", n=100_000_001)
    with pytest.raises(ValueError, match="exceeds"):
        load_safetensors(p)
    p = _raw_file(tmp_path / "y.safetensors", b"{}      ", n=2**64 - 1)
    with pytest.raises(ValueError, match="exceeds"):
        load_safetensors_metadata(p)


def test_header_with_padding_and_any_entry_order_loads(tmp_path):
    # Offsets, not header order, decide the layout; trailing spaces in the header are allowed JSON whitespace.
    header = {"b": _entry(offsets=(8, 16)), "a": _entry(offsets=(0, 8))}
    data = np.array([1, 2], "<f4").tobytes() + np.array([3, 4], "<f4").tobytes()
    p = _raw_file(tmp_path / "x.safetensors", json.dumps(header).encode() + b"   ", data)
    out = load_safetensors(p)
    assert out["a"].tolist() == [1, 2] and out["b"].tolist() == [3, 4]


def test_missing_file(tmp_path):
    p = tmp_path / "nope.safetensors"
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_safetensors(p)
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_safetensors_metadata(p)


# ---------------------------------------------------------------- reference: the safetensors package


def _mixed():
    return {
        "wte": _sample(np.float32, (4, 3)),
        "ln.bias": _sample(np.float64, (3,)),
        "scalar": np.array(1.5, dtype=np.float16),
        "ids": _sample(np.int64, (5,)),
        "i32": _sample(np.int32, (2, 2)),
        "i16": _sample(np.int16, (3,)),
        "i8": _sample(np.int8, (3,)),
        "u8": _sample(np.uint8, (2,)),
        "mask": _sample(np.bool_, (2, 3)),
        "empty": np.zeros((0, 3), np.float32),
    }


@pytest.mark.ref
def test_ref_safetensors_loads_our_files(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    from safetensors import safe_open

    p = tmp_path / "ours.safetensors"
    save_safetensors(p, _mixed(), metadata={"a": "1", "format": "np"})
    theirs = st_numpy.load_file(str(p))
    assert sorted(theirs) == sorted(_mixed())
    for k, v in _mixed().items():
        assert _same(v, np.ascontiguousarray(theirs[k]).reshape(v.shape)), k
    with safe_open(str(p), framework="np") as f:
        assert f.metadata() == {"a": "1", "format": "np"}


@pytest.mark.ref
def test_ref_we_load_safetensors_files_and_bytes_match(tmp_path):
    st_numpy = pytest.importorskip("safetensors.numpy")
    theirs, ours = tmp_path / "theirs.safetensors", tmp_path / "ours.safetensors"
    # One metadata key: the package writes several in hash order, which changes between runs.
    st_numpy.save_file(_mixed(), str(theirs), metadata={"format": "np"})
    tensors, meta = load_safetensors(theirs, return_metadata=True)
    assert meta == {"format": "np"}
    for k, v in _mixed().items():
        assert _same(v, tensors[k]), k
    save_safetensors(ours, _mixed(), metadata={"format": "np"})
    assert ours.read_bytes() == theirs.read_bytes()
    st_numpy.save_file({}, str(theirs))
    save_safetensors(ours, {})
    assert ours.read_bytes() == theirs.read_bytes()


@pytest.mark.ref
def test_ref_bf16_from_safetensors_torch(tmp_path):
    torch = pytest.importorskip("torch")
    st_torch = pytest.importorskip("safetensors.torch")
    g = torch.Generator().manual_seed(0)
    w = (torch.randn(5, 7, generator=g) * 100).to(torch.bfloat16)
    w[0, :3] = torch.tensor([float("inf"), float("-inf"), -0.0])
    p = tmp_path / "bf16.safetensors"
    st_torch.save_file({"w": w, "f": torch.ones(2)}, str(p))
    out = load_safetensors(p)
    expected = w.float().numpy()
    assert out["w"].dtype == np.float32 and out["w"].shape == (5, 7)
    assert out["w"].tobytes() == expected.tobytes()
    assert _same(np.ones(2, np.float32), out["f"])
