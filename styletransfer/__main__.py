"""`python -m styletransfer`: the engines' command line (imports no Django)."""

import sys

from .engines.cli import main

if __name__ == "__main__":
    sys.exit(main())
