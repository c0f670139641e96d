"""`tunesmith eval`: the bundled tiny exam is scored per subject and category; a tiny model trained on the exam's
answers scores far above chance, the same whether it is given as an output dir or as base + adapter; a
vision-language model is examined on the text questions; the MMLU, C-Eval and CMMLU layouts are read; bad exam
folders fail naming the file and row."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tunesmith.cli import main
from tunesmith.config.errors import ConfigError
from tunesmith.evaluation.exam import PROMPTS, format_question, load_split, read_mapping, read_questions

EXAMS = Path(__file__).resolve().parents[2] / "examples" / "exams"


def test_bundled_exam_is_scored_per_subject_and_category(qwen2_model, tmp_path, capsys):
    save = tmp_path / "scores"
    assert main(["eval", str(qwen2_model), "task=tiny_mmlu_test", f"task_dir={EXAMS}", "n_shot=2", "batch_size=5",
                 f"save_dir={save}"]) == 0
    scores = json.loads((save / "scores.json").read_text())
    assert {s: v["questions"] for s, v in scores["subjects"].items()} == {"arithmetic": 6, "world_capitals": 6,
                                                                         "colors": 6}
    assert set(scores["categories"]) == {"Average", "STEM", "Humanities", "Other"}
    average = sum(v["accuracy"] for v in scores["subjects"].values()) / 3  # equal subject sizes
    assert scores["categories"]["Average"] == pytest.approx(average, abs=0.01)
    answers = json.loads((save / "results.json").read_text())
    assert all(set(a.values()) <= set("ABCD") and len(a) == 6 for a in answers.values())
    assert "Average" in capsys.readouterr().out and (save / "results.log").is_file()


def test_a_vision_language_model_is_examined_on_the_text_questions(qwen2_vl_model, tmp_path):
    """Exams are text: a vision-language model answers them as a language model, no image involved."""
    save = tmp_path / "scores"
    assert main(["eval", str(qwen2_vl_model), "task=tiny_mmlu_test", f"task_dir={EXAMS}", "n_shot=1", "batch_size=6",
                 f"save_dir={save}"]) == 0
    answers = json.loads((save / "results.json").read_text())
    assert sorted(answers) == ["arithmetic", "colors", "world_capitals"]
    assert all(set(a.values()) <= set("ABCD") and len(a) == 6 for a in answers.values())


def test_output_dir_and_base_plus_adapter_score_alike(lora_run, qwen2_model, tmp_path):
    common = ["task=tiny_mmlu_test", f"task_dir={EXAMS}", "n_shot=1", "batch_size=7"]
    assert main(["eval", str(lora_run), *common, f"save_dir={tmp_path / 'a'}"]) == 0
    assert main(["eval", f"model_name_or_path={qwen2_model}", f"adapter_name_or_path={lora_run}", *common,
                 f"save_dir={tmp_path / 'b'}"]) == 0
    a, b = (json.loads((tmp_path / x / "results.json").read_text()) for x in "ab")
    assert a == b  # the same model, whichever way it is named: the same letter for every question


def exam_answers_as_sft_data(root: Path) -> Path:
    """The tiny exam's test questions as alpaca examples: the exam's own 0-shot prompt -> the answer letter."""
    mapping = read_mapping(EXAMS / "tiny_mmlu")
    rows = [{"instruction": PROMPTS["en"][0].format(subject=info["name"]) + format_question(q, "en"), "input": "",
             "output": q.answer} for subject, info in mapping.items()
            for q in load_split(EXAMS / "tiny_mmlu", subject, "test")]
    root.mkdir(parents=True)
    (root / "exam.json").write_text(json.dumps(rows), encoding="utf-8")
    (root / "dataset_info.json").write_text(json.dumps({"exam": {"file_name": "exam.json"}}), encoding="utf-8")
    return root


@pytest.mark.slow  # minutes on 2 busy cores; fast: test_bundled_exam_is_scored_per_subject_and_category
def test_a_model_trained_on_the_answers_scores_far_above_chance(tmp_path):
    from tunesmith.config.load import build_config
    from tunesmith.model.tiny import build_tiny_model
    from tunesmith.train.run import run_training

    model = build_tiny_model(tmp_path / "model", "qwen2")  # `tunesmith tiny-model`'s defaults (2 layers, hidden 64)
    data = exam_answers_as_sft_data(tmp_path / "data")
    raw = {"model_name_or_path": str(model), "stage": "sft", "do_train": True, "finetuning_type": "full",
           "dataset": "exam", "dataset_dir": str(data), "template": "qwen3_nothink", "cutoff_len": 128,
           "output_dir": str(tmp_path / "out"), "per_device_train_batch_size": 18, "learning_rate": 1e-2,
           "max_steps": 150, "logging_steps": 10, "save_strategy": "no", "report_to": "none", "seed": 0,
           "disable_tqdm": True, "lr_scheduler_type": "cosine", "warmup_steps": 3}
    out = run_training(build_config({k: (v, "test.yaml") for k, v in raw.items()})).output_dir
    before, after = tmp_path / "before", tmp_path / "after"
    for name, save in ((model, before), (out, after)):
        assert main(["eval", str(name), "task=tiny_mmlu_test", f"task_dir={EXAMS}", "n_shot=0",
                     f"save_dir={save}"]) == 0
    score = json.loads((after / "scores.json").read_text())["categories"]["Average"]
    untrained = json.loads((before / "scores.json").read_text())["categories"]["Average"]
    # chance is 25 and the most common letter 5 of 18 (28%); the 18 answers are memorised after ~90 steps
    assert score >= 75.0 and score >= untrained + 40, (untrained, score)


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_ceval_and_cmmlu_layouts_are_read(tmp_path):
    ceval = write(tmp_path / "ceval" / "val" / "law_val.csv",
                  "id,question,A,B,C,D,answer,explanation\n0,Q one?,a,b,c,d,B,because\n1,\"Q, two?\",a,b,c,d,D,\n")
    cmmlu = write(tmp_path / "cmmlu" / "test" / "law.csv",
                  ",Question,A,B,C,D,Answer\n0,问题一？,甲,乙,丙,丁,C\n")
    assert [(q.text, q.answer) for q in load_split(tmp_path / "ceval", "law", "validation")] == [
        ("Q one?", "B"), ("Q, two?", "D")]
    assert [(q.text, q.options, q.answer) for q in load_split(tmp_path / "cmmlu", "law", "test")] == [
        ("问题一？", ("甲", "乙", "丙", "丁"), "C")]
    assert ceval.is_file() and cmmlu.is_file()


@pytest.mark.parametrize("content,message", [
    ("Q?,a,b,c,d\n", r"x_test.csv:1: expected 6 columns"),
    ("Q?,a,b,c,d,A\nQ2?,a,b,c,d,E\n", r"x_test.csv:2: the answer must be one of A, B, C, D; got 'E'"),
    ("Q?,a,b,c,d,A\n,a,b,c,d,B\n", r"x_test.csv:2: the question is empty"),
    ("question,A,B,answer\nQ?,a,b,A\n", r"x_test.csv:1: the header has no column C, D"),
])
def test_a_malformed_row_names_the_file_and_line(content, message, tmp_path):
    path = write(tmp_path / "data" / "test" / "x_test.csv", content)
    with pytest.raises(ConfigError, match=message):
        read_questions(path)


def test_missing_split_and_bad_folders_fail_before_the_model_loads(tmp_path):
    exam = tmp_path / "exams" / "mine"
    shutil.copytree(EXAMS / "tiny_mmlu", exam)
    (exam / "data" / "dev" / "colors_dev.csv").unlink()
    args = ["eval", "model_name_or_path=/nonexistent/model", f"task_dir={tmp_path / 'exams'}"]
    with pytest.raises(ConfigError, match=r"subject `colors` has no train split \(looked for data/dev/colors_dev.csv"):
        run(args + ["task=mine_test", "n_shot=1"])
    with pytest.raises(ConfigError, match="has no test2 split"):
        run(args + ["task=mine_test2", "n_shot=0"])
    with pytest.raises(ConfigError, match="is not a folder"):
        run(args + ["task=other_test"])
    with pytest.raises(ConfigError, match="`task` is required"):
        run(args)
    (tmp_path / "taken").mkdir()
    with pytest.raises(ConfigError, match="already exists"):
        run(args + ["task=mine_test", f"save_dir={tmp_path / 'taken'}"])


def run(argv: list[str]):
    from tunesmith.config.load import load_config
    from tunesmith.evaluation.exam import run_exam

    return run_exam(load_config(argv[1:], purpose="exam"))
