"""Where a sample's text token states come from: a precomputed ``.npz`` or a local text encoder.

The fork runs MatSciBERT (frozen, eval, no_grad) on the normalised text and its fine-grained
attention reads the full last hidden state. fga-tui never downloads anything: a text encoder is a
LOCAL transformers model directory (``save_pretrained`` output), loaded with
``local_files_only=True``. ``transformers`` is optional (the ``text`` extra) and imported only here,
only when an encoder is actually needed.

``--text-model demo`` (or any directory holding a demo encoder's ``encoder.json`` +
``encoder.npz``) selects the bundled demo encoder (``fga_tui.text.demo_encoder``) instead: what
the demo checkpoints were trained with, so any text can be scanned with them offline. It reads the
raw text (no vocabulary mappings: it was trained without them).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from fga_tui.io.errors import InputError
from fga_tui.io.tokens import load_tokens
from fga_tui.io.types import Sample, TokenStates
from fga_tui.text.normalize import load_vocab_mappings, normalize_text

TEXT_MODEL_ENV = "FGA_TUI_TEXT_MODEL"
MAX_TOKENS = 512  # the fork's tokenizer: model_max_length=512, truncation=True
INSTALL_HINT = "pip install 'fga-tui[text]'"
NEEDS_TEXT_MESSAGE = (
    'this checkpoint needs text token states: pass --tokens FILE.npz, add a "tokens" field to '
    "the sample, or pass --text-model DIR (or set FGA_TUI_TEXT_MODEL) for a local MatSciBERT"
)

DEMO = "demo"

_CACHE: dict[tuple[str, str], tuple[Any, Any, int]] = {}
_DEMO_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.Lock()


def clear_encoder_cache() -> None:
    """Forget loaded encoders (frees their memory; the next use loads them again)."""
    with _CACHE_LOCK:
        _CACHE.clear()
        _DEMO_CACHE.clear()


def _demo_dir(spec: str | Path) -> Path | None:
    """The demo encoder directory ``spec`` names (``demo``: the packaged one), else None."""
    from fga_tui.text.demo_encoder import CONFIG_FILE, packaged_dir

    path = Path(spec)
    if str(spec) == DEMO and not path.exists():
        return packaged_dir()
    if path.is_dir() and (path / CONFIG_FILE).is_file() and not (path / "config.json").is_file():
        return path
    return None


def check_text_model(spec: str | Path) -> None:
    """A clear error now for a --text-model that can never load (before a long scan starts)."""
    if _demo_dir(spec) is not None:
        return
    path = Path(spec)
    if not path.exists():
        raise InputError(path, "text model directory does not exist")
    if not path.is_dir():
        raise InputError(path, "is a file; --text-model expects a model directory")
    if not (path / "config.json").is_file():
        raise InputError(
            path,
            "is not a transformers model directory (no config.json) nor a demo encoder "
            "(no encoder.json); pass a save_pretrained directory or 'demo'",
        )


def demo_encoder(directory: Path) -> Any:
    """The demo encoder of ``directory``, loaded once per process."""
    from fga_tui.text.demo_encoder import DemoTextEncoder

    key = str(directory.resolve())
    with _CACHE_LOCK:
        if key not in _DEMO_CACHE:
            _DEMO_CACHE[key] = DemoTextEncoder.load(directory)
        return _DEMO_CACHE[key]


def _brief(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 160 else text[:157] + "..."


def _load_hf(model_dir: Path, device: str) -> tuple[Any, Any, int]:
    """(tokenizer, frozen eval model, max length), cached per (resolved dir, device)."""
    if not model_dir.exists():
        raise InputError(model_dir, "text model directory does not exist")
    if not model_dir.is_dir():
        raise InputError(model_dir, "is a file; --text-model expects a model directory")
    if not (model_dir / "config.json").is_file():
        raise InputError(
            model_dir,
            "is not a transformers model directory (no config.json); expected a BERT-like model "
            "saved with save_pretrained (config.json, weights, tokenizer files)",
        )
    key = (str(model_dir.resolve()), str(device))
    with _CACHE_LOCK:
        if key not in _CACHE:
            _CACHE[key] = _load_uncached(model_dir, str(device))
        return _CACHE[key]


def _load_uncached(model_dir: Path, device: str) -> tuple[Any, Any, int]:
    try:
        import torch
        import transformers
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise InputError(
            model_dir, f"loading a text model needs the transformers package: {INSTALL_HINT}"
        ) from None
    hf_logging = transformers.utils.logging
    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    # Unused-weight warnings and loading bars would scribble over the terminal UI.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        model = AutoModel.from_pretrained(model_dir, local_files_only=True)
    except Exception as exc:  # any failure to load from an untrusted directory is the directory's
        raise InputError(
            model_dir, f"could not load a text encoder from this directory ({_brief(exc)})"
        ) from None
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()
    try:
        model = model.to(torch.device(device))
    except (RuntimeError, ValueError, TypeError) as exc:
        raise InputError(
            "--device", f"cannot put the text model on {device!r}: {_brief(exc)}"
        ) from None
    model.eval()
    model.requires_grad_(False)
    limits = [MAX_TOKENS, getattr(model.config, "max_position_embeddings", MAX_TOKENS)]
    tok_max = getattr(tokenizer, "model_max_length", None)
    if isinstance(tok_max, int) and 0 < tok_max < 10**6:  # HF's "no limit" is a huge int
        limits.append(tok_max)
    return tokenizer, model, int(min(limits))


class HFTextEncoder:
    """A frozen BERT-like text encoder from a local directory, run the way the fork runs MatSciBERT:
    normalise, tokenize (pad to the longest, truncate at 512), last hidden state under no_grad."""

    def __init__(
        self,
        model_dir: str | Path,
        device: str = "cpu",
        vocab_mappings: str | Path | Mapping[str, str] | None = None,
    ) -> None:
        self.model_dir = Path(model_dir)
        self.device = str(device)
        if vocab_mappings is None or isinstance(vocab_mappings, Mapping):
            self.mappings = vocab_mappings
        else:
            self.mappings = load_vocab_mappings(vocab_mappings)
        self.tokenizer, self.model, self.max_length = _load_hf(self.model_dir, self.device)

    def encode(self, text: str) -> TokenStates:
        """Token states of one text (no padding)."""
        return self.encode_batch([text])[0]

    def encode_batch(self, texts: Sequence[str]) -> list[TokenStates]:
        """Token states of several texts, padded to the longest like the fork's batches: every
        result has the same L, with ``mask`` False on the padding."""
        import torch

        if not texts:
            return []
        normed = [normalize_text(t, self.mappings) for t in texts]
        enc = self.tokenizer(
            normed,
            return_tensors="pt",
            padding=True,
            truncation=True,
            max_length=self.max_length,
        )
        inputs = {k: v.to(self.model.device) for k, v in enc.items()}
        with torch.no_grad():
            hidden = self.model(**inputs).last_hidden_state
        states = hidden.detach().to("cpu", torch.float32).numpy()
        ids = enc["input_ids"].numpy()
        masks = enc["attention_mask"].numpy().astype(bool)
        return [
            TokenStates(
                tokens=tuple(self.tokenizer.convert_ids_to_tokens(ids[b].tolist())),
                embeddings=np.ascontiguousarray(states[b]),
                mask=masks[b].copy(),
                source=self.model_dir,
            )
            for b in range(len(texts))
        ]


def resolve_token_states(
    sample: Sample,
    *,
    tokens_path: str | Path | None = None,
    text_model: str | Path | None = None,
    env: Mapping[str, str] = os.environ,
    needs_text: bool = True,
    device: str = "cpu",
    vocab_mappings: str | Path | Mapping[str, str] | None = None,
) -> TokenStates | None:
    """Pick the token states for ``sample``.

    Precedence: ``--tokens FILE`` > the sample's own ``"tokens"`` field > ``--text-model DIR`` >
    ``$FGA_TUI_TEXT_MODEL``. Explicit token files are loaded (and so checked) even when the model
    does not read text; an encoder is only run when ``needs_text``. Returns None when the model
    needs no text and no token file was given. A ``vocab_mappings`` file is checked even when
    precomputed tokens leave it unused.
    """
    if vocab_mappings is not None and not isinstance(vocab_mappings, Mapping):
        vocab_mappings = load_vocab_mappings(vocab_mappings)
    if tokens_path is not None:
        return load_tokens(tokens_path)
    if sample.tokens is not None:
        return sample.tokens
    if not needs_text:
        return None
    where: str | Path = sample.source if sample.source is not None else f"sample {sample.id}"
    if text_model:
        model_dir, origin = Path(text_model), "--text-model"
    elif env.get(TEXT_MODEL_ENV):
        model_dir, origin = Path(env[TEXT_MODEL_ENV]), f"${TEXT_MODEL_ENV}"
    else:
        raise InputError(where, NEEDS_TEXT_MESSAGE)
    if sample.text is None or not sample.text.strip():
        raise InputError(
            where,
            f"the sample has no text to encode, but a text model was requested ({origin} "
            f'{model_dir}); add a "text" field or pass --tokens FILE.npz',
        )
    demo = _demo_dir(model_dir)
    if demo is not None:
        return demo_encoder(demo).encode(sample.text)
    try:
        encoder = HFTextEncoder(model_dir, device=device, vocab_mappings=vocab_mappings)
    except InputError as exc:
        if origin.startswith("$") and exc.path == str(model_dir):
            raise InputError(exc.path, f"{exc.reason} (from {origin})") from None
        raise
    return encoder.encode(sample.text)
