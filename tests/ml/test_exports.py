"""ml's lazy public surface: every exported name resolves, from the module the table names."""

from __future__ import annotations

import importlib

import pytest

import ml

# ``preprocess`` is also the name of its module: once ``ml.preprocess`` is imported the package attribute is the
# module (Python sets it), so ``from ml import preprocess`` is ambiguous; import it from ``ml.preprocess``.
SHADOWED_BY_MODULE = {"preprocess"}


@pytest.mark.parametrize("name", sorted(set(ml.__all__) - SHADOWED_BY_MODULE))
def test_every_export_resolves_from_its_module(name):
    module = importlib.import_module(ml._EXPORTS[name])
    assert getattr(ml, name) is getattr(module, name)


def test_unknown_names_raise_attribute_error():
    with pytest.raises(AttributeError, match="choose_new_threshold"):
        ml.choose_new_threshold  # noqa: B018 (removed: select_new_threshold is the one chooser)
