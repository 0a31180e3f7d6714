"""`python -m tokenizers ...`: see cli.py."""

import sys

from .cli import main

sys.exit(main())
