"""torch.compile with Inductor on the CPU: the PyTorch module compiled to fused C++ kernels and oneDNN calls.

``torch.compile(dynamic=False)`` under ``no_grad`` with Inductor's ``freezing`` (weights folded as
constants, batch norm into its convolution, oneDNN weights prepacked). bf16 runs the compiled
module under CPU autocast, as the eager baseline does.

Where it compiles: in its worker, not in the builder child. Inductor bakes the thread count into
the C++ kernels it generates (``num_threads(N)`` and per-thread reduction buffers sized by
``torch.get_num_threads()`` at compile time; pytorch#167463), and a compiled callable cannot cross
a process boundary, so the worker sets its threads and then compiles. Its effective configuration
reads the thread counts back from the generated code, and a kernel baked for another count than
the one asked for is refused. What makes a second run cheaper is Inductor's own on-disk cache
(per user: ``TORCHINDUCTOR_CACHE_DIR``, else ``/tmp/torchinductor_<user>``): its C++ kernels are
cached by their source. The FX graph cache is bypassed with freezing on this CPU path (prepacked
oneDNN weights cannot be pickled; pytorch#139783), so a second run lowers and links every graph
again; the record's ``inductor.fx_graph_cache`` says which happened and ``compile.note`` says why.
Turning ``cpp.weight_prepack`` off lets the cache hit but ran 1.45x slower (bench/README.md), so it
stays on: this stack measures what a user of ``torch.compile`` with freezing gets, compile cost and
all. The ``aot-inductor`` stack (fff.backends.aot_inductor) compiles the same lowering ahead of time
into a package fff caches; its C++ wrapper and lack of guards make it faster, so it is a stack of
its own rather than this one's cache.

Compile time never enters a latency: the first call (tracing, lowering, C++ builds and one
inference) is timed apart as ``compile.seconds``; ``first_inference_ms`` is the first call after
it; the warm-up follows. Graph breaks (each compiled graph's ``graph_break`` reasons) and the
number of graphs are in the configuration; a recompilation during the timed rounds would time a
compilation, so it is an error (``torch._dynamo.config.error_on_recompile``), never a sample.

Per-layer profile: a second compilation with Inductor's kernel profiling on (so the timed code
stays free of it), run under torch.profiler after the timed rounds. Each event the compiled graph
calls is a kernel: an extern call (oneDNN convolution, linear) or a fused C++ kernel whose name
lists the ATen operators it fused (``cpp_fused_add_hardtanh_3``). Convolutions are matched to
the model's convolution layers by signature in call order (as fff.explain.breakdown does for
OpenVINO); other kernels are rows of their own, categorised by the operators in their name.

Not here: the cache model (the eager ATen trace would model eager's intermediate tensors, which
Inductor fuses away; the compiled kernels are opaque to a trace) and valgrind's simulation
(compiling under valgrind would take hours). Both records say so.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections import defaultdict

import numpy as np

from fff.backends.base import NotModelled, NotSimulated
from fff.backends.torch_eager import TorchBackend
from fff.errors import CompileError, DeviceError

__all__ = ["TorchCompileBackend", "compiled_attribution", "inductor_settings", "kernel_category", "kernel_ops", "first_line",
           "threads_in_sources", "BAKED_THREADS", "RUNTIME_SIZED"]

# Why compile.cached is always false: said in every record, since users of torch.compile pay it too
RECOMPILED_EVERY_RUN = ("compiled afresh every run: Inductor's FX graph cache bypasses graphs holding frozen, prepacked "
                        "oneDNN weights (pytorch#139783); only its C++ kernels' builds are cached. weight_prepack=False "
                        "lets the cache hit but ran 1.45x slower (bench/README.md); the aot-inductor stack caches "
                        "an AOTInductor package instead")
COMPILE_THREADS = "1"  # Inductor's compile workers: a pool of processes does not pay on 2 shared cores
BAKED_THREADS = re.compile(r"num_threads\((\d+)\)")
RUNTIME_SIZED = re.compile(r"#pragma omp parallel\s*$", re.MULTILINE)
_KERNEL = re.compile(r"^(?:graph_\d+_)?(?:cpp_fused|cpp)_?(?P<ops>.*?)_?(?P<index>\d+)$")


class TorchCompileBackend(TorchBackend):
    name = "torch-compile"
    label = "torch.compile (Inductor)"
    # Compiling happens in prepare: mobilenet_v2 took 220 s at load average 13-20 on 2 cores, so a
    # larger zoo model would run past the workers' 600 s limit that is meant to catch hangs.
    prepare_timeout_scale = 4.0
    color = "#7b4173"  # plum: apart from the other stacks and the fallback colours plugins get
    precisions = ("f32", "bf16")  # f16: CPU autocast to f16 under Inductor is not checked here
    needs_module = True
    simulation_needs_module = False
    artifact_name = "compiled graph"
    packages = ("torch",)
    cache_model_error = ""

    @classmethod
    def environment(cls, threads: int) -> dict[str, str]:
        return {**super().environment(threads),
                "TORCHINDUCTOR_COMPILE_THREADS": os.environ.get("TORCHINDUCTOR_COMPILE_THREADS", COMPILE_THREADS),
                # torch.profiler's kineto (the breakdown) writes its start/stop markers and an ERROR line
                # for the GPU a CPU-only machine lacks to stderr, which fff-profile's output would carry
                "KINETO_LOG_LEVEL": os.environ.get("KINETO_LOG_LEVEL", "9")}

    @classmethod
    def check_available(cls, device: str) -> None:
        from torch._inductor import config
        from torch._inductor.cpp_builder import cpp_compiler_search

        try:
            cpp_compiler_search(tuple(config.cpp.cxx))
        except Exception as error:  # noqa: BLE001 - InvalidCxxCompiler and kin: Inductor cannot build its kernels
            tried = ", ".join(c for c in config.cpp.cxx if c)
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise DeviceError(f"{cls.name}: no C++ compiler Inductor can use (tried {tried}; set CXX): {reason}") from None

    @classmethod
    def prepare_artifact(cls, model, *, cache_dir=None, fresh: bool = False) -> dict:
        # Compiled in the worker after its threads are set (the module docstring says why).
        return {"cached": False, "notes": [], "compiled_in": "worker"}

    @classmethod
    def cache_trace(cls, model, artifact: dict, precision: str):
        raise NotModelled(f"{cls.name}: Inductor fuses operators into C++ kernels the tensor-level trace cannot see; "
                          "the eager trace would model tensors the compiled graph never writes")

    @classmethod
    def simulation_job(cls, *, target: str, build_options: dict, input_shape, artifact: dict, precision: str,
                       module_path: str | None) -> dict:
        raise NotSimulated(f"{cls.name}: the simulated child would compile the model under valgrind (hours)")

    @classmethod
    def attribute(cls, raw: dict, baseline_raw: dict | None, reported_ms: float | None) -> dict:
        return compiled_attribution(raw, baseline_raw, reported_ms, backend=cls.name)

    # --- the worker ------------------------------------------------------------------------------

    def __init__(self, *, target: str, build_options: dict, artifact: dict | None = None, input_shape=(),
                 device: str = "CPU", threads: int, precision: str, module_path: str | None = None):
        super().__init__(target=target, build_options=build_options, artifact=artifact, input_shape=input_shape,
                         device=device, threads=threads, precision=precision, module_path=module_path)
        self._module.eval()
        # Inductor imports torch.utils.cpp_extension, which warns on a CUDA build of torch without a
        # GPU ("No CUDA runtime is found"): true, and nothing to do with a CPU compilation
        logging.getLogger("torch.utils.cpp_extension").addFilter(
            lambda record: not record.getMessage().startswith("No CUDA runtime is found"))
        self._compiled = None  # compiled by prepare, after set_num_threads (the parent class set it)
        self._facts: dict = {}

    def _compile(self, kernel_profile: bool = False):
        import torch
        from torch._inductor import config

        config.freezing = True  # weights as constants: folded and prepacked (needs no_grad at the first call)
        config.cpp.enable_kernel_profile = kernel_profile
        if self._dtype is None:
            return torch.compile(self._module, dynamic=False)
        module, dtype = self._module, self._dtype

        def under_autocast(x):
            with torch.autocast("cpu", dtype=dtype):
                return module(x)

        return torch.compile(under_autocast, dynamic=False)

    def infer(self):
        with self._torch.no_grad():
            return self._compiled(self._input)

    def prepare(self, inputs: list[np.ndarray], warmup: int) -> dict:
        import torch
        from torch._dynamo.utils import counters

        self.set_input(inputs[0])
        counters.clear()
        loaded = _loaded_code()
        from torch._inductor.utils import parallel_num_threads

        compiled_for = parallel_num_threads()  # what Inductor specialises its kernels for (cpp.threads, else the pool)
        self._compiled = self._compile()
        with _fx_cache_bypass_reasons() as bypassed:
            start = time.perf_counter()
            try:
                self.infer()  # compiles: tracing, lowering, C++ builds and one inference
            except Exception as error:  # noqa: BLE001 - Dynamo's, AOT's or Inductor's: the model does not compile
                raise CompileError(f"{self.name} cannot compile {self.target}: {first_line(error)}") from None
            compile_s = time.perf_counter() - start
        frames_compiled = counters["frames"]["total"]
        start = time.perf_counter_ns()
        output = self.infer()
        first_ns = time.perf_counter_ns() - start
        for _ in range(warmup):
            self.infer()
        self._facts = {"compile_s": compile_s, "counters": {k: dict(v) for k, v in counters.items()},
                       # frames compiled again after the first call (the first inference, the warm-up)
                       "recompilations": counters["frames"]["total"] - frames_compiled,
                       "code": _code_threads([m for m in _loaded_code() if m not in loaded]),
                       "fx_bypass": sorted(set(bypassed)), "compiled_for_threads": compiled_for}
        self._check_threads(compiled_for, self._facts["code"].get("cache_dir"))
        torch._dynamo.config.error_on_recompile = True  # from here a recompilation is an error, not a sample
        return {"first_inference_ns": float(first_ns), "output": self.output_array(output), "config": self.config(),
                "clock": self.clock()}

    def _check_threads(self, compiled_for: int, where: str | None) -> None:
        """Refuses kernels specialised for another thread count than the one asked for (pytorch#167463)."""
        baked = self._facts["code"]["baked_num_threads"]
        if compiled_for != self.threads or any(n != self.threads for n in baked):
            raise CompileError(f"{self.name}: Inductor compiled for {compiled_for} threads and baked "
                               f"num_threads({', '.join(map(str, baked))}) into its kernels "
                               f"but {self.threads} threads were asked (pytorch#167463); clear its cache "
                               f"({where}) and run again")

    def round(self, iterations: int, counters: tuple[str, ...] = (), warmup: int = 0,
              deadline_s: float | None = None) -> dict:
        from torch._dynamo.exc import RecompileError

        try:
            return super().round(iterations, counters, warmup, deadline_s)
        except RecompileError as error:
            raise CompileError(f"{self.name}: recompiled during the timed rounds, which would time a compilation "
                               f"({first_line(error)})") from None

    def config(self) -> dict:
        from torch._inductor import config as inductor

        facts = self._facts
        stats = facts.get("counters", {})
        breaks = stats.get("graph_break", {})
        fx = stats.get("inductor", {})
        return {
            **super().config(),
            "compile": {"seconds": facts.get("compile_s"), "cached": False, "how": "torch.compile",
                        "note": RECOMPILED_EVERY_RUN,
                        "what": "the first call: Dynamo tracing, AOT, Inductor lowering, C++ builds (or their "
                                "on-disk cache) and one inference; kept out of every latency"},
            "dynamic": False,
            "freezing": inductor.freezing,
            "graphs": stats.get("stats", {}).get("unique_graphs", 0),
            "graph_breaks": sum(breaks.values()),
            "graph_break_reasons": sorted(breaks),
            "frames_compiled": stats.get("frames", {}).get("total", 0),  # one per graph break more
            "recompilations": facts.get("recompilations"),  # after the first call; in the rounds: an error
            "inductor": {
                **inductor_settings(facts),
                "fx_graph_cache": {"hit": fx.get("fxgraph_cache_hit", 0), "miss": fx.get("fxgraph_cache_miss", 0),
                                   "bypass": fx.get("fxgraph_cache_bypass", 0),
                                   "bypass_reasons": facts.get("fx_bypass", [])},
                "extern_calls": fx.get("extern_calls", 0),
            },
        }

    def breakdown(self, iterations: int) -> dict:
        """Kernel events of a second, kernel-profiling compilation under torch.profiler (after the timed rounds)."""
        import torch
        from torch.profiler import ProfilerActivity, profile, record_function

        from fff.explain.layer_profiles import profile_torch

        started = time.perf_counter()
        eager = profile_torch(self._module, super().infer, 1)  # the modules and convolution calls, one pass
        torch._dynamo.config.error_on_recompile = False
        torch._dynamo.reset()
        self._compiled = self._compile(kernel_profile=True)
        try:
            for _ in range(3):  # compiles, then warms up
                self.infer()
            latencies = []
            with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
                for i in range(iterations):
                    start = time.perf_counter_ns()
                    with record_function(f"fff_iteration_{i}"):
                        self.infer()
                    latencies.append(float(time.perf_counter_ns() - start))
        finally:
            torch._inductor.config.cpp.enable_kernel_profile = False
        return {"iterations": _kernel_rows(prof.events(), iterations), "latencies_ns": latencies,
                "modules": eager["modules"], "conv_calls": eager["conv_calls"],
                "seconds": time.perf_counter() - started}


# --- the worker's helpers ------------------------------------------------------------------------

def inductor_settings(facts: dict) -> dict:
    """What both Inductor stacks' configs say of the compiled code: what the generated C++ holds
    (``facts["code"]``), the thread count it was compiled for, and the Inductor settings that shape it."""
    from torch._inductor import config as inductor

    return {
        **facts.get("code", {}),
        "compiled_for_threads": facts.get("compiled_for_threads"),  # Inductor's count when it compiled
        "threads_config": inductor.cpp.threads,  # < 1: torch.get_num_threads() at compile time
        "dynamic_threads": inductor.cpp.dynamic_threads,
        "compile_threads": inductor.compile_threads,
        "weight_prepack": inductor.cpp.weight_prepack,
    }


def first_line(error: BaseException) -> str:
    """``Kind: first line`` of an exception whose message may run to pages (Inductor's do)."""
    text = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _loaded_code() -> list:
    from torch._inductor.codecache import PyCodeCache

    return list(PyCodeCache.modules)


def _code_threads(modules) -> dict:
    """The thread counts the generated code was specialised for, read from its source."""
    from torch._inductor.runtime.cache_dir_utils import cache_dir

    sources, kernels = [], 0
    for module in modules:
        try:
            with open(module.__file__, encoding="utf-8") as file:
                source = file.read()
        except (OSError, AttributeError, TypeError):
            continue
        sources.append(source)
        kernels += source.count("async_compile.cpp_pybinding(")
    return {"generated_modules": len(modules), "cpp_kernels": kernels, **threads_in_sources(sources),
            "cache_dir": cache_dir()}


def threads_in_sources(sources) -> dict:
    """The thread counts Inductor's generated sources were specialised for: ``num_threads(N)`` baked in,
    and bare ``#pragma omp parallel`` regions sized by the OpenMP pool at run time (torch.set_num_threads)."""
    baked, runtime_sized = set(), 0
    for source in sources:
        baked.update(int(n) for n in BAKED_THREADS.findall(source))
        runtime_sized += len(RUNTIME_SIZED.findall(source))
    return {"baked_num_threads": sorted(baked), "runtime_sized_parallel_regions": runtime_sized}


class _fx_cache_bypass_reasons:
    """Collects why Inductor bypassed its FX graph cache (it says so only in an INFO log line)."""

    def __enter__(self):
        self.reasons: list[str] = []
        self._logger = logging.getLogger("torch._inductor.codecache")
        self._saved = self._logger.level, self._logger.propagate
        handler = logging.Handler()
        handler.emit = lambda record: self.reasons.append(str(record.args[0]) if record.args else "")
        handler.addFilter(lambda record: record.getMessage().startswith("Bypassing FX Graph Cache"))
        self._handler = handler
        self._logger.addHandler(handler)
        self._logger.setLevel(logging.INFO)
        self._logger.propagate = False  # nothing of this reaches torch's own log handlers
        return self.reasons

    def __exit__(self, *exc):
        self._logger.removeHandler(self._handler)
        self._logger.setLevel(self._saved[0])
        self._logger.propagate = self._saved[1]


def _iteration_of(event) -> int | None:
    parent = event.cpu_parent
    while parent is not None:
        if parent.name.startswith("fff_iteration_"):
            return int(parent.name.rsplit("_", 1)[1])
        parent = parent.cpu_parent
    return None


def _in_compiled_graph(event) -> bool:
    return event.cpu_parent is not None and event.cpu_parent.name.startswith("## Call CompiledFxGraph")


def _kernel_rows(events, iterations: int) -> list[list]:
    """Per profiled inference: [name, microseconds, input shapes] for each kernel the compiled graphs
    called, and for each ATen operator run eagerly between graphs (at a graph break)."""
    rows: list[list] = [[] for _ in range(iterations)]
    for event in events:
        parent = event.cpu_parent
        in_graph = _in_compiled_graph(event)
        eager_between = parent is not None and parent.name.startswith("fff_iteration_") and "::" in event.name
        if not (in_graph or eager_between):
            continue
        index = _iteration_of(event)
        if index is not None:
            rows[index].append([event.name, float(event.cpu_time_total),
                                [list(s) for s in (event.input_shapes or [])], "graph" if in_graph else "eager"])
    return rows


# --- the parent: kernels attributed to layers and the taxonomy -----------------------------------

# The categories a fused kernel's operators fall in, heaviest kind first: a kernel is filed under the
# first one its name contains (``addmm_mean`` is linear/matmul, ``add_hardtanh`` elementwise).
_PRIORITY = ("linear/matmul", "dense conv kxk", "pooling", "normalization", "elementwise", "activation",
             "data movement", "other")
_ALIASES = {"convolution": "conv2d", "mkl_linear": "linear", "native_batch_norm_legit_no_training": "batch_norm",
            "_native_batch_norm_legit_no_training": "batch_norm", "max_pool2d_with_indices": "max_pool2d",
            "cat": "cat", "mean": "mean", "sum": "mean"}


def kernel_ops(name: str) -> list[str]:
    """The ATen operators an Inductor kernel's name lists (``graph_0_cpp_fused_add_hardtanh_3`` ->
    ``add``, ``hardtanh``): the longest known operator name at each point, unknown words skipped."""
    from fff.explain.breakdown import category_of_op

    match = _KERNEL.match(name)
    words = [w for w in (match.group("ops") if match else name).split("_") if w]
    ops, i = [], 0
    while i < len(words):
        for j in range(len(words), i, -1):
            candidate = "_".join(words[i:j])
            if candidate in _ALIASES or category_of_op(candidate) != "other":
                ops.append(_ALIASES.get(candidate, candidate))
                i = j
                break
        else:
            i += 1
    return ops


def kernel_category(name: str) -> str:
    """A fused kernel's category: the heaviest kind among the operators its name lists."""
    from fff.explain.breakdown import category_of_op

    found = {category_of_op(op) for op in kernel_ops(name)}
    return next((c for c in _PRIORITY if c in found), "other")


def _extern_category(name: str, conv: tuple | None) -> str:
    """``mkldnn::_linear_pointwise`` -> linear/matmul; a convolution by its geometry where its shapes give it."""
    from fff.explain.breakdown import category_of_module, category_of_op

    if conv is not None:
        out, in_per_group, *kernel, groups, _ = conv
        return category_of_module({"groups": groups, "in_channels": in_per_group * groups, "out_channels": out,
                                   "kernel": kernel})
    base = name.split("::")[-1].strip("_").removesuffix("_pointwise")
    return category_of_op(_ALIASES.get(base, base))


def _is_conv(name: str) -> bool:
    return "convolution" in name or name.endswith("conv2d")


def _conv_key(name: str, shapes: list) -> tuple | None:
    """(out channels, in channels per group, *kernel, groups, batch) of a convolution kernel event.

    The 4-d tensors it was given: the input, the weight last; oneDNN's binary variant (a residual
    add fused in) takes the other addend after the input, its in-place one (``..._pointwise_``)
    before it, as the buffer it writes."""
    four = [s for s in shapes if len(s) == 4]
    if len(four) < 2:
        return None
    x = four[1] if name.endswith("_") and len(four) >= 3 else four[0]
    weight = four[-1]
    if not weight[1] or x[1] % weight[1]:
        return None
    return (*weight[:2], *weight[2:], x[1] // weight[1], x[0])


def _conv_layers(conv_calls: list[dict]) -> list[tuple[tuple, str]]:
    """The model's convolution calls as (the key _conv_key makes, module path), in call order."""
    out = []
    for call in conv_calls:
        signature = call["signature"]  # [out, in/groups, *kernel, groups, n, c, h, w]
        out.append(((*signature[:-4], signature[-4]), call["path"]))
    return out


def compiled_attribution(raw: dict, baseline_raw: dict | None, reported_ms: float | None = None,
                         backend: str = "torch-compile") -> dict:
    """Kernel events (TorchCompileBackend.breakdown) as layers, categories and honesty fields.

    A convolution kernel goes to the first unused convolution layer of the model with its signature,
    in call order (rule ``graph``); any other kernel is a row of its own named after it, categorised
    by the operators its name lists (rule ``kernel name``); an operator run eagerly at a graph break
    is categorised by its name (rule ``eager``). ``framework overhead`` is the end-to-end time with
    profiling on minus the kernels' times (guards, wrappers, Python), its median over inferences."""
    from fff.explain.breakdown import CATEGORIES, OVERHEAD, category_of_module

    modules = raw["modules"]
    per_iteration, kernel_ns, facts = [], [], {}
    for events in raw["iterations"]:
        unused = _conv_layers(raw["conv_calls"])
        layers = defaultdict(float)
        for name, us, shapes, where in events:
            key, row = None, None
            if _is_conv(name):
                conv = _conv_key(name, shapes)
                index = next((i for i, (k, _) in enumerate(unused) if k == conv), None)
                if index is not None:
                    key = unused.pop(index)[1]
                    row = {"module_type": modules.get(key, {}).get("module_type", "Conv2d"),
                           "category": category_of_module(modules[key]) if key in modules else "dense conv kxk",
                           "rule": "graph", "flops": modules.get(key, {}).get("flops") or None}
            if key is None:
                key = f"inductor:{name}" if where == "graph" else f"eager:{name}"
                if "::" in name:  # an extern call or an eager operator: named by its ATen operator
                    category = _extern_category(name, _conv_key(name, shapes) if _is_conv(name) else None)
                else:
                    category = kernel_category(name)
                row = {"module_type": "(Inductor kernel)" if where == "graph" else "(eager at a graph break)",
                       "category": category, "rule": "kernel name" if where == "graph" else "eager",
                       "flops": None, "aten_ops": kernel_ops(name) if "::" not in name else [name]}
            layers[key] += us * 1e3
            facts.setdefault(key, row)
        per_iteration.append(layers)
        kernel_ns.append(sum(layers.values()))
    keys = {k for it in per_iteration for k in it}
    medians = {k: float(np.median([it.get(k, 0.0) for it in per_iteration])) for k in keys}
    latencies = raw["latencies_ns"]
    overhead_ms = max(float(np.median(np.subtract(latencies[:len(kernel_ns)], kernel_ns))), 0.0) / 1e6 if kernel_ns else 0.0
    layers = {k: {"layer": k, "ms": ns / 1e6, **facts[k]} for k, ns in medians.items()}
    categories = defaultdict(float)
    for row in layers.values():
        categories[row["category"]] += row["ms"]
    categories[OVERHEAD] += overhead_ms
    profiled_ms = float(np.median(latencies)) / 1e6
    matched = sum(1 for row in layers.values() if row["rule"] == "graph")
    return {
        "backend": backend,
        "latency_profiled_ms": profiled_ms,
        "latency_reported_ms": reported_ms,
        "slowdown": profiled_ms / reported_ms if reported_ms else None,
        # kernels' share of the end-to-end time; the rest is the overhead line
        "coverage": float(np.median(np.divide(kernel_ns, latencies[:len(kernel_ns)]))) if kernel_ns else None,
        "categories": {c: categories[c] for c in CATEGORIES if c in categories},
        "layers": sorted(layers.values(), key=lambda row: -row["ms"]),
        "source": "torch.profiler CPU events of the kernels each compiled graph calls (a second compilation with "
                  "Inductor's cpp.enable_kernel_profile), on the calling thread; convolutions matched to the "
                  "model's by signature in call order, fused kernels categorised by the ATen operators their "
                  "names list (fff.backends.torch_compile)",
        "iterations": len(latencies),
        "framework_overhead_ms": overhead_ms,
        "kernel_ms": float(np.median(kernel_ns)) / 1e6 if kernel_ns else None,  # per profiled inference
        "conv_layers_matched": f"{matched} of {len(raw['conv_calls'])}",
        "unattributed": sorted((row for row in layers.values() if row["rule"] != "graph"), key=lambda r: -r["ms"]),
        "seconds": raw.get("seconds"),
    }

