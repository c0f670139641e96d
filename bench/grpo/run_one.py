"""One GRPO run in this process, tunesmith or TRL, on the benchmark's sft model; prints one JSON line with the
training-loop time, per-step times and the reward of every step.

    python run_one.py tunesmith|trl WORK_DIR
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def timer_callback():
    from transformers import TrainerCallback

    class Timer(TrainerCallback):
        def __init__(self):
            self.begin = self.end = None
            self.logs = []

        def on_train_begin(self, args, state, control, **kwargs):
            self.begin = time.perf_counter()

        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "reward" in logs:
                self.logs.append((time.perf_counter(), float(logs["reward"])))

        def on_train_end(self, args, state, control, **kwargs):
            self.end = time.perf_counter()

    return Timer()


def run_tunesmith(work: Path, timer) -> None:
    from tunesmith.config.load import build_config
    from tunesmith.train.run import run_training

    raw = {"model_name_or_path": str(work / "sft"), "stage": "grpo", "do_train": True, "finetuning_type": "full",
           "dataset": "arith", "dataset_dir": str(work / "data"), "template": "qwen3_nothink", "cutoff_len": 128,
           "output_dir": str(work / "out_tunesmith"), "overwrite_output_dir": True,
           "per_device_train_batch_size": common.BATCH, "num_generations": common.GROUP,
           "max_completion_length": common.MAX_COMPLETION, "learning_rate": common.LR, "max_steps": common.STEPS,
           "logging_steps": 1, "save_strategy": "no", "report_to": "none", "seed": common.SEED,
           "disable_tqdm": True, "lr_scheduler_type": "constant", "temperature": 1.0, "top_p": 1.0, "top_k": 0,
           "reward_funcs": f"{Path(__file__).resolve().parent / 'common.py'}:ones", "log_completions": False,
           "loss_type": "dapo", "beta": 0.0}
    run_training(build_config({k: (v, "bench") for k, v in raw.items()}), extra_callbacks=[timer])


def run_trl(work: Path, timer) -> None:
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import GRPOConfig, GRPOTrainer

    prompts = json.loads((work / "prompts.json").read_text())  # tunesmith's rendered prompts, same tokens
    tokenizer = AutoTokenizer.from_pretrained(work / "sft")
    model = AutoModelForCausalLM.from_pretrained(work / "sft")
    args = GRPOConfig(output_dir=str(work / "out_trl"), per_device_train_batch_size=common.BATCH,
                      num_generations=common.GROUP, max_completion_length=common.MAX_COMPLETION,
                      learning_rate=common.LR, max_steps=common.STEPS, logging_steps=1, save_strategy="no",
                      report_to="none", seed=common.SEED, lr_scheduler_type="constant", temperature=1.0,
                      top_p=1.0, top_k=0, loss_type="dapo", beta=0.0, bf16=False, use_cpu=True,
                      disable_tqdm=True, shuffle_dataset=True)
    trainer = GRPOTrainer(model=model, reward_funcs=common.ones, args=args,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                          processing_class=tokenizer, callbacks=[timer])
    trainer.train()


def main() -> None:
    side, work = sys.argv[1], Path(sys.argv[2])
    timer = timer_callback()
    {"tunesmith": run_tunesmith, "trl": run_trl}[side](work, timer)
    times = [t for t, _ in timer.logs]
    steps = [b - a for a, b in zip([timer.begin] + times[:-1], times)]
    print("RESULT " + json.dumps({"side": side, "train_s": timer.end - timer.begin, "step_s": steps,
                                  "rewards": [r for _, r in timer.logs]}))


if __name__ == "__main__":
    main()
