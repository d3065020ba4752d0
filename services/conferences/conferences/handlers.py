"""The use cases of the conferences service: the HTTP commands and queries, and the events it
consumes. Plain functions, wired in app.py and called by api.py and the consumer.

Every event handler is idempotent: the roster only moves forward by actor revision, invitation
ids are derived from (conference, actor) and so are the ids of their InvitationIssued events, and
a delivery outcome only moves an invitation forward (sent is final for its attempt; an outcome of
an earlier attempt changes nothing). A redelivered event therefore changes nothing. Drafts are
invited by nobody: neither the fan-out nor a late joiner reaches them until they are published.

Team meetings (``audience == "team"``) invite only the invitable members of the district's
competence team (the copy ``update_team`` keeps). A member is invited late when they become both:
by a roster change (``update_roster``) or by a team change (``update_team``). Leaving the team
withdraws no invitation.

Every transaction that issues invitations writes the conference's document too (``_issue``), so
it is serialised with a change or cancellation of it (changes.py); reminders are stored with the
conference when it is scheduled or published (reminders.py fires them).
Queries read through the unit of work's repositories and commit nothing.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from quartier_shared.actor_copies import erasure_confirmed
from quartier_shared.catalogue import load_catalogue
from quartier_shared.consumer import Received
from quartier_shared.events import (
    ActorDeactivated,
    ActorErased,
    ActorSnapshot,
    CompetenceTeamChanged,
    ConferenceScheduled,
    EventContext,
    InvitationFailed,
    InvitationSent,
    UnsubscribeRequested,
)
from quartier_shared.logging import get_logger
from quartier_shared.pagination import FIRST_PAGE, Page, PageRequest, page_of

from .commands import AnswerInvitation, PublishConference, ResendInvitation, ScheduleConference
from .domain import Conference, ConferenceGone, ConferenceNotFound, Invitation, InvitationNotFound, RosterEntry
from .teams import TeamCopy, members_by_district
from .unit_of_work import UnitOfWork, UnitOfWorkFactory, retry_conflicts

log = get_logger(__name__)


# --- HTTP -----------------------------------------------------------------------------------------


async def schedule_conference(
    command: ScheduleConference,
    context: EventContext,
    *,
    uow_factory: UnitOfWorkFactory,
    reminders_before: Sequence[tuple[str, timedelta]],
) -> Conference:
    """Store the conference with its ConferenceScheduled (the fan-out follows when that arrives)
    and its reminders, or, for a draft, with its ConferenceDrafted (nobody is invited)."""
    catalogue = load_catalogue()
    district = catalogue.district(command.district)
    if district is None:  # api.py accepts only the catalogue's codes
        raise ValueError(f"unknown district {command.district!r}")
    conference, event = Conference.schedule(command, district=district, timezone=catalogue.timezone)
    async with uow_factory(context) as uow:
        await uow.conferences.add(conference)
        await uow.reminders.replace_planned(conference.id, conference.reminders(reminders_before, datetime.now(UTC)))
        uow.record(event)
        await uow.commit()
    return conference


async def publish_conference(
    command: PublishConference,
    context: EventContext,
    *,
    uow_factory: UnitOfWorkFactory,
    reminders_before: Sequence[tuple[str, timedelta]],
) -> Conference:
    """Turn a draft into a scheduled conference; its ConferenceScheduled starts the fan-out, and its
    reminders not yet past are stored. One that is scheduled already is returned as it is, nothing
    raised (publishing twice is harmless); a cancelled one cannot be published (NotNow)."""

    async def attempt() -> Conference:
        async with uow_factory(context) as uow:
            conference = await uow.conferences.get(command.conference_id)
            if conference is None:
                raise ConferenceNotFound(command.conference_id)
            published, scheduled = conference.publish()
            if scheduled is None:
                return conference
            await uow.conferences.save(published)
            await uow.reminders.replace_planned(published.id, published.reminders(reminders_before, datetime.now(UTC)))
            uow.record(scheduled, event_id=published.published_event_id)
            await uow.commit()
        log.info("conference_published", conference_id=published.id)
        return published

    return await retry_conflicts(attempt)


async def resend_invitation(
    command: ResendInvitation, context: EventContext, *, uow_factory: UnitOfWorkFactory
) -> Invitation:
    """Send one invitation again: a new attempt, pending until its outcome arrives (run again
    when the invitation's outcome or answer is written at the same moment)."""

    async def attempt() -> tuple[Conference, Invitation]:
        async with uow_factory(context) as uow:
            conference = await uow.conferences.get(command.conference_id)
            if conference is None:
                raise ConferenceNotFound(command.conference_id)
            invitation = await uow.invitations.get(command.invitation_id)
            if invitation is None or invitation.conference_id != conference.id:
                raise InvitationNotFound(command.invitation_id)
            again, issued = invitation.resent(conference, datetime.now(UTC))
            await uow.invitations.save(again)
            uow.record(issued, event_id=again.issued_event_id)
            await uow.commit()
        return conference, again

    conference, again = await retry_conflicts(attempt)
    log.info("invitation_resent", conference_id=conference.id, invitation_id=again.id, resend=again.resend)
    return again


async def conference_with_invitations(
    conference_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory
) -> tuple[Conference, list[Invitation]]:
    async with uow_factory(context).for_reading() as uow:
        conference = await uow.conferences.get(conference_id)
        if conference is None:
            raise ConferenceNotFound(conference_id)
        return conference, await uow.invitations.for_conference(conference_id)


EXPORT_LIMIT = 1000  # invitations in an actor's export, by id


@dataclass(frozen=True)
class ActorExport:
    """What this service holds about one actor (GDPR Art. 15): its roster entry (None: none) and
    up to ``EXPORT_LIMIT`` of its invitations, each with its conference (None: not found)."""

    roster_entry: RosterEntry | None
    invitations: list[tuple[Invitation, Conference | None]]

    @property
    def truncated(self) -> bool:
        return len(self.invitations) >= EXPORT_LIMIT


async def export_actor(actor_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory) -> ActorExport:
    async with uow_factory(context).for_reading() as uow:
        entry = await uow.roster.get(actor_id)
        invitations = await uow.invitations.of_actor(actor_id, EXPORT_LIMIT)
        conferences = {c: await uow.conferences.get(c) for c in {i.conference_id for i in invitations}}
    return ActorExport(entry, [(i, conferences[i.conference_id]) for i in invitations])


async def unsubscribed_among(
    actor_ids: Collection[str], context: EventContext, *, uow_factory: UnitOfWorkFactory
) -> set[str]:
    """Those of ``actor_ids`` who no longer consent to mails, as the roster copy knows it from the
    actors' events (by the unsubscribe link, or withdrawn by staff)."""
    async with uow_factory(context).for_reading() as uow:
        return await uow.roster.without_consent(actor_ids)


async def conferences_by_district(
    district: str | None,
    context: EventContext,
    *,
    uow_factory: UnitOfWorkFactory,
    within: Collection[str] | None = None,
    page: PageRequest = FIRST_PAGE,
) -> Page[Conference]:
    """One page of the conferences of ``district`` (all for None) and ``within`` those given (the
    caller's own, for a quarter manager; None for all), earliest first."""
    async with uow_factory(context).for_reading() as uow:
        found = await uow.conferences.find(district, within=within, page=page)
    return page_of(found, page, lambda conference: (conference.starts_at, conference.id))


# --- the answer page (the personal link is the credential) -----------------------------------------


async def invitation_to_answer(
    invitation_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory, now: datetime | None = None
) -> tuple[Conference, Invitation]:
    """The invitation a link names and its conference, if it still takes answers:
    InvitationNotFound for an unknown one or one of an erased actor, ConferenceGone once cancelled
    or begun."""
    async with uow_factory(context).for_reading() as uow:
        invitation = await uow.invitations.get(invitation_id)
        conference = await uow.conferences.get(invitation.conference_id) if invitation else None
        erased = await _erased(uow, invitation)
    if invitation is None or conference is None or erased:
        raise InvitationNotFound(invitation_id)
    if not conference.is_upcoming(now):
        raise ConferenceGone(conference.id)
    return conference, invitation


async def answer_invitation(
    command: AnswerInvitation, context: EventContext, *, uow_factory: UnitOfWorkFactory, now: datetime | None = None
) -> tuple[Conference, Invitation]:
    """Store the answer on the invitation with its InvitationAnswered; it replaces an earlier one.
    An erased actor's invitation takes none (InvitationNotFound): nothing personal comes back."""
    moment = now or datetime.now(UTC)

    async def attempt() -> tuple[Conference, Invitation]:
        async with uow_factory(context) as uow:
            invitation = await uow.invitations.get(command.invitation_id)
            conference = await uow.conferences.get(invitation.conference_id) if invitation else None
            if invitation is None or conference is None or await _erased(uow, invitation):
                raise InvitationNotFound(command.invitation_id)
            invitation, answered = invitation.answered(command, conference, moment)
            await uow.invitations.save_answer(invitation)
            uow.record(answered)
            await uow.commit()
        return conference, invitation

    # The invitation's outcome (InvitationSent) or its actor's erasure may be written at the same
    # moment: the answer runs again and then sees it, instead of answering the person 503.
    conference, invitation = await retry_conflicts(attempt)
    # Ids only: the deputy's name and the comment never reach a log.
    log.info("invitation_answered", invitation_id=invitation.id, conference_id=conference.id)
    return conference, invitation


async def request_unsubscribe(
    actor_id: str, context: EventContext, *, uow_factory: UnitOfWorkFactory, now: datetime | None = None
) -> None:
    """A person asked through the unsubscribe link to get no more mails: ``UnsubscribeRequested``
    through the outbox, for the actors service, which owns consent. Nothing else is stored here;
    asking twice asks twice (the actors service withdraws consent once)."""
    async with uow_factory(context) as uow:
        uow.record(UnsubscribeRequested(actor_id=actor_id, requested_at=now or datetime.now(UTC)))
        await uow.commit()
    log.info("unsubscribe_requested", actor_id=actor_id)


# --- consumed events ------------------------------------------------------------------------------


async def update_roster(
    received: Received[ActorSnapshot | ActorDeactivated], *, uow_factory: UnitOfWorkFactory
) -> None:
    """Keep the roster copy current; invite an actor who became invitable to the upcoming
    conferences of its districts (a late joiner). Late joiners of one conference, handled side
    by side, conflict over its document (``_issue``): each is run again until it gets through."""
    event = received.event

    async def attempt() -> tuple[RosterEntry | None, int]:
        async with uow_factory(received.context) as uow:
            entry = RosterEntry.after(event, await uow.roster.get(event.actor_id))
            if entry is None:
                return None, 0
            await uow.roster.save(entry)
            upcoming = await uow.conferences.upcoming_in(entry.districts, datetime.now(UTC)) if entry.invitable else []
            teams = await _teams_of(uow, upcoming)
            late = [
                c
                for c in upcoming
                if c.invites(entry, teams.get(c.district, ())) and not await uow.invitations.exists(c.id, entry.id)
            ]
            for conference in late:
                await _issue(uow, conference, [entry.id])
            await uow.commit()
        return entry, len(late)

    entry, invited = await retry_conflicts(attempt)
    if entry is not None and invited:
        log.info("late_joiner_invited", actor_id=entry.id, conferences=invited)


SERVICE = "conferences"


async def erase_actor(received: Received[ActorErased], *, uow_factory: UnitOfWorkFactory) -> None:
    """Erase what this service holds of the actor (GDPR Art. 17): its roster entry becomes erased
    (inactive for good; its invitations take no more answers), and its answers lose their free
    text (the deputy's name, the comment) but keep their counts, so the conferences' figures do
    not change. Confirmed with ``ActorErasureConfirmed`` in
    the same unit of work. Run again, it changes nothing and confirms again (the same event id)."""
    event = received.event
    async with uow_factory(received.context) as uow:
        entry = RosterEntry.erased_after(event, await uow.roster.get(event.actor_id))
        if entry is not None:
            await uow.roster.save(entry)
        invitations = await uow.invitations.of_actor(event.actor_id)
        anonymised = [e for i in invitations if (e := i.erased()) is not None]
        # Every one is written, changed or not: an answer stored at this moment writes it too, so
        # one of the two transactions conflicts (the erasure is retried, or the answer fails), and
        # the answer page refuses an erased actor's invitations from then on.
        for invitation in invitations:
            await uow.invitations.save_answer(invitation.erased() or invitation)
        confirmed, event_id = erasure_confirmed(event.actor_id, SERVICE, datetime.now(UTC))
        uow.record(confirmed, event_id=event_id)
        await uow.commit()
    log.info("actor_erased", actor_id=event.actor_id, answers_anonymised=len(anonymised))


async def invite_district(
    received: Received[ConferenceScheduled], *, uow_factory: UnitOfWorkFactory, batch_size: int
) -> None:
    """Fan-out: one invitation for every invitable actor of the district, ``batch_size`` per
    transaction. Re-running it (after a crash or a redelivery) issues only the ones still missing."""
    async with uow_factory(received.context) as uow:
        conference = await uow.conferences.get(received.event.conference_id)
        if conference is None or not conference.is_upcoming():
            return
        invitable = await uow.roster.invitable_in(conference.district)
        team = await _teams_of(uow, [conference])
        invitable = conference.audience_of(invitable, team.get(conference.district, ()))
        already = await uow.invitations.invited_actor_ids(conference.id)
    missing = [actor_id for actor_id in invitable if actor_id not in already]

    async def issue(chunk: list[str]) -> bool:
        """One batch; False once the conference is no longer upcoming (changed or cancelled)."""
        async with uow_factory(received.context) as uow:
            # Read again in the batch's transaction: changed or cancelled meanwhile (see _issue).
            current = await uow.conferences.get(conference.id) or conference
            if not current.is_upcoming():
                return False
            await _issue(uow, current, chunk)
            await uow.commit()
        return True

    for start in range(0, len(missing), batch_size):
        chunk = missing[start : start + batch_size]
        if not await retry_conflicts(lambda: issue(chunk)):  # noqa: B023 (awaited at once)
            break
    log.info("invitations_issued", conference_id=conference.id, issued=len(missing), already=len(already))


async def update_team(received: Received[CompetenceTeamChanged], *, uow_factory: UnitOfWorkFactory) -> None:
    """Keep the copy of the district's competence team current; invite its invitable members to the
    district's upcoming team meetings they are not yet invited to (a member added later). Members
    who left keep their invitations."""
    event = received.event
    async with uow_factory(received.context) as uow:
        team = TeamCopy.after(event, await uow.teams.get(event.district))
        if team is None:
            return
        await uow.teams.save(team)
        upcoming = await uow.conferences.upcoming_in([team.district], datetime.now(UTC))
        meetings = [c for c in upcoming if c.audience == "team"]
        entries = {actor_id: await uow.roster.get(actor_id) for actor_id in team.members} if meetings else {}
        issued = 0
        for conference in meetings:
            late = [
                e.id
                for e in entries.values()
                if e is not None
                and conference.invites(e, team.members)
                and not await uow.invitations.exists(conference.id, e.id)
            ]
            if late:
                await _issue(uow, conference, late)
            issued += len(late)
        # A member not invitable here may become so in a roster change running at this moment, which
        # reads the team as it was: holding the members' entries makes one of the two retry.
        await uow.roster.hold(list(entries))
        await uow.commit()
    log.info("team_copied", district=team.district, revision=team.revision, meetings=len(meetings), issued=issued)


async def record_outcomes(
    batch: list[Received[InvitationSent | InvitationFailed]], *, uow_factory: UnitOfWorkFactory
) -> None:
    """Delivery outcomes of a whole batch in one unit of work; a repeated or late one changes nothing."""
    # No events are caused here, so the context of any event of the batch will do.
    async with uow_factory(batch[0].context) as uow:
        await uow.invitations.record_outcomes([item.event for item in batch])
        await uow.commit()


async def _erased(uow: UnitOfWork, invitation: Invitation | None) -> bool:
    """Whether the actor of ``invitation`` was erased (its roster entry says so)."""
    if invitation is None:
        return False
    entry = await uow.roster.get(invitation.actor_id)
    return entry is not None and entry.erased


async def _teams_of(uow: UnitOfWork, conferences: Sequence[Conference]) -> dict[str, frozenset[str]]:
    """The team members of the districts of those ``conferences`` that are team meetings."""
    districts = {c.district for c in conferences if c.audience == "team"}
    return dict(members_by_district(await uow.teams.get_many(districts))) if districts else {}


async def _issue(uow: UnitOfWork, conference: Conference, actor_ids: Sequence[str]) -> None:
    """Store the invitations of ``actor_ids`` to ``conference``, each with its InvitationIssued.
    Writes the conference's document too: a change or cancellation committing meanwhile (after this
    transaction read the conference) makes it conflict and run again, and then it reads the
    conference as changed or cancelled."""
    issued = [Invitation.issue(conference, actor_id) for actor_id in actor_ids]
    await uow.invitations.add_many([invitation for invitation, _ in issued])
    # Last, so the conference is held only for the moment before the commit: a change or
    # cancellation (which writes it first) is not kept waiting behind a long fan-out.
    await uow.conferences.touch(conference.id)
    for invitation, event in issued:
        # A derived event id: were the same invitation ever issued twice, consumers would see one
        # event twice (and skip the repeat), not two events.
        uow.record(event, event_id=invitation.issued_event_id)
