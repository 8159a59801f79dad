"""The live view of a task in the terminal: its streamed text, and a progress bar under it.

On a terminal (`rich`'s Live display) the finished lines of text are printed above the
bar, where the bar's redraws never reach them; the line still being written is part of the
live display, so a redraw repaints it instead of erasing it, and a line longer than the
screen is cut into rows as the terminal would wrap it. Into a pipe or a file the text goes
as it arrives, with no control codes, and the bar goes to stderr only if that is a
terminal.
"""

from __future__ import annotations

from types import TracebackType
from typing import TextIO

from rich.cells import cell_len, chop_cells
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

# The label next to the bar: status and stage, cut to fit on a narrow screen.
LABEL_MAX_CELLS = 40


class LiveView:
    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = out
        self.shown = 0
        self.pending = ""
        self.progress, self.status, self.stage = 0.0, "PENDING", ""
        # The text shares the screen with the bar only when both go to the terminal.
        self.together = out.isatty() and err.isatty()
        if self.together:
            self.console: Console | None = Console(file=out)
        elif err.isatty():
            self.console = Console(file=err)
        else:
            self.console = None
        self.live = (
            Live(console=self.console, auto_refresh=False, transient=False)
            if self.console
            else None
        )

    def __enter__(self) -> LiveView:
        if self.live:
            self.live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self.live:
            self.live.update(self._view(), refresh=True)
            self.live.stop()
        if not self.together and self.shown and not self._text_ended():
            self.out.write("\n")
            self.out.flush()

    def update(self, result: str | None, progress: float, status: str, stage: str | None) -> None:
        """Show what `result` has beyond what was shown, and the progress."""
        self.progress, self.status, self.stage = progress, status, stage or ""
        if result and len(result) > self.shown:
            self._text(result[self.shown :])
            self.shown = len(result)
        if self.live:
            self.live.update(self._view(), refresh=True)

    def finish(self, status: str) -> None:
        if status == "COMPLETED":
            self.progress = 1.0
        self.status, self.stage = status, ""

    def _text_ended(self) -> bool:
        return self.pending == "" and self._last_char == "\n"

    _last_char = ""

    def _text(self, delta: str) -> None:
        self._last_char = delta[-1]
        if not self.together:
            self.out.write(delta)
            self.out.flush()
            return
        assert self.console is not None
        *lines, self.pending = (self.pending + delta).split("\n")
        rows = [row for line in lines for row in self._rows(line)]
        width = self.console.width
        while cell_len(self.pending) > width:
            first, *_ = chop_cells(self.pending, width)
            rows.append(first)
            self.pending = self.pending[len(first) :]
        for row in rows:
            self.console.print(Text(row), soft_wrap=True, highlight=False)

    def _rows(self, line: str) -> list[str]:
        assert self.console is not None
        return chop_cells(line, self.console.width) or [""]

    def _view(self) -> RenderableType:
        label = f"{self.status} {self.stage}".strip()
        if cell_len(label) > LABEL_MAX_CELLS:
            label = chop_cells(label, LABEL_MAX_CELLS - 1)[0] + "…"
        bar = Table.grid(padding=(0, 1), expand=True)
        bar.add_column(ratio=1, min_width=5)
        bar.add_column(no_wrap=True, justify="right", width=4)
        bar.add_column(no_wrap=True, overflow="ellipsis", max_width=LABEL_MAX_CELLS)
        bar.add_row(
            ProgressBar(total=100, completed=round(self.progress * 100)),
            f"{self.progress:.0%}",
            label,
        )
        if self.together and self.pending:
            return Group(Text(self.pending), bar)
        return bar
