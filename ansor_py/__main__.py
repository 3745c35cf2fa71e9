"""``python -m ansor_py``: the ``ansor-py`` command line (``ansor_py.cli``)."""

import sys

from ansor_py.cli import main

if __name__ == "__main__":
    sys.exit(main())
