"""`python -m minimind ...` runs the `minimind` command (see minimind/cli.py)."""
import sys

from minimind.cli import main

if __name__ == "__main__":
    sys.exit(main())
