"""Run one tunesmith SFT variant on the benchmark assets with the harness's TokenMeter.

usage: python run_tunesmith.py --assets /tmp/bench_assets --variant full --out $OUT/ts_full.json
         [--skip-steps 10] [--window-s 30] [--max-total-s 110] [--set key=value ...]

The same work as harness/run_llamafactory.py: the same model, data (alpaca, `template: chatml`), cutoff_len
2048, per_device_train_batch_size 8, learning rates, schedule, bf16 and seed, through tunesmith's own entry
point `run_training` with tunesmith's defaults (padding-free batches of the same examples per step as
LLaMA-Factory's, chunked loss, automatic attention) unless a variant says otherwise. Tokens are counted by the harness's TokenMeter on the batch handed to the loss: tunesmith's
chunked loss passes no `labels` to the model's forward (it computes the loss from the head's input), so the
meter's forward hook would not see them; the batch counted is exactly what the forward receives, plus labels.
"""

import argparse
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "harness"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "src"))
import common  # noqa: E402
from run_llamafactory import parse_value  # noqa: E402  (the same --set parsing as the LLaMA-Factory runner)

BASE = dict(
    stage="sft", do_train=True, finetuning_type="full", dataset="synth_alpaca", template="chatml",
    cutoff_len=common.CUTOFF_LEN, overwrite_cache=True, preprocessing_num_workers=16, dataloader_num_workers=4,
    logging_steps=5, save_strategy="no", plot_loss=False, overwrite_output_dir=True, report_to="none",
    per_device_train_batch_size=8, gradient_accumulation_steps=1, learning_rate=1.0e-5,
    lr_scheduler_type="cosine", warmup_ratio=0.1, bf16=True, seed=42, max_steps=300,
)

VARIANTS = {
    "full": {},  # tunesmith defaults (padding-free batches, chunked loss, varlen attention on a GPU)
    "full_packed": dict(packing=True),  # rows of cutoff_len, as LLaMA-Factory's neat_packing (compiled layers)
    "full_eager": dict(compile_layers=False),
    "full_pure_bf16": dict(pure_bf16=True),
    "full_sdpa": dict(flash_attn="sdpa"),  # the block-diagonal mask instead of a varlen kernel
    "full_standard_loss": dict(chunked_loss=False),
    "full_unpacked": dict(packing=False),
    "lora": dict(finetuning_type="lora", lora_rank=8, lora_target="all", learning_rate=1.0e-4),
    "lora_eager": dict(finetuning_type="lora", lora_rank=8, lora_target="all", learning_rate=1.0e-4,
                       compile_layers=False),
}


def metered_trainer(meter):
    """TunesmithTrainer whose training batches are counted where the loss receives them."""
    from tunesmith.train import trainer as trainer_module

    class MeteredTrainer(trainer_module.TunesmithTrainer):
        def compute_loss(self, model, inputs, *args, **kwargs):
            if model.training:
                meter.count(inputs["input_ids"], inputs.get("labels"), inputs.get("attention_mask"))
            return super().compute_loss(model, inputs, *args, **kwargs)

    trainer_module.TunesmithTrainer = MeteredTrainer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--assets", required=True)
    ap.add_argument("--variant", required=True, choices=sorted(VARIANTS))
    ap.add_argument("--name", default=None)
    ap.add_argument("--out", required=True)
    ap.add_argument("--max-steps", type=int, default=None)
    ap.add_argument("--skip-steps", type=int, default=10)
    ap.add_argument("--window-s", type=float, default=None)
    ap.add_argument("--max-total-s", type=float, default=None)
    ap.add_argument("--set", nargs="*", default=[], help="extra tunesmith keys key=value")
    a = ap.parse_args()
    t_proc = time.time()

    args = dict(BASE)
    args.update(VARIANTS[a.variant])
    if a.max_steps:
        args["max_steps"] = a.max_steps
    for kv in a.set:
        k, v = kv.split("=", 1)
        args[k] = parse_value(v)
    args["model_name_or_path"] = os.path.join(a.assets, "model")
    args["dataset_dir"] = os.path.join(a.assets, "data")
    args["output_dir"] = os.path.join("/tmp/ts_out", a.variant)

    from tunesmith.config.load import build_config
    from tunesmith.train.run import run_training
    from transformers import AutoTokenizer

    pad_id = AutoTokenizer.from_pretrained(args["model_name_or_path"]).pad_token_id
    meter = common.TokenMeter(pad_id=pad_id, skip_steps=a.skip_steps, window_s=a.window_s,
                              max_total_s=a.max_total_s)
    cb = common.hf_meter_callback(meter)
    meter.attach = lambda model: None  # counted in compute_loss instead (see the module docstring)
    metered_trainer(meter)
    cfg = build_config({k: (v, "bench") for k, v in args.items()})
    t_run = time.time()
    result = run_training(cfg, extra_callbacks=[cb])
    t_end = time.time()
    card = json.load(open(os.path.join(args["output_dir"], "tunesmith.json")))
    res = {"framework": "tunesmith", "variant": a.name or a.variant, "ts_args": args, "meter": cb.result,
           "global_step": result.global_step, "run_card": card, "wall_s_run_training": round(t_end - t_run, 1),
           "wall_s_process": round(t_end - t_proc, 1), "versions": common.env_versions()}
    common.write_json(a.out, res)
    w = (cb.result or {}).get("window") or {}
    print(f"RESULT ts/{a.name or a.variant}: retries {(cb.result or {}).get('cuda_alloc_retries')} trained tok/s "
          f"{w.get('tok_s_trained')} real {w.get('tok_s_real')} total {w.get('tok_s_total')} steps {w.get('steps')} "
          f"s/step {w.get('s_per_step')} peak {cb.result.get('peak_mem_allocated_gib') if cb.result else None} GiB "
          f"loss {cb.result.get('final_loss') if cb.result else None} attn {cb.result.get('attn_implementation')}")


if __name__ == "__main__":
    main()
