"""Options for train.py: one dataclass of defaults, named presets that override them, and a strict parser.

Names follow nanoGPT's where they exist (n_layer, block_size, learning_rate, ...), so a nanoGPT user can carry a
command line over. `--key value` and `--key=value` both work; an unknown option or a bad value is a one-line error
(raised as OptionError, which the command line prints without a traceback).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields


class OptionError(ValueError):
    """A user mistake on the command line or in the options (printed as one line, exit status 2)."""


@dataclass
class TrainOptions:
    preset: str = "addition"
    # data
    data: str = ""  # a text file (shakespeare_char, text_bpe, moe on text); empty = the preset's default
    digits: int = 2  # operand digits for addition; sequence length for reverse
    vocab_size: int = 512  # BPE vocabulary for text_bpe
    task: str = "addition"  # moe preset: "addition" or "text"
    # model
    n_layer: int = 2
    n_head: int = 4
    n_kv_head: int = 0  # MoE attention key/value heads; 0 = n_head
    n_embd: int = 64
    block_size: int = 16
    dropout: float = 0.0
    bias: bool = False  # biases in the GPT's Linear and LayerNorm layers (nanoGPT's default: none)
    activation: str = "gelu"  # the GPT-2 MLP's GELU: exact "gelu" (nanoGPT's nn.GELU) or GPT-2's tanh "gelu_new"
    n_experts: int = 4
    top_k: int = 2
    # optimisation
    batch_size: int = 64
    learning_rate: float = 1e-3
    max_iters: int = 2000
    lr_decay_iters: int = 2000
    min_lr: float = 1e-4
    warmup_iters: int = 100
    beta1: float = 0.9
    beta2: float = 0.99
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    gradient_accumulation_steps: int = 1
    ranks: int = 0  # MPI ranks (training/ranks.py); 0 = as started: mpiexec's count, else one process
    zero: int = 0  # ZeRO stage: 0 (plain data parallelism) or 1 (AdamW state sharded over the ranks)
    fused: bool = True  # fused Functions (fast), or every nn op composed from primitives (tinygrad_lite.set_fused)
    exercises: str = ""  # "all" or names: the learner's code from exercises/ in place of the library's
    allow_failing: bool = False  # with --exercises: train on exercises that fail their grader too
    # evaluation, logging, checkpoints
    eval_interval: int = 250
    eval_iters: int = 20
    log_interval: int = 50
    out_dir: str = "out"
    seed: int = 1337
    resume: bool = False


HELP = {
    "preset": "addition | shakespeare_char | text_bpe | reverse | moe",
    "data": "text file for the text presets (shakespeare_char fetches tinyshakespeare when empty)",
    "digits": "operand digits (addition) or sequence length (reverse)",
    "vocab_size": "BPE vocabulary size (text_bpe)",
    "task": "what the moe preset learns: addition or text",
    "n_kv_head": "key/value heads of grouped-query attention (moe); 0 means n_head",
    "bias": "biases in the GPT-2 Linear/LayerNorm layers (nanoGPT's default false; saved as zeros for transformers)",
    "activation": "GELU of the GPT-2 MLP: gelu (exact, nanoGPT's nn.GELU) or gelu_new (GPT-2's tanh form)",
    "n_experts": "experts per MoE layer",
    "top_k": "experts per token (MoE routing)",
    "ranks": "data parallelism over N MPI ranks (starts mpiexec; needs the extra: pip install -e \".[mpi]\"); "
             "0 = one process, or as many ranks as mpiexec started",
    "zero": "1: ZeRO stage 1, AdamW's moments sharded over the ranks (0: each rank holds them all)",
    "fused": "true: nn ops run as fused Functions (fast); false: composed from primitive ops, the reference path "
             "a debugger steps through (tinygrad_lite.set_fused(False))",
    "exercises": "all, or a comma-separated list of exercise names: train with your code from exercises/ in place "
                 "of the library's, each graded first (python -m exercises list); runs the reference path unless "
                 "--fused true is given, so that your backward passes of primitive ops run too",
    "allow_failing": "with --exercises: train with exercises that fail their grader too, to see what a wrong "
                     "gradient does to the loss",
    "resume": "continue from <out_dir>/training_state.* (true/false)",
    "block_size": "context length of the text presets (addition and reverse derive theirs from --digits)",
}

PRESETS: dict[str, dict] = {
    # minGPT's adder in spirit: a small GPT learns a + b from generated problems, answer digits reversed.
    "addition": dict(n_layer=2, n_head=4, n_embd=64, block_size=6, batch_size=64, learning_rate=3e-3,
                     max_iters=1500, lr_decay_iters=1500, min_lr=3e-4, warmup_iters=100, weight_decay=0.1,
                     eval_interval=250, eval_iters=4, log_interval=100, out_dir="out-addition"),
    # nanoGPT's CPU command for shakespeare_char (its README): same values, same names.
    "shakespeare_char": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, learning_rate=1e-3,
                             min_lr=1e-4, beta2=0.99, warmup_iters=100, max_iters=2000, lr_decay_iters=2000,
                             dropout=0.0, weight_decay=0.1, grad_clip=1.0, eval_interval=250, eval_iters=20,
                             log_interval=10, out_dir="out-shakespeare-char"),
    "text_bpe": dict(n_layer=4, n_head=4, n_embd=128, block_size=64, batch_size=12, learning_rate=1e-3,
                     min_lr=1e-4, warmup_iters=100, max_iters=2000, lr_decay_iters=2000, vocab_size=512,
                     eval_interval=250, eval_iters=20, log_interval=10, out_dir="out-text-bpe"),
    "reverse": dict(n_layer=2, n_head=4, n_embd=64, digits=8, batch_size=64, learning_rate=1e-3, max_iters=2000,
                    lr_decay_iters=2000, min_lr=1e-4, warmup_iters=100, weight_decay=0.0, eval_interval=250,
                    eval_iters=4, log_interval=100, out_dir="out-reverse"),
    "moe": dict(n_layer=2, n_head=4, n_kv_head=2, n_embd=64, n_experts=4, top_k=2, block_size=64, batch_size=64,
                learning_rate=3e-3, max_iters=3000, lr_decay_iters=3000, min_lr=3e-4, warmup_iters=100,
                eval_interval=250, eval_iters=4, log_interval=100, out_dir="out-moe"),
}


def _convert(name: str, text: str, kind):
    if kind is bool:
        low = text.lower()
        if low in ("1", "true", "yes", "on"):
            return True
        if low in ("0", "false", "no", "off"):
            return False
        raise OptionError(f"--{name}: expected true or false, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise OptionError(f"--{name}: expected {kind.__name__}, got {text!r}") from None


def _types() -> dict:
    hints = {"int": int, "float": float, "str": str, "bool": bool}
    return {f.name: hints[f.type] if isinstance(f.type, str) else f.type for f in fields(TrainOptions)}


def parse_args(argv: list[str]) -> TrainOptions:
    """Parse `--key value` / `--key=value` pairs: the preset's values first, then the explicit overrides."""
    types = _types()
    given: dict[str, object] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--") or arg == "--":
            raise OptionError(f"unexpected argument {arg!r} (options look like --key value)")
        key, eq, value = arg[2:].partition("=")
        key = key.replace("-", "_")
        if key not in types:
            raise OptionError(f"unknown option --{key} (see --help)")
        if not eq:
            if types[key] is bool and (i + 1 == len(argv) or argv[i + 1].startswith("--")):
                value = "true"  # a bare flag: --resume
            else:
                if i + 1 == len(argv):
                    raise OptionError(f"--{key} needs a value")
                i += 1
                value = argv[i]
        given[key] = _convert(key, value, types[key])
        i += 1
    preset = given.get("preset", TrainOptions.preset)
    if preset not in PRESETS:
        raise OptionError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    opts = dataclasses.replace(TrainOptions(), **PRESETS[preset])
    opts = dataclasses.replace(opts, **given)
    if opts.exercises and "fused" not in given:  # the learner's Matmul, Softmax, ... run on the reference path only
        opts = dataclasses.replace(opts, fused=False)
    validate(opts)
    return opts


def validate(o: TrainOptions) -> None:
    positive = ["n_layer", "n_head", "n_embd", "block_size", "batch_size", "max_iters", "eval_interval",
                "eval_iters", "log_interval", "gradient_accumulation_steps", "digits", "n_experts", "top_k"]
    for name in positive:
        if getattr(o, name) < 1:
            raise OptionError(f"--{name} must be at least 1, got {getattr(o, name)}")
    if o.n_embd % o.n_head:
        raise OptionError(f"n_embd ({o.n_embd}) must be divisible by n_head ({o.n_head})")
    kv = o.n_kv_head or o.n_head
    if kv < 1 or o.n_head % kv:
        raise OptionError(f"n_head ({o.n_head}) must be divisible by n_kv_head ({kv})")
    if o.top_k > o.n_experts:
        raise OptionError(f"top_k ({o.top_k}) cannot exceed n_experts ({o.n_experts})")
    if not 0.0 <= o.dropout < 1.0:
        raise OptionError(f"dropout must be in [0, 1), got {o.dropout}")
    if o.learning_rate <= 0 or o.min_lr < 0 or o.min_lr > o.learning_rate:
        raise OptionError(f"need 0 <= min_lr <= learning_rate and learning_rate > 0, got {o.min_lr}, {o.learning_rate}")
    if not (0.0 <= o.beta1 < 1.0 and 0.0 <= o.beta2 < 1.0):
        raise OptionError(f"beta1 and beta2 must be in [0, 1), got {o.beta1}, {o.beta2}")
    if o.grad_clip < 0 or o.weight_decay < 0 or o.warmup_iters < 0:
        raise OptionError("grad_clip, weight_decay and warmup_iters must be >= 0")
    if o.warmup_iters > o.lr_decay_iters:
        raise OptionError(f"warmup_iters ({o.warmup_iters}) must not exceed lr_decay_iters ({o.lr_decay_iters}); "
                          "set both, e.g. --warmup_iters 10 --lr_decay_iters 100")
    if o.ranks < 0:
        raise OptionError(f"--ranks must be at least 0 (0: as mpiexec started the run), got {o.ranks}")
    if o.zero not in (0, 1):
        raise OptionError(f"--zero must be 0 or 1, got {o.zero} (stages 2 and 3: see docs/distributed.md)")
    if o.activation not in ("gelu", "gelu_new"):
        raise OptionError(f"--activation must be gelu or gelu_new, got {o.activation!r}")
    if o.task not in ("addition", "text"):
        raise OptionError(f"--task must be addition or text, got {o.task!r}")
    if o.vocab_size < 257:
        raise OptionError(f"--vocab_size must be above 256 (the byte alphabet), got {o.vocab_size}")
    if o.allow_failing and not o.exercises:
        raise OptionError("--allow_failing needs --exercises (all, or exercise names)")
    if o.exercises:
        from exercises.grading.registry import UnknownExercise, select

        try:
            select(o.exercises)
        except UnknownExercise as e:
            raise OptionError(f"--exercises: {e}") from None


def help_text(preset: str = "addition") -> str:
    """Every option with its default under `preset` (the defaults shown are the ones that run)."""
    if preset not in PRESETS:
        raise OptionError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    values = dataclasses.asdict(dataclasses.replace(TrainOptions(), preset=preset, **PRESETS[preset]))
    lines = [
        "usage: python train.py [--preset NAME] [--key value ...]",
        "       python train.py sample --out_dir DIR [--prompt TEXT] [--max_new_tokens N] [--temperature T]",
        "                              [--top_k K] [--top_p P] [--seed S]",
        "",
        "Trains a GPT on the CPU. Every option can be set with --key value or --key=value; a preset sets several",
        f"at once. Defaults under --preset {preset} (see another preset's with --preset NAME --help):",
        "",
    ]
    for name, value in values.items():
        lines.append(f"  --{name:28s} {value!s:>14}  {HELP.get(name, '')}".rstrip())
    lines += ["", "presets: " + ", ".join(PRESETS)]
    return "\n".join(lines)
