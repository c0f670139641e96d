"""Reward sources of stage ppo, as LLaMA-Factory lays them out (``reward_model_type``):

- api: an HTTP endpoint. POST ``{"model": "model", "messages": [text, ...]}`` with each text the rendered
  prompt + reply; the answer is ``{"scores": [float, ...]}``, one per text.
- lora: a reward lora adapter (trained with stage rm on the same base) loaded into the policy's peft model
  as a second adapter: the base weights are shared, only the adapter and its `score` head are added.
- full: a separate sequence-classification model (a tunesmith rm output or any such checkpoint).

Each is called with the policy (unwrapped) and a right-padded RolloutBatch and returns (B,) float scores.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import torch
from torch import nn

from ...config.errors import ConfigError
from ...model.compat import active_adapter, is_peft_model
from ...stages.preference.forward import last_token_scores
from ...stages.rl.batch import RolloutBatch
from ..reference import FrozenModel, parameter_bytes


def post_scores(url: str, texts: list[str], timeout: float = 120.0) -> list[float]:
    """Scores of ``texts`` from a reward endpoint; any failure is a ConfigError naming the URL."""
    body = json.dumps({"model": "model", "messages": texts}).encode("utf-8")
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read().decode("utf-8"))
    except urllib.error.HTTPError as err:
        detail = err.read().decode("utf-8", "replace")[:200]
        raise ConfigError(f"reward endpoint {url} answered HTTP {err.code}: {detail}") from None
    except urllib.error.URLError as err:
        raise ConfigError(f"reward endpoint {url} is unreachable ({err.reason}); start the scoring server or fix "
                          "`reward_model`") from None
    except (OSError, TimeoutError) as err:
        raise ConfigError(f"reward endpoint {url} failed: {err}") from None
    except json.JSONDecodeError:
        raise ConfigError(f"reward endpoint {url} did not answer with JSON") from None
    scores = answer.get("scores") if isinstance(answer, dict) else None
    if not isinstance(scores, list) or len(scores) != len(texts) or \
            not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores):
        raise ConfigError(f"reward endpoint {url} must answer {{\"scores\": [number, ...]}} with one score per "
                          f"text ({len(texts)}); got {str(answer)[:200]}")
    return [float(s) for s in scores]


class ApiReward:
    kind = "api"

    def __init__(self, url: str, tokenizer) -> None:
        self.url, self.tokenizer = url, tokenizer

    def extra_bytes(self, policy) -> int:
        return 0

    def parameter_holders(self) -> list:
        return []

    def __call__(self, policy, batch: RolloutBatch) -> torch.Tensor:
        rows = [ids[:n].tolist() for ids, n in zip(batch.input_ids, batch.attention_mask.sum(-1))]
        texts = self.tokenizer.batch_decode(rows, skip_special_tokens=False)
        return torch.tensor(post_scores(self.url, texts), dtype=torch.float32)


class ModelReward(FrozenModel):
    """A separate frozen sequence-classification model, scoring the same token ids as the policy."""

    kind = "full reward model"

    @torch.no_grad()
    def __call__(self, policy, batch: RolloutBatch) -> torch.Tensor:
        model = self.on_device_of(policy)
        batch = batch.to(next(model.parameters()).device)
        return last_token_scores(model, batch.input_ids, batch.attention_mask).float().cpu()


REWARD_ADAPTER = "reward"


class AdapterReward:
    """A reward lora adapter living next to the policy's adapter in the same peft model. Scoring switches
    the active adapter to it under no_grad and back (model/compat.py active_adapter restores exactly the
    policy's trainable set)."""

    kind = "lora reward adapter on the policy's base weights"

    def __init__(self, policy, adapter_dir: str) -> None:
        from peft import LoraConfig, set_peft_model_state_dict
        from safetensors.torch import load_file

        folder = Path(adapter_dir)
        weights_file = folder / "adapter_model.safetensors"
        if not (folder / "adapter_config.json").is_file() or not weights_file.is_file():
            raise ConfigError(f"`reward_model` {adapter_dir} is not a lora adapter (no adapter_config.json and "
                              "adapter_model.safetensors); for a merged or full reward model set "
                              "`reward_model_type: full`")
        if not is_peft_model(policy):
            raise ConfigError("`reward_model_type: lora` needs the policy to be a lora model")
        config = LoraConfig.from_pretrained(str(folder))
        if config.peft_type.value != "LORA":
            raise ConfigError(f"`reward_model` {adapter_dir} is a {config.peft_type.value} adapter, not lora")
        weights = load_file(str(weights_file))
        head = {k.rsplit(".", 1)[-1]: v for k, v in weights.items() if k.rsplit(".", 2)[-2] == "score"}
        if "weight" not in head:
            raise ConfigError(f"`reward_model` {adapter_dir} carries no `score` head: train it with `stage: rm`")
        config.modules_to_save, config.inference_mode = None, True
        config.task_type = policy.peft_config["default"].task_type
        trainable = {name: p.requires_grad for name, p in policy.named_parameters()}
        policy.add_adapter(REWARD_ADAPTER, config)
        lora = {k: v for k, v in weights.items() if ".score." not in f".{k}"}
        result = set_peft_model_state_dict(policy, lora, adapter_name=REWARD_ADAPTER)
        missing = [k for k in result.missing_keys if f".{REWARD_ADAPTER}." in k or k.endswith(f".{REWARD_ADAPTER}")]
        if missing:
            raise ConfigError(f"`reward_model` {adapter_dir} does not fit the policy's base model (missing "
                              f"{missing[:3]}); a lora reward model must be trained on the same base")
        self.head = nn.Linear(head["weight"].shape[1], 1, bias="bias" in head)
        with torch.no_grad():
            self.head.weight.copy_(head["weight"])
            if "bias" in head:
                self.head.bias.copy_(head["bias"])
        self.head.requires_grad_(False)
        for name, param in policy.named_parameters():  # add_adapter left the new adapter trainable
            param.requires_grad_(trainable.get(name, False))

    def extra_bytes(self, policy) -> int:
        """The reward adapter's weights and its head (the base weights are the policy's)."""
        own = sum(p.numel() * p.element_size() for name, p in policy.named_parameters()
                  if f".{REWARD_ADAPTER}." in name)
        return own + parameter_bytes(self.head)

    def parameter_holders(self) -> list:
        return [self.head]  # the adapter's weights live in the policy

    @torch.no_grad()
    def __call__(self, policy, batch: RolloutBatch) -> torch.Tensor:
        device = next(policy.parameters()).device
        self.head.to(device)
        batch = batch.to(device)
        was_training = policy.training
        policy.eval()
        try:
            with active_adapter(policy, REWARD_ADAPTER):
                out = policy(input_ids=batch.input_ids, attention_mask=batch.attention_mask,
                             output_hidden_states=True, use_cache=False)
            hidden = out.hidden_states[-1]
            last = batch.attention_mask.sum(-1) - 1
            picked = hidden[torch.arange(hidden.shape[0], device=device), last]
            return self.head(picked.to(self.head.weight.dtype)).squeeze(-1).float().cpu()
        finally:
            policy.train(was_training)
