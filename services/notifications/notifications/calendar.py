"""iCalendar (RFC 5545 / iTIP RFC 5546) invitations for one conference and one attendee.

The UID depends only on the conference, so every update or cancellation we send later lands on
the entry the attendee's calendar already holds; SEQUENCE tells the client which version wins.

The attendee is not asked for a calendar reply (``RSVP=FALSE``): nothing reads the organiser's
mailbox, so an "Accept" clicked in a calendar would be lost. The DESCRIPTION points to the
personal answer link instead, which is why it is written per attendee, like the ATTENDEE line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import MAXYEAR, MINYEAR, UTC, date, datetime
from functools import lru_cache
from typing import Final
from zoneinfo import ZoneInfo

from icalendar import Calendar, Component, Event, vCalAddress

from quartier_shared.events import ConferenceDetails

PRODID: Final = "-//Quartier//Integration conferences//DE"
METHODS: Final = frozenset({"REQUEST", "CANCEL"})


def conference_uid(conference_id: str, domain: str) -> str:
    """The UID every calendar object about this conference carries, in every mail we send."""
    return f"conference-{conference_id}@{domain}"


@lru_cache(maxsize=64)
def _timezone(name: str, first_year: int, last_year: int) -> Component:
    """The VTIMEZONE of a zone for these years: the same for every mail of a conference, and
    generating it is most of the cost of a calendar file, so it is made once."""
    probe = Calendar()
    event = Event()
    event.add("dtstart", datetime(first_year + 1, 1, 1, tzinfo=ZoneInfo(name)))
    probe.add_component(event)
    probe.add_missing_timezones(first_date=date(first_year, 1, 1), last_date=date(last_year, 1, 1))
    timezone: Component = probe.walk("VTIMEZONE")[0]
    return timezone


def _address(email: str, name: str) -> vCalAddress:
    address = vCalAddress(f"mailto:{email}")
    # Line breaks would end the content line; a name is one line anyway.
    address.params["CN"] = " ".join(name.split())
    return address


@dataclass(frozen=True)
class CalendarTemplate:
    """One conference's ``.ics`` without its ATTENDEE: made once, completed per recipient.

    Serialising the whole calendar is most of the cost of a mail; only the attendee differs.
    """

    before_attendee: bytes
    after_attendee: bytes
    agenda: str  # the numbered agenda, the DESCRIPTION's first part ("" without one)

    def for_attendee(self, email: str, name: str, answer_line: str = "") -> bytes:
        """The calendar of one attendee; ``answer_line`` (the sentence with their personal link)
        ends the DESCRIPTION."""
        description = "\n\n".join(part for part in (self.agenda, answer_line) if part)
        return self.before_attendee + _attendee_lines(email, name, description) + self.after_attendee


def invitation_calendar(
    *,
    conference: ConferenceDetails,
    organizer_email: str,
    organizer_name: str,
    attendee_email: str,
    attendee_name: str,
    uid_domain: str,
    method: str = "REQUEST",
    answer_line: str = "",
) -> bytes:
    """The ``.ics`` of an invitation (``method="REQUEST"``) or its cancellation (``"CANCEL"``).

    A cancellation must carry a higher ``conference.sequence`` than the request it withdraws,
    or clients ignore it; the caller owns that counter. ``answer_line``: the sentence with the
    attendee's personal link, which ends the DESCRIPTION.
    """
    template = calendar_template(
        conference=conference,
        organizer_email=organizer_email,
        organizer_name=organizer_name,
        uid_domain=uid_domain,
        method=method,
    )
    return template.for_attendee(attendee_email, attendee_name, answer_line)


def calendar_template(
    *, conference: ConferenceDetails, organizer_email: str, organizer_name: str, uid_domain: str, method: str
) -> CalendarTemplate:
    if method not in METHODS:
        raise ValueError(f"unsupported iTIP method {method!r}, expected one of {sorted(METHODS)}")
    tz = ZoneInfo(conference.timezone)  # unknown zone: ZoneInfoNotFoundError, a bad message
    starts_at = conference.starts_at.astimezone(tz)
    ends_at = conference.ends_at.astimezone(tz)

    calendar = Calendar()
    calendar.add("prodid", PRODID)
    calendar.add("version", "2.0")
    calendar.add("method", method)
    # Transitions from the year before to the year after are enough for this one event and keep
    # the VTIMEZONE short (the library default spans 1970-2038).
    # Clamped to what a date can hold, so no year (1, 9999) breaks every mail of a conference.
    first_year = min(max(starts_at.year - 1, MINYEAR), MAXYEAR - 1)
    calendar.add_component(
        _timezone(conference.timezone, first_year, max(min(ends_at.year + 2, MAXYEAR), first_year + 1))
    )

    event = Event()
    event.add("uid", conference_uid(conference.conference_id, uid_domain))
    event.add("sequence", min(max(conference.sequence, 0), 2**31 - 1))  # RFC 5545: a 32-bit integer
    event.add("dtstamp", datetime.now(UTC))
    # Local times with TZID (not UTC) keep the wall-clock time right if the zone rules change.
    event.add("dtstart", starts_at)
    event.add("dtend", ends_at)
    event.add("summary", conference.title)
    event.add("location", f"{conference.venue.name}, {conference.venue.address}")
    event.add("organizer", _address(organizer_email, organizer_name))
    event.add("status", "CANCELLED" if method == "CANCEL" else "CONFIRMED")
    calendar.add_component(event)
    ics: bytes = calendar.to_ical()  # icalendar leaves this untyped
    end = ics.rindex(_END_EVENT)  # the description and the attendee go last in the event
    agenda = "\n".join(f"{number}. {item}" for number, item in enumerate(conference.agenda, 1))
    return CalendarTemplate(ics[:end], ics[end:], agenda)


_BEGIN_EVENT: Final = b"BEGIN:VEVENT\r\n"
_END_EVENT: Final = b"END:VEVENT\r\n"


def _attendee_lines(email: str, name: str, description: str) -> bytes:
    """The DESCRIPTION (when there is one) and ATTENDEE content lines, escaped and folded by
    icalendar itself."""
    attendee = _address(email, name)
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    attendee.params["PARTSTAT"] = "NEEDS-ACTION"
    attendee.params["RSVP"] = "FALSE"  # answers come through the personal link, see the docstring
    event = Event()
    if description:
        event.add("description", description)
    event.add("attendee", attendee)
    raw: bytes = event.to_ical()
    return raw[len(_BEGIN_EVENT) : -len(_END_EVENT)]
