"""Start the Iris ML platform: `python main.py [--host HOST] [--port PORT]` (the same as `iris-platform`)."""

from iris_platform.server import main

if __name__ == "__main__":
    main()
