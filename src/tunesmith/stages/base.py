"""The Stage contract: what a training stage declares, with defaults, and what its loss receives.

A stage is one small module (stages/pt.py, sft.py, rm.py, dpo.py, kto.py, ppo.py) holding a subclass of
``Stage`` and, when it differs from the causal-LM loss, its loss. train/ reads these declarations once
(train/plan.py) and never probes a stage for optional attributes; data/ never sees a stage, only its data
kind (data/kinds.py). The registry is stages/registry.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

LOOPS = ("trainer", "rollout", "grpo")  # transformers' Trainer (train/trainer.py), or the RL loops (train/rl/)
HEADS = ("lm", "score")  # the causal LM head, or a one-output sequence-classification head (reward models)


class MetricSink(Protocol):
    """Where a loss reports what it measured on a micro-batch (averaged per example at the next log)."""

    def record(self, **values: Any) -> None:
        """Per-example stage metrics, e.g. ``record(**{"rewards/chosen": tensor})``."""

    def observe_tokens(self, logits: Any, labels: Any) -> None:
        """Logits and unshifted labels of trained replies, for the special-token metrics."""


class Reference(Protocol):
    """A frozen reference policy (train/reference.py builds it from the run plan)."""

    kind: str

    def run(self, policy: Any, fn: Any) -> Any:
        """``fn(reference_model)`` under no_grad (the policy is passed so a reference can share its weights)."""

    def extra_bytes(self, policy: Any) -> int:
        """Parameter memory the reference adds to the policy's."""


@dataclass
class LossContext:
    """What a stage's loss may use besides the model and the batch."""

    metrics: MetricSink
    reference: Reference | None = None  # None when the stage needs none or the batch carries precomputed values
    token_weights: Any = None  # (V,) loss weight per target token id, or None (all 1.0)


class StageLoss(Protocol):
    def __call__(self, ctx: LossContext, model: Any, batch: dict) -> Any:
        """The micro-batch mean loss (a scalar tensor); Trainer divides it by the accumulation steps."""


class ReferenceScored(StageLoss, Protocol):
    """A loss whose reference values can be computed once before training (`precompute_ref_log_probs`)."""

    def reference_fields(self, reference: Reference, model: Any, batch: dict) -> dict[str, list[float]]:
        """Per-example reference values, named as the stage's collator passes them back in a batch."""


class Stage:
    """A training stage. Subclasses set ``name`` and ``data_kind`` and override only what differs.

    - ``data_kind``: the rows it trains on (data/kinds.py: text, supervised, pairwise, feedback, prompt);
    - ``packs``: its examples may share rows of cutoff_len (on by default, `packing: false` turns it off);
    - ``model_head``: ``lm`` or ``score`` (a reward model's one-output head);
    - ``loop``: ``trainer`` (transformers' Trainer) or ``rollout`` (generation, rewards, policy updates);
    - ``shares_prompts``: its sequences are replies to one prompt (a pair, a group), so the run plan may lay
      them out as one row per prompt (``collator(pad, shared_prompt=True)``);
    - ``collator``: None for the causal-LM collator the run plan configures;
    - ``loss``: None for the causal-LM loss (standard or chunked, as the run plan decides);
    - ``needs_reference``: whether the loss compares with a frozen reference policy.
    """

    name: ClassVar[str]
    data_kind: ClassVar[str]
    packs: ClassVar[bool] = False
    model_head: ClassVar[str] = "lm"
    loop: ClassVar[str] = "trainer"
    shares_prompts: ClassVar[bool] = False

    def collator(self, pad_token_id: int, shared_prompt: bool = False) -> Any:
        return None

    def loss(self, cfg: Any) -> StageLoss | None:
        return None

    def needs_reference(self, cfg: Any) -> bool:
        return False
