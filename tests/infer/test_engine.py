"""The inference engine: what it loads from an output dir or model + adapters, prompts equal to training's,
streaming, stop tokens and stop strings, seeds, bad messages, and the vLLM backend's clear error."""

from __future__ import annotations

import pytest
import torch

from tunesmith.config.errors import ConfigError
from tunesmith.config.load import build_config
from tunesmith.infer.backends import create_engine
from tunesmith.infer.engine import InvalidRequest, Sampling, _Decoder, to_conversation
from tunesmith.infer.load import stop_token_ids
from tunesmith.templates.builtin import get_template

CONVERSATION = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "What is 1+1?"},
                {"role": "assistant", "content": "1+1=2"}, {"role": "user", "content": "What is 2+3?"}]


def infer_config(**keys):
    return build_config({k: (v, "test") for k, v in keys.items()}, purpose="infer")


@pytest.fixture(scope="module")
def engine(lora_run):
    return create_engine(infer_config(model_name_or_path=str(lora_run), do_sample=False, max_new_tokens=12))


def reference_logits(base, adapters, ids, rows=None):
    """base + adapters the plain peft way (unmerged), for comparison."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    if rows:
        model.resize_token_embeddings(rows, mean_resizing=False)
    for i, adapter in enumerate(adapters):
        model = PeftModel.from_pretrained(model, adapter)
        if i < len(adapters) - 1:
            model = model.merge_and_unload()
    with torch.no_grad():
        return model(torch.tensor([ids])).logits


def test_output_dir_alone_names_base_adapter_and_template(engine, lora_run, qwen2_model):
    assert engine.source.base == str(qwen2_model.resolve())
    assert engine.source.adapters == [str(lora_run)]
    assert engine.template.name == "qwen3_nothink"
    assert engine.tokenizer.convert_tokens_to_ids("<|im_end|>") in engine.stop_ids


@pytest.mark.parametrize("run", ["lora_run", "lora_tokens_run"])
def test_merged_weights_equal_base_plus_adapter(run, request):
    out = request.getfixturevalue(run)
    eng = create_engine(infer_config(model_name_or_path=str(out)))
    ids = eng.prompt_ids(CONVERSATION)
    if run == "lora_tokens_run":
        tool = eng.tokenizer.convert_tokens_to_ids("<tool>")
        assert eng.model.get_input_embeddings().weight.shape[0] == 576
        ids = ids + [tool]  # the new token's trained row is used
    with torch.no_grad():
        merged = eng.model(torch.tensor([ids])).logits
    ref = reference_logits(eng.source.base, [str(out)], ids, rows=eng.source.embedding_rows)
    vocab = len(eng.tokenizer)
    torch.testing.assert_close(merged[..., :vocab], ref[..., :vocab], rtol=1e-4, atol=1e-4)


def test_explicit_model_and_several_adapters_apply_in_order(lora_run, qwen2_model, engine):
    eng = create_engine(infer_config(model_name_or_path=str(qwen2_model),
                                     adapter_name_or_path=f"{lora_run},{lora_run}"))
    assert eng.source.adapters == [str(lora_run), str(lora_run)]
    assert eng.template.name == "qwen3_nothink"  # from the adapter's run card
    ids = eng.prompt_ids(CONVERSATION)
    with torch.no_grad():
        twice = eng.model(torch.tensor([ids])).logits
        once = engine.model(torch.tensor([ids])).logits
    ref = reference_logits(str(qwen2_model), [str(lora_run), str(lora_run)], ids)
    torch.testing.assert_close(twice, ref, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(twice, once)  # the second application changed something


def test_prompt_is_the_training_prompt(engine):
    from tunesmith.data.encode import encode_supervised

    conv = to_conversation(CONVERSATION + [{"role": "assistant", "content": "2+3=5"}], for_reply=False)
    [example], _ = encode_supervised([conv], engine.tokenizer, engine.template, cutoff_len=512)
    prompt = engine.prompt_ids(CONVERSATION)
    assert example.input_ids[:len(prompt)] == prompt
    assert example.labels[len(prompt) - 1] == -100 and example.labels[len(prompt)] != -100  # the reply starts here


def test_stream_pieces_join_to_the_reply(engine):
    reply = engine.chat(CONVERSATION)
    pieces = list(engine.stream(CONVERSATION))
    assert "".join(pieces) == reply.text
    assert reply.prompt_tokens == len(engine.prompt_ids(CONVERSATION))
    assert 1 <= reply.completion_tokens <= 12
    assert reply.finish_reason in ("stop", "length")
    if reply.finish_reason == "length":
        assert reply.completion_tokens == 12


def test_max_tokens_and_seed(engine):
    short = engine.chat(CONVERSATION, max_new_tokens=3, temperature=1.0, top_p=1.0, seed=7)
    again = engine.chat(CONVERSATION, max_new_tokens=3, temperature=1.0, top_p=1.0, seed=7)
    assert short.completion_tokens <= 3 and short == again


def test_generation_stops_at_the_template_end_of_turn_token(llama3_model):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama3_model)
    tok.eos_token = "<|end_of_text|>"  # as in the base Llama 3 models: eos is not the end-of-turn token
    stops = stop_token_ids(tok, get_template("llama3"))
    eot = tok.convert_tokens_to_ids("<|eot_id|>")
    assert eot in stops and tok.eos_token_id in stops and eot != tok.eos_token_id
    seen = []
    decoder = _Decoder(tok, set(stops), True, (), seen.append, None)
    decoder.feed(tok.encode("hello there", add_special_tokens=False))
    decoder.feed([eot] + tok.encode(" more text", add_special_tokens=False))
    decoder.close()
    assert decoder.text == "hello there" and "".join(seen) == "hello there"
    assert decoder.finish == "stop" and decoder.count == len(tok.encode("hello there", add_special_tokens=False)) + 1


def test_stop_strings_cut_the_reply_and_are_never_streamed(llama3_model):
    import threading

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(llama3_model)
    seen, cancel = [], threading.Event()
    decoder = _Decoder(tok, set(), True, ("note 4",), seen.append, cancel)
    for tid in tok.encode("note 1 rises to note 4 and rests", add_special_tokens=False):
        decoder.feed([tid])
    decoder.close()
    assert decoder.text == "note 1 rises to " and "".join(seen) == decoder.text
    assert decoder.finish == "stop" and cancel.is_set()  # generation is told to stop


@pytest.mark.parametrize("messages,message", [
    ([], "at least one message"),
    ([{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}], "last message must be the user"),
    ([{"role": "user", "content": "hi"}, {"role": "system", "content": "s"}, {"role": "user", "content": "x"}],
     "must come before"),
    ([{"role": "wizard", "content": "hi"}], "role must be"),
    ([{"role": "user", "content": None}], "content must be text"),
    ([{"role": "system", "content": "only a system prompt"}], "no user message"),
    ([{"role": "user", "content": "hi \ud800 there"}], r"messages\[0\].content is not valid Unicode text: it holds a "
                                                       r"lone surrogate \(U\+D800\) at character 3"),
    ([{"role": "system", "content": "s"}, {"role": "user", "content": "\udcff"}], r"messages\[1\].content is not"),
])
def test_bad_messages_are_refused(messages, message):
    with pytest.raises(InvalidRequest, match=message):
        to_conversation(messages)


def test_sampling_defaults_come_from_the_config_and_fit_the_context(engine):
    options = engine.sampling(10)
    assert options == Sampling(do_sample=False, max_new_tokens=12, temperature=0.95, top_p=0.7)
    assert engine.sampling(10, temperature=0).do_sample is False
    assert engine.sampling(engine.context_limit - 5, max_new_tokens=100).max_new_tokens == 5
    with pytest.raises(InvalidRequest, match="context"):
        engine.sampling(engine.context_limit)


def test_vllm_backend_fails_clearly_when_not_installed(lora_run):
    with pytest.raises(ConfigError, match="needs the vllm package, which is not installed"):
        create_engine(infer_config(model_name_or_path=str(lora_run), infer_backend="vllm"))


def test_unavailable_backends_and_bad_values_fail_before_loading():
    with pytest.raises(ConfigError, match="`infer_backend: sglang` is not available"):
        infer_config(model_name_or_path="m", infer_backend="sglang")
    with pytest.raises(ConfigError, match="`top_p` must be in"):
        infer_config(model_name_or_path="m", top_p=0)
    with pytest.raises(ConfigError, match=r"`sglang_maxlen` is a LLaMA-Factory option .* \(inference backend: SGLang\)"):
        infer_config(model_name_or_path="m", sglang_maxlen=10)


def test_adapter_folder_without_card_needs_a_base(tmp_path, lora_run):
    import shutil

    bare = tmp_path / "adapter"
    shutil.copytree(lora_run, bare)
    (bare / "tunesmith.json").unlink()
    with pytest.raises(ConfigError, match="pass the base model as `model_name_or_path`"):
        create_engine(infer_config(model_name_or_path=str(bare)))


def test_full_finetuned_output_dir_loads_as_itself(train_config, qwen2_model):
    from tunesmith.train.run import run_training

    cfg = train_config(qwen2_model, finetuning_type="full", max_steps=2, add_special_tokens="<tool>",
                       template="qwen3_nothink")
    run_training(cfg)
    eng = create_engine(infer_config(model_name_or_path=cfg.output_dir, do_sample=False, max_new_tokens=4))
    assert eng.source.base == cfg.output_dir and eng.source.adapters == []
    assert eng.template.name == "qwen3_nothink" and eng.tokenizer.convert_tokens_to_ids("<tool>") == 512
    assert eng.model.get_input_embeddings().weight.shape[0] == 576
    assert eng.suppress == list(range(513, 576))  # padding rows are never sampled
    assert eng.chat([{"role": "user", "content": "<tool> 1+1?"}]).completion_tokens >= 1
