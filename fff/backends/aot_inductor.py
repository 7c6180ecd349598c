"""AOTInductor on the CPU: the PyTorch module compiled ahead of time into a package fff caches by content.

The model is captured whole by ``torch.export`` (strict: Dynamo's capture, the one ``torch.compile``
uses, so a graph break is noticed rather than traced through) under ``no_grad``, compiled by
AOTInductor (``torch._inductor.aoti_compile_and_package``) with Inductor's ``freezing`` (weights folded
as constants, batch norm into its convolution, oneDNN weights prepacked), static shapes, and loaded
by ``torch._C._aoti.AOTIModelPackageLoader``. bf16 exports the module under CPU autocast, as the eager
baseline runs it.

What it measures, and why it is not the ``torch-compile`` stack: the kernels are the same Inductor
lowering ``torch.compile(dynamic=False)`` with freezing makes (the same oneDNN calls with prepacked
weights, the same fused C++ kernels), but the package calls them from a C++ wrapper, with no Python
between kernels and no guards to check, which ran 15-25% faster than torch.compile's Python wrapper
(1.04-1.14x against torch.compile with ``cpp_wrapper=True``; bench/README.md). And it is a file: fff
caches it (fff.backends.artifact_cache), so a second run loads it in a fraction of a second, where
torch.compile with freezing lowers and links everything again (its FX graph cache cannot pickle the
prepacked oneDNN weights; pytorch#139783). This stack is a deployment through AOTInductor; the
``torch-compile`` stack is what a user of ``torch.compile`` gets.

A model torch.export cannot capture in one graph (a graph break) cannot be one package: it is refused
with the reason (CompileError naming this stack), never run through torch.compile behind its name.

Where it compiles: in its worker after the threads are set, as torch-compile does (Inductor
specialises its C++ for the thread count; pytorch#167463). The cache key holds the thread count, the
module's weights and structure, its input shape, the precision, torch's and fff's versions, the CPU
(the C++ is built with -march=native) and the Inductor settings that change the kernels. The thread
counts are read back from the C++ sources the package carries, and a kernel baked for another count
than the one asked for is refused. A damaged entry (its checksum, or a package the loader refuses)
is compiled and stored again, with a note. ``compile.seconds`` is the key, the cache look-up and the
load (cached: true), or export, lowering, C++ builds, packaging and the load (cached: false); it never
enters a latency. A package has no guards, hence no recompilation.

Per-layer profile: the package's kernels do not appear as torch.profiler events, so the breakdown
profiles a ``torch.compile`` build of the same module with the same freezing lowering (the kernels
the package calls, under Python's wrapper; torch-compile's breakdown) and says so; its coverage is
stated against the package's own median latency as well as against the profiled build's, and its
``framework overhead`` is the package's latency minus those kernels' times.

Not here, as for torch-compile: the cache model and valgrind's simulation; both records say why.
"""

from __future__ import annotations

import re
import time

from fff.backends.torch_compile import (TorchCompileBackend, compiled_attribution, first_line, inductor_settings,
                                        threads_in_sources)
from fff.errors import CompileError

__all__ = ["AOTInductorBackend", "package_key"]

PACKAGE = "model.pt2"  # the AOTInductor package in its cache entry
# What the package's kernels depend on beyond the module, its shape, threads and precision (the key)
INDUCTOR_CONFIG = {"freezing": True}


class AOTInductorBackend(TorchCompileBackend):
    name = "aot-inductor"
    label = "AOTInductor (Inductor, ahead of time)"
    color = "#17a768"  # green, apart from the other stacks and the registry's fallback colours
    artifact_name = "AOTInductor package"

    @classmethod
    def prepare_artifact(cls, model, *, cache_dir=None, fresh: bool = False) -> dict:
        # Compiled (or loaded from the cache) in the worker after its threads are set (the module docstring says why).
        return {"cached": False, "notes": [], "compiled_in": "worker",
                "cache_dir": None if cache_dir is None else str(cache_dir), "fresh": fresh}

    @classmethod
    def attribute(cls, raw: dict, baseline_raw: dict | None, reported_ms: float | None) -> dict:
        from fff.explain.breakdown import OVERHEAD

        table = compiled_attribution(raw, baseline_raw, reported_ms, backend=cls.name)
        kernel_ms = table["kernel_ms"]
        categories = dict(table["categories"])
        overhead_ms = table["framework_overhead_ms"]
        if kernel_ms is not None and reported_ms:
            # the package's own time outside the kernels, not torch.compile's Python wrapper and guards
            overhead_ms = max(reported_ms - kernel_ms, 0.0)
            categories[OVERHEAD] = overhead_ms
        return {**table,
                "categories": categories,
                "framework_overhead_ms": overhead_ms,
                "framework_overhead_of_profiled_build_ms": table["framework_overhead_ms"],
                "profiled_build": "torch.compile (JIT, freezing) of the same module, not the package: the package's "
                                  "kernels are not profiler events; its wrapper and guards differ",
                "coverage_of_profiled_build": table["coverage"],
                # the kernels' time against the latency the package was measured at
                "coverage": kernel_ms / reported_ms if kernel_ms is not None and reported_ms else None,
                "coverage_against_ms": reported_ms,
                "slowdown": None,  # the profiled build is not the package: no profiling slow-down to state
                "source": "the kernels of a torch.compile build of the same module (same freezing lowering), "
                          "profiled as torch-compile's are; coverage against the package's own median latency. "
                          + table["source"]}

    # --- the worker ------------------------------------------------------------------------------

    def __init__(self, *, artifact: dict | None = None, **options):
        super().__init__(artifact=artifact, **options)
        self._cache = {"cache_dir": (artifact or {}).get("cache_dir"), "fresh": bool((artifact or {}).get("fresh"))}

    def prepare(self, inputs, warmup: int) -> dict:
        import torch
        from torch._inductor.utils import parallel_num_threads

        self.set_input(inputs[0])
        torch._inductor.config.freezing = True  # weights as constants: folded and prepacked (under no_grad)
        compiled_for = parallel_num_threads()  # what Inductor specialises its kernels for (cpp.threads, else the pool)
        self._facts = self._package(compiled_for)
        start = time.perf_counter_ns()
        output = self.infer()
        first_ns = time.perf_counter_ns() - start
        for _ in range(warmup):
            self.infer()
        self._check_threads(compiled_for, self._facts["entry"])
        return {"first_inference_ns": float(first_ns), "output": self.output_array(output), "config": self.config(),
                "clock": self.clock()}

    def _package(self, compiled_for: int) -> dict:
        """The AOTInductor package from the cache, else exported whole, compiled, stored and loaded."""
        import torch

        from fff.backends.artifact_cache import entry_damage, entry_path, store_entry

        start = time.perf_counter()
        key = package_key(self._module, self.target, list(self._input.shape), compiled_for, self.precision)
        entry = entry_path(key, self._cache["cache_dir"])
        damage = "was to be made afresh" if self._cache["fresh"] else entry_damage(entry, (PACKAGE,))
        note = None
        if damage is None:
            try:
                self._compiled = load_package(entry / PACKAGE)
            except Exception as error:  # noqa: BLE001 - passed its checksum, yet the loader refused it
                damage = f"could not be loaded ({first_line(error)})"
        if damage is not None:
            if damage != "absent":
                note = f"the cached package {damage}: compiled again"
            program = self._export()
            meta = {"target": self.target, "threads": compiled_for, "precision": self.precision,
                    "torch": torch.__version__}
            with torch.no_grad():
                try:
                    store_entry(entry, (PACKAGE,), lambda staging: torch._inductor.aoti_compile_and_package(
                        program, package_path=str(staging / PACKAGE), inductor_configs=INDUCTOR_CONFIG),
                        meta, replace=damage != "absent")
                except OSError as error:
                    raise CompileError(f"{self.name}: could not store its package in {entry.parent}: "
                                       f"{error.strerror or error}") from None
                except Exception as error:  # noqa: BLE001 - Inductor's: the exported graph does not compile
                    raise CompileError(f"{self.name} cannot compile {self.target}: {first_line(error)}") from None
            self._compiled = load_package(entry / PACKAGE)
        return {"compile_s": time.perf_counter() - start, "cached": damage is None, "note": note,
                "entry": str(entry), "code": package_threads(entry / PACKAGE), "compiled_for_threads": compiled_for}

    def _export(self):
        """The whole model as one graph (strict: Dynamo's capture, which torch.compile uses), under no_grad."""
        import torch

        module = self._module if self._dtype is None else autocast_module(self._module, self._dtype)
        with torch.no_grad():
            try:
                return torch.export.export(module, (self._input,), strict=True)
            except Exception as error:  # noqa: BLE001 - Dynamo's Unsupported (a graph break) and kin
                raise CompileError(f"{self.name}: torch.export cannot capture {self.target} as one graph, so it "
                                   f"cannot be one AOTInductor package ({first_line(error)}); the torch-compile "
                                   "stack runs it with graph breaks") from None

    def config(self) -> dict:
        facts = self._facts
        base = {k: v for k, v in super().config().items() if k not in ("inductor", "compile")}
        return {
            **base,
            "compile": {"seconds": facts.get("compile_s"), "cached": facts.get("cached"), "how": "AOTInductor",
                        "note": facts.get("note"), "entry": facts.get("entry"),
                        "what": "the AOTInductor package loaded from fff's cache, else export, Inductor lowering, C++ "
                                "builds and packaging, then the load; kept out of every latency"},
            "graphs": 1,  # torch.export captured it whole, or it was refused
            "graph_breaks": 0,
            "graph_break_reasons": [],
            "frames_compiled": 0,
            "recompilations": 0,  # a package has no guards to fail
            "inductor": inductor_settings(facts),
        }


# --- the worker's helpers ------------------------------------------------------------------------

def package_key(module, target: str, input_shape: list, threads: int, precision: str) -> str:
    """The cache entry's name: the module's weights and structure, shape, threads Inductor compiles for,
    precision, versions, the vector ISA and compiler the C++ is built for, and the Inductor settings
    that change the kernels."""
    import types

    import torch
    from torch._inductor import config

    from fff import __version__
    from fff.backends.artifact_cache import module_digest
    from fff.measure.machine import machine_info

    # The C++ is built with -march=native: the CPU and its ISA flags, read without Inductor's own ISA
    # probe (pick_vec_isa compiles test programs: seconds, on a run that should only load)
    machine = machine_info()

    header = {"kind": "aotinductor", "target": target, "input_shape": list(input_shape), "threads": threads,
              "precision": precision, "structure": repr(module), "versions": {"fff": __version__, "torch": torch.__version__},
              "inductor": {**INDUCTOR_CONFIG, "weight_prepack": config.cpp.weight_prepack,
                           "cpp_threads": config.cpp.threads, "dynamic_threads": config.cpp.dynamic_threads,
                           "simdlen": config.cpp.simdlen, "cxx": list(config.cpp.cxx)},
              "cpu": {"model": machine["cpu_model"], "architecture": machine["architecture"], "isa": machine["isa"],
                      "aten": torch.backends.cpu.get_cpu_capability()}}
    return "aoti-" + module_digest(types.SimpleNamespace(module=module), header)


def load_package(path):
    """The package's model, loaded as ``aoti_load_package`` loads it, without its ISA comparison: that
    runs Inductor's ISA probe, which builds test programs (19 s under load where Inductor's cache
    lacks them; pytorch#191715), for a warning; the cache key already names the CPU and its ISA flags."""
    import torch
    from torch._inductor.package import AOTICompiledModel

    return AOTICompiledModel(torch._C._aoti.AOTIModelPackageLoader(str(path), "model", False, 1, -1))


def autocast_module(module, dtype):
    """``module`` under CPU autocast to ``dtype``, as a module torch.export can capture (bf16, as eager runs it)."""
    import torch

    class Autocast(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, x):
            with torch.autocast("cpu", dtype=dtype):
                return self.inner(x)

    return Autocast().eval()


def package_threads(package) -> dict:
    """The thread counts the package's C++ kernels were specialised for, read from the sources it carries."""
    import zipfile

    from torch._inductor.runtime.cache_dir_utils import cache_dir

    with zipfile.ZipFile(package) as archive:
        sources = [archive.read(name).decode(errors="replace") for name in archive.namelist() if name.endswith(".cpp")]
    kernels = sum(len(re.findall(r'extern "C"\s+void\s+cpp_', source)) for source in sources)
    return {"generated_modules": 0, "cpp_kernels": kernels, **threads_in_sources(sources), "cache_dir": cache_dir()}
