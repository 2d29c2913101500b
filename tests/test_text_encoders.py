"""Text: the fork's normalisation, the local HF encoder, and where token states come from."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from fga_tui.io.errors import InputError
from fga_tui.io.tokens import load_tokens
from fga_tui.io.types import Sample, Structure, TokenStates
from fga_tui.text import normalize as norm
from fga_tui.text.encoders import (
    INSTALL_HINT,
    NEEDS_TEXT_MESSAGE,
    HFTextEncoder,
    clear_encoder_cache,
    resolve_token_states,
)

FIXTURES = Path(__file__).parent / "fixtures"
ENCODER_DIR = FIXTURES / "text-encoder"
NACL_TEXT = json.loads((FIXTURES / "nacl.json").read_text())["text"]
NACL_TOKENS = FIXTURES / "nacl.tokens.npz"

TRICKY = [
    "Crème brûlée, Ångström, naïve façade",
    "tab\there\rcarriage\x00nul\x07bell\x0bvt\x0cff\x85nel",
    "zero\u200bwidth\u00a0nbsp\u2003em\u3000ideographic",
    "氧化物 oxide 钙钛矿 perovskite",
    "e\u0301\u0323 combining marks, \ufffd replacement, \ue000 private use",
    "Å° ½ − μm ≤ ≥ ∼ → Fm-3m P6_3/mmc",
    "ǅ İstanbul straße ﬁ",
    "",
]


# ------------------------------------------------------------------------------ normalisation


def test_nacl_text_normalises_to_the_forks_normalized_text() -> None:
    expected = str(np.load(FIXTURES / "nacl.expected.npz")["normalized_text"])
    assert norm.normalize_text(NACL_TEXT) == expected
    ascii_map = {chr(c): chr(c) for c in range(33, 127)}  # the fork's map is identity on ASCII
    assert norm.normalize_text(NACL_TEXT, ascii_map) == expected


@pytest.mark.parametrize("text", TRICKY)
def test_python_fallback_agrees_with_tokenizers(text: str) -> None:
    assert norm.bert_normalize(text, backend="python") == norm.bert_normalize(
        text, backend="tokenizers"
    )


def test_python_fallback_agrees_on_whole_unicode_blocks() -> None:
    blocks = [(0x0, 0x4FF), (0x2000, 0x22FF), (0x3000, 0x303F), (0x4E00, 0x4EFF), (0xFF00, 0xFFEF)]
    text = "".join(chr(c) for lo, hi in blocks for c in range(lo, hi + 1))
    assert norm.bert_normalize(text, backend="python") == norm.bert_normalize(
        text, backend="tokenizers"
    )


def test_normalisation_details_match_bert() -> None:
    line = norm.bert_normalize_python
    assert line("Crème\tbrûlée") == "Creme brulee"  # accents stripped, case kept, tab → space
    assert line("a\x00b\x07c\u200bd") == "abcd"  # NUL, control and format chars removed
    assert line("氧化") == " 氧  化 "  # CJK ideographs padded with spaces


def test_normalize_text_splits_lines_and_maps_unmapped_chars_to_space() -> None:
    mapping = {"a": "a", "b": "b", "½": "1/2", "−": "-"}
    assert norm.normalize_text("ab½c\nb−a", mapping) == "ab1/2 \nb-a"
    assert norm.normalize_text("ab c", None) == "ab c"


def test_without_tokenizers_the_python_path_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(norm, "_hf_normalizer", lambda: None)
    assert norm.normalize_text("Crème brûlée") == "Creme brulee"
    with pytest.raises(ImportError, match="fga-tui\\[text\\]"):
        norm.bert_normalize("x", backend="tokenizers")


def test_lone_surrogates_do_not_crash_the_tokenizers_path() -> None:
    assert norm.bert_normalize("a\ud800b", backend="tokenizers") == "ab"
    assert norm.bert_normalize("a\ud800b", backend="python") == "ab"


# ------------------------------------------------------------------------------ vocab mappings


def test_vocab_mappings_file_is_parsed_like_the_fork(tmp_path: Path) -> None:
    path = tmp_path / "vocab_mappings.txt"
    # multi-character values, a value of spaces, a repeated key (last wins), CRLF line ends
    path.write_bytes("ɛ ∈\r\n½ 1/2\r\n⅜  3/8 \r\nx x\r\nɛ e\r\n╱  \r\n".encode())
    mapping = norm.load_vocab_mappings(path)
    assert mapping == {"ɛ": "e", "½": "1/2", "⅜": " 3/8 ", "x": "x", "╱": ""}
    assert norm.normalize_text("x½⅜", mapping) == "x1/2 3/8 "


@pytest.mark.parametrize(
    ("content", "phrase"),
    [
        (b"a a\n\nb b\n", "line 2 is empty"),
        (b"   \n", "is empty"),
        (b"\xff a\n", "not UTF-8"),
    ],
)
def test_bad_vocab_mappings_files(tmp_path: Path, content: bytes, phrase: str) -> None:
    path = tmp_path / "map.txt"
    path.write_bytes(content)
    with pytest.raises(InputError, match=phrase) as info:
        norm.load_vocab_mappings(path)
    assert str(path) in str(info.value)


def test_missing_vocab_mappings_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist"):
        norm.load_vocab_mappings(tmp_path / "nope.txt")


# ------------------------------------------------------------------------------ HF encoder


def test_text_encoder_fixture_reproduces_nacl_tokens() -> None:
    ref = load_tokens(NACL_TOKENS)
    got = HFTextEncoder(ENCODER_DIR).encode(NACL_TEXT)
    assert got.tokens == ref.tokens
    assert got.embeddings.dtype == np.float32 and got.embeddings.shape == (36, 768)
    np.testing.assert_allclose(got.embeddings, ref.embeddings, atol=1e-5, rtol=0)
    assert got.mask.all() and got.source == ENCODER_DIR


def test_encode_batch_pads_to_the_longest() -> None:
    enc = HFTextEncoder(ENCODER_DIR)
    long, short = enc.encode_batch([NACL_TEXT, "NaCl is cubic."])
    assert long.length == short.length == 36
    assert short.mask.sum() == 7 and not short.mask[7:].any()
    assert short.tokens[:7] == ("[CLS]", "na", "##cl", "is", "cubic", ".", "[SEP]")
    assert set(short.tokens[7:]) == {"[PAD]"}
    alone = enc.encode("NaCl is cubic.")
    np.testing.assert_allclose(short.embeddings[:7], alone.embeddings, atol=1e-5)


def test_long_text_is_truncated_at_512_tokens() -> None:
    ts = HFTextEncoder(ENCODER_DIR).encode("salt " * 2000)
    assert ts.length == 512 and ts.tokens[0] == "[CLS]" and ts.tokens[-1] == "[SEP]"


def test_encoders_are_cached_per_directory_and_device() -> None:
    a, b = HFTextEncoder(ENCODER_DIR), HFTextEncoder(str(ENCODER_DIR) + "/")
    assert a.model is b.model
    assert not any(p.requires_grad for p in a.model.parameters())
    assert not a.model.training


def test_vocab_mappings_are_applied_by_the_encoder(tmp_path: Path) -> None:
    path = tmp_path / "map.txt"
    path.write_text("".join(f"{c} {c}\n" for c in "NaClisbubc.") + "½ cubic\n", encoding="utf-8")
    ts = HFTextEncoder(ENCODER_DIR, vocab_mappings=path).encode("NaCl is ½.")
    assert ts.tokens == ("[CLS]", "na", "##cl", "is", "cubic", ".", "[SEP]")


def test_missing_text_model_directory(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="does not exist") as info:
        HFTextEncoder(tmp_path / "matscibert")
    assert str(tmp_path / "matscibert") in str(info.value)


def test_directory_that_is_not_a_model(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not a transformers model directory") as info:
        HFTextEncoder(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_broken_model_directory(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text('{"model_type": "bert"}')
    with pytest.raises(InputError, match="could not load a text encoder") as info:
        HFTextEncoder(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_transformers_not_installed_says_to_install_the_text_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    clear_encoder_cache()
    monkeypatch.setitem(sys.modules, "transformers", None)  # makes `import transformers` fail
    with pytest.raises(InputError) as info:
        HFTextEncoder(ENCODER_DIR)
    assert str(ENCODER_DIR) in str(info.value)
    assert INSTALL_HINT in str(info.value)


# ------------------------------------------------------------------ resolve_token_states


def sample(text: str | None = NACL_TEXT, tokens: TokenStates | None = None) -> Sample:
    structure = Structure(np.eye(3) * 4.0, np.zeros((1, 3)), ("Na",))
    return Sample(id="s", structure=structure, text=text, tokens=tokens, source=Path("s.json"))


def own_tokens() -> TokenStates:
    return TokenStates(("[CLS]", "own", "[SEP]"), np.zeros((3, 768), np.float32), np.ones(3, bool))


def test_tokens_file_beats_everything(tmp_path: Path) -> None:
    ts = resolve_token_states(
        sample(tokens=own_tokens()),
        tokens_path=NACL_TOKENS,
        text_model=tmp_path / "missing",
        env={"FGA_TUI_TEXT_MODEL": str(tmp_path / "missing")},
    )
    assert ts.source == NACL_TOKENS and ts.length == 36


def test_sample_tokens_beat_text_model(tmp_path: Path) -> None:
    ts = resolve_token_states(sample(tokens=own_tokens()), text_model=tmp_path / "missing", env={})
    assert ts.tokens == ("[CLS]", "own", "[SEP]")


def test_text_model_beats_environment(tmp_path: Path) -> None:
    ts = resolve_token_states(
        sample(), text_model=ENCODER_DIR, env={"FGA_TUI_TEXT_MODEL": str(tmp_path / "missing")}
    )
    assert ts.source == ENCODER_DIR and ts.length == 36


def test_environment_variable_is_the_last_resort(tmp_path: Path) -> None:
    ts = resolve_token_states(sample(), env={"FGA_TUI_TEXT_MODEL": str(ENCODER_DIR)})
    assert ts.tokens == load_tokens(NACL_TOKENS).tokens
    with pytest.raises(InputError, match=r"\$FGA_TUI_TEXT_MODEL") as info:
        resolve_token_states(sample(), env={"FGA_TUI_TEXT_MODEL": str(tmp_path / "gone")})
    assert str(tmp_path / "gone") in str(info.value)


def test_no_token_source_for_a_text_checkpoint_is_an_error() -> None:
    with pytest.raises(InputError) as info:
        resolve_token_states(sample(), env={})
    assert str(info.value) == f"s.json: {NEEDS_TEXT_MESSAGE}"


def test_sample_without_text_but_an_encoder_requested() -> None:
    for text in (None, "  "):
        with pytest.raises(InputError, match="no text to encode") as info:
            resolve_token_states(sample(text=text), text_model=ENCODER_DIR, env={})
        assert "s.json" in str(info.value)


def test_graph_only_checkpoint_needs_no_tokens(tmp_path: Path) -> None:
    assert resolve_token_states(sample(), text_model=tmp_path / "missing", needs_text=False) is None
    ts = resolve_token_states(sample(), tokens_path=NACL_TOKENS, needs_text=False)
    assert ts is not None and ts.length == 36
