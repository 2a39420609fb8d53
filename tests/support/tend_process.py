"""The real ``tend`` command as a separate process, exactly as users run it, and the shape
of the problem lines it prints."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ERROR_LINE = re.compile(r"^(?P<file>.+):(?P<line>\d+): (?P<path>[\w.-]+|\(file\)): (?P<msg>.+)$")


def tend(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m tend ARGS`` with no stray TEND_CONFIG, colours or terminal width."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in ("TEND_CONFIG", "FORCE_COLOR", "COLUMNS", "PYTHONSTARTUP")
    }
    environment["NO_COLOR"] = "1"
    environment["PYTHONPATH"] = os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]
    )
    environment.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "tend", *args],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
