"""What routes receive by injection."""

from fastapi import Request

from .service import IrisService


def get_service(request: Request) -> IrisService:
    return request.app.state.service
