"""The workspace's log: JSON lines appended to `WORKSPACE/logs/linkage.log` (or the path
configs/pipeline.toml gives), one per step start and end of `linkage run` and one per lock takeover.
Counts, times and file names only: never a personal value.
"""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

LOG_DIR = "logs"
LOG_FILE = "linkage.log"


def default_log(root: Path) -> Path:
    return Path(root) / LOG_DIR / LOG_FILE


def append(path: Path, event: str, **fields: Any) -> None:
    """Append one JSON line (written with one write call, so lines of a killed process stay whole)."""
    path = Path(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    record = {"time": datetime.now().isoformat(timespec="milliseconds"), "pid": os.getpid(), "event": event, **fields}
    line = (json.dumps(record, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)
