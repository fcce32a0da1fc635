"""Text of a porting plan: the report (counts, problems by name, a hint) and the dry-run table.

    Porting TF1 checkpoint /ckpt/model.ckpt-0 (39 variables) into vgg_16 (32 variables)
      matched       30 model variables (134,260,544 values)
      excluded       2 model variables in scopes vgg_16/fc8 (they keep their initial values)
      unmatched      0 ...
    Result: FAILED (1 shape mismatch)
    Shape mismatches (model variable shape <- checkpoint variable shape):
      vgg_16/fc8/kernel (1, 1, 4096, 10) <- vgg_16/fc8/weights (1, 1, 4096, 1000)
    Hint: ...
"""
import collections

import numpy as np

from tfmodels.porting import rules

MAX_LISTED = 60  # per section of the report; the table always lists every variable


def report(mapping):
    """The report of a `checkpoint_map.Mapping` as text (see the module docstring)."""
    values = sum(int(np.prod(m.shape)) for m in mapping.matched)
    how = collections.Counter(kind for m in mapping.matched
                              for kind in ("EMA shadow", "override") if kind in m.rule)
    skipped = sum(len(keys) for keys in mapping.skipped.values())
    lines = [
        f"Porting {mapping.source_format.upper()} checkpoint {mapping.checkpoint} "
        f"({mapping.num_checkpoint_variables} variables) into {mapping.model_name} "
        f"({mapping.num_model_variables} variables)",
    ] + ([f"  chosen: {mapping.choice}"] if mapping.choice else []) + (
        [f"  layers {mapping.by_order}"] if mapping.by_order else []) + [
        f"  matched    {len(mapping.matched):5d} model variables ({values:,} values; "
        f"{how['EMA shadow']} averaged, {how['override']} by overrides)",
        f"  excluded   {len(mapping.excluded):5d} model variables"
        + (f" in scopes {', '.join(mapping.exclude_scopes)} (they keep their initial values)"
           if mapping.exclude_scopes else ""),
        f"  unmatched  {len(mapping.unmatched):5d} model variables with no checkpoint variable",
        f"  mismatched {len(mapping.mismatched):5d} shapes",
        f"  ambiguous  {len(mapping.ambiguous):5d} model variables with several equal "
        "candidates",
        f"  unused     {len(mapping.unused):5d} checkpoint variables that fill no model "
        "variable" + (f" ({len(mapping.unused_in_layers)} inside filled layers: they fail)"
                      if mapping.unused_in_layers else ""),
        f"  skipped    {skipped:5d} checkpoint variables"
        + (": " + ", ".join(f"{reason} {len(keys)}" for reason, keys
                            in sorted(mapping.skipped.items())) if skipped else ""),
        f"Result: {'OK' if mapping.ok else 'FAILED (' + '; '.join(_problems(mapping)) + ')'}",
    ]
    lines += _section("Shape mismatches (model variable shape <- checkpoint variable shape)",
                      [f"{p} {s} <- {k} {ks}" for p, s, k, ks in mapping.mismatched])
    lines += _section("Model variables with no checkpoint variable",
                      [f"{p} {s}: expected {_expected(mapping, p)}" + (f"; {h}" if h else "")
                       for p, s, h in mapping.unmatched])
    lines += _section("Model variables with several candidates (use overrides to choose)",
                      [f"{p} <- {', '.join(keys)}" for p, keys in mapping.ambiguous])
    settings = collections.defaultdict(list)
    for key, shape, setting in mapping.unused_in_layers:
        settings[setting].append(f"{key} {shape}")
    for setting, items in settings.items():
        lines += _section("Checkpoint variables left unused in layers whose other variables "
                          f"were filled (the model would compute something else); {setting}",
                          items)
    in_layers = {k for k, _, _ in mapping.unused_in_layers}
    lines += _section("Checkpoint variables that fill no model variable",
                      [f"{k} {s}" for k, s in mapping.unused if k not in in_layers])
    lines += _section("Overrides that matched no checkpoint variable",
                      [repr(p) for p in mapping.unused_overrides])
    if not mapping.ok:
        lines.append(_hint(mapping))
    return "\n".join(lines)


def table(mapping):
    """Every model variable with its source, sorted as the model holds them."""
    rows = [(m.path, str(m.shape), f"<- {m.key}", m.rule) for m in mapping.matched]
    rows += [(p, "", "excluded: keeps its initial value", "") for p in mapping.excluded]
    rows += [(p, str(s), "MISSING", h or "") for p, s, h in mapping.unmatched]
    rows += [(p, str(s), f"<- {k} {ks}", "SHAPE MISMATCH") for p, s, k, ks in mapping.mismatched]
    rows += [(p, "", "AMBIGUOUS: " + ", ".join(keys), "") for p, keys in mapping.ambiguous]
    widths = [max([len(r[i]) for r in rows] + [10]) for i in range(3)]
    header = ("model variable", "shape", "checkpoint variable", "rule")
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths + [0])).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths + [0])).rstrip()
              for row in sorted(rows)]
    return "\n".join(lines)


def _problems(mapping):
    counts = [(len(mapping.unmatched), "model variable unmatched", "model variables unmatched"),
              (len(mapping.mismatched), "shape mismatch", "shape mismatches"),
              (len(mapping.ambiguous), "ambiguous variable", "ambiguous variables"),
              (len(mapping.unused_overrides), "unused override", "unused overrides"),
              (len(mapping.unused_in_layers), "checkpoint variable unused in a filled layer",
               "checkpoint variables unused in filled layers")]
    return [f"{n} {one if n == 1 else many}" for n, one, many in counts if n]


def _section(title, items):
    if not items:
        return []
    shown = [f"  {item}" for item in items[:MAX_LISTED]]
    if len(items) > MAX_LISTED:
        shown.append(f"  ... and {len(items) - MAX_LISTED} more (the dry-run table lists all)")
    return [f"{title}:"] + shown


def _expected(mapping, path):
    if mapping.source_format == "tf2":
        return path
    name = rules.slim_name(path)
    return f"{name}/{rules.EMA_SUFFIX}" if mapping.use_ema else name


def _ignore_spec(mapping):
    """The shortest `ignore` value covering the variables unused in filled layers: their
    keys (a key covers its EMA shadow and slots), or one regex when they share a leaf."""
    keys = sorted({k for k, _, _ in mapping.unused_in_layers})
    roots = [k for k in keys if not any(k.startswith(other + "/") for other in keys)]
    leaves = {"/".join(k.split("/")[-2:]) for k in roots}
    if len(roots) > 3 and len(leaves) == 1:
        return f"'.*/{leaves.pop()}(/.*)?'"
    return ",".join(roots)


def _common_prefix(mapping):
    """The outer scope under which the unused keys hold the unmatched variables' names
    (`model` for `model/LeNet/conv1/weights`), if one covers them all."""
    if not mapping.unmatched or mapping.source_format != "tf1":
        return None
    unused = [rules.strip_replica_prefix(k)[0] for k, _ in mapping.unused]
    prefixes = set()
    for path, _, _ in mapping.unmatched:
        name = rules.slim_name(path)
        found = {k[:-len(name) - 1] for k in unused if k.endswith("/" + name)}
        if len(found) != 1:
            return None
        prefixes |= found
    return prefixes.pop() if len(prefixes) == 1 else None


def _hint(mapping):
    """Concrete fixes: scopes to exclude for mismatched layers, overrides for renamed ones,
    each with the calling front end's flag (`mapping.flags`)."""
    flags = mapping.flags
    scopes = sorted({path.rpartition("/")[0].removesuffix("/BatchNorm")
                     for path, *_ in mapping.mismatched})
    hints = []
    if scopes:
        hints.append("to re-initialise the mismatched layers instead (e.g. a new class count), "
                     f"exclude their scopes: --{flags['exclude_scopes']}={','.join(scopes)}")
    if mapping.unused_in_layers:
        hints.append("build those layers as the legacy code did (the setting to change is "
                     "named above), or, if the checkpoint's values are really not needed, "
                     f"ignore them: --{flags['ignore']}={_ignore_spec(mapping)}")
    prefix = _common_prefix(mapping)
    if prefix:
        hints.append("the checkpoint's variables sit under an outer scope: strip it with "
                     f"--{flags['strip_scope']}={prefix}")
    if mapping.unmatched or mapping.ambiguous:
        hints.append("to map differently named variables pass "
                     f"--{flags['overrides']}={{checkpoint key or regex: model variable path}} "
                     "(docs/PORTING.md); the porting CLI's dry run "
                     "(`python -m tfmodels.porting --dry_run`) prints the full table")
    return "Hint: " + "; ".join(hints) if hints else "Hint: see docs/PORTING.md"
