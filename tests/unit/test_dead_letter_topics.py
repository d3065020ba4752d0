"""Every dead-letter topic comes from topics.py, and the operator's `quartier dlq --topic` names each."""

from __future__ import annotations

from quartier import dlq
from quartier.cli import _parser
from quartier_shared.dead_letters import DEAD_LETTER_TOPICS
from quartier_shared.topics import CONTACTS_DEAD_LETTER_TOPIC, DEAD_LETTER_TOPIC, TOPICS, dead_letter_topic_for


def test_the_dead_letter_topics_are_those_of_topics_py_main_first() -> None:
    assert DEAD_LETTER_TOPICS == (DEAD_LETTER_TOPIC, CONTACTS_DEAD_LETTER_TOPIC)
    assert set(DEAD_LETTER_TOPICS) == {dead_letter_topic_for(name) for name in TOPICS}
    assert set(DEAD_LETTER_TOPICS) <= set(TOPICS)


def test_quartier_dlq_topic_names_every_dead_letter_topic() -> None:
    assert sorted(dlq.DLQ_TOPICS.values()) == sorted(DEAD_LETTER_TOPICS)
    for command in ("list", "replay"):
        extra = ["--all"] if command == "replay" else []
        for name, topic in dlq.DLQ_TOPICS.items():
            args = _parser().parse_args(["dlq", command, "--topic", name, *extra])
            assert dlq.DLQ_TOPICS[args.topic] == topic
        assert _parser().parse_args(["dlq", command, *extra]).topic == "main"
