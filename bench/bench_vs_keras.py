"""Train the two reference models with lstmtext and with TF/Keras on identical padded data, side by side.

Models (as ``../shared/peers/keras_seed1.py`` and ``keras_seed2.py``):
    tutorial  Embedding(5000, 15) -> LSTM(10) -> Dense(1, sigmoid); maxlen 300, batch 128, 5 epochs,
              validation_split 0.2, Adam, binary cross-entropy, accuracy.
    stacked   Embedding(20000, 300) -> LSTM(128, seq) -> Dropout(.5) -> LSTM(64) -> Dropout(.5) -> Dense(1);
              len 200, batch 256, validation_split 0.2 (train on the first 20,000 reviews, validate on
              the last 5,000, as the peer), 2 epochs by default.

Both frameworks read the same padded ``int32`` arrays from one ``.npz`` built once by this script with the
peers' own ``load_data``/``pad_sequences`` (``../shared/peers/build_imdb_keras.py``; the Keras-format
``imdb_keras.npz`` is built from ``../shared/datasets/aclImdb_v1.tar.gz`` when missing). Every run prints one
JSON line: s/epoch (whole epoch, validation included, and the training part alone), ms/step, padded tokens/s,
test loss/accuracy on the 25,000 test reviews, and the time of ``predict`` on them.

Two ways to run it, from the repository root:

* one framework, one seed, in this process (the command to time from outside, e.g. with
  ``/usr/bin/time -v``)::

      PYTHONPATH=src python bench/bench_vs_keras.py run --framework lstmtext --model tutorial --seed 1
      ../venv-tf/bin/python bench/bench_vs_keras.py run --framework keras --model tutorial --seed 1

* the comparison: every seed of every round runs lstmtext and Keras as child processes in turn (alternating
  which goes first), and the table gives medians and the per-pair Keras/lstmtext ratios::

      PYTHONPATH=src python bench/bench_vs_keras.py compare --model tutorial --seeds 1 2 3 \
          --tf-python ../venv-tf/bin/python

Options of ``run`` for lstmtext only: ``--bucket`` trains with ``fit(bucket_by_length=True)`` (per-batch
padding; a different computation, reported apart from the identical-data comparison); ``--bf16`` runs
inside ``bfloat16_matmuls()`` (opt-in bfloat16 products of the large matrix multiplications). ``compare``
with either flag adds that lstmtext run to every pair, beside the float32 one. ``--tune`` makes every
lstmtext run call ``lstmtext.utils.tune_cpu_runtime()`` first, as the ``lstmtext`` command does (without it
lstmtext runs with torch's defaults).

This file needs only NumPy at import time, so the same script runs in the TF environment.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

MODELS = {
    "tutorial": dict(vocab=5000, maxlen=300, batch=128, epochs=5),
    "stacked": dict(vocab=20000, maxlen=200, batch=256, epochs=2),
}
VALIDATION_SPLIT = 0.2
VARIANTS = ("bucket", "bf16")  # extra lstmtext runs per pair (compare flags of the same names)


def repo_path(p: str | Path) -> Path:
    """A relative path is taken from the repository root (not the working directory); a ``../`` path that
    does not exist there is looked up from the folders above it too (a git worktree one level deeper)."""
    p = Path(p)
    if p.is_absolute():
        return p
    if p.parts and p.parts[0] == ".." and not (ROOT / p).exists():
        for base in ROOT.parents:
            if (base / p).exists():
                return base / p
    return ROOT / p


# ---- data -----------------------------------------------------------------------------------------------

def _peer_module(peers: Path):
    sys.path.insert(0, str(peers))
    try:
        import build_imdb_keras  # the peers' tokenizer rule and load_data mirror
    finally:
        sys.path.pop(0)
    return build_imdb_keras


def padded_data(model: str, peers: Path, archive: Path, cache: Path, keras_npz: Path | None = None) -> Path:
    """Path of the ``.npz`` with ``x_train, y_train, x_test, y_test`` padded for ``model``; built if missing."""
    spec = MODELS[model]
    out = cache / f"{model}_padded_{spec['vocab']}_{spec['maxlen']}.npz"
    if out.exists():
        return out
    cache.mkdir(parents=True, exist_ok=True)
    peer = _peer_module(peers)
    npz = keras_npz or cache / "imdb_keras.npz"
    if not npz.exists():
        print(f"building {npz} from {archive} with the peers' build script", file=sys.stderr, flush=True)
        tmp = npz.with_suffix(".tmp.npz")
        peer.build(str(archive), str(tmp), str(npz.with_name("imdb_word_index.json")))
        os.replace(tmp, npz)
    (x_train, y_train), (x_test, y_test) = peer.load_data(str(npz), num_words=spec["vocab"])
    arrays = dict(
        x_train=peer.pad_sequences(x_train, spec["maxlen"]), y_train=np.asarray(y_train),
        x_test=peer.pad_sequences(x_test, spec["maxlen"]), y_test=np.asarray(y_test),
    )
    tmp = out.with_suffix(".tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, out)
    return out


def load_padded(path: Path) -> dict[str, np.ndarray]:
    with np.load(path) as f:  # plain numeric arrays: no pickle
        return {k: f[k] for k in f.files}


# ---- one framework --------------------------------------------------------------------------------------

class _Clock:
    """Per-epoch wall time, split into the training part (to the last train batch) and validation."""

    def __init__(self) -> None:
        self.epochs: list[dict[str, float]] = []

    def epoch_begin(self) -> None:
        self.t0 = time.perf_counter()
        self.steps = 0
        self.train_end = self.t0

    def batch_end(self) -> None:
        self.steps += 1
        self.train_end = time.perf_counter()

    def epoch_end(self, logs: dict) -> None:
        now = time.perf_counter()
        self.epochs.append(dict(wall=now - self.t0, train=self.train_end - self.t0, steps=self.steps,
                                loss=float(logs["loss"]), accuracy=float(logs["accuracy"]),
                                val_accuracy=float(logs.get("val_accuracy", float("nan")))))


def build_keras(model: str):
    import keras
    from keras import layers

    if model == "tutorial":
        net = keras.Sequential([keras.Input((300,), dtype="int32"), layers.Embedding(5000, 15), layers.LSTM(10),
                                layers.Dense(1, activation="sigmoid")])
    else:
        net = keras.Sequential([keras.Input((200,), dtype="int32"), layers.Embedding(20000, 300),
                                layers.LSTM(128, return_sequences=True), layers.Dropout(0.5), layers.LSTM(64),
                                layers.Dropout(0.5), layers.Dense(1, activation="sigmoid")])
    net.compile(optimizer=keras.optimizers.Adam(), loss=keras.losses.BinaryCrossentropy(), metrics=["accuracy"])
    return net


def build_lstmtext(model: str):
    from lstmtext.layers import LSTM, Dense, Dropout, Embedding
    from lstmtext.losses import BinaryCrossentropy
    from lstmtext.models import Sequential
    from lstmtext.optimizers import Adam

    if model == "tutorial":
        net = Sequential([Embedding(5000, 15, input_length=300), LSTM(10), Dense(1, activation="sigmoid")])
    else:
        net = Sequential([Embedding(20000, 300), LSTM(128, return_sequences=True), Dropout(0.5), LSTM(64),
                          Dropout(0.5), Dense(1, activation="sigmoid")])
    net.compile(optimizer=Adam(), loss=BinaryCrossentropy(), metrics=["accuracy"])
    return net


def run_one(framework: str, model: str, seed: int, epochs: int, data_path: Path, bucket: bool,
            bf16: bool = False, tune: bool = False) -> dict:
    """Train, evaluate and predict with one framework; returns the measured figures.

    ``bf16`` (lstmtext only): everything inside ``lstmtext.kernels.bfloat16_matmuls()``, the opt-in bfloat16
    products of the large matrix multiplications (float32 weights, state and accumulation). ``tune``
    (lstmtext only): ``lstmtext.utils.tune_cpu_runtime()`` first, before torch is imported, as the ``lstmtext``
    command does and as README tells a training script to do.
    """
    if tune and framework == "lstmtext":
        from lstmtext.utils.runtime import tune_cpu_runtime

        tune_cpu_runtime()
    spec = MODELS[model]
    t_start = time.perf_counter()
    d = load_padded(data_path)
    clock = _Clock()
    fit_kwargs = dict(batch_size=spec["batch"], epochs=epochs, validation_split=VALIDATION_SPLIT, verbose=0)
    if framework == "keras":
        import keras
        import tensorflow as tf

        keras.utils.set_random_seed(seed)
        versions = {"tensorflow": tf.__version__, "keras": keras.__version__}

        class Hook(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch, logs=None):
                clock.epoch_begin()

            def on_train_batch_end(self, batch, logs=None):
                clock.batch_end()

            def on_epoch_end(self, epoch, logs=None):
                clock.epoch_end(logs)

        net = build_keras(model)
        threads = {"intra_op": tf.config.threading.get_intra_op_parallelism_threads(),
                   "inter_op": tf.config.threading.get_inter_op_parallelism_threads()}
    else:
        from lstmtext.callbacks import Callback
        from lstmtext.utils import set_random_seed

        torch = importlib.import_module("torch")

        set_random_seed(seed)
        versions = {"torch": torch.__version__}

        class Hook(Callback):  # type: ignore[no-redef]
            def on_epoch_begin(self, epoch, logs=None):
                clock.epoch_begin()

            def on_train_batch_end(self, batch, logs=None):
                clock.batch_end()

            def on_epoch_end(self, epoch, logs=None):
                clock.epoch_end(logs)

        net = build_lstmtext(model)
        threads = {"torch": torch.get_num_threads()}
        if bucket:
            fit_kwargs["bucket_by_length"] = True
    fit_kwargs["callbacks"] = [Hook()]
    precision = contextlib.nullcontext()
    if bf16:
        from lstmtext.kernels import bfloat16_matmuls

        precision = bfloat16_matmuls()
    with precision:
        return _measure(net, d, spec, fit_kwargs, clock, t_start, framework=framework, model=model, seed=seed,
                        epochs=epochs, bucket=bucket, bf16=bf16, tuned=tune, versions=versions, threads=threads)


def _measure(net, d: dict, spec: dict, fit_kwargs: dict, clock: _Clock, t_start: float, **info) -> dict:
    t_ready = time.perf_counter()
    cpu0 = time.process_time()
    net.fit(d["x_train"], d["y_train"], **fit_kwargs)
    t_fit = time.perf_counter() - t_ready
    cpu_fit = time.process_time() - cpu0
    t0 = time.perf_counter()
    test_loss, test_acc = net.evaluate(d["x_test"], d["y_test"], batch_size=spec["batch"], verbose=0)
    t_eval = time.perf_counter() - t0
    t0 = time.perf_counter()
    net.predict(d["x_test"], batch_size=spec["batch"], verbose=0)
    t_predict = time.perf_counter() - t0
    train_samples = int(np.floor(len(d["x_train"]) * (1 - VALIDATION_SPLIT)))
    tokens = train_samples * spec["maxlen"]  # padded tokens per epoch (what both frameworks read without bucketing)
    real_tokens = int(np.count_nonzero(d["x_train"][:train_samples]))
    ep = clock.epochs
    steady = ep[1:] if len(ep) > 1 else ep
    return dict(
        **info, setup_s=t_ready - t_start, fit_s=t_fit, fit_cpu_s=cpu_fit,
        s_per_epoch=t_fit / max(1, len(ep)),
        s_per_epoch_steady=statistics.median(e["wall"] for e in steady),
        train_s_per_epoch=statistics.median(e["train"] for e in steady),
        ms_per_step=1000 * statistics.median(e["train"] / e["steps"] for e in steady),
        tokens_per_s=tokens / statistics.median(e["train"] for e in steady),
        real_tokens_per_s=real_tokens / statistics.median(e["train"] for e in steady),
        epoch_walls=[round(e["wall"], 3) for e in ep], final_loss=ep[-1]["loss"], final_accuracy=ep[-1]["accuracy"],
        val_accuracy=ep[-1]["val_accuracy"], test_loss=float(test_loss), test_accuracy=float(test_acc),
        evaluate_s=t_eval, predict_s=t_predict, predict_samples=int(len(d["x_test"])),
    )


# ---- the comparison -------------------------------------------------------------------------------------

def _child(python: str, framework: str, args, data_path: Path, seed: int, bucket: bool = False,
           bf16: bool = False) -> dict:
    cmd = [python, str(Path(__file__).resolve()), "run", "--framework", framework, "--model", args.model,
           "--seed", str(seed), "--epochs", str(args.epochs), "--data", str(data_path)]
    cmd += ["--bucket"] * bucket + ["--bf16"] * bf16 + ["--tune"] * (framework == "lstmtext" and args.tune)
    env = dict(os.environ)
    if framework == "lstmtext":
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    load_before = os.getloadavg()[0]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    res = json.loads([ln for ln in proc.stdout.splitlines() if ln.startswith("{")][-1])
    res["load_avg"] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
    return res


def _fmt_row(r: dict) -> str:
    tags = "".join(f" +{t}" for t in (*VARIANTS, "tuned") if r.get(t))
    return (f"| {r['framework']}{tags} | {r['seed']} | {r['s_per_epoch']:.2f} | "
            f"{r['s_per_epoch_steady']:.2f} | {r['ms_per_step']:.1f} | {r['fit_cpu_s']:.1f} | "
            f"{r['tokens_per_s']:,.0f} | "
            f"{100 * r['test_accuracy']:.2f} | {r['predict_s']:.2f} | {r['load_avg'][0]:.1f}-{r['load_avg'][1]:.1f} |")


def compare(args) -> None:
    data_path = padded_data(args.model, repo_path(args.peers), repo_path(args.archive), repo_path(args.cache),
                            repo_path(args.keras_npz) if args.keras_npz else None)
    results: list[dict] = []
    print(f"# {args.model}: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"data {data_path.name}", flush=True)
    header = ("| framework | seed | s/epoch | s/epoch (steady) | ms/step | fit CPU s | tokens/s | test acc % | "
              "predict s | load avg |\n|---|---|---|---|---|---|---|---|---|---|")
    print(header, flush=True)
    pairs = []
    variants = [v for v in VARIANTS if getattr(args, v)]
    for rnd in range(args.rounds):
        for i, seed in enumerate(args.seeds):
            order = ["lstmtext", "keras"] if (rnd + i) % 2 == 0 else ["keras", "lstmtext"]
            pair = {}
            for fw in order:
                r = _child(sys.executable if fw == "lstmtext" else args.tf_python, fw, args, data_path, seed)
                r["round"] = rnd
                results.append(r)
                pair[fw] = r
                print(_fmt_row(r), flush=True)
            for variant in variants:
                r = _child(sys.executable, "lstmtext", args, data_path, seed, **{variant: True})
                r["round"] = rnd
                results.append(r)
                pair[variant] = r
                print(_fmt_row(r), flush=True)
            pairs.append(pair)
    print()
    ratio = {k: [p["keras"][k] / p["lstmtext"][k] for p in pairs]
             for k in ("s_per_epoch", "s_per_epoch_steady", "ms_per_step", "fit_cpu_s", "predict_s")}
    for v in variants:
        ratio.update({f"{k} (lstmtext +{v})": [p["keras"][k] / p[v][k] for p in pairs]
                      for k in ("s_per_epoch", "ms_per_step", "predict_s")})
    for k, v in ratio.items():
        print(f"Keras / lstmtext {k}: median {statistics.median(v):.2f}x, per pair "
              + ", ".join(f"{x:.2f}" for x in v))
    for fw in ["lstmtext", "keras", *variants]:
        rs = [p[fw] for p in pairs]
        print(f"{fw}: median s/epoch {statistics.median(r['s_per_epoch'] for r in rs):.2f}, ms/step "
              f"{statistics.median(r['ms_per_step'] for r in rs):.1f}, tokens/s "
              f"{statistics.median(r['tokens_per_s'] for r in rs):,.0f} (non-padding "
              f"{statistics.median(r['real_tokens_per_s'] for r in rs):,.0f}), fit CPU "
              f"{statistics.median(r['fit_cpu_s'] for r in rs):.1f} s, test accuracy "
              f"{100 * statistics.median(r['test_accuracy'] for r in rs):.2f} %, predict "
              f"{statistics.median(r['predict_s'] for r in rs):.2f} s")
    if args.json:
        out = repo_path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", choices=sorted(MODELS), default="tutorial")
    common.add_argument("--epochs", type=int, default=None, help="default: 5 (tutorial), 2 (stacked)")
    common.add_argument("--peers", default="../shared/peers", help="folder of build_imdb_keras.py")
    common.add_argument("--archive", default="../shared/datasets/aclImdb_v1.tar.gz")
    common.add_argument("--cache", default="out/bench", help="where the padded arrays are written")
    common.add_argument("--keras-npz", default=None, help="an existing imdb_keras.npz (else built in --cache)")
    r = sub.add_parser("run", parents=[common], help="train one framework, one seed, print one JSON line")
    r.add_argument("--framework", choices=["lstmtext", "keras"], required=True)
    r.add_argument("--seed", type=int, default=1)
    r.add_argument("--data", default=None, help="padded .npz (default: built in --cache)")
    r.add_argument("--bucket", action="store_true", help="lstmtext: fit(..., bucket_by_length=True)")
    r.add_argument("--bf16", action="store_true", help="lstmtext: inside bfloat16_matmuls() (opt-in bfloat16 products)")
    r.add_argument("--tune", action="store_true", help="lstmtext: tune_cpu_runtime() first, as the lstmtext command")
    c = sub.add_parser("compare", parents=[common], help="interleaved lstmtext vs Keras runs with ratios")
    c.add_argument("--seeds", type=int, nargs="+", default=[1])
    c.add_argument("--rounds", type=int, default=1)
    c.add_argument("--tf-python", default="../venv-tf/bin/python", help="python of an environment with TF/Keras")
    c.add_argument("--bucket", action="store_true", help="also run lstmtext with bucket_by_length=True")
    c.add_argument("--bf16", action="store_true", help="also run lstmtext inside bfloat16_matmuls() (opt-in)")
    c.add_argument("--tune", action="store_true", help="every lstmtext run calls tune_cpu_runtime() first")
    c.add_argument("--json", default=None, help="write every run's figures here")
    args = ap.parse_args(argv)
    args.epochs = args.epochs or MODELS[args.model]["epochs"]
    if args.cmd == "run":
        data = repo_path(args.data) if args.data else padded_data(
            args.model, repo_path(args.peers), repo_path(args.archive), repo_path(args.cache),
            repo_path(args.keras_npz) if args.keras_npz else None)
        if (args.bucket or args.bf16 or args.tune) and args.framework != "lstmtext":
            raise SystemExit("--bucket, --bf16 and --tune are lstmtext options")
        print(json.dumps(run_one(args.framework, args.model, args.seed, args.epochs, data, args.bucket,
                                    args.bf16, args.tune)), flush=True)
    else:
        if not Path(args.tf_python).is_absolute():
            args.tf_python = str(repo_path(args.tf_python))
        compare(args)


if __name__ == "__main__":
    main()
