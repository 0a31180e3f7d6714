"""python -m exercises list|check|hint|reset|handout (see exercises/__init__.py)."""

from __future__ import annotations

import sys


def main() -> int:
    import tokenizers  # the project's own, unless Hugging Face's package of the same name was installed over it
    if getattr(tokenizers, "__project__", None) != "transformers-from-scratch":
        print("exercises: error: the `tokenizers` package that Python imports is not this project's (most likely "
              "Hugging Face's, installed over it): give transformers-from-scratch a virtual environment of its own, "
              "and run code that needs transformers in another one, started outside the repository", file=sys.stderr)
        return 2
    from exercises.grading.cli import main as cli_main

    return cli_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
