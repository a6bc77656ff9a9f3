"""Keras-style preprocessing modules: ``from lstmtext.preprocessing.sequence import pad_sequences``."""

from lstmtext.preprocessing import sequence

__all__ = ["sequence"]
