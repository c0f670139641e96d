"""tunesmith command line: dispatch only. Heavy imports happen inside each command."""

from __future__ import annotations

import argparse
import os
import sys

from . import __version__
from .config.errors import ConfigError

USAGE = """tunesmith <command> [args]

commands:
  train       fine-tune a model: tunesmith train cfg.yaml [key=value ...] | cfg.json | --key value ...
  data        inspect data as training sees it: tunesmith data preview cfg.yaml [key=value ...] [--num N]
  chat        chat with a trained model: tunesmith chat cfg.yaml|OUTPUT_DIR [key=value ...] [--query Q]
  api         serve an OpenAI-compatible API: tunesmith api cfg.yaml|OUTPUT_DIR [--host H] [--port P] [--api-key K]
  export      merge adapters and write a plain model: tunesmith export cfg.yaml|OUTPUT_DIR export_dir=DIR [...]
  eval        score a multiple-choice exam (MMLU/CMMLU/C-Eval layout): tunesmith eval cfg.yaml|MODEL task=mmlu_test
  webui       the whole workflow in a browser: tunesmith webui [--host H] [--port P] [--password P] [--allow-path D]
  webchat     chat in a browser: tunesmith webchat cfg.yaml|OUTPUT_DIR [--host H] [--port P] [--password P]
  tiny-model  build a small offline model with its own BPE tokenizer: tunesmith tiny-model OUT_DIR [options]
  llama-pro   add LLaMA Pro blocks: tunesmith llama-pro --model_name_or_path M --output_dir D --num_expand N
  env         print versions of tunesmith, Python, torch and the libraries it builds on
  version     print tunesmith's version

`tunesmith COMMAND --help` (or -h) shows a command's usage and the config keys it reads.
"""


def cmd_train(argv: list[str]) -> int:
    from .config.load import load_config
    from .utils.logging import offline_environment, setup_logging

    cfg = load_config(list(argv))  # validated before torch is imported
    offline_environment()
    setup_logging()
    from .train.launch import relaunch

    if (code := relaunch(list(argv))) is not None:  # FORCE_TORCHRUN=1 or several GPUs: the processes torchrun runs
        return code
    from .evaluation.run import run  # trains, then evaluates / predicts as do_eval and do_predict say

    run(cfg)
    return 0


def cmd_data(argv: list[str]) -> int:
    if not argv or argv[0] != "preview":
        raise ConfigError("usage: tunesmith data preview cfg.yaml [key=value ...] [--num N] [--no-color]")
    argv = argv[1:]
    num, color = 3, sys.stdout.isatty()
    if "--no-color" in argv:
        argv.remove("--no-color")
        color = False
    if "--num" in argv:
        i = argv.index("--num")
        num = int(argv[i + 1])
        del argv[i:i + 2]
    from .config.load import load_config
    from .utils.logging import offline_environment, setup_logging

    cfg = load_config(argv, for_training=False)
    offline_environment()
    setup_logging()
    from .data.preview import render_spans, stats_table
    from .train.prepare import prepare_as_planned

    prepared = prepare_as_planned(cfg)
    data = prepared.data
    marker = "highlighted" if color else "between ⟦ and ⟧"
    head = data.train[:num] if isinstance(data.train, list) else data.train.head(num)
    for i, example in enumerate(head):
        print(f"--- example {i} ({len(example.input_ids)} tokens; trained tokens {marker})")
        print(render_spans(prepared.tokenizer, example, color=color))
    print("---")
    print(stats_table(data) if isinstance(data.train, list) else "streaming: statistics need a full pass; "
          "run without `streaming: true` to see them")
    return 0


def _take_option(argv: list[str], name: str, usage: str) -> str | None:
    """Remove ``--name VALUE`` (or ``--name=VALUE``) from argv and return VALUE."""
    for i, arg in enumerate(argv):
        if arg == name:
            if i + 1 >= len(argv):
                raise ConfigError(f"{name} needs a value; usage: {usage}")
            value = argv[i + 1]
            del argv[i:i + 2]
            return value
        if arg.startswith(name + "="):
            del argv[i]
            return arg.split("=", 1)[1]
    return None


def _model_config(argv: list[str], purpose: str, usage: str):
    """Config for chat/api/export: a config file and/or key=value, or a training output dir alone."""
    from pathlib import Path

    from .config.load import load_config
    from .utils.logging import offline_environment, setup_logging

    if not argv:
        raise ConfigError(f"usage: {usage}")
    argv = [f"model_name_or_path={arg}" if not arg.startswith("-") and "=" not in arg and Path(arg).is_dir()
            else arg for arg in argv]
    cfg = load_config(argv, purpose=purpose)
    offline_environment()
    setup_logging()
    return cfg


CHAT_USAGE = ("tunesmith chat cfg.yaml|OUTPUT_DIR [key=value ...] [--query TEXT] [--image PATH ...] "
              "[--video PATH ...]")
API_USAGE = ("tunesmith api cfg.yaml|OUTPUT_DIR [key=value ...] [--host HOST] [--port PORT] [--api-key KEY] "
             "[--media-dir DIR ...] [--allow-remote-media]")
EXPORT_USAGE = "tunesmith export cfg.yaml|OUTPUT_DIR [export_dir=DIR] [export_size=GB] [key=value ...]"


def cmd_chat(argv: list[str]) -> int:
    query = _take_option(argv, "--query", CHAT_USAGE)
    images = []
    while (image := _take_option(argv, "--image", CHAT_USAGE)) is not None:
        images.append(image)
    videos = []
    while (video := _take_option(argv, "--video", CHAT_USAGE)) is not None:
        videos.append(video)
    cfg = _model_config(argv, "infer", CHAT_USAGE)
    from .infer.chat import chat_loop, chat_once
    from .infer.backends import create_engine

    engine = create_engine(cfg)
    if query is not None:
        chat_once(engine, query, images=images, videos=videos)
        return 0
    return chat_loop(engine, images=images, videos=videos)


def cmd_api(argv: list[str]) -> int:
    options = {key: _take_option(argv, flag, API_USAGE) for key, flag in (
        ("api_host", "--host"), ("api_port", "--port"), ("api_key", "--api-key"), ("api_model_name", "--model-name"))}
    argv += [f"{key}={value}" for key, value in options.items() if value is not None]
    media_dirs = []
    while (folder := _take_option(argv, "--media-dir", API_USAGE)) is not None:
        media_dirs.append(folder)
    remote = "--allow-remote-media" in argv
    argv[:] = [arg for arg in argv if arg != "--allow-remote-media"]
    cfg = _model_config(argv, "infer", API_USAGE)
    from .serve.settings import api_settings

    # checked before the model loads
    settings = api_settings(cfg, media_dirs=media_dirs or None, allow_remote_media=True if remote else None)
    try:
        from .serve.app import run_server
    except ImportError as err:
        raise ConfigError(f"tunesmith api needs FastAPI and uvicorn ({err}); install them with "
                          "`pip install 'tunesmith[serve]'`") from None
    from .infer.backends import create_engine

    run_server(create_engine(cfg), settings)
    return 0


def cmd_export(argv: list[str]) -> int:
    cfg = _model_config(argv, "export", EXPORT_USAGE)
    from .infer.export import export_model

    out = export_model(cfg)
    print(f"exported to {out}")
    return 0


EVAL_USAGE = "tunesmith eval cfg.yaml|MODEL_OR_OUTPUT_DIR task=NAME_SPLIT [task_dir=DIR] [n_shot=N] [key=value ...]"


def cmd_eval(argv: list[str]) -> int:
    cfg = _model_config(argv, "exam", EVAL_USAGE)
    from .evaluation.exam import run_exam

    run_exam(cfg)
    return 0


def cmd_webui(argv: list[str], chat_only: bool = False) -> int:
    from .webui.main import main as webui

    return webui(argv, chat_only=chat_only)


def tiny_model_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tunesmith tiny-model",
                                     description="Build a small random causal LM with a trained byte-level BPE "
                                                 "tokenizer and chat template, offline and deterministically; "
                                                 "--family qwen2_vl / qwen2_5_vl / qwen3_vl builds a small "
                                                 "vision-language model with its processor files.")
    parser.add_argument("out_dir")
    parser.add_argument("--family", default="qwen2",
                        choices=("qwen2", "qwen2-untied", "llama3", "qwen2_vl", "qwen2_5_vl", "qwen3_vl"),
                        help="vision-language families take --vocab-size, --hidden-size, --num-layers, --seed and "
                             "--corpus; their vision tower and heads are fixed small")
    parser.add_argument("--vocab-size", type=int, default=1024)
    parser.add_argument("--hidden-size", type=int, default=64)
    parser.add_argument("--num-layers", type=int, default=2)
    parser.add_argument("--num-heads", type=int, default=4)
    parser.add_argument("--num-kv-heads", type=int, default=2)
    parser.add_argument("--intermediate-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--corpus", action="append", default=[],
                        help="extra text/JSON files whose text the tokenizer also learns from (repeatable)")
    return parser


def cmd_tiny_model(argv: list[str]) -> int:
    args = tiny_model_parser().parse_args(argv)
    from .model.tiny import build_tiny_model
    from .model.tiny_vl import VL_TINY_FAMILIES, build_tiny_vl_model
    from .utils.corpus import texts_from_files

    if args.family in VL_TINY_FAMILIES:
        path = build_tiny_vl_model(args.family, args.out_dir, seed=args.seed, vocab_size=args.vocab_size,
                                   hidden_size=args.hidden_size, num_layers=args.num_layers,
                                   extra_corpus=tuple(texts_from_files(args.corpus)))
        print(f"built {args.family} vision-language model in {path}")
        return 0
    path = build_tiny_model(args.out_dir, args.family, vocab_size=args.vocab_size, hidden_size=args.hidden_size,
                            num_layers=args.num_layers, num_heads=args.num_heads, num_kv_heads=args.num_kv_heads,
                            intermediate_size=args.intermediate_size, seed=args.seed,
                            extra_corpus=tuple(texts_from_files(args.corpus)))
    print(f"built {args.family} model in {path}")
    return 0


def cmd_llama_pro(argv: list[str]) -> int:
    from .model.llama_pro import main as expand

    return expand(argv)


def cmd_env(argv: list[str]) -> int:
    import importlib.metadata as md
    import platform

    print(f"tunesmith {__version__}")
    print(f"python {platform.python_version()} ({platform.platform()})")
    for name in ("torch", "transformers", "peft", "datasets", "accelerate", "tokenizers", "safetensors",
                 "tensorboard", "flash-attn"):
        try:
            print(f"{name} {md.version(name)}")
        except md.PackageNotFoundError:
            print(f"{name} not installed")
    import torch

    from .model.attention import choose_attention
    from .utils.versions import torch_varlen_attn

    print(f"cuda available: {torch.cuda.is_available()}"
          + (f" ({torch.cuda.get_device_name(0)})" if torch.cuda.is_available() else ""))
    print(f"torch varlen attention: {'available' if torch_varlen_attn() is not None else 'not available'}")
    print(f"attention for packed bf16 training (flash_attn: auto): {choose_attention('auto', packed=True)}")
    print(f"cpu threads: {torch.get_num_threads()}")
    return 0


def cmd_version(argv: list[str]) -> int:
    print(__version__)
    return 0


TRAIN_USAGE = "tunesmith train cfg.yaml [key=value ...] | cfg.json | --key value ..."
DATA_USAGE = "tunesmith data preview cfg.yaml [key=value ...] [--num N] [--no-color]"
CONFIG_NOTE = ("Keys come from YAML/JSON config files, key=value and --key value, in that order; later ones win. "
               "Names are LLaMA-Factory's.")
# command -> (usage, what it does, its own options, the config sections it reads (config/help.py) or None,
# whether transformers' TrainingArguments keys apply)
HELP: dict[str, tuple[str, str, tuple[str, ...], str | None, bool]] = {
    "train": (TRAIN_USAGE, "Fine-tune a model: stage pt, sft, rm, ppo, dpo, kto or grpo; finetuning_type full, "
                           "freeze, lora or oft.", (), "TRAIN_SECTIONS", True),
    "data": (DATA_USAGE, "Show the first examples as training sees them, trained tokens marked, and statistics of "
                         "the prepared data. Reads the training config.",
             ("--num N      examples to show (default 3)",
              "--no-color   mark trained tokens with ⟦ ⟧ instead of colour"), "DATA_SECTIONS", False),
    "chat": (CHAT_USAGE, "Chat with a model in the terminal. OUTPUT_DIR alone (a training run's output) stands for "
                         "model_name_or_path=OUTPUT_DIR.",
             ("--query TEXT  answer one message and exit",
              "--image PATH  a vision-language model (Qwen2-VL, Qwen2.5-VL, Qwen3-VL): attach an image file to the",
              "              query, or to the first message (repeatable). In the chat, `/image PATH` attaches one",
              "              to the next message; each `<image>` in a message marks where its next image goes",
              "              (none: the images go in front of the text)",
              "--video PATH  the same for a video file (repeatable): `/video PATH` in the chat, `<video>` marks",
              "              where it goes"),
              "CHAT_SECTIONS", False),
    "api": (API_USAGE, "Serve an OpenAI-compatible API (/v1/chat/completions, /v1/models). OUTPUT_DIR alone stands "
                       "for model_name_or_path=OUTPUT_DIR.",
            ("--host HOST, --port PORT, --api-key KEY, --model-name NAME",
             "             set api_host, api_port, api_key, api_model_name",
             "--media-dir DIR       image_url and video_url parts may name local files under DIR (repeatable;",
             "                      env API_MEDIA_DIR; default: no local files). data:image/...;base64, and",
             "                      data:video/...;base64, URLs are always read (vision-language models)",
             "--allow-remote-media  fetch http(s) image and video URLs from public addresses (env",
             "                      API_ALLOW_REMOTE_MEDIA=1; default off)"), "API_SECTIONS", False),
    "export": (EXPORT_USAGE, "Merge adapters into the base model and write a plain transformers model with its "
                             "tokenizer and generation config. OUTPUT_DIR alone stands for "
                             "model_name_or_path=OUTPUT_DIR.", (), "EXPORT_SECTIONS", False),
    "eval": (EVAL_USAGE, "Score a model on a multiple-choice exam from a local folder (LLaMA-Factory's "
                         "`llamafactory-cli eval`): the answer is the letter A-D the model finds most probable. "
                         "MODEL_OR_OUTPUT_DIR stands for model_name_or_path=...; adapters via adapter_name_or_path.",
             ("task=NAME_SPLIT  <folder>_<split> under task_dir, e.g. mmlu_test, cmmlu_test, ceval_validation",
              "task_dir=DIR     folder of exam folders (default evaluation)", "lang=en|zh       prompt language (default en)",
              "n_shot=N         solved dev examples before each question (default 5)",
              "batch_size=N     questions per forward pass (default 4)",
              "save_dir=DIR     a new folder for results.json, results.log and scores.json",
              "template=NAME    chat template (default: the run's, or the tokenizer's)"), None, False),
    "env": ("tunesmith env", "Print the versions of tunesmith, Python, torch and the libraries it builds on, and "
                             "what this machine offers (CUDA, attention kernels, CPU threads).", (), None, False),
    "version": ("tunesmith version", "Print tunesmith's version (also tunesmith --version or -V).", (), None, False),
}


def command_help(name: str) -> str:
    """Usage, description, options and, for commands that read a config, its keys (generated from the schema)."""
    import textwrap

    if name == "tiny-model":
        return tiny_model_parser().format_help()
    if name in ("webui", "webchat"):
        from .webui.main import parser as webui_parser

        return webui_parser(name == "webchat").format_help()
    if name == "llama-pro":
        from .model.llama_pro import parser

        return parser().format_help()
    usage, about, options, sections, training = HELP[name]
    lines = [f"usage: {usage}", "", *textwrap.wrap(about, 100)]
    if options:
        lines += ["", "options:", *(f"  {option}" for option in options)]
    if sections:
        from .config import help as keys_help

        lines += ["", *textwrap.wrap(CONFIG_NOTE, 100), "",
                  keys_help.keys_help(getattr(keys_help, sections), training_arguments=training)]
    return "\n".join(lines)


def _print_help(text: str) -> int:
    try:
        print(text)
    except BrokenPipeError:  # `tunesmith train --help | head`
        sys.stdout = open(os.devnull, "w")  # nothing more reaches the closed pipe
    return 0


COMMANDS = {"train": cmd_train, "data": cmd_data, "chat": cmd_chat, "api": cmd_api, "export": cmd_export,
            "eval": cmd_eval, "webui": cmd_webui, "webchat": lambda argv: cmd_webui(argv, chat_only=True),
            "tiny-model": cmd_tiny_model, "llama-pro": cmd_llama_pro, "env": cmd_env, "version": cmd_version}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["help"] and argv[1:2] and argv[1] in COMMANDS:
        argv = [argv[1], "--help"]  # tunesmith help train
    if not argv or argv[0] in ("-h", "--help", "help"):
        return _print_help(USAGE)
    if argv[0] in ("-V", "--version"):
        return cmd_version([])
    command = COMMANDS.get(argv[0])
    if command is not None and ("-h" in argv[1:] or "--help" in argv[1:]):
        return _print_help(command_help(argv[0]))
    if command is None:
        import difflib

        close = difflib.get_close_matches(argv[0], COMMANDS, n=1)
        print(f"tunesmith: unknown command {argv[0]!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
              file=sys.stderr)
        print(USAGE, file=sys.stderr)
        return 2
    try:
        return command(argv[1:])
    except ConfigError as err:
        print(f"tunesmith: error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # read-only or full disk, a path that is a file, ...: one line naming the path
        where = f" ({err.filename})" if err.filename else ""
        print(f"tunesmith: error: {err.strerror or err}{where}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("tunesmith: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
