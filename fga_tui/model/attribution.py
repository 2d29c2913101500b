"""Gradients of the prediction with respect to what the model reads of the text.

Two attributions, both for one structure and its text:

* gradient-weighted attention (Chefer, Gur & Wolf 2021, "Generic Attention-model Explainability
  for Interpreting Bi-Modal and Encoder-Decoder Transformers", ICCV): ``E_h[(A ⊙ ∂y/∂A)^+]``
  over the fine-grained atom-to-token weights ``A`` [H, N, L];
* integrated gradients on the token states (Sundararajan, Taly & Yan 2017, "Axiomatic
  Attribution for Deep Networks", ICML) with Captum, from the ``no-text`` baseline (all token
  states zero, as ``fga_tui.interventions`` defines it) to the real states.

Why this is cheap: the text reaches the graph encoder only through the [CLS] token's text vector
(middle fusion), and everything else it does happens in the model's ``head`` (fine-grained
attention, readout, output layers). So the encoder runs at most twice (real text, no text) and
every integration step, word deletion and gradient runs only the head, batched over copies of
the structure. The integration path has two legs: first the encoder's text vector is switched
from no-text to the real one with the head still reading zeros (its whole effect belongs to the
[CLS] state, the only token the encoder reads, so this leg needs no integration), then the head's
token states go from zero to real along a straight line (Captum, Gauss-Legendre). For a model
without middle fusion the first leg is zero and this is plain integrated gradients; completeness
(Σ attributions = prediction − prediction without text) holds for the whole path either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch

from fga_tui.interventions import Interventions
from fga_tui.io.types import TokenStates
from fga_tui.model.alignn_text import ALIGNNText
from fga_tui.model.batch import GraphBatch, collate_graphs, collate_tokens
from fga_tui.model.hooks import Cache, caching_hooks, hooks
from fga_tui.model.intervene import intervention_hooks
from fga_tui.structure.types import CrystalGraph

#: Integration steps used unless told otherwise (the issue's floor is 32).
DEFAULT_STEPS = 32
#: Activation floats one head step may hold; bounds Captum's ``internal_batch_size``.
STEP_BUDGET = 1 << 26


@dataclass(frozen=True)
class IntegratedGradients:
    """Token attributions [L] (summed over the state width) and how well they add up.

    ``encoder_leg`` is the part credited to [CLS] for switching the graph encoder's text vector
    on (0.0 without middle fusion); ``delta`` is Captum's convergence delta of the head leg,
    i.e. Σ attributions − (prediction − prediction without text).
    """

    tokens: np.ndarray
    delta: float
    encoder_leg: float
    steps: int


class TextAttributor:
    """One structure and its text, with the graph encoder run once per text vector.

    The model must be multimodal; ``interventions`` (not ``no-text``) apply to the encoder runs.
    Predictions are the output the trace reports: the only output, or the largest one.
    """

    def __init__(
        self,
        model: ALIGNNText,
        graph: CrystalGraph,
        tokens: TokenStates,
        interventions: Interventions | None = None,
        encoded: torch.Tensor | None = None,
    ) -> None:
        """``encoded``: the encoder's output [N, C] for the real text under ``interventions``
        when a traced forward already has it (saves one encoder run)."""
        if not model.config.multimodal:
            raise ValueError("attribution needs a model that reads text")
        interventions = interventions or Interventions()
        if interventions.no_text:
            raise ValueError("attribution compares with no-text; it cannot run under no-text")
        self.model = model
        # ``mean-ablate=fga`` / ``patch=fga:...`` act on the head's output: applied per head call.
        self.head_interventions = Interventions(
            [i for i in interventions if i.kind in ("mean-ablate", "patch") and i.stage == "fga"]
        )
        param = next(model.parameters())
        self.dtype, self.device = param.dtype, param.device
        batch = collate_graphs([graph], self.device)
        self.batch = cast_batch(batch, self.dtype)
        text = collate_tokens([tokens], self.device)
        self.states = text.states.to(self.dtype)  # [1, L, T]
        self.mask = text.mask  # [1, L]
        self.num_atoms = graph.num_nodes
        self.length = tokens.length
        with torch.no_grad():
            emb = model.embed_text(self.states)
            if encoded is not None:
                self.x = encoded.to(self.device, self.dtype)
            else:
                self.x = self._encode(emb, interventions)
            text_free = not model.config.fusion_indices or interventions.no_fusion
            zero = model.embed_text(torch.zeros_like(self.states))
            self.x0 = self.x if text_free else self._encode(zero, interventions)
            self.target = 0
            if model.fc.out_features > 1:  # the output the trace reports: the largest one
                self.target = int(self._outputs(self.states)[0].argmax())

    def _encode(self, text_emb: torch.Tensor, interventions: Interventions) -> torch.Tensor:
        model = self.model
        with hooks(model, intervention_hooks(model, interventions, self.batch)):
            return model.encode(self.batch, text_emb)

    def _layout(self, copies: int) -> GraphBatch:
        """Node bookkeeping of ``copies`` copies of the structure (all the head reads)."""
        if copies == 1:
            return self.batch
        n = self.num_atoms
        graph_of = torch.arange(copies, device=self.device).repeat_interleave(n)
        return replace(self.batch, node_graph=graph_of, num_nodes=(n,) * copies)

    def head(
        self, states: torch.Tensor, mask: torch.Tensor | None = None, x: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predictions [S] for S token-state variants [S, L, T] (masks [S, L]) read by the head
        of the encoded structure ``x`` (default: encoded with the real text)."""
        return self._outputs(states, mask, x)[:, self.target]

    def _outputs(
        self, states: torch.Tensor, mask: torch.Tensor | None = None, x: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Every model output [S, out] (see ``head``)."""
        copies = states.shape[0]
        x = self.x if x is None else x
        mask = self.mask.expand(copies, -1) if mask is None else mask
        layout = self._layout(copies)
        emb = self.model.embed_text(states)
        with hooks(self.model, intervention_hooks(self.model, self.head_interventions, layout)):
            return self.model.head(x.repeat(copies, 1), layout, states, mask, emb)

    def predictions(self) -> tuple[float, float]:
        """(prediction, prediction under ``no-text``)."""
        with torch.no_grad():
            real = self.head(self.states)
            none = self.head(torch.zeros_like(self.states), x=self.x0)
        return float(real[0]), float(none[0])

    def attention_gradient(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        """(A, ∂y/∂A), both [H, N, L] for the structure's atoms and tokens; None without
        fine-grained attention."""
        if not self.model.has_fga:
            return None
        cache = Cache()
        states = self.states.detach().clone().requires_grad_(True)
        with (
            torch.enable_grad(),
            hooks(self.model, caching_hooks(cache, ["attn.atom_to_text"], detach=False)),
        ):
            out = self.head(states)
            weights = cache["attn.atom_to_text"]
            (grad,) = torch.autograd.grad(out.sum(), [weights])
        n, length = self.num_atoms, self.length
        return weights[0, :, :n, :length].detach(), grad[0, :, :n, :length]

    def gradient_weighted_attention(self) -> np.ndarray | None:
        """float32 [N, L]: ``mean_h (A ⊙ ∂y/∂A)^+``; None without fine-grained attention."""
        pair = self.attention_gradient()
        if pair is None:
            return None
        weights, grad = pair
        return (weights * grad).clamp(min=0).mean(dim=0).to("cpu", torch.float32).numpy()

    def integrated_gradients(
        self, steps: int = DEFAULT_STEPS, internal_batch_size: int | None = None
    ) -> IntegratedGradients:
        """Token attributions along the two-leg path of the module docstring."""
        from captum.attr import IntegratedGradients as CaptumIG

        if steps < 1:
            raise ValueError("integration needs at least one step")
        zeros = torch.zeros_like(self.states)
        with torch.no_grad():
            switched_on = float(self.head(zeros)[0])
            baseline = float(self.head(zeros, x=self.x0)[0])
        ig = CaptumIG(lambda states: self.head(states))
        attr, delta = ig.attribute(
            self.states,
            baselines=zeros,
            n_steps=steps,
            method="gausslegendre",
            internal_batch_size=internal_batch_size or self.step_batch(steps),
            return_convergence_delta=True,
        )
        tokens = attr[0, : self.length].sum(dim=-1).detach().to("cpu", torch.float64).numpy()
        encoder_leg = switched_on - baseline
        if self.length:
            tokens[0] += encoder_leg  # the encoder reads the [CLS] state only
        return IntegratedGradients(
            tokens=tokens.astype(np.float32),
            delta=float(delta.reshape(-1)[0]),
            encoder_leg=encoder_leg,
            steps=steps,
        )

    def step_batch(self, steps: int) -> int:
        """Integration steps per head call: all of them unless one step is large."""
        model = self.model
        heads = model.fine_grained_attention.num_heads if model.has_fga else 1
        hidden = model.fine_grained_attention.hidden_dim if model.has_fga else 1
        n, length, width = self.num_atoms, self.states.shape[1], self.states.shape[2]
        per_step = 4 * heads * n * length + 4 * length * (width + hidden) + 8 * n * hidden
        return max(1, min(steps, STEP_BUDGET // max(per_step, 1)))

    def masked_predictions(self, keep: Sequence[np.ndarray]) -> np.ndarray:
        """Predictions [K] with each row of ``keep`` (bool [L]) as the token mask: a masked
        token is deleted from what the attention can read (the encoder's [CLS] text vector
        is unchanged, the text is not re-encoded)."""
        if not len(keep):
            return np.zeros(0)
        masks = torch.as_tensor(np.stack(keep), dtype=torch.bool, device=self.device)
        masks = masks & self.mask
        with torch.no_grad():
            states = self.states.expand(masks.shape[0], -1, -1)
            out = self.head(states, masks)
        return out.to("cpu", torch.float64).numpy()


def cast_batch(batch: GraphBatch, dtype: torch.dtype) -> GraphBatch:
    """The batch with its float tensors in ``dtype`` (a float64 model reads float64 graphs)."""
    if batch.atom_features.dtype == dtype:
        return batch
    return replace(
        batch,
        atom_features=batch.atom_features.to(dtype),
        bond_r=batch.bond_r.to(dtype),
        angle_cos=batch.angle_cos.to(dtype),
    )
