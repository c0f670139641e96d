"""Every place tunesmith relies on a library's internals (private attributes and methods, undocumented
module paths, behaviour that is not part of an API), in one module. Nothing else in tunesmith touches them
(tests/test_architecture.py enforces it), so a library upgrade that breaks one breaks here, and
tests/model/test_compat.py fails loudly, entry by entry.

Each entry says what it touches and why. CHECKED lists the versions they were checked against; a different
installed version is logged once at training start (utils/versions.py does the comparing).
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any

import torch

CHECKED = {"torch": "2.13.0", "transformers": "5.23.0", "peft": "0.21.0", "accelerate": "1.15.0"}


# -- wrappers: DDP / DeepSpeed / compiled modules, and peft ---------------------------------------------------

def unwrap_parallel(model):
    """The module inside DDP / DeepSpeed / torch.compile wrappers (accelerate's public helper)."""
    from accelerate.utils import extract_model_from_parallel

    return extract_model_from_parallel(model, keep_torch_compile=False)


def is_peft_model(model) -> bool:
    from peft import PeftModel

    return isinstance(unwrap_parallel(model), PeftModel)


def peft_base(model):
    """The transformers model under a (possibly parallel-wrapped) peft model; the model itself otherwise."""
    inner = unwrap_parallel(model)
    return inner.get_base_model() if is_peft_model(inner) else inner


@contextlib.contextmanager
def adapters_disabled(model):
    """peft's ``disable_adapter`` on the model inside DDP: the base weights alone (a lora reference)."""
    with unwrap_parallel(model).disable_adapter():
        yield


@contextlib.contextmanager
def active_adapter(model, name: str):
    """Run with peft adapter ``name`` active, then switch back. peft's ``set_adapter`` also changes which
    parameters require grad (it marks the active adapter trainable, the others not): the trainable set is
    restored exactly afterwards, so scoring with a second adapter never changes what trains."""
    trainable = {n: p.requires_grad for n, p in model.named_parameters()}
    previous = model.active_adapter
    model.set_adapter(name)
    try:
        yield model
    finally:
        model.set_adapter(previous)
        for n, p in model.named_parameters():
            p.requires_grad_(trainable.get(n, False))


def saved_copies(head) -> list[torch.nn.Module] | None:
    """The modules that may compute an output head's logits: the head itself, or for peft's
    ModulesToSaveWrapper (LoRA runs that train the embeddings in full) its original and trained copies
    (`original_module`, `modules_to_save`: peft's internal layout). None for any other wrapper."""
    from peft.utils import ModulesToSaveWrapper

    if isinstance(head, ModulesToSaveWrapper):
        return [head.original_module, *head.modules_to_save.values()]
    return [head]


# -- transformers models --------------------------------------------------------------------------------------

def attention_implementation(model) -> str | None:
    """The attention kernel a loaded model runs (``config._attn_implementation``: transformers keeps the
    resolved value only in this private property)."""
    return peft_base(model).config._attn_implementation


def accepts_logits_to_keep(model) -> bool:
    """Whether the causal LM's forward takes ``logits_to_keep`` (transformers' LMs do; checked on the
    signature because custom-code models may not)."""
    return "logits_to_keep" in inspect.signature(peft_base(model).forward).parameters


def sdpa_attention(module, query, key, value, attention_mask, **kwargs):
    """transformers' own SDPA attention function (``transformers.integrations.sdpa_attention``, not exported
    at the top level): the fallback of tunesmith's varlen attention for calls without sequence boundaries."""
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)


class HeadInputCapture:
    """Takes what a model feeds its output head, and makes the head project no position.

    A forward pre-hook on each linear layer that may compute the logits (``saved_copies``): while
    ``capturing``, it stores the hidden states and replaces them by an empty slice, so the model's forward
    computes (B, 0, V) logits instead of (B, T, V). This relies on transformers' causal LMs applying the head
    as ``lm_head(hidden_states[:, slice])`` and nothing after it (models that soft-cap or scale logits are
    refused by train/head_loss.py); the pre-hook sees exactly what the head would see."""

    def __init__(self, linears: list[torch.nn.Module]) -> None:
        self.capturing = False
        self.hidden = self.used = None
        self.handles = [linear.register_forward_pre_hook(self._take) for linear in linears]

    def _take(self, module, args):
        if not self.capturing:
            return None
        self.hidden, self.used = args[0], module
        return (args[0][..., :0, :],)

    @contextlib.contextmanager
    def capture(self):
        self.capturing = True
        try:
            yield self
        finally:
            self.capturing = False

    def take(self):
        """(hidden states, the linear layer that received them), cleared."""
        out, self.hidden, self.used = (self.hidden, self.used), None, None
        return out

    def remove(self) -> None:
        for handle in self.handles:
            handle.remove()


# -- transformers' Trainer --------------------------------------------------------------------------------------

def rank_aware_batch_sampler_base() -> type:
    """transformers' BatchRebalanceSampler (``transformers.trainer_pt_utils``): a batch sampler of this type
    becomes the DataLoader's ``batch_sampler`` and accelerate's per-process sharding is switched off for it,
    which is what a sampler that already yields each rank's own batches needs."""
    from transformers.trainer_pt_utils import BatchRebalanceSampler

    return BatchRebalanceSampler


class TrainerHooks:
    """A mixin for transformers.Trainer that maps the private methods tunesmith must change onto public hook
    names (``train_sampler``, ``save_weights``) and exposes the private helpers it calls."""

    def train_sampler(self, dataset) -> Any:
        """A sampler or batch sampler for training, or None for Trainer's own."""
        return None

    def save_weights(self, output_dir: str) -> bool:
        """Write the weights in a way of one's own; True when done (Trainer's saving is then skipped)."""
        return False

    def _get_train_sampler(self, train_dataset=None):  # Trainer's private hook for the training sampler
        sampler = self.train_sampler(train_dataset if train_dataset is not None else self.train_dataset)
        return sampler if sampler is not None else super()._get_train_sampler(train_dataset)

    def _save(self, output_dir: str | None = None, state_dict: dict | None = None) -> None:  # Trainer's save
        if not self.save_weights(output_dir or self.args.output_dir):
            super()._save(output_dir, state_dict)

    def load_checkpoint_weights(self, folder: str) -> None:
        """The model's weights (full, sharded or a peft adapter) and the trainer state from a checkpoint folder,
        exactly as ``train(resume_from_checkpoint=folder)`` loads them (``Trainer._load_from_checkpoint``), for a
        checkpoint that already is the run's last step: training it again would add a step."""
        from transformers import TrainerState

        self._load_from_checkpoint(folder)
        self.state = TrainerState.load_from_json(f"{folder}/trainer_state.json")

    def prepare_inputs(self, inputs: dict) -> dict:
        """Trainer's ``_prepare_inputs`` (moves the batch to the device)."""
        return self._prepare_inputs(inputs)

    def token_average_scale(self, num_items_in_batch) -> int:
        """The factor transformers' ``compute_loss`` applies to a loss normalised by the token count of all
        processes (``average_tokens_across_devices``), so that the gradient mean over processes is the
        per-token mean; 1 on a single process. Mirrors Trainer.compute_loss of the CHECKED version (a loss of
        tunesmith's own, with no ``compute_loss_func``)."""
        if num_items_in_batch is None or not (self.args.average_tokens_across_devices
                                              and self.model_accepts_loss_kwargs):
            return 1
        return self.accelerator.num_processes // self.get_tp_size() if self.args.n_gpu <= 1 else self.args.n_gpu


# -- torch ----------------------------------------------------------------------------------------------------------

def is_compile_error(err: BaseException) -> bool:
    """Whether an error came out of torch.compile (tracing or code generation): ``torch._dynamo.exc``."""
    from torch._dynamo.exc import TorchDynamoException

    return isinstance(err, TorchDynamoException)


def decay_parameter_names(model) -> list[str]:
    """Names of the parameters that get weight decay, by Trainer's rule (not norms, not biases), from
    ``transformers.trainer_pt_utils``; used by loops that build their optimizer without Trainer."""
    from transformers.trainer_pt_utils import get_parameter_names

    patterns = [r"bias", r"layernorm", r"rmsnorm", r"(?:^|\.)norm(?:$|\.)", r"_norm(?:$|\.)"]
    return get_parameter_names(model, [torch.nn.LayerNorm], patterns)


def drift() -> dict[str, tuple[str, str]]:
    """Libraries installed at another version than CHECKED: name -> (checked, installed). Training logs them
    once; tests/model/test_compat.py is what proves an upgrade safe."""
    from importlib.metadata import version

    out = {}
    for name, checked in CHECKED.items():
        installed = version(name).split("+")[0]
        if installed != checked:
            out[name] = (checked, installed)
    return out
