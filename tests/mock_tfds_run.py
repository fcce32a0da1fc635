"""Runs a script of the repository unchanged inside `tfds.testing.mock_data`.

    python -m tests.mock_tfds_run NUM_EXAMPLES train.py --dataset=tfds:oxford_flowers102 ...

`tfds.testing.mock_data(num_examples=NUM_EXAMPLES)` is how tfds users test pipelines: every
tfds builder then serves NUM_EXAMPLES generated examples per split (random image sizes where
the feature's size varies) without prepared files. The script runs as `__main__` (`runpy`)
with the remaining arguments, so it needs no mock-specific code.
"""
import runpy
import sys


def main():
    if len(sys.argv) < 3 or not sys.argv[1].isdigit():
        sys.exit("usage: python -m tests.mock_tfds_run NUM_EXAMPLES SCRIPT [ARGS...]")
    num_examples, script, *args = sys.argv[1:]
    import tensorflow_datasets as tfds

    sys.argv = [script, *args]
    with tfds.testing.mock_data(num_examples=int(num_examples)):
        runpy.run_path(script, run_name="__main__")


if __name__ == "__main__":
    main()
