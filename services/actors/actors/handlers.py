"""The use cases of the actors service: the HTTP commands and queries, and the consumed events
(``ActorErasureConfirmed``, ``UnsubscribeRequested``). Plain functions, wired in app.py and
called by api.py.

Each command is one unit of work: load, let the domain decide, store the change with its event,
commit. A change that changes nothing commits nothing and raises no event. Queries read through
the unit of work's repositories and commit nothing, except their audit entries: a query that
shows contact data (``read_actor``, ``actors_by_district``, ``export_actor``) writes who read
which actor (``audit.py``) with one insert, before it answers. The token subject in the event
context (``initiated_by``) is who did it.

Every change of an actor records its actor event (no name, no address) and then its
``ContactChanged`` with the same revision; erasure records ``ActorErased`` and tombstones on
the contact topic and on the contact dead-letter topic instead, so neither keeps the name or the
address once compacted. ``publish_in_current_form`` brings actors stored before version 2 of the
actor events onto both compacted topics once.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import datetime

from quartier_shared.consumer import Received
from quartier_shared.events import (
    CONTACTS_DEAD_LETTER_TOPIC,
    CONTACTS_TOPIC,
    ActorErasureConfirmed,
    Event,
    EventContext,
    Tombstone,
    UnsubscribeRequested,
)
from quartier_shared.logging import get_logger
from quartier_shared.pagination import FIRST_PAGE, MAX_LIMIT, Page, PageRequest, page_of

from .audit import AuditEntry, entries
from .commands import ConfirmErasure, DeactivateActor, EraseActor, RegisterActor, SetCompetenceTeam, UpdateActor
from .domain import Actor, ActorNotFound, CompetenceTeam
from .erasure import Erasure
from .unit_of_work import UnitOfWork, UnitOfWorkFactory

log = get_logger(__name__)


class NotErased(Exception):
    """No erasure was asked for this actor (the message is its id)."""


@dataclass(frozen=True)
class ActorExport:
    """What the actors service holds about one actor (GDPR Art. 15)."""

    actor: Actor
    audit: list[AuditEntry]
    erasure: Erasure | None


async def register_actor(command: RegisterActor, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Actor:
    actor, registered = Actor.register(command)
    async with uow_factory(context) as uow:
        await uow.actors.add(actor)
        uow.record(registered)
        uow.record(actor.contact(after=registered))
        await uow.commit()
    return actor


async def update_actor(command: UpdateActor, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Actor:
    """Raises ``ActorIsErased`` (nothing stored) for an erased actor."""
    return await _change(
        command.actor_id, lambda actor: actor.update(command.changes, command.consent, command.by), uow_factory(context)
    )


async def deactivate_actor(command: DeactivateActor, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Actor:
    return await _change(command.actor_id, Actor.deactivate, uow_factory(context))


async def actor_by_id(actor_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Actor:
    """The actor, for a check (not shown to the caller: not audited)."""
    async with uow_factory(context).for_reading() as uow:
        return await _existing(uow, actor_id)


async def read_actor(
    actor_id: str,
    context: EventContext,
    *,
    uow_factory: UnitOfWorkFactory,
    may_see: Callable[[Actor], None] = lambda actor: None,
) -> Actor:
    """The actor, to be shown to the caller: ``may_see`` raises when the caller may not see it
    (nothing is audited then); otherwise the read is audited."""
    async with uow_factory(context).for_reading() as uow:
        actor = await _existing(uow, actor_id)
        may_see(actor)
        await uow.audit.record(entries([actor.id], "read", context.initiated_by))
    return actor


async def actors_by_district(
    district: str | None,
    include_inactive: bool,
    context: EventContext,
    *,
    uow_factory: UnitOfWorkFactory,
    within: Collection[str] | None = None,
    page: PageRequest = FIRST_PAGE,
    kind: str | None = None,
    text: str | None = None,
) -> Page[Actor]:
    """One page of the actors of ``district`` (all for None) with a district ``within`` those
    given (the caller's own, for a quarter manager; None for all), of ``kind`` (None: any), whose
    name or address holds ``text`` (None: any), oldest first."""
    async with uow_factory(context).for_reading() as uow:
        found = page_of(
            await uow.actors.find(district, include_inactive, within=within, page=page, kind=kind, text=text),
            page,
            lambda actor: (actor.created_at, actor.id),
        )
        await uow.audit.record(entries([actor.id for actor in found.items], "list", context.initiated_by))
    return found


async def emails_taken(emails: Collection[str], context: EventContext, *, uow_factory: UnitOfWorkFactory) -> set[str]:
    """Which of ``emails`` an actor already has (lower case): the import's match, not shown to anyone."""
    async with uow_factory(context).for_reading() as uow:
        return await uow.actors.emails_taken(emails)


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


async def erase_actor(command: EraseActor, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Erasure:
    """Erases the actor's personal data here and raises ``ActorErased`` for the other services, in
    one unit of work with its erasure record and audit entry. Asking again changes nothing but
    is audited too; the answer is the erasure record."""
    async with uow_factory(context) as uow:
        actor = await _existing(uow, command.actor_id)
        erased, event = actor.erase(command.by)
        if event is not None:
            erasure = Erasure.started(actor.id, command.by, _erased_at(erased))
            await uow.actors.save(erased)
            await uow.erasures.save(erasure)
            uow.record(event)
            # Kafka's way to delete the name and address on the compacted topics: a tombstone
            # under the actor id (a contact dead letter keeps its record's key, the actor id).
            uow.tombstone(Tombstone(CONTACTS_TOPIC, actor.id))
            uow.tombstone(Tombstone(CONTACTS_DEAD_LETTER_TOPIC, actor.id))
        else:  # erased before: its record was stored with it
            erasure = await uow.erasures.get(actor.id) or Erasure.started(actor.id, None, _erased_at(erased))
        await uow.audit.record(entries([actor.id], "erasure", context.initiated_by))
        await uow.commit()
    if event is not None:
        log.info("actor_erased", actor_id=actor.id)
    return erasure


def _erased_at(actor: Actor) -> datetime:
    """When the actor was erased (its last change, for a record stored before ``erased_at``)."""
    return actor.erased_at or actor.updated_at


async def erasure_of(actor_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> Erasure:
    """The actor's erasure record; ``ActorNotFound`` or ``NotErased`` when there is none."""
    async with uow_factory(context).for_reading() as uow:
        await _existing(uow, actor_id)
        erasure = await uow.erasures.get(actor_id)
    if erasure is None:
        raise NotErased(actor_id)
    return erasure


async def confirm_erasure(received: Received[ActorErasureConfirmed], *, uow_factory: UnitOfWorkFactory) -> None:
    """A service finished erasing its copy: store when (the first confirmation counts)."""
    event = received.event
    command = ConfirmErasure(event.actor_id, event.service, event.erased_at)
    async with uow_factory(received.context) as uow:
        erasure = await uow.erasures.get(command.actor_id)
        confirmed = erasure.confirmed(command.service, command.erased_at) if erasure else None
        if confirmed is None:
            log.info("erasure_confirmation_ignored", actor_id=command.actor_id, service=command.service[:64])
            return
        await uow.erasures.save(confirmed)
        await uow.commit()
    log.info("erasure_confirmed", actor_id=command.actor_id, service=command.service, complete=confirmed.complete)


async def withdraw_consent_by_link(received: Received[UnsubscribeRequested], *, uow_factory: UnitOfWorkFactory) -> None:
    """The person unsubscribed through the link of a mail: consent withdrawn at once (recorded
    by ``PERSON_VIA_LINK``), with ``ActorUpdated`` and ``ConsentWithdrawn`` in one unit of work.
    Idempotent: a repeated request, or one for an actor without consent, changes nothing; one for
    an actor we do not know (a preview's made-up one) is ignored."""
    event = received.event
    async with uow_factory(received.context) as uow:
        actor = await uow.actors.get(event.actor_id)
        if actor is None:
            log.info("unsubscribe_ignored", actor_id=event.actor_id, reason="unknown actor")
            return
        changed, raised = actor.unsubscribe(event.requested_at)
        if raised is None:
            log.info("unsubscribe_ignored", actor_id=actor.id, reason="no consent to withdraw")
            return
        await uow.actors.save(changed)
        for raised_event in raised:
            uow.record(raised_event)
        uow.record(changed.contact())
        await uow.commit()
    log.info("consent_withdrawn_by_link", actor_id=actor.id, revision=changed.revision)


async def audit_of(
    actor_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory, page: PageRequest = FIRST_PAGE
) -> Page[AuditEntry]:
    """One page of the actor's audit entries, oldest first."""
    async with uow_factory(context).for_reading() as uow:
        await _existing(uow, actor_id)
        found = await uow.audit.of_actor(actor_id, page)
    return page_of(found, page, lambda entry: (entry.at, entry.id))


async def export_actor(actor_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> ActorExport:
    """Everything this service holds about the actor; the export itself is audited first, so it
    is in the entries it shows."""
    async with uow_factory(context).for_reading() as uow:
        actor = await _existing(uow, actor_id)
        await uow.audit.record(entries([actor.id], "export", context.initiated_by))
        audit: list[AuditEntry] = []
        page = PageRequest(MAX_LIMIT)
        while True:
            found = page_of(await uow.audit.of_actor(actor_id, page), page, lambda e: (e.at, e.id))
            audit += found.items
            if found.next_cursor is None or not found.items:
                break
            page = PageRequest(MAX_LIMIT, (found.items[-1].at, found.items[-1].id))
        erasure = await uow.erasures.get(actor_id)
    return ActorExport(actor, audit, erasure)


async def _change(actor_id: str, change: Callable[[Actor], tuple[Actor, Event | None]], uow: UnitOfWork) -> Actor:
    async with uow:
        changed, event = change(await _existing(uow, actor_id))
        if event is not None:
            await uow.actors.save(changed)
            uow.record(event)
            uow.record(changed.contact(after=event))
            await uow.commit()
    return changed


async def publish_in_current_form(context: EventContext, *, uow_factory: UnitOfWorkFactory) -> int:
    """Upgrade to version 2 of the actor events, run at start-up: each actor stored before it
    (not marked as published in the current form) gets its snapshot (``ActorUpdated``) and its
    ``ContactChanged`` at its current revision recorded, or for an erased actor the tombstones,
    once (saving the actor marks it), so a consumer rebuilt from the compacted topics finds every
    actor. Consumers already at that revision change nothing. Returns how many were published."""
    published = 0
    async with uow_factory(context).for_reading() as reading:
        actor_ids = await reading.actors.not_published_in_current_form()
    for actor_id in actor_ids:
        async with uow_factory(context) as uow:
            actor = await uow.actors.get(actor_id)
            if actor is None:
                continue
            if actor.erased:
                uow.tombstone(Tombstone(CONTACTS_TOPIC, actor.id))
                uow.tombstone(Tombstone(CONTACTS_DEAD_LETTER_TOPIC, actor.id))
            else:
                uow.record(actor.snapshot())
                uow.record(actor.contact())
            await uow.actors.save(actor)  # marks it: published in the current form
            await uow.commit()
        published += 1
    if published:
        log.info("actors_published_in_current_form", count=published)
    return published


async def _existing(uow: UnitOfWork, actor_id: str) -> Actor:
    actor = await uow.actors.get(actor_id)
    if actor is None:
        raise ActorNotFound(actor_id)
    return actor
