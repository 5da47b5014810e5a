"""The digits loader reads exactly what scikit-learn's load_digits returns, with or without its file."""
from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from pab_campaign.training.data import digits


def test_digits_file_gives_load_digits_arrays():
    assert digits.digits_file() is not None
    images, labels = digits.load_images_and_labels()
    reference = load_digits()
    np.testing.assert_array_equal(images, reference.images)
    np.testing.assert_array_equal(labels, reference.target)
    assert images.shape == (1797, 8, 8) and labels.dtype == np.int64


def test_without_the_file_load_digits_is_called(monkeypatch):
    monkeypatch.setattr(digits, "digits_file", lambda: None)
    images, labels = digits.load_images_and_labels()
    np.testing.assert_array_equal(images, load_digits().images)
    assert labels.dtype == np.int64 and len(labels) == 1797
