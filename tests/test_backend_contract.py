"""What every registered stack must do, checked the same way for each (the Backend contract).

For each built-in stack, on one tiny model, the way fff.profiling drives it: its artifact made in
the builder child, a worker serving it, the first inference and a timed round, parity against the
baseline within the stack's own tolerance, the effective configuration read back, its per-layer
profile attributed to the taxonomy, its cache trace (or the reason it has none) and its
simulation job (or the reason it has none).
"""

from importlib import import_module

import numpy as np
import pytest

from fff.backends import BASELINE, BUILTIN, DEFAULT_BACKENDS, backend_class, class_path, registered_names
from fff.backends.base import PRECISIONS, Backend, NotSimulated, fixed_seed_input

TARGET = "plain:depth=1,width=0.25,resolution=32"
BUILD_OPTIONS = {"batch": None, "resolution": None, "input_shape": None}
STACKS = sorted(BUILTIN)


def test_the_registry_describes_every_built_in_stack():
    assert BASELINE in DEFAULT_BACKENDS and set(DEFAULT_BACKENDS) <= set(registered_names())
    names = set()
    for name in BUILTIN:
        cls = backend_class(name)
        assert issubclass(cls, Backend) and cls.name == name and cls.label and cls.color.startswith("#")
        assert set(cls.precisions) <= set(PRECISIONS) and "f32" in cls.precisions
        assert backend_class(class_path(cls)) is cls  # the module:Class spelling finds the same class
        names.add(cls.name)
    assert len(names) == len(BUILTIN)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The target and every stack's artifact, from the builder child; then each stack prepared once."""
    from fff.builder import Builder
    from fff.measure.worker import Worker

    builder = Builder()
    served = {name: class_path(backend_class(name)) for name in STACKS}
    model = builder.prepare(TARGET, BUILD_OPTIONS, served, cache_dir=tmp_path_factory.mktemp("ir"))
    inputs = [fixed_seed_input(model.input_shape)]
    sides = {}
    try:
        for name in STACKS:
            cls = backend_class(name)
            worker = Worker(name, served=served[name], env=cls.environment(1), target=TARGET,
                            build_options=BUILD_OPTIONS, artifact=model.artifacts[name],
                            input_shape=list(model.input_shape), device="CPU", threads=1, precision="f32")
            prepared = worker.call("prepare", inputs=inputs, warmup=1)
            timed = worker.call("round", iterations=4, warmup=1)
            raw = worker.call("breakdown", iterations=3)
            worker.close()
            sides[name] = {"prepared": prepared, "round": timed, "raw": raw}
        caches = builder.model_caches(TARGET, BUILD_OPTIONS, served, model.artifacts, "f32", None)
    finally:
        builder.close()
    return model, sides, caches


@pytest.mark.parametrize("name", STACKS)
def test_a_stack_prepares_runs_and_reads_its_configuration_back(built, name):
    model, sides, _ = built
    assert name in model.artifacts and isinstance(model.artifacts[name].get("notes", []), list)
    prepared, timed = sides[name]["prepared"], sides[name]["round"]
    assert prepared["first_inference_ns"] > 0
    assert prepared["output"].dtype == np.float32 and prepared["output"].shape == sides[BASELINE]["prepared"]["output"].shape
    assert isinstance(prepared["config"], dict) and prepared["config"]
    assert prepared["clock"]["source"]
    assert backend_class(name).effective_threads(prepared["config"]) == 1  # asked for 1, as the runtime reports it
    assert len(timed["samples_ns"]) == 4 and np.all(np.asarray(timed["samples_ns"]) > 0)
    assert timed["usage"] is not None


@pytest.mark.parametrize("name", STACKS)
def test_a_stack_agrees_with_the_baseline_within_its_own_tolerance(built, name):
    from fff.measure.parity import compare

    _, sides, _ = built
    tolerance = backend_class(name).parity_tolerance("f32", "f32")
    parity = compare(sides[BASELINE]["prepared"]["output"], sides[name]["prepared"]["output"], tolerance=tolerance)
    record = parity.as_record()
    assert record["ok"] and record["metric"] == tolerance.metric and record["tolerance"] == tolerance.limit
    assert record["max_rel_err"] < tolerance.limit


@pytest.mark.parametrize("name", STACKS)
def test_a_stacks_layer_profile_is_attributed_to_the_taxonomy(built, name):
    from fff.explain.breakdown import CATEGORIES

    _, sides, _ = built
    baseline_raw = None if name == BASELINE else sides[BASELINE]["raw"]
    table = backend_class(name).attribute(sides[name]["raw"], baseline_raw, 1.0)
    assert table["layers"] and set(table["categories"]) <= set(CATEGORIES)
    assert sum(table["categories"].values()) > 0


@pytest.mark.parametrize("name", STACKS)
def test_a_stack_gives_its_cache_trace_or_says_why_not(built, name):
    _, _, caches = built
    fields = caches[name]
    if "modelled_counters" in fields:
        misses = fields["modelled_counters"]["llc-misses"]
        assert misses["status"] == "modelled" and misses["per_inference"] >= 0
        assert fields["cache_model"]["working_set"]["weight_bytes"] > 0
    else:
        assert fields["cache_model"].get("not_modelled") or fields["cache_model"].get("error")


@pytest.mark.parametrize("name", STACKS)
def test_a_stack_gives_a_simulation_job_that_imports_or_says_why_not(built, name):
    model, _, _ = built
    cls = backend_class(name)
    try:
        job = cls.simulation_job(target=TARGET, build_options=BUILD_OPTIONS, input_shape=model.input_shape,
                                 artifact=model.artifacts[name], precision="f32", module_path=None)
    except NotSimulated as reason:
        assert str(reason)
        return
    module, _, function = job["run"].partition(":")
    assert callable(getattr(import_module(module), function))
    assert isinstance(job["kwargs"], dict) and job["weights"]
