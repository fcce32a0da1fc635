"""Verification protocol against scikit-learn on the same scores: ROC points and AUC, TAR at a
fixed FAR, and LFW's 10-fold accuracy (threshold chosen on 9 folds by an independent search over
`roc_curve`'s thresholds); pair drawing."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from tfmodels.evaluation import verification


def _scores(rng, n=2000, rounded=False):
    same = rng.random(n) < 0.5
    scores = np.where(same, rng.normal(0.6, 0.2, n), rng.normal(0.2, 0.2, n))
    if rounded:  # many ties
        scores = np.round(scores, 1)
    return scores, same


@pytest.mark.parametrize("rounded", [False, True])
def test_roc_and_auc_are_sklearns(rng, rounded):
    scores, same = _scores(rng, rounded=rounded)
    far, tar, thresholds = verification.roc(scores, same)
    fpr, tpr, sk_thresholds = roc_curve(same, scores, drop_intermediate=False)
    np.testing.assert_allclose(far, fpr, atol=1e-12)
    np.testing.assert_allclose(tar, tpr, atol=1e-12)
    np.testing.assert_array_equal(thresholds[1:], sk_thresholds[1:])
    np.testing.assert_allclose(verification.roc_auc(scores, same), roc_auc_score(same, scores),
                               rtol=1e-12)


def test_tar_at_far_is_sklearns(rng):
    scores, same = _scores(rng, n=5000)
    fpr, tpr, _ = roc_curve(same, scores, drop_intermediate=False)
    tar, threshold = verification.tar_at_far(scores, same, 1e-3)
    assert tar == pytest.approx(tpr[fpr <= 1e-3].max(), abs=1e-12)
    negatives = scores[~same]
    assert np.mean(negatives >= threshold) <= 1e-3
    # 1e-4 needs 10,000 different pairs; here are ~2,500.
    tar, why = verification.tar_at_far(scores, same, 1e-4)
    assert tar is None and "cannot measure FAR=0.0001" in why and "needs >= 10000" in why


def _sklearn_fold_accuracies(scores, same, num_folds=10):
    """LFW's protocol written independently: sklearn's ROC on the 9 folds, the accuracy of each
    of its thresholds from (fpr, tpr), the first best (largest threshold), moved halfway to the
    next threshold, on the 10th."""
    folds = np.array_split(np.arange(len(scores)), num_folds)
    accuracies = []
    for k in range(num_folds):
        test = folds[k]
        train = np.concatenate([folds[j] for j in range(num_folds) if j != k])
        fpr, tpr, thresholds = roc_curve(same[train], scores[train], drop_intermediate=False)
        p, n = same[train].sum(), (~same[train]).sum()
        best = np.argmax(tpr * p + (1 - fpr) * n)
        threshold = thresholds[best]
        if best + 1 < len(thresholds) and np.isfinite(threshold):
            threshold = (threshold + thresholds[best + 1]) / 2
        accuracies.append(np.mean((scores[test] >= threshold) == same[test]))
    return np.array(accuracies)


@pytest.mark.parametrize("rounded", [False, True])
def test_fold_protocol_matches_an_independent_computation(rng, rounded):
    scores, same = _scores(rng, n=600, rounded=rounded)
    accuracies, thresholds = verification.fold_accuracies(scores, same)
    np.testing.assert_allclose(accuracies, _sklearn_fold_accuracies(scores, same), atol=1e-12)
    report = verification.verify(scores, same)
    assert report["accuracy_mean"] == pytest.approx(accuracies.mean())
    assert report["accuracy_std"] == pytest.approx(accuracies.std())
    assert len(thresholds) == 10 and report["pairs"] == 600
    assert report["tar_at_far_0.001"] is None and "tar_at_far_0.001_unmeasured" in report


def test_separable_scores_are_perfect():
    same = np.array([True, False] * 50)
    scores = np.where(same, 0.9, 0.1) + np.linspace(0, 0.01, 100)
    report = verification.verify(scores, same, fars=())
    assert report["accuracy_mean"] == 1.0 and report["roc_auc"] == 1.0


def test_draw_pairs(rng):
    labels = rng.integers(0, 10, 400)
    pairs = verification.draw_pairs(labels, [7, 8, 9], num_pairs=1000, seed=3)
    assert np.all(np.isin(labels[pairs.first], [7, 8, 9]))
    assert np.all(np.isin(labels[pairs.second], [7, 8, 9]))
    np.testing.assert_array_equal(pairs.same, labels[pairs.first] == labels[pairs.second])
    assert pairs.same.sum() == 500 and (~pairs.same).sum() == 500
    assert len(set(zip(pairs.first, pairs.second))) == 1000 and np.all(pairs.first < pairs.second)
    again = verification.draw_pairs(labels, [7, 8, 9], num_pairs=1000, seed=3)
    np.testing.assert_array_equal(again.first, pairs.first)
    # Fewer than asked: as many of each kind as the scarcer kind has.
    few = verification.draw_pairs(np.array([7, 7, 8]), [7, 8], num_pairs=100, seed=0)
    assert few.same.sum() == 1 and (~few.same).sum() == 1
    with pytest.raises(ValueError, match="need examples of >= 2 of the classes"):
        verification.draw_pairs(np.array([1, 1, 7]), [7, 8], num_pairs=10, seed=0)


def test_cosine_scores(rng):
    a, b = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    expected = [x @ y / np.linalg.norm(x) / np.linalg.norm(y) for x, y in zip(a, b)]
    np.testing.assert_allclose(verification.cosine_scores(a, b), expected, rtol=1e-12)
