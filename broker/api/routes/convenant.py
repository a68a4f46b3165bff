"""`GET /v1/convenant`: the active convenant, for any partner."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from broker.api.deps import ServicesDep
from broker.api.security import AnyCaller

router = APIRouter(tags=["convenant"])


@router.get("/v1/convenant")
def get_convenant(services: ServicesDep, caller: AnyCaller) -> dict[str, Any]:
    _ = caller  # authenticated is enough: the convenant is public among its partners
    return services.convenant.model_dump(mode="json")
