"""Devices and distribution strategies: one device, mirrored towers, several workers, TPU.

    strategy = setup("auto", num_gpus=None, all_reduce="auto", virtual_devices=1)
    # = configure_devices(virtual_devices) (before TensorFlow runs anything), then
    #   create_strategy(name, num_gpus=..., all_reduce=...)

`auto` mirrors over every visible GPU (logical GPUs included), else over the logical CPU devices
when the CPU was split into several; with a single device it uses TensorFlow's default strategy
(ops placed as without tf.distribute, like Keras `fit` without a strategy): measured here,
`OneDeviceStrategy`'s input layer keeps a core busy prefetching and doubled the step time of a
small net on 2 cores (17.7 vs 8.5 ms). `one_device` still gives `OneDeviceStrategy`. The same
code runs on real GPUs: `--virtual_devices` only simulates towers where there are none.
"""
import dataclasses
import json
import os
import re
from typing import Optional

import tensorflow as tf

from tfmodels import options
from tfmodels.options import UsageError, option

STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
ALL_REDUCE = ("auto", "nccl", "hierarchical_copy", "one_device")
# Where a multi-worker run learns its cluster: the TF_CONFIG variable, or a SLURM job step.
CLUSTERS = ("tf_config", "slurm")
# The variables of a SLURM job step that TensorFlow's SlurmClusterResolver reads (srun sets them).
SLURM_VARIABLES = ("SLURM_PROCID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST",
                   "SLURM_STEP_TASKS_PER_NODE")


@dataclasses.dataclass(frozen=True)
class StrategyOptions:
    """The strategy options TrainConfig and EvalConfig share (their first fields)."""
    strategy: str = option("auto", "auto: mirrored over all GPUs (or over --virtual_devices "
                           "CPUs), else one CPU.", choices=STRATEGIES)
    num_gpus: Optional[int] = option(None, "GPUs to use (default: all visible).", low=0)
    all_reduce: str = option("auto", "Cross-device all-reduce.", choices=ALL_REDUCE)
    virtual_devices: int = option(1, "Split each physical device into this many logical "
                                  "devices (simulates several GPUs).", low=1, high=1024)
    worker_connect_timeout: int = option(
        300, "--strategy=multi_worker: seconds the workers wait for all of them to connect "
        "before they give up, naming the missing ones.", low=1, high=24 * 3600)


def check_options(strategy="auto", *, num_gpus=None, all_reduce="auto", virtual_devices=1,
                  cluster="tf_config", worker_connect_timeout=300):
    """Raise UsageError naming the option, its value and what is allowed; no TensorFlow work."""
    options.check(StrategyOptions(strategy, num_gpus, all_reduce, virtual_devices,
                                  worker_connect_timeout))
    if cluster not in CLUSTERS:
        raise UsageError(f"--cluster={cluster} is not one of: {', '.join(CLUSTERS)}", "cluster")
    if cluster != "tf_config" and strategy != "multi_worker":
        raise UsageError(f"--cluster={cluster} describes the workers of "
                         f"--strategy=multi_worker, not of --strategy={strategy}", "cluster")
    if strategy == "one_device" and virtual_devices > 1:
        raise UsageError(f"--virtual_devices={virtual_devices} with --strategy=one_device "
                         "would use one of them; use --strategy=mirrored or auto",
                         "virtual_devices")


def setup(strategy="auto", *, num_gpus=None, all_reduce="auto", virtual_devices=1,
          cluster="tf_config", worker_connect_timeout=300):
    """Split devices as asked, then create the strategy: what train.py and eval.py do first.

    Must run before TensorFlow runs any op. Arguments as `check_options` (checked first). With
    `cluster='slurm'` the SLURM job step is resolved first: it makes this task's GPUs of the
    allocation the only visible ones, which must happen before TensorFlow looks at devices.

    Returns:
      A `tf.distribute.Strategy` (see `create_strategy`).
    """
    check_options(strategy, num_gpus=num_gpus, all_reduce=all_reduce,
                  virtual_devices=virtual_devices, cluster=cluster,
                  worker_connect_timeout=worker_connect_timeout)
    resolver = slurm_resolver() if cluster == "slurm" else None
    configure_devices(virtual_devices)
    return create_strategy(strategy, num_gpus=num_gpus, all_reduce=all_reduce,
                           cluster_resolver=resolver,
                           worker_connect_timeout=worker_connect_timeout)


def slurm_resolver(port_base=8888):
    """TensorFlow's `SlurmClusterResolver` for this task of a SLURM job step (run under `srun`).

    One worker per task, named by host and `port_base` + its rank on the host. GPUs come from
    the allocation: `SLURM_GPUS_ON_NODE` per host (0 without GPUs), split evenly over the
    host's tasks unless `SLURM_GPUS_PER_TASK` says how many; each task's are made the only
    visible ones (`CUDA_VISIBLE_DEVICES`).

    Raises:
      UsageError: a variable of the job step is missing (not under srun) or the allocation is
        inconsistent.
    """
    missing = [name for name in SLURM_VARIABLES if name not in os.environ]
    if missing:
        raise UsageError(f"--cluster=slurm reads the job step from SLURM's variables, and "
                         f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not set "
                         "(start train.py with srun inside an sbatch job)", "cluster")
    per_task = os.environ.get("SLURM_GPUS_PER_TASK")
    try:
        gpus_on_node = int(os.environ.get("SLURM_GPUS_ON_NODE") or 0)
        gpus_per_task = int(per_task.rsplit(":", 1)[-1]) if per_task else None  # [type:]N
        resolver = tf.distribute.cluster_resolver.SlurmClusterResolver(
            port_base=port_base, gpus_per_node=gpus_on_node, gpus_per_task=gpus_per_task,
            auto_set_gpu=True)
        resolver.cluster_spec()  # sets task_type / task_id and this task's visible GPUs
    except (ValueError, RuntimeError) as err:
        raise UsageError(f"--cluster=slurm: the SLURM job step does not resolve ({err})",
                         "cluster") from None
    return resolver


def configure_devices(virtual_devices=1, gpu_memory_mb=None):
    """Split each physical device into `virtual_devices` logical devices.

    Must run before TensorFlow initialises its runtime (before any op or strategy), and does
    not initialise it itself: MultiWorkerMirroredStrategy must still be able to configure
    collective ops afterwards. A GPU is split into parts of `gpu_memory_mb` MB each (required
    for GPUs; TF needs a memory limit).
    """
    options.check_int("virtual_devices", virtual_devices, low=1)
    if virtual_devices > 1:
        gpus = tf.config.list_physical_devices("GPU")
        for device in gpus or tf.config.list_physical_devices("CPU")[:1]:
            if device.device_type == "GPU" and not gpu_memory_mb:
                raise ValueError(
                    f"virtual_devices={virtual_devices} on a GPU needs gpu_memory_mb (the memory "
                    "of each logical GPU)")
            config = tf.config.LogicalDeviceConfiguration(
                memory_limit=gpu_memory_mb if device.device_type == "GPU" else None)
            try:
                tf.config.set_logical_device_configuration(device, [config] * virtual_devices)
            except RuntimeError as err:
                raise RuntimeError(
                    "virtual devices must be configured before TensorFlow runs any op; "
                    f"call configure_devices() first ({err})") from None


def create_strategy(name="auto", *, num_gpus=None, all_reduce="auto", tpu_address=None,
                    cluster_resolver=None, worker_connect_timeout=300):
    """Create a tf.distribute strategy.

    Args:
      name: one of STRATEGIES.
      num_gpus: GPUs to mirror over (None: all visible). 0 forces the CPU.
      all_reduce: cross-device reduction for mirrored towers: `nccl`, `hierarchical_copy`,
        `one_device` (reduce on one device, then broadcast) or `auto` (TensorFlow's choice).
        For `multi_worker`, `nccl` selects NCCL collectives and anything else TF's default.
      tpu_address: TPU name or grpc address for `tpu` (None: the environment's default).
      cluster_resolver: the cluster of `multi_worker` (None: TF_CONFIG's).
      worker_connect_timeout: seconds the workers of `multi_worker` wait for all of them to
        connect; then each one that waited fails with an error naming the missing ones
        (`lost_worker` maps it).

    Returns:
      A `tf.distribute.Strategy`.
    """
    check_options(name, num_gpus=num_gpus, all_reduce=all_reduce,
                  worker_connect_timeout=worker_connect_timeout)
    if name == "multi_worker":
        return _multi_worker(all_reduce, cluster_resolver, worker_connect_timeout)
    if name == "tpu":
        return _tpu(tpu_address)

    devices = select_devices(num_gpus)
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(devices[0])
    if name == "auto" and len(devices) == 1:
        return tf.distribute.get_strategy()
    if all_reduce == "nccl" and not devices[0].startswith("/gpu"):
        raise UsageError("--all_reduce=nccl needs GPUs; on CPU devices use hierarchical_copy, "
                         "one_device or auto", "all_reduce")
    return tf.distribute.MirroredStrategy(devices, cross_device_ops=_cross_device_ops(all_reduce))


def select_devices(num_gpus=None):
    """The devices towers run on: the first `num_gpus` logical GPUs, else the logical CPUs."""
    gpus = [d.name for d in tf.config.list_logical_devices("GPU")]
    if num_gpus is not None:
        if num_gpus > len(gpus):
            raise UsageError(f"--num_gpus={num_gpus} but only {len(gpus)} GPU(s) are visible "
                             f"({', '.join(gpus) or 'none'})", "num_gpus")
        gpus = gpus[:num_gpus]
    if gpus:
        return [f"/gpu:{i}" for i in range(len(gpus))]
    cpus = tf.config.list_logical_devices("CPU")
    return [f"/cpu:{i}" for i in range(len(cpus))]


def _cross_device_ops(all_reduce):
    if all_reduce == "nccl":
        return tf.distribute.NcclAllReduce()
    if all_reduce == "hierarchical_copy":
        return tf.distribute.HierarchicalCopyAllReduce()
    if all_reduce == "one_device":
        return tf.distribute.ReductionToOneDevice()
    return None


def _multi_worker(all_reduce, cluster_resolver=None, worker_connect_timeout=300):
    if cluster_resolver is None and "TF_CONFIG" not in os.environ:
        raise UsageError("--strategy=multi_worker reads the cluster from the TF_CONFIG "
                         "environment variable, which is not set", "strategy")
    try:
        if cluster_resolver is None:
            cluster = json.loads(os.environ["TF_CONFIG"])
            cluster["cluster"], cluster["task"]  # noqa: B018 - both keys are required
    except (ValueError, KeyError, TypeError):
        raise UsageError(f"TF_CONFIG={os.environ['TF_CONFIG']!r} is not JSON with 'cluster' "
                         "and 'task' keys") from None
    _configure_coordination(cluster_resolver or
                            tf.distribute.cluster_resolver.TFConfigClusterResolver(),
                            worker_connect_timeout)
    implementation = (tf.distribute.experimental.CommunicationImplementation.NCCL
                      if all_reduce == "nccl"
                      else tf.distribute.experimental.CommunicationImplementation.AUTO)
    return tf.distribute.MultiWorkerMirroredStrategy(
        cluster_resolver=cluster_resolver,
        communication_options=tf.distribute.experimental.CommunicationOptions(
            implementation=implementation))


def _configure_coordination(resolver, connect_timeout):
    """Configure the coordination service as MultiWorkerMirroredStrategy would (it leaves a
    configured one alone), and bound how long its start waits for every worker to connect.

    TensorFlow's own configuration waits for a missing worker without end (a worker that died
    before it connected kept the others waiting past 5 minutes, deaf to SIGTERM, which the
    service holds until the strategy exists). Registering behind a barrier with
    `connect_timeout` makes each waiting worker fail with DEADLINE_EXCEEDED naming the missing
    tasks instead. Must run before TensorFlow's context is initialised (as the strategy itself).
    """
    # The coordination service's settings live in TensorFlow's internal eager context: the
    # only place MultiWorkerMirroredStrategy reads them from (no public API sets them).
    from tensorflow.python.distribute import multi_worker_util  # pylint: disable=g-import-not-at-top
    from tensorflow.python.eager import context  # pylint: disable=g-import-not-at-top
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2  # pylint: disable=g-import-not-at-top

    ctx = context.context()
    if (ctx.coordination_service is not None or resolver.task_type not in ("chief", "worker")
            or ctx._context_handle is not None):  # pylint: disable=protected-access
        # Configured already, a task the service does not coordinate (TensorFlow's rule), or
        # too late to take effect (TensorFlow runs already: the strategy then fails for
        # several workers, "Collective ops must be configured at program startup").
        return
    spec = resolver.cluster_spec()
    ctx.configure_coordination_service(
        service_type="standalone",
        service_leader=multi_worker_util.coordination_leader(spec),
        coordinated_jobs=[coordination_config_pb2.CoordinatedJob(name=job,
                                                                 num_tasks=spec.num_tasks(job))
                          for job in ("chief", "worker") if job in spec.jobs],
        cluster_register_timeout_in_ms=int(connect_timeout * 1000))
    ctx.coordination_service.cluster_register_with_barrier = True


def _tpu(tpu_address):
    try:
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu_address)
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
    except (ValueError, tf.errors.OpError) as err:
        raise UsageError(f"--strategy=tpu found no TPU at tpu_address={tpu_address!r}: {err}",
                         "strategy") from None
    return tf.distribute.TPUStrategy(resolver)


class WorkerLostError(RuntimeError):
    """A worker of a multi-worker run is gone (killed, crashed, its machine lost): the others
    cannot go on, since every step all-reduces across all of them. The message is one line."""


# How TensorFlow names a lost task: the coordination service's heartbeat check ("The following
# tasks are unhealthy (stopped sending heartbeats):\n/job:worker/replica:0/task:1") or, when the
# task that hosts the service is the one lost, the failed call to it ("... from remote target
# /job:worker/replica:0/task:0 ...").
_LOST_TASK = re.compile(r"(?:stopped sending heartbeats\):\s*|remote target\s+)"
                        r"/job:(\w+)/replica:\d+/task:(\d+)")


# What TensorFlow says when a worker has not connected within the coordination service's
# register timeout (`_configure_coordination`): "Barrier timed out. Id: [Init]Wait_for_all_
# tasks_to_register::0. ... Some timed out task names:\n/job:worker/replica:0/task:1\n\n...",
# in the worker hosting the service; in another worker, when the one hosting it is missing:
# "Deadline Exceeded\nAdditional GRPC error information from remote target /job:worker/
# replica:0/task:0 while calling /tensorflow.CoordinationService/RegisterTask: ...".
_REGISTER = "CoordinationService/RegisterTask"
_REGISTER_BARRIER = "Wait_for_all_tasks_to_register"
_TIMED_OUT = "timed out task names:"
_MISSING_TASK = re.compile(r"/job:(\w+)/replica:\d+/task:(\d+)")


def in_multi_worker_mode(strategy):
    """Whether `strategy` runs over several worker processes."""
    return bool(getattr(strategy.extended, "_in_multi_worker_mode", lambda: False)())


def _lost_worker(error):
    """The `WorkerLostError` that `error`, raised in a multi-worker run, stands for, or None.

    A worker that dies without a word (`kill -9`, a crash, a lost machine) stops sending the
    heartbeats of TensorFlow's coordination service (the one MultiWorkerMirroredStrategy starts:
    a task silent for its heartbeat timeout, 10 s by default, is declared unhealthy), which
    then aborts every collective of the others with UNAVAILABLE; when the lost worker hosted
    the service (task 0), the others' next call to it fails at once. The message names the lost
    task when TensorFlow's does.

    A worker that never connects: each waiting worker's start of the strategy fails with
    DEADLINE_EXCEEDED after `worker_connect_timeout` (`create_strategy`), naming it.
    """
    text = str(error)
    if isinstance(error, tf.errors.DeadlineExceededError) and _REGISTER in text:
        if _REGISTER_BARRIER in text:  # this worker hosts the service: the missing ones
            named = text.split(_TIMED_OUT, 1)[-1].split("\n\n", 1)[0]
        else:  # this worker could not reach the one hosting the service
            named = text.split("remote target", 1)[-1].split(" while", 1)[0]
        missing = [f"{job} {task}" for job, task in _MISSING_TASK.findall(named)]
        return WorkerLostError(
            f"{', '.join(missing) or 'a worker'} of the multi-worker run did not connect "
            "within --worker_connect_timeout seconds; this worker stops too")
    if not isinstance(error, tf.errors.UnavailableError):
        return None
    found = _LOST_TASK.search(str(error))
    who = f"{found.group(1)} {found.group(2)}" if found else "a worker"
    how = ("stopped sending heartbeats" if found and "heartbeats" in found.group(0)
           else "stopped answering")
    return WorkerLostError(f"lost {who} of the multi-worker run ({how}); this worker stops "
                           "too")


class LostWorkerGuard:
    """A block in which TensorFlow's errors for a lost worker (`_lost_worker`)
    end a multi-worker run with one `WorkerLostError` line, whatever it was doing: connecting
    the workers, creating and broadcasting the variables, restoring, tracing the first step,
    training or evaluating. Any other error (a bug) leaves the block as it came, traceback and
    all; in a single-process run nothing is mapped.

        guard = LostWorkerGuard(strategy_name=config.strategy)   # before the strategy exists
        with guard:
            strategy = setup(config.strategy, ...)
            guard.use(strategy)      # from here: whether this run really spans several workers
            guard.advice = lambda: f"the last checkpoint saved: {...}"   # what the line adds
            ...

    Args:
      strategy: the run's strategy when it exists already (it decides whether the run spans several workers).
      strategy_name: else the name of the one the run will create (`multi_worker`: several
        workers, since TensorFlow may fail while the strategy itself connects them).
    """

    def __init__(self, strategy=None, *, strategy_name="auto"):
        self.multi_worker = (in_multi_worker_mode(strategy) if strategy is not None
                             else strategy_name == "multi_worker")
        self.advice = None  # fn() -> str appended to the line (what is saved, what to do)

    def use(self, strategy):
        """The run's strategy, once created: it decides whether the run spans several workers
        (`--strategy=multi_worker` over a cluster of one worker does not)."""
        self.multi_worker = in_multi_worker_mode(strategy)

    def error(self, error):
        """The `WorkerLostError` `error` stands for in this run (advice appended), or None."""
        lost = _lost_worker(error) if self.multi_worker else None
        if lost is None or self.advice is None:
            return lost
        return WorkerLostError(f"{lost}; {self.advice()}")

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        lost = self.error(exc) if exc is not None else None
        if lost is not None:
            # No collective waits for good on a dead worker: TensorFlow fails it within the
            # coordination service's heartbeat timeout. TensorFlow's text adds nothing to the
            # line, and a traceback here would say a bug.
            raise lost from None
        return False


def is_chief(strategy):
    """True on the one worker that writes summaries, exports and the final checkpoint."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return resolver.task_type == "worker" and resolver.task_id == 0 and not has_chief


def describe(strategy):
    """A short description for logs: class, replicas, devices."""
    if not tf.distribute.has_strategy() and strategy is tf.distribute.get_strategy():
        return "default strategy (1 replica, TensorFlow's device placement)"
    devices = list(strategy.extended.worker_devices)
    return (f"{type(strategy).__name__} with {strategy.num_replicas_in_sync} replica(s) on "
            f"{', '.join(devices)}")
