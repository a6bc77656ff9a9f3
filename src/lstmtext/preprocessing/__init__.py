"""Keras-style preprocessing modules: ``from lstmtext.preprocessing.sequence import pad_sequences``,
``from lstmtext.preprocessing.text import Tokenizer``."""

from lstmtext.preprocessing import sequence, text

__all__ = ["sequence", "text"]
