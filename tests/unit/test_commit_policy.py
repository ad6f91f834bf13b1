"""Group commit's policy: the batch together, or each alone when the batch fails."""

from __future__ import annotations

from collections.abc import Sequence

from dispatcher.store.commit_policy import Done, Failed, together_or_alone


class Log:
    """A stand-in transaction that fails whenever it holds a job named 'bad'."""

    def __init__(self) -> None:
        self.transactions: list[list[str]] = []

    def commit(self, jobs: Sequence[str]) -> list[str]:
        self.transactions.append(list(jobs))
        if "bad" in jobs:
            raise ValueError("bad job")
        return [job.upper() for job in jobs]


def test_a_batch_that_commits_is_one_transaction() -> None:
    log = Log()
    assert together_or_alone(["a", "b", "c"], log.commit) == [Done("A"), Done("B"), Done("C")]
    assert log.transactions == [["a", "b", "c"]]


def test_a_failed_batch_is_tried_job_by_job_and_only_the_bad_one_fails() -> None:
    log = Log()
    outcomes = together_or_alone(["a", "bad", "c"], log.commit)
    assert [type(o) for o in outcomes] == [Done, Failed, Done]
    assert outcomes[0] == Done("A")
    assert outcomes[2] == Done("C")
    failed = outcomes[1]
    assert isinstance(failed, Failed)
    assert str(failed.error) == "bad job"
    assert log.transactions == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


def test_a_failed_job_alone_is_not_tried_twice() -> None:
    log = Log()
    (outcome,) = together_or_alone(["bad"], log.commit)
    assert isinstance(outcome, Failed)
    assert log.transactions == [["bad"]]
