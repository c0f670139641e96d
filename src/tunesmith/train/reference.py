"""Reference models for dpo, kto and ppo, chosen as LLaMA-Factory does (the run plan records which):

- `ref_model` given: that model (with `ref_model_adapters` merged), frozen;
- otherwise with lora: the policy itself with its adapters switched off (no second copy of the weights);
- otherwise: a frozen copy of the starting model (after token resize and initialisation).

With `precompute_ref_log_probs` the reference scores the whole training set once before training and is
dropped; batches then carry the reference log-probs.
"""

from __future__ import annotations

import copy
import logging
import torch

from ..config.errors import ConfigError
from ..config.rules_methods import ADAPTER_TYPES
from ..model.compat import adapters_disabled, is_peft_model
from ..utils.run_card import embedding_rows_of

logger = logging.getLogger(__name__)


def parameter_bytes(*models) -> int:
    """Bytes of parameter storage held by the models together (shared storage counted once)."""
    seen: dict[int, int] = {}
    for model in models:
        for param in model.parameters():
            storage = param.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


class FrozenModel:
    """A separate model that never trains (a reference, or a full reward model): frozen, in eval mode, moved
    to the policy's device on first use."""

    def __init__(self, model) -> None:
        self.model = model.eval().requires_grad_(False)

    def extra_bytes(self, policy) -> int:
        """Parameter memory this model adds to the policy's."""
        return parameter_bytes(policy, self.model) - parameter_bytes(policy)

    def parameter_holders(self) -> list:
        """The modules holding this part's own parameters (for memory accounting)."""
        return [self.model]

    def on_device_of(self, policy):
        device = next(policy.parameters()).device
        if next(self.model.parameters()).device != device:
            self.model.to(device)
        return self.model


class FrozenReference(FrozenModel):
    kind = "frozen model"

    def run(self, policy, fn):
        model = self.on_device_of(policy)
        with torch.no_grad():
            return fn(model)


class AdapterOffReference:
    """The policy with its peft adapters disabled: the base weights are shared, not copied."""

    kind = "policy with adapters off"

    def extra_bytes(self, policy) -> int:
        return 0  # holds no parameters of its own

    def parameter_holders(self) -> list:
        return []

    def run(self, policy, fn):
        with torch.no_grad(), adapters_disabled(policy):
            return fn(policy)


def build_reference(pref, finetuning_type: str, policy, load_model_fn, dtype, embedding_rows: int):
    """``load_model_fn(path, dtype)`` loads a causal LM; ``dtype`` is what the reference is kept in."""
    if pref.ref_model:
        from peft import PeftModel

        ref = load_model_fn(pref.ref_model, dtype)
        for path in pref.ref_model_adapters:
            rows = embedding_rows_of(path)  # an adapter trained after a token resize needs that size
            if rows and rows != ref.get_input_embeddings().weight.shape[0]:
                ref.resize_token_embeddings(rows, mean_resizing=False)
            ref = PeftModel.from_pretrained(ref, path).merge_and_unload()
        if ref.get_input_embeddings().weight.shape[0] != embedding_rows:
            raise ConfigError(f"`ref_model` {pref.ref_model} has {ref.get_input_embeddings().weight.shape[0]} "
                              f"embedding rows but the policy has {embedding_rows}: the reference must share the "
                              "policy's vocabulary (tokens added in this run are not in the reference)")
        logger.info("reference model: %s%s (frozen)", pref.ref_model,
                    f" + adapters {', '.join(pref.ref_model_adapters)}" if pref.ref_model_adapters else "")
        return FrozenReference(ref)
    if finetuning_type in ADAPTER_TYPES:
        if not is_peft_model(policy):
            raise ConfigError("lora reference: the policy has no adapter to switch off")
        logger.info("reference model: the base weights with the lora adapter switched off (no second copy)")
        return AdapterOffReference()
    logger.info("reference model: a frozen copy of the starting model")
    return FrozenReference(copy.deepcopy(policy).to(dtype))

