"""Ask a fine-tuned model a few questions from the training data, with vanilla transformers only.

    python examples/quickstart/ask.py saves/tiny-qwen2/full/sft [--base models/tiny-qwen2] ["question" ...]

The tokenizer saved next to the weights carries the training chat template, so apply_chat_template
builds exactly the prompt the model was trained on.
"""

from __future__ import annotations

import argparse

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

DEFAULT_QUESTIONS = ["Who are you?", "What is your name?", "你是谁？"]


def answer(model_dir: str, question: str, max_new_tokens: int = 48) -> str:
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir)
    ids = tokenizer.apply_chat_template([{"role": "user", "content": question}], add_generation_prompt=True,
                                        return_tensors="pt", return_dict=True)["input_ids"]
    with torch.no_grad():
        out = model.generate(ids, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
    return tokenizer.decode(out[0, ids.shape[1]:], skip_special_tokens=True).strip()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--base", help="also show what the model answered before fine-tuning")
    parser.add_argument("questions", nargs="*", default=DEFAULT_QUESTIONS)
    args = parser.parse_args()
    for question in args.questions:
        print(f"Q: {question}")
        if args.base:
            print(f"   before: {answer(args.base, question)!r}")
        print(f"   after:  {answer(args.model_dir, question)!r}")


if __name__ == "__main__":
    main()
