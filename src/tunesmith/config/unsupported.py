"""LLaMA-Factory options that tunesmith does not implement, each with what it is and what to use instead, so that
a LLaMA-Factory config fails with an accurate answer instead of "unknown key".

Key names follow LLaMA-Factory's hparams (model_args, data_args, finetuning_args, training_args,
megatron_bridge_args, evaluation_args), mcore_adapter's training arguments (LLaMA-Factory's USE_MCA=1) and the
Seq2SeqTrainingArguments fields LLaMA-Factory inherits. An option left off (false / null) is harmless, and so are
the other keys of a feature whose switch (e.g. `use_galore: false`) is off.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Unsupported(NamedTuple):
    category: str  # what kind of thing it is: optimizer, PEFT method, distributed engine, ...
    feature: str  # its name in LLaMA-Factory
    instead: str  # what tunesmith offers instead
    switch: str | None = None  # the key that turns the feature on
    off: tuple[Any, ...] = ()  # values besides false / null that mean "not used"


def _group(category: str, feature: str, instead: str, keys: str, switch: str | None = None,
           off: tuple[Any, ...] = ()) -> dict[str, Unsupported]:
    return {key: Unsupported(category, feature, instead, switch, off) for key in keys.split()}


TRAINER_PARALLELISM = ("tunesmith trains with transformers' Trainer: data parallel across the processes started by "
                       "`torchrun --nproc_per_node N` (or `accelerate launch`), sharded with `deepspeed` (a ZeRO "
                       "JSON config) or `fsdp`; there is no tensor, pipeline, context or expert parallelism")
INFER_BACKENDS = "use `infer_backend: huggingface` or `infer_backend: vllm` (with `vllm_maxlen`, `vllm_gpu_util`, " \
                 "`vllm_config`)"
KERNELS = ("tunesmith's own speed options do that work: `flash_attn: auto`, `chunked_loss`, `compile_layers` (see "
           "`tunesmith train --help`)")

# mcore_adapter (USE_MCA=1) and Megatron Bridge (use_megatron_bridge) keys.
MEGATRON_KEYS = """
    use_mca use_megatron_bridge megatron_bridge_args
    tensor_model_parallel_size pipeline_model_parallel_size virtual_pipeline_model_parallel_size
    context_parallel_size expert_model_parallel_size sequence_parallel pipeline_model_parallel_layout
    account_for_embedding_in_pipeline_split account_for_loss_in_pipeline_split overlap_p2p_comm variable_seq_lengths
    recompute_granularity recompute_method recompute_modules recompute_num_layers bias_activation_fusion
    apply_rope_fusion masked_softmax_fusion cross_entropy_loss_fusion moe_layer_recompute moe_token_dispatcher_type
    moe_aux_loss_coeff moe_grouped_gemm moe_expert_capacity_factor moe_pad_expert_input_to_capacity
    moe_token_drop_policy moe_shared_expert_overlap moe_router_dtype mtp_num_layers calculate_per_token_loss
    transformer_impl fp8_recipe fp8_param additional_configs accumulate_allreduce_grads_in_fp32
    use_distributed_optimizer distrib_optim_fully_reshardable distrib_optim_fully_reshardable_mem_efficient
    overlap_grad_reduce delay_grad_reduce overlap_param_gather check_for_nan_in_loss_and_grad
    ddp_average_in_collective ddp_bucket_size optimizer_cpu_offload optimizer_offload_fraction save_hf_model
    save_merged_model sequence_packing use_packed_sequences mixed_precision megatron_pretrained_checkpoint
    export_hf_on_finish extra_config
"""

UNSUPPORTED: dict[str, Unsupported] = {
    # PEFT methods and LoRA variants
    # losses
    **_group("loss variant", "BCO term of the DPO loss", "use `pref_loss` (sigmoid, hinge, ipo, kto_pair, orpo, "
             "simpo) and `pref_ftx`", "pref_bco_weight", off=(0, 0.0)),
    **_group("loss variant", "MoE router auxiliary loss coefficient", "set router_aux_loss_coef in the model's "
             "config.json", "moe_aux_loss_coef"),
    # distributed engines
    **_group("distributed engine", "Megatron-Core, LLaMA-Factory's USE_MCA=1 / use_megatron_bridge",
             TRAINER_PARALLELISM, MEGATRON_KEYS),
    **_group("distributed engine", "Ray, LLaMA-Factory's USE_RAY=1", "start the processes with `torchrun "
             "--nproc_per_node N` (or `accelerate launch`); torchrun takes --master_addr and --master_port",
             "ray_num_workers ray_init_kwargs ray_run_name ray_storage_path ray_storage_filesystem "
             "resources_per_worker placement_strategy master_addr master_port"),
    **_group("distributed engine", "HyperParallel", TRAINER_PARALLELISM,
             "use_hyper_parallel hyper_parallel_args hyper_parallel_cp_size", switch="use_hyper_parallel"),
    **_group("distributed engine", "shared-file-system data preparation", "each node prepares its data (set "
             "`tokenized_path` to reuse a saved copy)", "data_shared_file_system"),
    # hardware and kernel backends
    **_group("hardware backend", "KTransformers, MoE experts on the CPU with AMX", "experts train on the GPU like "
             "every other weight; a `deepspeed` ZeRO-3 offload config keeps weights in CPU memory",
             "use_kt kt_cpu_activation kt_weight_path kt_non_expert_weight_path kt_expert_checkpoint_path "
             "kt_use_lora_experts kt_lora_expert_num kt_lora_expert_intermediate_size kt_config", switch="use_kt"),
    **_group("kernel library", "Unsloth", KERNELS, "use_unsloth", switch="use_unsloth"),
    **_group("kernel library", "Unsloth gradient checkpointing", "use `gradient_checkpointing: true` (or "
             "`disable_gradient_checkpointing: false`)", "use_unsloth_gc"),
    **_group("kernel library", "LLaMA-Factory v1 kernels", KERNELS, "use_v1_kernels"),
    **_group("training argument", "removed from transformers' TrainingArguments in version 5", "set "
             "`transformer_layer_cls_to_wrap` in `fsdp_config`", "fsdp_transformer_layer_cls_to_wrap"),
    **_group("precision", "FP8 training", "train in `bf16: true` (or `pure_bf16: true`)",
             "fp8 fp8_backend fp8_enable_fsdp_float8_all_gather", switch="fp8"),
    **_group("precision", "fp16 upcasting", "not needed: tunesmith keeps trainable weights in float32 and uses "
             "autocast", "upcast_layernorm upcast_lmhead_output"),
    # model variants
    **_group("model conversion", "mixture-of-depths", "train the model as it is", "mixture_of_depths"),
    **_group("attention variant", "LongLoRA shift short attention (S²-Attn)", "tunesmith trains with full attention "
             "(`flash_attn` picks the kernel)", "shift_attn"),
    **_group("attention variant", "block-diagonal attention", "`packing: true` never attends across examples",
             "block_diag_attn"),
    **_group("model config", "RoPE scaling", "set rope_scaling in the model's config.json", "rope_scaling"),
    **_group("multimodal", "audio inputs", "tunesmith trains images and videos of Qwen-VL models; audio models "
             "(Qwen2-Audio, Qwen2.5-Omni) are not supported", "use_audio_in_video audio_sampling_rate",
             off=(16000,)),
    **_group("multimodal", "Gemma 3 pan-and-scan and InternVL patch cropping", "tunesmith's vision-language models "
             "are the Qwen-VL family, whose processors tile images themselves", "image_do_pan_and_scan "
             "crop_to_patches"),
    # inference backends
    **_group("inference backend", "SGLang", INFER_BACKENDS,
             "sglang_maxlen sglang_mem_fraction sglang_tp_size sglang_config sglang_lora_backend"),
    **_group("inference backend", "KTransformers", INFER_BACKENDS, "kt_optimize_rule cpu_infer chunk_size mode "
             "kt_maxlen kt_use_cuda_graph kt_mode kt_force_think"),
    **_group("inference option", "adapter folder", "name each adapter directory in `adapter_name_or_path` "
             "(comma-separated)", "adapter_folder"),
    **_group("inference option", "disk offload", "tunesmith does not offload weights to disk at inference",
             "offload_folder"),
    # evaluation, logging, hubs
    **_group("evaluation", "a generation config file for prediction", "set the decoding keys (`do_sample`, "
             "`temperature`, `top_p`, `max_new_tokens`, `num_beams`, ...) in the config", "generation_config"),
    **_group("evaluation", "per-dataset evaluation", "one metric set is reported over all eval datasets",
             "eval_on_each_dataset"),
    **_group("evaluation", "exam download mode", "`tunesmith eval` reads exams from a local `task_dir` folder",
             "download_mode"),
    **_group("data sampling", "sortish sampler", "use `train_sampling_strategy` (random, sequential, "
             "group_by_length, batch_rebalance)", "sortish_sampler"),
    **_group("experiment tracker", "SwanLab", "use `report_to` (tensorboard, wandb, ...)", "use_swanlab "
             "swanlab_project swanlab_workspace swanlab_run_name swanlab_mode swanlab_api_key swanlab_logdir "
             "swanlab_lark_webhook_url swanlab_lark_secret", switch="use_swanlab"),
    **_group("profiler", "torch profiler integration", "run torch.profiler (or `python -m torch.utils.bottleneck`) "
             "around `tunesmith train`", "enable_torch_profiler profile_modules profiler_active_steps "
             "profiler_output_dir profiler_profile_memory profiler_record_shapes profiler_repeat profiler_wait_steps "
             "profiler_warmup_steps profiler_with_stack", switch="enable_torch_profiler"),
    **_group("metrics", "effective tokens per second", "throughput is reported by the bench/ scripts",
             "include_effective_tokens_per_second"),
    **_group("model hub", "the Modelers (openMind) hub", "models come from local folders, the Hugging Face Hub or "
             "ModelScope (USE_MODELSCOPE_HUB=1, with `ms_hub_token`)", "om_hub_token"),
    **_group("tokenization", "split special tokens", "special tokens are never split by tunesmith's tokenization",
             "split_special_tokens"),
    **_group("template option", "preserve thinking", "whether thoughts stay in history follows the template "
             "(qwen3, deepseekr1, ...)", "preserve_thinking"),
}


def left_off(key: str, value: Any, raw_values: dict[str, Any]) -> bool:
    """The option is not used: false / null (or a value that means off), or its feature's switch is off."""
    entry = UNSUPPORTED[key]
    if switched_off(value) or any(value == v and type(value) is type(v) for v in entry.off):
        return True
    return bool(entry.switch and entry.switch != key and entry.switch in raw_values
                and switched_off(raw_values[entry.switch]))


def switched_off(value: Any) -> bool:
    """false / null, as YAML or as command-line text (no / off stay text when read)."""
    return value is None or value is False or (isinstance(value, str) and value.strip().lower() in
                                                ("false", "no", "off", "n", "none", "null", ""))


def describe(keys: list[str]) -> list[tuple[list[str], str]]:
    """Per feature: its keys, and "(category: feature); what to use instead"."""
    by_feature: dict[tuple[str, str, str], list[str]] = {}
    for key in keys:
        entry = UNSUPPORTED[key]
        by_feature.setdefault((entry.category, entry.feature, entry.instead), []).append(key)
    return [(names, f"({category}: {feature}); {instead}") for (category, feature, instead), names in
            by_feature.items()]
