"""Rendering an update for a leader's phone, in the leader's language.

Pure: a `Summary` in, a title and a body out. Lines are "label: number" so that Arabic needs
no plural agreement; Arabic text is wrapped in a right-to-left embedding so that numbers and
Latin place names inside it do not reorder the line on phones that guess the direction.
Limits: titles stay under 65 characters and bodies under 240, what a locked Android or iOS
screen shows without expanding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta, tzinfo

from dispatcher.group import Summary
from dispatcher.rules.templates import fill

TITLE_MAX = 65
BODY_MAX = 240

RLE = "\u202b"  # right-to-left embedding
PDF = "\u202c"  # pop directional formatting

KIND_NAMES: dict[str, dict[str, str]] = {
    "en": {
        "airstrike": "airstrike",
        "shelling": "shelling",
        "barrel_bomb": "barrel bomb",
        "missile": "missile",
        "explosion": "explosion",
        "building_collapse": "building collapse",
        "fire": "fire",
        "chemical": "chemical attack",
        "other": "other",
    },
    "ar": {
        "airstrike": "غارة جوية",
        "shelling": "قصف مدفعي",
        "barrel_bomb": "برميل متفجر",
        "missile": "صاروخ",
        "explosion": "انفجار",
        "building_collapse": "انهيار مبنى",
        "fire": "حريق",
        "chemical": "هجوم كيميائي",
        "other": "حادث آخر",
    },
}

WORDS: dict[str, dict[str, str]] = {
    "en": {
        "new": "new incidents",
        "revised": "revised",
        "retracted": "retracted",
        "confirmed": "confirmed",
        "update": "update",
        "killed": "killed",
        "injured": "injured",
        "trapped": "trapped",
        "others": "others: up to {n}",
        "incidents": "incidents in this alert",
        "since": "since",
        "today": "today",
        "reminder": "still active, no change",
        "closed": "closed: quiet for",
        "acknowledged": "acknowledged",
        "responding": "responding",
        "escalated": "not acknowledged by {team} after {waited}",
    },
    "ar": {
        "new": "حوادث جديدة",
        "revised": "معدّلة",
        "retracted": "مسحوبة",
        "confirmed": "مؤكدة",
        "update": "تحديث",
        "killed": "قتلى",
        "injured": "جرحى",
        "trapped": "عالقون",
        "others": "مصادر أخرى: حتى {n}",
        "incidents": "حوادث هذا التنبيه",
        "since": "منذ",
        "today": "اليوم",
        "reminder": "ما زال نشطاً، دون تغيير",
        "closed": "أُغلق: هدوء منذ",
        "acknowledged": "استلم",
        "responding": "يستجيب",
        "escalated": "لم يستلمه {team} خلال {waited}",
    },
}


# What a `payload: minimal` push shows: nothing that tells where, what or how many, to
# someone who reads the phone's lock screen or the traffic.
NEUTRAL: dict[str, tuple[str, str]] = {
    "en": ("New alert", "Open the app to read it."),
    "ar": ("تنبيه جديد", "افتح التطبيق لقراءته."),
}


@dataclass(frozen=True, slots=True)
class Rendered:
    title: str
    body: str


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _duration(d: timedelta) -> str:
    minutes = int(d.total_seconds() // 60)
    return f"{minutes // 60}h{minutes % 60:02d}" if minutes >= 60 else f"{minutes}m"


def render(
    summary: Summary,
    *,
    place: str,
    locale: str,
    tz: tzinfo,
    kind: str = "update",
    acks: Sequence[tuple[str, bool]] = (),
    quiet: timedelta | None = None,
    escalated_from: str | None = None,
    waited: timedelta | None = None,
    today: int | None = None,
    templates: Mapping[str, str] | None = None,
) -> Rendered:
    """Title and body of one update for a leader reading `locale`. `kind` is "update" (what
    changed), "reminder" (nothing changed, nobody acknowledged) or "closed" (the group's
    closing summary after `quiet`); `acks` are the (name, responding) of leaders who
    acknowledged since the last update. An "escalated" update goes to another team, saying
    which team (`escalated_from`) left it unacknowledged for `waited`. `today` is how many
    incidents the group's region has had since midnight (in `tz`). `templates` (checked by
    dispatcher.rules.templates) replace the title, totals and footer lines."""
    w = WORDS.get(locale, WORDS["en"])
    kinds = KIND_NAMES.get(locale, KIND_NAMES["en"])
    changes = []
    if summary.new:
        changes.append(f"{w['new']}: {len(summary.new)}")
    if summary.revised:
        changes.append(f"{w['revised']}: {len(summary.revised)}")
    if summary.retracted:
        changes.append(f"{w['retracted']}: {len(summary.retracted)}")
    if summary.confirmed:
        changes.append(f"{w['confirmed']}: {len(summary.confirmed)}")
    acked = ", ".join(f"{name} ({w['responding']})" if responding else name
                      for name, responding in acks)  # fmt: skip
    if kind == "reminder":
        changes = [w["reminder"]]
    elif kind == "closed":
        changes = [f"{w['closed']} {_duration(quiet or timedelta(0))}"]
    elif kind == "escalated":
        waited_text = _duration(waited or timedelta(0))
        changes = [w["escalated"].format(team=escalated_from or "?", waited=waited_text)]
    elif not changes and acks:
        changes = [f"{w['acknowledged']}: {acked}"]
    changed = " · ".join(changes) if changes else w["update"]
    title = f"{place} · {changed}"
    t = summary.totals
    revised = [
        f"{w[name]} {before}→{after}" if locale != "ar" else f"{w[name]}: من {before} إلى {after}"
        for _, name, before, after in summary.revisions[:3]
        if name in w
    ]
    since = f"{summary.since.astimezone(tz):%H:%M}" if summary.since else ""
    highs = summary.highs

    def figure(name: str, value: int, high: int) -> str:
        # What other sources report beyond the figure in force, when they do.
        more = f" ({w['others'].format(n=high)})" if high > value else ""
        return f"{w[name]}: {value}{more}"

    totals = " · ".join((
        figure("killed", t.killed, highs.killed),
        figure("injured", t.injured, highs.injured),
        figure("trapped", t.trapped, highs.trapped),
    ))  # fmt: skip
    footer = (
        f"{w['incidents']}: {summary.incidents}"
        + (f" · {w['since']} {since}" if since else "")
        + (f" · {w['today']}: {today}" if today is not None else "")
    )
    if templates:
        values = {
            "place": place, "changes": changed, "new": len(summary.new),
            "revised": len(summary.revised), "retracted": len(summary.retracted),
            "confirmed": len(summary.confirmed), "killed": t.killed, "injured": t.injured,
            "trapped": t.trapped, "rescued": t.rescued, "incidents": summary.incidents,
            "killed_high": max(t.killed, highs.killed),
            "injured_high": max(t.injured, highs.injured),
            "trapped_high": max(t.trapped, highs.trapped),
            "rescued_high": max(t.rescued, highs.rescued),
            "since": since, "today": "" if today is None else today,
        }  # fmt: skip
        title = fill(templates["title"], values) if "title" in templates else title
        totals = fill(templates["totals"], values) if "totals" in templates else totals
        footer = fill(templates["footer"], values) if "footer" in templates else footer
    lines = [
        totals,
        (f"{w['revised']}: " + ", ".join(revised)) if revised else "",
        f"{w['acknowledged']}: {acked}" if acks else "",
        " · ".join(f"{kinds.get(k, k)}: {n}" for k, n in summary.kinds[:3]),
        footer,
    ]
    body = "\n".join(line for line in lines if line)
    title, body = _fit(title, TITLE_MAX), _fit(body, BODY_MAX)
    if locale == "ar":
        title, body = RLE + title + PDF, "\n".join(RLE + ln + PDF for ln in body.split("\n"))
    return Rendered(title, body)
