"""The test suite, a package: helpers are imported as `tests.helpers.<module>`, fixtures live in the conftest files."""
