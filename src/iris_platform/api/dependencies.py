"""What routes receive by injection."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from iris_platform.service import IrisService


async def get_service(request: Request) -> IrisService:
    # async: FastAPI would run a plain `def` dependency in the thread pool, a thread hop per request.
    service: IrisService = request.app.state.service
    return service


ServiceDep = Annotated[IrisService, Depends(get_service)]
