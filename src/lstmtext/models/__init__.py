"""Models with Keras's API (``from lstmtext.models import Sequential, load_model``)."""

from lstmtext.models.saving import load_model
from lstmtext.models.sequential import Input, InputLayer, Sequential

__all__ = ["Input", "InputLayer", "Sequential", "load_model"]
