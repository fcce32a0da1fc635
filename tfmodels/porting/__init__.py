"""Bring TF1 / tf-slim checkpoints (and our own TF2 ones) into tfmodels' Keras nets.

    from tfmodels import nets, porting
    model = nets.build_model("vgg_16", num_classes=1000, input_shape=(224, 224, 3))
    plan = porting.map_checkpoint(model, "vgg_16.ckpt")     # names and shapes only
    print(plan.table()); print(plan.report())
    porting.load_checkpoint(model, "vgg_16.ckpt")           # strict: all or nothing
    porting.verify(model, "vgg_16.ckpt", "legacy_vgg:vgg_16")  # same logits as the TF1 graph

Command line (writes a TF2 checkpoint, model.keras and config.json):

    python -m tfmodels.porting --checkpoint=vgg_16.ckpt --model=vgg_16 --num_classes=1000 \
        --verify_with=legacy_vgg:vgg_16 --output=runs/vgg_16-ported

The name rules are in `rules`, the plan in `checkpoint_map` (a directory's checkpoint chosen by
`checkpoint_choice`, names without a net scope paired by `by_order`), its text in `report`,
the logit check in `verification` (running `legacy_graph` in a child process); see
docs/PORTING.md for the guide and docs/NAMING.md for the slim <-> Keras names.
"""
from tfmodels.porting.checkpoint_map import (Mapping, Match, PortingError, map_checkpoint,
                                             resolve_checkpoint)
from tfmodels.porting.port import check_output_dir, port_checkpoint, write_model_dir
from tfmodels.porting.rules import load_overrides
from tfmodels.porting.tf2_init import (check_fresh_not_frozen, describe_trainable,
                                      load_checkpoint, trainable_variables)
from tfmodels.porting.verification import Verification, VerificationError, verify

__all__ = ["Mapping", "Match", "PortingError", "Verification", "VerificationError",
           "check_fresh_not_frozen", "check_output_dir", "describe_trainable",
           "load_checkpoint", "load_overrides", "map_checkpoint",
           "port_checkpoint", "resolve_checkpoint", "trainable_variables", "verify",
           "write_model_dir"]
