"""What routes receive by injection."""

from fastapi import Request

from iris_platform.service import IrisService


async def get_service(request: Request) -> IrisService:
    # async: FastAPI would run a plain `def` dependency in the thread pool, a thread hop per request.
    return request.app.state.service
