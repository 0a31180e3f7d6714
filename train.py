"""Train a GPT on the CPU: the project's main command (a thin layer over training/).

    python train.py                                   # a GPT learns 2-digit addition, no data file needed
    python train.py --preset shakespeare_char         # nanoGPT's CPU settings on tinyshakespeare
    python train.py --preset addition --digits 3 --max_iters=5000
    python train.py sample --out_dir out-shakespeare-char --prompt "ROMEO:"
    python train.py --help

A user mistake (unknown option, bad value, missing file, bad checkpoint) prints one line and exits with status 2.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    import tokenizers  # the project's own, unless Hugging Face's package of the same name was installed over it
    if getattr(tokenizers, "__project__", None) != "transformers-from-scratch":
        print("train.py: error: the `tokenizers` package that Python imports is not this project's (most likely "
              "Hugging Face's, installed over it): give transformers-from-scratch a virtual environment of its own, "
              "and run code that needs transformers in another one, started outside the repository", file=sys.stderr)
        return 2
    from models import CheckpointError
    from tinygrad_lite.distributed.comm import launched
    from training.options import OptionError, help_text, parse_args

    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if argv and argv[0] == "download":  # data files for the optional tests and benchmarks
            from training.data_files import download_main

            return download_main(argv[1:])
        if argv and argv[0] == "sample":
            from training.sample import sample_main

            return sample_main(argv[1:])
        if "-h" in argv or "--help" in argv:
            rest = [a for a in argv if a not in ("-h", "--help")]
            preset = parse_args(rest).preset if rest else "addition"
            print(help_text(preset))
            return 0
        opts = parse_args(argv)
        if opts.ranks > 1 and launched()[1] <= 1:  # on one machine: train.py starts mpiexec, so a user need not know it
            from training.ranks import relaunch

            return relaunch(argv, opts.ranks)
    except (OptionError, CheckpointError) as e:
        if launched()[0] == 0:  # under mpiexec every rank finds the same mistake: one of them says it
            print(f"train.py: error: {e}", file=sys.stderr)
        return 2
    return run(opts)


def run(opts) -> int:
    """Train as `opts` say, on this process's rank when mpiexec started several (training/ranks.py)."""
    from exercises.grading.plug import ExerciseNotReady, exercises_in_place
    from models import CheckpointError
    from tinygrad_lite import fast, set_fused
    from tinygrad_lite.distributed.comm import launched
    from training.loop import train
    from training.options import OptionError
    from training.presets import build_task
    from training.ranks import SetupFailed, World

    world = World()
    try:
        world = World.start(opts)
        # Both restored on return, for a caller that runs main() in its own process; exercises_in_place grades the
        # learner's exercises and plugs them in (python train.py --exercises all).
        with set_fused(opts.fused), exercises_in_place(opts.exercises, opts.allow_failing, world.log):
            speed = fast.enable()  # the application turns the speed backend on; importing the library does not
            world.log("speed backend: " + "; ".join([*speed, world.describe()])
                      + ("" if opts.fused else "; reference path (set_fused(False))"))
            task = build_task(opts, log=world.log)
            summary = train(task, opts, log=world.log, world=world)
            examples = task.examples() if not summary["interrupted"] and world.main else []
        if not summary["interrupted"]:
            if examples:
                world.log("held-out problems and the model's answers:")
                for line in examples:
                    world.log("  " + line)
            world.log(f"done in {summary['seconds']:.1f} s; best model in {opts.out_dir}/")
        return 130 if summary["interrupted"] else 0
    except SetupFailed:  # another rank found a mistake before training began, and said it
        return 2
    except (OptionError, CheckpointError, ExerciseNotReady) as e:
        if world.comm is None:  # one process, or every rank of mpiexec's before MPI started: rank 0 says it
            if launched()[0] == 0:
                print(f"train.py: error: {e}", file=sys.stderr)
            return 2
        if world.agreed:  # found by one rank in the middle of training
            world.fail(e)
        if world.rank == world.agree(False)[0]:  # the first rank that found it says it, once
            print(f"train.py: error: {e}" if world.main else f"train.py: error on rank {world.rank}: {e}",
                  file=sys.stderr)
        return 2
    except BaseException as e:
        if world.comm is None:
            raise
        world.fail(e)  # ends every rank of the job
        raise


if __name__ == "__main__":
    sys.exit(main())
