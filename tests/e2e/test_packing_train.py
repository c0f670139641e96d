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
