"""Image decoding in tf.data that never loses an example silently.

    dataset, skipped = decode_examples(dataset, dataset_name="imagenet2012",
                                       id_key="file_name", skip_errors=False)

An undecodable image (corrupt or truncated file, unknown format) stops iteration with an
`InvalidArgumentError` naming the dataset and the example: its position in the input and, with
`id_key`, its id (tfds examples carry e.g. `file_name` or, with
`tfds.ReadConfig(add_tfds_id=True)`, `tfds_id`). With `skip_errors=True` such examples are
dropped, each drop is printed to stderr with the same description, and `skipped` (an int64
`tf.Variable`) counts them for the caller to log and checkpoint.

How: examples are numbered (`enumerate`), decoded in a parallel, ordered map followed by
`ignore_errors`, and a `scan` finds the positions that did not come out. A sentinel element
after the last example catches failures at the very end. With `id_key` a first `scan` carries
the ids of the last `RECENT_IDS` examples along, so a dropped example can still be named. Note
that `ignore_errors` also catches errors raised upstream (e.g. reading a corrupt record):
those examples are reported (or skipped and counted) the same way.
"""
import collections.abc
import itertools
import re
import sys

import tensorflow as tf

RECENT_IDS = 8  # consecutive failures named individually; longer runs are named as a range


def new_skip_counter():
    """An int64 scalar variable for `decode_examples(skip_counter=...)`.

    Create it outside any `strategy.scope()` to share one plain counter between pipelines.
    """
    return tf.Variable(0, dtype=tf.int64, trainable=False, name="decode_skips")


def _check_arguments(dataset, dataset_name, image_key, id_key, channels, skip_errors,
                     skip_counter):
    if not isinstance(dataset, tf.data.Dataset):
        raise ValueError(f"dataset must be a tf.data.Dataset; got {type(dataset).__name__}")
    spec = dataset.element_spec
    if not isinstance(spec, collections.abc.Mapping):
        raise ValueError(f"dataset elements must be dicts of features; got {spec}")
    if not isinstance(dataset_name, str) or not dataset_name:
        raise ValueError(f"dataset_name={dataset_name!r} must be a non-empty string")
    image_spec = spec.get(image_key)
    if (not isinstance(image_spec, tf.TensorSpec) or image_spec.dtype != tf.string
            or image_spec.shape.rank != 0):
        raise ValueError(f"image_key={image_key!r} must name a scalar tf.string feature of "
                         f"encoded images; the elements have {spec}")
    if id_key is not None:
        id_spec = spec.get(id_key)
        if (not isinstance(id_spec, tf.TensorSpec) or id_spec.shape.rank != 0
                or not (id_spec.dtype == tf.string or id_spec.dtype.is_integer)):
            raise ValueError(f"id_key={id_key!r} must be None or name a scalar string or "
                             f"integer feature; the elements have {spec}")
    if channels not in (0, 1, 3, 4):
        raise ValueError(f"channels={channels!r} must be 0 (as stored), 1, 3 or 4")
    if not isinstance(skip_errors, bool):
        raise ValueError(f"skip_errors={skip_errors!r} must be True or False")
    if skip_counter is not None and (not isinstance(skip_counter, tf.Variable)
                                     or skip_counter.dtype != tf.int64
                                     or skip_counter.shape.rank != 0):
        raise ValueError(f"skip_counter={skip_counter!r} must be None or an int64 scalar "
                         "tf.Variable (see new_skip_counter)")


def _sentinel(spec, image_key):
    """An element like the dataset's, whose image is a valid 1x1 PNG (it must survive)."""
    element = {key: tf.zeros([d if d is not None else 0 for d in s.shape], s.dtype)
               for key, s in spec.items()}
    element[image_key] = tf.io.encode_png(tf.zeros([1, 1, 1], tf.uint8))
    return element


def _describe(first, count, recent_ids, id_key):
    """'#5 (file_name=a.jpg), #6 (...)' for positions [first, first + count).

    `recent_ids` holds the ids of the RECENT_IDS positions before `first + count`; runs longer
    than that name the whole range and the ids of its last RECENT_IDS examples.
    """
    shown = tf.minimum(count, RECENT_IDS)
    positions = tf.strings.as_string(tf.range(first + count - shown, first + count))
    parts = "#" + positions
    if id_key is not None:
        parts = parts + f" ({id_key}=" + recent_ids[RECENT_IDS - shown:] + ")"
    names = tf.strings.reduce_join(parts, separator=", ")
    run = tf.strings.join(["#", tf.strings.as_string(first), "..#",
                           tf.strings.as_string(first + count - 1), " (",
                           tf.strings.as_string(count), " examples; the last ",
                           tf.strings.as_string(shown), ": ", names, ")"])
    return tf.where(count > RECENT_IDS, run, names)


def decode_examples(dataset, *, dataset_name, image_key="image", id_key=None, channels=3,
                    skip_errors=False, skip_counter=None,
                    num_parallel_calls=tf.data.AUTOTUNE,
                    skip_hint="pass skip_errors=True to decode_examples"):
    """Decodes `element[image_key]` of every example, reporting undecodable ones.

    Args:
      dataset: a `tf.data.Dataset` of dicts whose `image_key` is a scalar tf.string of encoded
        image bytes (JPEG, PNG, GIF, BMP; e.g. tfds with `decoders={'image':
        tfds.decode.SkipDecoding()}`).
      dataset_name: named in error messages and skip reports.
      image_key: the feature holding the encoded image.
      id_key: optional scalar string/integer feature naming an example (e.g. 'file_name').
      channels: decoded channels (3: RGB; grey images are expanded), as `tf.io.decode_image`.
      skip_errors: False: an undecodable example stops iteration with an error naming it.
        True: it is dropped, reported on stderr and counted in the skip counter.
      skip_counter: an int64 scalar `tf.Variable` to add skips to (shared between pipelines);
        None creates one.
      num_parallel_calls: parallelism of the decoding map (its output order is kept).
      skip_hint: how to skip instead, in the error message (callers name their own option).

    Returns:
      (dataset, skip_counter): elements equal the input's with `image_key` replaced by a uint8
      [H, W, channels] image; `skip_counter` holds the number of examples skipped so far.

    Raises:
      ValueError: bad arguments (checked before anything is built).
      tf.errors.InvalidArgumentError (while iterating, skip_errors=False): "could not decode
        the image of example(s) #5 (file_name=x.jpg) of dataset NAME; ... [undecodable image
        report N]"; `undecodable_error` turns it into the message alone.
    """
    _check_arguments(dataset, dataset_name, image_key, id_key, channels, skip_errors,
                     skip_counter)
    if skip_counter is None:
        skip_counter = new_skip_counter()
    spec = dataset.element_spec
    flagged = tf.data.Dataset.zip(dataset, tf.data.Dataset.from_tensors(True).repeat())
    flagged = flagged.concatenate(tf.data.Dataset.from_tensors((_sentinel(spec, image_key),
                                                                False)))
    numbered = flagged.enumerate()  # (position, (example, is_real))

    if id_key is not None:
        def remember(recent, element):
            position, flagged_example = element
            example_id = flagged_example[0][id_key]
            if example_id.dtype != tf.string:
                example_id = tf.strings.as_string(example_id)
            return tf.concat([recent[1:], [example_id]], 0), (position, flagged_example, recent)
        numbered = numbered.scan(tf.fill([RECENT_IDS], ""), remember)

    def decode(position, element, *recent):
        example, real = element
        image = tf.io.decode_image(example[image_key], channels=channels,
                                   expand_animations=False)
        return (position, (dict(example, **{image_key: image}), real), *recent)

    # Ordered, so that a missing position is a dropped example whatever the options say.
    decoded = numbered.map(decode, num_parallel_calls=num_parallel_calls,
                           deterministic=True).ignore_errors(log_warning=True)

    def check(expected, element):
        position, flagged_example, *recent = element
        missing = position - expected

        def report():
            names = _describe(expected, missing, recent[0] if recent else None, id_key)
            if skip_errors:
                total = tf.strings.as_string(skip_counter.assign_add(missing))
                message = tf.strings.join([
                    "WARNING: skipped undecodable example(s) ", names, f" of dataset "
                    f"{dataset_name} (", total, " skipped so far)"])
                printed = tf.print(message, output_stream=sys.stderr)
                with tf.control_dependencies([printed]):
                    return tf.identity(missing)
            message = tf.strings.join([
                "could not decode the image of example(s) ", names, f" of dataset "
                f"{dataset_name}; {skip_hint} to skip and count such examples"])
            # The error carries the number of its record, which keeps the message as written
            # (the error's text escapes quotes and other bytes of ids and names).
            number = tf.py_function(_record_failure, [message], tf.int64)
            tagged = tf.strings.join([message, _REPORT_TAG, tf.strings.as_string(number), "]"])
            failed = tf.debugging.Assert(tf.constant(False), [tagged])
            with tf.control_dependencies([failed]):
                return tf.identity(missing)

        checked = tf.cond(missing > 0, report, lambda: missing)
        with tf.control_dependencies([checked]):
            return position + 1, flagged_example

    def is_real(example, real):
        del example
        return real

    def strip_flag(example, real):
        del real
        return example

    checked = decoded.scan(tf.constant(0, tf.int64), check)
    return checked.filter(is_real).map(strip_flag), skip_counter


class UndecodableImageError(Exception):
    """An input pipeline stopped at an image it could not decode; the message names it."""


_FAILURES = {}  # report number -> message, of the pipelines stopped at an undecodable image
_NUMBERS = itertools.count(1)  # next() is atomic: pipelines may stop on several threads at once
_REPORT_TAG = " [undecodable image report "
_REPORT = re.compile(re.escape(_REPORT_TAG) + r"(\d+)\]")


def _record_failure(message):
    number = next(_NUMBERS)
    _FAILURES[number] = message.numpy().decode()
    return number


def undecodable_error(error):
    """The `UndecodableImageError` behind `error` when it is TensorFlow's error of a
    `decode_examples` pipeline that stopped at an undecodable image, else None: the error
    carries the number of the report its pipeline recorded as it stopped (several pipelines,
    prefetching ones too, may have stopped; this is the one that raised `error`)."""
    if not isinstance(error, tf.errors.OpError):
        return None
    numbers = _REPORT.findall(error.message)
    text = _FAILURES.get(int(numbers[-1])) if numbers else None
    return UndecodableImageError(text) if text is not None else None
