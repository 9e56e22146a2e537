"""The JSON bodies of the prediction API (also its OpenAPI schema).

Field names are snake_case; ``unit_id`` is required (a string or an integer, used as
text), ``attributes`` feed targeting, ``features`` go to the model unchanged.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# The telemetry event schema's identifier rules: 1 to 256 characters, no NUL, not blank.
UnitId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=256, pattern=r"^[^\x00]+$"),
]

__all__ = ["ErrorBody", "PredictRequest", "PredictResponse", "RankRequest", "RankResponse"]


class ErrorBody(BaseModel):
    """Every error answer: the message names the field, the rule and the fix."""

    error: str


class PredictRequest(BaseModel):
    """``POST /v1/predict/{name}``."""

    model_config = ConfigDict(extra="forbid")
    unit_id: UnitId | int = Field(description="The randomization unit (user, session, ...).")
    attributes: dict[str, Any] = Field(default_factory=dict, description="For targeting.")
    features: Any = Field(default=None, description="Passed to the model as is.")


class RankRequest(PredictRequest):
    """``POST /v1/rank/{name}``: the ranker gets ``{"features": ..., "candidates": ...}``."""

    candidates: list[Any] | None = Field(default=None, description="Items to rank, if any.")
    length: int | None = Field(default=None, ge=1, le=1000, description="Items to return.")


class _Answer(BaseModel):
    request_id: str
    deployment: str
    variant: str = Field(description="The variant that answered.")
    assigned_variant: str = Field(description="The unit's assignment (differs on fallback).")
    in_experiment: bool
    reason: str
    model: str
    model_version: str
    fallback: bool
    spec_version: int


class PredictResponse(_Answer):
    """The served prediction."""

    prediction: Any


class RankResponse(_Answer):
    """The ranked list; ``teams[i]`` is the ranker that contributed ``items[i]``."""

    items: list[Any]
    teams: list[str] | None
