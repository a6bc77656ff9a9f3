"""``keras.preprocessing.sequence`` for lstmtext: ``pad_sequences`` (see `lstmtext.data.sequence`)."""

from lstmtext.data.sequence import pad_sequences

__all__ = ["pad_sequences"]
