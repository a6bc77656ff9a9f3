"""Typed configs for a text-classification run (data, model, training) and the two reference presets.

* ``"keras-imdb"``: the Keras IMDB tutorial: Embedding(5000, 15) -> LSTM(10) -> Dense(1, sigmoid), Adam,
  binary cross-entropy, 300 tokens, batch 128, 5 epochs, ``validation_split=0.2`` (76,051 parameters).
* ``"stacked-imdb"``: the TF1 sentiment tutorial's LSTM stack built from a list of sizes: Embedding(20000,
  300) -> LSTM(128) -> Dropout(0.5) -> LSTM(64) -> Dropout(0.5) -> Dense(1, sigmoid), 200 tokens, batch 256.

>>> cfg = get_preset("keras-imdb")
>>> build_model(cfg.model, maxlen=cfg.data.maxlen).count_params()
76051
>>> build_stacked_lstm(lstm_sizes=(128, 64)).layers[1].units
128
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from typing import Any

from lstmtext.errors import ConfigError


def _positive_int(owner: str, name: str, value: Any, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{owner}.{name}: expected a positive integer, got {value!r}")


def _fraction(owner: str, name: str, value: Any) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and 0.0 <= value < 1.0
    if not ok:
        raise ConfigError(f"{owner}.{name}: expected a number in [0, 1), got {value!r}")


@dataclass
class DataConfig:
    """Where the reviews come from and how they become fixed-length id sequences."""

    archive: str | None = None
    """The data: an IMDB source (``aclImdb_v1.tar.gz``, ``aclImdb/``, ``imdb.npz``) or your own (a ``<label>/*.txt``
    folder, a ``.csv``/``.tsv`` or ``.jsonl`` file); None: ``$LSTMTEXT_IMDB_ARCHIVE``, else the downloaded archive."""
    num_words: int = 5000
    """Vocabulary size: ids of rarer words become the out-of-vocabulary id 2 (Keras's ``num_words``)."""
    maxlen: int = 300
    """Sequence length after ``pad_sequences`` (pre-padding and pre-truncation, Keras's defaults)."""
    padding: str = "pre"
    """Pad short reviews before (``"pre"``) or after (``"post"``) their words."""
    truncating: str = "pre"
    """Cut long reviews at the start (``"pre"``) or the end (``"post"``)."""
    text_column: str = "text"
    """Text column (CSV) or key (JSON lines) of your own data (not used for IMDB sources)."""
    label_column: str = "label"
    """Label column (CSV) or key (JSON lines) of your own data (not used for IMDB sources)."""
    test_split: float = 0.2
    """Fraction of your own data held out as the test split when it has no ``test/`` part (seed 113)."""

    def __post_init__(self) -> None:
        _positive_int("DataConfig", "num_words", self.num_words)
        _positive_int("DataConfig", "maxlen", self.maxlen)
        ok = isinstance(self.test_split, (int, float)) and not isinstance(self.test_split, bool)
        if not (ok and 0.0 < self.test_split < 1.0):
            raise ConfigError(f"DataConfig.test_split: expected a number in (0, 1), got {self.test_split!r}")
        for name in ("text_column", "label_column"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"DataConfig.{name}: expected a non-empty string, got {getattr(self, name)!r}")
        for name in ("padding", "truncating"):
            if getattr(self, name) not in ("pre", "post"):
                raise ConfigError(f"DataConfig.{name}: expected 'pre' or 'post', got {getattr(self, name)!r}")


@dataclass
class ModelConfig:
    """An Embedding -> LSTM stack -> Dense classifier (see :func:`build_stacked_lstm`)."""

    vocab_size: int = 5000
    """Rows of the embedding table; must cover every id (use ``DataConfig.num_words``)."""
    embedding_dim: int = 15
    """Size of each word vector."""
    lstm_sizes: tuple[int, ...] = (10,)
    """Units of each LSTM layer, first to last; all but the last return sequences."""
    dropout: float = 0.0
    """Dropout rate after each LSTM layer (0: no Dropout layers)."""
    mask_zero: bool = False
    """Treat id 0 as padding that the LSTMs skip (the reference tutorials do not)."""
    output_units: int = 1
    """Units of the final Dense layer (1 for binary sentiment)."""
    output_activation: str = "sigmoid"
    """Activation of the final Dense layer."""

    def __post_init__(self) -> None:
        _positive_int("ModelConfig", "vocab_size", self.vocab_size)
        _positive_int("ModelConfig", "embedding_dim", self.embedding_dim)
        _positive_int("ModelConfig", "output_units", self.output_units)
        self.lstm_sizes = tuple(self.lstm_sizes)
        if not self.lstm_sizes:
            raise ConfigError("ModelConfig.lstm_sizes: expected at least one LSTM size, got ()")
        for i, units in enumerate(self.lstm_sizes):
            _positive_int("ModelConfig", f"lstm_sizes[{i}]", units)
        _fraction("ModelConfig", "dropout", self.dropout)


@dataclass
class TrainConfig:
    """How the model is trained (the arguments of ``compile`` and ``fit``)."""

    optimizer: str = "adam"
    """Keras optimizer name: ``adam``, ``adamw``, ``sgd`` or ``rmsprop``."""
    learning_rate: float = 0.001
    """Optimizer step size."""
    loss: str = "binary_crossentropy"
    """Keras loss name."""
    metrics: tuple[str, ...] = ("accuracy",)
    """Keras metric names."""
    batch_size: int = 128
    """Samples per optimizer step."""
    epochs: int = 5
    """Passes over the training data."""
    validation_split: float = 0.2
    """Fraction held out from the end of the training data (before shuffling)."""
    shuffle: bool = True
    """Reshuffle the training samples every epoch."""
    seed: int | None = None
    """Seed of every random draw (weights, dropout, shuffling); None leaves the generators as they are."""

    def __post_init__(self) -> None:
        from lstmtext.training import optimizers

        by_lower = {k.lower() for k in optimizers.OPTIMIZER_CLASSES}
        if self.optimizer.lower() not in by_lower:
            raise ConfigError(f"TrainConfig.optimizer: expected one of {sorted(by_lower)}, got {self.optimizer!r}")
        if not isinstance(self.learning_rate, (int, float)) or not self.learning_rate > 0:
            raise ConfigError(f"TrainConfig.learning_rate: expected a positive number, got {self.learning_rate!r}")
        _positive_int("TrainConfig", "batch_size", self.batch_size)
        _positive_int("TrainConfig", "epochs", self.epochs)
        _fraction("TrainConfig", "validation_split", self.validation_split)
        if self.seed is not None and (not isinstance(self.seed, int) or self.seed < 0):
            raise ConfigError(f"TrainConfig.seed: expected a non-negative integer or None, got {self.seed!r}")
        self.metrics = tuple(self.metrics)

    def make_optimizer(self) -> Any:
        """The optimizer object (Keras defaults besides the learning rate)."""
        from lstmtext.training import optimizers

        cls = {k.lower(): v for k, v in optimizers.OPTIMIZER_CLASSES.items()}[self.optimizer.lower()]
        return cls(learning_rate=self.learning_rate)


@dataclass
class ExperimentConfig:
    """A whole run: data, model and training."""

    name: str = "custom"
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def __post_init__(self) -> None:
        if self.model.vocab_size < self.data.num_words:
            raise ConfigError(
                f"ModelConfig.vocab_size ({self.model.vocab_size}) must be at least DataConfig.num_words "
                f"({self.data.num_words}), or some ids have no embedding"
            )

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (tuples become lists)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ExperimentConfig:
        """Inverse of :meth:`to_dict`; unknown fields are an error naming them."""
        parts: dict[str, Any] = {}
        for key, sub in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
            values = dict(d.get(key, {}))
            known = {f.name for f in dataclasses.fields(sub)}
            unknown = sorted(set(values) - known)
            if unknown:
                raise ConfigError(f"{sub.__name__}: unknown field(s) {unknown}; known: {sorted(known)}")
            parts[key] = sub(**values)
        extra = sorted(set(d) - {"name", "data", "model", "train"})
        if extra:
            raise ConfigError(f"ExperimentConfig: unknown field(s) {extra}")
        return cls(name=d.get("name", "custom"), **parts)


PRESETS: dict[str, ExperimentConfig] = {
    "keras-imdb": ExperimentConfig(
        name="keras-imdb",
        data=DataConfig(num_words=5000, maxlen=300),
        model=ModelConfig(vocab_size=5000, embedding_dim=15, lstm_sizes=(10,)),
        train=TrainConfig(batch_size=128, epochs=5, validation_split=0.2),
    ),
    "stacked-imdb": ExperimentConfig(
        name="stacked-imdb",
        data=DataConfig(num_words=20000, maxlen=200),
        model=ModelConfig(vocab_size=20000, embedding_dim=300, lstm_sizes=(128, 64), dropout=0.5),
        train=TrainConfig(batch_size=256, epochs=3, validation_split=0.2),
    ),
    # For `lstmtext train --init-from LMDIR` (ULMFiT fine-tuning of an `lstmtext pretrain --preset imdb-cpu` model):
    # reviews keep up to 1,000 words (read in BPTT chunks), 5 epochs in ULMFiT's 4 unfreezing stages.
    "imdb-pretrained": ExperimentConfig(
        name="imdb-pretrained",
        data=DataConfig(num_words=30000, maxlen=1000),
        model=ModelConfig(vocab_size=30000, embedding_dim=200, lstm_sizes=(512, 200), mask_zero=True),
        train=TrainConfig(batch_size=32, epochs=5, validation_split=0.0),
    ),
}


def get_preset(name: str) -> ExperimentConfig:
    """A fresh copy of a named preset (``"keras-imdb"`` or ``"stacked-imdb"``)."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; expected one of {sorted(PRESETS)}")
    return copy.deepcopy(PRESETS[name])


def build_stacked_lstm(vocab_size: int = 20000, embedding_dim: int = 300, lstm_sizes: tuple[int, ...] = (128, 64),
                       dropout: float = 0.5, maxlen: int | None = None, mask_zero: bool = False,
                       output_units: int = 1, output_activation: str = "sigmoid") -> Any:
    """An LSTM stack from a list of sizes (the TF1 tutorial's model) as a plain :class:`Sequential`.

    ``Embedding(vocab_size, embedding_dim)``, then for each size an ``LSTM`` (returning sequences
    except the last) followed by ``Dropout(dropout)`` when ``dropout > 0``, then ``Dense(output_units)``.

    Args:
        vocab_size: rows of the embedding table.
        embedding_dim: size of each word vector.
        lstm_sizes: units of each LSTM layer.
        dropout: rate of the Dropout after each LSTM (0: none).
        maxlen: fix the input length (builds the model now, so ``summary()`` shows shapes).
        mask_zero: let id 0 be padding that the LSTMs skip.
        output_units, output_activation: the final Dense layer.

    Returns:
        A :class:`~lstmtext.models.Sequential` (built when ``maxlen`` is given).
    """
    cfg = ModelConfig(vocab_size=vocab_size, embedding_dim=embedding_dim, lstm_sizes=tuple(lstm_sizes),
                      dropout=dropout, mask_zero=mask_zero, output_units=output_units,
                      output_activation=output_activation)
    return build_model(cfg, maxlen=maxlen)


def build_model(cfg: ModelConfig, maxlen: int | None = None) -> Any:
    """The :class:`~lstmtext.models.Sequential` a :class:`ModelConfig` describes."""
    from lstmtext.layers import LSTM, Dense, Dropout, Embedding
    from lstmtext.models import Sequential

    _positive_int("build_model", "maxlen", maxlen, allow_none=True)
    layers: list[Any] = [Embedding(cfg.vocab_size, cfg.embedding_dim, mask_zero=cfg.mask_zero, input_length=maxlen)]
    for i, units in enumerate(cfg.lstm_sizes):
        layers.append(LSTM(units, return_sequences=i < len(cfg.lstm_sizes) - 1))
        if cfg.dropout > 0:
            layers.append(Dropout(cfg.dropout))
    layers.append(Dense(cfg.output_units, activation=cfg.output_activation))
    return Sequential(layers)
