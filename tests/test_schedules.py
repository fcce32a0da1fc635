"""Learning-rate schedules against their closed forms at chosen steps."""
import keras
import numpy as np
import pytest

from tfmodels.schedules import WarmupSchedule


def rates(schedule, steps):
    return np.array([float(schedule(t)) for t in steps])


def test_constant_with_warmup():
    s = WarmupSchedule("constant", 0.4, total_steps=100, warmup_steps=4)
    np.testing.assert_allclose(rates(s, [0, 1, 2, 3, 4, 50, 99]),
                               [0.1, 0.2, 0.3, 0.4, 0.4, 0.4, 0.4], rtol=1e-6)


def test_piecewise():
    s = WarmupSchedule("piecewise", 1.0, total_steps=100, boundaries=(10, 20), decay_factor=0.1)
    np.testing.assert_allclose(rates(s, [0, 9, 10, 19, 20, 99]),
                               [1, 1, 0.1, 0.1, 0.01, 0.01], rtol=1e-6)


@pytest.mark.parametrize("alpha", [0.0, 0.1])
def test_cosine_after_warmup(alpha):
    # 120 steps of decay after 10 of warmup: u = 0, 1/3, 1/2, 2/3, 1 at steps 10, 50, 70, 90, 130,
    # where (1 + cos(pi u)) / 2 = 1, 3/4, 1/2, 1/4, 0; warmup step t gets lr(10) * (t + 1) / 10.
    base = 0.2
    s = WarmupSchedule("cosine", base, total_steps=130, warmup_steps=10, alpha=alpha)
    warmup = base * np.array([0.1, 0.5, 1.0])  # steps 0, 4, 9
    cosine = base * (alpha + (1 - alpha) * np.array([1.0, 0.75, 0.5, 0.25, 0.0, 0.0]))
    np.testing.assert_allclose(rates(s, [0, 4, 9, 10, 50, 70, 90, 130, 200]),
                               np.concatenate([warmup, cosine]), rtol=1e-6, atol=1e-9)


def test_serialization_round_trip():
    s = WarmupSchedule("piecewise", 0.1, 1000, warmup_steps=5, boundaries=(100, 500))
    restored = keras.optimizers.schedules.deserialize(keras.optimizers.schedules.serialize(s))
    np.testing.assert_allclose(rates(restored, [0, 3, 100, 700]), rates(s, [0, 3, 100, 700]))


@pytest.mark.parametrize("kwargs, match", [
    (dict(kind="linear"), "--lr_schedule=linear"),
    (dict(base_learning_rate=0.0), "learning_rate=0.0"),
    (dict(warmup_steps=200), r"warmup_steps=200 must be in \[0, 100\]"),
    (dict(kind="piecewise"), "needs --lr_boundaries"),
    (dict(kind="piecewise", boundaries=(50, 20)), "increasing"),
    (dict(decay_factor=0.0), "lr_decay_factor=0.0"),
])
def test_bad_arguments(kwargs, match):
    args = dict(kind="constant", base_learning_rate=0.1, total_steps=100)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        WarmupSchedule(**args)
