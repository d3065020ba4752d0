"""The use cases of the actors service: the HTTP commands and queries. Plain functions, wired in
app.py and called by api.py.

Each command is one unit of work: load, let the domain decide, store the change with its event,
commit. A change that changes nothing commits nothing and raises no event. Queries read through
the unit of work's repositories and commit nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

from quartier_shared.events import Event, EventContext
from quartier_shared.pagination import FIRST_PAGE, Page, PageRequest, page_of

from .commands import DeactivateActor, RegisterActor, SetCompetenceTeam, UpdateActor
from .domain import Actor, ActorNotFound, CompetenceTeam
from .unit_of_work import UnitOfWork, UnitOfWorkFactory


async def register_actor(command: RegisterActor, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Actor:
    actor, registered = Actor.register(command)
    async with uow_factory(context) as uow:
        await uow.actors.add(actor)
        uow.record(registered)
        await uow.commit()
    return actor


async def update_actor(command: UpdateActor, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Actor:
    return await _change(command.actor_id, lambda actor: actor.update(command.changes), uow_factory(context))


async def deactivate_actor(command: DeactivateActor, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Actor:
    return await _change(command.actor_id, Actor.deactivate, uow_factory(context))


async def actor_by_id(actor_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Actor:
    async with uow_factory(context).for_reading() as uow:
        return await _existing(uow, actor_id)


async def actors_by_district(
    district: str | None,
    include_inactive: bool,
    context: EventContext,
    *,
    uow_factory: UnitOfWorkFactory,
    within: Collection[str] | None = None,
    page: PageRequest = FIRST_PAGE,
) -> Page[Actor]:
    """One page of the actors of ``district`` (all for None) with a district ``within`` those
    given (the caller's own, for a quarter manager; None for all), oldest first."""
    async with uow_factory(context).for_reading() as uow:
        found = await uow.actors.find(district, include_inactive, within=within, page=page)
    return page_of(found, page, lambda actor: (actor.created_at, actor.id))


async def set_competence_team(
    command: SetCompetenceTeam, context: EventContext, *, uow_factory: UnitOfWorkFactory
) -> CompetenceTeam:
    """Replaces the district's team; raises ``TeamMembersRefused`` (nothing stored) when a member
    is not an active actor of the district."""
    async with uow_factory(context) as uow:
        team = await uow.teams.get(command.district) or CompetenceTeam(command.district)
        changed, event = team.set_members(command.members, await uow.actors.get_many(command.members))
        if event is not None:
            await uow.teams.save(changed)
            uow.record(event)
            await uow.commit()
    return changed


async def competence_team(district: str, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> CompetenceTeam:
    """The district's team; an empty one (revision 0) when none was ever set."""
    async with uow_factory(context).for_reading() as uow:
        return await uow.teams.get(district) or CompetenceTeam(district)


async def _change(actor_id: str, change: Callable[[Actor], tuple[Actor, Event | None]], uow: UnitOfWork) -> Actor:
    async with uow:
        changed, event = change(await _existing(uow, actor_id))
        if event is not None:
            await uow.actors.save(changed)
            uow.record(event)
            await uow.commit()
    return changed


async def _existing(uow: UnitOfWork, actor_id: str) -> Actor:
    actor = await uow.actors.get(actor_id)
    if actor is None:
        raise ActorNotFound(actor_id)
    return actor
