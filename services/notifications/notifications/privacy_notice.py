"""The one-time notice (GDPR Art. 14) to a person whose consent staff recorded on their behalf.

Contract of ``render_privacy_notice``: in the recipient's language (German or English), plain
text and HTML (every value escaped there), it says
- what is stored: name, e-mail address, districts, kind and language;
- why: invitations to the district's integration conferences and meetings of the city's
  integration network;
- by whom: the city, as the sender (``SMTP_FROM_NAME``), never the staff member who recorded it;
- how long and their rights, in one sentence, with the privacy notice (``PRIVACY_URL``);
and it carries the unsubscribe headers and footer of every mail to an actor (``footer``). Its
Message-ID is derived from the actor id, so a mail sent again after a crash carries the same one.
The unsubscribe link is personal: filled in per mail, never logged.
"""

from __future__ import annotations

import uuid
from typing import Final

from quartier_shared.events import Language

from .domain import ID_NAMESPACE, NOTICE
from .footer import Footer
from .mail import TEMPLATES, OutgoingMail, Recipient, Sender, message_id
from .notices import _Body, _compose, _LinkSentence

WORDING: Final[dict[Language, dict[str, str]]] = {
    "de": {
        "subject": "Ihre Daten im Integrationsnetzwerk: Information nach Art. 14 DSGVO",
        "intro": "{sender} hat Ihre Einwilligung in E-Mail-Benachrichtigungen für Sie eingetragen. "
        "Darüber informieren wir Sie einmalig (Art. 14 DSGVO).",
        "what": "Gespeichert werden Ihr Name, Ihre E-Mail-Adresse, Ihre Stadtbezirke, die Art Ihrer "
        "Organisation und Ihre Sprache.",
        "why": "Wir nutzen sie, um Sie zu den Integrationskonferenzen Ihres Stadtbezirks und zu Treffen "
        "des städtischen Integrationsnetzwerks einzuladen.",
        "who": "Verantwortlich ist die Stadt: {sender}.",
        "rights": "Wir speichern die Daten, bis Sie widersprechen oder die Löschung verlangen; Sie haben "
        "das Recht auf Auskunft, Berichtigung, Löschung und Widerruf, mehr in den Datenschutzhinweisen: {link}",
    },
    "en": {
        "subject": "Your data in the integration network: information under Art. 14 GDPR",
        "intro": "{sender} recorded your consent to e-mail notifications on your behalf. We tell you "
        "about it once (Art. 14 GDPR).",
        "what": "What is stored: your name, your e-mail address, your districts, the kind of your "
        "organisation and your language.",
        "why": "We use it to invite you to the integration conferences of your district and to meetings "
        "of the city's integration network.",
        "who": "The controller is the city: {sender}.",
        "rights": "We keep the data until you object or ask for its erasure; you have the right to access, "
        "rectification, erasure and withdrawal, more in the privacy notice: {link}",
    },
}


def notice_message_id(actor_id: str, domain: str) -> str:
    """Derived from the actor id (through a UUID, so any id fits a Message-ID): one per actor."""
    return message_id(str(uuid.uuid5(ID_NAMESPACE, f"{NOTICE}:{actor_id}")), NOTICE, domain)


def render_privacy_notice(
    *, recipient: Recipient, sender: Sender, msg_id: str, privacy_url: str, footer: Footer
) -> OutgoingMail:
    language = recipient.language
    t, w = TEMPLATES[language], WORDING[language]
    paragraphs = (
        t["greeting"].format(name=recipient.name),
        w["intro"].format(sender=sender.name),
        w["what"],
        w["why"],
        w["who"].format(sender=sender.name),
    )
    body = _Body(w["subject"], (*paragraphs, _LinkSentence(w["rights"])))
    return _compose(body, recipient, sender, msg_id, None, privacy_url, None, footer)
