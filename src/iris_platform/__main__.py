"""`python -m iris_platform`: the same as `iris-platform` and `python main.py`."""

from iris_platform.server import main

main()
