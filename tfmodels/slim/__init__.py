"""tf-slim on TF2 / Keras 3: what makes slim's model code, names and checkpoints carry over.

- `scopes`: slim's builders (`conv2d`, `fully_connected`, `batch_norm`, ...) under tf-slim's
  `arg_scope`, building Keras 3 layers with slim's variable paths.
- `layer_names`: slim-style names (`scope='a/b'` nesting, one leaf name under several scopes).
- `layers`: the Keras layers behind the builders, one per slim op (`SlimConv2D`, ...).
- `regularizers`: slim's L2 weight decay (`l2_regularizer(wd)`, `L2WeightDecay`).
- `compat`: making tf-slim 1.1.0 itself run on TF 2.16+ (legacy graph code).
"""
