"""CSV import and export of actors (for the staff portal, and any spreadsheet).

Who may call what: the same roles as ``POST /actors`` and ``GET /actors`` (coordinators, quarter
managers); others get 403, callers without a token 401, both before the body is read.

- ``GET /actors/import/template``: the header row and an example, ``;``-separated (``csv_rows``).
- ``POST /actors/import[?dry_run=true]``: the body is the file itself (any content type), at most
  ``csv_rows.MAX_BYTES`` (413 beyond) and ``csv_rows.MAX_ROWS`` rows (422 beyond, as for a header
  we do not know: ``loc`` ``["body"]``). Every row is checked as ``POST /actors`` checks its body
  (``ActorIn``), and a quarter manager's rows must lie within their districts; a row whose e-mail
  address an actor already has (compared in lower case) is ``exists`` and creates nothing, so
  importing a file again creates nothing twice; an address twice in the file is an error on the
  second row. The answer lists every row with its ``status`` (``valid``, ``invalid``, ``exists``;
  ``created`` with its ``actor_id`` after a commit) and its errors by field. Without ``dry_run``
  the valid rows are registered one by one through the same handler as ``POST /actors`` (consent
  record, ``ActorRegistered``); invalid rows are left out.
- ``GET /actors/export.csv?district=&kind=&q=&include_inactive=``: the actors the caller may list,
  filtered as ``GET /actors`` is, as ``;``-separated UTF-8 CSV with a BOM (so Excel reads it as
  UTF-8), formula-like cells prefixed (``csv_rows.safe_cell``); at most ``EXPORT_LIMIT`` actors.
  Every actor exported is audited as a list read.
Not logged: names and addresses; the import logs counts only.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Query, Request, Response
from pydantic import BaseModel, ValidationError

from quartier_shared.auth import Principal, protected_router
from quartier_shared.catalogue import ActorKindName, DistrictCode
from quartier_shared.http import event_context, no_store
from quartier_shared.logging import get_logger
from quartier_shared.pagination import MAX_LIMIT, PageRequest

from . import csv_rows, handlers
from .api import REGISTRY, ActorIn, SearchText, _required_statement, listed
from .commands import RegisterActor
from .domain import Actor
from .unit_of_work import UnitOfWorkFactory

log = get_logger(__name__)

IMPORT_PATH = "/actors/import"
EXPORT_LIMIT = 10_000
EXPORT_HEADER = ("id", *csv_rows.HEADER, "active")
CSV_TYPE = "text/csv; charset=utf-8"

Status = Literal["valid", "invalid", "exists", "created"]


class RowError(BaseModel):
    field: str  # a column of the header, or "row"
    msg: str  # in English
    # pydantic's error type (``missing``, ``string_too_long``, ``unknown_district``, ...) or one of
    # ours (``not_within_your_districts``, ``duplicate_in_file``), so a client can say it in its own
    # words; ``ctx`` holds the plain values of pydantic's context (``max_length``, ...)
    type: str | None = None
    ctx: dict[str, str | int | float | bool] | None = None


class ImportRowOut(BaseModel):
    line: int
    status: Status
    values: dict[str, Any]  # as read from the file
    errors: list[RowError]
    actor_id: str | None = None


class ImportOut(BaseModel):
    dry_run: bool
    counts: dict[Status, int]
    rows: list[ImportRowOut]


def _column(field: str) -> str:
    return "consent" if field == "consent_to_notifications" else field


def _errors_of(exc: ValidationError) -> list[RowError]:
    found = []
    for error in exc.errors()[:10]:
        loc = error.get("loc") or ("row",)
        ctx = {k: v for k, v in (error.get("ctx") or {}).items() if isinstance(v, str | int | float | bool)}
        found.append(
            RowError(
                field=_column(str(loc[0])),
                msg=str(error.get("msg", ""))[:256],
                type=error.get("type"),
                ctx={k: v[:256] if isinstance(v, str) else v for k, v in ctx.items()} or None,
            )
        )
    return found


def check_rows(
    rows: list[csv_rows.Row], principal: Principal, taken: set[str]
) -> list[tuple[ImportRowOut, ActorIn | None]]:
    """Each row with its status and errors, and its request model when it is valid."""
    seen: set[str] = set()
    checked: list[tuple[ImportRowOut, ActorIn | None]] = []
    for row in rows:
        out = ImportRowOut(line=row.line, status="valid", values=row.values, errors=[])
        body: ActorIn | None = None
        try:
            body = ActorIn.model_validate(row.values)
        except ValidationError as exc:
            out.errors = _errors_of(exc)
        if body is not None and not principal.is_coordinator and not set(body.districts) <= principal.districts:
            out.errors.append(
                RowError(field="districts", msg="not within your districts", type="not_within_your_districts")
            )
        email = str(row.values.get("email", "")).lower()
        if email and email in seen:
            out.errors.append(
                RowError(field="email", msg="this address is in the file twice", type="duplicate_in_file")
            )
        seen.add(email)
        if out.errors or body is None:
            out.status = "invalid"
        elif email in taken:
            out.status = "exists"
        checked.append((out, body))
    return checked


def build_import_router(uow_factory: UnitOfWorkFactory, wording_version: str) -> APIRouter:
    router = protected_router(tags=["actors"], dependencies=[Depends(no_store)])

    @router.get("/actors/import/template", response_class=Response)
    async def template(principal: Principal = REGISTRY) -> Response:
        """The header row for an import, with one example row."""
        headers = {"Content-Disposition": 'attachment; filename="akteure-vorlage.csv"'}
        return Response(("\ufeff" + csv_rows.template()).encode(), media_type=CSV_TYPE, headers=headers)

    @router.post(IMPORT_PATH, response_model=ImportOut)
    async def import_csv(request: Request, dry_run: bool = False, principal: Principal = REGISTRY) -> ImportOut:
        """Checks (``dry_run=true``) or imports a CSV file of actors; see the module's docstring."""
        try:
            rows = csv_rows.read(await request.body())
        except csv_rows.TooLarge as exc:
            raise HTTPException(413 if "KiB" in str(exc) else 422, detail=_body_error(str(exc))) from None
        except csv_rows.BadHeader as exc:
            raise HTTPException(422, detail=_body_error(str(exc))) from None
        context = event_context(request)
        emails = {str(row.values.get("email", "")).lower() for row in rows} - {""}
        taken = await handlers.emails_taken(emails, context, uow_factory=uow_factory)
        checked = check_rows(rows, principal, taken)
        if not dry_run:
            for out, body in checked:
                if out.status != "valid" or body is None:
                    continue
                consent = _required_statement(body.consent_to_notifications, body.consent, wording_version)
                fields = body.model_dump(exclude={"consent", "consent_to_notifications"})
                command = RegisterActor(**fields, consent=consent, by=principal.subject)
                actor = await handlers.register_actor(command, context, uow_factory=uow_factory)
                out.status, out.actor_id = "created", actor.id
        answer = [out for out, _ in checked]
        counts: dict[Status, int] = {
            s: sum(o.status == s for o in answer) for s in ("valid", "invalid", "exists", "created")
        }
        log.info("actors_import", dry_run=dry_run, rows=len(answer), **counts)
        return ImportOut(dry_run=dry_run, counts=counts, rows=answer)

    @router.get("/actors/export.csv", response_class=Response)
    async def export_csv(
        request: Request,
        district: Annotated[DistrictCode | None, Query(description="district code, e.g. IV")] = None,
        kind: Annotated[ActorKindName | None, Query(description="actor kind")] = None,
        q: Annotated[SearchText | None, Query(description="text in the name or e-mail address")] = None,
        include_inactive: bool = False,
        principal: Principal = REGISTRY,
    ) -> Response:
        """The actors ``GET /actors`` would list with these filters, as CSV (all pages)."""
        actors: list[Actor] = []
        page = PageRequest(MAX_LIMIT)
        while len(actors) < EXPORT_LIMIT:
            found = await listed(uow_factory, request, principal, page, district, kind, q, include_inactive)
            actors += found.items
            if found.next_cursor is None or not found.items:
                break
            page = PageRequest(MAX_LIMIT, (found.items[-1].created_at, found.items[-1].id))
        rows = (
            [
                a.id,
                a.name,
                a.kind,
                " ".join(a.districts),
                a.email,
                a.language,
                _yes(a.consent_to_notifications),
                _yes(a.active),
            ]
            for a in actors[:EXPORT_LIMIT]
        )
        headers = {"Content-Disposition": 'attachment; filename="akteure.csv"', "Cache-Control": "no-store"}
        return Response(("\ufeff" + csv_rows.write(rows, EXPORT_HEADER)).encode(), media_type=CSV_TYPE, headers=headers)

    return router


def _yes(flag: bool) -> str:
    return "ja" if flag else "nein"


def _body_error(msg: str) -> list[dict[str, Any]]:
    return [{"loc": ["body"], "msg": msg, "type": "value_error"}]
