"""The frozen holdout is never in any run's training set (issue 12, item 7): it is frozen before the
first training export, not at the first evaluation (when the first model had trained on it)."""

import pytest

from identification.training.dataset import current_holdout, export_dataset, training_queryset
from submissions.models import Photo
from tests.factories import IndividualFactory, PhotoFactory

pytestmark = pytest.mark.django_db


def test_the_first_export_freezes_the_holdout_and_leaves_it_out(tmp_path):
    for _ in range(8):
        whale = IndividualFactory()
        for _ in range(3):
            PhotoFactory(status=Photo.Status.CONFIRMED, individual=whale)
    assert current_holdout() is None  # a fresh site: no evaluation has run yet

    snapshot = export_dataset(tmp_path / "run-1")
    holdout = current_holdout()
    assert holdout is not None and len(holdout.photo_ids) >= 5
    assert not set(holdout.photo_ids) & set(snapshot["photo_ids"])
    assert snapshot["photos"] == 24 - len(holdout.photo_ids)

    again = export_dataset(tmp_path / "run-2")  # every later run: the same holdout, still left out
    assert current_holdout().pk == holdout.pk
    assert not set(holdout.photo_ids) & set(again["photo_ids"])
    assert not training_queryset().filter(pk__in=holdout.photo_ids).exists()
