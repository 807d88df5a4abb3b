"""`python -m armscope`: the command line (the ``cli`` package), as the `armscope` script runs it."""

from cli.main import app

app(prog_name="armscope")
