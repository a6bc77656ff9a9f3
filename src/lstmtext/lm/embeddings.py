"""An ``Embedding`` layer initialised from pretrained word vectors (GloVe, word2vec, fastText)."""

from __future__ import annotations

import os
from typing import Any

from lstmtext.layers import Embedding
from lstmtext.text.vectors import VectorCoverage, embedding_matrix


def pretrained_embedding(tokenizer: Any, path: str | os.PathLike[str], *, trainable: bool = False,
                         mask_zero: bool = False, missing: str = "zeros", name: str | None = None,
                         **kwargs: Any) -> tuple[Embedding, VectorCoverage]:
    """``Embedding(num_words, dim)`` holding the vectors of ``path`` for ``tokenizer``'s ids, as Keras's
    ``Embedding(..., embeddings_initializer=Constant(matrix), trainable=False)``.

    Args:
        tokenizer: the :class:`~lstmtext.text.Tokenizer` whose ids the layer will see (``num_words`` set).
        path: a GloVe ``.txt``, word2vec text or fastText ``.vec`` file, optionally ``.gz``.
        trainable: update the vectors in training (Keras's example freezes them).
        mask_zero, name, kwargs: as for :class:`~lstmtext.layers.Embedding`.
        missing: rows without a vector: ``"zeros"`` or ``"uniform"``.

    Returns:
        ``(layer, coverage)``: the built layer and how many vocabulary words had a vector.

    >>> layer, coverage = pretrained_embedding(tok, "glove.6B.100d.txt.gz")  # doctest: +SKIP
    >>> coverage.fraction  # doctest: +SKIP
    """
    matrix, coverage = embedding_matrix(tokenizer, path, missing=missing)
    layer = Embedding(matrix.shape[0], matrix.shape[1], mask_zero=mask_zero, trainable=trainable, name=name, **kwargs)
    layer.build((None, None))
    layer.set_weights([matrix])
    layer.trainable = trainable
    return layer, coverage
