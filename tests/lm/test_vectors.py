"""Pretrained word vectors: GloVe / word2vec / fastText text files (plain and gzip) into an Embedding."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
import torch

from lstmtext.errors import DataError
from lstmtext.lm.embeddings import pretrained_embedding
from lstmtext.text import Tokenizer
from lstmtext.text.vectors import embedding_matrix, read_word_vectors

VECTORS = {"the": [0.1, 0.2, 0.3], "movie": [1.0, -1.0, 0.5], "great": [0.0, 2.5, -0.25], "zebra": [9.0, 9.0, 9.0]}


def write_vectors(path, header: bool, gz: bool):
    lines = ([f"{len(VECTORS)} 3"] if header else []) + [f"{w} " + " ".join(map(str, v)) for w, v in VECTORS.items()]
    data = ("\n".join(lines) + "\n").encode()
    if gz:
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)
    return path


@pytest.mark.parametrize(("name", "header", "gz"), [("glove.txt", False, False), ("w2v.vec", True, False),
                                                    ("glove.txt.gz", False, True), ("ft.vec.gz", True, True)])
def test_formats_read_the_same_vectors(tmp_path, name, header, gz):
    vectors = read_word_vectors(write_vectors(tmp_path / name, header, gz), ["the", "great", "absent"])
    assert sorted(vectors) == ["great", "the"]
    np.testing.assert_array_equal(vectors["great"], np.array([0.0, 2.5, -0.25], dtype=np.float32))


def test_embedding_rows_follow_the_tokenizer_ids_and_report_coverage(tmp_path):
    tok = Tokenizer({"the": 1, "movie": 2, "was": 3, "great": 4}, num_words=7)
    layer, coverage = pretrained_embedding(tok, write_vectors(tmp_path / "v.txt", False, False))
    # ids 4, 5, 6 are the, movie, was; great (id 7) is past num_words
    assert (coverage.found, coverage.total, coverage.dimension) == (2, 3, 3) and coverage.missing_examples == ["was"]
    assert "2 of 3 words have a vector (66.7 %)" in str(coverage)
    ids = torch.tensor(tok.texts_to_sequences(["The movie was great"]))  # [[1, 4, 5, 6, 2]]
    out = layer(ids)[0]
    np.testing.assert_allclose(out[1].detach().numpy(), VECTORS["the"], rtol=1e-6)
    np.testing.assert_allclose(out[2].detach().numpy(), VECTORS["movie"], rtol=1e-6)
    assert out[3].abs().sum() == 0  # "was" has no vector: zeros
    assert not layer.trainable and not layer.embeddings.requires_grad
    matrix, _ = embedding_matrix(tok, tmp_path / "v.txt", missing="uniform")
    assert matrix.shape == (7, 3) and 0 < np.abs(matrix[6]).max() <= 0.05  # "was": uniform


def test_bad_vector_files_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("the 0.1 0.2 0.3\nmovie 0.1 0.2\n")
    with pytest.raises(DataError, match=r"bad.txt' line 2: 2 numbers, expected 3"):
        read_word_vectors(bad)
    bad.write_text("the 0.1 x 0.3\n")
    with pytest.raises(DataError, match="line 1: the vector of 'the' holds a value that is not a number"):
        read_word_vectors(bad)
    with pytest.raises(DataError, match="no such file"):
        read_word_vectors(tmp_path / "missing.txt")
    tok = Tokenizer({"alpha": 1}, num_words=5)
    with pytest.raises(DataError, match="none of the 1 vocabulary words has a vector"):
        embedding_matrix(tok, write_vectors(tmp_path / "v.txt", False, False))
