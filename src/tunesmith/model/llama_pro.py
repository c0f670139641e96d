"""LLaMA Pro block expansion (`tunesmith llama-pro`, LLaMA-Factory's scripts/llama_pro.py): the decoder's layers
are split into `num_expand` equal groups and a copy of each group's last layer is inserted after it, with its
attention output projection (o_proj) and MLP down projection (down_proj) set to zero. A zeroed block adds nothing
to the residual stream, so the expanded model computes exactly what the original did; training it with
`use_llama_pro: true` (freeze, lora or oft; `freeze_trainable_layers: num_expand`) trains only the new blocks.
"""

from __future__ import annotations

import argparse
import copy
import logging
from pathlib import Path

from ..config.errors import ConfigError
from .methods import decoder_layers

logger = logging.getLogger(__name__)

ZEROED = ("o_proj", "down_proj")  # the projections that write a block's output into the residual stream


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tunesmith llama-pro",
                                description="Insert zero-initialised copies of decoder blocks (LLaMA Pro block "
                                            "expansion, LLaMA-Factory's scripts/llama_pro.py); train them with "
                                            "`use_llama_pro: true`.")
    p.add_argument("--model_name_or_path", "--model-name-or-path", required=True)
    p.add_argument("--output_dir", "--output-dir", required=True)
    p.add_argument("--num_expand", "--num-expand", type=int, required=True,
                   help="blocks to insert; the model's layer count must be a multiple of it")
    p.add_argument("--shard_size", "--shard-size", default="5GB", help="largest weight file (default 5GB)")
    p.add_argument("--trust_remote_code", "--trust-remote-code", action="store_true")
    return p


def expand_model(model, num_expand: int):
    """Insert the zeroed copies into ``model`` in place; returns the indices of the new blocks."""
    import torch

    prefix, n_layers = decoder_layers(model)
    if num_expand <= 0 or n_layers % num_expand:
        raise ConfigError(f"`num_expand`: the model's {n_layers} layers are not a multiple of {num_expand}")
    layers = model.get_submodule(prefix)
    split = n_layers // num_expand
    expanded, new_ids, types = [], [], []
    old_types = list(getattr(model.config, "layer_types", None) or [])
    for i, layer in enumerate(layers):
        expanded.append(layer)
        types.extend(old_types[i:i + 1])
        if (i + 1) % split == 0:
            block = copy.deepcopy(layer)
            zeroed = [m for name, m in block.named_modules() if name.split(".")[-1] in ZEROED]
            if len(zeroed) < 2:
                raise ConfigError(f"llama-pro: the blocks of {type(model).__name__} have no {' and '.join(ZEROED)} "
                                  "projections to zero (supported: LLaMA, Mistral, Qwen2 and models laid out alike)")
            with torch.no_grad():
                for module in zeroed:
                    module.weight.zero_()
                    if module.bias is not None:
                        module.bias.zero_()
            new_ids.append(len(expanded))
            expanded.append(block)
            types.extend(old_types[i:i + 1])
    parent_name, _, child = prefix.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, torch.nn.ModuleList(expanded))
    for index, layer in enumerate(expanded):  # the KV cache is indexed by each attention's layer_idx
        for module in layer.modules():
            if isinstance(getattr(module, "layer_idx", None), int):
                module.layer_idx = index
    model.config.num_hidden_layers = len(expanded)
    if old_types:
        model.config.layer_types = types
    return new_ids


def expand_blocks(model_name_or_path: str, output_dir: str, num_expand: int, trust_remote_code: bool = False,
                  shard_size: str = "5GB") -> Path:
    """Write the expanded model and its tokenizer to ``output_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = Path(output_dir)
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"`output_dir`: {out} is not empty; give a new folder for the expanded model")
    model = AutoModelForCausalLM.from_pretrained(model_name_or_path, dtype="auto",
                                                 trust_remote_code=trust_remote_code)
    before = model.config.num_hidden_layers
    new_ids = expand_model(model, num_expand)
    model.save_pretrained(out, max_shard_size=shard_size)
    AutoTokenizer.from_pretrained(model_name_or_path, trust_remote_code=trust_remote_code).save_pretrained(out)
    logger.info("expanded %d layers to %d: new blocks %s", before, len(new_ids) + before, new_ids)
    print(f"Expanded the model's {before} layers to {before + len(new_ids)} (new zero-output blocks {new_ids}) in "
          f"{out}.\nFine-tune it with:\n  model_name_or_path: {out}\n  finetuning_type: freeze\n"
          f"  freeze_trainable_layers: {num_expand}\n  use_llama_pro: true")
    return out


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    expand_blocks(args.model_name_or_path, args.output_dir, args.num_expand, args.trust_remote_code,
                  args.shard_size)
    return 0
