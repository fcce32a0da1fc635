"""Evaluate a trained (or ported) classifier: metrics, embedding k-NN, center statistics, plots.

    python eval.py --model_dir=runs/lenet_pp-mnist                      # latest checkpoint
    python eval.py --model_dir=runs/r20 --checkpoint=ckpt-2000 --split=train
    python eval.py --model_dir=runs/r20 --continuous --timeout=1800     # beside train.py
    python eval.py --model_dir=runs/vgg_16-ported --dataset=tfds:imagenet2012 --split=validation

The model and the data come from the config.json train.py saved in --model_dir; flags given
here override it. Every example of the split is counted once with any number of replicas.
Results go to --output (JSON), TensorBoard scalars to --summary_dir (<model_dir>/eval/), pictures
to --plot_dir; a read-only --model_dir is evaluated with --output elsewhere.
"""
import common_flags  # first: it imports TensorFlow, quietly (see there)
from absl import app, flags  # noqa: E402
from tfmodels import data, model_dir  # noqa: E402
from tfmodels.evaluation import evaluator  # noqa: E402

# Every default is EvalConfig()'s; None means "what the run's config.json says".
D = evaluator.EvalConfig()
flags.DEFINE_string("model_dir", D.model_dir, "Directory train.py (or the porting CLI) wrote: "
                    "config.json and checkpoints.")
flags.DEFINE_string("checkpoint", D.checkpoint, "Checkpoint path or name in --model_dir "
                    "(ckpt-2000); default: the latest.")
flags.DEFINE_string("split", D.split, "Split to evaluate (default: the run's eval split).")
flags.DEFINE_string("dataset", D.dataset, "Override the run's dataset (required when "
                    "config.json names none, e.g. ported checkpoints).")
flags.DEFINE_string("data_dir", D.data_dir, "tensorflow-datasets directory (default: the "
                    "run's).")
flags.DEFINE_integer("batch_size", D.global_batch_size, "Global batch (examples per step), "
                     "split across replicas (default: the run's, rounded up to a multiple of the "
                     "replicas).", lower_bound=1)
flags.DEFINE_list("top_k", [str(k) for k in D.top_k], "k values of top-k accuracy (k >= "
                  "classes is skipped).")
flags.DEFINE_list("knn_k", [str(k) for k in D.knn_k], "k values of k-NN accuracy of the "
                  "embeddings against the training split's; empty disables k-NN.")
flags.DEFINE_string("gallery_split", D.gallery_split, "k-NN gallery split (default: the run's "
                    "train split).")
flags.DEFINE_bool("use_average", D.use_average, "Use the EMA weights when the run kept them.")
flags.DEFINE_string("output", D.output, "Results JSON (default: <model_dir>/eval_<split>.json).")
flags.DEFINE_string("plot_dir", D.plot_dir, "PNG pictures (default: <model_dir>/plots when "
                    "--model_dir is writable; empty: none).")
flags.DEFINE_string("summary_dir", D.summary_dir, "TensorBoard scalars (default: "
                    "<model_dir>/eval when --model_dir is writable; empty: none).")
flags.DEFINE_bool("continuous", D.continuous, "Evaluate each new checkpoint until the run's "
                  "final step.")
flags.DEFINE_float("timeout", D.timeout, "--continuous: seconds to wait for a new checkpoint "
                   "before stopping.")
flags.DEFINE_string("preprocessing", D.preprocessing, "Override the run's preprocessing (one "
                    "of cifarnet, inception, lenet, vgg; default: the run's, or for a ported "
                    "model on a dataset of varying image size the net's own).")
flags.DEFINE_bool("skip_undecodable", D.skip_undecodable, "Skip (and count in the results) "
                  "images that cannot be decoded, instead of stopping with an error naming "
                  "them.")
# --- open-set verification (docs/FACE.md): EvalConfig's verification, pairs_file,
# pairs_images, verification_classes, verification_pairs, verification_seed, flip_fusion ---
flags.DEFINE_enum("verification", D.verification, ("none", "pairs"), "pairs: score same/"
                  "different pairs of images by the cosine of their embeddings; LFW's 10-fold "
                  "accuracy, ROC AUC, TAR at FAR=1e-3 and 1e-4, and a ROC plot.")
flags.DEFINE_string("pairs_file", D.pairs_file, "Pairs in LFW's pairs.txt format (with "
                    "--pairs_images); default: pairs drawn from the classes the run held out "
                    "(train.py --train_classes) in --split.")
flags.DEFINE_string("pairs_images", D.pairs_images, "Folder of <name>/<name>_<nnnn>.jpg images "
                    "that --pairs_file names (aligned crops, as the training images).")
flags.DEFINE_string("verification_classes", D.verification_classes, "Classes to draw pairs "
                    "from (ids and ranges, e.g. 7-9; default: those the run held out).")
flags.DEFINE_integer("verification_pairs", D.verification_pairs, "Drawn pairs in all: half "
                     "same, half different (fewer when a kind runs out).")
flags.DEFINE_integer("verification_seed", D.verification_seed, "Seed of the drawn pairs.")
flags.DEFINE_bool("flip_fusion", D.flip_fusion, "Embed each image as the sum of its and its "
                  "mirror image's embeddings.")
common_flags.define_strategy_flags(D)
flags.mark_flag_as_required("model_dir")
FLAGS = flags.FLAGS


def _ints(name):
    try:
        return tuple(int(v) for v in FLAGS[name].value)
    except ValueError:
        raise app.UsageError(f"--{name}={','.join(FLAGS[name].value)} must be a comma-separated "
                             "list of positive ints") from None


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    common_flags.import_from_working_directory()
    config = evaluator.EvalConfig(
        model_dir=FLAGS.model_dir, checkpoint=FLAGS.checkpoint, split=FLAGS.split,
        dataset=FLAGS.dataset, data_dir=FLAGS.data_dir, **common_flags.renamed_options(),
        top_k=_ints("top_k"), knn_k=_ints("knn_k"), gallery_split=FLAGS.gallery_split,
        use_average=FLAGS.use_average, output=FLAGS.output, plot_dir=FLAGS.plot_dir,
        summary_dir=FLAGS.summary_dir,
        continuous=FLAGS.continuous, timeout=FLAGS.timeout,
        preprocessing=FLAGS.preprocessing or None, skip_undecodable=FLAGS.skip_undecodable,
        verification=FLAGS.verification, pairs_file=FLAGS.pairs_file,
        pairs_images=FLAGS.pairs_images, verification_classes=FLAGS.verification_classes,
        verification_pairs=FLAGS.verification_pairs, verification_seed=FLAGS.verification_seed,
        flip_fusion=FLAGS.flip_fusion, **common_flags.strategy_options())
    history = common_flags.run_and_release(
        lambda: evaluator.evaluate(config),
        usage_errors=(evaluator.EvalConfigError, data.DatasetUnavailableError),
        failures=(model_dir.ModelDirWriteError,))
    common_flags.print_result([evaluator.summary(results) for results in history])


if __name__ == "__main__":
    common_flags.run(main, D)
