"""The dead-letter contract: the topic and the headers a dead letter carries.

Written by the consumer (``quartier_shared.consumer``), read by the operators' ``quartier dlq`` and
each service's operations endpoints (``quartier_shared.dead_letter_reading``). Every dead-letter
topic (``DEAD_LETTER_TOPICS``, from ``quartier_shared.topics``): the main one first, then the
contact events' own, whose values hold names and addresses.

A dead letter is the original record (key, value, headers) plus these headers, so an operator can
see where it came from and why it failed, and replay it to where it came from.
"""

from __future__ import annotations

from .topics import DEAD_LETTER_TOPIC, DEAD_LETTER_TOPICS

__all__ = [
    "DEAD_LETTER_TOPIC",
    "DEAD_LETTER_TOPICS",
    "ERROR_CLASS",
    "ERROR_MESSAGE",
    "FAILED_AT",
    "OFFSET",
    "ORIGINAL_TOPIC",
    "PARTITION",
    "PREFIX",
    "REPLAYED_FROM",
    "SERVICE",
]

PREFIX = "dlq."
ORIGINAL_TOPIC = "dlq.original_topic"
PARTITION = "dlq.partition"
OFFSET = "dlq.offset"
SERVICE = "dlq.service"  # the consumer that gave up: its SERVICE_NAME
ERROR_CLASS = "dlq.error_class"
ERROR_MESSAGE = "dlq.error_message"  # without the message's personal data
FAILED_AT = "dlq.failed_at"  # ISO 8601, UTC
# Set on a replayed record, and kept if it fails again: the DLQ offset it was replayed from.
REPLAYED_FROM = "dlq.replayed_from"
