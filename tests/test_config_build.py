"""The config a checkpoint implies: read from its config, inferred from its weights, validated."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import torch

from fga_tui.io.checkpoint import RawCheckpoint, load_checkpoint
from fga_tui.io.errors import InputError
from fga_tui.model.config import FIELD_NAMES, ModelConfig
from fga_tui.model.config_build import config_from_checkpoint, infer_fields


@pytest.fixture(scope="module")
def fork_raw(fork_ckpt: Path) -> RawCheckpoint:
    return load_checkpoint(fork_ckpt)


def _without_config(raw: RawCheckpoint) -> RawCheckpoint:
    return dataclasses.replace(raw, config=None, config_source=None)


def _with_config(raw: RawCheckpoint, **changes: object) -> RawCheckpoint:
    return dataclasses.replace(raw, config={**(raw.config or {}), **changes})


def upstream_state_dict(
    hidden: int = 32,
    embedding: int = 16,
    alignn_layers: int = 2,
    gcn_layers: int = 1,
    outputs: int = 1,
    log_link: bool = False,
) -> dict[str, torch.Tensor]:
    """Upstream ALIGNN's state_dict names and shapes (alignn.md §2), built without DGL."""
    sd: dict[str, torch.Tensor] = {}

    def linear(prefix: str, out: int, inp: int) -> None:
        sd[f"{prefix}.weight"] = torch.randn(out, inp)
        sd[f"{prefix}.bias"] = torch.randn(out)

    def batchnorm(prefix: str, c: int) -> None:
        for name, value in (
            ("weight", torch.ones(c)),
            ("bias", torch.zeros(c)),
            ("running_mean", torch.zeros(c)),
            ("running_var", torch.ones(c)),
        ):
            sd[f"{prefix}.{name}"] = value
        sd[f"{prefix}.num_batches_tracked"] = torch.tensor(0)

    def mlp(prefix: str, inp: int, out: int) -> None:
        linear(f"{prefix}.layer.0", out, inp)
        batchnorm(f"{prefix}.layer.1", out)

    def eggc(prefix: str) -> None:
        for gate in ("src_gate", "dst_gate", "edge_gate"):
            linear(f"{prefix}.{gate}", hidden, hidden)
        batchnorm(f"{prefix}.bn_edges", hidden)
        for update in ("src_update", "dst_update"):
            linear(f"{prefix}.{update}", hidden, hidden)
        batchnorm(f"{prefix}.bn_nodes", hidden)

    mlp("atom_embedding", 92, hidden)
    sd["edge_embedding.0.centers"] = torch.linspace(0, 8, 80)
    mlp("edge_embedding.1", 80, embedding)
    mlp("edge_embedding.2", embedding, hidden)
    sd["angle_embedding.0.centers"] = torch.linspace(-1, 1, 40)
    mlp("angle_embedding.1", 40, embedding)
    mlp("angle_embedding.2", embedding, hidden)
    for i in range(alignn_layers):
        eggc(f"alignn_layers.{i}.node_update")
        eggc(f"alignn_layers.{i}.edge_update")
    for i in range(gcn_layers):
        eggc(f"gcn_layers.{i}")
    linear("fc", outputs, hidden)
    if log_link:
        sd["fc.bias"] = torch.tensor(math.log(0.7))
    return sd


def _raw(sd: dict[str, torch.Tensor], config: dict | None = None) -> RawCheckpoint:
    return RawCheckpoint(
        path=Path("ckpt.pt"),
        state_dict=sd,
        config=config,
        config_source="pickled config" if config is not None else None,
        layout="state_dict",
    )


# --- reading a config ----------------------------------------------------------------------


def test_fork_config_fields_are_read_and_the_rest_inferred(fork_raw: RawCheckpoint) -> None:
    config = config_from_checkpoint(fork_raw)
    assert config.multimodal and config.use_fine_grained_attention
    assert config.fusion_indices == (2,)
    assert config.text_hidden_dim == 768 and config.projection_dim == 64
    # Not in the fork's ALIGNNConfig: inferred from the weights or defaulted.
    assert set(config.inferred) == {
        "num_classes",
        "extra_features",
        "multimodal",
        "text_hidden_dim",
        "projection_dim",
    }
    assert config.unknown == {}


def test_unknown_config_fields_are_kept_not_applied(fork_raw: RawCheckpoint) -> None:
    config = config_from_checkpoint(_with_config(fork_raw, use_rope=True, fc_layers=2))
    assert config.unknown == {"use_rope": True, "fc_layers": 2}


def test_config_that_contradicts_the_weights_is_an_input_error(fork_raw: RawCheckpoint) -> None:
    raw = _with_config(fork_raw, hidden_features=256, embedding_features=64)
    with pytest.raises(InputError) as info:
        config_from_checkpoint(raw)
    message = str(info.value)
    assert str(fork_raw.path) in message
    assert "hidden_features is 256 in the config but 64 in the weights" in message
    assert "embedding_features is 64 in the config but 32" in message


def test_config_with_wrong_fusion_layers_is_an_input_error(fork_raw: RawCheckpoint) -> None:
    with pytest.raises(InputError, match="middle_fusion_layers is '1,3'"):
        config_from_checkpoint(_with_config(fork_raw, middle_fusion_layers="1,3"))


def test_config_field_of_the_wrong_type_is_an_input_error(fork_raw: RawCheckpoint) -> None:
    with pytest.raises(InputError, match="hidden_features='wide' is not a int"):
        config_from_checkpoint(_with_config(fork_raw, hidden_features="wide"))


def test_config_for_another_architecture_is_refused() -> None:
    with pytest.raises(InputError, match="alignn_atomwise"):
        config_from_checkpoint(_raw(upstream_state_dict(), {"name": "alignn_atomwise"}))


def test_fork_classification_checkpoint_keeps_classification(fork_raw: RawCheckpoint) -> None:
    config = config_from_checkpoint(_with_config(fork_raw, classification=True))
    assert config.classification and config.output_features == 1
    assert "classification" not in config.inferred


def test_upstream_classification_checks_num_classes_against_fc() -> None:
    sd = upstream_state_dict(outputs=3)
    config = config_from_checkpoint(
        _raw(
            sd, {"name": "alignn", "hidden_features": 32, "classification": True, "num_classes": 3}
        )
    )
    assert config.num_classes == 3 and not config.multimodal
    with pytest.raises(InputError, match="num_classes is 2"):
        config_from_checkpoint(_raw(sd, {"classification": True, "num_classes": 2}))


# --- head counts ---------------------------------------------------------------------------


def test_head_overrides_apply_over_a_config_and_are_recorded(fork_raw: RawCheckpoint) -> None:
    config = config_from_checkpoint(fork_raw, fga_heads=4, cm_heads=2)
    assert config.fine_grained_num_heads == 4 and config.cross_modal_num_heads == 2
    assert config.overridden == ("fine_grained_num_heads", "cross_modal_num_heads")
    assert not {"fine_grained_num_heads", "cross_modal_num_heads"} & set(config.inferred)
    plain = config_from_checkpoint(fork_raw)
    assert "fine_grained_num_heads" not in plain.inferred
    assert plain.overridden == ()


@pytest.mark.parametrize(
    ("kwargs", "option"),
    [
        ({"fga_heads": 5}, "--fga-heads"),
        ({"cm_heads": 3}, "--cm-heads"),
        ({"fga_heads": 0}, "--fga-heads"),
    ],
)
def test_head_count_must_divide_the_hidden_width(
    fork_raw: RawCheckpoint, kwargs: dict, option: str
) -> None:
    with pytest.raises(InputError) as info:
        config_from_checkpoint(fork_raw, **kwargs)
    assert info.value.path == option


def test_bad_head_count_in_a_config_names_the_file(fork_raw: RawCheckpoint) -> None:
    with pytest.raises(InputError, match="fine_grained_num_heads 6 does not divide") as info:
        config_from_checkpoint(_with_config(fork_raw, fine_grained_num_heads=6))
    assert info.value.path == str(fork_raw.path)


# --- inferring from the weights ------------------------------------------------------------


def test_fork_init_state_config_is_inferred(fixtures: Path) -> None:
    config = config_from_checkpoint(load_checkpoint(fixtures / "fork_init_state.pt"))
    assert config.hidden_features == 64 and config.embedding_features == 32
    assert config.alignn_layers == 4 and config.gcn_layers == 4
    assert config.multimodal and config.use_middle_fusion
    assert config.middle_fusion_layers == "2" and config.middle_fusion_hidden_dim == 128
    assert config.use_fine_grained_attention and config.fine_grained_hidden_dim == 64
    assert config.fine_grained_use_projection
    assert config.use_cross_modal_attention and config.cross_modal_hidden_dim == 64
    assert config.fine_grained_num_heads == 8 and config.cross_modal_num_heads == 4
    assert {"fine_grained_num_heads", "cross_modal_num_heads"} <= set(config.inferred)
    assert set(config.inferred) == FIELD_NAMES  # nothing was read from a config


def test_inferred_config_equals_the_real_one_on_every_inferable_field(
    fork_raw: RawCheckpoint,
) -> None:
    inferable, _ = infer_fields(fork_raw.state_dict)
    real = config_from_checkpoint(fork_raw).to_dict()
    inferred = config_from_checkpoint(_without_config(fork_raw)).to_dict()
    assert {k: inferred[k] for k in inferable} == {k: real[k] for k in inferable}
    assert set(inferable) >= {
        "alignn_layers",
        "gcn_layers",
        "atom_input_features",
        "edge_input_features",
        "triplet_input_features",
        "embedding_features",
        "hidden_features",
        "output_features",
        "link",
        "multimodal",
        "use_middle_fusion",
        "middle_fusion_layers",
        "middle_fusion_hidden_dim",
        "use_fine_grained_attention",
        "fine_grained_hidden_dim",
        "fine_grained_use_projection",
        "use_cross_modal_attention",
        "cross_modal_hidden_dim",
        "text_hidden_dim",
        "projection_dim",
    }


def test_fine_grained_without_projection_is_inferred(fork_raw: RawCheckpoint) -> None:
    sd = {
        k: v
        for k, v in fork_raw.state_dict.items()
        if "node_proj_in" not in k and "token_proj_in" not in k
    }
    config = config_from_checkpoint(_raw(sd))
    assert config.use_fine_grained_attention and not config.fine_grained_use_projection
    assert config.fine_grained_hidden_dim == 64


def test_multimodal_without_optional_modules_is_inferred(fork_raw: RawCheckpoint) -> None:
    dropped = ("fine_grained_attention.", "cross_modal_attention.", "middle_fusion_modules.")
    sd = {k: v for k, v in fork_raw.state_dict.items() if not k.startswith(dropped)}
    config = config_from_checkpoint(_raw(sd))
    assert config.multimodal
    assert not (
        config.use_fine_grained_attention
        or config.use_cross_modal_attention
        or config.use_middle_fusion
    )
    assert config.stage_names()[-1] == "gcn.3"


def test_upstream_state_dict_config_is_inferred() -> None:
    config = config_from_checkpoint(_raw(upstream_state_dict()))
    assert not config.multimodal
    assert (config.hidden_features, config.embedding_features) == (32, 16)
    assert (config.alignn_layers, config.gcn_layers) == (2, 1)
    assert (config.atom_input_features, config.edge_input_features) == (92, 80)
    assert config.triplet_input_features == 40 and config.output_features == 1
    assert config.link == "identity"
    assert {"link", "classification"} <= set(config.inferred)


def test_log_link_is_inferred_from_a_zero_dim_fc_bias() -> None:
    assert config_from_checkpoint(_raw(upstream_state_dict(log_link=True))).link == "log"


def test_state_dict_that_is_not_alignn_is_an_input_error() -> None:
    with pytest.raises(InputError, match="not an ALIGNN model"):
        config_from_checkpoint(_raw({"encoder.weight": torch.zeros(2, 2)}))


def test_hand_built_upstream_names_match_real_upstream_alignn(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    upstream = pytest.importorskip("alignn.models.alignn")
    # Only the readout needs DGL; the state_dict does not depend on it.
    monkeypatch.setattr(upstream, "AvgPooling", torch.nn.Identity)
    model = upstream.ALIGNN(
        upstream.ALIGNNConfig(
            name="alignn", hidden_features=32, embedding_features=16, alignn_layers=2, gcn_layers=1
        )
    )
    real = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    built = {k: tuple(v.shape) for k, v in upstream_state_dict().items()}
    assert real == built
    config = config_from_checkpoint(_raw(dict(model.state_dict())))
    assert (config.hidden_features, config.embedding_features) == (32, 16)
    assert (config.alignn_layers, config.gcn_layers, config.multimodal) == (2, 1, False)


# --- upstream layout with config.json ------------------------------------------------------


def test_upstream_state_dict_with_config_json(tmp_path: Path) -> None:
    path = tmp_path / "best_model.pt"
    torch.save(upstream_state_dict(hidden=64, embedding=32), path)
    model = {
        "name": "alignn",
        "hidden_features": 64,
        "embedding_features": 32,
        "alignn_layers": 2,
        "gcn_layers": 1,
        "link": "identity",
        "classification": False,
        "num_classes": 2,
        "extra_features": 0,
        "zero_inflated": False,
    }
    (tmp_path / "config.json").write_text(
        json.dumps({"version": "x", "epochs": 300, "model": model})
    )
    raw = load_checkpoint(path)
    assert raw.layout == "state_dict" and raw.config_source == "config.json"
    assert raw.config == model
    config = config_from_checkpoint(raw)
    assert not config.multimodal
    assert config.hidden_features == 64 and config.gcn_layers == 1
    assert "hidden_features" not in config.inferred and "multimodal" in config.inferred


def test_config_json_that_contradicts_the_weights_names_config_json(tmp_path: Path) -> None:
    path = tmp_path / "best_model.pt"
    torch.save(upstream_state_dict(hidden=64, embedding=32), path)
    (tmp_path / "config.json").write_text(json.dumps({"model": {"hidden_features": 128}}))
    with pytest.raises(InputError, match="hidden_features is 128") as info:
        config_from_checkpoint(load_checkpoint(path))
    assert info.value.path == str(tmp_path / "config.json")


def test_model_config_defaults_are_untouched() -> None:
    # config_build relies on ModelConfig's defaults for what cannot be inferred.
    assert ModelConfig().fine_grained_num_heads == 8 and ModelConfig().cross_modal_num_heads == 4
