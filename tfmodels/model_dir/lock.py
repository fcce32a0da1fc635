"""One writer per model_dir: an OS lock on `<model_dir>/.lock`.

    with WriterLock(model_dir):       # ModelDirBusyError at once if another process holds it
        ...train...

The lock is `fcntl.flock` on a file inside the model_dir. The kernel releases it when the
holder's file descriptor closes, which includes every way a process can end (kill -9 too), so a
stale lock cannot outlive its process. The holder writes its pid (and host) into the file so
that a refused writer can say who holds it; the file itself stays (unlinking a lock file races
with processes that already opened it).

The lock file must be one we made: a regular file with a single link, empty or holding our
"pid N on host" line. A hard link to a file elsewhere (`O_NOFOLLOW` stops only symbolic links)
would have that file overwritten, and two snapshots made with `cp -al` would share one lock:
both are refused, with one line saying how to proceed, before the file is written.
"""
import errno
import fcntl
import os
import re
import socket
import stat

from tfmodels.model_dir.files import write_failure
from tfmodels.options import UsageError

LOCK_FILE = ".lock"
_HOLDER = re.compile(r"^pid \d+ on \S*\n?$")


class ModelDirBusyError(UsageError):
    """Another process holds the model_dir's writer lock."""


class WriterLock:
    """An exclusive, non-blocking lock on a model_dir, held until `release()` or exit.

    Args:
      model_dir: the folder to lock (created if missing).

    Raises:
      ModelDirBusyError: another process holds it (the message names its pid).
      ValueError: the lock file is a symbolic link or cannot be opened.
      ModelDirWriteError: no space (or permission) to write our pid into it.
    """

    def __init__(self, model_dir):
        self.model_dir = model_dir
        self.path = os.path.join(model_dir, LOCK_FILE)
        try:
            os.makedirs(model_dir, exist_ok=True)
        except OSError as err:
            raise UsageError(f"--model_dir={model_dir} cannot be created: {err.strerror}") \
                from None
        try:
            # O_NOFOLLOW: a link planted at the lock's name is refused, never written through.
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC,
                               0o644)
        except OSError as err:
            reason = ("it is a symbolic link" if err.errno == errno.ELOOP else err.strerror)
            raise UsageError(f"cannot open the lock file {self.path!r}: {reason}") from None
        problem = _not_ours(self._fd)
        if problem:
            os.close(self._fd)
            self._fd = None
            raise UsageError(f"the lock file {self.path!r} {problem}; it was left untouched. "
                             f"Remove it (rm {self.path}) and run again: a new one is made")
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = _read_holder(self._fd)
            os.close(self._fd)
            self._fd = None
            if err.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise UsageError(f"cannot lock {self.path!r}: {err.strerror}") from None
            raise ModelDirBusyError(
                f"--model_dir={model_dir} is being written by another process ({holder}); "
                "one writer per model_dir: wait for it to end or use another --model_dir "
                f"(the lock is {self.path}, released by the OS when that process ends)") from None
        try:
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        except OSError as err:  # a full disk: before anything else is written
            self.release()
            failure = write_failure(err, self.path, "nothing was written")
            if failure is not None:
                raise failure from None
            raise

    @property
    def held(self):
        return self._fd is not None

    def release(self):
        """Release the lock (closing the descriptor releases it); safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def _not_ours(fd):
    """Why the open lock file is not one this package made (None when it is)."""
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        return "is not a regular file"
    if info.st_nlink != 1:
        return (f"has {info.st_nlink} hard links: it is shared with another file (a copy made "
                "with `cp -al`, or a link to a file elsewhere)")
    text = os.pread(fd, 300, 0)
    if text and not _HOLDER.match(text.decode(errors="replace")):
        return "holds something else than the writer's pid (it was not written by tfmodels)"
    return None


def _read_holder(fd):
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "pid not yet recorded"
