"""Train an image classifier on one or many devices.

    python train.py                                   # SmallCNN on the embedded digits
    python train.py --model=lenet_pp --dataset=mnist --center_loss_weight=0.01 --num_gpus=4
    python train.py --flagfile=configs/resnet20_cifar10.flags --model_dir=runs/r20

One global batch is split across the replicas; the numbers match one device. Checkpoints,
`config.json`, TensorBoard summaries, `metrics.json` and the exports go to --model_dir; running
again with the same --model_dir resumes from its newest readable checkpoint (one process writes
a model_dir at a time).

Every flag is a field of `tfmodels.training.TrainConfig` (name, default, help and range are
declared there; `python train.py --helpfull` lists them); its defaults are the embedded-digits
recipe (SmallCNN, augmentation, label smoothing, weight decay, cosine rate). Presets in configs/
set their own.
"""
import common_flags

if __name__ == "__main__":
    common_flags.quiet_start()  # before TensorFlow loads: its start-up lines held back

from tfmodels import training  # noqa: E402


def main(config):
    """Train as `config` (a `TrainConfig` built from the flags) says; the final metrics."""
    return training.train(config)


if __name__ == "__main__":
    common_flags.run(main, training.TrainConfig, failures=(training.NonFiniteLossError,
                                                            training.WorkerLostError))
