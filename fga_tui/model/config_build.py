"""Build the :class:`ModelConfig` a checkpoint implies: from its config, else from its weights.

Why both: the fork's ``best_*_model.pt`` pickles its config, upstream files come with a
``config.json`` or nothing, and ignite snapshots / bare state dicts carry no config at all. Most of
the architecture is readable from parameter names and shapes (layer counts, widths, which fusion
modules exist); what is not (head counts, dropouts, ``classification``) falls back to defaults and
is listed in ``ModelConfig.inferred`` so reports can say so.

Given a config, it is checked against the weights' shapes where that is cheap, so a config.json
that belongs to another run is caught here rather than as a wall of load_state_dict errors.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from fga_tui.io.checkpoint import RawCheckpoint
from fga_tui.io.errors import InputError
from fga_tui.model.config import (
    FIELD_NAMES,
    FORK_ONLY_FIELDS,
    LINKS,
    ModelConfig,
    parse_fusion_layers,
)

DEFAULT_FGA_HEADS = 8
DEFAULT_CM_HEADS = 4

_FIELD_ORDER = tuple(f.name for f in dataclasses.fields(ModelConfig) if f.name in FIELD_NAMES)
_FIELD_TYPES = {
    f.name: type(f.default) for f in dataclasses.fields(ModelConfig) if f.name in FIELD_NAMES
}
_LAYER_RE = re.compile(r"^(alignn_layers|gcn_layers)\.(\d+)\.")
_FUSION_RE = re.compile(r"^middle_fusion_modules\.layer_(\d+)\.")
_MULTIMODAL_PREFIXES = ("text_projection.", "graph_projection.")

# Fields whose value the weights determine (shape or presence); used for validation.
_SHAPE_FIELDS = (
    "alignn_layers",
    "gcn_layers",
    "atom_input_features",
    "hidden_features",
    "edge_input_features",
    "embedding_features",
    "triplet_input_features",
    "extra_features",
    "text_hidden_dim",
    "projection_dim",
    "middle_fusion_hidden_dim",
    "fine_grained_hidden_dim",
    "cross_modal_hidden_dim",
)


def config_from_checkpoint(
    raw: RawCheckpoint, *, fga_heads: int | None = None, cm_heads: int | None = None
) -> ModelConfig:
    """The model config for ``raw``.

    Precedence: ``fga_heads``/``cm_heads`` overrides > the checkpoint's config fields > values
    inferred from the state_dict > ``ModelConfig`` defaults. ``inferred`` lists every field not
    read from a config (overridden head counts included). Raises :class:`InputError` when the
    config disagrees with the weights or a head count does not divide its hidden width.
    """
    found, evidence = infer_fields(raw.state_dict)
    config_path = _config_path(raw)

    given: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    if raw.config is not None:
        given, unknown = _read_config(raw.config, config_path)
    elif "hidden_features" not in found:
        raise InputError(
            raw.path,
            "state_dict is not an ALIGNN model (no "
            "atom_embedding.layer.0.weight) and the file has no config",
        )

    values: dict[str, Any] = {**found, **given}
    # Multimodal is a property of the weights or of a fork config, never a config field upstream.
    values["multimodal"] = bool(
        given.get("multimodal")
        or found.get("multimodal")
        or any(k in FORK_ONLY_FIELDS for k in given)
    )
    if raw.config is not None:
        _validate_against_weights(
            given, found, evidence, config_path, multimodal=values["multimodal"]
        )
    values.setdefault("fine_grained_num_heads", DEFAULT_FGA_HEADS)
    values.setdefault("cross_modal_num_heads", DEFAULT_CM_HEADS)

    from_config = set(given)
    overridden = []
    for name, value, option in (
        ("fine_grained_num_heads", fga_heads, "--fga-heads"),
        ("cross_modal_num_heads", cm_heads, "--cm-heads"),
    ):
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InputError(option, f"must be a positive integer, got {value!r}")
            values[name] = value
            from_config.discard(name)
            overridden.append(name)

    config = ModelConfig(**values)
    _validate_heads(config, config_path, fga_heads, cm_heads)
    inferred = tuple(
        name for name in _FIELD_ORDER if name not in from_config and name not in overridden
    )
    return dataclasses.replace(
        config, inferred=inferred, overridden=tuple(overridden), unknown=unknown
    )


def infer_fields(state_dict: Mapping[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, str]]:
    """Architecture fields readable from parameter names and shapes.

    Returns ``(fields, evidence)``: the inferred values and, per field, the key it was read from
    (for error messages). Fields that cannot be inferred are absent.
    """
    shapes = {k: tuple(v.shape) for k, v in state_dict.items()}
    fields: dict[str, Any] = {}
    evidence: dict[str, str] = {}

    def take(name: str, key: str, dim: int) -> None:
        shape = shapes.get(key)
        if shape is not None and len(shape) > dim:
            fields[name] = int(shape[dim])
            evidence[name] = key

    for group in ("alignn_layers", "gcn_layers"):
        indices = {
            int(m.group(2)) for k in shapes if (m := _LAYER_RE.match(k)) and m.group(1) == group
        }
        if indices or shapes:
            fields[group] = max(indices) + 1 if indices else 0
            evidence[group] = f"{group}.*"

    take("hidden_features", "atom_embedding.layer.0.weight", 0)
    take("atom_input_features", "atom_embedding.layer.0.weight", 1)
    take("embedding_features", "edge_embedding.1.layer.0.weight", 0)
    take("edge_input_features", "edge_embedding.1.layer.0.weight", 1)
    take("triplet_input_features", "angle_embedding.1.layer.0.weight", 1)
    if "edge_input_features" not in fields:
        take("edge_input_features", "edge_embedding.0.centers", 0)
    if "triplet_input_features" not in fields:
        take("triplet_input_features", "angle_embedding.0.centers", 0)
    if "extra_feature_embedding.layer.0.weight" in shapes:
        take("extra_features", "extra_feature_embedding.layer.0.weight", 0)

    if "fc.weight" in shapes:
        take("output_features", "fc.weight", 0)
    if "fc.bias" in shapes:
        # Upstream and the fork replace fc.bias by a 0-dim tensor (log 0.7) when link == "log".
        fields["link"] = "log" if shapes["fc.bias"] == () else "identity"
        evidence["link"] = "fc.bias"

    multimodal = any(k.startswith(_MULTIMODAL_PREFIXES) for k in shapes)
    fields["multimodal"] = multimodal
    if multimodal:
        take("projection_dim", "text_projection.projection.weight", 0)
        take("text_hidden_dim", "text_projection.projection.weight", 1)

        fusion = sorted({int(m.group(1)) for k in shapes if (m := _FUSION_RE.match(k))})
        fields["use_middle_fusion"] = bool(fusion)
        if fusion:
            fields["middle_fusion_layers"] = ",".join(str(i) for i in fusion)
            evidence["middle_fusion_layers"] = "middle_fusion_modules.layer_*"
            take(
                "middle_fusion_hidden_dim",
                f"middle_fusion_modules.layer_{fusion[0]}.text_transform.0.weight",
                0,
            )

        fga = "fine_grained_attention."
        fields["use_fine_grained_attention"] = any(k.startswith(fga) for k in shapes)
        if fields["use_fine_grained_attention"]:
            # With projection, node_proj_in/token_proj_in exist and a2t_query is [hidden, hidden];
            # without, a2t_query is [hidden, node_dim].
            fields["fine_grained_use_projection"] = f"{fga}node_proj_in.weight" in shapes
            evidence["fine_grained_use_projection"] = f"{fga}node_proj_in.weight"
            take("fine_grained_hidden_dim", f"{fga}a2t_query.weight", 0)

        cma = "cross_modal_attention."
        fields["use_cross_modal_attention"] = any(k.startswith(cma) for k in shapes)
        if fields["use_cross_modal_attention"]:
            take("cross_modal_hidden_dim", f"{cma}g2t_query.weight", 0)
    return fields, evidence


# ---------------------------------------------------------------------------------------------


def _config_path(raw: RawCheckpoint) -> Path:
    if raw.config_source == "config.json":
        return Path(raw.path).parent / "config.json"
    return Path(raw.path)


def _read_config(config: Mapping[str, Any], path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split config fields into known (type-checked) and unknown ones."""
    given: dict[str, Any] = {}
    unknown: dict[str, Any] = {}
    for key, value in config.items():
        if key in FIELD_NAMES:
            given[key] = _coerce(key, value, path)
        else:
            unknown[key] = value
    name = given.get("name", "alignn")
    if name != "alignn":
        raise InputError(
            path,
            f"config names model {name!r}; only 'alignn' (upstream ALIGNN and "
            "the multimodal fork) is supported",
        )
    if given.get("link", "identity") not in LINKS:
        raise InputError(
            path, f"config field link={given['link']!r} is not one of {', '.join(LINKS)}"
        )
    if "middle_fusion_layers" in given:
        try:
            indices = parse_fusion_layers(given["middle_fusion_layers"])
        except ValueError:
            raise InputError(
                path,
                "config field middle_fusion_layers="
                f"{given['middle_fusion_layers']!r} is not a comma-separated list "
                "of layer indices",
            ) from None
        layers = given.get("alignn_layers", ModelConfig.alignn_layers)
        if given.get("use_middle_fusion") and any(not 0 <= i < layers for i in indices):
            raise InputError(
                path,
                f"config field middle_fusion_layers={given['middle_fusion_layers']!r} names a "
                f"layer outside 0..{layers - 1} (alignn_layers={layers})",
            )
    return given, unknown


def _coerce(key: str, value: Any, path: Path) -> Any:
    kind = _FIELD_TYPES[key]
    if key == "middle_fusion_layers" and isinstance(value, (int, list, tuple)):
        try:
            return ",".join(str(i) for i in parse_fusion_layers(value))
        except (TypeError, ValueError):
            raise InputError(
                path, f"config field {key}={value!r} is not a list of layer indices"
            ) from None
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is bool and isinstance(value, bool):
        return value
    if kind is int and is_number and (isinstance(value, int) or value.is_integer()):
        return int(value)
    if kind is float and is_number:
        return float(value)
    if kind is str and isinstance(value, str):
        return value
    raise InputError(path, f"config field {key}={value!r} is not a {kind.__name__}")


def _validate_against_weights(
    given: Mapping[str, Any],
    found: Mapping[str, Any],
    evidence: Mapping[str, str],
    path: Path,
    *,
    multimodal: bool,
) -> None:
    """Raise one InputError listing every config field the weights contradict."""
    problems: list[str] = []
    for name in _SHAPE_FIELDS:
        if name in given and name in found and given[name] != found[name]:
            problems.append(
                f"{name} is {given[name]} in the config but {found[name]} in the "
                f"weights ({evidence.get(name, '?')})"
            )
    # Upstream classification heads have num_classes outputs; the fork's keep output_features
    # (it adds a sigmoid instead).
    out_field = (
        "num_classes" if given.get("classification") and not multimodal else "output_features"
    )
    if (
        "output_features" in found
        and out_field in given
        and given[out_field] != found["output_features"]
    ):
        problems.append(
            f"{out_field} is {given[out_field]} in the config but "
            f"{found['output_features']} in the weights (fc.weight)"
        )
    if given.get("use_middle_fusion") and found.get("use_middle_fusion"):
        want = parse_fusion_layers(given.get("middle_fusion_layers", "2"))
        have = parse_fusion_layers(found["middle_fusion_layers"])
        if want != have:
            problems.append(
                f"middle_fusion_layers is {given.get('middle_fusion_layers', '2')!r} "
                f"in the config but the weights have fusion modules at "
                f"{found['middle_fusion_layers']!r}"
            )
    if problems:
        raise InputError(
            path, "config does not match the checkpoint's weights: " + "; ".join(problems)
        )


def _validate_heads(
    config: ModelConfig, path: Path, fga_heads: int | None, cm_heads: int | None
) -> None:
    checks = (
        (
            config.use_fine_grained_attention,
            config.fine_grained_hidden_dim,
            config.fine_grained_num_heads,
            "fine_grained",
            "--fga-heads",
            fga_heads,
        ),
        (
            config.use_cross_modal_attention,
            config.cross_modal_hidden_dim,
            config.cross_modal_num_heads,
            "cross_modal",
            "--cm-heads",
            cm_heads,
        ),
    )
    for used, hidden, heads, prefix, option, override in checks:
        if not (config.multimodal and used):
            continue
        if heads < 1 or hidden % heads:
            where: str | Path = option if override is not None else path
            source = f"{option} {heads}" if override is not None else f"{prefix}_num_heads {heads}"
            raise InputError(
                where,
                f"{source} does not divide {prefix}_hidden_dim {hidden}; "
                f"choose a head count that divides {hidden}",
            )


__all__ = ["DEFAULT_CM_HEADS", "DEFAULT_FGA_HEADS", "config_from_checkpoint", "infer_fields"]
