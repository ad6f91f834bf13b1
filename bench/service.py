"""What the benches share: starting `dispatcher serve` as a real process, reading its CPU."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def start(
    env: dict[str, str], log: Path, cwd: Path | None = None
) -> tuple[subprocess.Popen[str], str]:
    """`dispatcher serve` on the shipped config with `env` added (set a port of 0); the
    process and the URL it says it listens on. Its log goes to `log`. A bench never pushes
    to Google: GOOGLE_APPLICATION_CREDENTIALS is not passed on."""
    env = {**os.environ, **env}
    env.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    proc = subprocess.Popen(  # noqa: S603 - our own command line
        [sys.executable, "-m", "dispatcher", "serve", "--config", str(ROOT / "config.yaml")],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=open(log, "w"),  # noqa: SIM115 - lives as long as the process
        text=True,
    )
    assert proc.stdout is not None
    first = proc.stdout.readline()
    m = re.match(r"dispatcher listening on (http://\S+)", first)
    if not m:
        proc.kill()
        raise SystemExit(f"the service did not start: {first!r}; see {log}")
    return proc, m.group(1)


def cpu_seconds(pid: int) -> float:
    """User and system CPU time a process has used, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
