"""Keras-exact optimizers (``from lstmtext.optimizers import Adam``)."""

from lstmtext.training.optimizers import SGD, Adam, AdamW, Optimizer, RMSprop, get, serialize

__all__ = ["SGD", "Adam", "AdamW", "Optimizer", "RMSprop", "get", "serialize"]
