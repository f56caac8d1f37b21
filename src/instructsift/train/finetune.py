"""Supervised fine-tuning of a causal LM on selected examples, loss on answer tokens only.

The sequences follow the scoring convention (`scoring/templates.py`): S = `tok("")` start tokens, then
the template's prompt and the answer tokenized separately and concatenated; an EOS is appended to each
answer as in Stanford Alpaca's training, so the model learns to stop. A multi-turn conversation is one
sequence in which every assistant turn is a target; where the template is not prefix-stable across turns
(a chat template that rewrites earlier turns), each turn becomes its own sequence instead.

LoRA (Hu et al., 2022) via `peft` by default, full fine-tuning on request. The loop is Hugging Face's
`Trainer`: it already does what a resumable run needs (checkpoints with optimizer, scheduler, RNG and data
position; gradient accumulation with token-weighted loss; bf16/fp16 mixed precision; CPU or GPU through
accelerate), so a hand-written loop would only re-implement it. Around it: length-grouped batches, each
packed into one padding-free row with the LM head and loss on answer positions only (`train.packing`),
LoRA's frozen base kept in the mixed-precision dtype, a rich progress bar on stderr, resume from the last
complete checkpoint, and an atomic final save of a merged model folder (or a LoRA adapter) that
`models.loader.resolve` loads as a local path.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field

from ..atomic import atomic_path, write_text
from ..data.errors import OptionError
from ..data.example import Example
from ..models.embedded import EMBEDDED
from ..models.loader import peft_quietly

MODEL_INFO = "instructsift-model.json"  # written into every saved model; part of its fingerprint
SAVE_MODES = ("merged", "adapter")
MIXED = ("auto", "float32", "bfloat16", "float16")


@dataclass(frozen=True)
class TrainSequence:
    """Token ids and the [start, end) spans whose tokens are targets (answer tokens and their EOS)."""

    ids: tuple[int, ...]
    spans: tuple[tuple[int, int], ...]
    truncated: bool = False

    @property
    def n_targets(self) -> int:
        return sum(b - a for a, b in self.spans)

    def labels(self) -> list[int]:
        """`ids` with every non-target position set to -100 (ignored by the loss)."""
        out = [-100] * len(self.ids)
        for a, b in self.spans:
            out[a:b] = self.ids[a:b]
        return out


@dataclass
class Built:
    """An example's training sequences, or why it gives none."""

    sequences: list[TrainSequence]
    reason: str | None = None


def build_sequences(
    examples: Sequence[Example], template: Any, tokenizer: Any, max_length: int, eos: bool = True
) -> list[Built]:
    """Tokenize examples into training sequences (see the module docstring), truncated to `max_length`."""
    from ..scoring.templates import get_template, start_ids, turn_texts

    if isinstance(template, str):
        template = get_template(template)
    if max_length < 2:
        raise OptionError(f"max_length must be at least 2, got {max_length}")
    eos_id = tokenizer.eos_token_id if eos else None
    if eos and eos_id is None:
        raise OptionError("the tokenizer has no EOS token: turn EOS off ({eos})", eos=False)
    eos_text = (tokenizer.eos_token or "") if eos else ""
    start = start_ids(tokenizer)
    plans: list[list[list[tuple[str, bool]]]] = []
    for ex in examples:
        turns = turn_texts(ex, template, tokenizer)
        pieces: list[tuple[str, bool]] = []
        prev: str | None = ""
        for k, (prompt, answer) in enumerate(turns):
            if prev is None or not prompt.startswith(prev):
                prev = None
                break
            context = prompt[len(prev) :]
            if k and eos_text and context.startswith(eos_text):  # the template's own end of turn: EOS is there
                context = context[len(eos_text) :]
            pieces += [(context, False), (answer, True)]
            prev = prompt + answer
        plans.append([pieces] if prev is not None else [[(p, False), (a, True)] for p, a in turns])
    texts = [text for seqs in plans for pieces in seqs for text, _ in pieces]
    ids = iter(tokenizer(texts, add_special_tokens=False).input_ids if texts else [])
    out: list[Built] = []
    for seqs in plans:
        built: list[TrainSequence] = []
        truncated = False
        for pieces in seqs:
            seq = list(start)
            spans: list[tuple[int, int]] = []
            for _text, target in pieces:
                toks = next(ids)
                if target and not toks:
                    continue  # an empty answer teaches nothing
                a = len(seq)
                seq += toks
                if target:
                    if eos_id is not None:
                        seq.append(eos_id)
                    spans.append((max(a, 1), len(seq)))
            if len(seq) > max_length:
                truncated = True
                seq = seq[:max_length]
                spans = [(a, min(b, max_length)) for a, b in spans if a < max_length]
            if spans:
                built.append(TrainSequence(tuple(seq), tuple(spans), truncated))
        if built:
            out.append(Built(built))
        elif truncated:
            out.append(Built([], f"the prompt fills max_length {max_length}: no answer token is left"))
        else:
            out.append(Built([], "no answer tokens"))
    return out


@dataclass(frozen=True)
class Cost:
    """What an example costs in training: its answer tokens that are trained (targets after the
    `max_length` cut, EOS included; prompt tokens are not trained and not counted) and its sequences."""

    tokens: int
    sequences: int


def training_tokenizer(path: str | os.PathLike, trust_remote_code: bool = False) -> Any:
    """The tokenizer `finetune` trains with: right padding, EOS as the pad token where there is none."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def training_costs(examples: Sequence[Example], model: str, config: FinetuneConfig) -> list[Cost]:
    """Each example's `Cost` as `finetune(examples, model, config)` would train it: the same template,
    tokenizer, EOS and `max_length` cut, without loading the model."""
    from ..models import resolve

    return costs_with(examples, training_tokenizer(resolve(model).path, config.trust_remote_code), config)


def costs_with(examples: Sequence[Example], tokenizer: Any, config: FinetuneConfig) -> list[Cost]:
    """Each example's `Cost` with a loaded training tokenizer (the `trained_tokens` scorer's batches)."""
    built = build_sequences(examples, config.template, tokenizer, config.max_length, config.eos)
    return [Cost(sum(s.n_targets for s in b.sequences), len(b.sequences)) for b in built]


def optimizer_steps(sequences: int, config: FinetuneConfig) -> int:
    """Optimizer steps of `finetune` over `sequences` training sequences, as transformers' Trainer counts
    them: batches per epoch, a short last batch and a short last accumulation included."""
    batches = -(-sequences // config.batch_size)
    return math.ceil(config.epochs * max(-(-batches // config.grad_accum), 1)) if sequences else 0


@dataclass
class FinetuneConfig:
    """Training settings. `lr` defaults to 2e-4 for LoRA and 2e-5 for full fine-tuning (Alpaca's)."""

    template: Annotated[str, Field(description="alpaca, chat, none, or a JSON template file")] = "alpaca"
    max_length: Annotated[int, Field(description="Tokens per sequence")] = 512
    epochs: Annotated[float, Field(description="Passes over the data")] = 3.0
    lr: Annotated[float | None, Field(description="Peak learning rate [LoRA 2e-4, full 2e-5]")] = None
    batch_size: Annotated[int, Field(description="Sequences per step")] = 8
    grad_accum: Annotated[int, Field(description="Steps accumulated per update")] = 1
    warmup_ratio: Annotated[float, Field(description="Share of the steps that warm the learning rate up")] = 0.03
    scheduler: Annotated[str, Field(description="Learning-rate schedule (transformers' name: cosine, linear, ...)")] = (
        "cosine"
    )
    weight_decay: Annotated[float, Field(description="AdamW weight decay")] = 0.0
    lora: Annotated[
        bool,
        Field(
            description="Fine-tune LoRA adapters, or (off: --full) the whole model",
            json_schema_extra={"off": "full"},  # the command line's switch for False: --full
        ),
    ] = True
    lora_r: Annotated[int, Field(description="LoRA rank")] = 16
    lora_alpha: Annotated[int, Field(description="LoRA alpha")] = 32
    lora_dropout: Annotated[float, Field(description="LoRA dropout")] = 0.05
    lora_targets: Annotated[str, Field(description="The modules LoRA adapts (peft's target_modules)")] = "all-linear"
    eos: Annotated[bool, Field(description="Append EOS to each answer")] = True
    seed: Annotated[int, Field(description="Random seed")] = 42
    # mixed precision: auto = bf16 where the hardware is fast at it, else fp32
    dtype: Annotated[str, Field(description="Mixed precision: auto, float32, bfloat16 or float16")] = "auto"
    # one GPU: pick it with CUDA_VISIBLE_DEVICES
    device: Annotated[str, Field(description="auto, cpu, cuda or cuda:N")] = "auto"
    save: Annotated[str, Field(description="merged (a model folder) or adapter (LoRA weights only)")] = "merged"
    checkpoint_steps: Annotated[int, Field(description="Save a checkpoint every N steps")] = 100
    trust_remote_code: Annotated[bool, Field(description="Allow a hub model's own code to run")] = False

    def __post_init__(self) -> None:
        if self.save not in SAVE_MODES:
            raise OptionError(f"save must be one of {', '.join(SAVE_MODES)}, got {self.save!r}")
        if self.save == "adapter" and not self.lora:
            raise OptionError("save='adapter' needs LoRA; full fine-tuning saves the whole model")
        if self.dtype not in MIXED:
            raise OptionError(f"dtype must be one of {', '.join(MIXED)}, got {self.dtype!r}")
        for name in ("epochs", "batch_size", "grad_accum", "checkpoint_steps", "max_length"):
            if getattr(self, name) <= 0:
                raise OptionError(f"{name} must be positive, got {getattr(self, name)}")

    @property
    def learning_rate(self) -> float:
        return self.lr if self.lr is not None else (2e-4 if self.lora else 2e-5)


@dataclass
class FinetuneResult:
    output: str
    examples: int
    sequences: int
    skipped: list[tuple[str, str]]  # (example id, reason)
    tokens: int  # tokens per epoch (no padding)
    target_tokens: int
    steps: int
    train_loss: float | None
    seconds: float
    tokens_per_second: float
    resumed_from: str | None = None
    info: dict[str, Any] = field(default_factory=dict)


def mixed_precision(dtype: str, device: str) -> str:
    """The autocast dtype for training: `auto` is bf16 on GPUs that support it and CPUs with native
    bf16, else fp32 (fp16 only when asked, on a GPU)."""
    import torch

    from ..models.device import cpu_has_fast_bf16

    if dtype == "auto":
        if device.startswith("cuda"):
            return "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
        return "bfloat16" if cpu_has_fast_bf16() else "float32"
    if dtype == "float16" and not device.startswith("cuda"):
        raise OptionError("float16 mixed precision needs a GPU; use bfloat16 or float32 on a CPU")
    return dtype


def _checkpoint_dir(output: Path) -> Path:
    return output.parent / f".{output.name}.checkpoints"


def _last_complete_checkpoint(folder: Path) -> Path | None:
    """The newest checkpoint whose trainer state was written (the Trainer writes it last)."""
    done = [p for p in folder.glob("checkpoint-*") if (p / "trainer_state.json").exists()]
    return max(done, key=lambda p: int(p.name.rsplit("-", 1)[1])) if done else None


def _lora_config(config: FinetuneConfig) -> Any:
    from peft import LoraConfig

    return LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_targets,
        task_type="CAUSAL_LM",
    )


def _freeze_in(model: Any, dtype: Any) -> None:
    """Keep the frozen base weights in `dtype` (the autocast dtype, which they are rounded to at every use
    anyway) and the LoRA weights in fp32: no fp32 copy of frozen weights, no casts of activations back and
    forth around every LoRA layer."""
    from peft.tuners.tuners_utils import BaseTunerLayer

    for p in model.parameters():
        if not p.requires_grad and p.is_floating_point():
            p.data = p.data.to(dtype)
    for m in model.modules():
        if isinstance(m, BaseTunerLayer):
            m.cast_input_dtype_enabled = False  # LoRA runs under autocast on the low-precision activations


def _reload_with_adapter(model: Any, base_path: str, config: FinetuneConfig) -> Any:
    """The trained adapter on a fresh full-precision load of the base (to merge into exact weights)."""
    import torch
    from peft import get_peft_model, get_peft_model_state_dict, set_peft_model_state_dict
    from transformers import AutoModelForCausalLM

    state = get_peft_model_state_dict(model)
    base = AutoModelForCausalLM.from_pretrained(
        base_path, dtype=torch.float32, trust_remote_code=config.trust_remote_code
    )
    with peft_quietly():
        fresh = get_peft_model(base, _lora_config(config))
    set_peft_model_state_dict(fresh, state)
    return fresh


def _run_key(base_fingerprint: str, examples: Sequence[Example], config: FinetuneConfig) -> str:
    h = hashlib.sha256()
    settings = {k: v for k, v in asdict(config).items() if k not in ("device", "checkpoint_steps")}
    h.update(json.dumps({"base": base_fingerprint, "config": settings}, sort_keys=True).encode())
    for ex in examples:
        h.update(ex.content_hash.encode())
    return h.hexdigest()[:16]


def _progress_callback(bar: Any, tokens_per_step: float) -> Any:
    from transformers import TrainerCallback

    class RichProgress(TrainerCallback):
        """The Trainer's steps on a rich bar, with the latest loss and the token rate."""

        task: Any = None
        loss: str = ""
        t0: float = 0.0
        first: int = 0

        def on_train_begin(self, args, state, control, **kw):  # noqa: ANN001
            self.task = bar.add_task("finetune", total=state.max_steps, completed=state.global_step, rate="")
            self.t0, self.first = time.monotonic(), state.global_step

        def on_step_end(self, args, state, control, **kw):  # noqa: ANN001
            done = state.global_step - self.first
            rate = tokens_per_step * done / max(time.monotonic() - self.t0, 1e-9)
            bar.update(self.task, completed=state.global_step, rate=f"{self.loss}{rate:,.0f} tok/s")

        def on_log(self, args, state, control, logs=None, **kw):  # noqa: ANN001
            if logs and "loss" in logs:
                self.loss = f"loss {logs['loss']:.3f} · "

    return RichProgress()


def finetune(
    data: Sequence[Example] | Any,
    model: str = EMBEDDED,
    output: str | os.PathLike = "finetuned",
    config: FinetuneConfig | None = None,
    *,
    progress: bool = True,
    resume: bool = True,
    keep_checkpoints: bool = False,
    callbacks: Sequence[Any] = (),
) -> FinetuneResult:
    """Fine-tune `model` (any `models.loader.resolve` spec) on `data` (a `Dataset` or examples) and save
    the result to `output` atomically. An interrupted run leaves checkpoints beside `output`
    (`.<name>.checkpoints/`); the same call later resumes from the last complete one. `callbacks` are
    extra `transformers.TrainerCallback`s."""
    import torch
    from transformers import AutoModelForCausalLM, PrinterCallback, TrainingArguments, set_seed
    from transformers.utils import logging as hf_logging

    from ..models import choose_device, hf_bars_off, resolve
    from ..progress import progress_bar as _progress
    from .packing import accepts_logits_to_keep, answer_trainer, pack, use_packed_attention

    config = config or FinetuneConfig()
    examples = list(getattr(data, "examples", data))
    output = Path(output)
    hf_bars_off()
    source = resolve(model)
    device = choose_device(config.device)
    if device.startswith("cuda:") and device != "cuda:0":
        raise OptionError("{device}: pick the GPU with CUDA_VISIBLE_DEVICES and give it as cuda", device=device)
    mixed = mixed_precision(config.dtype, device)
    tokenizer = training_tokenizer(source.path, config.trust_remote_code)

    built = build_sequences(examples, config.template, tokenizer, config.max_length, config.eos)
    skipped = [(ex.id, b.reason or "") for ex, b in zip(examples, built, strict=True) if not b.sequences]
    seqs = [s for b in built for s in b.sequences]
    if not seqs:
        raise OptionError(f"nothing to train on: {len(skipped)} example(s), none with an answer token left")
    rows = [{"input_ids": list(s.ids), "labels": s.labels()} for s in seqs]
    tokens = sum(len(s.ids) for s in seqs)
    target_tokens = sum(s.n_targets for s in seqs)

    key = _run_key(source.fingerprint, examples, config)
    ckpt_dir = _checkpoint_dir(output)
    run_file = ckpt_dir / "run.json"
    if ckpt_dir.exists() and (not resume or not run_file.exists() or json.loads(run_file.read_text())["key"] != key):
        shutil.rmtree(ckpt_dir)  # checkpoints of another run (other data, model or settings): start over
    ckpt_dir.mkdir(parents=True, exist_ok=True)
    write_text(run_file, json.dumps({"key": key, "model": model, "output": str(output)}))
    last = _last_complete_checkpoint(ckpt_dir) if resume else None
    for other in ckpt_dir.glob("checkpoint-*"):
        if other != last:
            shutil.rmtree(other)  # older, or one the interrupted run did not finish writing
    start_step = int(last.name.rsplit("-", 1)[1]) if last else 0

    base_config = json.loads((Path(source.path) / "config.json").read_text())
    saved_dtype = base_config.get("dtype") or base_config.get("torch_dtype")  # merged weights go back to it
    set_seed(config.seed)  # trained in fp32 (mixed precision on top): LoRA's init and the data order
    lm = AutoModelForCausalLM.from_pretrained(
        source.path, dtype=torch.float32, trust_remote_code=config.trust_remote_code
    )
    lm.config.use_cache = False
    attn_implementation = use_packed_attention(lm)
    frozen_dtype = None
    if config.lora:
        from peft import get_peft_model

        with peft_quietly():
            lm = get_peft_model(lm, _lora_config(config))
        if mixed != "float32":
            frozen_dtype = getattr(torch, mixed)
            _freeze_in(lm, frozen_dtype)

    args = TrainingArguments(
        output_dir=str(ckpt_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.scheduler,
        warmup_steps=config.warmup_ratio,
        weight_decay=config.weight_decay,
        bf16=mixed == "bfloat16",
        fp16=mixed == "float16",
        use_cpu=device == "cpu",
        seed=config.seed,
        data_seed=config.seed,
        train_sampling_strategy="group_by_length",
        remove_unused_columns=False,
        logging_strategy="steps",
        logging_steps=10,
        save_strategy="steps",
        save_steps=config.checkpoint_steps,
        save_total_limit=1,
        report_to="none",
        disable_tqdm=True,
        dataloader_num_workers=0,
    )
    trainer_class = answer_trainer(accepts_logits_to_keep(lm))
    trainer = trainer_class(model=lm, args=args, train_dataset=rows, data_collator=pack, processing_class=tokenizer)
    trainer.remove_callback(PrinterCallback)
    for cb in callbacks:
        trainer.add_callback(cb)
    steps_per_epoch = -(-len(rows) // (config.batch_size * config.grad_accum))
    t0 = time.monotonic()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # the Trainer's notices; the progress bar says what matters
    try:
        with _progress(progress) as bar:
            trainer.add_callback(_progress_callback(bar, tokens / steps_per_epoch))
            out = trainer.train(resume_from_checkpoint=str(last) if last else None)
    finally:
        hf_logging.set_verbosity(verbosity)
    seconds = time.monotonic() - t0

    info = {
        "base": str(Path(model).expanduser().resolve()) if Path(model).expanduser().exists() else model,
        "base_path": source.path,
        "base_fingerprint": source.fingerprint,
        "fingerprint": key,
        "mode": "lora" if config.lora else "full",
        "save": config.save,
        "config": asdict(config),
        "examples": len(examples),
        "sequences": len(seqs),
        "target_tokens_per_epoch": target_tokens,
        "steps": out.global_step,
        "train_loss": out.training_loss,
        "mixed_precision": mixed,
        "device": device,
    }
    final = trainer.model
    with atomic_path(output, directory=True) as tmp:
        if config.lora and config.save == "merged":
            if frozen_dtype is not None:  # trained over a low-precision copy: merge into the base's own weights
                final = _reload_with_adapter(final, source.path, config)
            final = final.merge_and_unload()
        if config.save == "merged":
            final.set_attn_implementation(attn_implementation)  # not the training-only packed attention
            if saved_dtype in ("bfloat16", "float16"):
                final = final.to(getattr(torch, saved_dtype))
        final.config.use_cache = True
        final.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / MODEL_INFO).write_text(json.dumps(info, indent=2, default=str))
    if not keep_checkpoints:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    tokens_run = tokens / steps_per_epoch * (out.global_step - start_step)
    return FinetuneResult(
        output=str(output),
        examples=len(examples),
        sequences=len(seqs),
        skipped=skipped,
        tokens=tokens,
        target_tokens=target_tokens,
        steps=out.global_step,
        train_loss=out.training_loss,
        seconds=seconds,
        tokens_per_second=tokens_run / seconds if seconds > 0 else 0.0,
        resumed_from=str(last) if last else None,
        info=info,
    )
