"""`tunesmith webui` and `tunesmith webchat`: a browser UI (gradio) over the same configs the CLI runs. The UI
writes a YAML file, validates it with config.load, and runs `tunesmith train` / `tunesmith export` on it in a
subprocess; it never imports train/. Progress and curves come from the run's trainer_log.jsonl."""
