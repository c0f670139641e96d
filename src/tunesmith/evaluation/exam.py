"""`tunesmith eval`: multiple-choice exams (MMLU, CMMLU, C-Eval) from a local folder, scored as LLaMA-Factory's
`llamafactory-cli eval` scores them: each question (after `n_shot` solved examples of the same subject's dev
split) is rendered as a conversation with the model's chat template, and the answer is the letter among A-D whose
token the model gives the highest probability at the first position of the reply.

The exam is `<task_dir>/<name>/`, `task` is `<name>_<split>` (split: test, validation or train), and the folder
holds `mapping.json` ({subject: {"name": ..., "category": ...}}) and one CSV per subject and split, in one of the
layouts of the three exams as published:

- MMLU: `[data/]{dev,val,test}/<subject>_{dev,val,test}.csv`, no header; columns question, A, B, C, D, answer;
- C-Eval: `{dev,val,test}/<subject>_{dev,val,test}.csv` with a header (id, question, A, B, C, D, answer, ...);
- CMMLU: `{dev,test}/<subject>.csv` with a header (an index column, Question, A, B, C, D, Answer).

The solved examples are the first `n_shot` rows of the dev split (LLaMA-Factory draws them at random, unseeded,
for every question; the first rows keep a score reproducible). Results: per subject, per category and overall
(Average) accuracy, printed as a table; with `save_dir`, results.json (each question's predicted letter, as
LLaMA-Factory writes it), results.log (the table) and scores.json (the accuracies, and per subject the number of
questions).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from ..config.errors import ConfigError
from ..config.schema import Config
from ..types import Conversation, Message

logger = logging.getLogger(__name__)
CHOICES = ("A", "B", "C", "D")
SPLIT_DIRS = {"test": "test", "validation": "val", "val": "val", "train": "dev", "dev": "dev"}
PROMPTS = {  # (system, choice, answer) as LLaMA-Factory's eval templates write them
    "en": ("The following are multiple choice questions (with answers) about {subject}.\n\n", "\n{choice}. {content}",
           "\nAnswer:"),
    "zh": ("以下是中国关于{subject}考试的单项选择题，请选出其中的正确答案。\n\n", "\n{choice}. {content}", "\n答案："),
}


@dataclass(frozen=True)
class Question:
    text: str
    options: tuple[str, str, str, str]
    answer: str  # A-D ("" where a published test split hides it)
    where: str  # file:line, for messages


def split_files(folder: Path, subject: str, split: str) -> list[Path]:
    d = SPLIT_DIRS.get(split, split)
    return [folder / "data" / d / f"{subject}_{d}.csv", folder / d / f"{subject}_{d}.csv", folder / d / f"{subject}.csv"]


def read_questions(path: Path) -> list[Question]:
    """One subject's split. Malformed rows fail naming the file and line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not UTF-8 text ({err.reason} at byte {err.start})") from None
    rows = list(csv.reader(text.splitlines()))
    header = [c.strip().lower() for c in rows[0]] if rows else []
    columns = None
    if "question" in header and "answer" in header:
        columns = {name: header.index(name.lower()) for name in ("question", *CHOICES, "answer")
                   if name.lower() in header}
        missing = [n for n in ("question", *CHOICES) if n not in columns]
        if missing:
            raise ConfigError(f"{path}:1: the header has no column {', '.join(missing)} (needs question, A, B, C, D, "
                              "answer)")
        rows = rows[1:]
        first_line = 2
    else:
        first_line = 1
    out = []
    for number, row in enumerate(rows, start=first_line):
        where = f"{path}:{number}"
        if not any(cell.strip() for cell in row):
            continue
        if columns is None:
            if len(row) != 6:
                raise ConfigError(f"{where}: expected 6 columns (question, A, B, C, D, answer), got {len(row)}")
            values = dict(zip(("question", *CHOICES, "answer"), row))
        else:
            if len(row) < len(header):
                raise ConfigError(f"{where}: expected {len(header)} columns as in the header, got {len(row)}")
            values = {name: row[i] for name, i in columns.items()}
        answer = values.get("answer", "").strip().upper()
        if answer not in ("", *CHOICES):
            raise ConfigError(f"{where}: the answer must be one of A, B, C, D; got {values.get('answer')!r}")
        if not values["question"].strip():
            raise ConfigError(f"{where}: the question is empty")
        out.append(Question(values["question"], tuple(values[c] for c in CHOICES), answer, where))
    return out


def load_split(folder: Path, subject: str, split: str) -> list[Question]:
    for path in split_files(folder, subject, split):
        if path.is_file():
            return read_questions(path)
    tried = ", ".join(str(p.relative_to(folder)) for p in split_files(folder, subject, split))
    raise ConfigError(f"{folder}: subject `{subject}` has no {split} split (looked for {tried})")


def read_mapping(folder: Path) -> dict[str, dict[str, str]]:
    path = folder / "mapping.json"
    if not path.is_file():
        raise ConfigError(f"{folder}: no mapping.json (the exam's subjects: {{subject: {{\"name\": ..., \"category\": "
                          "...}}}); is `task_dir` right?")
    try:
        mapping = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}:{err.lineno}: invalid JSON: {err.msg}") from None
    if not isinstance(mapping, dict) or not mapping:
        raise ConfigError(f"{path}: must map each subject to {{\"name\": ..., \"category\": ...}}")
    for subject, info in mapping.items():
        if not isinstance(info, dict) or not {"name", "category"} <= set(info):
            raise ConfigError(f"{path}: subject `{subject}` needs a \"name\" and a \"category\"")
    return mapping


def format_question(q: Question, lang: str) -> str:
    _, choice, answer = PROMPTS[lang]
    return q.text + "".join(choice.format(choice=c, content=o) for c, o in zip(CHOICES, q.options)) + answer


def conversation(target: Question, shots: list[Question], subject_name: str, lang: str) -> Conversation:
    messages = []
    for shot in shots:
        messages += [Message("user", format_question(shot, lang)), Message("assistant", shot.answer)]
    messages.append(Message("user", format_question(target, lang)))
    first = Message(messages[0].role, PROMPTS[lang][0].format(subject=subject_name) + messages[0].content)
    return Conversation((first, *messages[1:]))


def choice_ids(tokenizer) -> list[int]:
    """The token of each letter as it follows the reply's start (LLaMA-Factory: the letter's last token)."""
    return [tokenizer.encode(c, add_special_tokens=False)[-1] for c in CHOICES]


def answer_letters(model, prompts: list[list[int]], choices: list[int], batch_size: int, pad_id: int) -> list[str]:
    """The most probable letter after each prompt (right-padded batches; the logits of each prompt's last token)."""
    import torch

    device = next(model.parameters()).device
    out = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            batch = prompts[start:start + batch_size]
            width = max(len(p) for p in batch)
            ids = torch.full((len(batch), width), pad_id, dtype=torch.long)
            mask = torch.zeros((len(batch), width), dtype=torch.long)
            for row, prompt in enumerate(batch):
                ids[row, :len(prompt)] = torch.tensor(prompt)
                mask[row, :len(prompt)] = 1
            logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            last = torch.tensor([len(p) - 1 for p in batch], device=logits.device)
            picked = logits[torch.arange(len(batch), device=logits.device), last][:, choices]
            out += [CHOICES[i] for i in picked.float().softmax(-1).argmax(-1).tolist()]
    return out


def run_exam(cfg: Config) -> dict:
    """Score the exam; print the table; write the results into `save_dir` when given. Returns scores.json."""
    from ..infer.load import load_for_inference

    ev = cfg.evaluation
    name, split = ev.task.rsplit("_", 1)
    folder = Path(ev.task_dir) / name
    if not folder.is_dir():
        raise ConfigError(f"`task` {ev.task}: {folder} is not a folder (`task_dir` is {ev.task_dir})")
    mapping = read_mapping(folder)
    exams = {s: (load_split(folder, s, split), load_split(folder, s, "train")[:ev.n_shot] if ev.n_shot else [])
             for s in mapping}  # every file is read (and checked) before the model loads
    for subject, (questions, _) in exams.items():
        unanswered = [q.where for q in questions if not q.answer]
        if unanswered:
            raise ConfigError(f"{unanswered[0]}: no answer ({len(unanswered)} of {len(questions)} questions of "
                              f"`{subject}` have none; the published C-Eval test split hides them: use "
                              f"{name}_validation)")
    loaded = load_for_inference(cfg)
    tok, template = loaded.tokenizer, loaded.template
    choices = choice_ids(tok)
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else 0
    results, correct = {}, {}
    for subject, (questions, shots) in exams.items():
        prompts = [tok.encode(template.generation_prompt(conversation(q, shots, mapping[subject]["name"], ev.lang),
                                                         tok.bos_token or "", tok.eos_token or "",
                                                         loaded.default_system), add_special_tokens=False)
                   for q in questions]
        letters = answer_letters(loaded.model, prompts, choices, ev.batch_size, pad_id)
        results[subject] = {str(i): letter for i, letter in enumerate(letters)}
        correct[subject] = [letter == q.answer for letter, q in zip(letters, questions)]
    scores = summarize(mapping, correct)
    table = score_table(scores)
    print(table)
    if ev.save_dir:
        out = Path(ev.save_dir)
        out.mkdir(parents=True, exist_ok=False)
        (out / "results.json").write_text(json.dumps(results, indent=2), encoding="utf-8")
        (out / "results.log").write_text(table + "\n", encoding="utf-8")
        (out / "scores.json").write_text(json.dumps(scores, indent=2, ensure_ascii=False), encoding="utf-8")
        logger.info("exam results written to %s", out)
    return scores


def summarize(mapping: dict, correct: dict[str, list[bool]]) -> dict:
    """Accuracy (x100) per category (over its questions) and overall (Average), and per subject."""
    by_category: dict[str, list[bool]] = {"Average": []}
    for subject, hits in correct.items():
        by_category.setdefault(mapping[subject]["category"], []).extend(hits)
        by_category["Average"].extend(hits)
    pct = lambda hits: round(100.0 * sum(hits) / len(hits), 2) if hits else None  # noqa: E731
    return {"categories": {c: pct(h) for c, h in by_category.items() if h},
            "subjects": {s: {"accuracy": pct(h), "questions": len(h)} for s, h in correct.items()}}


def score_table(scores: dict) -> str:
    lines = [f"{name:>15}: {value:.2f}" for name, value in scores["categories"].items()]
    lines += ["", "per subject:"] + [f"{s:>30}: {v['accuracy']:.2f} ({v['questions']} questions)"
                                     for s, v in scores["subjects"].items() if v["accuracy"] is not None]
    return "\n".join(lines)
