"""DEAD_LETTER_RETENTION_DAYS: how long both dead-letter topics keep a dead letter, and nothing else."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from quartier_shared.settings import ServiceSettings
from quartier_shared.topics import DAY_MS, DEAD_LETTER_TOPICS, TOPICS, declared_topics


def test_the_setting_changes_the_dead_letter_topics_only() -> None:
    declared = declared_topics(ServiceSettings(dead_letter_retention_days=90).dead_letter_retention_days)
    for name in DEAD_LETTER_TOPICS:
        assert declared[name].config["retention.ms"] == str(90 * DAY_MS), name
    others = {name: spec for name, spec in declared.items() if name not in DEAD_LETTER_TOPICS}
    assert others == {name: spec for name, spec in TOPICS.items() if name not in DEAD_LETTER_TOPICS}


def test_the_default_is_thirty_days_and_the_contact_dead_letters_stay_compacted() -> None:
    assert ServiceSettings().dead_letter_retention_days == 30
    for name in DEAD_LETTER_TOPICS:
        assert TOPICS[name].config["retention.ms"] == str(30 * DAY_MS)
    contacts = TOPICS["quartier.contacts.dead-letters"]
    assert contacts.compacted and contacts.config["cleanup.policy"] == "compact,delete"  # tombstones still erase


@pytest.mark.parametrize("days", [0, -1, 3651])
def test_a_retention_out_of_bounds_is_refused(days: int) -> None:
    with pytest.raises(ValidationError, match="dead_letter_retention_days"):
        ServiceSettings(dead_letter_retention_days=days)
