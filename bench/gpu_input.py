"""JPEG input: images/s of decode + resize + crop with every core, to set against a GPU.

    python bench/gpu_input.py --out=DIR/x.jsonl --deadline=<unix time> [--quick]

The photos are scikit-learn's two sample images (427x640), cut into `NUM_IMAGES` distinct
random crops of ImageNet-like sizes and re-encoded as JPEG (quality 90), so that every decode
does real work; the stream repeats them. Each variant is a `tf.data` map over the encoded
bytes with `AUTOTUNE` parallelism (every core), batched, prefetched, timed for a few seconds
after a warm-up; one JSON record per variant goes to `--out`:

- `decode + resize 256 + crop 224`: `decode_jpeg`, shorter side to 256 (bilinear), random
  224x224 crop, random flip, scale to [0, 1] and standardise (the VGG / ResNet recipe);
- `decode_and_crop + resize 224`: Inception's random area / aspect crop decoded directly
  from the JPEG (`decode_and_crop_jpeg`), resized to 224x224, random flip, scaled;
- `per-net preprocessing`: `tfmodels.data.preprocessing.get_preprocessing` for ResNet-50's
  default, on the decoded image, when that function exists (else recorded as absent).
"""
import argparse
import json
import os
import sys
import time
import traceback

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

NUM_IMAGES, SIZE, RESIZE = 64, 224, 256
MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def encoded_photos(num_images, seed=0):
    """`num_images` JPEG strings: random crops (200-427 rows, 4:3 to 3:4) of the two sample
    photos, quality 90."""
    import numpy as np
    import tensorflow as tf
    from sklearn.datasets import load_sample_images

    photos = load_sample_images().images
    rng = np.random.default_rng(seed)
    out = []
    for i in range(num_images):
        photo = photos[i % len(photos)]
        height = int(rng.integers(200, photo.shape[0] + 1))
        width = min(photo.shape[1], int(height * rng.uniform(0.75, 1.33)))
        top = int(rng.integers(0, photo.shape[0] - height + 1))
        left = int(rng.integers(0, photo.shape[1] - width + 1))
        crop = photo[top:top + height, left:left + width]
        out.append(tf.io.encode_jpeg(crop, quality=90).numpy())
    return out


def _standardise(image):
    import tensorflow as tf

    return (tf.cast(image, tf.float32) / 255.0 - MEAN) / STD


def resize_crop(data, seed):
    """decode, shorter side to RESIZE, random SIZE crop, random flip, standardise."""
    import tensorflow as tf

    image = tf.io.decode_jpeg(data, channels=3)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = RESIZE / tf.reduce_min(shape)
    image = tf.image.resize(image, tf.cast(tf.round(shape * scale), tf.int32))
    image = tf.image.stateless_random_crop(image, [SIZE, SIZE, 3], seed=seed)
    image = tf.image.stateless_random_flip_left_right(image, seed=seed)
    return _standardise(image)


def decode_and_crop(data, seed):
    """Inception's random crop decoded from the JPEG directly, resized to SIZE, flipped."""
    import tensorflow as tf

    shape = tf.io.extract_jpeg_shape(data)
    begin, size, _ = tf.image.stateless_sample_distorted_bounding_box(
        shape, tf.zeros([0, 0, 4], tf.float32), seed=seed, min_object_covered=0.1,
        aspect_ratio_range=(3 / 4, 4 / 3), area_range=(0.08, 1.0), max_attempts=10,
        use_image_if_no_bounding_boxes=True)
    window = tf.stack([begin[0], begin[1], size[0], size[1]])
    image = tf.io.decode_and_crop_jpeg(data, window, channels=3)
    image = tf.image.resize(image, [SIZE, SIZE])
    image = tf.image.stateless_random_flip_left_right(image, seed=seed)
    return _standardise(image)


def per_net_preprocessing():
    """(fn(data, seed), description) from tfmodels.data.preprocessing, or (None, why not)."""
    from tfmodels.data import preprocessing

    if not hasattr(preprocessing, "get_preprocessing"):
        return None, ("absent: tfmodels.data.preprocessing has no get_preprocessing yet; the "
                      "bare maps above stand in")
    name = (preprocessing.default_preprocessing("resnet_v1_50")
            if hasattr(preprocessing, "default_preprocessing") else "vgg")
    preprocess = preprocessing.get_preprocessing(name, is_training=True)

    def fn(data, seed):
        import tensorflow as tf

        return preprocess(tf.io.decode_jpeg(data, channels=3), SIZE, SIZE, seed=seed)

    return fn, f"tfmodels.data.preprocessing.get_preprocessing({name!r}, is_training=True)"


def images_per_sec(fn, photos, batch, seconds, warmup_batches=3):
    """Images/s of `fn(jpeg bytes, seed)` mapped over the repeated photos, batched."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices(photos).repeat().enumerate()
    data = data.map(lambda i, x: fn(x, tf.stack([i, tf.constant(0, tf.int64)])),
                    num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
    iterator = iter(data.batch(batch, drop_remainder=True).prefetch(tf.data.AUTOTUNE))
    for _ in range(warmup_batches):
        next(iterator)
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        count += int(next(iterator).shape[0])
    return count / (time.perf_counter() - start)


def run(out_path, deadline, quick=False):
    batch, seconds = (16, 1.0) if quick else (256, 5.0)
    photos = encoded_photos(NUM_IMAGES)
    variants = [("decode + resize 256 + crop 224", resize_crop, "bare tf.data map"),
                ("decode_and_crop + resize 224", decode_and_crop, "bare tf.data map")]
    fn, description = per_net_preprocessing()
    if fn is None:
        _write(out_path, {"kind": "input", "variant": "per-net preprocessing",
                          "status": "skipped", "reason": description})
    else:
        variants.append(("per-net preprocessing", fn, description))
    for name, fn, description in variants:
        record = {"kind": "input", "variant": name, "preprocessing": description,
                  "batch": batch, "cores": os.cpu_count()}
        if time.time() + 2 * seconds > deadline:
            _write(out_path, dict(record, status="skipped", reason="time box"))
            continue
        try:
            _write(out_path, dict(record, status="ok",
                                  images_per_sec=images_per_sec(fn, photos, batch, seconds)))
        except Exception as err:  # noqa: BLE001 - recorded; the next variant may still work
            _write(out_path, dict(record, status="failed",
                                  error=f"{type(err).__name__}: {err}"[:2000],
                                  traceback=traceback.format_exc()[-3000:]))


def _write(path, record):
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="JSON-lines file to append records to")
    parser.add_argument("--deadline", type=float, required=True, help="unix time to stop by")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    run(args.out, args.deadline, args.quick)


if __name__ == "__main__":
    main()
