from typing import Annotated, Any

from fastapi import APIRouter, File, Form, UploadFile

from iris_platform.api.dependencies import ServiceDep
from iris_platform.api.schemas import TrainResponse

router = APIRouter(tags=["training"])


def upload_content(file: UploadFile | None) -> tuple[bytes | None, str | None]:
    """An empty file input (a browser form with nothing chosen) counts as no file."""
    if file is None:
        return None, None
    content = file.file.read()
    if not file.filename and not content:
        return None, None
    return content, file.filename


# A plain `def`: training is CPU-bound, so FastAPI runs it in its thread pool, off the event loop.
@router.post("/train", response_model=TrainResponse, summary="Train a classifier on the Iris data or an uploaded CSV")
def train(
    service: ServiceDep,
    file: Annotated[UploadFile | None, File(description="CSV with a header row; default: scikit-learn's Iris")] = None,
    n_estimators: Annotated[int, Form(description="Trees in the random forest (1 to 1000)")] = 100,
    test_size: Annotated[float, Form(description="Fraction of rows held out for the metrics")] = 0.2,
    target_column: Annotated[str | None, Form(description="Class column of the CSV; default: the last")] = None,
    keep_columns: Annotated[
        str | None,
        Form(
            description="Comma-separated columns of the CSV to keep as features although they look like row "
            "identifiers (named id, index, row_id, <name>_id or Unnamed: 0 and unique; or unique row numbers "
            "1..n or 0..n-1), which are otherwise left out and listed in the answer's dropped_columns"
        ),
    ] = None,
) -> dict[str, Any]:
    content, filename = upload_content(file)
    return service.train(
        content=content,
        filename=filename,
        n_estimators=n_estimators,
        test_size=test_size,
        target_column=target_column,
        keep_columns=keep_columns,
    )
