"""Real-browser end-to-end tests of the dashboard (issue 4), in Debian's headless Chromium.

A package, like tests/reliability, so that its `conftest` does not shadow the top-level
tests/conftest.py that the other test modules import as `conftest`.
"""
