"""``python -m merkit``: the command line."""

from merkit.cli import app

app(prog_name="merkit")
