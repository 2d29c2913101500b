"""One config type for upstream ALIGNN and the research fork's multimodal ALIGNN.

Field names and defaults are the fork's ``ALIGNNConfig`` (a superset of upstream's), so a config
recovered from any checkpoint maps onto it one to one. Unknown fields are kept in ``unknown`` and
reported, never silently applied. ``inferred`` lists the fields that were not read from a config
but inferred from the state_dict (or defaulted because they cannot be inferred).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

LINKS = ("identity", "log", "logit")

# Fields that exist in upstream/fork configs but change nothing at inference.
IGNORED_FIELDS = frozenset(
    {
        "name",
        "mask_stopwords",
        "remove_stopwords",
        "stopwords_dir",
        "zero_inflated",
        "use_contrastive_loss",
        "contrastive_loss_weight",
        "contrastive_temperature",
        "middle_fusion_num_heads",
    }
)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of an (optionally multimodal) ALIGNN model."""

    name: str = "alignn"
    alignn_layers: int = 4
    gcn_layers: int = 4
    atom_input_features: int = 92
    edge_input_features: int = 80
    triplet_input_features: int = 40
    embedding_features: int = 64
    hidden_features: int = 256
    output_features: int = 1
    graph_dropout: float = 0.0
    link: str = "identity"
    zero_inflated: bool = False
    classification: bool = False
    num_classes: int = 2
    extra_features: int = 0
    # --- the fork's multimodal fields; upstream checkpoints have none of them ---
    multimodal: bool = False
    use_cross_modal_attention: bool = False
    cross_modal_hidden_dim: int = 256
    cross_modal_num_heads: int = 4
    cross_modal_dropout: float = 0.1
    use_fine_grained_attention: bool = False
    fine_grained_hidden_dim: int = 256
    fine_grained_num_heads: int = 8
    fine_grained_dropout: float = 0.1
    fine_grained_use_projection: bool = True
    use_middle_fusion: bool = False
    middle_fusion_layers: str = "2"
    middle_fusion_hidden_dim: int = 128
    middle_fusion_num_heads: int = 2
    middle_fusion_dropout: float = 0.1
    mask_stopwords: bool = False
    remove_stopwords: bool = False
    stopwords_dir: str = ""
    use_contrastive_loss: bool = False
    contrastive_loss_weight: float = 0.1
    contrastive_temperature: float = 0.1
    # Fixed in the fork's code, exposed for locally built encoders.
    text_hidden_dim: int = 768
    projection_dim: int = 64
    # --- provenance ---
    inferred: tuple[str, ...] = ()
    overridden: tuple[str, ...] = ()
    unknown: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def fusion_indices(self) -> tuple[int, ...]:
        """0-based ALIGNN layer indices after which middle fusion runs (empty when off)."""
        if not (self.multimodal and self.use_middle_fusion):
            return ()
        return parse_fusion_layers(self.middle_fusion_layers)

    @property
    def needs_text(self) -> bool:
        return self.multimodal

    def stage_names(self) -> list[str]:
        """Stage names in forward order (a public contract: README, 'Output contracts')."""
        names = ["embed"]
        fusion = set(self.fusion_indices)
        for k in range(self.alignn_layers):
            names.append(f"alignn.{k}")
            if k in fusion:
                names.append(f"fusion.{k}")
        names.extend(f"gcn.{k}" for k in range(self.gcn_layers))
        if self.multimodal and self.use_fine_grained_attention:
            names.append("fga")
        return names

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict of the architecture fields (provenance excluded)."""
        return {
            f.name: getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.name not in ("inferred", "overridden", "unknown")
        }

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)


FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(ModelConfig)) - {
    "inferred",
    "overridden",
    "unknown",
}
FORK_ONLY_FIELDS = frozenset(
    {
        "use_cross_modal_attention",
        "cross_modal_hidden_dim",
        "cross_modal_num_heads",
        "cross_modal_dropout",
        "use_fine_grained_attention",
        "fine_grained_hidden_dim",
        "fine_grained_num_heads",
        "fine_grained_dropout",
        "fine_grained_use_projection",
        "use_middle_fusion",
        "middle_fusion_layers",
        "middle_fusion_hidden_dim",
        "middle_fusion_num_heads",
        "middle_fusion_dropout",
        "use_contrastive_loss",
        "contrastive_loss_weight",
        "contrastive_temperature",
        "mask_stopwords",
        "remove_stopwords",
        "stopwords_dir",
    }
)


def parse_fusion_layers(spec: str | int | list | tuple) -> tuple[int, ...]:
    """Parse the fork's comma-separated list of 0-based ALIGNN indices ("2", "1,3")."""
    if isinstance(spec, int):
        return (spec,)
    if isinstance(spec, (list, tuple)):
        return tuple(sorted({int(s) for s in spec}))
    parts = [p.strip() for p in str(spec).split(",") if p.strip()]
    return tuple(sorted({int(p) for p in parts}))
