"""Language-model pretraining and ULMFiT-style fine-tuning on top of the lstmtext layers.

* :mod:`~lstmtext.lm.documents` and :mod:`~lstmtext.lm.corpus`: raw documents -> token-id shards on disk;
* :mod:`~lstmtext.lm.stream`: the BPTT batches over a token stream;
* :mod:`~lstmtext.lm.model`: :class:`LanguageModel` (AWD-LSTM: embedding, LSTM stack, adaptive softmax);
* :mod:`~lstmtext.lm.pretrain`: :func:`fit_language_model` with checkpoints and exact resume;
* :mod:`~lstmtext.lm.finetune`: the classifier built from a language model's encoder, discriminative
  learning rates, gradual unfreezing, slanted triangular / one-cycle schedules, chunked encoding.
"""

from lstmtext.lm.corpus import TokenCorpus, build_corpus
from lstmtext.lm.documents import iter_documents
from lstmtext.lm.model import AdaptiveSoftmax, LanguageModel, LMConfig
from lstmtext.lm.pretrain import (
    PretrainConfig,
    PretrainResult,
    evaluate_perplexity,
    fit_language_model,
    load_language_model,
)
from lstmtext.lm.schedule import one_cycle, slanted_triangular
from lstmtext.lm.stream import BPTTStream

__all__ = [
    "AdaptiveSoftmax",
    "BPTTStream",
    "LMConfig",
    "LanguageModel",
    "PretrainConfig",
    "PretrainResult",
    "TokenCorpus",
    "build_corpus",
    "evaluate_perplexity",
    "fit_language_model",
    "iter_documents",
    "load_language_model",
    "one_cycle",
    "slanted_triangular",
]
