"""`python -m dispatcher` runs the command line."""

import sys

from dispatcher.cli import main

if __name__ == "__main__":  # not when a process is started from this one
    sys.exit(main())
