"""The terminal: live progress bars, short log lines and small tables, all on stderr.

    console.setup_logging("info")           # what train.py and eval.py do once flags are parsed
    bar = console.ProgressBar("train", total=660, log_every=100)
    bar.update(50, "loss 0.41  acc 88.0%")  # redrawn in place on a terminal
    bar.close()
    console.print_table("results", [("test accuracy", "99.4%"), ("model_dir", "runs/x")])

On a terminal (or in Jupyter) a bar is one line redrawn in place, and log lines print above it.
Where stderr is not a terminal (CI, a file) nothing is redrawn: a bar with `log_every` logs a
plain line every `log_every` steps and at its end instead. Everything goes to stderr, so stdout
stays free for results (train.py prints metrics.json's content there when it is redirected).

Bars and tables are drawn with rich: it writes to stderr (Keras's Progbar writes to stdout
only), renders tables with the same console that keeps log lines above a live bar (tqdm draws
bars only), tells terminals, Jupyter and plain files apart (honouring NO_COLOR and TERM=dumb),
and comes with Keras 3, which depends on it.

Verbosity (`setup_logging`, or `set_verbosity` alone): 'debug' shows every library's log
records; 'info' (the default) shows bars, tables and this package's own info lines, and only
warnings and errors of other libraries (TensorFlow, tensorflow-datasets); 'warning' shows
warnings and errors alone.
"""
import atexit
import logging
import os
import sys
import time

from rich import progress as rich_progress
from rich.console import Console
from rich.table import Table

LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
          "error": logging.ERROR}
_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep
_state = {"level": logging.INFO, "console": None}
_live_bars = []


def level_of(verbosity):
    """The `logging` level of a verbosity name ('debug', 'info', 'warning', 'error') or level.

    Raises:
      ValueError: an unknown name.
    """
    if isinstance(verbosity, int) and not isinstance(verbosity, bool):
        return verbosity
    try:
        return LEVELS[str(verbosity).lower()]
    except KeyError:
        raise ValueError(f"verbosity={verbosity!r} is not one of: {', '.join(LEVELS)}") from None


def set_verbosity(verbosity):
    """Bars and tables show at 'info' and 'debug' (the default: 'info'); see the module doc."""
    _state["level"] = level_of(verbosity)


def shows_progress():
    """Whether bars and tables are shown at the current verbosity."""
    return _state["level"] <= logging.INFO


def stderr_console():
    """The rich Console on (the current) sys.stderr that bars, tables and log lines share."""
    if _state["console"] is None:
        _state["console"] = Console(stderr=True, highlight=False, soft_wrap=True)
    return _state["console"]


def is_interactive():
    """Whether stderr is a terminal or a notebook, where a bar can be redrawn in place."""
    console = stderr_console()
    return (console.is_terminal and not console.is_dumb_terminal) or console.is_jupyter


class ProgressBar:
    """A bar from `start` to `total`, redrawn in place on a terminal; plain lines elsewhere.

    Args:
      description: the bar's name ('train', 'test').
      total: the count at which it is complete.
      start: the count it starts at (a resumed run's step).
      log_every: where stderr is not a terminal, log a line each time the count passes a
        multiple of it, and at the end; None: no lines.
    """

    def __init__(self, description, total, *, start=0, log_every=None):
        self.description = description
        self.total = total
        self.log_every = log_every
        self._count = self._start_count = start
        self._started = time.perf_counter()
        self._first = None  # (time, count) of the first update: later ones exclude start-up
        self._progress = None
        if shows_progress() and is_interactive() and total > 0:
            self._progress = rich_progress.Progress(
                rich_progress.TextColumn("{task.description}"),
                rich_progress.BarColumn(bar_width=30),
                rich_progress.MofNCompleteColumn(),
                rich_progress.TextColumn("{task.fields[text]}"),
                rich_progress.TimeRemainingColumn(elapsed_when_finished=True),
                console=stderr_console(), refresh_per_second=2)
            self._task = self._progress.add_task(description, total=total, completed=start,
                                                 text="")
            self._progress.start()
            _live_bars.append(self)

    @property
    def live(self):
        """Whether the bar is drawn in place (on a terminal, not yet closed)."""
        return self._progress is not None

    def update(self, count, text=""):
        """Move the bar to `count` (closing it at `total`); `text` follows the count."""
        previous, self._count = self._count, count
        now = time.perf_counter()
        if self._first is None:
            self._first = (now, count)
        if self._progress is not None:
            # Drawn now: each update is worth seeing (the refresh thread only ticks the clock).
            self._progress.update(self._task, completed=count, text=text, refresh=True)
            if count >= self.total:
                self.close()
        elif self.log_every and (count // self.log_every > previous // self.log_every
                                 or count >= self.total):
            logging.getLogger(__name__).info(
                "%s %d/%d  %s  ETA %s", self.description, count, self.total, text,
                format_duration(self._remaining(now, count)))

    def _remaining(self, now, count):
        """Seconds left at the rate since the first update (the first loop also pays for
        tracing and compiling), or since the start while that is all there is."""
        first_time, first_count = self._first
        if count > first_count:
            return (self.total - count) * (now - first_time) / (count - first_count)
        done = count - self._start_count
        return (self.total - count) * (now - self._started) / done if done > 0 else float("nan")

    def close(self):
        """Stop redrawing (the bar stays on screen as it last was); safe to call again."""
        if self._progress is not None:
            progress, self._progress = self._progress, None
            progress.stop()
            if self in _live_bars:
                _live_bars.remove(self)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def close_bars():
    """Stop every live bar (an interrupted run's): the terminal gets its cursor back."""
    for bar in list(_live_bars):
        bar.close()


atexit.register(close_bars)


def print_table(title, rows):
    """A two-column table (name, value) on stderr, when progress is shown.

    Args:
      title: the line above it.
      rows: (name, value) pairs; values are printed as `str(value)`.
    """
    if not shows_progress():
        return
    table = Table(title=title, title_justify="left", title_style="bold", box=None,
                  show_header=False, pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for name, value in rows:
        table.add_row(str(name), str(value))
    stderr_console().print(table)


def format_duration(seconds):
    """'1:02:03', '2:03', or '?' for NaN (nothing measured yet)."""
    if seconds != seconds:
        return "?"
    minutes, seconds = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes}:{seconds:02d}"


class LogHandler(logging.Handler):
    """One short line per record, 'I 01:13:49 message' (no thread id, no file), on stderr.

    Printed through the shared console, so a line logged while a bar is live prints above it.
    Below WARNING, only records from this package and from `own_dirs` (the scripts' folder)
    pass, unless the handler's level is DEBUG. Not rich's `RichHandler`: through a pipe it pads
    every line to 80 columns and wraps a 108-character record onto 3 lines, so logs stop being
    one record per line for grep.
    """

    _STYLES = {logging.WARNING: "yellow", logging.ERROR: "red", logging.CRITICAL: "bold red"}

    def __init__(self, level=logging.INFO, own_dirs=()):
        super().__init__(level)
        self.own_dirs = {os.path.abspath(d) for d in own_dirs}
        self.setFormatter(logging.Formatter("%(levelname).1s %(asctime)s %(message)s",
                                            datefmt="%H:%M:%S"))

    def filter(self, record):
        if record.levelno >= logging.WARNING or self.level <= logging.DEBUG:
            return super().filter(record)
        path = os.path.abspath(record.pathname)
        own = path.startswith(_PACKAGE_DIR) or os.path.dirname(path) in self.own_dirs
        return own and super().filter(record)

    def emit(self, record):
        try:
            text = self.format(record)
            stderr_console().print(text, markup=False, emoji=False,
                                   style=self._STYLES.get(record.levelno))
        except Exception:  # noqa: BLE001 -- logging's contract: report, never raise
            self.handleError(record)


def setup_logging(verbosity="info", own_dirs=()):
    """Route every log record (absl's, TensorFlow's, Python's) through one `LogHandler`.

    Replaces the root logger's handlers (absl's, whose lines carry thread ids), removes the
    'tensorflow' logger's own handler (it printed each of TensorFlow's lines a second time)
    and keeps that logger below WARNING only at 'debug'.

    Args:
      verbosity: 'debug', 'info', 'warning' or 'error' (or a `logging` level).
      own_dirs: folders whose modules' info lines show at 'info' besides this package's (the
        scripts' folder; not its subfolders, where a virtual environment may live).
    """
    level = level_of(verbosity)
    set_verbosity(level)
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    root.addHandler(LogHandler(level, own_dirs))
    root.setLevel(level)
    logging.getLogger("absl").setLevel(logging.NOTSET)  # absl's records follow the root's level
    tf_logger = logging.getLogger("tensorflow")
    for handler in list(tf_logger.handlers):
        tf_logger.removeHandler(handler)
    tf_logger.setLevel(level if level <= logging.DEBUG else max(level, logging.WARNING))
    tf_logger.propagate = True
    _state["console"] = None  # bind to the sys.stderr of now (a test may have replaced it)


def stream_is_terminal(stream=None):
    """Whether `stream` (default sys.stdout) is a terminal."""
    stream = sys.stdout if stream is None else stream
    return bool(getattr(stream, "isatty", None) and stream.isatty())
