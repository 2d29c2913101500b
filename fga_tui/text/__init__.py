"""Text side of a sample: the fork's normalisation and the token states the model attends over.

Importing this package is cheap: ``tokenizers``, ``transformers`` and ``torch`` are imported only
when a text encoder is actually loaded (see :mod:`fga_tui.text.encoders`).
"""

from fga_tui.text.normalize import load_vocab_mappings, normalize_text

__all__ = ["load_vocab_mappings", "normalize_text"]
