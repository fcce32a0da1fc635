"""Start N workers of a multi-worker run on this machine, each with its own `TF_CONFIG`.

    python -m tfmodels.launch --workers=2 -- train.py --model_dir=runs/two --train_steps=600

Each worker is `python <script> <flags> --strategy=multi_worker` (unless the flags name a
strategy) with `TF_CONFIG` naming every worker on a free localhost port and its own index (task
0 is the chief). Their output lines come out prefixed with `[worker <i>]`. SIGTERM, SIGINT and
SIGUSR1 are forwarded to every worker (which run in their own process groups, so a terminal's
Ctrl-C reaches them once, through here). When a worker fails, the others get SIGTERM and, after
`--grace_seconds`, SIGKILL; the launcher exits with the status of the first worker that failed
(128 + N for a worker ended by signal N), else 0.

TensorFlow's MultiWorkerMirroredStrategy runs one replica per worker on CPUs and one per GPU
otherwise (its local devices are the GPUs a worker sees, or one CPU).
"""
import argparse
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time

from tfmodels import startup

FORWARDED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGUSR1)


class UsageError(ValueError):
    """Bad launcher arguments (reported as one line, exit status 2)."""


def free_ports(count, host="localhost"):
    """`count` distinct TCP ports free on `host` right now (the operating system's choice)."""
    sockets = []
    try:
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.bind((host, 0))
            sockets.append(s)
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def tf_configs(num_workers, host="localhost", ports=None):
    """The `TF_CONFIG` JSON of each of `num_workers` workers on `host`."""
    ports = ports or free_ports(num_workers, host)
    cluster = {"worker": [f"{host}:{port}" for port in ports]}
    return [json.dumps({"cluster": cluster, "task": {"type": "worker", "index": i}})
            for i in range(num_workers)]


def worker_command(script, flags):
    """The command of one worker: `python script flags`, with --strategy=multi_worker added
    when the flags name no strategy."""
    command = [sys.executable, script, *flags]
    if not any(f == "--strategy" or f.startswith("--strategy=") for f in flags):
        command.append("--strategy=multi_worker")
    return command


def _pump(stream, prefix, out, lock):
    for line in iter(stream.readline, ""):
        with lock:
            out.write(f"{prefix}{line}" if line.endswith("\n") else f"{prefix}{line}\n")
            out.flush()
    stream.close()


def _exit_status(returncode):
    return 128 - returncode if returncode < 0 else returncode


def launch(script, flags, num_workers, *, grace_seconds=30.0, env=None, poll_seconds=0.1):
    """Run `num_workers` workers of `script flags` to the end (see the module doc).

    Returns:
      0 when every worker exited with 0; else the first failure's status (128 + N for a worker
      ended by signal N).
    """
    env = dict(os.environ if env is None else env)
    lock = threading.Lock()
    workers, pumps = [], []
    for index, tf_config in enumerate(tf_configs(num_workers)):
        worker = subprocess.Popen(worker_command(script, flags), env=dict(env, TF_CONFIG=tf_config),
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  start_new_session=True)
        workers.append(worker)
        for stream, out in ((worker.stdout, sys.stdout), (worker.stderr, sys.stderr)):
            pump = threading.Thread(target=_pump, args=(stream, f"[worker {index}] ", out, lock),
                                    daemon=True)
            pump.start()
            pumps.append(pump)

    def forward(signal_number, frame):
        del frame
        for worker in workers:
            if worker.poll() is None:
                worker.send_signal(signal_number)

    previous = {number: signal.signal(number, forward) for number in FORWARDED_SIGNALS}
    try:
        failure = None
        while None in [w.poll() for w in workers]:  # every worker polled (no short cut)
            for index, worker in enumerate(workers):
                if failure is None and worker.returncode not in (None, 0):
                    failure = (index, worker.returncode)
                    _stop_the_rest(workers, grace_seconds, lock)
            time.sleep(poll_seconds)
        if failure is None:
            failure = next(((i, w.returncode) for i, w in enumerate(workers) if w.returncode),
                           None)
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
        for pump in pumps:
            pump.join(timeout=5)
    if failure is None:
        return 0
    index, returncode = failure
    with lock:
        sys.stderr.write(f"[launch] worker {index} failed with status "
                         f"{_exit_status(returncode)}\n")
    return _exit_status(returncode)


def _stop_the_rest(workers, grace_seconds, lock):
    running = [w for w in workers if w.poll() is None]
    if not running:
        return
    with lock:
        sys.stderr.write(f"[launch] a worker failed: stopping the other {len(running)} "
                         f"(SIGTERM, SIGKILL after {grace_seconds:g} s)\n")
    for worker in running:
        worker.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    for worker in running:
        try:
            worker.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            worker.kill()


class _Parser(argparse.ArgumentParser):
    """argparse whose errors are one `UsageError` line, not its usage text (--help stays)."""

    def error(self, message):
        raise UsageError(message)


def parse_args(argv):
    """(options, script, flags) from `--workers=N [--grace_seconds=S] -- script flags...`."""
    split = argv.index("--") if "--" in argv else len(argv)
    parser = _Parser(prog="python -m tfmodels.launch")
    parser.add_argument("--workers", type=int, required=True,
                        help="Worker processes to start on this machine (>= 1).")
    parser.add_argument("--grace_seconds", type=float, default=30.0,
                        help="After a worker fails, seconds the others get to stop after "
                             "SIGTERM before SIGKILL.")
    if split == len(argv):
        parser.parse_known_args(argv)  # --help prints the help and exits here
        raise UsageError("expected `--workers=N -- script.py FLAGS...`: no `--` before the "
                         "script")
    options = parser.parse_args(argv[:split])
    if options.workers < 1:
        raise UsageError(f"--workers={options.workers} must be >= 1")
    if options.grace_seconds < 0:
        raise UsageError(f"--grace_seconds={options.grace_seconds:g} must be >= 0")
    rest = argv[split + 1:]
    if not rest:
        raise UsageError("no script after `--` (e.g. `-- train.py --model_dir=runs/x`)")
    if not os.path.isfile(rest[0]):
        raise UsageError(f"script {rest[0]!r} is not a file")
    return options, rest[0], rest[1:]


def main(argv=None):
    try:
        options, script, flags = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        startup.show_startup(logging.INFO, probe_gpus=False)
        sys.stderr.write(f"error: {err}\n")
        return 2
    # `python -m` imported tfmodels, and TensorFlow with it, quietly: what it printed is shown
    # as the workers' --verbosity says (the launcher itself runs no TensorFlow).
    verbosity = startup.verbosity_in([script, *flags])
    startup.show_startup(startup.logging_level(verbosity or 0), probe_gpus=False)
    return launch(script, flags, options.workers, grace_seconds=options.grace_seconds)


if __name__ == "__main__":
    sys.exit(main())
