"""PNG pictures: valid files of figsize x dpi pixels; the PCA projection against scikit-learn."""
import matplotlib.image
import numpy as np
import pytest
from sklearn.decomposition import PCA

from tfmodels.evaluation import plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_size(path):
    """(width, height) from the PNG header (IHDR), independent of any image library."""
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == PNG_SIGNATURE and header[12:16] == b"IHDR"
    return int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")


@pytest.mark.parametrize("dim", [1, 2, 5])
def test_embedding_plot_is_a_png_of_the_expected_size(tmp_path, rng, dim):
    labels = rng.integers(0, 4, 300)
    centers = rng.normal(0, 3, (4, dim))
    centers[3] = np.nan  # a class without a center is not drawn
    embeddings = np.nan_to_num(centers)[labels] + rng.normal(size=(300, dim))
    path = plots.plot_embeddings(tmp_path / "sub" / "emb.png", embeddings, labels, centers,
                                 title="t", figsize=(4.0, 3.0), dpi=50, max_points=100)
    assert _png_size(path) == (200, 150)
    pixels = matplotlib.image.imread(path)
    assert pixels.shape[:2] == (150, 200)
    assert pixels[..., :3].std() > 0.05  # something was drawn, not a blank canvas
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["emb.png"]  # no temp file left


def test_confusion_plot_is_a_png_of_the_expected_size(tmp_path, rng):
    for num_classes, figsize in ((10, (6.0, 6.0)), (40, (8.0, 7.0))):
        confusion = rng.integers(0, 20, (num_classes, num_classes))
        confusion[0] = 0  # a class with no example must not divide by zero
        path = plots.plot_confusion_matrix(tmp_path / f"c{num_classes}.png", confusion,
                                           title="confusion", figsize=figsize, dpi=80)
        assert _png_size(path) == (int(figsize[0] * 80), int(figsize[1] * 80))
        assert matplotlib.image.imread(path).shape[:2] == (int(figsize[1] * 80),
                                                           int(figsize[0] * 80))


@pytest.mark.parametrize("num_points,dim", [(200, 6), (20, 50)])
def test_pca_projection_matches_sklearn(rng, num_points, dim):
    """Both paths: the D x D scatter matrix (N >= D) and the N x N Gram matrix (N < D)."""
    embeddings = rng.normal(size=(num_points, dim)) @ rng.normal(size=(dim, dim))
    centers = rng.normal(size=(4, dim))
    points, projected_centers, axis_labels = plots.pca_project_2d(embeddings, centers)
    pca = PCA(n_components=2).fit(embeddings)
    # Principal axes are defined up to sign: align sklearn's to ours.
    signs = np.sign(np.sum(points * pca.transform(embeddings), axis=0))
    np.testing.assert_allclose(points, pca.transform(embeddings) * signs, atol=1e-9)
    np.testing.assert_allclose(projected_centers, pca.transform(centers) * signs, atol=1e-9)
    assert axis_labels[0].startswith(f"PC1 ({100 * pca.explained_variance_ratio_[0]:.0f}%")
    same, _, _ = plots.pca_project_2d(embeddings[:, :2])
    np.testing.assert_array_equal(same, embeddings[:, :2])


def test_bad_input(tmp_path):
    with pytest.raises(ValueError, match=r"confusion of shape \(2, 3\) must be square"):
        plots.plot_confusion_matrix(tmp_path / "c.png", np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"embeddings \(4, 2\) and labels \(3,\)"):
        plots.plot_embeddings(tmp_path / "e.png", np.zeros((4, 2)), np.zeros(3, int))
    assert not list(tmp_path.iterdir())


def test_roc_plot_is_a_png_of_the_expected_size(tmp_path):
    far = np.array([0.0, 1e-3, 1e-2, 0.1, 1.0])
    tar = np.array([0.0, 0.3, 0.6, 0.9, 1.0])
    path = plots.plot_roc(str(tmp_path / "roc.png"), far, tar, title="t", figsize=(4, 3),
                          dpi=50)
    assert matplotlib.image.imread(path).shape[:2] == (150, 200)
    with pytest.raises(ValueError, match="equal-length vectors"):
        plots.plot_roc(str(tmp_path / "bad.png"), far, tar[:-1])
