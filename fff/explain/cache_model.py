"""Modelled LL traffic: each layer's tensors streamed through an LRU cache of the LL's size.

Simulating caches under valgrind costs ~26 s per GFLOP per inference; a study cannot carry that
for every cell. This model costs a traced inference: it records, in execution order, what each
operation reads (its inputs and weights) and writes (its outputs), then streams those byte ranges
through a fully associative LRU cache of the last level's size, one warm-up inference and then one
counted, as the simulation does (both the same traced pass: the runtimes reuse their buffers from
one inference to the next). Write misses allocate (as in valgrind's simulator).

Where the tensors come from:

- PyTorch: every ATen operation of one eager forward pass (``TorchDispatchMode``), with the
  tensors' real addresses, so buffers that the allocator hands out again are the same lines.
  Views are free; in-place operations read and write.
- OpenVINO: the compiled model's runtime graph (``get_runtime_model()``) in ``execOrder``;
  weights are its ``Const`` nodes, activations get addresses from a first-fit planner that reuses
  a buffer once its last consumer has run (OpenVINO's own memory solver does this, better).

What it leaves out (the caveat attached to every result): reuse inside one operation (a kernel
that re-reads its input because it does not fit is counted once), the kernels' scratch buffers and
weight reorders, instruction fetches, the interpreter's own data, prefetchers and associativity
(the LL is modelled fully associative at ``block`` granularity). Its error against valgrind's
simulation is measured per pattern in bench/bench_cache_model.py (figures in bench/README.md).

Two bounds hold by construction and are tested: a weight is read once per inference, so when the
weights exceed the LL every weight line misses (reuse distance >= all weights); a model whose
weights and activations fit misses nothing after the warm-up.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass, field

__all__ = ["Trace", "Step", "trace_torch", "trace_openvino", "LRUCache", "model_traffic", "working_set",
           "model_caches", "MODEL_CAVEAT", "Planner", "peak_live"]

MODEL_CAVEAT = ("modelled by fff (tensor-level LRU): each operation's inputs, weights and outputs streamed once "
                "through a fully associative LRU of the LL's size; no reuse inside an operation, no scratch buffers, "
                "no instruction fetches, no prefetchers")
DEFAULT_BLOCK = 4096  # bytes the LRU tracks as one unit: small against any LL, cheap to stream


@dataclass(frozen=True)
class Step:
    """One operation: byte ranges (address, length) it reads and writes."""

    name: str
    reads: tuple[tuple[int, int], ...]
    writes: tuple[tuple[int, int], ...]


@dataclass
class Trace:
    """One inference in execution order, and what it holds."""

    steps: list[Step]
    weight_bytes: int
    input_bytes: int
    output_bytes: int
    peak_activation_bytes: int
    source: str
    element_bytes: dict = field(default_factory=dict)


class LRUCache:
    """A fully associative LRU cache of ``size`` bytes tracking ``block``-byte units; misses are
    counted in ``line``-byte lines of the range accessed."""

    def __init__(self, size: int, line: int = 64, block: int = DEFAULT_BLOCK):
        if size < block or block % line:
            raise ValueError(f"cache of {size} B cannot hold a {block} B block of {line} B lines")
        self.capacity, self.line, self.block = size // block, line, block
        self._resident: OrderedDict[int, int] = OrderedDict()  # block -> bitmask of its lines loaded

    def access(self, address: int, length: int) -> int:
        """Lines of [address, address + length) that missed; the range is resident afterwards.
        A block remembers which of its lines were touched, so a neighbour sharing a block does not
        make lines hits that were never loaded; eviction drops the whole block."""
        if length <= 0:
            return 0
        missed, end, block, line = 0, address + length, self.block, self.line
        resident = self._resident
        for b in range(address // block, (end - 1) // block + 1):
            low, high = max(address, b * block), min(end, (b + 1) * block)
            first = (low - b * block) // line
            wanted = ((1 << ((high - 1 - b * block) // line - first + 1)) - 1) << first
            have = resident.get(b)
            if have is None:
                missed += wanted.bit_count()
                resident[b] = wanted
                if len(resident) > self.capacity:
                    resident.popitem(last=False)
            else:
                missed += (wanted & ~have).bit_count()
                resident[b] = have | wanted
                resident.move_to_end(b)
        return missed


def _lines(length: int, line: int) -> int:
    return -(-length // line)


def model_traffic(warmup: Trace, counted: Trace, size: int, line: int = 64, block: int = DEFAULT_BLOCK) -> dict:
    """Lines read and written, and those that missed, in ``counted`` after ``warmup`` warmed the LRU."""
    cache = LRUCache(size, line, block)
    for step in warmup.steps:
        for address, length in step.reads + step.writes:
            cache.access(address, length)
    counts = {"read_lines": 0, "read_misses": 0, "write_lines": 0, "write_misses": 0}
    for step in counted.steps:
        for address, length in step.reads:
            counts["read_lines"] += _lines(length, line)
            counts["read_misses"] += cache.access(address, length)
        for address, length in step.writes:
            counts["write_lines"] += _lines(length, line)
            counts["write_misses"] += cache.access(address, length)
    return counts


def peak_live(intervals: list[tuple[int, int, int]]) -> int:
    """Most bytes alive at once; intervals are (first step, last step, bytes)."""
    events = sorted([(first, size) for first, _, size in intervals] + [(last + 1, -size) for _, last, size in intervals],
                    key=lambda e: (e[0], e[1]))
    live = peak = 0
    for _, delta in events:
        live += delta
        peak = max(peak, live)
    return peak


# --- PyTorch: every ATen operation of one forward pass ----------------------------------------

def _span(tensor) -> tuple[int, int] | None:
    """(address, bytes) a tensor covers, strides included; None for empty or non-CPU tensors."""
    if tensor.numel() == 0 or tensor.device.type != "cpu":
        return None
    elements = 1 + sum((size - 1) * abs(stride) for size, stride in zip(tensor.shape, tensor.stride()))
    return tensor.data_ptr(), elements * tensor.element_size()


def trace_torch(module, example_input) -> Trace:
    """One forward pass of ``module`` (eval, inference mode) on ``example_input``, traced."""
    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    weights = {}
    for tensor in list(module.parameters()) + list(module.buffers()):
        span = _span(tensor.detach())
        if span:
            weights[span[0]] = span[1]
    steps: list[Step] = []

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            reads = tuple(s for t in tree_flatten((args, kwargs or {}))[0]
                          if isinstance(t, torch.Tensor) and (s := _span(t)))
            results = tree_flatten(out)[0]
            returns = func._schema.returns
            writes = []
            for i, t in enumerate(results):
                alias = returns[i].alias_info if i < len(returns) else None
                if isinstance(t, torch.Tensor) and (alias is None or alias.is_write) and (s := _span(t)):
                    writes.append(s)
            if writes:  # views and metadata queries move no data
                steps.append(Step(str(func.overloadpacket.__name__), reads, tuple(writes)))
            return out

    with torch.inference_mode(), Recorder():
        output = module(example_input)
    # Activations: alive from the step that writes them to the last step that reads them.
    written, intervals = {}, []
    for index, step in enumerate(steps):
        for span in step.reads:
            if span in written:
                written[span][1] = index
        for span in step.writes:
            if span in written:
                intervals.append(tuple(written[span]))
            written[span] = [index, index, span[1]]
    intervals += [tuple(v) for v in written.values()]
    input_span = _span(example_input)
    return Trace(steps, weight_bytes=sum(weights.values()), input_bytes=input_span[1] if input_span else 0,
                 output_bytes=sum(t.numel() * t.element_size() for t in tree_flatten(output)[0]
                                  if isinstance(t, torch.Tensor)),  # every output of a tuple or dict
                 peak_activation_bytes=max(peak_live(intervals), input_span[1] if input_span else 0),
                 source="torch: ATen operations of one eager forward pass (TorchDispatchMode), real addresses")


# --- OpenVINO: the compiled model's runtime graph ---------------------------------------------

_ELEMENT_BYTES = {"f32": 4, "f16": 2, "bf16": 2, "i64": 8, "i32": 4, "u8": 1, "i8": 1, "boolean": 1, "u1": 1}
_IN_PLACE = {"Reshape", "Squeeze", "Unsqueeze"}  # the CPU plugin runs these on their input's memory
_NO_WORK = {"Input", "Parameter", "Const", "Output", "Result"}
_ALIGN = 64


def _rt(op, key: str) -> str:
    info = op.get_rt_info()
    return info[key].astype(str) if key in info else ""


class Planner:
    """First-fit reuse of activation memory: a buffer is free once its last consumer has run."""

    def __init__(self, base: int):
        self.base, self.allocated = base, []  # (offset, size, last step)

    def place(self, size: int, first: int, last: int) -> int:
        self.allocated = [a for a in self.allocated if a[2] >= first]
        size = -(-size // _ALIGN) * _ALIGN
        offset = 0
        for start, length, _ in sorted(self.allocated):
            if start - offset >= size:
                break
            offset = max(offset, start + length)
        self.allocated.append((offset, size, last))
        return self.base + offset


def trace_openvino(xml, input_shape, precision: str = "f32", core=None) -> Trace:
    """One inference of the IR as the CPU plugin compiled it (one thread), from its runtime graph."""
    import openvino as ov

    core = core or ov.Core()
    model = core.read_model(str(xml))
    model.reshape([int(d) for d in input_shape])
    compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": precision,
                                                 "INFERENCE_NUM_THREADS": 1, "NUM_STREAMS": 1})
    ops = sorted(compiled.get_runtime_model().get_ordered_ops(), key=lambda op: int(_rt(op, "execOrder") or 0))
    index = {op.get_friendly_name(): i for i, op in enumerate(ops)}

    def nbytes(op, port: int = 0) -> int:
        precisions = _rt(op, "outputPrecisions").split(",")
        element = _ELEMENT_BYTES.get(precisions[min(port, len(precisions) - 1)].strip().lower(), 4)
        shape = op.get_output_shape(port) if op.get_output_size() else []
        count = 1
        for d in shape:
            count *= int(d)
        return count * element

    def ports(op) -> list[int]:  # bytes of each output; a multi-output op (Split) gets one buffer for all
        return [nbytes(op, p) for p in range(op.get_output_size())] or [0]

    def sources(op) -> list[tuple[str, int]]:
        """(producer, output port) of each input, through in-place ops to the buffer's owner."""
        found = []
        for i in op.inputs():
            output = i.get_source_output()
            source = (output.get_node().get_friendly_name(), output.get_index())
            found.append(alias.get(source[0], source))
        return found

    # Last step that reads each buffer (an in-place op extends its source's life).
    last_use: dict[str, int] = {}
    alias: dict[str, tuple[str, int]] = {}
    for i, op in enumerate(ops):
        for name, _ in sources(op):
            last_use[name] = max(last_use.get(name, i), i)
        if _rt(op, "layerType") in _IN_PLACE and op.get_input_size():
            alias[op.get_friendly_name()] = sources(op)[0]
    addresses: dict[str, int] = {}
    weight_base, weight_end, weight_bytes, input_bytes, output_bytes = 1 << 44, 0, 0, 0, 0
    planner = Planner(1 << 40)
    intervals, steps = [], []

    def read_range(name: str, port: int) -> tuple[int, int]:
        sizes = ports(ops[index[name]])
        return addresses[name] + sum(sizes[:port]), sizes[min(port, len(sizes) - 1)]

    for i, op in enumerate(ops):
        name, kind = op.get_friendly_name(), _rt(op, "layerType")
        size = sum(ports(op))
        if kind == "Const":
            addresses[name] = weight_base + weight_end
            weight_end += -(-size // _ALIGN) * _ALIGN  # each constant starts on a line, as allocators align them
            weight_bytes += size
            continue
        if kind in _IN_PLACE and name in alias:
            continue
        if kind in ("Input", "Parameter"):
            input_bytes += size
        if kind in ("Output", "Result"):
            if not name.startswith("stub_"):  # the plugin's sinks for unused outputs (MaxPool's indices)
                output_bytes += sum(read_range(s, p)[1] for s, p in sources(op) if s in addresses)
            continue
        last = last_use.get(name, i)
        addresses[name] = planner.place(size, i, last)
        intervals.append((i, last, size))
        if kind in _NO_WORK:
            continue
        reads = tuple(read_range(s, p) for s, p in sources(op) if s in addresses)
        steps.append(Step(kind, reads, ((addresses[name], size),)))
    return Trace(steps, weight_bytes=weight_bytes, input_bytes=input_bytes, output_bytes=output_bytes,
                 peak_activation_bytes=peak_live(intervals),
                 source="openvino: the CPU plugin's runtime graph in execOrder (one thread); activation "
                        "addresses from a first-fit planner")


# --- working set and the per-record result ----------------------------------------------------

def working_set(trace: Trace, cache_sizes: dict[str, int]) -> dict:
    """Static working set of one inference, and which caches it does not fit."""
    resident = trace.weight_bytes + trace.peak_activation_bytes
    return {
        "weight_bytes": trace.weight_bytes,
        "peak_activation_bytes": trace.peak_activation_bytes,
        "input_bytes": trace.input_bytes,
        "output_bytes": trace.output_bytes,
        "working_set_bytes": resident,
        # Once the weights (and the activations alive at once) outgrow a cache, every inference must at
        # least read the weights and input and write the output from and to memory.
        "min_bytes_moved_if_not_fitting": trace.weight_bytes + trace.input_bytes + trace.output_bytes,
        "exceeds": sorted(name for name, size in cache_sizes.items() if size and resident > size),
        "fits": sorted(name for name, size in cache_sizes.items() if size and resident <= size),
        "source": "modelled: bytes of the traced tensors (" + trace.source + ")",
    }


def _machine_cache_sizes() -> dict[str, int]:
    from fff.measure.machine import sysfs_caches

    return {name: c["size_bytes"] for name, c in sysfs_caches(0).items() if name != "L1i" and c["size_bytes"]}


def modelled_counters(warmup: Trace, counted: Trace, size: int, line: int, block: int = DEFAULT_BLOCK) -> dict:
    counts = model_traffic(warmup, counted, size, line, block)
    ll = f"LL {size // 1024} KiB, {line} B lines, fully associative LRU of {block} B blocks"
    return {
        "llc-misses": {"per_inference": float(counts["read_misses"]), "total": float(counts["read_misses"]),
                       "status": "modelled", "reason": f"LL read misses (lines); {ll}", "scaled": False},
        "llc-store-misses": {"per_inference": float(counts["write_misses"]), "total": float(counts["write_misses"]),
                             "status": "modelled", "reason": f"LL write misses (lines, write-allocate); {ll}",
                             "scaled": False},
        "llc-loads": {"per_inference": float(counts["read_lines"]), "total": float(counts["read_lines"]),
                      "status": "modelled", "reason": "lines read by the operations (tensor level)", "scaled": False},
    }


def model_caches(traces: dict, *, ll=None, block: int = DEFAULT_BLOCK) -> dict[str, dict]:
    """Per backend: ``{"modelled_counters": ..., "cache_model": {...}}`` for a profile record, from
    ``traces``: backend -> (warm-up Trace, counted Trace, seconds the trace took).

    ``ll`` is a fff.explain.cache_geometry.CacheLevel (default: this machine's LL from sysfs).
    """
    if ll is None:
        from fff.explain.cache_geometry import cache_geometry

        ll = cache_geometry().LL
    sizes = {**_machine_cache_sizes(), "LL (modelled)": ll.size}
    block = max(ll.line, min(block, ll.size // 64 // ll.line * ll.line))  # at least 64 blocks in a small what-if LL
    results = {}
    for backend, (warm, counted, trace_seconds) in traces.items():
        start = time.monotonic()
        results[backend] = {
            "modelled_counters": modelled_counters(warm, counted, ll.size, ll.line, block),
            "cache_model": {
                "source": "modelled", "method": counted.source, "caveat": MODEL_CAVEAT,
                "ll": {"size": ll.size, "assoc": ll.assoc, "line": ll.line, "note": ll.note,
                       "modelled_as": f"fully associative LRU of {block} B blocks"},
                "working_set": working_set(counted, sizes),
                "elapsed_s": round(trace_seconds + time.monotonic() - start, 3),
            },
        }
    return results


def record_fields(tracers: dict, artifacts: dict, *, precision: str | dict, cache: str | None, model,
                  extra_caches: tuple[str, ...] = ()) -> dict[str, dict]:
    """The builder child's hook (fff.builder): the model for one target, what-if LL included.
    ``tracers``: backend -> its Backend.cache_trace; ``precision``: one for all, or backend -> its own
    (an int8 stack beside a baseline that runs f32). A stack the model cannot trace says why
    (``not_modelled``); a model that fails is reported in the record, never fatal to the measurement.
    ``extra_caches``: further LL sizes ("machine" or what-if specs), each modelled from the same
    traces (tracing is the cost; streaming a trace through one more LRU is small) into each backend's
    ``ll_sizes`` by size."""
    from fff.backends.base import NotModelled
    from fff.errors import FffError
    from fff.explain.cache_geometry import MACHINE, cache_geometry, parse_cache_spec

    def level(spec):
        return parse_cache_spec(spec) if spec and spec != MACHINE else cache_geometry().LL

    try:
        ll = level(cache)
        traces, skipped = {}, {}
        for backend, trace in tracers.items():
            if backend not in artifacts:
                continue  # the stack does not run this target (a model file and a stack needing PyTorch)
            start = time.monotonic()
            try:
                own = precision.get(backend, "f32") if isinstance(precision, dict) else precision
                warm, counted = trace(model, artifacts[backend], own)
            except NotModelled as reason:
                skipped[backend] = str(reason)
                continue
            traces[backend] = (warm, counted, time.monotonic() - start)

        def not_modelled():  # a new dict each time: one shared by a record and its ll_sizes would be circular
            return {backend: {"cache_model": {"source": "modelled", "not_modelled": reason}}
                    for backend, reason in skipped.items()}

        fields = {**model_caches(traces, ll=ll), **not_modelled()}
        streamed = {backend: (warm, counted, 0.0) for backend, (warm, counted, _) in traces.items()}
        for extra in extra_caches:  # elapsed_s of a further size: its streaming alone (the trace is the record's)
            for backend, extra_fields in {**model_caches(streamed, ll=level(extra)), **not_modelled()}.items():
                if "cache_model" in extra_fields and "elapsed_s" in extra_fields["cache_model"]:
                    extra_fields["cache_model"]["elapsed_is"] = "streaming through this size's LRU; the trace is the record's own"
                fields[backend].setdefault("ll_sizes", {})[extra] = extra_fields
        return fields
    except (FffError, RuntimeError, ValueError) as error:
        return model_error([b for b in tracers if b in artifacts], error)


def model_error(backends, error: BaseException) -> dict[str, dict]:
    """What a record says when the model could not be computed."""
    return {b: {"cache_model": {"source": "modelled", "error": f"{type(error).__name__}: {error}"}} for b in backends}
