from armscope.cli import app

app(prog_name="armscope")
