"""This service's copy of each district's competence team, built from ``CompetenceTeamChanged``.

A copy holds what deciding who is invited to a team meeting needs: the members' actor ids (no
names) and the team's revision. It only moves forward by that revision, so an older or repeated
event changes nothing, in whatever order the events arrive. Membership alone invites nobody: a
member is invited to a team meeting only while the roster says they are invitable (active and
consenting). Who leaves the team keeps the invitations they already have.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from quartier_shared.events import CompetenceTeamChanged


@dataclass(frozen=True)
class TeamCopy:
    district: str  # the district's code, the copy's id
    members: tuple[str, ...] = ()  # actor ids
    revision: int = 0  # 0: no team set yet

    @classmethod
    def after(cls, event: CompetenceTeamChanged, current: TeamCopy | None) -> TeamCopy | None:
        """The copy once ``event`` is applied; None when it changes nothing (older or repeated)."""
        if current is not None and current.revision >= event.revision:
            return None
        return cls(district=event.district, members=tuple(dict.fromkeys(event.members)), revision=event.revision)


def members_by_district(teams: Iterable[TeamCopy]) -> Mapping[str, frozenset[str]]:
    """The members of each team given, by district (a district without a copy has none)."""
    return {team.district: frozenset(team.members) for team in teams}
