"""The replica harness really runs N replicas and reports scenario failures."""
import numpy as np
import pytest

from tests import replicas


@replicas.scenario(1, 3)
def replica_ids(strategy):
    import tensorflow as tf

    def ids():
        ctx = tf.distribute.get_replica_context()
        return tf.cast(ctx.replica_id_in_sync_group, tf.float32)

    per_replica = strategy.run(ids)
    return {"ids": np.sort([float(v) for v in strategy.experimental_local_results(per_replica)]),
            "devices": np.array(len(strategy.extended.worker_devices))}


@replicas.scenario(2)
def broken(strategy):
    raise RuntimeError("this scenario fails on purpose")


def test_counts(replica_runner):
    np.testing.assert_array_equal(replica_runner.run(replica_ids, 1)["ids"], [0.0])
    three = replica_runner.run(replica_ids, 3)
    np.testing.assert_array_equal(three["ids"], [0.0, 1.0, 2.0])
    assert int(three["devices"]) == 3


def test_failure_is_reported(replica_runner):
    with pytest.raises(pytest.fail.Exception, match="fails on purpose"):
        replica_runner.run(broken, 2)


def test_unregistered_count(replica_runner):
    with pytest.raises(ValueError, match="not registered for 4 replicas"):
        replica_runner.run(replica_ids, 4)
