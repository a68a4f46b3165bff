"""Placeholder router; filled in by the DPO tools issue."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["audit"])
