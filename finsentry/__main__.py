from finsentry.cli import app

app(prog_name="finsentry")
