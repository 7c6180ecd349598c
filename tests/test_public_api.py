"""The names fff promises at its top level (design.md, "Interfaces") resolve to the real objects."""

import importlib
import pkgutil
import types

import pytest

import fff


@pytest.mark.parametrize("name", [n for n in fff.__all__ if n != "__version__"])
def test_every_public_name_resolves_to_its_defining_module(name):
    value = getattr(fff, name)
    if name in fff._LAZY:
        defined = getattr(importlib.import_module(fff._LAZY[name]), name)
        # fff.study and fff.report are packages callable as their function: once one of their
        # submodules is imported, the attribute is the package itself.
        package_as_function = isinstance(value, types.ModuleType) and callable(value) \
            and value.__name__ == fff._LAZY[name]
        assert value is defined or package_as_function


def test_build_is_the_models_build_and_returns_a_model():
    model = fff.build("plain:depth=1,width=0.25,resolution=32")
    assert isinstance(model, fff.Model)
    assert tuple(model.input_shape) == (1, 3, 32, 32)
    assert model.flops > 0 and model.params > 0


def test_no_submodule_shadows_a_public_function():
    # Importing a submodule binds it as an attribute of the package: a module named like a public
    # function (fff/convert.py once) would replace the function for everyone after the import.
    for module in pkgutil.walk_packages(fff.__path__, "fff."):
        if not module.name.startswith("fff.cli"):
            importlib.import_module(module.name)
    for name in fff._LAZY:
        value = getattr(fff, name)
        assert not isinstance(value, types.ModuleType) or callable(value), name
    assert callable(fff.study) and callable(fff.report)  # packages that behave as their function


def test_unknown_attribute_is_an_attribute_error():
    with pytest.raises(AttributeError, match="no_such_thing"):
        fff.no_such_thing
