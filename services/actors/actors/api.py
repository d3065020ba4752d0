"""HTTP API of the actors service (quarter managers keep the registry and their district's
competence team current).

Who may call what (``quartier_shared.auth``): coordinators everything; a quarter manager
registers, changes and deactivates actors whose districts all lie within their own (a change is
checked against the actor as stored and as it would be), and reads actors that share a district
with theirs; ``GET /actors`` without ``district`` gives them only those. Operators and data
protection officers get 403 there: the registry holds names and e-mail addresses. The
data-protection role alone reads an actor's audit log, exports it, erases it and reads the state
of its erasure (``privacy_api.py``); every read of an actor here is audited. A district's
competence team (``/districts/{code}/team``) is set by coordinators and that district's quarter
managers, and read by them (the district check runs before the body is read). ``GET /districts``
is open.

Thin: the request models check the input (a 422 names the field), a handler does the work, and
the answer is the handler's result as ``ActorOut``. The response models are the HTTP contract and
are declared here on purpose; they are filled from the domain objects by field name.

Consent: a request may say ``consent_to_notifications`` (a boolean, as before), ``consent`` (a
record: given, basis, wording version) or both when they agree (422 on ``consent`` when they do
not); the boolean alone records consent on the basis ``consent`` with the current wording version
(setting ``CONSENT_WORDING_VERSION``). The caller's token subject is who recorded it. An erased
actor cannot be changed: 409.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response, status
from pydantic import AfterValidator, BaseModel, ConfigDict, EmailStr, Field, StrictBool, StringConstraints

from quartier_shared.auth import (
    COORDINATOR,
    QUARTER_MANAGER,
    Principal,
    allow,
    protected_router,
    readable_districts,
    require_readable,
    require_within,
)
from quartier_shared.catalogue import ActorKindName, Catalogue, DistrictCode, load_catalogue
from quartier_shared.events import Language
from quartier_shared.http import event_context, no_store
from quartier_shared.inputs import SafeText
from quartier_shared.pagination import PAGE, Page, PageRequest, announce_next

from . import handlers
from .commands import DeactivateActor, RegisterActor, SetCompetenceTeam, UpdateActor
from .consent import Basis, ConsentStatement
from .domain import Actor, ActorIsErased, ActorNotFound, TeamMembersRefused
from .unit_of_work import UnitOfWorkFactory

Name = Annotated[str, SafeText(200)]
SearchText = Annotated[str, SafeText(100)]
WordingVersion = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._-]{1,32}$")]


def _at_most_the_catalogue(codes: list[str]) -> list[str]:
    size = len(load_catalogue().districts)
    if len(codes) > size:
        raise ValueError(f"at most {size} districts (the catalogue's size)")
    return codes


Districts = Annotated[list[DistrictCode], Field(min_length=1, max_length=1000), AfterValidator(_at_most_the_catalogue)]


class ConsentIn(BaseModel):
    """Consent as the person gave or withdrew it; ``wording_version`` defaults to the current one."""

    model_config = ConfigDict(extra="forbid", strict=True)

    given: bool
    basis: Basis
    wording_version: WordingVersion | None = None


class ActorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    kind: ActorKindName
    districts: Districts
    email: EmailStr
    language: Language = "de"
    consent_to_notifications: StrictBool | None = None  # required unless ``consent`` is given
    consent: ConsentIn | None = None


class ActorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    kind: ActorKindName | None = None
    districts: Districts | None = None
    email: EmailStr | None = None
    language: Language | None = None
    consent_to_notifications: StrictBool | None = None
    consent: ConsentIn | None = None


class ConsentOut(BaseModel):
    given: bool
    basis: Basis
    wording_version: str
    by: str | None
    at: datetime
    reason: str | None


class ActorOut(BaseModel):
    id: str
    name: str
    kind: str
    districts: list[str]
    email: str  # empty once the actor was erased
    language: Language
    consent_to_notifications: bool  # ``given`` of ``consent``
    active: bool
    revision: int
    created_at: datetime
    updated_at: datetime
    consent: ConsentOut | None  # None for an actor stored before consent was recorded
    consent_history: list[ConsentOut]  # oldest first, at most ``consent.HISTORY_LIMIT``
    erased_at: datetime | None


class TeamIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    members: list[Annotated[str, Field(min_length=1, max_length=64)]] = Field(max_length=200)


class TeamOut(BaseModel):
    district: str
    members: list[str]
    revision: int
    updated_at: datetime | None


REGISTRY = allow(COORDINATOR, QUARTER_MANAGER)


def _team_editor(code: Annotated[DistrictCode, Path()], principal: Principal = REGISTRY) -> str:
    require_within(principal, [code])
    return code


def _team_reader(code: Annotated[DistrictCode, Path()], principal: Principal = REGISTRY) -> str:
    require_readable(principal, [code])
    return code


def _statement(flag: bool | None, consent: ConsentIn | None, wording_version: str) -> ConsentStatement | None:
    """What the request says about consent (None: nothing); 422 naming ``consent`` when the
    boolean and the record say different things."""
    if consent is None:
        return None if flag is None else ConsentStatement(flag, "consent", wording_version)
    if flag is not None and flag != consent.given:
        raise _invalid("consent", "contradicts consent_to_notifications")
    return ConsentStatement(consent.given, consent.basis, consent.wording_version or wording_version)


def _required_statement(flag: bool | None, consent: ConsentIn | None, wording_version: str) -> ConsentStatement:
    statement = _statement(flag, consent, wording_version)
    if statement is None:
        raise _invalid("consent_to_notifications", "field required (or give consent)")
    return statement


def _invalid(field: str, msg: str) -> HTTPException:
    return HTTPException(422, detail=[{"loc": ["body", field], "msg": msg, "type": "value_error"}])


def build_router(uow_factory: UnitOfWorkFactory, wording_version: str) -> APIRouter:
    router = protected_router(tags=["actors"], dependencies=[Depends(no_store)])
    catalogue = APIRouter(tags=["districts"])  # open: no personal data

    async def stored(actor_id: str, request: Request) -> Actor:
        with not_found_is_404():
            return await handlers.actor_by_id(actor_id, event_context(request), uow_factory=uow_factory)

    @router.post("/actors", status_code=status.HTTP_201_CREATED, response_model=ActorOut)
    async def register(body: ActorIn, request: Request, principal: Principal = REGISTRY) -> ActorOut:
        require_within(principal, body.districts)
        consent = _required_statement(body.consent_to_notifications, body.consent, wording_version)
        fields = body.model_dump(exclude={"consent", "consent_to_notifications"})
        command = RegisterActor(**fields, consent=consent, by=principal.subject)
        return _out(await handlers.register_actor(command, event_context(request), uow_factory=uow_factory))

    @router.get("/actors/{actor_id}", response_model=ActorOut)
    async def get(actor_id: str, request: Request, principal: Principal = REGISTRY) -> ActorOut:
        """The actor with its consent records; the read is audited."""
        with not_found_is_404():
            actor = await handlers.read_actor(
                actor_id,
                event_context(request),
                uow_factory=uow_factory,
                may_see=lambda actor: require_readable(principal, actor.districts),
            )
        return _out(actor)

    @router.get("/actors", response_model=list[ActorOut])
    async def list_actors(
        request: Request,
        response: Response,
        district: Annotated[DistrictCode | None, Query(description="district code, e.g. IV")] = None,
        kind: Annotated[ActorKindName | None, Query(description="actor kind, e.g. round_table")] = None,
        q: Annotated[SearchText | None, Query(description="text in the name or e-mail address, any case")] = None,
        include_inactive: bool = False,
        page: PageRequest = PAGE,
        principal: Principal = REGISTRY,
    ) -> list[ActorOut]:
        """Oldest first, in pages (``limit``, and the ``Link: rel="next"`` header for the next one);
        each actor shown is audited."""
        found = await listed(uow_factory, request, principal, page, district, kind, q, include_inactive)
        announce_next(response, request, found, page.limit)
        return [_out(actor) for actor in found.items]

    @router.patch("/actors/{actor_id}", response_model=ActorOut)
    async def update(actor_id: str, body: ActorPatch, request: Request, principal: Principal = REGISTRY) -> ActorOut:
        if not principal.is_coordinator:
            require_within(principal, (await stored(actor_id, request)).districts)  # as it is
            require_within(principal, body.districts or ())  # as it would be
        changes: dict[str, Any] = body.model_dump(exclude_unset=True)
        nulls = [k for k, v in changes.items() if v is None]
        if nulls:  # leaving a field out keeps it; null would erase it, and no field may be empty
            raise HTTPException(
                422,
                detail=[{"loc": ["body", k], "msg": "may not be null", "type": "value_error"} for k in nulls],
            )
        consent = _statement(body.consent_to_notifications, body.consent, wording_version)
        changes.pop("consent", None)
        changes.pop("consent_to_notifications", None)
        command = UpdateActor(actor_id, changes, consent, by=principal.subject)
        with not_found_is_404(), _erased_is_409():
            return _out(await handlers.update_actor(command, event_context(request), uow_factory=uow_factory))

    @router.delete("/actors/{actor_id}", response_model=ActorOut)
    async def deactivate(actor_id: str, request: Request, principal: Principal = REGISTRY) -> ActorOut:
        """Deactivates the actor: it stays on record but is no longer invited."""
        if not principal.is_coordinator:
            require_within(principal, (await stored(actor_id, request)).districts)
        command = DeactivateActor(actor_id)
        with not_found_is_404():
            return _out(await handlers.deactivate_actor(command, event_context(request), uow_factory=uow_factory))

    @router.put("/districts/{code}/team", response_model=TeamOut)
    async def set_team(body: TeamIn, request: Request, code: str = Depends(_team_editor)) -> TeamOut:
        """Sets the district's competence team: the whole list of members, each an active actor of
        the district; the list replaces the one before."""
        command = SetCompetenceTeam(code, body.members)
        try:
            team = await handlers.set_competence_team(command, event_context(request), uow_factory=uow_factory)
        except TeamMembersRefused as refused:
            detail = [{"loc": ["body", "members"], "msg": str(refused)[:256], "type": "value_error"}]
            raise HTTPException(422, detail=detail) from None
        return TeamOut.model_validate(team, from_attributes=True)

    @router.get("/districts/{code}/team", response_model=TeamOut)
    async def get_team(request: Request, code: str = Depends(_team_reader)) -> TeamOut:
        team = await handlers.competence_team(code, event_context(request), uow_factory=uow_factory)
        return TeamOut.model_validate(team, from_attributes=True)

    @catalogue.get("/districts", response_model=Catalogue)
    async def districts() -> Catalogue:
        return load_catalogue()

    api = APIRouter()
    api.include_router(router)
    api.include_router(catalogue)
    return api


async def listed(
    uow_factory: UnitOfWorkFactory,
    request: Request,
    principal: Principal,
    page: PageRequest,
    district: str | None,
    kind: str | None,
    text: str | None,
    include_inactive: bool,
) -> Page[Actor]:
    """One page of the actors ``GET /actors`` lists with these filters, of the districts the
    caller may read (403 for a ``district`` they may not); each actor shown is audited."""
    if district is not None:
        require_readable(principal, [district])
    return await handlers.actors_by_district(
        district,
        include_inactive,
        event_context(request),
        uow_factory=uow_factory,
        within=readable_districts(principal),
        page=page,
        kind=kind,
        text=text,
    )


def _out(actor: Actor) -> ActorOut:
    return ActorOut.model_validate(actor, from_attributes=True)


@contextmanager
def _erased_is_409() -> Iterator[None]:
    try:
        yield
    except ActorIsErased as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"actor {exc} was erased: it cannot be changed") from None


@contextmanager
def not_found_is_404() -> Iterator[None]:
    try:
        yield
    except ActorNotFound as exc:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"actor {exc} not found") from None
