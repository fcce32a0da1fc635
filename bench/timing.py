"""Timing helpers shared by the benchmarks: interleaved repeats, medians, ratios, a table."""
import json
import random
import statistics
import time


def time_calls(fns, repeats=15, number=10, warmup=2, statistic="median", clock="wall"):
    """Seconds per call of each zero-argument callable in `fns` (a dict name -> fn).

    Calls are interleaved (a, b, c, then b, c, a: each round in a new order, seeded) so that
    drift in machine load and whatever a call leaves behind for the next one (a thread pool
    still spinning, a background iterator winding down) hit every candidate alike; each sample
    is `number` calls, and the median (`statistic="median"`) or
    the best (`"min"`) of `repeats` samples is kept. The best suits short calls on a shared
    machine: other processes only ever add time, so the fastest sample is the closest to the
    code's own cost. `clock="cpu"` measures the CPU time of the whole process (all threads)
    instead of wall time: time spent waiting for a core that another process holds is not
    counted, which makes ratios between candidates far steadier on a busy machine. A callable
    should return something to block on (a tensor: `.numpy()` is called on it).
    """
    reduce = {"median": statistics.median, "min": min}[statistic]
    now = {"wall": time.perf_counter, "cpu": time.process_time}[clock]
    for fn in fns.values():
        for _ in range(warmup):
            _block(fn())
    samples = {name: [] for name in fns}
    order = random.Random(0)
    for _ in range(repeats):
        names = list(fns)
        order.shuffle(names)
        for name in names:
            fn = fns[name]
            start = now()
            for _ in range(number):
                out = fn()
            _block(out)
            samples[name].append((now() - start) / number)
    return {name: reduce(s) for name, s in samples.items()}


def _block(out):
    """Wait for asynchronous TensorFlow work by fetching one value of the result."""
    while isinstance(out, (list, tuple)) and out:
        out = out[0]
    if isinstance(out, dict) and out:
        out = next(iter(out.values()))
    if hasattr(out, "numpy"):
        out.numpy()


def print_table(title, rows, columns):
    """Print rows (dicts) as a fixed-width table and then as one JSON line."""
    print(f"\n{title}")
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print("  ".join(c.ljust(w) for c, w in zip(columns, widths)))
    for row in rows:
        print("  ".join(_fmt(row.get(c)).ljust(w) for c, w in zip(columns, widths)))
    print("JSON " + json.dumps({"benchmark": title, "rows": rows}))


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)
