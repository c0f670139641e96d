"""`tunesmith data preview`: trained spans marked exactly, statistics per dataset."""

from __future__ import annotations

from tunesmith.cli import main


def test_preview_marks_trained_spans_and_counts(qwen2_model, data_dir, capsys):
    code = main(["data", "preview", "--model_name_or_path", str(qwen2_model), "--dataset", "minimind,arith",
                 "--dataset_dir", str(data_dir), "--template", "qwen3_nothink", "--num", "1", "--no-color"])
    assert code == 0
    out = capsys.readouterr().out
    assert "<|im_start|>user\n1+1=?<|im_end|>\n<|im_start|>assistant\n⟦2<|im_end|>⟧" in out
    lines = {line.split()[0]: line.split() for line in out.splitlines() if line.split()}
    assert lines["minimind"][1:5] == ["1", "1", "0", "0"]  # examples, kept, dropped, truncated
    assert lines["arith"][1:3] == ["8", "8"]
    assert lines["total"][1] == "9"


def test_preview_does_not_need_output_dir_but_reports_data_errors(data_dir, qwen2_model, capsys):
    code = main(["data", "preview", "--model_name_or_path", str(qwen2_model), "--dataset", "nothere",
                 "--dataset_dir", str(data_dir), "--template", "qwen"])
    assert code == 2
    assert "dataset `nothere` is not in" in capsys.readouterr().err


def test_without_template_the_tokenizers_own_chat_template_gives_the_same_masks(qwen2_model, data_dir, capsys):
    args = ["data", "preview", "--model_name_or_path", str(qwen2_model), "--dataset", "minimind",
            "--dataset_dir", str(data_dir), "--num", "1", "--no-color"]
    assert main(args) == 0
    assert "<|im_start|>user\n1+1=?<|im_end|>\n<|im_start|>assistant\n⟦2<|im_end|>⟧" in capsys.readouterr().out
