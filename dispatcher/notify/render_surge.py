"""Rendering a surge push (dispatcher.surge) for a leader's phone, in the leader's language.

Pure: the count, the window, the group's place and where the incidents are in; a title and
a body out, within the limits `render` keeps (Arabic wrapped right-to-left the same way).

    Idleb · surge: 9 incidents in 30m
    Surge: 9 incidents in Idleb in the last 30m — Harim 4, Ariha 3, Idleb 2
"""

from __future__ import annotations

from collections.abc import Sequence

from dispatcher.notify.render import BODY_MAX, PDF, RLE, TITLE_MAX, Rendered
from dispatcher.surge import Action, SurgeRule, window_text

MAX_PLACES = 6  # places named in a body; the rest are "+N"

TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "open.title": "{place} · surge: {count} incidents in {window}",
        "open.body": "Surge: {count} incidents in {place} in the last {window}",
        "repeat.title": "{place} · surge continues: {count} incidents in {window}",
        "repeat.body": "Surge continues: {count} incidents in {place} in the last {window} "
        "(was {was})",
        "subside.title": "{place} · surge subsided",
        "subside.body": "Subsided: {count} incidents in {place} in the last {window} "
        "(a surge is {at_least} or more)",
        "comma": ", ",
    },
    "ar": {
        "open.title": "{place} · تصاعد الحوادث: {count} خلال {window}",
        "open.body": "تصاعد الحوادث في {place} خلال آخر {window}: {count}",
        "repeat.title": "{place} · التصاعد مستمر: {count} خلال {window}",
        "repeat.body": "التصاعد مستمر، الحوادث في {place} خلال آخر {window}: {count} (كانت {was})",
        "subside.title": "{place} · انحسر التصاعد",
        "subside.body": "انحسر التصاعد، الحوادث في {place} خلال آخر {window}: {count} "
        "(التصاعد من {at_least})",
        "comma": "، ",
    },
}


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def render_surge(
    action: Action,
    *,
    count: int,
    was: int | None,
    rule: SurgeRule,
    place: str,
    places: Sequence[tuple[str, int]],
    locale: str,
) -> Rendered:
    """Title and body of an "open", "repeat" or "subside" push; `places` are (name, count)
    of the regions below the group's, most first; `was` is the count the last push told."""
    t = TEXTS.get(locale, TEXTS["en"])
    key = action if action in ("open", "repeat", "subside") else "subside"
    values = {"place": place, "count": count, "window": window_text(rule.within),
              "was": was if was is not None else "-", "at_least": rule.at_least}  # fmt: skip
    title = t[f"{key}.title"].format(**values)
    body = t[f"{key}.body"].format(**values)
    if places and key != "subside":
        shown = [f"{name} {n}" for name, n in places[:MAX_PLACES]]
        if len(places) > MAX_PLACES:
            shown.append(f"+{len(places) - MAX_PLACES}")
        body += " — " + t["comma"].join(shown)
    title, body = _fit(title, TITLE_MAX), _fit(body, BODY_MAX)
    if locale == "ar":
        title, body = RLE + title + PDF, RLE + body + PDF
    return Rendered(title, body)
