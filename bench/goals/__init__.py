"""One module per goal of issue 3; each step takes the shared Context."""
