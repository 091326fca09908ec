"""Running a snippet of Python in a fresh process, as an operator's shell would: none of the
developer's Clerk or Slack settings, the repository importable, no model hub."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import paths


def run_python(code: str, *args: str, cwd: Path, **settings: str) -> subprocess.CompletedProcess:
    """`python -c code args...` with the given CLERK_ settings; output captured as text."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CLERK_", "SLACK_"))}
    env.update(PYTHONPATH=str(paths.REPO), HF_HUB_OFFLINE="1", **settings)
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )
