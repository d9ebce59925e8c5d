"""Progress of long work: which step runs, how many remain, elapsed time and an estimate of the rest.

On a terminal one line is redrawn in place, with a bar; anywhere else (a CI log, a file) plain lines
are printed, at most one per ``interval_s`` apart from the first and the last. A step's start
(:meth:`Progress.begin`) is always drawn on a terminal, so the step shown is the step running::

    with Progress(len(jobs), "bench", sys.stderr) as progress:
        for job in jobs:
            progress.begin(job.name)  # the step now starting: "bench 3/20 name | 0:12 elapsed, ETA 1:03"
            run(job)
            progress.advance()  # one step finished
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["Progress", "format_duration"]

_BAR_WIDTH = 12
_CLEAR_LINE = "\r\x1b[K"


def format_duration(seconds: float) -> str:
    """``seconds`` as ``M:SS`` or ``H:MM:SS`` (rounded down to the second)."""
    minutes, secs = divmod(int(max(seconds, 0.0)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _is_terminal(stream: TextIO) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def _width(stream: TextIO) -> int:
    try:
        columns = os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, OSError, ValueError):  # io.UnsupportedOperation is both of the last two
        columns = 0
    return columns or 80  # a terminal that does not know its size says 0


class Progress:
    """Progress of ``total`` steps of work, drawn on ``stream`` (None: drawn nowhere, only counted).

    Args:
        total: number of steps.
        title: what the work is, first on every line.
        stream: where to draw; a terminal gets a bar redrawn in place, anything else plain lines.
        interval_s: least time between two draws (default: 0.1 s on a terminal, 10 s otherwise);
            the first draw, a step's start on a terminal, messages and the closing line are never
            held back. Where steps have labels, a plain line is printed at a step's start only.
        clock: seconds from a monotonic clock (injectable for tests).
    """

    def __init__(
        self,
        total: int,
        title: str = "",
        stream: TextIO | None = None,
        *,
        interval_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not isinstance(total, int) or isinstance(total, bool):
            raise TypeError(f"Progress: total must be an int, got {type(total).__name__}")
        if total < 0:
            raise ValueError(f"Progress: total must be >= 0, got {total}")
        self.total = total
        self.title = title
        self.stream = stream
        self.terminal = stream is not None and _is_terminal(stream)
        self.interval_s = (0.1 if self.terminal else 10.0) if interval_s is None else interval_s
        if self.interval_s < 0:
            raise ValueError(f"Progress: interval_s must be >= 0, got {self.interval_s}")
        self.clock = clock
        self.start = clock()
        self.done = 0
        self.label = ""
        self.running = False
        self.closed = False
        self._labelled = False
        self._last_draw: float | None = None
        self._bar_shown = False

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def elapsed_s(self) -> float:
        """Seconds since this progress was made."""
        return self.clock() - self.start

    def eta_s(self) -> float | None:
        """Seconds left at the mean pace of the finished steps; None before the first one."""
        if self.done == 0:
            return None
        return self.elapsed_s / self.done * (self.total - self.done)

    def begin(self, label: str) -> None:
        """Step ``done + 1`` starts: show it as ``label``.

        Drawn at once on a terminal; for many steps a second (training steps) :meth:`advance` alone is cheaper.
        """
        self.label, self.running, self._labelled = label, True, True
        self._draw(force=self.terminal)

    def advance(self, steps: int = 1) -> None:
        """``steps`` more steps are finished."""
        if steps < 0:
            raise ValueError(f"Progress.advance: steps must be >= 0, got {steps}")
        if self.done + steps > self.total:
            raise ValueError(f"Progress.advance: {self.done} + {steps} steps done exceeds total {self.total}")
        self.done += steps
        self.running = False
        if self.terminal or not self._labelled:
            self._draw()

    def message(self, text: str) -> None:
        """Print ``text`` on a line of its own (above the bar on a terminal)."""
        if self.stream is None:
            return
        if self._bar_shown:
            self.stream.write(_CLEAR_LINE)
            self._bar_shown = False
        self.stream.write(text + "\n")
        self.stream.flush()
        if self.terminal and not self.closed:
            self._draw(force=True)

    def close(self) -> None:
        """Print the closing line: ``done in`` the elapsed time, or which step was ``stopped`` and how
        many had finished."""
        if self.closed:
            return
        self.closed = True
        elapsed = format_duration(self.elapsed_s)
        if self.done == self.total:
            outcome = f"done in {elapsed}"
        else:
            outcome = f"stopped after {elapsed} ({self.done} finished)"
        self._write(f"{self._head()} {self._position()} {outcome}", final=True)

    def line(self, width: int | None = None) -> str:
        """The status line as drawn now; with ``width``, a bar and a label cut to fit ``width`` characters."""
        eta = self.eta_s()
        times = f"{format_duration(self.elapsed_s)} elapsed, ETA {'?' if eta is None else format_duration(eta)}"
        head = f"{self._head()} {self._position()}"
        if width is not None:
            filled = _BAR_WIDTH * self.done // self.total if self.total else _BAR_WIDTH
            head += f" [{'#' * filled}{'.' * (_BAR_WIDTH - filled)}]"
        label = self.label if self.running else ""
        if width is not None:
            room = width - len(head) - len(times) - 4
            label = label if len(label) <= room else (label[: room - 1] + "~" if room > 1 else "")
        return f"{head} {label} | {times}" if label else f"{head} | {times}"

    def _position(self) -> str:
        """``step/total``: the step that is running, else the number finished."""
        return f"{self.done + 1 if self.running else self.done}/{self.total}"

    def _head(self) -> str:
        return self.title or "progress"

    def _draw(self, force: bool = False) -> None:
        if self.stream is None or self.closed:
            return
        now = self.clock()
        if not force and self._last_draw is not None and now - self._last_draw < self.interval_s:
            return
        self._last_draw = now
        self._write(self.line(_width(self.stream) - 1) if self.terminal else self.line())

    def _write(self, text: str, final: bool = False) -> None:
        if self.stream is None:
            return
        if self.terminal:
            self.stream.write(_CLEAR_LINE + text + ("\n" if final else ""))
            self._bar_shown = not final
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
