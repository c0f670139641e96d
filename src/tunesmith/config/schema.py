"""Typed config sections. Keys are flat and named as in LLaMA-Factory; each belongs to exactly one section.

Nothing here imports torch or transformers: a config is parsed and validated before heavy imports.
Every field carries its help text in ``metadata["help"]``; ``choices`` restricts string values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .fields import opt
from .schema_media import MediaArgs


STAGES = ("pt", "sft", "rm", "ppo", "dpo", "kto", "grpo")
PREF_LOSSES = ("sigmoid", "hinge", "ipo", "kto_pair", "orpo", "simpo")
FINETUNING_TYPES = ("full", "freeze", "lora", "oft")
INFER_BACKENDS = ("huggingface", "vllm", "sglang", "ktransformers")
IMPLEMENTED_BACKENDS = ("huggingface", "vllm")
REWARD_MODEL_TYPES = ("lora", "full", "api")
GRPO_LOSSES = ("grpo", "dr_grpo", "dapo", "bnpo")
REWARD_SCALINGS = ("group", "batch", "none")
# templates/tools.py FORMATS, LLaMA-Factory's tool formats (a test keeps them equal)
TOOL_FORMATS = ("default", "qwen", "llama3", "mistral", "gemma4", "glm4", "glm4_moe", "lfm2", "ling", "minimax1",
                "minimax2", "qwen3_5", "seed_oss")


@dataclass(frozen=True)
class ModelArgs:
    """The model to fine-tune or use, and how it loads."""

    model_name_or_path: str | None = opt(
        None, "The model to fine-tune: a local folder, or a Hugging Face Hub id (org/name), downloaded into the hub "
              "cache when online (with cache_dir, model_revision and hf_hub_token); offline (HF_HUB_OFFLINE=1, or "
              "the hub unreachable) an id already in the cache loads. Paths like ./x, /x, ~/x or a/b/c are always "
              "local. USE_MODELSCOPE_HUB=1 takes ids from ModelScope.")
    adapter_name_or_path: tuple[str, ...] = opt(
        (), "PEFT adapter dirs, comma-separated, applied in order.", list_sep=True)
    trust_remote_code: bool = opt(False, "Allow model code shipped with the checkpoint.")
    cache_dir: str | None = opt(None, "Where hub downloads are cached and looked up (default: the Hugging Face "
                                      "cache, HF_HUB_CACHE / HF_HOME).")
    model_revision: str = opt("main", "Revision (branch, tag or commit hash) of a hub id: the one downloaded, or "
                                      "offline looked up in the cache; ignored for a local folder.")
    use_fast_tokenizer: bool = opt(True, "Use the fast (Rust) tokenizer.")
    train_from_scratch: bool = opt(False, "Randomly initialise the model from its config instead of loading weights.")
    flash_attn: str = opt(
        "auto", "Attention kernel. auto: flash-attention 2 when installed (CUDA), else PyTorch's varlen flash kernel "
                "for packed training (CUDA), else SDPA; varlen / flex / sdpa / eager / fa2 / fa3 ask for one.",
        choices=("auto", "disabled", "sdpa", "fa2", "fa3", "eager", "flex", "varlen"))
    low_cpu_mem_usage: bool = opt(
        True, "Accepted for LLaMA-Factory compatibility: transformers 5 always loads weights lazily (the model is "
              "built on the meta device and filled from the checkpoint), so false changes nothing (logged).")
    print_param_status: bool = opt(False, "Log every parameter's name, shape and trainable flag.")
    disable_gradient_checkpointing: bool | None = opt(
        None, "LLaMA-Factory's switch: false turns activation (gradient) checkpointing on, true keeps it off. Unset: "
              "tunesmith's default, off unless `gradient_checkpointing: true` (LLaMA-Factory turns it on).")
    use_reentrant_gc: bool = opt(True, "Reentrant activation checkpointing (as in LLaMA-Factory).")
    hf_hub_token: str | None = opt(
        None, "Hugging Face Hub token, sent with every hub request (gated and private models); default: the token "
              "saved by `hf auth login`, or HF_TOKEN.")
    ms_hub_token: str | None = opt(None, "ModelScope token (private models and datasets), used with "
                                         "USE_MODELSCOPE_HUB=1.")
    quantization_bit: int | None = opt(None, "QLoRA: quantize the model on the fly to 4/8 (bnb), 1-6/8 (hqq) or 8 "
                                             "(eetq) bits; a pre-quantized checkpoint (GPTQ, AWQ...) loads as stored.")
    quantization_method: str = opt("bnb", "bnb (GPU/CPU), hqq (GPU/CPU) or eetq (GPU).", choices=("bnb", "hqq", "eetq"))
    quantization_type: str = opt("nf4", "bnb 4-bit data type.", choices=("nf4", "fp4"))
    double_quantization: bool = opt(True, "bnb 4-bit: quantize the quantization constants too.")
    quantization_device_map: str | None = opt(None, "`auto`: spread a 4-bit bnb model over the devices (inference "
                                                    "only).", choices=("auto",))


@dataclass(frozen=True)
class DataArgs:
    """Datasets, the chat template, and how examples become tokens."""

    dataset: tuple[str, ...] = opt((), "Training dataset names from dataset_info.json, comma-separated.", list_sep=True)
    eval_dataset: tuple[str, ...] = opt((), "Evaluation dataset names, comma-separated.", list_sep=True)
    dataset_dir: str = opt("data", "Folder holding dataset_info.json and the data files.")
    template: str | None = opt(None, "Chat template name (e.g. qwen3_nothink, llama3).")
    cutoff_len: int = opt(2048, "Maximum tokens per example after tokenisation.")
    train_on_prompt: bool = opt(False, "Also train on prompt tokens.")
    mask_history: bool = opt(False, "Train only the last assistant turn of each conversation.")
    max_samples: int | None = opt(None, "Keep at most this many examples per dataset.")
    val_size: float = opt(0.0, "Held-out fraction (< 1) or count (>= 1) of the training data for evaluation.")
    preprocessing_num_workers: int | None = opt(
        None, "Accepted for LLaMA-Factory compatibility: tunesmith tokenizes in batches on the tokenizer's own "
              "thread pool, which uses every CPU core whatever this says.")
    preprocessing_batch_size: int = opt(1000, "Examples per preprocessing batch.")
    overwrite_cache: bool = opt(False, "Re-tokenise even if a cached result exists.")
    packing: bool | None = opt(None, "Pack several sequences per row of cutoff_len tokens, never attending to each "
                                     "other (default: on for pt and sft; preference stages never pack).")
    neat_packing: bool = opt(False, "Pack without cross-attention (tunesmith packing never leaks; implies packing).")
    mix_strategy: str = opt(
        "concat", "How several datasets are mixed.",
        choices=("concat", "interleave_under", "interleave_over", "interleave_once", "sequential"),
    )
    interleave_probs: tuple[float, ...] = opt(
        (), "Sampling probabilities for interleave_*, comma-separated.", list_sep=True)
    streaming: bool = opt(False, "Stream the data instead of loading it into memory.")
    buffer_size: int = opt(16384, "Shuffle buffer size when streaming.")
    tokenized_path: str | None = opt(None, "Save/load the tokenised dataset here.")
    default_system: str | None = opt(None, "System message used when an example has none.")
    enable_thinking: bool | None = opt(True, "Reasoning templates: keep thinking blocks.")
    tool_format: str | None = opt(
        None, "How tools and function calls are written, instead of the template's own format, as LLaMA-Factory "
              "writes them: default (ReAct-style Action lines), qwen (<tool_call> blocks), llama3, mistral, gemma4, "
              "glm4, glm4_moe, lfm2, ling, minimax1, minimax2, qwen3_5 or seed_oss.", choices=TOOL_FORMATS)
    ignore_pad_token_for_loss: bool = opt(True, "Accepted for LLaMA-Factory compatibility; pads are never trained.")
    disable_shuffling: bool = opt(False, "Feed training examples in dataset order.")


@dataclass(frozen=True)
class OptimizerArgs:
    """Memory-saving and alternative optimizers (LLaMA-Factory's keys; part of the finetuning section). At most
    one of GaLore, APOLLO and BAdam; Adam-mini and Muon replace AdamW; LoRA+ gives LoRA's B matrices their own
    learning rate. Other optimizers: `optim` (any transformers optimizer name)."""

    use_galore: bool = opt(False, "GaLore: Adam states of the target linear weights live in a low-rank projection "
                                  "of their gradients (galore-torch; full or freeze fine-tuning).")
    galore_target: tuple[str, ...] = opt(("all",), "GaLore: names of the linear modules it projects (all = every "
                                                   "linear layer but the output head).", list_sep=True)
    galore_rank: int = opt(16, "GaLore: rank of the projected gradients.")
    galore_update_interval: int = opt(200, "GaLore: optimizer steps between projection updates.")
    galore_scale: float = opt(2.0, "GaLore: scale of the projected-back update.")
    galore_proj_type: str = opt("std", "GaLore: projection side.", choices=("std", "reverse_std", "right", "left",
                                                                             "full"))
    galore_layerwise: bool = opt(False, "GaLore: step each weight inside backward as soon as its gradient is "
                                        "ready (no gradient kept; needs gradient_accumulation_steps 1, one process; "
                                        "no gradient clipping).")
    use_apollo: bool = opt(False, "APOLLO: AdamW with low-rank auxiliary states that scale each channel's "
                                  "gradient (apollo-torch; full or freeze fine-tuning).")
    apollo_target: tuple[str, ...] = opt(("all",), "APOLLO: names of the linear modules it applies to (all = "
                                                   "every linear layer but the output head).", list_sep=True)
    apollo_rank: int = opt(16, "APOLLO: rank of the auxiliary space.")
    apollo_update_interval: int = opt(200, "APOLLO: optimizer steps between projection updates.")
    apollo_scale: float = opt(32.0, "APOLLO: scaling coefficient.")
    apollo_proj: str = opt("random", "APOLLO: projection, svd or random.", choices=("svd", "random"))
    apollo_proj_type: str = opt("std", "APOLLO: projection side.", choices=("std", "right", "left"))
    apollo_scale_type: str = opt("channel", "APOLLO: scaling per channel or per tensor.", choices=("channel",
                                                                                                   "tensor"))
    apollo_layerwise: bool = opt(False, "APOLLO: step each weight inside backward (as galore_layerwise).")
    apollo_scale_front: bool = opt(False, "APOLLO: apply the norm-growth limiter before gradient scaling.")
    use_badam: bool = opt(False, "BAdam: block coordinate descent, one block of decoder layers trains at a time "
                                 "(badam; full fine-tuning).")
    badam_mode: str = opt("layer", "BAdam: layer (whole decoder layers in turn) or ratio (a share of each "
                                   "weight).", choices=("layer", "ratio"))
    badam_start_block: int | None = opt(None, "BAdam layer mode: index of the first block (default: by "
                                              "badam_switch_mode).")
    badam_switch_mode: str | None = opt("ascending", "BAdam layer mode: order of the blocks.",
                                        choices=("ascending", "descending", "random", "fixed"))
    badam_switch_interval: int | None = opt(50, "BAdam layer mode: optimizer steps per block (-1: never switch).")
    badam_update_ratio: float = opt(0.05, "BAdam ratio mode: share of each weight updated.")
    badam_mask_mode: str = opt("adjacent", "BAdam ratio mode: the updated entries are adjacent or scattered.",
                               choices=("adjacent", "scatter"))
    badam_verbose: int = opt(0, "BAdam: 0 quiet, 1 log the active block, 2 also its parameters.")
    use_adam_mini: bool = opt(False, "Adam-mini: one second-moment value per parameter block (adam-mini).")
    use_muon: bool = opt(False, "Muon (PyTorch's torch.optim.Muon) for 2-D hidden weights, AdamW for embeddings, "
                                "the head and 1-D weights.")
    loraplus_lr_ratio: float | None = opt(None, "LoRA+: learning rate of LoRA's B matrices = ratio x "
                                                "learning_rate (lora only).")
    loraplus_lr_embedding: float = opt(1e-6, "LoRA+: learning rate of LoRA embedding B matrices.")


@dataclass(frozen=True)
class FinetuningArgs(OptimizerArgs):
    """The training stage and which weights train (full, freeze, lora or oft)."""

    stage: str = opt("sft", "Training stage.", choices=STAGES)
    finetuning_type: str = opt("lora", "Which weights train.", choices=FINETUNING_TYPES)
    freeze_trainable_layers: int = opt(2, "freeze: +N trains the last N layers, -N the first N.")
    freeze_trainable_modules: tuple[str, ...] = opt(
        ("all",), "freeze: module names inside the trainable layers (e.g. mlp,self_attn) or all.", list_sep=True
    )
    freeze_extra_modules: tuple[str, ...] = opt(
        (), "freeze: extra non-layer modules to train (e.g. embed_tokens).", list_sep=True)
    lora_rank: int = opt(8, "LoRA rank.")
    lora_alpha: float | None = opt(None, "LoRA alpha (default: 2 x rank).")
    lora_dropout: float = opt(0.0, "LoRA dropout.")
    lora_target: tuple[str, ...] = opt(
        ("all",), "Modules that get LoRA (all = every linear layer but the head).", list_sep=True)
    additional_target: tuple[str, ...] = opt((), "Modules trained fully and saved with the adapter.", list_sep=True)
    use_rslora: bool = opt(False, "Rank-stabilised LoRA scaling.")
    use_dora: bool = opt(False, "Weight-decomposed LoRA (DoRA).")
    create_new_adapter: bool = opt(
        False, "Start a fresh adapter on top of loaded adapters instead of resuming the last.")
    pissa_init: bool = opt(False, "lora: initialise the adapter from the principal singular values of each weight "
                                  "(PiSSA); the base keeps the residual, so the model's output starts unchanged.")
    pissa_iter: int = opt(16, "PiSSA: iterations of the fast randomised SVD (-1: exact SVD).")
    pissa_convert: bool = opt(False, "PiSSA: save the trained adapter converted to a plain LoRA adapter that "
                                     "applies to the original base model.")
    oft_rank: int = opt(0, "oft: number of orthogonal blocks per layer (0: set by oft_block_size).")
    oft_block_size: int = opt(32, "oft: size of each orthogonal block (0: set by oft_rank).")
    oft_target: tuple[str, ...] = opt(("all",), "oft: accepted as in LLaMA-Factory, where OFT's targets come from "
                                                "`lora_target`.", list_sep=True)
    module_dropout: float = opt(0.0, "oft: probability of dropping a whole orthogonal block while training.")
    use_llama_pro: bool = opt(False, "LLaMA Pro: train only the blocks `tunesmith llama-pro` inserted "
                                     "(`freeze_trainable_layers` = how many; freeze or lora).")
    use_dft_loss: bool = opt(False, "sft: DFT loss, each token's cross-entropy times its (detached) probability.")
    use_asft_loss: bool = opt(False, "sft: ASFT loss, the DFT loss plus `asft_alpha` x KL(reference || model).")
    asft_alpha: float = opt(0.1, "ASFT: weight of the KL term.")
    use_eaft_loss: bool = opt(False, "sft: EAFT loss, each token's cross-entropy times (top-20 entropy / 3) ^ "
                                     "`eaft_alpha`, detached.")
    eaft_alpha: float = opt(1.0, "EAFT: exponent of the entropy weight.")
    plot_loss: bool = opt(False, "Write training_loss.png into output_dir.")
    compute_accuracy: bool = opt(False, "sft/pt: report `eval_accuracy` at evaluation, the share of trained next "
                                        "tokens predicted exactly (argmax), averaged per example as in "
                                        "LLaMA-Factory; needs `val_size` or `eval_dataset`.")


@dataclass(frozen=True)
class TokenArgs:
    """Adding special tokens, initialising their rows, and how they train."""

    add_tokens: tuple[str, ...] = opt((), "Plain tokens to add, comma-separated.", list_sep=True)
    add_special_tokens: tuple[str, ...] = opt((), "Special tokens to add, comma-separated.", list_sep=True)
    new_special_tokens_config: str | None = opt(None, "YAML file mapping each new special token to a description.")
    special_tokens_file: str | None = opt(None, "Text file with one special token per line to add.")
    add_extra_id_tokens: int = opt(0, "Add <extra_id_0> .. <extra_id_{N-1}> as special tokens.")
    init_special_tokens: str = opt("noise_init", "How new rows start.",
                                   choices=("noise_init", "desc_init", "desc_init_w_noise", "mean", "random", "copy"))
    init_special_tokens_from: dict[str, str] = opt(
        {}, "Copy-initialise rows: `<tok>=-,<tok2>=answer` (a token or string per new token; `*=-` for all).")
    resize_vocab: bool = opt(False, "Accepted for LLaMA-Factory compatibility: tunesmith resizes when needed.")
    resize_vocab_multiple: int = opt(64, "Pad the resized embedding to a multiple of this many rows.")
    freeze_extra_id_steps: int = opt(0, "Keep the rows of every <extra_id_N> token bit-identical for K steps.")
    freeze_tokens: tuple[str, ...] = opt((), "Tokens whose rows stay frozen for `freeze_token_steps` (`new` = "
                                             "every added token).", list_sep=True)
    freeze_token_steps: int = opt(0, "Steps during which `freeze_tokens` rows stay bit-identical.")
    extra_id_loss_weight: float | None = opt(None, "Loss weight of <extra_id_N> targets (others 1.0).")
    token_loss_weights: dict[str, float] = opt({}, "Per-token loss weights: `<sep>=2.0,<eos>=0.5`.")
    train_new_tokens_only: bool = opt(False, "Train only the rows of added tokens; every other weight frozen.")
    unfreeze_schedule: tuple[str, ...] = opt(
        (), "Layered unfreezing: `new_tokens@0,top2@100,all@300` (what trains from which step).", list_sep=True)
    special_token_metrics: bool | None = opt(None, "Log special-token loss/accuracy (default: on when tokens "
                                                   "were added or weighted).")


@dataclass(frozen=True)
class PreferenceArgs:
    """Preference stages (rm, dpo, kto): losses, their coefficients and the reference model."""

    pref_beta: float = opt(0.1, "beta of the preference loss (KL strength for dpo/kto; reward scale for orpo/simpo).")
    pref_ftx: float = opt(0.0, "Coefficient of an SFT term on the chosen replies added to the dpo/kto loss.")
    pref_loss: str = opt("sigmoid", "dpo loss: sigmoid (DPO), hinge, ipo, kto_pair, orpo, simpo.", choices=PREF_LOSSES)
    dpo_label_smoothing: float = opt(0.0, "Robust/conservative DPO label smoothing in [0, 0.5) (sigmoid loss).")
    simpo_gamma: float = opt(0.5, "SimPO target reward margin.")
    ld_alpha: float | None = opt(None, "LD-DPO: weight in [0, 1] of reply tokens beyond the shorter reply's length.")
    kto_chosen_weight: float = opt(1.0, "KTO weight of desirable examples.")
    kto_rejected_weight: float = opt(1.0, "KTO weight of undesirable examples.")
    ref_model: str | None = opt(None, "Reference model directory (default: lora -> the base with adapters off; "
                                      "otherwise a frozen copy of the starting model).")
    ref_model_adapters: tuple[str, ...] = opt((), "Adapters applied to `ref_model`, comma-separated.", list_sep=True)
    ref_model_quantization_bit: int | None = opt(None, "Quantize `ref_model` on the fly to this many bits.")
    precompute_ref_log_probs: bool = opt(
        False, "Score the data with the reference once before training and keep no reference in memory.")


@dataclass(frozen=True)
class PPOArgs:
    """Stage ppo: the reward model and the PPO optimisation (LLaMA-Factory's names). The reference model is
    `ref_model` (+ `ref_model_adapters`) of the preference section."""

    reward_model: str | None = opt(None, "Reward model: a reward lora adapter on the policy's base (lora), a reward "
                                         "model directory (full), or the URL of a scoring endpoint (api).")
    reward_model_adapters: tuple[str, ...] = opt(
        (), "Adapters merged into a full `reward_model`, comma-separated.", list_sep=True)
    reward_model_quantization_bit: int | None = opt(None, "Quantize a full `reward_model` to this many bits.")
    reward_model_type: str = opt("lora", "How `reward_model` is used: lora (an adapter on the policy's own base "
                                         "weights, needs finetuning_type lora), full (a separate model) or api (an "
                                         "HTTP endpoint).", choices=REWARD_MODEL_TYPES)
    ppo_epochs: int = opt(4, "Optimisation passes over each batch of rollouts.")
    ppo_buffer_size: int = opt(1, "Rollout batches (of per_device_train_batch_size x gradient_accumulation_steps "
                                  "prompts) collected per PPO step.")
    ppo_target: float = opt(6.0, "Target KL of the adaptive KL controller.")
    ppo_score_norm: bool = opt(False, "Normalise reward scores with their running mean and standard deviation.")
    ppo_whiten_rewards: bool = opt(False, "Whiten the per-token rewards before computing advantages.")


@dataclass(frozen=True)
class GRPOArgs:
    """Stage grpo: group relative policy optimisation with verifiable rewards (TRL's GRPOConfig names and
    defaults). Rewards are `reward_funcs` (Python functions, `module:function`, or built-ins) and, when set,
    the reward model of the ppo section (`reward_model`, `reward_model_type`)."""

    num_generations: int = opt(8, "Completions sampled per prompt (a group); per_device_train_batch_size x "
                                  "gradient_accumulation_steps completions must be a multiple of it.")
    max_completion_length: int = opt(512, "Maximum tokens of a generated completion.")
    reward_funcs: tuple[str, ...] = opt(
        (), "Reward functions, comma-separated: `module:function` (called as f(prompts, completions, "
            "completion_ids, solution, **columns) -> list of floats or None), or the built-ins `accuracy` (the "
            "completion's answer equals the dataset's reply) and `format` (`<think>...</think><answer>...</answer>`).",
        list_sep=True)
    reward_weights: tuple[float, ...] = opt((), "Weight of each reward (reward_funcs in order, then the reward "
                                                "model); default 1.0 each.", list_sep=True)
    scale_rewards: str = opt("group", "Advantage scaling: group (by the group's reward std), batch (by the batch's) "
                                      "or none.", choices=REWARD_SCALINGS)
    loss_type: str = opt("dapo", "Loss aggregation: grpo (per-sequence mean), dr_grpo (sum / (completions x "
                                 "max_completion_length)), dapo (sum / tokens of the accumulation window), bnpo "
                                 "(sum / tokens of the micro-batch).", choices=GRPO_LOSSES)
    beta: float = opt(0.0, "KL coefficient to the reference policy (0: no reference is built).")
    epsilon: float = opt(0.2, "Lower clipping bound of the probability ratio (1 - epsilon).")
    epsilon_high: float | None = opt(None, "Upper clipping bound (1 + epsilon_high); default `epsilon`.")
    num_iterations: int = opt(1, "Optimisation passes (optimizer steps) over each batch of generations.")
    mask_truncated_completions: bool = opt(False, "Leave completions cut at max_completion_length out of the loss.")
    log_completions: bool = opt(True, "Write sample completions with their rewards to completions.jsonl at every "
                                      "logging step.")
    num_completions_to_print: int | None = opt(4, "Completions written per logging step (None: all of the step).")


@dataclass(frozen=True)
class SpeedArgs:
    """How fast a run trains. Every option keeps the results exact (the same loss and gradients)."""

    chunked_loss: bool = opt(
        True, "Compute the language-model loss from the final hidden states of the trained positions only, in "
              "chunks, never materialising the batch's full-vocabulary logits (same loss and gradients, far less "
              "memory). The standard loss is used where the head is not a plain linear layer (an adapter or "
              "soft-capping on it) or evaluation needs the logits.")
    loss_chunk_size: int = opt(0, "Positions per chunk of the chunked loss (0: automatic, at most 2 GiB of "
                                  "float32 logits per chunk).")
    max_tokens_per_batch: int = opt(
        0, "Token-budget batching: each training micro-batch holds as many examples (or packed rows) as fit in this "
           "many tokens, padding included, grouped by length; replaces per_device_train_batch_size for training "
           "(0: off). Useful for unpacked data (packing: false, rm, dpo, kto).")
    compile_layers: bool | None = opt(
        None, "torch.compile every decoder layer (fewer kernel launches and less Python per step). Unset: on for "
              "packed bf16/fp16 training on a CUDA GPU (rows then keep one shape), off otherwise and when "
              "`torch_compile` compiles the whole model; the first steps compile.")
    shared_prompt: bool = opt(
        True, "Replies to one prompt (dpo/rm chosen and rejected, a grpo group) share one row and one prompt pass "
              "(exact 4D attention mask; same log-probs). Applied with SDPA attention and no sliding window; false: "
              "one row per reply.")
    enable_liger_kernel: bool = opt(
        False, "LLaMA-Factory's switch for Liger kernels. tunesmith's own paths do that work (the chunked loss is a "
               "fused linear cross-entropy; compiled layers fuse the norms and activations), so true only says so "
               "in the log; liger-kernel is never imported.")
    pure_bf16: bool = opt(
        False, "LLaMA-Factory's pure bf16: weights, gradients and optimizer states in bfloat16, no float32 master "
               "copy and no autocast (less memory and traffic; updates below bf16 resolution are lost). CPU: "
               "float32 with one warning.")
    cuda_alloc_conf: str | None = opt(
        "expandable_segments:True", "PYTORCH_CUDA_ALLOC_CONF for the run unless the environment sets it "
                                    "(expandable segments keep variable-shape batches from fragmenting memory).")


@dataclass(frozen=True)
class RunArgs:
    """tunesmith/LLaMA-Factory run options that are not transformers TrainingArguments."""

    overwrite_output_dir: bool = opt(False, "Allow writing into a non-empty output_dir (otherwise refuse).")


@dataclass(frozen=True)
class InferArgs:
    """How chat/api load and run a model (LLaMA-Factory's inference keys)."""

    infer_backend: str = opt("huggingface", "Inference engine: huggingface (transformers generate) or vllm (when "
                                            "installed).", choices=INFER_BACKENDS)
    infer_dtype: str = opt("auto", "Weights dtype at inference (auto: float32 on CPU, the checkpoint's dtype on GPU).",
                           choices=("auto", "float16", "bfloat16", "float32"))
    use_kv_cache: bool = opt(True, "Use the KV cache while generating.")
    infer_max_batch: int = opt(16, "huggingface backend: the most concurrent requests (api) generated together as "
                                   "one batch; 1 serves them one at a time.")
    vllm_maxlen: int = opt(4096, "vllm: maximum prompt + reply length.")
    vllm_gpu_util: float = opt(0.7, "vllm: fraction of GPU memory in (0, 1) the engine may use.")
    vllm_enforce_eager: bool = opt(False, "vllm: disable CUDA graphs.")
    vllm_max_lora_rank: int = opt(32, "vllm: the largest LoRA rank it must serve.")
    vllm_config: Any = opt(None, "vllm: extra engine arguments, a mapping or a JSON object string.")


@dataclass(frozen=True)
class GeneratingArgs:
    """Decoding defaults for chat and api (a request's own values win) and for ppo rollouts."""

    do_sample: bool = opt(True, "Sample; false decodes greedily.")
    temperature: float = opt(0.95, "Sampling temperature (0 decodes greedily).")
    top_p: float = opt(0.7, "Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p.")
    top_k: int = opt(50, "Keep only the top_k most likely tokens when sampling (0: no limit).")
    num_beams: int = opt(1, "Beam search width (1: no beam search; chat and api need 1 to stream).")
    max_length: int = opt(1024, "Maximum prompt + reply tokens, used when max_new_tokens <= 0.")
    max_new_tokens: int = opt(1024, "Maximum reply tokens.")
    repetition_penalty: float = opt(1.0, "Penalty for repeated tokens (1.0: none).")
    length_penalty: float = opt(1.0, "Beam search length penalty.")
    skip_special_tokens: bool = opt(True, "Drop special tokens from the decoded reply.")


@dataclass(frozen=True)
class ExportArgs:
    """`tunesmith export`: merge adapters and write a plain transformers model."""

    export_dir: str | None = opt(None, "Where the merged model, tokenizer and generation config are written.")
    export_size: float = opt(5.0, "Largest safetensors shard, in GB.")
    export_device: str = opt("cpu", "Device used to merge: cpu, or auto (the GPU when there is one).",
                             choices=("cpu", "auto"))
    export_legacy_format: bool = opt(False, "Write .bin files instead of safetensors (not available: transformers 5 "
                                            "writes safetensors only).")
    export_hub_model_id: str | None = opt(None, "Hub repository to push to (not available: tunesmith never uploads).")
    overwrite_export_dir: bool = opt(False, "Replace a non-empty export_dir (otherwise refuse).")
    export_quantization_bit: int | None = opt(None, "GPTQ-quantize the export to 2/3/4/8 bits (gptqmodel, optimum).")
    export_quantization_dataset: str | None = opt(None, "Text file or hub dataset (`text` column) to calibrate on.")
    export_quantization_nsamples: int = opt(128, "Calibration samples for export quantization.")
    export_quantization_maxlen: int = opt(1024, "Tokens per calibration sample for export quantization.")


@dataclass(frozen=True)
class ApiArgs:
    """`tunesmith api`. Unset values fall back to LLaMA-Factory's environment variables API_HOST, API_PORT,
    API_KEY and API_MODEL_NAME."""

    api_host: str | None = opt(None, "Address to listen on (env API_HOST; default 127.0.0.1, this machine only; "
                                     "0.0.0.0 for every interface, with `api_key` set).")
    api_port: int | None = opt(None, "Port to listen on (env API_PORT; default 8000).")
    api_key: str | None = opt(None, "Require `Authorization: Bearer <key>` (env API_KEY; default: no key).")
    api_model_name: str | None = opt(None, "Model id reported by /v1/models (env API_MODEL_NAME; default gpt-3.5-turbo).")
    api_media_dir: tuple[str, ...] = opt((), "Folders whose image files requests may name (env API_MEDIA_DIR; "
                                             "default none).", list_sep=True)
    api_allow_remote_media: bool | None = opt(None, "Fetch http(s) image URLs, public addresses only (env "
                                                    "API_ALLOW_REMOTE_MEDIA; default off).")


@dataclass(frozen=True)
class EvalArgs:
    """Evaluation and prediction without training, early stopping, and `tunesmith eval` exams (LLaMA-Factory's
    names and defaults)."""

    predict_with_generate: bool = opt(False, "sft with `do_predict`: generate a reply for every evaluation example "
                                             "(decoding from the generating section), write "
                                             "generated_predictions.jsonl and BLEU-4 / ROUGE to "
                                             "predict_results.json.")
    generation_max_length: int | None = opt(
        None, "Accepted as in LLaMA-Factory, where the generating section's `max_new_tokens` (or `max_length` "
              "when it is 0) bounds generated replies instead.")
    generation_num_beams: int | None = opt(None, "Accepted as in LLaMA-Factory, where `num_beams` of the "
                                                 "generating section decides.")
    eval_num_beams: int | None = opt(None, "Accepted as in LLaMA-Factory, where `num_beams` of the generating "
                                           "section decides.")
    early_stopping_steps: int | None = opt(
        None, "Stop training after this many evaluations without an improvement of `metric_for_best_model` "
              "(default loss).")
    task: str | None = opt(None, "`tunesmith eval`: <folder>_<split> of an exam under task_dir, e.g. mmlu_test.")
    task_dir: str = opt("evaluation", "`tunesmith eval`: the folder holding the exam folders.")
    batch_size: int = opt(4, "`tunesmith eval`: questions per forward pass.")
    lang: str = opt("en", "`tunesmith eval`: language of the exam prompt.", choices=("en", "zh"))
    n_shot: int = opt(5, "`tunesmith eval`: solved examples from the dev split before each question.")
    save_dir: str | None = opt(None, "`tunesmith eval`: a new folder for results.json, results.log and scores.json.")


SECTIONS: dict[str, type] = {
    "model": ModelArgs,
    "data": DataArgs,
    "finetuning": FinetuningArgs,
    "tokens": TokenArgs,
    "preference": PreferenceArgs,
    "ppo": PPOArgs,
    "grpo": GRPOArgs,
    "speed": SpeedArgs,
    "run": RunArgs,
    "infer": InferArgs,
    "generating": GeneratingArgs,
    "export": ExportArgs,
    "api": ApiArgs,
    "evaluation": EvalArgs,
    "media": MediaArgs,
}


@dataclass(frozen=True)
class Config:
    """The whole validated run configuration."""

    model: ModelArgs
    data: DataArgs
    finetuning: FinetuningArgs
    tokens: TokenArgs
    preference: PreferenceArgs
    ppo: PPOArgs
    grpo: GRPOArgs
    speed: SpeedArgs
    run: RunArgs
    infer: InferArgs
    generating: GeneratingArgs
    export: ExportArgs
    api: ApiArgs
    training: dict[str, Any]  # transformers.TrainingArguments keyword arguments
    sources: tuple[str, ...] = ()  # files and overrides this config was read from
    evaluation: EvalArgs = field(default_factory=EvalArgs)
    media: MediaArgs = field(default_factory=MediaArgs)

    @property
    def stage(self) -> str:
        return self.finetuning.stage

    @property
    def output_dir(self) -> str:
        return self.training["output_dir"]
