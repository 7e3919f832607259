"""Dataset response models (the upload itself is multipart/form-data)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from api.schemas.common import Page


class DatasetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)  # built from the database row
    id: str = Field(description="Opaque dataset id.")
    graph_id: str = Field(description="Graph whose input and output nodes the columns name.")
    n_samples: int = Field(description="Number of rows (samples).")
    filename: str | None = Field(None, description="Name of the uploaded file, if it had one.")
    created_at: datetime = Field(description="Upload time (UTC).")


class DatasetList(Page):
    items: list[DatasetOut] = Field(description="Datasets on this page, oldest first.")
