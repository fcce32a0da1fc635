"""Rebuild the model a `ModelRecord` describes and restore a checkpoint into it."""
import tensorflow as tf

from tfmodels import nets
from tfmodels.averaging import WeightAverage
from tfmodels.layers import CenterLoss
from tfmodels.options import UsageError


def restore_model(record, checkpoint_path, *, use_average=True):
    """Build the model a `ModelRecord` describes and restore its weights.

    Call it under the strategy's scope when evaluating with one. With `record.center_loss` the
    centers are restored too; with weight averages in the checkpoint and `use_average`, the
    averages replace the raw weights (as train.py evaluates and exports).

    Returns:
      (model, center_loss or None).

    Raises:
      ValueError: the checkpoint is missing or holds another model (names what differs).
    """
    if not checkpoint_path or not tf.io.gfile.exists(checkpoint_path + ".index"):
        raise UsageError(f"checkpoint {checkpoint_path!r} does not exist")
    model = nets.build_model(record.model, record.num_classes, record.image_shape)
    parts = {"model": model}
    center_loss = None
    if record.center_loss:
        center_loss = CenterLoss(record.num_classes, model.output["embedding"].shape[-1],
                                 alpha=record.center_alpha)
        parts["center_loss"] = center_loss
    average = None
    if use_average and record.has_weight_average:
        average = WeightAverage(model.trainable_variables, record.ema_decay)
        parts["weight_average"] = average
    try:
        tf.train.Checkpoint(**parts).restore(checkpoint_path).expect_partial() \
            .assert_existing_objects_matched()
    except (AssertionError, ValueError) as err:
        raise UsageError(
            f"checkpoint {checkpoint_path!r} does not hold a {record.model} with "
            f"{record.num_classes} classes and images {record.image_shape}: "
            f"{str(err).splitlines()[0][:300]}") from None
    if average is not None:
        average.swap()  # keep the averaged weights in the model
    return model, center_loss
