"""Start the Iris ML platform: `python main.py [--host HOST] [--port PORT]`."""

import argparse
import logging
import os

import uvicorn

from iris_platform.app import create_app
from iris_platform.config import Settings


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the Iris ML platform.")
    parser.add_argument(
        "--host",
        default=os.environ.get("IRIS_HOST", "127.0.0.1"),
        help="interface to bind (default 127.0.0.1, this machine only; env IRIS_HOST)",
    )
    parser.add_argument(
        "--port", type=int, default=int(os.environ.get("IRIS_PORT", "8000")), help="port (default 8000; env IRIS_PORT)"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = Settings.from_env(host=args.host, port=args.port)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, access_log=settings.access_log)


if __name__ == "__main__":
    main()
