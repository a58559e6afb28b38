from ovencast.cli.main import app

app()
