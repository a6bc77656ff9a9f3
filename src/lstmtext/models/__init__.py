"""Models with Keras's API (``from lstmtext.models import Model, Sequential, load_model``)."""

from lstmtext.layers.input_layer import Input, InputLayer
from lstmtext.models.model import Functional, Model
from lstmtext.models.saving import load_model
from lstmtext.models.sequential import Sequential

__all__ = ["Functional", "Input", "InputLayer", "Model", "Sequential", "load_model"]
