"""Progress lines on stdout, stamped with the seconds since the bench started."""

import time

T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - T0:7.1f}s] {message}", flush=True)
