"""Saved views: named dashboard views (a page and its URL query), the ones the dashboard's pages save and open."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response

from backend import deps
from backend.errors import ErrorOut
from backend.schemas import SavedViewIn, SavedViewOut
from backend.strict_input import StrictRoute
from service import views
from service.db.store import INT32_MAX, Store

router = APIRouter(prefix="/views", tags=["views"], route_class=StrictRoute)
TAKEN = {409: {"model": ErrorOut, "description": "A view of that name is saved on the page already"}}
MISSING = {404: {"model": ErrorOut, "description": "No such saved view"}}
ViewId = Annotated[int, Path(ge=1, le=INT32_MAX, description="The saved view's id.")]


@router.get("", response_model=list[SavedViewOut])
def list_views(
    page: str | None = Query(None, max_length=32, description=f"Only this page's views: {', '.join(views.PAGES)}."),
    store: Store = Depends(deps.store),
) -> list[dict[str, Any]]:
    return views.views(store, page)


@router.post("", response_model=SavedViewOut, status_code=201, responses=TAKEN)
def save_view(view: SavedViewIn, store: Store = Depends(deps.store)) -> dict[str, Any]:
    """A name already saved on the page is refused (409) naming it: delete that view first to replace it."""
    return views.save(store, view.page, view.name, view.query)


@router.delete("/{view_id}", status_code=204, responses=MISSING)
def delete_view(view_id: ViewId, store: Store = Depends(deps.store)) -> Response:
    views.delete(store, view_id)
    return Response(status_code=204)
