"""Training: the Keras loop (``compile``/``fit``/``evaluate``/``predict``), losses, metrics, optimizers, callbacks."""

from lstmtext.training.fit_config import FitConfig
from lstmtext.training.trainer import Trainer, TrainState

__all__ = ["FitConfig", "TrainState", "Trainer"]
