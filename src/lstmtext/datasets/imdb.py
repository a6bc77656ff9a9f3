"""``keras.datasets.imdb`` for lstmtext: ``load_data`` and ``get_word_index`` (see `lstmtext.data.imdb`)."""

from lstmtext.data.imdb import get_tokenizer, get_word_index, load_data

__all__ = ["get_tokenizer", "get_word_index", "load_data"]
