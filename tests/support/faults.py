"""The fault suite's knobs (tests/faults/): a seed that every random choice comes from,
printed and accepted back, and the length of the runs.

    pytest tests/faults                          # a fresh seed, printed in the header
    pytest tests/faults --fault-seed 1234        # the same kills, faults and loads again
    pytest tests/faults --soak                   # longer runs (minutes each)

The same through the environment (for `.ci/run`): DISPATCHER_FAULT_SEED, DISPATCHER_FAULT_SOAK=1.
A failing test shows its seed in its report, under "fault seed".
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Generator
from dataclasses import dataclass

import pytest

SEED_ENV = "DISPATCHER_FAULT_SEED"
SOAK_ENV = "DISPATCHER_FAULT_SOAK"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("faults", "fault suite (tests/faults)")
    group.addoption(
        "--fault-seed",
        type=int,
        default=None,
        help=f"seed for the fault suite's random choices (default: ${SEED_ENV}, else the time)",
    )
    group.addoption(
        "--soak",
        action="store_true",
        default=False,
        help=f"run the fault suite's long versions (also ${SOAK_ENV}=1)",
    )


def _seed(config: pytest.Config) -> int:
    cached = getattr(config, "_fault_seed", None)
    if cached is None:
        given = config.getoption("--fault-seed")
        if given is None and os.environ.get(SEED_ENV):
            given = int(os.environ[SEED_ENV])
        cached = given if given is not None else int(time.time() * 1000) % 1_000_000
        config._fault_seed = cached  # type: ignore[attr-defined]
    return int(cached)


def pytest_report_header(config: pytest.Config) -> str:
    return f"fault seed: {_seed(config)} (again with --fault-seed {_seed(config)})"


@dataclass(frozen=True)
class Faults:
    """One test's randomness and its length: `rng` is seeded from the run's seed and the
    test's name, so a test gives the same choices again whatever else runs."""

    seed: int
    rng: random.Random
    soak: bool

    def seconds(self, short: float, long: float) -> float:
        """`short` in the bounded suite, `long` under --soak."""
        return long if self.soak else short


@pytest.fixture
def faults(request: pytest.FixtureRequest) -> Faults:
    seed = _seed(request.config)
    soak = bool(request.config.getoption("--soak")) or os.environ.get(SOAK_ENV) == "1"
    # A string seed is hashed with SHA-512 by random, not with the per-process hash().
    rng = random.Random(f"{seed}:{request.node.nodeid}")
    print(f"fault seed: {seed} (again with --fault-seed {seed})")
    return Faults(seed, rng, soak)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and "faults" in getattr(item, "fixturenames", ()):
        seed = _seed(item.config)
        report.sections.append(
            ("fault seed", f"{seed}: again with `pytest {item.nodeid} --fault-seed {seed}`")
        )
    return report
