"""Wiring of the notifications service: the one place where its parts are put together."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import partial

from fastapi import FastAPI

from quartier_shared.events import (
    ActorErased,
    ActorErasureConfirmed,
    ConferenceDrafted,
    ConferenceScheduled,
    ContactChanged,
    InvitationAnswered,
    InvitationCancelled,
    InvitationFailed,
    InvitationIssued,
    InvitationReminded,
    InvitationSent,
    InvitationUpdated,
)
from quartier_shared.retention import run_daily
from quartier_shared.runtime import Runtime, create_app

from . import follow_ups, handlers
from .api import build_router
from .deferrals import Deferral
from .deferred_sending import DeferredSending
from .mail import Sender
from .personal_links import PersonalLinks
from .privacy_api import build_privacy_router
from .rate_limit import MongoPace
from .recording import OutcomeRecorder
from .repository import create_indexes
from .retention import retention_job
from .sending import SYSTEM_CLOCK, Clock, Sending, SendingPolicy
from .settings import Settings
from .smtp import SmtpSender
from .unit_of_work import MongoNotificationsUnitOfWork, UnitOfWorkFactory

STOP_FOLD_SECONDS = 5.0  # what is not folded by then, another instance (or the next start) folds


async def _within(seconds: float, work: Callable[[], Awaitable[None]]) -> None:
    async with asyncio.timeout(seconds):
        await work()


def build(settings: Settings | None = None, clock: Clock = SYSTEM_CLOCK) -> FastAPI:
    """The service; ``clock``: the time of its sending (leases, deferrals, the relay's pace), which
    tests replace to drive hours of a relay's answers in seconds."""
    settings = settings or Settings()
    runtime = Runtime(settings, create_indexes)
    uow_factory: UnitOfWorkFactory = runtime.unit_of_work(MongoNotificationsUnitOfWork)
    smtp = SmtpSender(settings)
    links = PersonalLinks.of(settings.public_url, settings.link_signing_key)
    runtime.on_start(links.check)  # no key, no start: every mail needs a link that works
    policy = SendingPolicy(
        sender=Sender(name=settings.smtp_from_name, email=settings.smtp_from),
        mail_domain=settings.mail_domain,
        lease_seconds=settings.delivery_lease_seconds,
        claim_size=settings.delivery_claim_size,
        claims_in_flight=settings.delivery_claims_in_flight,
        links=links,
        privacy_url=settings.privacy_url,
        deferral=Deferral(retry_for=settings.smtp_retry_for),
        pace=MongoPace(runtime.db, settings.smtp_rate_per_minute) if settings.smtp_rate_per_minute else None,
    )

    # One per instance: its sender slots (one per SMTP connection) bound what a crash sends twice;
    # its folder moves logged outcomes into the deliveries, and what is left at a stop is folded.
    recorder = OutcomeRecorder(
        uow_factory, senders=settings.smtp_connections, now=clock.now, owner=runtime.outbox.owner
    )
    runtime.run_in_background("outcome-folder", recorder.run)

    sending = Sending(uow_factory, smtp, recorder, policy, clock)

    limit = handlers.TestMailLimit(per_hour=settings.test_mails_per_conference_per_hour)
    contact = partial(handlers.update_contact, sending=sending)
    invitations = partial(handlers.send_invitations, sending=sending)
    confirmations = partial(handlers.send_confirmations, sending=sending)
    conference = partial(handlers.keep_conference, uow_factory=uow_factory)
    following = follow_ups.FollowUps(sending)
    erase = partial(handlers.erase_contact, uow_factory=uow_factory)
    runtime.consume(
        group_id="notifications",
        handlers={
            # Names and addresses from the contact topic only; of the actor events just erasure.
            ContactChanged: contact,
            ActorErased: erase,
            ConferenceDrafted: conference,
            ConferenceScheduled: conference,
        },
        batch_handlers={
            InvitationIssued: invitations,
            InvitationAnswered: confirmations,
            InvitationUpdated: following.updates,
            InvitationCancelled: following.cancellations,
            InvitationReminded: following.reminders,
        },
    )
    runtime.on_stop(smtp.close)
    runtime.on_stop(partial(_within, STOP_FOLD_SECONDS, recorder.flush))
    deferred = DeferredSending(sending, service=settings.service_name)
    runtime.run_in_background("deferred-sending", deferred.run)
    retention = retention_job(runtime.db, settings.retention_months)
    runtime.run_in_background("retention", partial(run_daily, retention))
    app = create_app(
        runtime,
        "Invitation e-mails with calendar files and personal answer links, the confirmation of each answer,"
        " the update, cancellation and reminder mails that follow an invitation,"
        " and previews and test mails of a conference's invitation",
        routers=[build_router(uow_factory, mailer=smtp, policy=policy, limit=limit), build_privacy_router(uow_factory)],
        publishes=[InvitationSent, InvitationFailed, ActorErasureConfirmed],
    )
    app.state.retention = retention  # tests run it with a clock of their own
    app.state.deferred = deferred  # and send what is due at once (by the clock given to build)
    return app
