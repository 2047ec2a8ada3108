"""The performance benchmark of issue 3: this server against its anchors, side by side, in one run.

    .venv/bin/python -m bench            # the full run, about 4 minutes (more against a slow server)
    .venv/bin/python -m bench --quick    # a smoke run, about 2 minutes: shorter loads, fewer repetitions
    .venv/bin/python -m bench --big      # also a 10,000,000-row batch

Prints one table and writes it to bench/results.md. See bench/README.md for what each row means.
Every server is started in a fresh temporary directory and stopped (SIGTERM, then SIGKILL) at the
end, whatever happens; every wait is bounded in time.
"""
