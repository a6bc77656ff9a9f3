"""ONNX export of Functional and raw-text models: the largest onnxruntime-vs-PyTorch difference of each.

Builds the models of ``tests/export/test_onnx_functional.py`` (stacked Bidirectional LSTMs, two inputs sharing
an Embedding, an encoder-decoder with return_state/initial_state, attention, merges with a nested model) and
TextVectorization models in four option sets, exports each with ``to_onnx`` (which checks onnxruntime
against PyTorch on padded inputs before writing) and prints the measured difference, the ONNX operators and,
for the text models, the difference between ``onnx_predictor(file).predict_proba`` on raw texts and
``model.predict``:

    python bench/onnx_functional_check.py
"""

from __future__ import annotations

import collections
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import torch

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    sys.path.insert(0, str(ROOT / "tests" / "export"))
    import test_onnx_functional as cases

    import lstmtext
    from lstmtext import layers
    from lstmtext.export import onnx_predictor, to_onnx

    print(f"lstmtext {lstmtext.__version__}, torch {torch.__version__}, onnx {onnx.__version__}")
    print("| model | inputs -> outputs | max abs diff (to_onnx check) | LSTM ops | ops in all |")
    print("|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for make in (cases._bilstm, cases._shared_embedding, cases._encoder_decoder, cases._attention,
                     cases._merges_and_nested):
            torch.manual_seed(0)
            model, _ = make()
            result = to_onnx(model, Path(tmp) / "m.onnx")
            ops = collections.Counter(n.op_type for n in onnx.load(str(result.path)).graph.node)
            print(f"| {make.__name__.strip('_')} | {len(model.inputs)} -> {len(model.outputs)} | "
                  f"{result.max_abs_diff:.2e} | {ops['LSTM']} | {sum(ops.values())} |")
        print()
        print("| TextVectorization options | max abs diff (to_onnx check) | raw texts: onnx_predictor vs predict |")
        print("|---|---|---|")
        texts = cases.TEXTS + ["an unseen wordzz", "GOOD, good!"]
        for options in ({"output_sequence_length": 12}, {"ngrams": 2, "standardize": "lower", "max_tokens": 40},
                        {"output_mode": "tf_idf"}, {"split": "character", "output_mode": "count"}):
            torch.manual_seed(0)
            tv = layers.TextVectorization(**options)
            tv.adapt(cases.TEXTS)
            inp = lstmtext.Input(shape=(1,), dtype="string")
            x = tv(inp)
            if tv.output_mode == "int":
                x = layers.LSTM(4)(layers.Embedding(tv.vocabulary_size(), 8, mask_zero=True)(x))
            model = lstmtext.Model(inp, layers.Dense(1, activation="sigmoid")(x))
            result = to_onnx(model, Path(tmp) / "text.onnx")
            got = onnx_predictor(result.path).predict_proba(texts)[:, 1]
            want = model.predict(np.array(texts), verbose=0)[:, 0]
            print(f"| `{options}` | {result.max_abs_diff:.2e} | {float(np.abs(got - want).max()):.2e} |")


if __name__ == "__main__":
    main()
