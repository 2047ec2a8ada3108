"""Reliability and security: bad input, generated input, faults and load (issue 5).

The tests here record what they tried and what happened; `conftest.py` turns the records into
test-artifacts/RELIABILITY.md at the end of a complete, passing run of this folder, and
`make reliability-report` copies that to docs/RELIABILITY.md. Shared helpers: `helpers.py`.
"""
