"""Keras-style dataset modules: ``from lstmtext.datasets import imdb`` like ``from keras.datasets import imdb``."""

from lstmtext.datasets import imdb

__all__ = ["imdb"]
