"""`python -m tokenizers ...`: the command line (tools/cli.py), once the package is known to be this project's."""

import sys

from .tools.identity import exit_unless_ours

exit_unless_ours()  # before anything that imports from the package's __init__, which may be Hugging Face's

from .tools.cli import main  # noqa: E402

sys.exit(main())
