"""One contract for the reports' room, kept by the in-memory store, SQLite and PostgreSQL:
revisions, duplicates, stale and conflicting resends, and the incidents reports of one
strike share (merged, and gathered round one of our teams)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from dispatcher.model import Report
from tests.contract.conftest import Rooms
from tests.contract.strikes import M325, T0, TARGET, S, report, save, sighting


async def test_revisions_duplicates_and_stale(rooms: Rooms) -> None:
    first = await save(rooms, report())
    assert first.outcome == "created"
    again = await save(rooms, report())
    assert again.outcome == "duplicate"
    assert again.stored.pk == first.stored.pk
    newer = await save(rooms, report(revision=2, killed=3), T0 + S)
    assert newer.outcome == "created"
    late_retry = await save(rooms, report(revision=1))
    assert late_retry.outcome == "duplicate", "a delayed retry of a held revision"
    assert late_retry.stored.report.revision == 1
    await save(rooms, report(revision=4, killed=4), T0 + 2 * S)
    stale = await save(rooms, report(revision=3, killed=7))
    assert stale.outcome == "stale", "a revision older than the newest, never seen"
    assert stale.stored.report.revision == 4
    revisions = await rooms.report_revisions("obs", "r1")
    assert [(r.report.revision, r.report.casualties.killed) for r in revisions] == [
        (1, 1),
        (2, 3),
        (4, 4),
    ]
    assert revisions[0].received_at == T0
    assert await rooms.count_reports() == 3


async def test_a_held_revision_sent_with_other_content_is_a_conflict(rooms: Rooms) -> None:
    """The same (source, id, revision) with other counts is refused, alone or within a
    batch, and nothing is written; what the service derived (the placed region) is not
    content, so a resend placed elsewhere by edited rules is still a retry."""
    first = await save(rooms, report(killed=3))
    conflict = await save(rooms, report(killed=5))
    assert conflict.outcome == "conflict"
    assert [(d.field, d.stored, d.sent) for d in conflict.differences] == [
        ("casualties.killed", "3", "5")
    ]
    assert conflict.stored.pk == first.stored.pk
    assert conflict.stored.report.casualties.killed == 3, "the stored revision is unchanged"
    assert conflict.newest == 1
    placed_elsewhere = await save(rooms, report(killed=3)._replace(region="SY0700"))
    assert placed_elsewhere.outcome == "duplicate"
    moved = await save(rooms, report(killed=3)._replace(occurred_at=T0 - 59 * S))
    assert moved.outcome == "conflict"
    assert [d.field for d in moved.differences] == ["occurred_at"]

    results = await rooms.save_reports(
        [
            (report("b1", killed=1), [TARGET]),
            (report("b1", killed=2), [TARGET]),  # the same revision, otherwise, in one batch
            (report("b1", killed=1), [TARGET]),
            (report(killed=3, revision=2), [TARGET]),
            (report(killed=4), [TARGET]),  # revision 1 again, other counts
        ],
        now=T0 + S,
        key_name="k",
        rules_version="v1",
    )
    assert [r.outcome for r in results] == ["created", "conflict", "duplicate", "created",
                                            "conflict"]  # fmt: skip
    assert results[1].stored.report.casualties.killed == 1
    assert results[4].newest == 2, "the newest revision held, to send a correction after"
    assert await rooms.count_reports() == 3
    assert [r.report.casualties.killed for r in await rooms.report_revisions("obs", "r1")] == [
        3, 3
    ]  # fmt: skip
    joined = await rooms.group_reports(results[0].group_ids[0])
    assert sorted((r.id, r.revision) for r in joined) == [("b1", 1), ("r1", 1), ("r1", 2)]


async def test_reports_of_one_strike_share_an_incident(rooms: Rooms) -> None:
    first = await save(rooms, sighting("o-1", "observatory", killed=3))
    assert first.stored.report.incident is not None
    assert not first.merged
    second = await save(rooms, sighting("s-9", "spotter", lat=35.932, killed=2))
    assert second.merged, "another source, 220 m away, same time: the same strike"
    assert second.stored.report.incident == first.stored.report.incident
    same_source = await save(rooms, sighting("o-2", "observatory"))
    assert same_source.stored.report.incident != first.stored.report.incident
    far = await save(rooms, sighting("f-1", "field-app", lat=35.95))
    assert far.stored.report.incident not in {
        first.stored.report.incident,
        same_source.stored.report.incident,
    }, "2 km away is another strike"
    revised = await save(rooms, sighting("s-9", "spotter", revision=2, lat=35.99))
    assert revised.stored.report.incident == first.stored.report.incident, "a revision stays"
    named = await save(rooms, sighting("n-1", "hospital", incident="idleb-market-strike"))
    again = await save(rooms, sighting("n-2", "radio", lat=36.2, incident="idleb-market-strike"))
    assert named.stored.report.incident == again.stored.report.incident == "idleb-market-strike"
    assert again.merged


async def test_a_batch_merges_with_stored_strikes_and_with_its_own(rooms: Rooms) -> None:
    """The merge rule for a batch is the one for reports sent one by one: against strikes
    already stored (looked up for the whole batch at once on PostgreSQL) and against the
    batch's own earlier reports."""

    async def batch(*items: Report) -> list[str | None]:
        saved = await rooms.save_reports(
            [(r, [TARGET]) for r in items], now=T0, key_name="k", rules_version="v1"
        )
        return [s.stored.report.incident for s in saved]

    north, south = await batch(sighting("a-1", "spotter", lat=35.93),
                               sighting("b-1", "spotter", lat=35.80))  # fmt: skip
    assert north != south
    joined, same_source, fresh, fresh_again, shelled = await batch(
        sighting("a-2", "radio", lat=35.931),  # 110 m from a-1
        sighting("a-3", "spotter", lat=35.932),  # a-1's source again: another strike
        sighting("c-1", "radio", lat=36.10),
        sighting("c-2", "hospital", lat=36.101),  # joins c-1, made in this batch
        sighting("b-2", "radio", lat=35.80, kind="shelling"),  # another kind
    )
    assert joined == north
    assert same_source not in {north, south}
    assert fresh_again == fresh, "two sources of a strike new in the batch"
    assert fresh not in {north, south}
    assert shelled not in {north, south, fresh}


async def test_one_batch_revises_and_merges_within_its_own_transaction(rooms: Rooms) -> None:
    """A batch holding a report, its correction and a second sighting of the same strike:
    each sees the ones before it, though none is committed yet."""
    results = await rooms.save_reports(
        [
            (sighting("o-1", "observatory", killed=2), [TARGET]),
            (sighting("o-1", "observatory", killed=5, revision=2), [TARGET]),
            (sighting("s-1", "spotter", lat=35.931, killed=4), [TARGET]),
            (sighting("s-2", "spotter", lat=35.9305), [TARGET]),
            (sighting("o-1", "observatory", killed=2), [TARGET]),
        ],
        now=T0,
        key_name="k",
        rules_version="v1",
    )
    first, revised, second, same_source, retry = results
    assert [r.outcome for r in results] == ["created", "created", "created", "created",
                                            "duplicate"]  # fmt: skip
    assert revised.stored.report.incident == first.stored.report.incident
    assert second.merged
    assert second.stored.report.incident == first.stored.report.incident
    assert same_source.stored.report.incident != first.stored.report.incident
    assert retry.stored.report.revision == 1
    assert retry.stored.pk == first.stored.pk
    assert len({r.group_ids for r in results[:4]}) == 1, "one group for all of them"
    assert await rooms.count_reports() == 4


@pytest.mark.parametrize("hours_ago", [0, 7], ids=["in-memory", "from-the-table"])
@pytest.mark.parametrize("together", [False, True], ids=["one-by-one", "one-batch"])
async def test_our_team_between_two_observers_gathers_their_incidents(
    rooms: Rooms, hours_ago: int, together: bool
) -> None:
    """Two observers 650 m apart made two incidents; our team's report between them joins
    one and the other is merged into it: its reports count there, the groups holding them
    count again, and the incident is listed once with every report."""
    at = T0 - timedelta(hours=hours_ago)
    observers = [
        sighting("o-1", "observatory", lat=35.93 + M325, killed=5, occurred_at=at, tier="trusted"),
        sighting("w-1", "witness", lat=35.93 - M325, killed=2, occurred_at=at),
    ]
    team = sighting("t-1", "civil-defence", lat=35.9301, killed=4, occurred_at=at, tier="own")
    if together:
        saved = await rooms.save_reports(
            [(r, [TARGET]) for r in (*observers, team)], now=T0, key_name="k", rules_version="v1"
        )
    else:
        saved = [await save(rooms, r) for r in (*observers, team)]
    north, south, ours = (s.stored.report.incident for s in saved)
    assert north != south
    assert ours in {north, south}
    group_id = saved[0].group_ids[0]
    counted_in = {r.source: r.incident for r in await rooms.group_reports(group_id)}
    assert counted_in == {"observatory": ours, "witness": ours, "civil-defence": ours}
    (listed,) = await rooms.list_incidents(
        regions=None, kind=None, since=None, limit=10, before=None
    )
    assert listed.id == ours
    assert {r.report.source for r in listed.reports} == {"observatory", "witness", "civil-defence"}
    group = await rooms.get_group(group_id)
    assert group is not None
    assert group.recount == (0 if together else 1), "its reports were counted apart before"
    # A fourth observer near where the absorbed incident was joins the team's incident.
    late = await save(rooms, sighting("r-1", "radio", lat=35.93 - M325, occurred_at=at))
    assert late.stored.report.incident == ours


async def test_our_team_does_not_gather_another_team_s_incident_or_a_source_s_second(
    rooms: Rooms,
) -> None:
    """Two of our teams 1.3 km apart saw two strikes, and one observer reporting twice,
    650 m apart, saw two events: a team between them gathers neither."""
    a = await save(rooms, sighting("a-1", "civil-defence-a", lat=35.93 + 2 * M325, tier="own"))
    b = await save(rooms, sighting("b-1", "civil-defence-b", lat=35.93 - 2 * M325, tier="own"))
    c = await save(rooms, sighting("c-1", "civil-defence-c", lat=35.9301, tier="own"))
    assert c.stored.report.incident == a.stored.report.incident, "the nearest anchor"
    listed = await rooms.list_incidents(regions=None, kind=None, since=None, limit=10, before=None)
    assert {i.id for i in listed} == {a.stored.report.incident, b.stored.report.incident}

    later = T0 + 20 * timedelta(minutes=1)
    w1 = await save(rooms, sighting("w-1", "witness", lat=35.93 + M325, occurred_at=later))
    w2 = await save(rooms, sighting("w-2", "witness", lat=35.93 - M325, occurred_at=later))
    team = await save(rooms, sighting("t-1", "civil-defence-d", lat=35.9301, occurred_at=later,
                                      tier="own"))  # fmt: skip
    assert team.stored.report.incident == w1.stored.report.incident
    listed = await rooms.list_incidents(regions=None, kind=None, since=later, limit=10, before=None)
    assert {i.id for i in listed} == {w1.stored.report.incident, w2.stored.report.incident}


async def test_incidents_are_listed_newest_first_a_page_at_a_time(rooms: Rooms) -> None:
    saved = [
        await save(rooms, sighting(f"o-{n}", "observatory", lat=35.0 + n / 10,
                                   occurred_at=T0 + n * 60 * S, kind=kind))
        for n, kind in enumerate(["airstrike", "shelling", "airstrike", "airstrike"])
    ]  # fmt: skip
    ids = [s.stored.report.incident for s in saved]
    first = await rooms.list_incidents(regions=None, kind=None, since=None, limit=2, before=None)
    assert [i.id for i in first] == [ids[3], ids[2]]
    last = first[-1]
    rest = await rooms.list_incidents(
        regions=None, kind=None, since=None, limit=2, before=(last.occurred_at, last.id)
    )
    assert [i.id for i in rest] == [ids[1], ids[0]]
    strikes = await rooms.list_incidents(
        regions=frozenset({"SY0700"}), kind="airstrike", since=T0 + 60 * S, limit=10, before=None
    )
    assert [i.id for i in strikes] == [ids[3], ids[2]]
    assert (
        await rooms.list_incidents(
            regions=frozenset({"SY0200"}), kind=None, since=None, limit=10, before=None
        )
        == []
    )
    (one,) = strikes[1].reports
    assert (one.report.id, one.report.incident, one.received_at) == ("o-2", ids[2], T0)
    assert one.report.received_at == T0


async def test_an_incident_merged_into_another_is_that_other_one(rooms: Rooms) -> None:
    north = await save(rooms, sighting("o-1", "observatory", lat=35.93 + M325, tier="trusted"))
    south = await save(rooms, sighting("w-1", "witness", lat=35.93 - M325))
    team = await save(rooms, sighting("t-1", "civil-defence", lat=35.9301, tier="own"))
    ours = team.stored.report.incident
    assert ours is not None
    gone = ({north.stored.report.incident, south.stored.report.incident} - {ours}).pop()
    assert gone is not None
    merged = await rooms.get_incident(gone)
    assert merged is not None
    assert merged.id == ours
    assert {s.report.id for s in merged.reports} == {"o-1", "w-1", "t-1"}
    (kept,) = [s for s in merged.reports if s.report.incident == gone]
    assert kept.report.id in {"o-1", "w-1"}, "a report keeps its own incident; reads count it"
    (mapped,) = await rooms.map_incidents(since=T0, regions=None, kind=None, limit=10)
    assert mapped == merged
    assert await rooms.get_incident("nothing") is None


async def test_a_rules_diff_replays_the_newest_revision_of_each_report_received(
    rooms: Rooms,
) -> None:
    await save(rooms, report("a"), T0)
    await save(rooms, report("b"), T0 + S)
    await save(rooms, report("a", revision=2, killed=4), T0 + 2 * S)
    await save(rooms, report("c"), T0 + 3 * S)
    replayed = await rooms.reports_received_since(T0 + S, 10)
    assert [(r.id, r.revision) for r in replayed] == [("b", 1), ("a", 2), ("c", 1)]
    assert replayed[1].received_at == T0 + 2 * S
    newest = await rooms.reports_received_since(T0, 2)
    assert [(r.id, r.revision) for r in newest] == [("a", 2), ("c", 1)]
