"""Timing helpers shared by the benchmarks: interleaved repeats, medians, ratios, a table."""
import json
import statistics
import time


def time_calls(fns, repeats=15, number=10, warmup=2):
    """Median seconds per call of each zero-argument callable in `fns` (a dict name -> fn).

    Calls are interleaved (a, b, c, a, b, c, ...) so that drift in machine load hits every
    candidate alike; each sample is `number` calls, and the median of `repeats` samples is kept.
    A callable should return something to block on (a tensor: `.numpy()` is called on it).
    """
    for fn in fns.values():
        for _ in range(warmup):
            _block(fn())
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            for _ in range(number):
                out = fn()
            _block(out)
            samples[name].append((time.perf_counter() - start) / number)
    return {name: statistics.median(s) for name, s in samples.items()}


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
