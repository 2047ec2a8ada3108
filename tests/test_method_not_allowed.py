"""405 answers name every method of the path: in the detail and in `Allow`, over every route on it."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.testclient import TestClient

from iris_platform.api import method_not_allowed


def test_every_route_on_the_path_is_named_not_only_the_first():
    app = FastAPI()

    @app.get("/jobs/{job_id}")
    def read(job_id: str) -> dict[str, str]:
        return {"job": job_id}

    @app.delete("/jobs/{job_id}")
    def remove(job_id: str) -> dict[str, str]:
        return {"removed": job_id}

    @app.post("/jobs")
    def create() -> dict[str, str]:
        return {}

    method_not_allowed.install(app, app.router.routes)
    with TestClient(app) as client:
        assert client.delete("/jobs/7").json() == {"removed": "7"}  # the routes still answer
        refused = client.patch("/jobs/7")
        assert refused.status_code == 405
        assert refused.headers["allow"] == "DELETE, GET"
        assert refused.json() == {"detail": "PATCH is not allowed on /jobs/7: use DELETE, GET."}
        other = client.get("/jobs")
        assert other.headers["allow"] == "POST"
        assert other.json() == {"detail": "GET is not allowed on /jobs: use POST."}
        # Other HTTP errors keep FastAPI's own answer.
        assert client.get("/nothing").json() == {"detail": "Not Found"}
