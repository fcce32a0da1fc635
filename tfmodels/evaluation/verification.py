"""Open-set verification: are two images of the same identity? Scores, the LFW protocol, ROC.

    pairs = draw_pairs(labels, held_out_classes, num_pairs=6000, seed=0)
    scores = cosine_scores(embeddings[pairs.first], embeddings[pairs.second])
    report = verify(scores, pairs.same)     # folds, ROC AUC, TAR at FAR = 1e-3 and 1e-4

A pair's score is the cosine of its two embeddings (higher: more alike); a pair is declared
"same" when its score is >= a threshold t.

* LFW's protocol (Huang et al. 2007, as InsightFace's verification.py runs it): the pairs are
  split, in order, into 10 folds (LFW's pairs.txt lists its 10 sets one after the other); for
  each fold the threshold with the best accuracy on the other 9 is applied to it. Reported: the
  mean and standard deviation of the 10 accuracies, and the thresholds. Candidate thresholds
  are every score of the 9 folds plus +inf (nothing same); ties go to the largest, which is
  then lowered to the midpoint with the next lower score (same accuracy on the 9 folds).
* ROC: true accept rate TAR(t) = same pairs >= t / same pairs, false accept rate FAR(t) =
  different pairs >= t / different pairs, over every threshold; AUC by the trapezoid rule.
* TAR at FAR = f: the highest TAR over thresholds with FAR <= f. Measurable only when there are
  at least 1/f different pairs (else FAR can only be 0 or >= 1/N > f): reported as None with
  the reason.
"""
import collections

import numpy as np

NUM_FOLDS = 10
FARS = (1e-3, 1e-4)

Pairs = collections.namedtuple("Pairs", "first second same")


def cosine_scores(first, second):
    """Cosine similarity of each row of `first` [N, D] with the same row of `second` (float64)."""
    a = np.asarray(first, np.float64)
    b = np.asarray(second, np.float64)
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=1)


def draw_pairs(labels, classes, num_pairs, seed):
    """Same/different pairs among the examples whose label is in `classes`, seeded.

    As many same-class as different-class pairs (as LFW: chance accuracy is 50%): each kind
    drawn without replacement from all such pairs, min(num_pairs // 2, same pairs available,
    different pairs available) of each. The order is shuffled, so that each of the protocol's
    folds mixes both kinds.

    Args:
      labels: int labels [N] of the examples.
      classes: the classes to draw from (e.g. the classes held out of training); >= 2 of them.
      num_pairs: pairs wanted in all (>= 2).
      seed: the draw's seed.

    Returns:
      `Pairs(first, second, same)`: example indices [P] (first < second) and bool [P].

    Raises:
      ValueError: fewer than 2 of `classes` have examples, or none has two.
    """
    labels = np.asarray(labels)
    index = np.flatnonzero(np.isin(labels, list(classes)))
    present = np.unique(labels[index])
    if len(present) < 2:
        raise ValueError(f"verification pairs need examples of >= 2 of the classes "
                         f"{sorted(int(c) for c in classes)}; found {present.tolist()}")
    i, j = np.triu_indices(len(index), k=1)
    same = labels[index[i]] == labels[index[j]]
    if not same.any():
        raise ValueError(f"no class among {present.tolist()} has two examples: no same pairs")
    rng = np.random.default_rng(seed)
    take = min(num_pairs // 2, int(same.sum()), int((~same).sum()))
    chosen = [rng.choice(np.flatnonzero(kind), size=take, replace=False)
              for kind in (same, ~same)]
    order = rng.permutation(np.concatenate(chosen))
    return Pairs(index[i[order]], index[j[order]], same[order])


def roc(scores, same):
    """(far, tar, thresholds) over every distinct score, thresholds descending from +inf."""
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_same = scores[order], same[order]
    # The last position of each run of equal scores: a threshold accepts a whole run.
    last = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(scores) - 1]
    accepted_same = np.cumsum(sorted_same)[last]
    accepted_different = (last + 1) - accepted_same
    tar = np.r_[0.0, accepted_same / max(same.sum(), 1)]
    far = np.r_[0.0, accepted_different / max((~same).sum(), 1)]
    return far, tar, np.r_[np.inf, sorted_scores[last]]


def roc_auc(scores, same):
    """Area under the ROC curve (trapezoid rule over `roc`'s points)."""
    far, tar, _ = roc(scores, same)
    return float(np.sum(np.diff(far) * (tar[1:] + tar[:-1]) / 2))


def tar_at_far(scores, same, far_target):
    """(TAR at FAR <= far_target, the threshold), or (None, why) when the different pairs are
    fewer than 1 / far_target."""
    different = int((~np.asarray(same, bool)).sum())
    if different * far_target < 1:
        return None, (f"{different} different pairs cannot measure FAR={far_target:g} "
                      f"(needs >= {int(np.ceil(1 / far_target))})")
    far, tar, thresholds = roc(scores, same)
    best = np.flatnonzero(far <= far_target)[-1]  # FAR rises as the threshold falls
    return float(tar[best]), float(thresholds[best])


def best_threshold(scores, same):
    """The threshold with the highest accuracy on (scores, same): the largest best score,
    lowered to the midpoint with the next lower score (the same accuracy on these pairs,
    away from their edge)."""
    far, tar, thresholds = roc(scores, same)
    positives = np.sum(same)
    negatives = len(same) - positives
    accuracy = (tar * positives + (1 - far) * negatives) / len(same)
    best = int(np.argmax(accuracy))
    if best + 1 == len(thresholds) or np.isinf(thresholds[best]):
        return float(thresholds[best])
    return float((thresholds[best] + thresholds[best + 1]) / 2)


def fold_accuracies(scores, same, num_folds=NUM_FOLDS):
    """LFW's protocol: per fold, the accuracy at the threshold chosen on the other folds.

    Returns:
      (accuracies [num_folds], thresholds [num_folds]).
    """
    scores = np.asarray(scores, np.float64)
    same = np.asarray(same, bool)
    if len(scores) < num_folds:
        raise ValueError(f"{len(scores)} pairs cannot be split into {num_folds} folds")
    folds = np.array_split(np.arange(len(scores)), num_folds)
    accuracies, thresholds = [], []
    for test in folds:
        train = np.setdiff1d(np.arange(len(scores)), test)
        threshold = best_threshold(scores[train], same[train])
        accuracies.append(np.mean((scores[test] >= threshold) == same[test]))
        thresholds.append(threshold)
    return np.array(accuracies), np.array(thresholds)


def verify(scores, same, fars=FARS, num_folds=NUM_FOLDS):
    """Everything eval.py reports for a set of scored pairs (a JSON-ready dict)."""
    same = np.asarray(same, bool)
    accuracies, thresholds = fold_accuracies(scores, same, num_folds)
    report = {"pairs": int(len(same)), "same_pairs": int(same.sum()),
              "different_pairs": int((~same).sum()),
              "accuracy_mean": float(accuracies.mean()), "accuracy_std": float(accuracies.std()),
              "fold_accuracies": accuracies.tolist(), "fold_thresholds": thresholds.tolist(),
              "roc_auc": roc_auc(scores, same)}
    for far in fars:
        tar, detail = tar_at_far(scores, same, far)
        key = f"tar_at_far_{far:g}"
        report[key] = tar
        report[f"{key}_threshold" if tar is not None else f"{key}_unmeasured"] = detail
    return report
