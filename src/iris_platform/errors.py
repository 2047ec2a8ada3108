"""The caller's mistakes, raised anywhere below the routes and answered as 4xx JSON."""

from __future__ import annotations


class InputError(ValueError):
    """Bad input: `detail` says what was wrong and how to fix it."""

    def __init__(self, detail: str, status_code: int = 422):
        super().__init__(detail)
        self.detail = detail
        self.status_code = status_code

    def __reduce__(self) -> tuple[object, ...]:
        # Whole across processes (a training process raises it to the server): pickle alone would
        # call the subclass with `args` and lose the status.
        return _rebuild, (type(self), self.detail, self.status_code)


def _rebuild(cls: type[InputError], detail: str, status_code: int) -> InputError:
    error = cls.__new__(cls)
    InputError.__init__(error, detail, status_code)
    return error


class NoModelError(InputError):
    def __init__(self) -> None:
        super().__init__(
            "No model is loaded yet: train one with POST /train or load a saved one with POST /load_model.",
            status_code=409,
        )


class StartupRefused(RuntimeError):
    """The server cannot start as configured; the message says what to change."""
