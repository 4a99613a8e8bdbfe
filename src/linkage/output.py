"""Rendering for the CLI: rich tables and progress on a TTY, plain text or JSON lines otherwise."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable, Sequence
from contextlib import contextmanager
from typing import Any, Iterator

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table


class _Console(Console):
    def on_broken_pipe(self) -> None:
        """The reader of our output went away: handled once, at the CLI's error boundary (rich's
        own handling exits 1, as if something had failed)."""
        self.quiet = True
        raise BrokenPipeError


class Output:
    """Where a command's results go. `json_mode` prints one JSON document / JSON lines."""

    def __init__(self, json_mode: bool = False):
        self.json_mode = json_mode
        self.console = _Console(highlight=False, soft_wrap=True)
        self.err = _Console(stderr=True, highlight=False, soft_wrap=True)

    @property
    def interactive(self) -> bool:
        return self.console.is_terminal and not self.json_mode

    def json(self, payload: Any) -> None:
        sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")

    def line(self, text: str) -> None:
        self.console.print(text, markup=False)

    def table(self, title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
        """A rich table on a terminal; elsewhere (cron, a pipe, a file) the title and tab-separated
        lines, with no box drawing and no cell cut to the terminal's width."""
        if not self.console.is_terminal:
            lines = [title] + ["\t".join(str(v).replace("\t", " ").replace("\n", " ") for v in row)
                               for row in (columns, *rows)]
            sys.stdout.write("\n".join(lines) + "\n")   # not through rich, which expands tabs
            return
        table = Table(title=title, title_justify="left")
        for i, column in enumerate(columns):
            table.add_column(column, justify="left" if i == 0 else "right")
        for row in rows:
            table.add_row(*[f"{v:,}" if isinstance(v, int) else str(v) for v in row])
        self.console.print(table)

    @contextmanager
    def progress(self, description: str) -> Iterator[Any]:
        """A byte progress bar on a TTY; a no-op callback elsewhere."""
        if not self.interactive:
            yield lambda name, done, total: None
            return
        with Progress(TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TimeRemainingColumn(),
                      console=self.err, transient=True) as bar:
            tasks: dict[str, Any] = {}

            def update(name: str, done: int, total: int) -> None:
                if name not in tasks:
                    tasks[name] = bar.add_task(f"{description} {name}", total=total)
                bar.update(tasks[name], completed=done)

            yield update


    @contextmanager
    def status(self, first: str) -> Iterator[Any]:
        """On a TTY a spinner on stderr naming the step under way (a step of unknown length); the
        callback moves it to the next step. Elsewhere a no-op callback."""
        if not self.interactive:
            yield lambda message: None
            return
        with self.err.status(f"{first}…") as spinner:
            yield lambda message: spinner.update(f"{message}…")


def print_error(message: str) -> None:
    """The one place an error reaches the user: a single `Error: ...` line on stderr."""
    sys.stderr.write(f"Error: {message}\n")
