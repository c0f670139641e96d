"""Key names tunesmith knows: its own sections, transformers TrainingArguments, aliases, and the
LLaMA-Factory options it deliberately does not implement (so they fail with a precise message
instead of "unknown key")."""

from __future__ import annotations

from dataclasses import fields

from .hf_keys import HF_TRAINING_KEYS
from .schema import SECTIONS

# Old or alternative spellings -> canonical key. Values are moved before validation.
ALIASES: dict[str, str] = {
    "model_name": "model_name_or_path",
    "evaluation_strategy": "eval_strategy",
    "new_special_tokens": "add_special_tokens",  # LLaMA-Factory's older name
}

# Keys that are consumed while loading and translated into other keys.
TRANSLATED_KEYS = {"warmup_ratio"}

# LLaMA-Factory options that tunesmith does not implement. Each maps to a short hint.
UNSUPPORTED_LF_KEYS: dict[str, str] = {
    **{k: "quantisation is not available in tunesmith yet" for k in (
        "quantization_method", "quantization_bit", "quantization_type", "double_quantization",
        "quantization_device_map", "export_quantization_bit", "export_quantization_dataset",
        "export_quantization_nsamples", "export_quantization_maxlen", "ref_model_quantization_bit",
        "reward_model_quantization_bit")},
    "pref_bco_weight": "the BCO term is not available in tunesmith; use pref_loss (sigmoid, hinge, ipo, kto_pair, "
                       "orpo, simpo)",
    **{k: "this optimizer is not available in tunesmith; use `optim` (transformers optimizers)" for k in (
        "use_galore", "galore_target", "galore_rank", "galore_update_interval", "galore_scale", "galore_proj_type",
        "galore_layerwise", "use_apollo", "apollo_target", "apollo_rank", "apollo_update_interval", "apollo_scale",
        "apollo_proj", "apollo_proj_type", "apollo_scale_type", "apollo_layerwise", "apollo_scale_front",
        "use_badam", "badam_mode", "badam_start_block", "badam_switch_mode", "badam_switch_interval",
        "badam_update_ratio", "badam_mask_mode", "badam_verbose", "use_adam_mini", "use_muon")},
    **{k: "multimodal training is not supported by tunesmith" for k in (
        "image_max_pixels", "image_min_pixels", "image_do_pan_and_scan", "crop_to_patches", "video_max_pixels",
        "video_min_pixels", "video_fps", "video_maxlen", "use_audio_in_video", "audio_sampling_rate",
        "freeze_vision_tower", "freeze_multi_modal_projector", "freeze_language_model", "media_dir")},
    **{k: "this backend/integration is not supported by tunesmith" for k in (
        "use_unsloth", "use_unsloth_gc", "mixture_of_depths", "use_kt", "kt_cpu_activation",
        "kt_weight_path", "kt_non_expert_weight_path", "kt_expert_checkpoint_path", "kt_use_lora_experts",
        "kt_lora_expert_num", "kt_lora_expert_intermediate_size", "use_mca", "use_megatron_bridge",
        "megatron_bridge_args", "use_hyper_parallel", "hyper_parallel_args", "hyper_parallel_cp_size",
        "use_swanlab", "swanlab_project", "swanlab_workspace", "swanlab_run_name", "swanlab_mode",
        "swanlab_api_key", "swanlab_logdir", "swanlab_lark_webhook_url", "swanlab_lark_secret",
        "use_llama_pro", "shift_attn", "rope_scaling", "oft_rank", "oft_block_size", "oft_target",
        "pissa_init", "pissa_iter", "pissa_convert", "loraplus_lr_ratio", "loraplus_lr_embedding",
        "module_dropout", "ms_hub_token", "om_hub_token", "use_dft_loss", "use_asft_loss", "asft_alpha",
        "use_eaft_loss", "eaft_alpha", "block_diag_attn", "use_v1_kernels", "ray_num_workers", "ray_init_kwargs",
        "master_addr", "master_port", "data_shared_file_system")},
    **{k: "fp16-stability upcasts are not needed: tunesmith keeps trainable weights in float32 and uses autocast"
       for k in ("upcast_layernorm", "upcast_lmhead_output")},
    **{k: "fp8 training is not available in tunesmith yet" for k in (
        "fp8", "fp8_backend", "fp8_enable_fsdp_float8_all_gather")},
    **{k: "the torch profiler integration is not available; use `python -m torch.utils.bottleneck` or "
          "torch.profiler around `tunesmith train`" for k in (
        "enable_torch_profiler", "profile_modules", "profiler_active_steps", "profiler_output_dir",
        "profiler_profile_memory", "profiler_record_shapes", "profiler_repeat", "profiler_wait_steps",
        "profiler_warmup_steps", "profiler_with_stack")},
    "moe_aux_loss_coef": "the MoE router auxiliary loss is not set by tunesmith; set router_aux_loss_coef in the "
                         "model's config.json",
    "split_special_tokens": "special tokens are never split by tunesmith's tokenization",
    "preserve_thinking": "whether thoughts stay in history follows the template (qwen3, deepseekr1, ...)",
    "early_stopping_steps": "early stopping is not available; use `load_best_model_at_end` with evaluation",
    "eval_num_beams": "generation-based evaluation is not available in `tunesmith train`",
    "eval_on_each_dataset": "evaluation reports one metric set over all eval datasets",
    "include_effective_tokens_per_second": "throughput is reported by the bench/ scripts",
    **{k: "the sglang and ktransformers inference engines are not available in tunesmith; use "
          "`infer_backend: huggingface` or `vllm`" for k in (
        "sglang_maxlen", "sglang_mem_fraction", "sglang_tp_size", "sglang_config", "sglang_lora_backend",
        "kt_optimize_rule", "cpu_infer", "chunk_size", "mode", "kt_maxlen", "kt_use_cuda_graph", "kt_mode",
        "kt_force_think")},
    "adapter_folder": "name each adapter directory in `adapter_name_or_path` (comma-separated) instead",
    "offload_folder": "tunesmith does not offload weights to disk at inference",
}


def section_keys() -> dict[str, str]:
    """Every tunesmith-section key -> its section name."""
    out: dict[str, str] = {}
    for section, cls in SECTIONS.items():
        for f in fields(cls):
            out[f.name] = section
    return out


def all_valid_keys() -> set[str]:
    return set(section_keys()) | set(HF_TRAINING_KEYS) | set(ALIASES) | TRANSLATED_KEYS
