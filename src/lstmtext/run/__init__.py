"""Training runs from typed configs: what ``lstmtext train``, ``evaluate`` and ``summary`` run.

>>> from lstmtext.run import resolve_run_config, train_from_config
>>> cfg = resolve_run_config("keras-imdb", overrides={"run": {"out": "runs/imdb"}})
>>> result = train_from_config(cfg)  # doctest: +SKIP
"""

from lstmtext.run.config import OutputConfig, RunConfig, resolve_run_config
from lstmtext.run.data import RunData, load_run_data
from lstmtext.run.train import RunResult, train_from_config

__all__ = ["OutputConfig", "RunConfig", "RunData", "RunResult", "load_run_data", "resolve_run_config",
           "train_from_config"]
