"""A resend of a held revision: whether it says the same, and how to tell the reporter.

Pure. The same (source, id, revision) again is a retry over a bad link and is answered from
the store; with other content it is refused (409), since a correction is a new revision
and silently keeping either copy would leave one of two counts wrong. The write path
(store/report_writer.py, `held_answer`) decides with `resend_differences`; the API words it with
`conflict_detail`. No pydantic here: the SQLite writer process imports this.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from dispatcher.model import Point, Report

# What a resend of a held (source, id, revision) must carry unchanged: what the reporter
# said. What the service derived (the placed `region`, which a rule edit may change, the
# incident a report without a name joined, and the source's trust tier, which a rule edit
# may change too) is not the reporter's to repeat.
COUNTS = ("killed", "injured", "trapped", "rescued")


@dataclass(frozen=True, slots=True)
class Difference:
    """A field a resend gives otherwise than the held revision, both values as shown."""

    field: str  # as on the wire, e.g. "casualties.killed"
    stored: str
    sent: str

    @property
    def message(self) -> str:
        return f"stored {self.stored}, sent {self.sent}"


def resend_differences(sent: Report, held: Report, held_incident: str | None) -> list[Difference]:
    """How `sent` differs from the revision `held` under the same (source, id, revision):
    none for a true retry. Compared: kind, occurred_at (as instants), location, region as
    given, each count, status, notes (an empty note is no note), the site and, when the
    resend names one, the incident (the held revision is in `held_incident`)."""
    found = []
    if sent.kind != held.kind:
        found.append(Difference("kind", held.kind, sent.kind))
    if sent.occurred_at != held.occurred_at:
        found.append(
            Difference("occurred_at", held.occurred_at.isoformat(), sent.occurred_at.isoformat())
        )
    if sent.location != held.location:
        found.append(Difference("location", _where(held.location), _where(sent.location)))
    if sent.given_region != held.given_region:
        found.append(Difference("region", held.given_region or "none", sent.given_region or "none"))
    if sent.casualties != held.casualties:
        for name, stored, given in zip(COUNTS, held.casualties, sent.casualties, strict=True):
            if stored != given:
                found.append(Difference(f"casualties.{name}", str(stored), str(given)))
    if sent.status != held.status:
        found.append(Difference("status", held.status, sent.status))
    if (sent.notes or None) != (held.notes or None):
        found.append(Difference("notes", _said(held.notes), _said(sent.notes)))
    if sent.site != held.site:
        found.append(Difference("site", held.site or "none", sent.site or "none"))
    if sent.incident is not None and sent.incident != held_incident:
        found.append(Difference("incident", held_incident or "none", sent.incident))
    return found


def _where(point: Point | None) -> str:
    return f"{point.lat},{point.lon}" if point is not None else "none"


def _said(notes: str | None) -> str:
    return f"{len(notes)} characters" if notes else "none"


# A conflict in words: the fields that differ, by what they are about.
_ASPECTS = (
    ("casualties.", "other counts"),
    ("kind", "another kind"),
    ("occurred_at", "another time"),
    ("location", "another location"),
    ("region", "another region"),
    ("status", "another status"),
    ("notes", "other notes"),
    ("site", "another site"),
    ("incident", "another incident"),
)


def conflict_detail(revision: int, newest: int, differences: Sequence[Difference]) -> str:
    """A resend with other content, in words: which revision, what differs (the stored
    value first), and the revision that would correct it. E.g. "revision 1 is stored with
    other counts (killed 3, not 5); send it as revision 2 to correct it"."""
    parts = []
    for prefix, words in _ASPECTS:
        shown = [
            f"{d.field.removeprefix(prefix) + ' ' if prefix.endswith('.') else ''}"
            f"{d.stored}, not {d.sent}"
            for d in differences
            if d.field.startswith(prefix)
        ]
        if shown:
            parts.append(f"{words} ({'; '.join(shown)})")
    return (
        f"revision {revision} is stored with {' and '.join(parts)}; send it as revision "
        f"{newest + 1} to correct it"
    )
