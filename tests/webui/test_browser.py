"""The web UI in a real headless browser (the system's Chromium driven by playwright): load the page, fill a
tiny sft run, start it, watch the loss curve fill, chat with the result, keep a screenshot in tests/artifacts/,
and check that `tunesmith train` on the saved YAML logs the same losses as the run the UI started."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TUNESMITH_CHROMIUM", "/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
WAIT_MS = 180_000  # for the training subprocess on a busy machine; the whole test takes ~40 s on a quiet one
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [pytest.mark.browser,
              pytest.mark.skipif(not Path(CHROMIUM).is_file(),
                                 reason=f"needs Chromium at {CHROMIUM} (apt-get install chromium)")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def losses(output_dir: Path) -> list[float]:
    lines = (output_dir / "trainer_log.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["loss"] for line in lines if "loss" in json.loads(line)]


def test_train_watch_and_chat_in_a_browser(tmp_path, qwen2_model, data_dir):
    pytest.importorskip("gradio", reason="needs gradio (pip install 'tunesmith[webui]')")
    sync_api = pytest.importorskip("playwright.sync_api", reason="needs playwright (pip install playwright)")
    from tunesmith.webui.app import Settings, launch
    from tunesmith.webui.paths import PathPolicy

    work = tmp_path / "work"
    work.mkdir()
    policy = PathPolicy.create(work, allowed=(qwen2_model, data_dir))
    ui, demo, url = launch(Settings(policy, port=free_port(), defaults={"dataset_dir": str(data_dir)}), block=False)
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_api.sync_playwright() as pw:
            browser = pw.chromium.launch_persistent_context(str(tmp_path / "ud"), executable_path=CHROMIUM, args=ARGS,
                                                            viewport={"width": 1400, "height": 1800})
            page = browser.new_page()
            page.set_default_timeout(WAIT_MS)
            sync_api.expect.set_options(timeout=WAIT_MS)
            page.goto(url)

            def fill(elem_id: str, value: str) -> None:
                box = page.locator(f"#{elem_id} textarea, #{elem_id} input").first
                box.fill(value)
                box.press("Tab")

            def choose(elem_id: str, value: str) -> None:
                box = page.locator(f"#{elem_id} input").first
                box.click()
                box.fill(value)
                box.press("Enter")
                page.keyboard.press("Escape")

            fill("model_name_or_path", str(qwen2_model))
            choose("template", "qwen3_nothink")
            choose("dataset", "arith")
            for elem_id, value in (("cutoff_len", "128"), ("learning_rate", "0.01"), ("max_steps", "4"),
                                   ("per_device_train_batch_size", "4"), ("logging_steps", "1"), ("seed", "0")):
                fill(elem_id, value)
            def fill_and_preview(fields: dict[str, str], box: str, text: str) -> None:
                """Fill, preview, and see `text` in `box`. A field that was just revealed (an opened accordion) may
                still be mounting when it is typed into, and a busy machine can deliver the preview before the
                value: fill and preview again until the preview shows it (one preview is one snapshot)."""
                for attempt in range(12):
                    for elem_id, value in fields.items():
                        fill(elem_id, value)
                    page.click("#preview_yaml")
                    try:
                        sync_api.expect(page.locator(f"#{box}")).to_contain_text(text, timeout=WAIT_MS // 12)
                        return
                    except AssertionError:
                        if attempt == 11:
                            raise

            page.get_by_role("button", name="special tokens").click()  # a closed accordion
            fill_and_preview({"add_special_tokens": "<calc>,</calc>"}, "yaml_box", "add_special_tokens")
            # a misspelt key: the loader's error shows, nothing runs
            fill_and_preview({"extra_yaml": "lora_rnak: 4"}, "train_status", "lora_rnak")
            fill_and_preview({"extra_yaml": "report_to: none\nlr_scheduler_type: constant\ndisable_tqdm: true",
                              "output_dir": "saves/ui"}, "train_status", "valid: ")
            sync_api.expect(page.locator("#yaml_box")).to_contain_text("output_dir: saves/ui")
            page.click("#start_train")
            sync_api.expect(page.locator("#train_status")).to_contain_text("started")
            # The CLI on the saved YAML, into another folder, alongside (compared at the end).
            saved = work / "webui_configs" / "train.yaml"
            cli = subprocess.Popen([sys.executable, "-m", "tunesmith.cli", "train", str(saved), "output_dir=saves/cli"],
                                   cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            sync_api.expect(page.locator("#train_progress")).to_contain_text("finished (exit code 0)")
            sync_api.expect(page.locator("#curve_summary")).to_contain_text("loss: 4 points")
            # the special-token curve: added tokens log the ordinary-token loss beside the special one
            sync_api.expect(page.locator("#curve_summary")).to_contain_text("ordinary_loss: 4 points")
            assert page.locator("#curve_0 canvas, #curve_0 svg").count() > 0  # the chart is drawn

            page.get_by_role("tab", name="Chat").click()
            sync_api.expect(page.locator("#chat_model textarea, #chat_model input").first).to_have_value("saves/ui")
            page.click("#chat_load")
            sync_api.expect(page.locator("#chat_status")).to_contain_text("loaded saves/ui")
            fill("chat_message", "What is 2+3?")
            page.click("#chat_send")
            bot = page.locator("#chat_history .message-row").last
            sync_api.expect(page.locator("#chat_history .message-row")).to_have_count(2)
            expected = ui.chat.engine.chat([{"role": "user", "content": "What is 2+3?"}], max_new_tokens=64,
                                           temperature=0).text
            if expected.strip():
                sync_api.expect(bot).to_contain_text(expected.strip()[:20])
            page.get_by_role("tab", name="Train").click()
            page.screenshot(path=str(ARTIFACTS / "webui_train.png"), full_page=True)
            browser.close()
    except BaseException:
        if "cli" in locals():
            cli.kill()
        for job in ui.jobs.jobs.values():
            print(f"--- {job.log}\n{job.log.read_text(encoding='utf-8', errors='replace')[-3000:]}")
        raise
    finally:
        ui.jobs.stop_all()
        demo.close()

    assert "max_steps: 4" in saved.read_text(encoding="utf-8")
    assert "add_special_tokens: <calc>,</calc>" in saved.read_text(encoding="utf-8")
    _, err = cli.communicate(timeout=300)
    assert cli.returncode == 0, err[-2000:]
    ui_losses, cli_losses = losses(work / "saves" / "ui"), losses(work / "saves" / "cli")
    assert len(ui_losses) == 4 and ui_losses == pytest.approx(cli_losses, rel=1e-5)
    from safetensors.torch import load_file

    ui_weights, cli_weights = (load_file(work / "saves" / name / "adapter_model.safetensors") for name in ("ui", "cli"))
    assert ui_weights.keys() == cli_weights.keys() and ui_weights
    for name, tensor in ui_weights.items():
        assert (tensor - cli_weights[name]).abs().max() < 1e-5, name
    shutil.rmtree(tmp_path / "ud", ignore_errors=True)
