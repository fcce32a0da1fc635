"""Stopping on a signal: SIGTERM, SIGINT or SIGUSR1 asks a run to stop at its next safe point.

    with stopping.on_signals() as stop:
        for ...:
            run_one_loop()
            if stop.requested:
                save()
                raise stop.stopped("saved ckpt-7")

Clusters stop jobs with SIGTERM (SLURM at the time limit, Kubernetes, preemptible VMs), SLURM's
`sbatch --signal=USR1@120` warns with SIGUSR1 before it, and people press Ctrl-C (SIGINT).
Python's default SIGTERM handling kills the process on the spot (no `finally` runs), and its
SIGINT raises KeyboardInterrupt wherever the main thread is, often inside a TensorFlow call. The
handler here only records the signal; the loop that owns the work reads it between steps, so
the work stops in a consistent state. The first signal also puts the operating system's default
action back, so a second one ends the process at once, whatever it is doing (status -signum,
128 + signum in a shell).

TensorFlow's coordination service (started by MultiWorkerMirroredStrategy) installs its own
SIGTERM handler, a preemption notifier that only records the signal for
`PreemptionCheckpointHandler` and lets the process run on: a SIGTERM would then be swallowed.
Whoever starts such a strategy inside `on_signals` calls `StopRequest.reclaim_signals()` after
it, so that SIGTERM reaches this handler again.
"""
import contextlib
import signal
import threading

SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)
_ACTIVE = None  # the request of the outermost `on_signals` block running in the main thread


class Stopped(Exception):
    """The work stopped on a signal at a safe point (for training: after saving a checkpoint
    of its step). The message is the one line that says so.

    Attributes:
      signal_name: 'SIGTERM', 'SIGINT' or 'SIGUSR1'.
    """

    def __init__(self, message, signal_name):
        super().__init__(message)
        self.signal_name = signal_name


class StopRequest:
    """Whether (and by which signal) the work was asked to stop."""

    def __init__(self):
        self.signal_number = None
        self.by_another_worker = False
        self._install = None  # set by `on_signals` while its block runs

    def reclaim_signals(self):
        """Install the handler of `on_signals` again for signals not yet received (a library
        that set its own handler since, like TensorFlow's coordination service for SIGTERM,
        loses it). Does nothing outside `on_signals` or once a signal has arrived (then the
        default actions are in place, so that a second signal ends the process)."""
        if self._install is not None and self.signal_number is None:
            self._install()

    @property
    def requested(self):
        return self.signal_number is not None or self.by_another_worker

    @property
    def signal_name(self):
        if self.signal_number is None:
            return "a signal to another worker" if self.by_another_worker else None
        return signal.Signals(self.signal_number).name

    def request(self, signal_number):
        """Record a stop request (what the signal handler does; tests call it directly)."""
        if self.signal_number is None:
            self.signal_number = signal_number

    def request_by_another_worker(self):
        """Record that another worker of the run was asked to stop (all stop together)."""
        self.by_another_worker = True

    def stopped(self, message):
        """The `Stopped` exception to raise once the work is in a safe state: `message`
        prefixed with 'stopped by <SIGNAL>'."""
        return Stopped(f"stopped by {self.signal_name} {message}", self.signal_name)


@contextlib.contextmanager
def on_signals(request=None, signals=SIGNALS):
    """Within the block, the first of `signals` only sets the yielded `StopRequest` and gives
    each of `signals` back its default action (a second signal ends the process at once).

    The previous handlers are restored when the block ends. Signal handlers exist only in the
    main thread: elsewhere nothing is installed and the request is set only by `request()`.
    Inside another `on_signals` block, a block given no request (or the outer one's) installs
    nothing and yields the outer block's request: a script holds the signals from its start
    to its exit (a signal that comes while a failed run is being reported must not end the
    process before its line is written), and the run inside reads the same request.

    Args:
      request: the `StopRequest` to set (default: the enclosing block's, else a new one).
      signals: the signals that ask for a stop.

    Yields:
      The `StopRequest`.
    """
    global _ACTIVE
    if _ACTIVE is not None and request in (None, _ACTIVE):
        yield _ACTIVE
        return
    request = StopRequest() if request is None else request
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handle(signal_number, frame):
        del frame
        request.request(signal_number)
        for number in signals:
            signal.signal(number, signal.SIG_DFL)

    previous = {number: signal.signal(number, handle) for number in signals}
    request._install = lambda: [signal.signal(number, handle) for number in signals]
    outer, _ACTIVE = _ACTIVE, request
    try:
        yield request
    finally:
        _ACTIVE = outer
        request._install = None
        for number, handler in previous.items():
            signal.signal(number, handler if handler is not None else signal.SIG_DFL)
