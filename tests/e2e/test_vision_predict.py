"""do_eval and do_predict on vision-language models: the evaluation loss of a base model, a run dir or base +
adapter equals the loss the training run's own evaluation logged on the same images; batched left-padded greedy
prediction over images of different sizes, videos and a text-only row equals predicting each example alone
(Qwen2-VL and Qwen3-VL); a tiny
model fully fine-tuned to name a square's colour predicts every colour (BLEU-4 = 100); media rows given to a
text model, and an image in the reply to predict, fail naming the row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from PIL import Image

from tunesmith.cli import main
from tunesmith.config.load import build_config
from tunesmith.train.callbacks.log_file import read_log
from tunesmith.train.run import run_training

from ..infer.test_vision_chat import sharpened  # a tiny VL model whose replies depend on the image

REPO = Path(__file__).resolve().parents[2]
QUESTION = "What color is this?"
COLOURS = {"red": (220, 20, 20), "blue": (20, 20, 220)}
SHAREGPT = {"formatting": "sharegpt", "columns": {"messages": "messages", "images": "images", "videos": "videos"},
            "tags": {"role_tag": "role", "content_tag": "content", "user_tag": "user", "assistant_tag": "assistant"}}


def dataset(root: Path, name: str, rows: list[dict]) -> Path:
    """``rows`` as a sharegpt dataset `name` in root/data, beside LLaMA-Factory's bundled data and images."""
    data = root / "data"
    if not (data / "dataset_info.json").exists():
        shutil.copytree(REPO / "data", data, dirs_exist_ok=True)
    (data / f"{name}.json").write_text(json.dumps(rows), encoding="utf-8")
    info = json.loads((data / "dataset_info.json").read_text(encoding="utf-8"))
    info[name] = {"file_name": f"{name}.json", **SHAREGPT}
    (data / "dataset_info.json").write_text(json.dumps(info), encoding="utf-8")
    return data


def ask(content: str, reply: str, *images: str, videos: tuple = ()) -> dict:
    return {"messages": [{"role": "user", "content": content}, {"role": "assistant", "content": reply}],
            "images": list(images), "videos": list(videos)}


def config(**keys):
    return build_config({k: (v, "test") for k, v in keys.items()})


def evaluate(root: Path, out: str, **keys) -> dict:
    """`tunesmith train` with do_eval only: eval_results.json."""
    args = ["train", "stage=sft", "do_eval=true", "eval_dataset=mllm_demo", f"dataset_dir={root / 'data'}",
            "template=qwen2_vl", "cutoff_len=512", "per_device_eval_batch_size=4", "report_to=none",
            f"output_dir={root / out}", *(f"{k}={v}" for k, v in keys.items())]
    assert main(args) == 0
    return json.loads((root / out / "eval_results.json").read_text())


def test_eval_loss_equals_the_training_runs_own_evaluation(qwen2_vl_model, tmp_path):
    data = dataset(tmp_path, "unused", [])
    out = run_training(config(
        model_name_or_path=str(qwen2_vl_model), stage="sft", do_train=True, finetuning_type="lora", lora_target="all",
        dataset="mllm_demo", eval_dataset="mllm_demo", dataset_dir=str(data), template="qwen2_vl", cutoff_len=512,
        output_dir=str(tmp_path / "run"), per_device_train_batch_size=2, per_device_eval_batch_size=4,
        learning_rate=1e-2, max_steps=4, logging_steps=1, eval_strategy="steps", eval_steps=4, eval_on_start=True,
        save_strategy="no", report_to="none", seed=0, disable_tqdm=True)).output_dir
    logged = [r["eval_loss"] for r in read_log(out) if "eval_loss" in r]
    assert len(logged) == 2 and logged[1] < logged[0] - 0.1  # before and after training: the images were learnt

    base = evaluate(tmp_path, "base", model_name_or_path=qwen2_vl_model)
    run_dir = evaluate(tmp_path, "run_dir", model_name_or_path=out)
    adapter = evaluate(tmp_path, "adapter", model_name_or_path=qwen2_vl_model, adapter_name_or_path=out)
    assert base["eval_loss"] == pytest.approx(logged[0], abs=2e-3)
    assert run_dir["eval_loss"] == pytest.approx(logged[1], abs=2e-3)
    assert adapter["eval_loss"] == pytest.approx(logged[1], abs=2e-3)
    assert base["eval_samples"] == run_dir["eval_samples"] == 6


def predictions(folder: Path) -> list[dict]:
    lines = (folder / "generated_predictions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.parametrize("family,template", [("qwen2_vl", "qwen2_vl"), ("qwen3_vl", "qwen3_vl_nothink")])
def test_batched_prediction_with_media_equals_predicting_each_alone(family, template, request, tmp_path):
    model = sharpened(request.getfixturevalue(f"{family}_model"), tmp_path / "sharp")
    images = tmp_path / "data" / "img"
    images.mkdir(parents=True)
    Image.new("RGB", (64, 64), COLOURS["red"]).save(images / "red.png")
    Image.new("RGB", (64, 64), COLOURS["blue"]).save(images / "blue.png")
    Image.linear_gradient("L").resize((128, 64)).convert("RGB").save(images / "wide.png")  # more tokens
    rows = [ask(f"<image>{QUESTION}", "red", "img/red.png"), ask("Name the colour.", "none"),
            ask(f"<image>{QUESTION}", "blue", "img/blue.png"), ask("Compare <image> and <image>.", "a gradient",
                                                                   "img/wide.png", "mllm_demo_data/2.jpg"),
            ask(f"<image>{QUESTION}", "grey", "img/wide.png"),
            ask("<video>Where does the ball go?", "right", videos=("mllm_demo_data/1.mp4",)),
            ask("<image> then <video>?", "both", "img/red.png", videos=("mllm_demo_data/3.mp4",))]
    data = dataset(tmp_path, "shown", rows)
    keys = {"model_name_or_path": str(model), "stage": "sft", "do_predict": True, "predict_with_generate": True,
            "eval_dataset": "shown", "dataset_dir": str(data), "template": template, "cutoff_len": 1024,
            "do_sample": False, "max_new_tokens": 6, "report_to": "none", "disable_tqdm": True}
    for size in (7, 1):  # one batch of all (images of three sizes, two images, none, videos), then one by one
        assert main(["train", *(f"{k}={v}" for k, v in keys.items()), f"per_device_eval_batch_size={size}",
                     f"output_dir={tmp_path / f'batch{size}'}"]) == 0
    batched, alone = predictions(tmp_path / "batch7"), predictions(tmp_path / "batch1")
    assert [r["predict"] for r in batched] == [r["predict"] for r in alone]
    assert [r["label"] for r in batched] == [row["messages"][-1]["content"] for row in rows]
    pads = [r["prompt"].count("<|image_pad|>") for r in batched]
    assert pads[1] == pads[5] == 0 and pads[0] == pads[2] == pads[6] > 0 and pads[0] < pads[4] < pads[3]
    assert [r["prompt"].count("<|video_pad|>") > 0 for r in batched] == [False] * 5 + [True] * 2
    assert batched[0]["predict"] != batched[2]["predict"]  # the image decides the reply
    assert json.loads((tmp_path / "batch7" / "predict_results.json").read_text())["predict_batch_size"] == 7


def test_a_model_trained_on_colours_predicts_them(qwen2_vl_model, tmp_path):
    images = tmp_path / "data" / "img"
    images.mkdir(parents=True)
    for name, rgb in COLOURS.items():
        Image.new("RGB", (56, 56), rgb).save(images / f"{name}.png")
    rows = [ask(f"<image>{QUESTION}", f"It is {name}.", f"img/{name}.png") for name in ["red", "blue"] * 8]
    data = dataset(tmp_path, "colours", rows)
    dataset(tmp_path, "colours_test", [ask(f"<image>{QUESTION}", f"It is {name}.", f"img/{name}.png")
                                       for name in ["blue", "red", "red", "blue"]])
    metrics_path = tmp_path / "run" / "predict_results.json"
    assert main(["train", f"model_name_or_path={qwen2_vl_model}", "stage=sft", "do_train=true", "do_predict=true",
                 "predict_with_generate=true", "finetuning_type=full", "dataset=colours", "eval_dataset=colours_test",
                 f"dataset_dir={data}", "template=qwen2_vl", "cutoff_len=128", f"output_dir={tmp_path / 'run'}",
                 "per_device_train_batch_size=4", "per_device_eval_batch_size=3", "learning_rate=5e-3",
                 "max_steps=80", "logging_steps=40", "save_strategy=no", "report_to=none", "seed=0",
                 "disable_tqdm=true", "do_sample=false", "max_new_tokens=8"]) == 0
    assert [r["predict"] for r in predictions(tmp_path / "run")] == [f"It is {name}." for name in
                                                                     ["blue", "red", "red", "blue"]]
    metrics = json.loads(metrics_path.read_text())
    assert metrics["predict_bleu-4"] == pytest.approx(100.0)
    assert metrics["predict_rouge-2"] == metrics["predict_rouge-l"] == pytest.approx(100.0)


def test_media_rows_given_to_a_text_model_fail_naming_the_row(qwen2_model, tmp_path, capsys):
    data = dataset(tmp_path, "unused", [])
    assert main(["train", f"model_name_or_path={qwen2_model}", "stage=sft", "do_predict=true",
                 "predict_with_generate=true", "eval_dataset=mllm_demo", f"dataset_dir={data}",
                 "template=qwen3_nothink", f"output_dir={tmp_path / 'out'}", "report_to=none"]) != 0
    assert "dataset `mllm_demo` row 0: has images, but the model has no vision processor" in capsys.readouterr().err


def test_an_image_in_the_reply_to_predict_is_refused(qwen2_vl_model, tmp_path, capsys):
    Image.new("RGB", (56, 56), COLOURS["red"]).save(tmp_path / "red.png")
    data = dataset(tmp_path, "drawn", [ask("Draw a red square.", "Here: <image>", str(tmp_path / "red.png"))])
    assert main(["train", f"model_name_or_path={qwen2_vl_model}", "stage=sft", "do_predict=true",
                 "predict_with_generate=true", "eval_dataset=drawn", f"dataset_dir={data}", "template=qwen2_vl",
                 f"output_dir={tmp_path / 'out'}", "report_to=none"]) != 0
    assert "evaluation example 0: its last reply holds an image or video placeholder" in capsys.readouterr().err
