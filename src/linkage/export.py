"""Exports: files written atomically (a temp file in the same folder, then renamed)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from .errors import InputError
from .workspace import Workspace


@contextlib.contextmanager
def atomic_path(target: Path) -> Iterator[Path]:
    """A temp path next to `target`; renamed onto it only when the block succeeds."""
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target} is a folder; give a file name")
    if not target.parent.exists():
        raise InputError(f"{target.parent}: folder not found")
    handle, temp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(handle)
    try:
        yield Path(temp)
        os.replace(temp, target)
    finally:
        if os.path.exists(temp):
            os.unlink(temp)


def write_clusters(ws: Workspace, target: Path) -> int:
    """source,record_id,person_id for every ingested record, once."""
    missing = ws.scalar("records without person", "SELECT count(*) FROM records r ANTI JOIN persons p USING (source, record_id)")
    total = ws.scalar("count records", "SELECT count(*) FROM records")
    if not total:
        raise InputError("the workspace holds no records; ingest exports first")
    if missing:
        raise InputError(f"{missing:,} of {total:,} records have no person yet (ingested after the last match); "
                         "run 'linkage match' first")
    with atomic_path(target) as temp:
        ws.run("export clusters", f"""
            COPY (SELECT p.source, p.record_id, p.person_id FROM persons p JOIN records r USING (source, record_id)
                  ORDER BY p.source, p.record_id)
            TO '{str(temp).replace("'", "''")}' (HEADER, DELIMITER ',')""")
    return int(total)
