"""The CSV import in the browser: upload, the preview of every row with its errors next to it
(the actors service's dry run), then the import of the valid rows (its commit), and the template.

Who may use it: signed-in coordinators and quarter managers; the actors service checks each row
against the user's districts. The file goes to the service as it was uploaded (its encoding is
detected there); between preview and import it travels in the form, base64, so nothing is stored
here. At most ``MAX_BYTES`` (the service's bound); more is refused before it is read.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from .api_client import ApiError
from .error_texts import Gettext, error_text
from .web import Portal

MAX_BYTES = 1024 * 1024
IMPORT_PATH = "/import"
# the upload, or the file again as base64 (4/3), plus the form around it
MAX_FORM_BYTES = MAX_BYTES * 4 // 3 + 64 * 1024


def build_import_router(portal: Portal) -> APIRouter:
    router = APIRouter(tags=["pages"])

    @router.get(IMPORT_PATH)
    async def form(request: Request) -> Response:
        """Signed-in coordinators and quarter managers: the upload form."""
        session = portal.signed_in(request)
        if not session.keeps_registry:
            _ = portal.pages.gettext(portal.language(request))
            return portal.message(
                request, "Not allowed", _("Your role has no access to the actor registry."), "warning", 403
            )
        return portal.render(request, "import.html", {"csrf": session.csrf, "errors": {}, "result": None})

    @router.get(f"{IMPORT_PATH}/template.csv")
    async def template(request: Request) -> Response:
        session = portal.signed_in(request)
        answer = await portal.api("actors", session).call("GET", "/actors/import/template", raw=True)
        headers = {"Content-Disposition": 'attachment; filename="akteure-vorlage.csv"', "Cache-Control": "no-store"}
        return Response(answer.content, media_type="text/csv; charset=utf-8", headers=headers)

    @router.post(IMPORT_PATH)
    async def upload(request: Request) -> Response:
        """``action=preview`` with the ``file``; ``action=commit`` with the previewed file (``data``)."""
        session = portal.signed_in(request)
        form = await portal.checked_form(request, session)
        _ = portal.pages.gettext(portal.language(request))
        commit = form.get("action") == "commit"
        data = await _file_of(form.get("file"), form.get("data"))
        context: dict[str, Any] = {"csrf": session.csrf, "errors": {}, "result": None}
        if data is None:
            context["errors"] = {"file": _("Please choose a CSV file of at most 1 MB.")}
            return portal.render(request, "import.html", context, status_code=422)
        try:
            answer = await portal.api("actors", session).call(
                "POST", "/actors/import", params={"dry_run": "false" if commit else "true"}, content=data
            )
        except ApiError as error:
            message = error_text(error.detail[0], _) if isinstance(error.detail, list) and error.detail else ""
            if error.status == 413:
                message = _("The file is larger than 1 MB.")
            context["errors"] = {"file": message or _("The file could not be read.")}
            return portal.render(request, "import.html", context, status_code=422 if error.status != 403 else 403)
        context["result"] = _translated(answer.data, _)
        context["data"] = base64.b64encode(data).decode()
        return portal.render(request, "import.html", context)

    return router


async def _file_of(upload: object, previewed: object) -> bytes | None:
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_BYTES + 1)
        return data if 0 < len(data) <= MAX_BYTES else None
    if isinstance(previewed, str) and previewed:
        try:
            data = base64.b64decode(previewed, validate=True)
        except (binascii.Error, ValueError):
            return None
        return data if 0 < len(data) <= MAX_BYTES else None
    return None


def _translated(result: Any, _: Gettext) -> Any:
    """The import's answer with each row error's ``text``: its ``msg`` in the page's language."""
    for row in result.get("rows", []) if isinstance(result, dict) else []:
        for error in row.get("errors", []):
            error["text"] = error_text(error, _)
    return result
