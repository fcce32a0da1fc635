"""Evaluate a trained (or ported) classifier: metrics, embedding k-NN, center statistics, plots.

    python eval.py --model_dir=runs/lenet_pp-mnist                      # latest checkpoint
    python eval.py --model_dir=runs/r20 --checkpoint=ckpt-2000 --split=train
    python eval.py --model_dir=runs/r20 --continuous --timeout=1800     # beside train.py
    python eval.py --model_dir=runs/vgg_16-ported --dataset=tfds:imagenet2012 --split=validation

The model and the data come from the config.json train.py saved in --model_dir; flags given
here override it. Every example of the split is counted once with any number of replicas.
Results go to --output (JSON), TensorBoard scalars to --summary_dir (<model_dir>/eval/), pictures
to --plot_dir; a read-only --model_dir is evaluated with --output elsewhere.

Every flag is a field of `tfmodels.evaluation.EvalConfig` (declared there with its help and
range; None means "what the run's config.json says").
"""
import common_flags

if __name__ == "__main__":
    common_flags.quiet_start()  # before TensorFlow loads: its start-up lines held back

from tfmodels.evaluation import evaluator  # noqa: E402


def main(config):
    """Evaluate as `config` (an `EvalConfig` built from the flags) says; one summary per
    evaluated checkpoint."""
    return [evaluator.summary(results) for results in evaluator.evaluate(config)]


if __name__ == "__main__":
    common_flags.run(main, evaluator.EvalConfig, failures=(evaluator.WorkerLostError,))
