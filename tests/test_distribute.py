"""Device set-up, strategy selection and their errors (the multi-device behaviour is in test_train_replicas)."""
import json

import pytest
import tensorflow as tf

from tfmodels import distribute as strategy_lib


def test_auto_on_one_cpu_is_the_default_strategy():
    strategy = strategy_lib.create_strategy("auto")
    assert strategy is tf.distribute.get_strategy()
    assert strategy.num_replicas_in_sync == 1
    assert "default strategy" in strategy_lib.describe(strategy)
    assert strategy_lib.is_chief(strategy)


def test_one_device():
    strategy = strategy_lib.create_strategy("one_device")
    assert isinstance(strategy, tf.distribute.OneDeviceStrategy)
    assert "CPU:0" in strategy_lib.describe(strategy)


@pytest.mark.parametrize("call, match", [
    (lambda: strategy_lib.create_strategy("horovod"), "--strategy=horovod is not one of"),
    (lambda: strategy_lib.create_strategy("auto", all_reduce="ring"),
     "--all_reduce=ring is not one of"),
    (lambda: strategy_lib.create_strategy("mirrored", all_reduce="nccl"),
     "--all_reduce=nccl needs GPUs"),
    (lambda: strategy_lib.create_strategy("auto", num_gpus=2),
     r"num_gpus=2 but only 0 GPU\(s\) are visible"),
    (lambda: strategy_lib.create_strategy("auto", num_gpus=-1), "num_gpus=-1"),
    (lambda: strategy_lib.configure_devices(0), "virtual_devices=0"),
    (lambda: strategy_lib.check_options("one_device", virtual_devices=2),
     "--virtual_devices=2 with --strategy=one_device"),
    (lambda: strategy_lib.setup("mirrored", all_reduce="ring"), "--all_reduce=ring is not one of"),
])
def test_bad_arguments(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_multi_worker_needs_a_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="TF_CONFIG environment variable, which is not set"):
        strategy_lib.create_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {}}))
    with pytest.raises(ValueError, match="'cluster' and 'task' keys"):
        strategy_lib.create_strategy("multi_worker")


def test_chief_is_worker_0_without_a_chief_task():
    class Resolver:
        def __init__(self, task_type, task_id, cluster):
            self.task_type, self.task_id, self._cluster = task_type, task_id, cluster

        def cluster_spec(self):
            return tf.train.ClusterSpec(self._cluster)

    class FakeStrategy:
        def __init__(self, resolver):
            self.cluster_resolver = resolver

    workers = {"worker": ["localhost:1", "localhost:2"]}
    with_chief = dict(workers, chief=["localhost:3"])
    assert strategy_lib.is_chief(FakeStrategy(Resolver("worker", 0, workers)))
    assert not strategy_lib.is_chief(FakeStrategy(Resolver("worker", 1, workers)))
    assert not strategy_lib.is_chief(FakeStrategy(Resolver("worker", 0, with_chief)))
    assert strategy_lib.is_chief(FakeStrategy(Resolver("chief", 0, with_chief)))
