"""Every Kafka topic of Quartier and its settings, declared in one place.

A topic's partition count, clean-up policy and retention are part of the contract: Kafka keys
depend on the partition count, and the data-protection promises depend on how long a topic keeps
what it holds. Services apply these settings at start-up (``kafka.ensure_topics``: a missing
topic is created with them, an existing one whose settings differ is altered where the broker
lets us, and reported where it does not); ``deploy/`` creates the same topics with the same
settings (a test compares the two).

Two kinds of topic:
- *Compacted* (``cleanup.policy=compact``), keyed by the entity's id: Kafka keeps at least the
  latest record per key, so a service rebuilt from scratch catches up on every actor. A tombstone
  (the key with no value) deletes what came before it under that key. How soon is bounded:
  ``max.compaction.lag.ms`` is the longest a record waits before the cleaner may compact it (with
  ``segment.ms`` rolling the active segment, which is never compacted, at least as often), and
  ``delete.retention.ms`` is how long the tombstone itself stays for consumers to see. An erased
  actor's address leaves the contact topic within ``ERASED_WITHIN_MS`` of the tombstone.
- *Deleting* (``cleanup.policy=delete``) with an explicit ``retention.ms``: long enough for a
  consumer that was down to catch up, and no longer.
- Dead letters wait for an operator for ``DEAD_LETTER_RETENTION_DAYS`` (a setting, 30 days by
  default: ``declared_topics``), then they are deleted: the main dead-letter topic by
  ``retention.ms``; the contact dead letters are compacted *and* deleted by age
  (``cleanup.policy=compact,delete``), so an erasure's tombstone still takes them out earlier.

The embedded broker (Tansu) stores these settings and reports them back, but compacts nothing:
the tests check the declared settings and the tombstones; compaction is Kafka's work in
production.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

HOUR_MS = 60 * 60 * 1000
DAY_MS = 24 * HOUR_MS

ACTORS_TOPIC = "quartier.actors"  # key: actor id; version 2 of the actor events: no name, no e-mail
CONTACTS_TOPIC = "quartier.contacts"  # key: actor id; names and addresses, read by notifications only
CONFERENCES_TOPIC = "quartier.conferences"  # key: conference id
INVITATIONS_TOPIC = "quartier.invitations"  # key: invitation id (spreads a fan-out over partitions)
DELIVERIES_TOPIC = "quartier.deliveries"  # key: invitation id
ANSWERS_TOPIC = "quartier.answers"  # key: invitation id
TEAMS_TOPIC = "quartier.teams"  # key: district code
ERASURES_TOPIC = "quartier.erasures"  # key: actor id; each service's confirmation that it erased an actor
UNSUBSCRIBES_TOPIC = "quartier.unsubscribes"  # key: actor id; a person's request, by link, to get no more mails
DEAD_LETTER_TOPIC = "quartier.dead-letters"
# Contact events that failed: they hold names and addresses, so they get a topic of their own,
# compacted and tombstoned with the contact topic (the dead letter keeps the actor id as key).
CONTACTS_DEAD_LETTER_TOPIC = "quartier.contacts.dead-letters"

# A record of an erased actor waits at most a day before the cleaner may compact it away; the
# tombstone stays a day longer so every consumer sees it. Segments roll hourly, so the newest
# records are not kept out of compaction by an active segment that never fills.
MAX_COMPACTION_LAG_MS = DAY_MS
DELETE_RETENTION_MS = DAY_MS
COMPACTED_SEGMENT_MS = HOUR_MS
ERASED_WITHIN_MS = MAX_COMPACTION_LAG_MS + COMPACTED_SEGMENT_MS

# Events: two weeks covers a consumer that was down over a long holiday weekend and then some.
EVENTS_RETENTION_MS = 14 * DAY_MS
# Dead letters wait for an operator: a month unless DEAD_LETTER_RETENTION_DAYS says otherwise.
DEAD_LETTERS_RETENTION_DAYS = 30


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: Mapping[str, str] = field(default_factory=dict)

    @property
    def compacted(self) -> bool:
        return "compact" in self.config.get("cleanup.policy", "").split(",")


def compacted(name: str, partitions: int) -> TopicSpec:
    return TopicSpec(
        name,
        partitions,
        {
            "cleanup.policy": "compact",
            "max.compaction.lag.ms": str(MAX_COMPACTION_LAG_MS),
            "delete.retention.ms": str(DELETE_RETENTION_MS),
            "segment.ms": str(COMPACTED_SEGMENT_MS),
        },
    )


def deleting(name: str, partitions: int, retention_ms: int = EVENTS_RETENTION_MS) -> TopicSpec:
    return TopicSpec(name, partitions, {"cleanup.policy": "delete", "retention.ms": str(retention_ms)})


def compacted_and_deleted(name: str, partitions: int, retention_ms: int) -> TopicSpec:
    """Compacted as ``compacted``, and besides every record deleted after ``retention_ms``."""
    spec = compacted(name, partitions)
    return TopicSpec(
        name, partitions, {**spec.config, "cleanup.policy": "compact,delete", "retention.ms": str(retention_ms)}
    )


def declared_topics(dead_letter_retention_days: int = DEAD_LETTERS_RETENTION_DAYS) -> dict[str, TopicSpec]:
    """Every topic with its settings; the dead-letter topics keep their records for
    ``dead_letter_retention_days`` (the setting ``DEAD_LETTER_RETENTION_DAYS``)."""
    dead_letters_ms = dead_letter_retention_days * DAY_MS
    specs = (
        compacted(ACTORS_TOPIC, 3),
        compacted(CONTACTS_TOPIC, 3),
        deleting(CONFERENCES_TOPIC, 3),
        deleting(INVITATIONS_TOPIC, 6),
        deleting(DELIVERIES_TOPIC, 6),
        deleting(ANSWERS_TOPIC, 3),
        compacted(TEAMS_TOPIC, 1),  # the latest member list per district; a handful, rarely changed
        deleting(ERASURES_TOPIC, 1),  # a few a year; the actors service records each confirmation
        deleting(UNSUBSCRIBES_TOPIC, 1),  # a few a month
        deleting(DEAD_LETTER_TOPIC, 1, dead_letters_ms),
        compacted_and_deleted(CONTACTS_DEAD_LETTER_TOPIC, 1, dead_letters_ms),
    )
    return {spec.name: spec for spec in specs}


# The topics with the default settings: what deploy/ creates and the tests compare against.
TOPICS: dict[str, TopicSpec] = declared_topics()

# Partition counts are explicit: Tansu would invent its own, and Kafka keys depend on them.
TOPIC_PARTITIONS: dict[str, int] = {name: spec.partitions for name, spec in TOPICS.items()}


def dead_letter_topic_for(topic: str) -> str:
    """Where a record of ``topic`` goes when it cannot be handled."""
    return CONTACTS_DEAD_LETTER_TOPIC if topic == CONTACTS_TOPIC else DEAD_LETTER_TOPIC


# Every dead-letter topic, the main one first (the default wherever one is chosen): where a record
# of any topic goes when it cannot be handled.
DEAD_LETTER_TOPICS: tuple[str, ...] = tuple(dict.fromkeys(dead_letter_topic_for(name) for name in TOPICS))
