"""The Hugging Face folder format, read and written in one place for every model.

A model folder, as `transformers`' `save_pretrained` writes it and the Hub serves it, is

    config.json                      the hyperparameters, with the field names of the library's config class
    model.safetensors                the weights, name -> array (see tinygrad_lite/serialization.py)
    model.safetensors.index.json     (big models only) {"weight_map": {name: shard file}} for several shards

Three things differ between a checkpoint and a model here, and this file handles them so each model only states its
own key mapping:

- names: a checkpoint may spell keys differently (GPT-2 on the Hub has no `transformer.` prefix) or carry buffers
  that are not weights (GPT-2's `attn.bias` causal mask);
- layout: PyTorch's nn.Linear stores its weight (out, in); our Linear stores (in, out) so that y = x @ W + b. The
  model marks which keys are transposed, and the transposition happens here, once, in both directions;
- dtype: checkpoints come in F32, F16 or BF16 (the reader widens BF16 to float32); models compute in float32.

Every error names the folder or file and the key, and lists all problems at once.
"""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path

import numpy as np

from tinygrad_lite.serialization import load_safetensors, save_safetensors

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"

# Names transformers writes in config.json's "dtype" (and "torch_dtype" before v4.56) for each NumPy dtype we save.
_TORCH_DTYPE_NAMES = {np.dtype(np.float32): "float32", np.dtype(np.float16): "float16", np.dtype(np.float64): "float64"}


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: a model folder or file that cannot be loaded into the model, or a training
    state that is missing, corrupt or from an incompatible run (training/checkpoint.py). The message names the file
    and the keys or settings; train.py prints it as one line."""


# --------------------------------------------------------------------------------------------- config.json


def read_config(folder) -> dict:
    """The parsed config.json of a model folder, with errors that say which path is wrong and how."""
    folder = Path(folder)
    if not folder.exists():
        raise FileNotFoundError(f"no such model folder: {folder}")
    if not folder.is_dir():
        raise CheckpointError(f"{folder} is a file; from_pretrained expects a folder holding {CONFIG_NAME} and "
                              f"{WEIGHTS_NAME}")
    path = folder / CONFIG_NAME
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: a Hugging Face model folder needs a {CONFIG_NAME} next to its "
                                f"weights")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(config).__name__}")
    return config


def write_config(folder, config: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(config, indent=2, sort_keys=True) + "\n"
    tmp = folder / f".{CONFIG_NAME}.{os.getpid()}.tmp"
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, folder / CONFIG_NAME)  # never leave a half-written config behind


def config_from_dict(cls, d: dict, source="config", model_type: str | None = None):
    """Build the dataclass `cls` from a config dict: known fields by name, the rest kept in `hf_extra` so that a
    loaded config is written back unchanged. Checks `model_type` when the dict has one."""
    found = d.get("model_type")
    if model_type is not None and found is not None and found != model_type:
        raise CheckpointError(f"{source}: model_type is {found!r}, but {cls.__name__} reads {model_type!r} configs")
    names = {f.name for f in dataclasses.fields(cls)} - {"hf_extra"}
    known = {k: v for k, v in d.items() if k in names}
    extra = {k: v for k, v in d.items() if k not in names}
    try:
        return cls(**known, hf_extra=extra)
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"{source}: {e}") from None


def config_to_dict(config) -> dict:
    """The dataclass's fields plus whatever unknown keys it was loaded with (known fields win)."""
    out = dict(config.hf_extra)
    out.update({f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.name != "hf_extra"})
    return out


# --------------------------------------------------------------------------------------------- weights


def read_weights(folder) -> tuple[dict, dict]:
    """All tensors of a folder: (name -> array, name -> the file it came from), one file or a sharded index."""
    folder = Path(folder)
    single, index = folder / WEIGHTS_NAME, folder / INDEX_NAME
    if single.is_file():
        tensors = load_safetensors(single)
        return tensors, dict.fromkeys(tensors, str(single))
    if index.is_file():
        try:
            weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        except (ValueError, KeyError, TypeError) as e:
            raise CheckpointError(f"{index}: not a valid safetensors index (needs a 'weight_map' object): {e}") \
                from None
        tensors, origin = {}, {}
        for shard in sorted(set(weight_map.values())):
            path = folder / shard
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found (listed as a shard in {index})")
            part = load_safetensors(path)
            tensors.update(part)
            origin.update(dict.fromkeys(part, str(path)))
        return tensors, origin
    pickled = [name for name in ("pytorch_model.bin", "model.bin") if (folder / name).is_file()]
    hint = ""
    if pickled:
        hint = (f" It has {pickled[0]}, a pickle file, which this project never reads (loading a pickle can run "
                "code); convert it with transformers: AutoModel.from_pretrained(folder).save_pretrained(folder).")
    raise FileNotFoundError(f"{folder} has no {WEIGHTS_NAME} (nor {INDEX_NAME}).{hint}")


def write_weights(folder, tensors: dict) -> None:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    # transformers refuses safetensors files whose metadata does not declare a known framework format.
    save_safetensors(folder / WEIGHTS_NAME, tensors, metadata={"format": "pt"})


def check_keys(expected: dict, tensors: dict, origin: dict, folder, model_name: str) -> None:
    """Raise one CheckpointError listing every missing key, unexpected key and shape mismatch.

    `expected` maps checkpoint key -> the shape the checkpoint must have (already in the checkpoint's layout);
    `origin` maps each found key to the file it came from.
    """
    missing = [k for k in expected if k not in tensors]
    unexpected = [k for k in tensors if k not in expected]
    wrong = [k for k in expected if k in tensors and tuple(tensors[k].shape) != tuple(expected[k])]
    not_float = [k for k in expected if k in tensors and not np.issubdtype(tensors[k].dtype, np.floating)]
    if not (missing or unexpected or wrong or not_float):
        return
    files = sorted({origin[k] for k in tensors}) or [str(folder)]
    lines = [f"cannot load {model_name} from {', '.join(files)}:"]
    if missing:
        lines.append(f"  missing keys ({len(missing)}): " + ", ".join(missing[:20])
                     + (" ..." if len(missing) > 20 else ""))
    if unexpected:
        lines.append(f"  unexpected keys ({len(unexpected)}): " + ", ".join(unexpected[:20])
                     + (" ..." if len(unexpected) > 20 else ""))
    for k in wrong:
        lines.append(f"  wrong shape for {k} in {origin[k]}: the file has {tuple(tensors[k].shape)}, "
                     f"the model (built from config.json) needs {tuple(expected[k])}")
    for k in not_float:
        lines.append(f"  {k} in {origin[k]} has dtype {tensors[k].dtype}; weights must be floating point")
    raise CheckpointError("\n".join(lines))


def as_dtype(dtype, compute: bool = False) -> np.dtype:
    """The np.dtype for `dtype` (np.float32, "float32", ...): float32 or float64 to compute in (float64 for
    gradient checks), and also float16 to save in. NumPy has no bfloat16, so BF16 is read only (as float32)."""
    dt = np.dtype(dtype)
    allowed = (np.float32, np.float64) if compute else tuple(_TORCH_DTYPE_NAMES)
    if dt not in allowed:
        raise ValueError(f"unsupported dtype {dtype!r}: models compute in float32 (or float64 for gradient checks) "
                         f"and save in float32, float16 or float64")
    return dt


# --------------------------------------------------------------------------------------------- the mixin


class PretrainedMixin:
    """from_pretrained / save_pretrained / to_dtype for a Module whose constructor is `cls(config, dtype=, init=)`.

    The model class provides:
      config_class              a dataclass with `from_hf(dict, source)` and `to_hf() -> dict`
      hf_parameters()           list of (checkpoint key, Parameter, transposed: bool), every parameter once
      hf_rename(key)            the checkpoint key as hf_parameters spells it, or None to skip the key (buffers)
    """

    config_class = None

    def hf_parameters(self) -> list:  # pragma: no cover - abstract
        raise NotImplementedError

    def bias_free_keys(self) -> dict:
        """Checkpoint keys (-> shape) that are written as zeros and must be zero when read; none by default."""
        return {}

    @classmethod
    def hf_rename(cls, key: str, config) -> str | None:
        return key

    @classmethod
    def from_pretrained(cls, folder, dtype=np.float32):
        """Build the model from config.json and fill it with the folder's weights (cast to `dtype`)."""
        source = Path(folder) / CONFIG_NAME
        config = cls.config_class.from_hf(read_config(folder), source=str(source))
        # init=False: every weight is about to be overwritten, so the model's random initialisation is skipped
        model = cls(config, dtype=as_dtype(dtype, compute=True), init=False)
        model.load_hf_weights(folder)
        return model.eval()  # a loaded model is for inference until someone calls .train()

    def load_hf_weights(self, folder) -> None:
        raw, raw_origin = read_weights(folder)
        tensors, origin, from_key = {}, {}, {}
        zero_keys = self.bias_free_keys()
        for key, arr in raw.items():
            name = self.hf_rename(key, self.config)
            if name is None:
                continue
            if name in zero_keys:  # a parameter this model leaves out: only a zero one means the same model
                if arr.shape != zero_keys[name] or np.any(arr):
                    raise CheckpointError(f"{raw_origin[key]}: {key!r} is not a zero array of shape "
                                          f"{zero_keys[name]}, but config.json says this model has no such weight")
                continue
            if name in tensors:
                raise CheckpointError(f"{raw_origin[key]}: keys {from_key[name]!r} and {key!r} are the same weight "
                                      f"{name!r}")
            tensors[name], origin[name], from_key[name] = arr, raw_origin[key], key
        params = self.hf_parameters()
        expected = {k: (p.shape[::-1] if t else p.shape) for k, p, t in params}
        check_keys(expected, tensors, origin, folder, type(self).__name__)
        for key, p, transposed in params:
            arr = tensors[key]
            np.copyto(p.data, arr.T if transposed else arr, casting="unsafe")  # one pass: layout and dtype

    def save_pretrained(self, folder, dtype=np.float32) -> None:
        """Write config.json and model.safetensors so that transformers' from_pretrained loads this model."""
        dt = as_dtype(dtype)
        tensors = {}
        for key, p, transposed in self.hf_parameters():
            arr = p.data.T if transposed else p.data
            tensors[key] = np.ascontiguousarray(arr, dtype=dt)
        for key, shape in self.bias_free_keys().items():
            tensors[key] = np.zeros(shape, dtype=dt)  # transformers' architecture has them; zeros change nothing
        config = self.config.to_hf()
        config["dtype"] = config["torch_dtype"] = _TORCH_DTYPE_NAMES[dt]
        write_weights(folder, tensors)
        write_config(folder, config)

    def to_dtype(self, dtype):
        """Convert every parameter in place (tied parameters stay one object), e.g. float64 for a gradcheck."""
        dt = as_dtype(dtype, compute=True)
        for p in self.parameters():
            if p.data.dtype != dt:
                p.data = p.data.astype(dt)
                p.grad = None
        self.dtype = dt
        return self

