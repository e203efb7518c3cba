"""`python -m graphc ...`: the `graphc` command.

Stage: surface. Imports `cli` only.
"""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
