"""How far apart are PyTorch and OpenVINO at f32, bf16 and f16, and how far apart is a wrong model?

    python bench/bench_parity_precision.py [--zoo mobilenet_v2,resnet18,shufflenet_v2_x1_0] [--depths 1,2]

For every design pattern (width 0.5, 32x32, each depth) and each zoo model (64x64) this runs
the two sides the way fff-profile does: PyTorch eager under ``torch.autocast("cpu", dtype)`` for
bf16/f16 (fff.backends.torch_eager.TorchBackend), OpenVINO through ``fff.Runner(xml, shape,
precision=p, threads=2)`` on the IR from ``fff.convert(fff.build(target))``, both on the profiler's
fixed-seed input. Per target and precision it prints max_rel_err (max |a - b| / max |reference|) of

  parity   OpenVINO(p) against PyTorch(p): what fff-profile's record checks
  ov/f32   OpenVINO(p) against PyTorch f32: what fff.check_parity(precision=p) checks
  pt/f32   PyTorch(p) against PyTorch f32: the framework's own rounding at p
  x1.05    OpenVINO(p) against PyTorch(p) with one weight tensor (the middle one of the model's
           weight tensors with more than one dimension) scaled by 1.05: a small real disagreement
  rolled   the same, with that tensor's output channels rolled by one instead: what a layout
           bug in a conversion looks like

then worst and median per precision, and what each side reports it computes in (the dtype of
PyTorch's output under autocast, OpenVINO's INFERENCE_PRECISION_HINT read back from the compiled
model).
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile

PRECISIONS = ("f32", "bf16", "f16")
COLUMNS = ("parity", "ov/f32", "pt/f32", "x1.05", "rolled")
DISAGREEMENTS = ("x1.05", "rolled")


def _torch_output(module, example, precision):
    import torch

    dtype = {"f32": None, "bf16": torch.bfloat16, "f16": torch.float16}[precision]
    with torch.inference_mode():
        if dtype is None:
            out = module(example)
        else:
            with torch.autocast("cpu", dtype=dtype):
                out = module(example)
    return out.float().numpy(), str(out.dtype).removeprefix("torch.")


def _perturbed(module, how: str):
    """A copy of ``module`` whose middle weight tensor is scaled by 1.05 or has its output channels rolled."""
    import torch

    wrong = copy.deepcopy(module)
    weights = [p for name, p in wrong.named_parameters() if p.dim() > 1]
    weight = weights[len(weights) // 2]
    with torch.no_grad():
        if how == "x1.05":
            weight.mul_(1.05)
        else:
            weight.copy_(torch.roll(weight.clone(), 1, dims=0))
    return wrong


def measure(target: str, resolution: int, cache_dir: str, threads: int) -> dict:
    import torch

    import fff
    from fff.backends.torch_eager import fixed_seed_input
    from fff.measure.parity import compare

    model = fff.build(target, resolution=resolution)
    module = model.module.eval()
    xml = fff.convert(model, cache_dir=cache_dir)
    example_np = fixed_seed_input(model.input_shape)
    example = torch.from_numpy(example_np)
    wrong_modules = {how: _perturbed(module, how) for how in DISAGREEMENTS}
    reference_f32, _ = _torch_output(module, example, "f32")
    row = {"errors": {}, "torch_dtype": {}, "ov_hint": {}}
    for precision in PRECISIONS:
        torch_out, torch_dtype = _torch_output(module, example, precision)
        wrong_outs = {how: _torch_output(wrong, example, precision)[0] for how, wrong in wrong_modules.items()}
        runner = fff.Runner(xml, model.input_shape, precision=precision, threads=threads)
        runner.set_inputs(example_np)
        runner.run(iterations=1, warmup=0)
        ov_out = runner.output(0).astype("float32")
        row["errors"][precision] = {
            "parity": compare(torch_out, ov_out).max_rel_err,
            "ov/f32": compare(reference_f32, ov_out).max_rel_err,
            "pt/f32": compare(reference_f32, torch_out).max_rel_err,
            **{how: compare(wrong_out, ov_out).max_rel_err for how, wrong_out in wrong_outs.items()},
        }
        row["torch_dtype"][precision] = torch_dtype
        row["ov_hint"][precision] = runner.effective_config.get("INFERENCE_PRECISION_HINT", "?")
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zoo", default="mobilenet_v2,resnet18,shufflenet_v2_x1_0,mobilenet_v3_large,"
                        "efficientnet_b0,mnasnet1_0,regnet_y_400mf,squeezenet1_1")
    parser.add_argument("--depths", default="1,2")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import openvino as ov
    import torch

    from fff.models import PATTERNS

    torch.set_num_threads(args.threads)
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    print(f"torch {torch.__version__}, openvino {ov.__version__}, CPU capabilities: {' '.join(capabilities)}")
    targets = [(f"{p}:depth={d},width=0.5", 32) for d in args.depths.split(",") if d for p in PATTERNS]
    targets += [(name, 64) for name in args.zoo.split(",") if name]

    header = f"{'target':<34}" + "".join(f" {p + ' ' + c:>12}" for p in PRECISIONS for c in COLUMNS)
    print(header)
    rows = {}
    with tempfile.TemporaryDirectory() as cache_dir:
        for target, resolution in targets:
            row = rows[target] = measure(target, resolution, cache_dir, args.threads)
            print(f"{target + f' @{resolution}':<34}"
                  + "".join(f" {row['errors'][p][c]:>12.3g}" for p in PRECISIONS for c in COLUMNS), flush=True)

    print("\nper precision over all targets (max_rel_err; for the disagreements the smallest, the one nearest to passing):")
    for precision in PRECISIONS:
        summary = []
        for column in COLUMNS:
            values = [row["errors"][precision][column] for row in rows.values()]
            if column in DISAGREEMENTS:
                summary.append(f"{column} min {min(values):.3g} median {statistics.median(values):.3g}")
            else:
                worst = max(rows, key=lambda t: rows[t]["errors"][precision][column])
                summary.append(f"{column} worst {max(values):.3g} ({worst}) median {statistics.median(values):.3g}")
        print(f"  {precision:>4}: " + "; ".join(summary))
    for precision in PRECISIONS:
        torch_dtypes = sorted({row["torch_dtype"][precision] for row in rows.values()})
        hints = sorted({row["ov_hint"][precision] for row in rows.values()})
        print(f"  {precision:>4} asked: PyTorch output dtype {'/'.join(torch_dtypes)}, "
              f"OpenVINO INFERENCE_PRECISION_HINT read back {'/'.join(hints)}")


if __name__ == "__main__":
    main()
