"""Margin softmax over L2-normalised embeddings and class vectors (SphereFace, CosFace, ArcFace).

Every logit is the cosine between the embedding x_i and the class vector w_c (a column of the
net's logits layer, `nets.class_matrix`; the bias is not used), scaled by s; the target class
alone gets a margin, in InsightFace's combined form:

    cos_ic   = <x_i / |x_i|, w_c / |w_c|>,   theta_ic = arccos(cos_ic)
    logit_ic = s * cos_ic                                      c != y_i
    logit_iy = s * (cos(m1 * theta_iy + m2) - m3)              the target class y_i

    arcface   m1 = 1, m2 = m, m3 = 0     (Deng et al. 2019; s = 64, m = 0.5)
    cosface   m1 = 1, m2 = 0, m3 = m     (Wang et al. 2018; s = 64, m = 0.35)
    combined  any m1 >= 1, m2, m3        (InsightFace's "combined margin", e.g. 1, 0.3, 0.2)

The additive angular margin makes cos(theta + m2) non-monotonic once theta + m2 > pi: a target
pushed past pi would *gain* logit while moving away. For m1 = 1, InsightFace's arcface_torch
(`CombinedMarginLoss`, `ArcFace`) replaces it there with a linear penalty:

    th = cos(pi - m2),  mm = sin(pi - m2) * m2
    target = cos(theta + m2)  if cos > th  else  cos - mm          (then - m3)

and `easy_margin` applies the angular margin only where cos > 0 (target = cos elsewhere), as its
option of that name does. For m1 != 1 (SphereFace's multiplicative margin) the combined form is
used as written (InsightFace's MXNet recipe), which is monotonic only for
theta <= (pi - m2) / m1.

Everything is float32 whatever the compute dtype (the cosine of a margin near 1 needs it).
"""
import dataclasses
import math

import tensorflow as tf

from tfmodels.options import UsageError

MARGINS = ("none", "arcface", "cosface", "combined")
# (scale, m1, m2, m3) a margin name means when its values are not given.
DEFAULTS = {"arcface": (64.0, 1.0, 0.5, 0.0), "cosface": (64.0, 1.0, 0.0, 0.35),
            "combined": (64.0, 1.0, 0.3, 0.2)}
# Keep arccos / sqrt away from |cos| = 1, where their derivatives are infinite.
_COS_LIMIT = 1.0 - 1e-6


@dataclasses.dataclass(frozen=True)
class Margin:
    """A margin softmax: `logits(cos, labels)` -> the scaled logits with the target's margin.

    Attributes:
      scale: s, the norm every logit is scaled to.
      m1: multiplicative angular margin (1: none).
      m2: additive angular margin in radians (ArcFace).
      m3: additive cosine margin (CosFace).
      easy_margin: apply the angular margin only where cos > 0 (m1 = 1 only).
    """
    scale: float = 64.0
    m1: float = 1.0
    m2: float = 0.5
    m3: float = 0.0
    easy_margin: bool = False

    def target(self, cos):
        """The target class's cosine after the margin (before the scale), float32."""
        cos = tf.cast(cos, tf.float32)
        m1, m2, m3 = self.m1, self.m2, self.m3
        if m1 == 1.0 and m2 == 0.0:
            return cos - m3
        safe = tf.clip_by_value(cos, -_COS_LIMIT, _COS_LIMIT)
        if m1 != 1.0:
            return tf.cos(m1 * tf.acos(safe) + m2) - m3
        sin = tf.sqrt(1.0 - safe * safe)
        phi = safe * math.cos(m2) - sin * math.sin(m2)  # cos(theta + m2)
        if self.easy_margin:
            phi = tf.where(cos > 0.0, phi, cos)
        else:
            phi = tf.where(cos > math.cos(math.pi - m2), phi,
                           cos - math.sin(math.pi - m2) * m2)
        return phi - m3

    def logits(self, cos, labels):
        """s * cos with the margin on each row's target class.

        Args:
          cos: cosines [B, K] (any float dtype).
          labels: the target's column per row, ints [B].

        Returns:
          float32 logits [B, K].
        """
        cos = tf.cast(cos, tf.float32)
        labels = tf.cast(labels, tf.int32)
        onehot = tf.one_hot(labels, tf.shape(cos)[-1], on_value=True, off_value=False)
        target = tf.gather(cos, labels[:, None], batch_dims=1)[:, 0]
        margined = tf.where(onehot, self.target(target)[:, None], cos)
        return self.scale * margined


def make_margin(name, scale=None, m1=None, m2=None, m3=None, easy_margin=False):
    """The `Margin` named `name` (one of MARGINS) with the values given (None: its default);
    None for 'none'.

    Raises:
      UsageError: an unknown name, a value out of range, or a value the name rules out
        (ArcFace has m1 = 1 and m3 = 0, CosFace m1 = 1 and m2 = 0), naming the option.
    """
    if name not in MARGINS:
        raise UsageError(f"--margin={name} is not one of: {', '.join(MARGINS)}", "margin")
    given = {"margin_scale": scale, "margin_m1": m1, "margin_m2": m2, "margin_m3": m3}
    if name == "none":
        set_ = [f"--{k}={v}" for k, v in given.items() if v is not None] + (
            ["--easy_margin"] if easy_margin else [])
        if set_:
            raise UsageError(f"{', '.join(set_)} apply to a margin, but --margin=none; use "
                             f"--margin={'|'.join(MARGINS[1:])}", "margin")
        return None
    fixed = {"arcface": {"margin_m1": 1.0, "margin_m3": 0.0},
             "cosface": {"margin_m1": 1.0, "margin_m2": 0.0}}.get(name, {})
    for option, value in fixed.items():
        if given[option] is not None and given[option] != value:
            raise UsageError(f"--{option}={given[option]} does not apply to --margin={name} "
                             f"(it has {option}={value:g}); use --margin=combined", option)
    values = {k: float(d if v is None else v)
              for (k, v), d in zip(given.items(), DEFAULTS[name])}
    if not values["margin_scale"] > 0:
        raise UsageError(f"--margin_scale={values['margin_scale']} must be > 0", "margin_scale")
    if not values["margin_m1"] >= 1:
        raise UsageError(f"--margin_m1={values['margin_m1']} must be >= 1", "margin_m1")
    if not 0 <= values["margin_m2"] < math.pi:
        raise UsageError(f"--margin_m2={values['margin_m2']} must be in [0, pi) radians",
                         "margin_m2")
    if not 0 <= values["margin_m3"] < 2:
        raise UsageError(f"--margin_m3={values['margin_m3']} must be in [0, 2)", "margin_m3")
    if easy_margin and (values["margin_m1"] != 1 or values["margin_m2"] == 0):
        raise UsageError(f"--easy_margin applies to an additive angular margin "
                         f"(--margin_m1=1, --margin_m2 > 0); --margin={name} has "
                         f"margin_m1={values['margin_m1']:g}, margin_m2={values['margin_m2']:g}",
                         "easy_margin")
    return Margin(values["margin_scale"], values["margin_m1"], values["margin_m2"],
                  values["margin_m3"], easy_margin=bool(easy_margin))


def cosines(embedding, kernel):
    """cos [B, K] between the rows of `embedding` [B, D] and the columns of `kernel` [D, K],
    each L2-normalised in float32."""
    x = tf.math.l2_normalize(tf.cast(embedding, tf.float32), axis=1, epsilon=1e-12)
    w = tf.math.l2_normalize(tf.cast(kernel, tf.float32), axis=0, epsilon=1e-12)
    return tf.matmul(x, w)
