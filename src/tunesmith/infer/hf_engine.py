"""The Hugging Face backend: transformers' ``generate`` with the KV cache, concurrent requests batched.

Callers block in ``generate`` while one worker thread serves them. Each round it takes the oldest waiting request
and every other waiting request that decodes the same way (sampling options; no seed, no beams), up to
``infer_max_batch``, and generates them as one left-padded batch. Every row stops by itself (its end-of-turn
token, stop strings, token budget, or its client cancelling): a finished row only pads until the batch ends, and
the batch ends when every row has. Requests with a seed or beam search run alone, so a seed repeats its reply
exactly. A row's output is decoded and streamed as it is generated, as for a single request.

Requests with images or videos (a vision-language model) batch like text: each of the batch's vision inputs
(pixel_values and image_grid_thw, pixel_values_videos, video_grid_thw and second_per_grid_ts) is the rows' own,
concatenated in row order over the rows that have it, and each row's mm_token_type_ids sit under its left-padded
tokens (0 on padding and text rows), so transformers computes each row's 3-D rope positions from its own tokens
and grids.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from ..config.schema import Config
from ..model.generation import generation_config
from .engine import Engine, Reply, Sampling, _Decoder

GATHER_SECONDS = 0.01  # how long the first request of a round waits for others that arrive with it


@dataclass
class _Job:
    prompt_ids: list[int]
    media: object | None  # infer/vision.py's PromptMedia of a prompt with images
    options: Sampling
    decoder: _Decoder
    cancel: threading.Event
    future: Future = field(default_factory=Future)

    def batch_key(self) -> tuple | None:
        """Requests with equal keys decode the same way and may share a batch (None: this one runs alone)."""
        o = self.options
        if o.seed is not None or o.num_beams != 1:
            return None
        return (o.do_sample, o.temperature, o.top_p, o.top_k, o.repetition_penalty, o.skip_special_tokens)


class HuggingFaceEngine(Engine):
    name = "huggingface"
    concurrent = True

    def __init__(self, cfg: Config, loaded):
        limit = getattr(loaded.model.config.get_text_config(), "max_position_embeddings", None)
        super().__init__(cfg, loaded.tokenizer, loaded.template, loaded.stop_ids, loaded.default_system, limit,
                         loaded.vision)
        self.model = loaded.model
        self.source = loaded.source
        self.max_batch = cfg.infer.infer_max_batch
        rows = self.model.get_input_embeddings().weight.shape[0]
        padding = rows - len(self.tokenizer)  # rows without a token must never be sampled
        self.suppress = list(range(len(self.tokenizer), rows)) if 0 < padding <= 4096 else None
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else self.stop_ids[0]
        self.waiting: deque[_Job] = deque()
        self.wake = threading.Condition()
        self.worker: threading.Thread | None = None
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # the latest rounds' sizes (bench, tests)

    # -- the callers' side ------------------------------------------------------------------------------
    def generate(self, prompt_ids: list[int], options: Sampling, on_text: Callable[[str], None] | None = None,
                 cancel: threading.Event | None = None) -> Reply:
        cancel = cancel or threading.Event()
        budget = options.max_new_tokens if options.num_beams == 1 else None
        decoder = _Decoder(self.tokenizer, set(self.stop_ids), options.skip_special_tokens, options.stop, on_text,
                           cancel, budget)
        job = _Job(list(prompt_ids), getattr(prompt_ids, "media", None), options, decoder, cancel)
        with self.wake:
            if self.worker is None or not self.worker.is_alive():
                self.worker = threading.Thread(target=self._serve, name="tunesmith-generate", daemon=True)
                self.worker.start()
            self.waiting.append(job)
            self.wake.notify()
        return job.future.result()

    # -- the worker's side ------------------------------------------------------------------------------
    def _serve(self) -> None:
        while True:
            batch = self._next_batch()
            try:
                self._run(batch)
            except BaseException as err:  # noqa: BLE001 - handed to every caller of the batch
                for job in batch:
                    if not job.future.done():
                        job.future.set_exception(err)

    def _next_batch(self) -> list[_Job]:
        with self.wake:
            while not self.waiting:
                self.wake.wait()
            deadline = time.monotonic() + GATHER_SECONDS  # others sent at the same moment are on their way
            while len(self.waiting) < self.max_batch and (left := deadline - time.monotonic()) > 0:
                self.wake.wait(left)
            first = self.waiting.popleft()
            key = first.batch_key()
            batch = [first]
            if key is not None:
                for job in list(self.waiting):
                    if len(batch) >= self.max_batch:
                        break
                    if job.batch_key() == key:
                        self.waiting.remove(job)
                        batch.append(job)
            return batch

    def _run(self, batch: list[_Job]) -> None:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        live = [job for job in batch if not job.cancel.is_set()]
        for job in batch:
            if job.cancel.is_set():
                job.future.set_result(Reply("", "cancelled", len(job.prompt_ids), 0))
        if not live:
            return
        decoders = [job.decoder for job in live]
        stopped = [False] * len(live)
        options = live[0].options
        streaming = options.num_beams == 1

        class Streamer(BaseStreamer):
            prompt_seen = False

            def put(self, value) -> None:
                if not self.prompt_seen:  # generate hands over the prompts first
                    self.prompt_seen = True
                    return
                for decoder, token, done in zip(decoders, value.reshape(len(decoders), -1).tolist(), stopped):
                    if not done:  # a stopped row only gets padding from here on
                        decoder.feed(token)

            def end(self) -> None:
                for decoder in decoders:
                    decoder.close()

        class RowDone(StoppingCriteria):  # each row stops by itself; generate pads it until all are done
            def __call__(self, input_ids, scores, **kwargs):
                stopped[:] = [was or d.done for was, d in zip(stopped, decoders)]
                return torch.tensor(stopped, dtype=torch.bool, device=input_ids.device)

        config = generation_config(
            do_sample=options.do_sample, temperature=options.temperature, top_p=options.top_p, top_k=options.top_k,
            repetition_penalty=options.repetition_penalty, stop_ids=self.stop_ids, pad_id=self.pad_id,
            max_new_tokens=max(job.options.max_new_tokens for job in live), num_beams=options.num_beams,
            length_penalty=options.length_penalty, use_cache=self.cfg.infer.use_kv_cache,
            suppress_tokens=self.suppress)
        device = self.model.get_input_embeddings().weight.device
        width = max(len(job.prompt_ids) for job in live)
        ids = torch.full((len(live), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(live), width), dtype=torch.long)
        for row, job in enumerate(live):  # left padding: every prompt ends where generation starts
            ids[row, width - len(job.prompt_ids):] = torch.tensor(job.prompt_ids)
            mask[row, width - len(job.prompt_ids):] = 1
        vision = {key: value.to(device) for key, value in _vision_inputs(live, width).items()}
        if options.seed is not None:
            torch.manual_seed(options.seed)
        with torch.inference_mode():
            out = self.model.generate(input_ids=ids.to(device), attention_mask=mask.to(device),
                                      generation_config=config, streamer=Streamer() if streaming else None,
                                      stopping_criteria=StoppingCriteriaList([RowDone()]), **vision)
        if not streaming:
            decoders[0].feed(out[0, width:].tolist())
            decoders[0].close()
        self.batch_sizes.append(len(live))
        for job in live:
            d = job.decoder
            finish = d.finish or ("cancelled" if job.cancel.is_set() else "length")
            job.future.set_result(Reply(d.text, finish, len(job.prompt_ids), d.count))


def _vision_inputs(jobs: list[_Job], width: int) -> dict:
    """The batch's vision inputs: each row's pixel values and grids (of images, of videos) in row order, and
    mm_token_type_ids under the left-padded prompts (empty when no row has an image or a video)."""
    import torch

    rows = [job for job in jobs if job.media is not None]
    if not rows:
        return {}
    keys = dict.fromkeys(key for job in rows for key in job.media.features)  # a row may have images only
    out = {key: torch.cat([job.media.features[key] for job in rows if key in job.media.features]) for key in keys}
    types = torch.zeros((len(jobs), width), dtype=torch.long)
    for row, job in enumerate(jobs):
        if job.media is not None:
            types[row, width - len(job.prompt_ids):] = torch.tensor(job.media.token_types)
    out["mm_token_type_ids"] = types
    return out
