"""The bundled demo text encoder: a word-level tokenizer and a small frozen transformer.

Why it exists: the demo must run offline with no MatSciBERT download, yet the model needs
contextual token states like MatSciBERT's last hidden state. This encoder is a stand-in with the
same contract (``encode(text) -> TokenStates``, [CLS] first, [SEP] last), small enough to ship:
a vocabulary of the words the demo descriptions use, a token embedding, sinusoidal positions and
1-2 ``nn.TransformerEncoderLayer`` (post-norm, no dropout), randomly initialised from a seed and
never trained (frozen, like the fork's MatSciBERT).

Files (no pickles): ``<dir>/encoder.json`` (format, widths, vocabulary) and ``<dir>/encoder.npz``
(the module's state_dict as float32 arrays). The packaged copy lives in ``fga_tui/data/demo/``.

Tokenizer: lower-case; a token is a hyphen/slash/underscore compound (``pm-3m``, ``p4_2/mnm``,
``12-coordinate``), a decimal number (``2.91``), a run of letters and digits (``ba``,
``ba4hfli``), or any other single non-space character (``(``, ``.``, ``–``, ``å``). Words outside
the vocabulary become ``[UNK]``; the returned tokens are the vocabulary's (what the model saw).
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from fga_tui.io.errors import InputError
from fga_tui.io.types import TokenStates

FORMAT = "fga-tui.demo-encoder/1"
PAD, UNK, CLS, SEP = "[PAD]", "[UNK]", "[CLS]", "[SEP]"
SPECIALS = (PAD, UNK, CLS, SEP)
MAX_LENGTH = 512  # as the fork's tokenizer: longer texts are truncated, [SEP] kept last
CONFIG_FILE = "encoder.json"
WEIGHTS_FILE = "encoder.npz"

_TOKEN_RE = re.compile(r"[a-z0-9]+(?:[-/_][a-z0-9]+)+|\d+\.\d+|[a-z0-9]+|[^\sa-z0-9]")


def packaged_dir() -> Path:
    """``fga_tui/data/demo`` inside the installed package."""
    return Path(str(resources.files("fga_tui").joinpath("data/demo")))


def tokenize(text: str) -> list[str]:
    """Word-level tokens of ``text`` (lower-cased, no special tokens)."""
    return _TOKEN_RE.findall(text.lower())


def build_vocabulary(texts: Iterable[str], extra: Iterable[str] = ()) -> list[str]:
    """Special tokens, then every token of ``texts`` and ``extra``, most frequent first (ties
    alphabetical), so the same texts always give the same vocabulary."""
    counts: Counter[str] = Counter()
    for text in texts:
        counts.update(tokenize(text))
    for word in extra:
        counts.update(tokenize(word))
    words = sorted((w for w in counts if w not in SPECIALS), key=lambda w: (-counts[w], w))
    return [*SPECIALS, *words]


def sinusoidal_positions(length: int, width: int) -> torch.Tensor:
    """The transformer paper's fixed position code [length, width] (no parameters to ship)."""
    pos = torch.arange(length, dtype=torch.float32)[:, None]
    div = torch.exp(torch.arange(0, width, 2, dtype=torch.float32) * (-math.log(10000.0) / width))
    pe = torch.zeros(length, width)
    pe[:, 0::2] = torch.sin(pos * div)
    pe[:, 1::2] = torch.cos(pos * div[: width // 2])
    return pe


class _Transformer(nn.Module):
    def __init__(self, vocab_size: int, width: int, layers: int, heads: int, ff: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, width)
        self.layers = nn.ModuleList(
            nn.TransformerEncoderLayer(
                width, heads, ff, dropout=0.0, activation="gelu", batch_first=True
            )
            for _ in range(layers)
        )

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        x = self.embedding(ids) + sinusoidal_positions(ids.shape[1], self.embedding.embedding_dim)
        for layer in self.layers:
            x = layer(x)
        return x


class DemoTextEncoder:
    """Frozen word-level transformer: ``encode(text)`` gives [CLS] ... [SEP] token states."""

    def __init__(
        self,
        vocab: Sequence[str],
        config: dict[str, Any],
        module: nn.Module,
        source: Path | None = None,
    ) -> None:
        if list(vocab[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"vocabulary must start with {SPECIALS}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}
        self.config = dict(config)
        self.module = module.eval().requires_grad_(False)
        self.source = source

    @property
    def width(self) -> int:
        return int(self.config["width"])

    @classmethod
    def create(
        cls,
        vocab: Sequence[str],
        *,
        width: int = 64,
        layers: int = 2,
        heads: int = 4,
        ff: int | None = None,
        seed: int = 0,
    ) -> DemoTextEncoder:
        """A new encoder, randomly initialised from ``seed`` (global RNG state is untouched)."""
        config = {
            "format": FORMAT,
            "width": width,
            "layers": layers,
            "heads": heads,
            "ff": ff or 2 * width,
            "seed": seed,
        }
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            module = _Transformer(len(vocab), width, layers, heads, config["ff"])
        return cls(vocab, config, module)

    @classmethod
    def load(cls, directory: str | Path | None = None) -> DemoTextEncoder:
        """Load ``encoder.json`` and ``encoder.npz`` from ``directory`` (default: packaged)."""
        d = Path(directory) if directory is not None else packaged_dir()
        try:
            meta = json.loads((d / CONFIG_FILE).read_text(encoding="utf-8"))
            with np.load(d / WEIGHTS_FILE, allow_pickle=False) as npz:
                state = {k: torch.from_numpy(npz[k].copy()) for k in npz.files}
        except (OSError, ValueError) as exc:
            raise InputError(d, f"not a demo text encoder directory ({exc})") from None
        if meta.get("format") != FORMAT:
            raise InputError(d / CONFIG_FILE, f"format is {meta.get('format')!r}, not {FORMAT!r}")
        vocab = meta.pop("vocab")
        module = _Transformer(len(vocab), meta["width"], meta["layers"], meta["heads"], meta["ff"])
        module.load_state_dict(state, strict=True)
        return cls(vocab, meta, module, source=d)

    def save(self, directory: str | Path) -> Path:
        """Write ``encoder.json`` and ``encoder.npz`` (float32, no pickles) into ``directory``."""
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        meta = {**self.config, "vocab": self.vocab}
        (d / CONFIG_FILE).write_text(json.dumps(meta, indent=0) + "\n", encoding="utf-8")
        arrays = {
            k: v.detach().cpu().numpy().astype(np.float32)
            for k, v in self.module.state_dict().items()
        }
        np.savez_compressed(d / WEIGHTS_FILE, **arrays)
        return d

    def tokens(self, text: str) -> list[str]:
        """``[CLS]``, the text's tokens (``[UNK]`` outside the vocabulary), ``[SEP]``."""
        words = [w if w in self.index else UNK for w in tokenize(text)]
        return [CLS, *words[: MAX_LENGTH - 2], SEP]

    def encode(self, text: str) -> TokenStates:
        """Token states of one text: embeddings float32 [L, width], mask all True."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[TokenStates]:
        """Token states of several texts, each unpadded (texts are encoded one by one, so a
        text's states never depend on what it was batched with)."""
        out = []
        for text in texts:
            toks = self.tokens(text)
            ids = torch.tensor([[self.index[t] for t in toks]])
            with torch.no_grad():
                states = self.module(ids)[0].numpy().astype(np.float32)
            out.append(
                TokenStates(
                    tokens=tuple(toks),
                    embeddings=np.ascontiguousarray(states),
                    mask=np.ones(len(toks), dtype=bool),
                    source=self.source,
                )
            )
        return out


def save_token_states(states: TokenStates, path: str | Path) -> Path:
    """Write token states as the token ``.npz`` contract (README: tokens, embeddings, mask)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        tokens=np.array(states.tokens, dtype=str),
        embeddings=np.asarray(states.embeddings, dtype=np.float32),
        mask=np.asarray(states.mask, dtype=np.uint8),
    )
    return path
