"""Where ``predict`` time goes: the whole pass, the shared leading padding skipped, and bfloat16 products.

Trains one reference model of ``bench_vs_keras.py`` (same data, seed, epochs and batch), then times
``predict`` on the 25,000 padded test reviews in four ways, alternated over ``--rounds`` rounds in this
process:

* ``whole f32``: every batch from step 0 (``model(batch)`` over the batches, what ``predict`` ran before it
  skipped the shared padding);
* ``predict f32``: ``model.predict`` (rows sorted by leading padding, each batch from the padding step its
  rows share, lstmtext.models.shared_padding);
* ``whole bf16`` / ``predict bf16``: the same inside ``bfloat16_matmuls()`` (opt-in; CPUs with native
  bfloat16 products only).

For each it prints the median time, the test accuracy, the share of test labels equal to the whole float32
pass's and the largest probability difference from it. Run from the repository root::

    PYTHONPATH=src python bench/bench_predict.py --model stacked --seed 2 --tune --cache DIR

(``DIR`` holds or receives ``bench_vs_keras.py``'s padded arrays; see its ``--cache`` and ``--keras-npz``.)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_vs_keras import MODELS, VALIDATION_SPLIT, build_lstmtext, load_padded, padded_data, repo_path


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", choices=sorted(MODELS), default="stacked")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--epochs", type=int, default=None, help="default: the model's bench_vs_keras epochs")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tune", action="store_true", help="lstmtext.utils.tune_cpu_runtime() first")
    p.add_argument("--peers", default="../shared/peers")
    p.add_argument("--archive", default="../shared/datasets/aclImdb_v1.tar.gz")
    p.add_argument("--cache", default="out/bench", help="where the padded arrays are (or are written)")
    p.add_argument("--keras-npz", default=None)
    p.add_argument("--json", default=None, help="also write the results here")
    args = p.parse_args(argv)
    if args.tune:
        from lstmtext.utils.runtime import tune_cpu_runtime

        tune_cpu_runtime()
    import torch

    from lstmtext.kernels import bfloat16_matmuls
    from lstmtext.kernels.strategies import bfloat16_supported
    from lstmtext.utils import set_random_seed

    spec = MODELS[args.model]
    data_path = padded_data(args.model, repo_path(args.peers), repo_path(args.archive), repo_path(args.cache),
                            repo_path(args.keras_npz) if args.keras_npz else None)
    d = load_padded(data_path)
    config = dict(model=args.model, seed=args.seed, epochs=args.epochs or spec["epochs"], batch=spec["batch"],
                  rounds=args.rounds, tuned=args.tune, torch=torch.__version__, threads=torch.get_num_threads(),
                  machine=platform.machine(), data=data_path.name)
    print("config:", json.dumps(config), flush=True)
    set_random_seed(args.seed)
    net = build_lstmtext(args.model)
    net.fit(d["x_train"], d["y_train"], batch_size=spec["batch"], epochs=config["epochs"],
            validation_split=VALIDATION_SPLIT, verbose=0)
    x, y = d["x_test"], d["y_test"]

    def whole() -> np.ndarray:
        net.eval()
        with torch.no_grad():
            return torch.cat([net(torch.from_numpy(x[i:i + spec["batch"]]), training=False)
                              for i in range(0, len(x), spec["batch"])]).numpy()

    def predict() -> np.ndarray:
        return net.predict(x, batch_size=spec["batch"], verbose=0)

    variants = {"whole f32": (whole, False), "predict f32": (predict, False)}
    if bfloat16_supported():
        variants.update({"whole bf16": (whole, True), "predict bf16": (predict, True)})
    times: dict[str, list[float]] = {k: [] for k in variants}
    outs: dict[str, np.ndarray] = {}
    for r in range(args.rounds):
        names = list(variants) if r % 2 == 0 else list(reversed(variants))
        for name in names:
            fn, bf16 = variants[name]
            with bfloat16_matmuls() if bf16 else contextlib.nullcontext():
                t0 = time.perf_counter()
                outs[name] = fn()
                times[name].append(time.perf_counter() - t0)
    ref = outs["whole f32"][:, 0] > 0.5
    results = {}
    print(f"| {args.model} seed {args.seed} | predict s (median of {args.rounds}) | test acc % | labels as whole f32 "
          "| max prob diff |")
    print("|---|---|---|---|---|")
    for name in variants:
        labels = outs[name][:, 0] > 0.5
        res = dict(seconds=statistics.median(times[name]), all_seconds=times[name],
                   test_accuracy=float(np.mean(labels == (y > 0.5))), agreement=float(np.mean(labels == ref)),
                   max_diff=float(np.abs(outs[name] - outs["whole f32"]).max()))
        results[name] = res
        print(f"| {name} | {res['seconds']:.2f} | {100 * res['test_accuracy']:.2f} | {100 * res['agreement']:.2f} % "
              f"| {res['max_diff']:.2e} |")
    if args.json:
        Path(args.json).write_text(json.dumps({"config": config, "results": results}, indent=1))


if __name__ == "__main__":
    main()
