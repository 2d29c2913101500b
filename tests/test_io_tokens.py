"""Token-state archives (.npz): the fixture loads, every broken archive is one clear InputError."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fga_tui.io.errors import InputError
from fga_tui.io.tokens import load_tokens

FIXTURE = Path(__file__).parent / "fixtures" / "nacl.tokens.npz"


def save(path: Path, **arrays: object) -> Path:
    np.savez(path, **arrays)
    return path


def good(n: int = 3, d: int = 4) -> dict:
    return {
        "tokens": np.array(["[CLS]", "na", "[SEP]", "x", "y"][:n]),
        "embeddings": np.arange(n * d, dtype=np.float32).reshape(n, d),
        "mask": np.ones(n, dtype=np.int64),
    }


def error_of(path: Path) -> str:
    with pytest.raises(InputError) as info:
        load_tokens(path)
    message = str(info.value)
    assert str(path) in message
    return message


def test_fixture_has_36_tokens_768_wide() -> None:
    ts = load_tokens(FIXTURE)
    assert ts.length == 36
    assert ts.tokens[:3] == ("[CLS]", "na", "##cl") and ts.tokens[-1] == "[SEP]"
    assert ts.embeddings.shape == (36, 768) and ts.embeddings.dtype == np.float32
    assert ts.mask.dtype == bool and ts.mask.all()
    assert ts.source == FIXTURE


def test_mask_is_optional_and_defaults_to_all_real(tmp_path: Path) -> None:
    arrays = good()
    del arrays["mask"]
    ts = load_tokens(save(tmp_path / "t.npz", **arrays))
    assert ts.mask.tolist() == [True, True, True]


def test_padding_mask_and_float64_and_bytes_tokens_are_accepted(tmp_path: Path) -> None:
    arrays = good()
    arrays["mask"] = np.array([1, 1, 0])
    arrays["embeddings"] = arrays["embeddings"].astype(np.float64)
    arrays["tokens"] = np.array([b"[CLS]", b"na", b"[PAD]"])
    ts = load_tokens(save(tmp_path / "t.npz", **arrays))
    assert ts.mask.tolist() == [True, True, False]
    assert ts.embeddings.dtype == np.float32
    assert ts.tokens == ("[CLS]", "na", "[PAD]")


def test_missing_file(tmp_path: Path) -> None:
    assert "does not exist" in error_of(tmp_path / "none.npz")


def test_not_an_npz(tmp_path: Path) -> None:
    path = tmp_path / "t.npz"
    path.write_text("hello, not a zip")
    assert "not an .npz archive" in error_of(path)


def test_a_single_npy_array_is_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "t.npy"
    np.save(path, np.ones(3))
    assert "not an .npz archive" in error_of(path)


def test_pickled_file_is_refused_not_unpickled(tmp_path: Path) -> None:
    import pickle

    path = tmp_path / "evil.npz"
    path.write_bytes(pickle.dumps({"tokens": ["a"]}))
    assert "not an .npz archive" in error_of(path)


def test_object_array_is_refused(tmp_path: Path) -> None:
    arrays = good()
    arrays["tokens"] = np.array(["[CLS]", "na", "[SEP]"], dtype=object)
    message = error_of(save(tmp_path / "t.npz", **arrays))
    assert "object array" in message and "unpickle" in message


@pytest.mark.parametrize("key", ["tokens", "embeddings"])
def test_missing_key(tmp_path: Path, key: str) -> None:
    arrays = good()
    del arrays[key]
    message = error_of(save(tmp_path / "t.npz", **arrays))
    assert "missing key" in message and key in message


@pytest.mark.parametrize(
    ("change", "phrase"),
    [
        ({"embeddings": np.ones((2, 4), np.float32)}, "shape mismatch"),
        ({"mask": np.ones(4)}, "shape mismatch"),
        ({"embeddings": np.ones((3,), np.float32)}, "2-D [L, D]"),
        ({"embeddings": np.ones((3, 4), np.int32)}, "floating point"),
        ({"tokens": np.array([["a", "b", "c"]])}, "1-D"),
        ({"tokens": np.array([1, 2, 3])}, "must be strings"),
        ({"mask": np.zeros(3)}, "mask is all zero"),
        ({"mask": np.array([1, 2, 1])}, "only 0 and 1"),
        ({"mask": np.array(["1", "1", "1"])}, "numeric 0/1"),
    ],
)
def test_bad_arrays(tmp_path: Path, change: dict, phrase: str) -> None:
    arrays = good()
    arrays.update(change)
    assert phrase in error_of(save(tmp_path / "t.npz", **arrays))


def test_non_finite_embeddings(tmp_path: Path) -> None:
    for bad in (np.nan, np.inf):
        arrays = good()
        arrays["embeddings"][1, 2] = bad
        message = error_of(save(tmp_path / "t.npz", **arrays))
        assert "NaN or inf" in message and "token 1" in message


def test_float64_overflowing_float32_is_non_finite(tmp_path: Path) -> None:
    arrays = good()
    arrays["embeddings"] = arrays["embeddings"].astype(np.float64)
    arrays["embeddings"][0, 0] = 1e300
    assert "NaN or inf" in error_of(save(tmp_path / "t.npz", **arrays))


def test_zero_tokens(tmp_path: Path) -> None:
    arrays = {"tokens": np.array([], dtype=str), "embeddings": np.zeros((0, 4), np.float32)}
    assert "L = 0" in error_of(save(tmp_path / "t.npz", **arrays))


def test_directory_is_not_a_token_file(tmp_path: Path) -> None:
    assert "is a directory" in error_of(tmp_path)
