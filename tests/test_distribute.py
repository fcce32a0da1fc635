"""Device set-up, strategy selection, a lost worker named from TensorFlow's error, and their
errors (the multi-device behaviour is in test_train_replicas)."""
import json
import os
import pathlib
import re

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
    (lambda: strategy_lib.check_options("multi_worker", worker_connect_timeout=0),
     r"^--worker_connect_timeout=0 must be an int in \[1, 86400\]"),
    (lambda: strategy_lib.setup("multi_worker", worker_connect_timeout=86401),
     r"^--worker_connect_timeout=86401 must be an int in \[1, 86400\]"),
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


def _readme_sbatch_script():
    readme = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()
    return re.search(r"An sbatch script.*?```bash\n(.*?)```", readme, re.S).group(1)


def test_readme_sbatch_script_resolves_on_slurm(monkeypatch):
    """The README's sbatch script, as the SLURM job step it makes for its last task: the
    workers, this task's place and its GPUs of the allocation."""
    script = _readme_sbatch_script()
    sbatch = dict(re.findall(r"#SBATCH --([\w-]+)=(\S+)", script))
    assert "--strategy=multi_worker --cluster=slurm" in script
    nodes, per_node = int(sbatch["nodes"]), int(sbatch["ntasks-per-node"])
    gpus = int(sbatch["gres"].rsplit(":", 1)[-1])
    hosts = [f"node{i:02d}" for i in range(1, nodes + 1)]
    last = nodes * per_node - 1
    for name, value in {"SLURM_PROCID": str(last), "SLURM_STEP_NUM_TASKS": str(last + 1),
                        "SLURM_STEP_NODELIST": f"node[01-{nodes:02d}]",
                        "SLURM_STEP_TASKS_PER_NODE": f"{per_node}(x{nodes})",
                        "SLURM_GPUS_ON_NODE": str(gpus), "CUDA_VISIBLE_DEVICES": ""}.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("SLURM_GPUS_PER_TASK", raising=False)
    resolver = strategy_lib.slurm_resolver()
    assert resolver.cluster_spec().as_dict() == {
        "worker": [f"{host}:{8888 + rank}" for host in hosts for rank in range(per_node)]}
    assert (resolver.task_type, resolver.task_id) == ("worker", last)
    per_task = gpus // per_node
    assert resolver.num_accelerators() == {"GPU": per_task}
    # The last task of its node sees the last `per_task` GPUs of the node.
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ",".join(
        str(g) for g in range(gpus - per_task, gpus))
    assert not strategy_lib.is_chief(type("S", (), {"cluster_resolver": resolver})())


def test_slurm_needs_a_job_step(monkeypatch):
    for name in strategy_lib.SLURM_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SLURM_PROCID", "0")
    with pytest.raises(ValueError, match=r"^--cluster=slurm reads the job step from SLURM's "
                                         r"variables, and SLURM_STEP_NUM_TASKS, "
                                         r"SLURM_STEP_NODELIST, SLURM_STEP_TASKS_PER_NODE are "
                                         r"not set \(start train.py with srun"):
        strategy_lib.slurm_resolver()
    with pytest.raises(ValueError, match="--cluster=slurm describes the workers of "
                                         "--strategy=multi_worker, not of --strategy=mirrored"):
        strategy_lib.check_options("mirrored", cluster="slurm")
    with pytest.raises(ValueError, match="--cluster=k8s is not one of: tf_config, slurm"):
        strategy_lib.check_options("multi_worker", cluster="k8s")


class _MultiWorker:
    """Stands for a MultiWorkerMirroredStrategy (only its multi-worker mode is read)."""

    class extended:  # noqa: N801 - the attribute's name
        @staticmethod
        def _in_multi_worker_mode():
            return True


def _lost(strategy, error):
    """The WorkerLostError `error` stands for in a run of `strategy`, or None."""
    return strategy_lib.LostWorkerGuard(strategy).error(error)


# The errors TensorFlow 2.21 raised in the surviving worker of two (tests/test_multi_worker.py
# makes them for real): the coordination service's heartbeat check, and a collective's call to
# the worker that was killed.
_HEARTBEATS = ("Collective ops is aborted by: Error reported from /job:worker/task:1: The "
               "following tasks are unhealthy (stopped sending heartbeats):\n"
               "/job:worker/replica:0/task:1\nThe tasks have crashed.")
_CALL = ("Collective ops is aborted by: recvmsg:Connection reset by peer\nAdditional GRPC error "
         "information from remote target /job:worker/replica:0/task:0 while calling "
         "/tensorflow.WorkerService/CompleteInstance:")


@pytest.mark.parametrize("text, line", [
    (_HEARTBEATS, "lost worker 1 of the multi-worker run (stopped sending heartbeats)"),
    (_CALL, "lost worker 0 of the multi-worker run (stopped answering)"),
    ("Socket closed", "lost a worker of the multi-worker run (stopped answering)"),
])
def test_a_lost_worker_is_named_from_tensorflows_error(text, line):
    lost = _lost(_MultiWorker(), tf.errors.UnavailableError(None, None, text))
    assert isinstance(lost, strategy_lib.WorkerLostError)
    assert str(lost) == f"{line}; this worker stops too"


# What TensorFlow 2.21 raised in the chief of two workers when worker 1 had not connected
# within the coordination service's register timeout (--worker_connect_timeout);
# tests/test_multi_worker.py makes it for real.
_NOT_CONNECTED = (
    "Barrier timed out. Id: [Init]Wait_for_all_tasks_to_register::0. This usually happens "
    "because a task triggered the barrier too early or too slowly. Please look at the task logs "
    "(both timed out and first task) to debug further.\n# of tasks that reached the barrier: "
    "1/{n}.\nThe first task at the barrier: /job:worker/replica:0/task:0. Some timed out task "
    "names:\n{missing}\n\nAdditional GRPC error information from remote target "
    "/job:worker/replica:0/task:0 while calling /tensorflow.CoordinationService/RegisterTask:")

# ... and in worker 1 when worker 0, which hosts the service, never started.
_HOST_MISSING = ("Deadline Exceeded\nAdditional GRPC error information from remote target "
                 "/job:worker/replica:0/task:0 while calling "
                 "/tensorflow.CoordinationService/RegisterTask:\n:UNKNOWN:Error received from "
                 'peer  {grpc_status:4, grpc_message:"Deadline Exceeded"}')


@pytest.mark.parametrize("missing, who", [
    ("/job:worker/replica:0/task:1", "worker 1"),
    ("/job:worker/replica:0/task:1\n/job:worker/replica:0/task:2", "worker 1, worker 2"),
])
def test_a_worker_that_never_connected_is_named(missing, who):
    error = tf.errors.DeadlineExceededError(None, None, _NOT_CONNECTED.format(
        n=missing.count("\n") + 2, missing=missing))
    lost = _lost(_MultiWorker(), error)
    assert str(lost) == (f"{who} of the multi-worker run did not connect within "
                         "--worker_connect_timeout seconds; this worker stops too")
    # The other side: worker 1 started, the worker that hosts the service (task 0) never did.
    lost = _lost(_MultiWorker(), tf.errors.DeadlineExceededError(
        None, None, _HOST_MISSING))
    assert str(lost) == ("worker 0 of the multi-worker run did not connect within "
                         "--worker_connect_timeout seconds; this worker stops too")
    # Another deadline (a bug, a slow op) keeps its traceback; one process maps nothing.
    assert _lost(_MultiWorker(), tf.errors.DeadlineExceededError(
        None, None, "Timed out waiting for the barrier of the run")) is None
    assert _lost(tf.distribute.get_strategy(), error) is None


def test_unavailable_in_one_process_is_not_a_lost_worker():
    error = tf.errors.UnavailableError(None, None, _HEARTBEATS)
    assert _lost(tf.distribute.get_strategy(), error) is None
    assert _lost(_MultiWorker(), tf.errors.InternalError(None, None, "x")) is None
