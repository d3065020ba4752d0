"""What a city coordinator asks of the notifications service: one frozen dataclass per command.

They say what is wanted, already checked at the edge (api.py); the handlers decide what follows.
"""

from __future__ import annotations

from dataclasses import dataclass

from quartier_shared.events import Language


@dataclass(frozen=True)
class SendTestMail:
    conference_id: str
    email: str  # where the test mail goes; never logged, never stored
    language: Language
