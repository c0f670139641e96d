"""A trained reward model (stage rm), reloaded from its output_dir alone and used to score conversations,
rendered texts or token ids: the reward of ppo's `reward_model_type: full`, and a scorer for users."""

from __future__ import annotations

from ...stages.preference.forward import last_token_scores


class RewardModel:
    """A trained reward model, reloaded from its output_dir alone (tunesmith.json names the base model and
    the template), scoring conversations that end with a reply, or raw texts."""

    def __init__(self, model, tokenizer, template) -> None:
        self.model, self.tokenizer, self.template = model.eval(), tokenizer, template

    @classmethod
    def load(cls, output_dir: str, dtype=None, quantization_bit: int | None = None,
             quantization_method: str = "bnb") -> RewardModel:
        """``quantization_bit``: quantize the base on the fly (an adapter then stays unmerged beside it)."""
        import torch

        from ...config.errors import ConfigError
        from ...config.schema import ModelArgs
        from ...model.load import load_model, load_tokenizer
        from ...templates.resolve import resolve_template
        from ...utils.run_card import read_run_card

        card = read_run_card(output_dir)
        if card is None or card.get("model_head") != "score":
            raise ConfigError(f"{output_dir} is not a tunesmith reward model (no tunesmith.json with "
                              "`model_head: score`; train one with `stage: rm`)")
        tokenizer = load_tokenizer(ModelArgs(model_name_or_path=str(output_dir)))
        base = card["base_model"] if card.get("is_adapter") else str(output_dir)
        model = load_model(ModelArgs(model_name_or_path=base, quantization_bit=quantization_bit,
                                     quantization_method=quantization_method), dtype or torch.float32, head="score",
                           pad_token_id=tokenizer.pad_token_id)
        if card.get("is_adapter"):
            from peft import PeftModel

            rows = card.get("embedding_rows")
            if rows and rows != model.get_input_embeddings().weight.shape[0]:
                model.resize_token_embeddings(rows, mean_resizing=False)
            model = PeftModel.from_pretrained(model, str(output_dir))
            if quantization_bit is None:  # merged into full-precision weights; quantized ones cannot hold it
                model = model.merge_and_unload()
        return cls(model, tokenizer, resolve_template(card.get("template"), tokenizer))

    def score(self, conversations, batch_size: int = 8) -> list[float]:
        """Scores of conversations (each ending with the assistant reply to judge), encoded exactly as in
        training."""
        from ...data.encode_preference import render_prompt_and_reply

        rows = [p + r for p, r in render_prompt_and_reply(list(conversations), self.tokenizer, self.template)]
        return self.score_ids(rows, batch_size)

    def score_texts(self, texts, batch_size: int = 8) -> list[float]:
        """Scores of already rendered texts (no template applied)."""
        from ...data.encode import tokenize_texts

        return self.score_ids(tokenize_texts(self.tokenizer, list(texts)), batch_size)

    def score_ids(self, rows: list[list[int]], batch_size: int = 8) -> list[float]:
        import torch

        from ...data.collate import pad_rows

        scores: list[float] = []
        device = next(self.model.parameters()).device
        with torch.no_grad():
            for start in range(0, len(rows), batch_size):
                batch = pad_rows([(r, r) for r in rows[start:start + batch_size]], self.tokenizer.pad_token_id)
                scores += last_token_scores(self.model, batch["input_ids"].to(device),
                                            batch["attention_mask"].to(device)).tolist()
        return scores
