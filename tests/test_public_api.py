"""The names fff promises at its top level (design.md, "Interfaces") resolve to the real objects."""

import importlib

import pytest

import fff


@pytest.mark.parametrize("name", [n for n in fff.__all__ if n != "__version__"])
def test_every_public_name_resolves_to_its_defining_module(name):
    value = getattr(fff, name)
    if name in fff._LAZY:
        assert value is getattr(importlib.import_module(fff._LAZY[name]), name)


def test_build_is_the_models_build_and_returns_a_model():
    model = fff.build("plain:depth=1,width=0.25,resolution=32")
    assert isinstance(model, fff.Model)
    assert tuple(model.input_shape) == (1, 3, 32, 32)
    assert model.flops > 0 and model.params > 0


def test_study_and_report_stay_callable_after_their_submodules_are_imported():
    importlib.import_module("fff.study.sweep")
    importlib.import_module("fff.report.figures")
    assert callable(fff.study) and callable(fff.report)


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        fff.no_such_thing
