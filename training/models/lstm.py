"""LSTM models: a word-level language model and a spoken-command classifier over log-mel frames.

Both hold their recurrent part in ``self.rnn``, an ``nn.LSTM`` that the ``tensor_train``
recipe replaces by a :class:`~proxcompress.training.tensor_train.TTLSTM` (MPS, MPO or low-rank
matrices); everything else stays dense.

* :class:`LSTMLanguageModel` (``model.name: lstm-lm``, with ``data.name: kjv``):
  ``tokens -> Embedding(V, E) -> dropout -> LSTM(E, H, layers) -> dropout -> adaptive softmax``.
  The output layer is the adaptive softmax of Grave, Joulin, Cisse, Grangier, Jegou (ICML 2017;
  ``nn.AdaptiveLogSoftmaxWithLoss``): a head over the ``cutoffs[0]`` most frequent words plus
  one entry per tail cluster, tail clusters of smaller dimension (``H / 4^i``). It is an exact,
  normalized distribution over the whole vocabulary (perplexity is exact), at a fraction of the
  full softmax's cost -- on two CPU cores the full ``H x V`` softmax took 80% of a training step.
  Time-major: ``forward(tokens (T, B), hx, targets) -> (hidden (T, B, H), hx, mean NLL)``.
* :class:`SpeechLSTM` (``model.name: speech-lstm``, with ``data.name: speech``): the
  ``(1, n_mels, frames)`` log-mel input as a sequence of frames, ``frame_stack`` consecutive
  frames concatenated (stride ``frame_stack``: 351 frames of 40 mels -> 117 of 120 at 3),
  ``LSTM(n_mels * frame_stack, H, layers)``, the mean of the top layer's outputs over time, a
  linear classifier.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

from proxcompress.errors import InvalidInputError
from proxcompress.training.models.base import ChannelUnit, ModelSpec, PrunableModel


@dataclass(frozen=True)
class LSTMOptions:
    """The ``model.lstm`` options (see :class:`~proxcompress.training.config.LSTMConfig`)."""

    embedding: int = 256
    hidden: int = 256
    layers: int = 1
    dropout: float = 0.2
    cutoffs: tuple[int, ...] = (1000, 4000)
    div_value: float = 4.0
    frame_stack: int = 3

    @classmethod
    def from_spec(cls, spec: ModelSpec) -> LSTMOptions:
        raw: Mapping[str, Any] = spec.options.get("lstm", {}) or {}
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise InvalidInputError(f"model.lstm.{unknown[0]}", "unknown option; accepted: "
                                    f"{', '.join(sorted(known))}")
        values: dict[str, Any] = {k: (tuple(v) if k == "cutoffs" else v)
                                  for k, v in raw.items()}
        return cls(**values)


class LSTMLanguageModel(PrunableModel):
    """Word-level LSTM language model with an adaptive softmax (module docstring).

    Args:
        vocab: vocabulary size ``V``.
        embedding: the word vectors' size ``E``.
        hidden: the LSTM's hidden size ``H``.
        layers: LSTM layers.
        dropout: dropout on the LSTM's input and output (and between layers).
        cutoffs: the adaptive softmax's cluster boundaries (increasing, below ``V``; ``[]``:
            a full softmax over ``V``).
        div_value: the tail clusters' dimension divisor.
    """

    def __init__(self, vocab: int, embedding: int = 256, hidden: int = 256, layers: int = 1,
                 dropout: float = 0.2, cutoffs: Sequence[int] = (1000, 4000),
                 div_value: float = 4.0) -> None:
        super().__init__()
        cut = [int(c) for c in cutoffs]
        if vocab < 2 or embedding < 1 or hidden < 1 or layers < 1:
            raise InvalidInputError("model.lstm", f"vocabulary {vocab}, embedding {embedding}, "
                                    f"hidden {hidden}, layers {layers}: need V >= 2, others >= 1")
        cut = [c for c in cut if c < vocab]  # a small vocabulary (the sample) drops clusters
        if cut != sorted(set(cut)) or (cut and cut[0] < 1):
            raise InvalidInputError("model.lstm.cutoffs", f"= {list(cutoffs)}; accepted: "
                                    "increasing integers in [1, vocabulary)")
        self.vocab = vocab
        self.hidden_size = hidden
        self.embed = nn.Embedding(vocab, embedding)
        self.drop = nn.Dropout(dropout)
        self.rnn: nn.Module = nn.LSTM(embedding, hidden, layers,
                                      dropout=dropout if layers > 1 else 0.0)
        self.out = nn.AdaptiveLogSoftmaxWithLoss(hidden, vocab, cut, div_value=div_value) \
            if cut else None
        self.decoder = nn.Linear(hidden, vocab) if not cut else None
        nn.init.uniform_(self.embed.weight, -0.1, 0.1)

    def forward(self, tokens: Tensor, hx: tuple[Tensor, Tensor] | None = None,
                targets: Tensor | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor], Tensor | None]:
        """``tokens`` ``(T, B)`` -> ``(hidden (T, B, H), (h_n, c_n), mean NLL of targets or
        None)`` (the loss inside the forward pass, so data parallelism sees every
        parameter)."""
        h, state = self.rnn(self.drop(self.embed(tokens)), hx)
        hidden = self.drop(h)
        return hidden, state, None if targets is None else self.nll(hidden, targets)

    def nll(self, hidden: Tensor, targets: Tensor) -> Tensor:
        """Mean negative log-likelihood (nats) of ``targets`` given ``hidden`` (same leading
        shape)."""
        flat = hidden.reshape(-1, self.hidden_size)
        if self.out is not None:
            return self.out(flat, targets.reshape(-1)).loss
        return nn.functional.cross_entropy(self.decoder(flat), targets.reshape(-1))  # type: ignore[misc]

    def log_prob(self, hidden: Tensor) -> Tensor:
        """Log-probabilities ``(..., V)`` of the next token."""
        flat = hidden.reshape(-1, self.hidden_size)
        out = self.out.log_prob(flat) if self.out is not None \
            else torch.log_softmax(self.decoder(flat), -1)  # type: ignore[misc]
        return out.reshape(*hidden.shape[:-1], self.vocab)

    def units(self) -> list[ChannelUnit]:
        return []


class SpeechLSTM(PrunableModel):
    """LSTM classifier over log-mel frames (module docstring).

    Args:
        n_mels: mel bands per frame.
        classes: output classes.
        hidden: the LSTM's hidden size.
        layers: LSTM layers.
        dropout: the LSTM's inter-layer dropout.
        frame_stack: consecutive frames concatenated into one step.
    """

    def __init__(self, n_mels: int, classes: int, hidden: int = 256, layers: int = 1,
                 dropout: float = 0.0, frame_stack: int = 3) -> None:
        super().__init__()
        if min(n_mels, hidden, layers, frame_stack) < 1 or classes < 2:
            raise InvalidInputError("model.lstm", f"n_mels {n_mels}, hidden {hidden}, layers "
                                    f"{layers}, frame_stack {frame_stack}, classes {classes}: "
                                    "need >= 1 (classes >= 2)")
        self.frame_stack = frame_stack
        self.rnn: nn.Module = nn.LSTM(n_mels * frame_stack, hidden, layers, batch_first=True,
                                      dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden, classes)

    def forward(self, x: Tensor) -> Tensor:
        """``x`` ``(N, 1, n_mels, frames)`` -> logits ``(N, classes)``."""
        frames = x.flatten(1, -2).transpose(1, 2)  # (N, frames, mels)
        k = self.frame_stack
        steps = frames.shape[1] // k
        seq = frames[:, : steps * k].reshape(frames.shape[0], steps, -1)
        out, _ = self.rnn(seq)
        return self.head(out.mean(1))

    def units(self) -> list[ChannelUnit]:
        return []


def build_language_model(spec: ModelSpec) -> LSTMLanguageModel:
    """``model.name: lstm-lm`` (``model.lstm``; the vocabulary is ``spec.classes``)."""
    o = LSTMOptions.from_spec(spec)
    return LSTMLanguageModel(spec.classes, o.embedding, o.hidden, o.layers, o.dropout,
                             o.cutoffs, o.div_value)


def build_speech(spec: ModelSpec) -> SpeechLSTM:
    """``model.name: speech-lstm`` (``model.lstm``; 40 mel bands per frame)."""
    o = LSTMOptions.from_spec(spec)
    n_mels = int(spec.options.get("n_mels", 40))
    return SpeechLSTM(n_mels, spec.classes, o.hidden, o.layers, o.dropout, o.frame_stack)


__all__ = ["LSTMLanguageModel", "LSTMOptions", "SpeechLSTM", "build_language_model",
           "build_speech"]
