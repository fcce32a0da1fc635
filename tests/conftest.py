"""Shared fixtures: Keras on TensorFlow, seeded generators, and multi-replica runs."""
import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
import pytest

from tests import replicas


# Fixtures that run their scenarios in one subprocess per replica count (tests/replicas.py).
_REPLICA_FIXTURES = {"replica_runner", "gpu_runner"}


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    """Tests that use a replica runner carry the `subprocess` marker (set before `-m` selects);
    tests that start scripts or interpreters themselves are marked where they are written."""
    for item in items:
        if _REPLICA_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.subprocess)


@pytest.fixture(autouse=True)
def _seed_everything():
    """Every test starts from the same Python, NumPy and TensorFlow seeds, and leaves op
    determinism as it found it: an in-process `train(deterministic=True)` turns it on for the
    whole process, where unseeded random ops of a later test (a TF1 graph's initialisers)
    would then fail."""
    import keras
    from tensorflow.python.framework import config as tf_config

    keras.utils.set_random_seed(1234)
    yield
    if tf_config.is_op_determinism_enabled():
        tf_config.disable_op_determinism()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture(scope="session")
def replica_runner(tmp_path_factory):
    """Runs `@replicas.scenario` functions under 1..N logical CPU devices (see tests/replicas.py).

    Under pytest-xdist the workers share one folder (their base temp's parent belongs to this
    run alone), so each replica count runs once per test run, not once per worker."""
    if os.environ.get("PYTEST_XDIST_WORKER"):
        workdir = tmp_path_factory.getbasetemp().parent / "replicas"
    else:
        workdir = tmp_path_factory.mktemp("replicas")
    return replicas.Runner(workdir)
