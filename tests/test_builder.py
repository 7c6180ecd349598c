"""The builder child (build, FLOPs and conversion out of the main process) and the IR cache checksum."""

import os
import shutil
import textwrap

import pytest

from fff.backends import BUILTIN
from fff.builder import Builder
from fff.errors import FffError, UsageError, allocation_failure

pytestmark = pytest.mark.slow  # minutes on 2 cores: left out of the quick tier (pytest -m 'not slow')

TINY = "plain:depth=1,width=0.25,resolution=32"
STACKS = dict(BUILTIN)  # name -> module:Class, as fff.profiling passes them
FAULTS = textwrap.dedent("""
    import os, time
    import torch

    def hang():
        while True:
            time.sleep(1)

    def exits():
        os._exit(3)

    class Doubles(torch.nn.Module):
        input_shape = (1, 3, 8, 8)
        def forward(self, x):
            return 2 * x

    def doubles():
        return Doubles()

    def conv():
        return torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU())
""")


@pytest.fixture(scope="module")
def faults(tmp_path_factory):
    path = tmp_path_factory.mktemp("faults") / "faults.py"
    path.write_text(FAULTS)
    return path


@pytest.fixture(scope="module")
def builder():
    started = Builder()  # one child for the module's tests, as for a study's targets
    yield started
    started.close()


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def test_a_target_is_built_counted_and_converted_in_the_child(builder, tmp_path):
    from fff.models import build

    first = builder.prepare(TINY, {}, STACKS, cache_dir=tmp_path)
    expected = build(TINY)
    assert first.input_shape == (1, 3, 32, 32) and first.flops == expected.flops and first.params == expected.params
    ir, torch_side = first.artifacts["openvino"], first.artifacts["torch"]
    assert first.has_module and not ir["cached"] and ir["xml"].startswith(str(tmp_path))
    assert torch_side == {"cached": False, "notes": []}  # the baseline builds its module in its worker
    pid = builder.pid
    again = builder.prepare(TINY, {}, STACKS, cache_dir=tmp_path)
    assert again.artifacts["openvino"]["cached"] and again.artifacts["openvino"]["xml"] == ir["xml"]
    assert builder.pid == pid  # one child, reused


def test_a_hang_a_crash_and_an_allocation_failure_are_one_line_errors(builder, faults, tmp_path):
    builder.prepare(TINY, {}, STACKS, cache_dir=tmp_path)  # the child is up (torch imported): the limit times the build
    restarts, builder.timeout = builder.restarts, 3
    try:
        with pytest.raises(FffError) as hung:
            builder.prepare(f"{faults}:hang", {}, STACKS, cache_dir=tmp_path)
    finally:
        builder.timeout = None
    assert str(hung.value).startswith(f"{faults}:hang: builder worker did not answer 'build' within 3 s")
    assert "\n" not in str(hung.value)

    with pytest.raises(FffError, match=r"exits: builder worker died \(exit status 3\) during 'build'$"):
        builder.prepare(f"{faults}:exits", {}, STACKS, cache_dir=tmp_path)
    with pytest.raises(UsageError, match=r"^input too large: .* \(resolution 1000000\) needs 12,000 GB for one tensor"):
        builder.prepare(TINY, {"resolution": 1_000_000}, STACKS, cache_dir=tmp_path)
    assert builder.restarts == restarts + 2  # after the hang and the crash; a refused allocation keeps the child
    assert builder.prepare(f"{faults}:doubles", {}, STACKS, cache_dir=tmp_path).input_shape == (1, 3, 8, 8)


def test_allocation_failures_are_recognised():
    torch_refusal = RuntimeError("[enforce fail at alloc_cpu.cpp:127] data. DefaultCPUAllocator: can't allocate "
                                 "memory: you tried to allocate 12000000000000 bytes. Error code 12")
    assert allocation_failure(torch_refusal) == 12_000_000_000_000
    assert allocation_failure(MemoryError()) == 0
    assert allocation_failure(RuntimeError("shape mismatch")) is None


def test_the_child_is_replaced_when_its_memory_grows(tmp_path):
    builder = Builder(max_growth=-1)  # any growth at all: a new child after every target but the first
    try:
        builder.prepare(TINY, {}, STACKS, cache_dir=tmp_path)
        first = builder.pid
        builder.prepare(TINY, {}, STACKS, cache_dir=tmp_path)
        assert builder.pid is None and builder.restarts == 1  # closed: the next target starts a fresh one
        builder.prepare(TINY, {}, STACKS, cache_dir=tmp_path)
        assert builder.pid not in (None, first)
    finally:
        builder.close()


def test_the_main_process_memory_stays_flat_over_many_targets(builder, faults, tmp_path):
    """ov.convert_model in the main process kept ~14 MB per target (788 -> 1193 MB over 30); in the
    builder child the main process keeps nothing. 30 distinct targets (one conv at 30 input sizes,
    the smallest models that still go through tracing and conversion), each converted anew."""
    shapes = [{"input_shape": [1, 3, 8 + i, 8 + i]} for i in range(30)]
    for shape in shapes[:5]:
        builder.prepare(f"{faults}:conv", shape, STACKS, cache_dir=tmp_path)
    after_5 = _rss_bytes()
    for shape in shapes[5:]:
        assert not builder.prepare(f"{faults}:conv", shape, STACKS, cache_dir=tmp_path).artifacts["openvino"]["cached"]
    after_30 = _rss_bytes()
    assert after_30 - after_5 < 20e6, f"main process grew {(after_30 - after_5) / 1e6:.0f} MB over 25 targets"


# --- the IR cache verifies itself ------------------------------------------------------------------

def test_a_damaged_cache_entry_is_rebuilt_with_a_note(tmp_path):
    from fff.backends.openvino.conversion import CHECKSUM_NAME, is_cached, prepare_ir
    from fff.models import build

    model = build(TINY)
    first = prepare_ir(model, cache_dir=tmp_path)
    entry = first.xml.parent
    assert not first.cached and first.notes == ()
    listed = (entry / CHECKSUM_NAME).read_text().splitlines()
    assert [line.split()[1] for line in listed] == ["model.xml", "model.bin", "meta.json"]
    assert prepare_ir(model, cache_dir=tmp_path).cached

    good = (entry / "model.bin").read_bytes()
    (entry / "model.bin").write_bytes(os.urandom(len(good)))  # garbage of the same size
    assert not is_cached(model, cache_dir=tmp_path)
    rebuilt = prepare_ir(model, cache_dir=tmp_path)
    assert not rebuilt.cached and (entry / "model.bin").read_bytes() == good
    [note] = rebuilt.notes
    assert note == f"{model.name}: the cached IR in {entry} did not match its checksum (changed or damaged on disk); " \
                   f"converted afresh"

    (entry / CHECKSUM_NAME).unlink()  # an entry cut short before its checksum, or from an older fff
    assert "had no checksum" in prepare_ir(model, cache_dir=tmp_path).notes[0]
    assert prepare_ir(model, cache_dir=tmp_path).cached
    assert [p.name for p in tmp_path.iterdir()] == [entry.name]  # nothing left aside


def test_a_parity_failure_on_a_cached_ir_is_checked_again_from_a_fresh_conversion(tmp_path, monkeypatch):
    """A cache entry holding another model's IR, with a checksum that matches (a bug, a copy):
    the fresh conversion agrees, the entry is replaced, nothing is reported as a parity failure."""
    import fff.builder
    from fff.backends.artifact_cache import CHECKSUM_NAME, checksum
    from fff.backends.openvino.conversion import IR_FILES, prepare_ir
    from fff.models import build
    from fff.profiling import ProfileOptions, profile_target

    monkeypatch.setenv("FFF_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(fff.builder, "_shared", Builder())  # a child that sees this cache
    entry = prepare_ir(build(TINY)).xml.parent
    other = prepare_ir(build("plain:depth=1,width=0.5,resolution=32")).xml.parent  # same input and output shapes
    for name in ("model.xml", "model.bin"):
        shutil.copyfile(other / name, entry / name)
    (entry / CHECKSUM_NAME).write_text(checksum(entry, IR_FILES))

    lines = []
    try:
        records = profile_target(TINY, ProfileOptions(threads=1, max_seconds=0.3, min_rounds=1, warmup=1), lines.append)
    finally:
        fff.builder._shared.close()
    openvino = records[1]
    assert openvino["parity"]["ok"]
    assert any("the cached IR of OpenVINO gave outputs that disagree with PyTorch eager; made afresh" in w
               for w in openvino["warnings"])
    assert any(w.endswith("the fresh IR agrees with PyTorch eager") for w in openvino["warnings"])
    assert prepare_ir(build(TINY)).cached and (entry / "model.bin").read_bytes() != (other / "model.bin").read_bytes()
