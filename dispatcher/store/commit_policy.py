"""Group commit's one policy: commit the batch together, or each job alone if that fails.

Both write paths use it: the SQLite writer process (`writer.Committer`) for whatever arrived
together, and PostgreSQL's shared report transactions (`group_commit.ReportCommits`), which
run it inside `AsyncConnection.run_sync`. A shared transaction that fails is rolled back
whole; committing each job alone then lets a bad one fail by itself while the others are
still written and answered. Plain values in, plain outcomes out: no I/O of its own.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

J = TypeVar("J")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Done(Generic[R]):
    """A job committed; what it returned."""

    value: R


@dataclass(frozen=True, slots=True)
class Failed:
    """A job that failed, alone or in a batch of one; the exception that failed it."""

    error: Exception


Outcome = Done[R] | Failed


def together_or_alone(
    jobs: Sequence[J], commit: Callable[[Sequence[J]], Sequence[R]]
) -> list[Outcome[R]]:
    """Each job's outcome, in order. `commit(jobs)` runs one transaction for the jobs it is
    given and returns one value per job, or raises (and has rolled back)."""
    try:
        values = commit(jobs)
    except Exception as exc:
        if len(jobs) == 1:
            return [Failed(exc)]
    else:
        return [Done(value) for value in values]
    # The shared transaction failed: each alone, so that only a bad one fails.
    outcomes: list[Outcome[R]] = []
    for job in jobs:
        try:
            (value,) = commit([job])
        except Exception as exc:
            outcomes.append(Failed(exc))
        else:
            outcomes.append(Done(value))
    return outcomes
