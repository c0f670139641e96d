"""How much GPU memory the model states (weights, gradients, optimizer state) take per GPU under each engine,
computed from the model's shape: the numbers of docs/scaling.md. Activations, the CUDA context and allocator
slack come on top (they depend on batch, length and activation checkpointing, not on the engine).

Mixed precision with AdamW, as the ZeRO paper counts it: a trained parameter costs 16 bytes (2 the bfloat16
weight, 2 its gradient, 12 the float32 master copy and Adam's two moments); a frozen one 2 bytes (bfloat16).
- ddp: every GPU holds everything.
- zero2: weights replicated, gradients and optimizer state split over the N GPUs.
- zero2_offload: weights on the GPU, gradients and optimizer state in CPU memory.
- zero3 / fsdp2: everything split over the N GPUs, plus one decoder layer's weights gathered whole while it runs.
- zero3_offload: weights, gradients and optimizer state in CPU memory; the GPU holds the gathered layer.
"""

from __future__ import annotations

from dataclasses import dataclass

TRAINED_BYTES, FROZEN_BYTES = 16, 2
ENGINES = ("ddp", "zero2", "zero2_offload", "zero3", "fsdp2", "zero3_offload")


@dataclass(frozen=True)
class ModelShape:
    """A decoder-only transformer with gated MLPs (LLaMA, Qwen, Mistral): what its config.json says."""

    vocab: int
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int | None = None  # hidden // heads unless the config sets it
    tied_embeddings: bool = False

    def layer_parameters(self) -> int:
        d = self.head_dim or self.hidden // self.heads
        attention = 2 * self.hidden * self.heads * d + 2 * self.hidden * self.kv_heads * d  # q, o; k, v
        return attention + 3 * self.hidden * self.intermediate + 2 * self.hidden  # gate, up, down; two norms

    def parameters(self) -> int:
        embeddings = self.vocab * self.hidden * (1 if self.tied_embeddings else 2)
        return embeddings + self.layers * self.layer_parameters() + self.hidden  # final norm

    def lora_parameters(self, rank: int) -> int:
        """LoRA on every linear layer of every decoder layer (`lora_target: all`): r x (in + out) each."""
        d = self.head_dim or self.hidden // self.heads
        pairs = [(self.hidden, self.heads * d), (self.hidden, self.kv_heads * d), (self.hidden, self.kv_heads * d),
                 (self.heads * d, self.hidden), (self.hidden, self.intermediate), (self.hidden, self.intermediate),
                 (self.intermediate, self.hidden)]
        return self.layers * rank * sum(a + b for a, b in pairs)


LLAMA2_7B = ModelShape(vocab=32000, hidden=4096, layers=32, intermediate=11008, heads=32, kv_heads=32)
LLAMA2_70B = ModelShape(vocab=32000, hidden=8192, layers=80, intermediate=28672, heads=64, kv_heads=8)


def model_state_bytes(shape: ModelShape, engine: str, gpus: int, lora_rank: int | None = None) -> int:
    """Bytes of model states per GPU: full fine-tuning, or LoRA of ``lora_rank`` on a frozen base."""
    if engine not in ENGINES:
        raise ValueError(f"engine {engine!r}: one of {', '.join(ENGINES)}")
    if gpus < 1:
        raise ValueError(f"gpus must be at least 1, got {gpus}")
    total = shape.parameters()
    trained = shape.lora_parameters(lora_rank) if lora_rank else total
    weights = FROZEN_BYTES * (total + (trained if lora_rank else 0))  # bf16 base (+ the adapter)
    rest = (TRAINED_BYTES - FROZEN_BYTES) * trained  # gradients and optimizer state
    gathered = FROZEN_BYTES * shape.layer_parameters()  # one layer's weights, whole, while it runs
    if engine == "ddp":
        return weights + rest
    if engine == "zero2":
        return weights + rest // gpus
    if engine == "zero2_offload":
        return weights
    if engine in ("zero3", "fsdp2"):
        return (weights + rest) // gpus + gathered
    return gathered  # zero3_offload
