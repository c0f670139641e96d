"""`infer_backend: vllm`: the same Engine front on vLLM's offline LLM class.

vLLM serves a model directory and at most one LoRA adapter over an unchanged vocabulary. Anything else
(several adapters, adapters trained with added tokens) is merged first with `tunesmith export`. Replies
arrive whole (one text piece), generated one request at a time like the Hugging Face backend.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable

from ..config.errors import ConfigError
from ..config.schema import Config
from ..model.peft_variants import adapter_kind
from .engine import Engine, Reply, Sampling
from ..templates.stops import stop_token_ids
from .load import inference_dtype, load_tokenizer_and_template
from .source import resolve_source


def vllm_available() -> bool:
    return importlib.util.find_spec("vllm") is not None


class VllmEngine(Engine):
    name = "vllm"

    def __init__(self, cfg: Config):
        if not vllm_available():
            raise ConfigError("`infer_backend: vllm` needs the vllm package, which is not installed here; install "
                              "it (`pip install vllm`, Linux with a CUDA GPU) or use `infer_backend: huggingface`")
        source = resolve_source(cfg)
        resized = source.embedding_rows is not None
        if len(source.adapters) > 1 or (source.adapters and resized):
            raise ConfigError("vllm serves a model with at most one LoRA adapter and an unchanged vocabulary; merge "
                              "the adapters first (`tunesmith export ... export_dir=DIR`) and serve DIR")
        for adapter in source.adapters:
            if (kind := adapter_kind(adapter)) != "lora":
                raise ConfigError(f"vllm serves plain LoRA adapters, and {adapter} is a {kind} adapter; merge it "
                                  "first (`tunesmith export ... export_dir=DIR`) and serve DIR")
        tokenizer, template, default_system = load_tokenizer_and_template(cfg, source)
        super().__init__(cfg, tokenizer, template, stop_token_ids(tokenizer, template), default_system,
                         cfg.infer.vllm_maxlen)
        from vllm import LLM

        extra = cfg.infer.vllm_config
        extra = json.loads(extra) if isinstance(extra, str) else dict(extra or {})
        dtype = inference_dtype(cfg.infer.infer_dtype, source.base, "cuda")
        self.llm = LLM(model=source.base, tokenizer=source.tokenizer_dir, dtype=str(dtype).removeprefix("torch."),
                       max_model_len=cfg.infer.vllm_maxlen, gpu_memory_utilization=cfg.infer.vllm_gpu_util,
                       enforce_eager=cfg.infer.vllm_enforce_eager, trust_remote_code=cfg.model.trust_remote_code,
                       enable_lora=bool(source.adapters), max_lora_rank=cfg.infer.vllm_max_lora_rank, **extra)
        self.lora = None
        if source.adapters:
            from vllm.lora.request import LoRARequest

            self.lora = LoRARequest("default", 1, source.adapters[0])
        self.lock = threading.Lock()

    def image_refusal(self) -> str:
        return ("the vllm backend serves text prompts here; serve a vision-language model's images and videos with "
                "`infer_backend: huggingface`")

    def generate(self, prompt_ids: list[int], options: Sampling, on_text: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> Reply:
        from vllm import SamplingParams

        sample = options.do_sample and options.temperature > 0
        params = SamplingParams(
            temperature=options.temperature if sample else 0.0, top_p=options.top_p if sample else 1.0,
            top_k=options.top_k if sample and options.top_k > 0 else -1, max_tokens=options.max_new_tokens,
            repetition_penalty=options.repetition_penalty, stop=list(options.stop) or None,
            stop_token_ids=list(self.stop_ids), skip_special_tokens=options.skip_special_tokens, seed=options.seed)
        with self.lock:
            if cancel is not None and cancel.is_set():
                return Reply("", "cancelled", len(prompt_ids), 0)
            result = self.llm.generate([{"prompt_token_ids": prompt_ids}], params, lora_request=self.lora,
                                       use_tqdm=False)[0].outputs[0]
        if on_text is not None and result.text:
            on_text(result.text)
        finish = "length" if result.finish_reason == "length" else "stop"
        return Reply(result.text, finish, len(prompt_ids), len(result.token_ids))
