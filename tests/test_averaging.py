"""Weight averaging (EMA) against NumPy, and swapping the averages in and out."""
import keras
import numpy as np
import pytest

from tfmodels import averaging


def test_weight_average_matches_numpy_and_swaps(rng):
    w = keras.Variable(np.zeros(3, np.float32), name="kernel")
    average = averaging.WeightAverage([w], decay=0.9)
    shadow, values = np.zeros(3), rng.standard_normal((5, 3))
    for t, value in enumerate(values):
        w.assign(value)
        average.update(t)
        d = min(0.9, (1 + t) / (10 + t))
        shadow = d * shadow + (1 - d) * value
    np.testing.assert_allclose(average.shadows[0].numpy(), shadow, rtol=1e-6)
    with average.swapped():
        np.testing.assert_allclose(w.numpy(), shadow, rtol=1e-6)
    np.testing.assert_allclose(w.numpy(), values[-1], rtol=1e-6)
    with pytest.raises(ValueError, match="ema_decay=1.0"):
        averaging.WeightAverage([w], decay=1.0)
