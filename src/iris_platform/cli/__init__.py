"""`iris-platform`: the platform from a command line, on the local store or against a running server (--url).

`main.py` parses the command line (typer) and prints answers (rich, or JSON with --json); `platforms.py`
reaches the platform: the service on this machine's store, or a server's HTTP API, with the same answers
and the same words in their errors.
"""
