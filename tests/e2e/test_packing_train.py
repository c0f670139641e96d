"""sft with packing trains on the same tokens with the same loss as unpacked training."""

from __future__ import annotations

from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training


def first_loss(out) -> float:
    return next(r["loss"] for r in read_log(out) if "loss" in r)


def test_packed_first_step_loss_equals_unpacked(qwen2_model, train_config, tmp_path, caplog):
    # one step over the whole set (8 examples) so both runs see exactly the same tokens in step 1
    common = dict(per_device_train_batch_size=8, max_steps=1, logging_steps=1, dataloader_num_workers=0)
    plain = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "plain"), packing=False, **common))
    with caplog.at_level("INFO", logger="tunesmith"):
        packed = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "packed"), packing=True,
                                           **common))
    assert "packing: 8 sequences -> 2 rows" in caplog.text or "packing: 8 sequences -> 1 rows" in caplog.text
    assert abs(first_loss(plain.output_dir) - first_loss(packed.output_dir)) < 1e-4


def test_padding_free_default_trains_like_padded_batches(qwen2_model, train_config, tmp_path, caplog):
    """The default sft batching (no packing key): the same examples per step as LLaMA-Factory's padded
    batches, laid end to end; the same steps, losses and weights as `packing: false` up to float rounding."""
    import torch
    from safetensors.torch import load_file

    common = dict(per_device_train_batch_size=2, gradient_accumulation_steps=2, max_steps=6, learning_rate=5e-3,
                  lr_scheduler_type="cosine", warmup_steps=1, dataset="arith,chat")
    padded = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "padded"), packing=False, **common))
    with caplog.at_level("INFO", logger="tunesmith"):
        free = run_training(train_config(qwen2_model, output_dir=str(tmp_path / "free"), **common))
    assert "batching                  padding-free" in caplog.text
    assert "10 examples -> 3 optimizer steps per epoch (4 examples per step)" in caplog.text
    losses = {name: [r["loss"] for r in read_log(run.output_dir) if "loss" in r] for name, run in
              (("padded", padded), ("free", free))}
    assert len(losses["free"]) == len(losses["padded"]) == 6
    assert losses["free"] == __import__("pytest").approx(losses["padded"], abs=1e-3)
    a, b = load_file(str(padded.output_dir / "model.safetensors")), load_file(str(free.output_dir / "model.safetensors"))
    assert all(torch.allclose(a[k], b[k], atol=1e-4) for k in a)
