"""Run pytest on the lessons in a subprocess and read back every test's outcome."""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_course(*args: str, timeout: float = 600) -> tuple[list[dict], str]:
    """Outcomes (one dict per test) and the captured output of `pytest *args`."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
               "--course-report", str(report), *args]
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
        if not report.exists():
            raise AssertionError(f"pytest wrote no report:\n{proc.stdout[-3000:]}{proc.stderr}")
        return json.loads(report.read_text())["outcomes"], proc.stdout
