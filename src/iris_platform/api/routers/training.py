from fastapi import APIRouter, Depends, File, Form, UploadFile

from iris_platform.api.dependencies import get_service
from iris_platform.service import IrisService

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
@router.post("/train", summary="Train a classifier on the Iris data or an uploaded CSV")
def train(
    file: UploadFile | None = File(None, description="CSV with a header row; default: scikit-learn's Iris"),
    n_estimators: int = Form(100, description="Trees in the random forest (1 to 1000)"),
    test_size: float = Form(0.2, description="Fraction of rows held out for the metrics"),
    target_column: str | None = Form(None, description="Class column of the CSV; default: the last"),
    service: IrisService = Depends(get_service),
) -> dict:
    content, filename = upload_content(file)
    return service.train(content, filename, n_estimators, test_size, target_column)
