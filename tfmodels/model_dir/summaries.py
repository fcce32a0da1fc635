"""TensorBoard scalars of a run (`train/`, `eval/`), and their write failures as one line.

    writer = ScalarWriter(layout.train_dir, kept=lambda: "the checkpoints are kept")
    writer.write(step, {"loss": 0.3})   # written and flushed
    writer.close()

TensorFlow's summary writer creates its folder and event file when it is made (a read-only
folder: PermissionDeniedError) and writes when it is flushed, which leaving `as_default()` does
(a full disk: ResourceExhaustedError naming the event file). Either becomes a
`ModelDirWriteError` naming the folder and saying what was kept; the writer is then dropped
without another flush (closing it would only fail again).
"""
import tensorflow as tf

from tfmodels.model_dir.files import write_failure


class ScalarWriter:
    """Scalars in `directory` (None: write nothing). The event file is made at the first
    write, so that a run failing on bad input leaves no empty one behind.

    Args:
      directory: the summary folder, or None (a worker other than the chief).
      kept: fn() -> what is left intact when a write fails, in words (the checkpoints).
    """

    def __init__(self, directory, kept):
        self.directory = directory
        self._kept = kept
        self._writer = None

    def write(self, step, scalars):
        """Write {name: value} at `step` and flush.

        Raises:
          ModelDirWriteError: no space or no permission (names the folder and what was kept).
        """
        if self.directory is None:
            return
        try:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.directory)
            with self._writer.as_default(step=step):  # flushes on leaving
                for name, value in scalars.items():
                    tf.summary.scalar(name, value)
        except Exception as err:
            self._fail(err)
            raise

    def close(self):
        """Flush and close (a failure: `ModelDirWriteError` as in `write`)."""
        writer, self._writer = self._writer, None
        if writer is None:
            return
        try:
            writer.close()
        except Exception as err:
            self._fail(err)
            raise

    def _fail(self, err):
        failure = write_failure(err, f"{self.directory}/ (TensorBoard summaries)",
                                self._kept())
        if failure is None:
            return
        self._writer = None  # broken: dropped without another flush
        raise failure from None
