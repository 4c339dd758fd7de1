"""``python -m merkit``: the command line.

``python -m`` puts the current folder first on ``sys.path``; merkit runs inside music and dataset
folders, which may hold a ``numpy.py``, so that entry is dropped before anything else is imported
(unless merkit itself is being run from there, e.g. from a source checkout's ``src``), and every
Python process merkit starts inherits ``PYTHONSAFEPATH``.
"""

import os
import sys

if not sys.flags.safe_path and sys.path and sys.path[0] in ("", os.getcwd()):
    _src = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if os.path.abspath(sys.path[0] or ".") != _src:
        del sys.path[0]
os.environ["PYTHONSAFEPATH"] = "1"

from merkit.cli import app

app(prog_name="merkit")
