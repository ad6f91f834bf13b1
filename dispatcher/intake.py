"""Intake: the report as it arrives on the wire, its validation, and its domain form.

Pure: the web layer parses JSON and calls `parse_report`; it gets either a `ReportIn` or a
list of `FieldError`s naming each bad field. Placement in a region is the locate stage's job.

The wire is strict, whichever field it is: a field of the wrong type is refused, never
coerced (a time is an RFC 3339 string with an offset, a coordinate a JSON number, a count
an integer, a flag a boolean); numbers are finite; times convert to UTC within years
1-9999; text holds no NUL and no lone surrogate (they break PostgreSQL's text and logs).
`Time`, `Text` and `Wire` are shared by every JSON body the API takes.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictInt,
    TypeAdapter,
    ValidationError,
    model_validator,
)
from pydantic_core import PydanticCustomError

from dispatcher.model import Casualties, Kind, Point, Report, Status

MAX_NOTES = 2000
FUTURE_TOLERANCE = timedelta(minutes=10)

TIME_EXAMPLE = "2026-03-01T14:05:00+03:00"
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\d[Tt ]\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:[Zz]|[+-]\d\d:\d\d)")
_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def parse_time(value: object) -> datetime:
    """An RFC 3339 time with an offset, from its text; ValueError saying what is wrong. The
    time must also exist in UTC: 0001-01-01T00:00:00+14:00 does not (it is year 0)."""
    if not isinstance(value, str) or not _RFC3339.fullmatch(value):
        raise ValueError(f"must be an RFC 3339 time string with an offset, e.g. {TIME_EXAMPLE}")
    try:
        at = datetime.fromisoformat(value.upper())
    except ValueError as exc:
        raise ValueError(f"is not a real time ({exc})") from None
    try:
        at.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range: in UTC it falls before year 1 or after 9999") from None
    return at


def _time(value: object) -> datetime:
    try:
        return parse_time(value)
    except ValueError as exc:
        raise PydanticCustomError("time", str(exc)) from None


def _text(value: str) -> str:
    if _BAD_TEXT.search(value):
        raise PydanticCustomError("text", "must not hold NUL characters or lone surrogates")
    return value


# A time on the wire: a JSON string in RFC 3339 with an offset (never a number).
Time = Annotated[datetime, BeforeValidator(_time)]
# Free text on the wire: anything printable PostgreSQL and a log line can hold.
Text = Annotated[str, AfterValidator(_text)]
# Ids and sources end up in URLs and logs: printable, no spaces or slashes.
IDENT_PATTERN = r"^[A-Za-z0-9._:@~-]+$"
Ident = Annotated[str, Field(min_length=1, max_length=200, pattern=IDENT_PATTERN)]
Count = Annotated[StrictInt, Field(ge=0, le=1_000_000)]
Site = Annotated[str, Field(min_length=1, max_length=100, pattern=IDENT_PATTERN)]
_IDENT = re.compile(IDENT_PATTERN)


def is_ident(text: str) -> bool:
    """Whether `text` could be an id or source (path parameters are checked with it)."""
    return len(text) <= 200 and _IDENT.match(text) is not None


class Wire(BaseModel):
    """The base of every JSON body the API takes: strict types, finite numbers, no unknown
    fields."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class LocationIn(Wire):
    lat: float = Field(ge=-90, le=90)
    lon: float = Field(ge=-180, le=180)


class CasualtiesIn(Wire):
    killed: Count = 0
    injured: Count = 0
    trapped: Count = 0
    rescued: Count = 0


class ReportIn(Wire):
    """A report as a reporter sends it (first version of the wire format)."""

    id: Ident
    source: Annotated[str, Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._:@~-]+$")]
    kind: Kind
    occurred_at: Time
    location: LocationIn | None = None
    region: Annotated[Text, Field(min_length=1, max_length=64)] | None = None
    casualties: CasualtiesIn = CasualtiesIn()
    status: Status = "unconfirmed"
    revision: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 1
    notes: Annotated[Text, Field(max_length=MAX_NOTES)] | None = None
    incident: Ident | None = None  # join this incident (created if new) instead of matching
    # The part of the incident this report counts (one building of a strike): reports of
    # different sites of one tier add up, two of one site never do (dispatcher.counting).
    site: Site | None = None

    @model_validator(mode="after")
    def _placed(self) -> ReportIn:
        if self.location is None and self.region is None:
            raise ValueError("a report needs a location {lat, lon}, a region id, or both")
        return self


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str  # a dotted path into the report, e.g. "casualties.killed"
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, str):
            # An unknown key is echoed back: keep it short and printable.
            part = part[:100].encode("utf-8", "backslashreplace").decode().replace("\0", "\\0")
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def field_errors(exc: ValidationError) -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            errors.append(FieldError(_path(loc), "unknown field"))
        elif err["type"] == "missing":
            errors.append(FieldError(_path(loc), "required field is missing"))
        else:
            errors.append(FieldError(_path(loc) or "(report)", err["msg"]))
    return errors


def parse_report(
    data: Any, *, now: datetime, resolve_region: Callable[[str], str | list[str]] | None = None
) -> ReportIn | list[FieldError]:
    """Validate one decoded JSON report. `resolve_region(text)` turns a region id, name or
    alias into an id (a list: the candidates, none if unknown); the report keeps the id."""
    if not isinstance(data, dict):
        return [FieldError("(report)", "a report must be a JSON object")]
    try:
        report = ReportIn.model_validate(data)
    except ValidationError as exc:
        return field_errors(exc)
    return checked(report, now=now, resolve_region=resolve_region)


_BATCH = TypeAdapter(list[ReportIn])
_NOT_A_REPORT = {"json_invalid", "model_type", "model_attributes_type"}


def _keys_given(report: ReportIn) -> int:
    n = len(report.model_fields_set)
    if report.location is not None:
        n += len(report.location.model_fields_set)
    if "casualties" in report.model_fields_set:
        n += len(report.casualties.model_fields_set)
    return n


_SPACED_KEY = re.compile(rb'"[ \t\r\n]+:')


def no_duplicate_keys(raw: bytes, reports: list[ReportIn]) -> bool:
    """True when `raw`, which pydantic's parser read as `reports`, surely repeats no key in
    any object (that parser keeps the last of two silently; the general path refuses them).

    Cheap (two scans in C, under a microsecond for a report): every key is a field of the
    model (unknown ones are refused), so the text's key-value pairs number the fields the
    reports set, plus one for each repeated key. A pair is a key's closing quote followed by
    its colon, `":` when no space comes between (when one does, we are not sure). Inside a
    string a quote is escaped, so `\\":` there only adds to the count, and the caller takes
    the general path. False means "not sure"."""
    if _SPACED_KEY.search(raw) is not None:
        return False
    return raw.count(b'":') == sum(_keys_given(r) for r in reports)


def parse_report_json(
    raw: bytes, *, now: datetime, resolve_region: Callable[[str], str | list[str]] | None = None
) -> ReportIn | list[FieldError] | None:
    """One report straight from its JSON text (pydantic's own parser, a third faster than
    decoding first). None when the text is not a JSON object, or may repeat a key: the
    caller's general path says what is wrong with it."""
    try:
        report = ReportIn.model_validate_json(raw)
    except ValidationError as exc:
        if any(e["type"] in _NOT_A_REPORT and not e["loc"] for e in exc.errors()):
            return None
        return field_errors(exc)
    if not no_duplicate_keys(raw, [report]):
        return None
    return checked(report, now=now, resolve_region=resolve_region)


def parse_batch_json(
    raw: bytes, *, now: datetime, resolve_region: Callable[[str], str | list[str]] | None = None
) -> list[ReportIn | list[FieldError]] | None:
    """A JSON array of reports parsed and validated in one pass (pydantic's own parser),
    then checked one by one. None when any item fails validation or the body is not an
    array, or when it may repeat a key: the caller then takes `parse_report` item by item, for
    per-item errors."""
    try:
        reports = _BATCH.validate_json(raw)
    except ValidationError:
        return None
    if not no_duplicate_keys(raw, reports):
        return None
    return [checked(r, now=now, resolve_region=resolve_region) for r in reports]


def checked(
    report: ReportIn,
    *,
    now: datetime,
    resolve_region: Callable[[str], str | list[str]] | None = None,
) -> ReportIn | list[FieldError]:
    """The checks a schema cannot make: the clock, and the region against the rules."""
    errors = []
    if report.occurred_at > now + FUTURE_TOLERANCE:
        errors.append(
            FieldError("occurred_at", "is more than 10 minutes in the future; check the clock")
        )
    if report.region is not None and resolve_region is not None:
        found = resolve_region(report.region)
        if isinstance(found, str):
            if found != report.region:
                report = report.model_copy(update={"region": found})
        elif found:
            errors.append(
                FieldError(
                    "region",
                    f"{report.region!r} names several regions ({', '.join(found)}); "
                    "send the region id",
                )
            )
        else:
            errors.append(FieldError("region", f"unknown region {report.region!r}"))
    return errors or report


def to_report(wire: ReportIn, *, region: str, tier: str = "other") -> Report:
    """The domain form of a validated report, placed in `region`, from a source of `tier`
    (the rules' trust tier for it when accepted)."""
    c = wire.casualties
    return Report(
        source=wire.source,
        id=wire.id,
        kind=wire.kind,
        occurred_at=wire.occurred_at.astimezone(UTC),
        region=region,
        casualties=Casualties(c.killed, c.injured, c.trapped, c.rescued),
        status=wire.status,
        revision=wire.revision,
        location=Point(wire.location.lat, wire.location.lon) if wire.location else None,
        given_region=wire.region,
        notes=wire.notes,
        incident=wire.incident,
        tier=tier,
        site=wire.site,
    )


def report_json_casualties(c: Casualties) -> dict[str, int]:
    return {"killed": c.killed, "injured": c.injured, "trapped": c.trapped, "rescued": c.rescued}


def report_json(report: Report) -> dict[str, Any]:
    """A stored report as the API shows it."""
    out: dict[str, Any] = {
        "id": report.id,
        "source": report.source,
        "kind": report.kind,
        "occurred_at": report.occurred_at.isoformat(),
        "casualties": report_json_casualties(report.casualties),
        "status": report.status,
        "revision": report.revision,
        "region": report.region,
        "tier": report.tier,
    }
    if report.location is not None:
        out["location"] = {"lat": report.location.lat, "lon": report.location.lon}
    if report.given_region is not None:
        out["given_region"] = report.given_region
    if report.notes is not None:
        out["notes"] = report.notes
    if report.incident is not None:
        out["incident"] = report.incident
    if report.site is not None:
        out["site"] = report.site
    return out
