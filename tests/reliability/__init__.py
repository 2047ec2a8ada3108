"""Reliability and security: bad input, generated input, faults and load (issue 5).

The tests here record what they tried and what happened; `conftest.py` turns the records into
docs/RELIABILITY.md at the end of a complete run of this folder.
"""
