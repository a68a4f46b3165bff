"""FastAPI dependencies as `Annotated` aliases (style.md §4).

The services live on `app.state.services`, put there by `create_app`; nothing
is built at import time, so tests build an app per settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends, Request

if TYPE_CHECKING:
    from broker.services import Services


def get_services(request: Request) -> Services:
    return cast("Services", request.app.state.services)


ServicesDep = Annotated["Services", Depends(get_services)]
