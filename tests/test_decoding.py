"""decode_examples: undecodable images are an error naming them, or skipped and counted."""
import functools

import numpy as np
import pytest
import tensorflow as tf

from tests.slim_preprocessing import photos
from tfmodels.data.pipelines import decoding


@functools.lru_cache(maxsize=None)
def jpegs():
    """Six JPEGs cut from the sample photos, one of them grey, plus one PNG."""
    china, flower = photos()["china"], photos()["flower"]
    crops = [china[:40, :50], flower[100:131, 7:70], china[200:260, 300:333],
             flower[:17, :23], china[50:90, 50:90]]
    encoded = [tf.io.encode_jpeg(c, quality=90).numpy() for c in crops]
    encoded.append(tf.io.encode_jpeg(flower[:30, :20, :1]).numpy())     # grey JPEG
    encoded.append(tf.io.encode_png(china[:9, :11]).numpy())
    return encoded


def corrupt():
    good = jpegs()[2]
    return {"truncated": good[:len(good) // 3], "garbage": b"not an image at all",
            "empty": b"", "bad_header": b"\xff\xd8\xff" + b"\x00" * 64}


def make(images, ids=None):
    ids = ids if ids is not None else [f"img{i}.jpg".encode() for i in range(len(images))]
    return tf.data.Dataset.from_tensor_slices({"image": images, "file_name": ids,
                                               "label": np.arange(len(images), dtype=np.int64)})


def decode_all(images):
    return [tf.io.decode_image(i, channels=3, expand_animations=False).numpy() for i in images]


@pytest.mark.parametrize("bad_at", [0, 3, 7])
@pytest.mark.parametrize("kind", ["truncated", "garbage", "empty", "bad_header"])
def test_error_names_dataset_and_example(bad_at, kind):
    images = list(jpegs())
    images.insert(bad_at, corrupt()[kind])
    ds, _ = decoding.decode_examples(make(images), dataset_name="photos", id_key="file_name")
    iterator = iter(ds)
    for _ in range(bad_at):      # the examples before the bad one come out
        next(iterator)
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=rf"could not decode the image of example\(s\) #{bad_at} "
                             rf"\(file_name=img{bad_at}.jpg\) of dataset photos"):
        next(iterator)


def test_undecodable_error_takes_the_report_of_the_pipeline_that_raised():
    """The error carries its report's number: the message comes back exactly as written,
    though the error's text escapes the quotes of an id, and never another pipeline's."""
    hint = "; pass skip_errors=True to decode_examples to skip and count such examples"
    named, _ = decoding.decode_examples(
        make([jpegs()[0], corrupt()["garbage"]], ids=[b"a.jpg", 'café "x".jpg'.encode()]),
        dataset_name="photos", id_key="file_name")
    unnamed, _ = decoding.decode_examples(make([corrupt()["empty"]]), dataset_name="photos")
    errors = []
    for dataset in (named, unnamed):
        with pytest.raises(tf.errors.InvalidArgumentError) as err:
            list(dataset)
        errors.append(err.value)
    assert '\\"x\\"' in errors[0].message  # what a search for the message would miss
    assert str(decoding.undecodable_error(errors[0])) == (
        'could not decode the image of example(s) #1 (file_name=café "x".jpg) of dataset '
        "photos" + hint)
    assert str(decoding.undecodable_error(errors[1])) == (
        "could not decode the image of example(s) #0 of dataset photos" + hint)
    assert decoding.undecodable_error(tf.errors.InvalidArgumentError(
        None, None, "could not decode the image of example(s) #0 of dataset photos")) is None
    assert decoding.undecodable_error(ValueError("x")) is None


def test_skip_drops_counts_and_reports(capfd):
    good = list(jpegs())
    bad = corrupt()
    images = [bad["garbage"], good[0], good[1], bad["truncated"], bad["empty"], good[2],
              good[3], good[4], good[5], good[6], bad["bad_header"]]
    ds, skipped = decoding.decode_examples(make(images), dataset_name="photos",
                                           id_key="file_name", skip_errors=True)
    out = list(ds)
    assert int(skipped.numpy()) == 4
    assert [int(e["label"]) for e in out] == [1, 2, 5, 6, 7, 8, 9]
    for element, want in zip(out, decode_all(good)):
        assert element["image"].dtype == tf.uint8 and element["image"].shape[-1] == 3
        np.testing.assert_array_equal(element["image"].numpy(), want)
    err = capfd.readouterr().err
    assert "skipped undecodable example(s) #0 (file_name=img0.jpg) of dataset photos" in err
    assert "#3 (file_name=img3.jpg), #4 (file_name=img4.jpg) of dataset photos (3 " in err
    assert "#10 (file_name=img10.jpg) of dataset photos (4 skipped so far)" in err
    # A second pass counts again, into the same counter.
    assert len(list(ds)) == 7 and int(skipped.numpy()) == 8


def test_long_runs_integer_ids_and_no_ids(capfd):
    good, bad = list(jpegs()), corrupt()["garbage"]
    images = [good[0]] + [bad] * 10 + [good[1]]
    counter = decoding.new_skip_counter()
    ds, same = decoding.decode_examples(make(images, ids=np.arange(100, 112)),
                                        dataset_name="d", id_key="file_name",
                                        skip_errors=True, skip_counter=counter)
    assert same is counter and len(list(ds)) == 2 and int(counter.numpy()) == 10
    err = capfd.readouterr().err
    assert ("#1..#10 (10 examples; the last 8: #3 (file_name=103), #4 (file_name=104)" in err
            and "#10 (file_name=110))" in err)
    ds, _ = decoding.decode_examples(make([bad, good[0], bad]), dataset_name="d")
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match=r"example\(s\) #0 of dataset d; pass skip_errors=True"):
        list(ds)
    ds, counted = decoding.decode_examples(make([bad, good[0], bad]), dataset_name="d",
                                           skip_errors=True)
    assert len(list(ds)) == 1 and int(counted.numpy()) == 2


def test_order_and_content_survive_parallel_sloppy_options():
    images = list(jpegs()) * 5
    source = make(images)
    options = tf.data.Options()
    options.deterministic = False
    ds, skipped = decoding.decode_examples(source.with_options(options), dataset_name="p",
                                           num_parallel_calls=4)
    out = list(ds.map(lambda e: e["image"], num_parallel_calls=4, deterministic=True))
    for got, want in zip(out, decode_all(images), strict=True):
        np.testing.assert_array_equal(got.numpy(), want)
    assert int(skipped.numpy()) == 0


def test_empty_dataset_and_channels():
    ds, skipped = decoding.decode_examples(make(list(jpegs())).take(0), dataset_name="e")
    assert list(ds) == [] and int(skipped.numpy()) == 0
    ds, _ = decoding.decode_examples(make(list(jpegs())), dataset_name="g", channels=1)
    assert all(e["image"].shape[-1] == 1 for e in ds)


def test_bad_arguments():
    ds = make(list(jpegs()))
    with pytest.raises(ValueError, match=r"dataset must be a tf.data.Dataset; got list"):
        decoding.decode_examples([1], dataset_name="x")
    with pytest.raises(ValueError, match=r"elements must be dicts"):
        decoding.decode_examples(ds.map(lambda e: (e["image"], e["label"])), dataset_name="x")
    with pytest.raises(ValueError, match=r"dataset_name='' must be a non-empty string"):
        decoding.decode_examples(ds, dataset_name="")
    with pytest.raises(ValueError, match=r"image_key='jpeg' must name a scalar tf.string"):
        decoding.decode_examples(ds, dataset_name="x", image_key="jpeg")
    with pytest.raises(ValueError, match=r"image_key='label' must name a scalar tf.string"):
        decoding.decode_examples(ds, dataset_name="x", image_key="label")
    with pytest.raises(ValueError, match=r"id_key='id' must be None or name a scalar"):
        decoding.decode_examples(ds, dataset_name="x", id_key="id")
    with pytest.raises(ValueError, match=r"channels=2 must be 0 \(as stored\), 1, 3 or 4"):
        decoding.decode_examples(ds, dataset_name="x", channels=2)
    with pytest.raises(ValueError, match=r"skip_errors=1 must be True or False"):
        decoding.decode_examples(ds, dataset_name="x", skip_errors=1)
    with pytest.raises(ValueError, match=r"skip_counter=.* must be None or an int64 scalar"):
        decoding.decode_examples(ds, dataset_name="x", skip_counter=tf.Variable(0))
