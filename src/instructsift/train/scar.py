"""Training SCAR's style-consistency ranker on quadruples (instruction, human, referenced, direct).

Li et al., 2024, arXiv 2406.10882; the loss and the optimiser follow the reference code (zhuang-li/SCAR):

- three margin ranking terms (margin 0.5): direct > referenced, referenced > human, direct > human, each
  over the rows whose pair passes the quality constraint (both answers' quality scores > `quality_min`
  and < `quality_max`, and the two answers differ); a row without a referenced answer only has
  direct > human;
- plus 0.1 x the mean of two triplet losses (margin 1.0, p 2) over the rows where all three pairs pass:
  surprisal representations with anchor referenced, positive human, negative direct; form
  representations with anchor direct, positive referenced, negative human;
- AdamW (lr 2e-5), linear warm-up over 10% of the steps then linear decay, gradients clipped to norm 1.0;
- an 80/10/10 train/validation/test split by seed; after each epoch the validation pairwise accuracy
  (the share of the pairs above ranked in that order), and the best epoch's weights are kept.

A quads file is JSON Lines: `instruction`, optional `input`, `human`, optional `referenced`, `direct`, and
optional quality scores `human_score`, `referenced_score`, `direct_score` (when any row has one, the
constraint is on and every answer needs its score; without any, every pair of different answers counts).

The run is resumable: a work folder beside the output (`.NAME.scar-KEY/`) holds the latest weights, the
optimiser's state (safetensors + JSON, no pickle) and the position, saved every `save_every` steps and
after every epoch; a rerun of the same command continues from there. The product is a ranker folder
(`models/scar.py`) with `training.json` (per-epoch loss and accuracy, test accuracy).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import create_model

from ..data.errors import InputError, MissingFileError, OptionError, Reject, check_at_least
from ..models import resolve_encoder
from ..models.embedded import EMBEDDED
from ..registry import FilePath, ModelRef, StrictModel, params_of, register
from . import under_cache_dir

ROLES = ("human", "referenced", "direct")
MARGIN = 0.5
TRIPLET_MARGIN = 1.0
TRIPLET_WEIGHT = 0.1


@dataclass(frozen=True)
class Quad:
    """One training row: the instruction (with its input), the three answers and their quality scores."""

    instruction: str
    human: str
    direct: str
    referenced: str | None = None
    scores: dict[str, float] = field(default_factory=dict)  # role -> quality score (may be empty)


@dataclass
class ScarTrainConfig:
    """Training settings (the reference's where it has one)."""

    encoder: ModelRef = EMBEDDED  # embedded (all-MiniLM-L6-v2), mpnet, a folder or a hub id
    linear_dim: int = 1024
    epochs: int = 3  # the reference trains 10
    batch_size: int = 4
    eval_batch_size: int = 16
    learning_rate: float = 2e-5
    warmup: float = 0.1
    max_length: int = 512
    quality_min: float = 5.0
    quality_max: float = 10.0
    seed: int = 42
    save_every: int = 200  # optimiser steps between resume checkpoints
    device: str = "auto"

    def __post_init__(self) -> None:
        check_at_least(self, linear_dim=1, epochs=1, batch_size=1, eval_batch_size=1, save_every=1)
        if not (self.learning_rate > 0 and 0 <= self.warmup < 1 and self.max_length >= 2):
            raise OptionError("learning_rate must be > 0, warmup in [0, 1), max_length >= 2")


# -- reading --------------------------------------------------------------------------------------
def read_quads(path: str | Path) -> list[Quad]:
    """The quads of a JSON Lines file; a bad line is an `InputError` naming the file, line and field."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{path}: no such quads file")
    out: list[Quad] = []
    with_scores: list[int] = []
    with path.open(encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue

            def bad(field_name: str | None, reason: str, line_no: int = line_no) -> InputError:
                return InputError(Reject(str(path), None, line_no, field_name, reason))

            try:
                rec = json.loads(line)
            except ValueError as e:
                raise bad(None, f"not JSON ({e})") from None
            if not isinstance(rec, dict):
                raise bad(None, "not a JSON object")
            texts: dict[str, str | None] = {}
            for name in ("instruction", "human", "direct", "input", "referenced"):
                v = rec.get(name)
                required = name in ("instruction", "human", "direct")
                if v is None and not required:
                    texts[name] = None
                    continue
                if not isinstance(v, str):
                    raise bad(name, "missing" if v is None else f"must be a string, not {type(v).__name__}")
                if required and not v.strip():
                    raise bad(name, "empty")
                texts[name] = v if v.strip() else None
            scores: dict[str, float] = {}
            for role in ROLES:
                v = rec.get(f"{role}_score")
                if v is None:
                    continue
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
                    raise bad(f"{role}_score", f"must be a finite number, not {v!r}")
                scores[role] = float(v)
            if scores:
                with_scores.append(line_no)
                for role in ROLES:
                    if texts[role] is not None and role not in scores:
                        raise bad(f"{role}_score", "missing (other rows or answers have quality scores)")
            instruction = texts["instruction"]
            if texts["input"]:
                instruction = f"{instruction}\n\n{texts['input']}"  # as Message.text joins them
            out.append(Quad(instruction, texts["human"], texts["direct"], texts["referenced"], scores))  # type: ignore[arg-type]
    if with_scores and len(with_scores) != len(out):
        first = next(i for i, q in enumerate(out) if not q.scores)
        raise InputError(Reject(str(path), first, None, "human_score", "missing (other rows have quality scores)"))
    if not out:
        raise InputError(Reject(str(path), None, None, None, "no quads"))
    return out


# -- loss -----------------------------------------------------------------------------------------
def pair_masks(quads: Sequence[Quad], qmin: float, qmax: float) -> dict[str, list[bool]]:
    """Per row, whether each ranked pair counts: `dr` (direct > referenced), `rh`, `dh`."""

    def ok(q: Quad, a: str, b: str) -> bool:
        ta, tb = getattr(q, a), getattr(q, b)
        if ta is None or tb is None or ta == tb:
            return False
        if not q.scores:
            return True
        sa, sb = q.scores[a], q.scores[b]
        return min(sa, sb) > qmin and max(sa, sb) < qmax

    return {
        "dr": [ok(q, "direct", "referenced") for q in quads],
        "rh": [ok(q, "referenced", "human") for q in quads],
        "dh": [ok(q, "direct", "human") for q in quads],
    }


def scar_loss(out: dict[str, tuple[Any, Any, Any]], masks: dict[str, Any]) -> Any:
    """The reference's loss for one batch. `out[role]` = (scores (B,), surprisal (B, h), form (B, h)) for
    role in human, referenced, direct (referenced rows that do not exist are excluded by the masks);
    `masks` holds boolean tensors `dr`, `rh`, `dh`. None when no pair counts (the step is skipped)."""
    import torch
    from torch import nn

    rank = nn.MarginRankingLoss(margin=MARGIN)
    triplet = nn.TripletMarginLoss(margin=TRIPLET_MARGIN, p=2)
    (sh, ch, ph), (sr, cr, pr), (sd, cd, pd) = out["human"], out["referenced"], out["direct"]
    loss = None
    for key, hi, lo in (("dr", sd, sr), ("rh", sr, sh), ("dh", sd, sh)):
        m = masks[key]
        if bool(m.any()):
            term = rank(hi[m], lo[m], torch.ones_like(hi[m]))
            loss = term if loss is None else loss + term
    common = masks["dr"] & masks["rh"] & masks["dh"]
    if bool(common.any()):
        surprisal = triplet(cr[common], ch[common], cd[common])
        form = triplet(pd[common], pr[common], ph[common])
        term = TRIPLET_WEIGHT * (surprisal + form) / 2
        loss = term if loss is None else loss + term
    return loss


# -- the model's passes ---------------------------------------------------------------------------
def _tokens(tokenizer: Any, texts: Sequence[str], max_length: int, device: Any) -> tuple[Any, Any]:
    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"].to(device), enc["attention_mask"].to(device)


def forward_quads(model: Any, tokenizer: Any, quads: Sequence[Quad], max_length: int) -> dict[str, tuple]:
    """(scores, surprisal, form) per role for a batch; referenced rows that are missing are zeros."""
    import torch

    device = next(model.parameters()).device
    ins_ids, ins_mask = _tokens(tokenizer, [q.instruction for q in quads], max_length, device)
    out: dict[str, tuple] = {}
    for role in ("human", "direct"):
        ids, mask = _tokens(tokenizer, [getattr(q, role) for q in quads], max_length, device)
        out[role] = model(ins_ids, ins_mask, ids, mask)
    have = [i for i, q in enumerate(quads) if q.referenced is not None]
    h = model.hidden_dim
    zeros = (torch.zeros(len(quads), device=device), torch.zeros(len(quads), h, device=device))
    if len(have) == len(quads):
        ids, mask = _tokens(tokenizer, [q.referenced for q in quads], max_length, device)  # type: ignore[misc]
        out["referenced"] = model(ins_ids, ins_mask, ids, mask)
    elif have:
        sel = torch.tensor(have, device=device)
        ids, mask = _tokens(tokenizer, [quads[i].referenced for i in have], max_length, device)  # type: ignore[misc]
        s, c, p = model(ins_ids[sel], ins_mask[sel], ids, mask)
        full = [zeros[0].clone().to(s.dtype), zeros[1].clone().to(c.dtype), zeros[1].clone().to(p.dtype)]
        out["referenced"] = tuple(f.index_copy(0, sel, v) for f, v in zip(full, (s, c, p), strict=True))
    else:
        out["referenced"] = (zeros[0], zeros[1], zeros[1].clone())
    return out


def batch_masks(quads: Sequence[Quad], config: ScarTrainConfig, device: Any) -> dict[str, Any]:
    import torch

    return {
        k: torch.tensor(v, dtype=torch.bool, device=device)
        for k, v in pair_masks(quads, config.quality_min, config.quality_max).items()
    }


def pairwise_accuracy(model: Any, tokenizer: Any, quads: Sequence[Quad], config: ScarTrainConfig) -> dict[str, float]:
    """Share of (direct > referenced), (referenced > human), (direct > human) pairs ranked that way (None
    where no row has the pair); `all` is their pooled share (the reference's validation accuracy). Every
    pair of the rows counts here, as in the reference."""
    import torch

    correct = {"dr": 0, "rh": 0, "dh": 0}
    total = {"dr": 0, "rh": 0, "dh": 0}
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for lo in range(0, len(quads), config.eval_batch_size):
            batch = quads[lo : lo + config.eval_batch_size]
            out = forward_quads(model, tokenizer, batch, config.max_length)
            sd, sr, sh = out["direct"][0], out["referenced"][0], out["human"][0]
            has_r = torch.tensor([q.referenced is not None for q in batch], device=sd.device)
            for key, hi, lo_, m in (("dr", sd, sr, has_r), ("rh", sr, sh, has_r), ("dh", sd, sh, None)):
                m = torch.ones_like(has_r) if m is None else m
                correct[key] += int(((hi > lo_) & m).sum())
                total[key] += int(m.sum())
    model.train(was_training)
    acc: dict[str, float | None] = {k: (correct[k] / total[k] if total[k] else None) for k in correct}
    acc["all"] = sum(correct.values()) / max(1, sum(total.values()))
    return acc  # type: ignore[return-value]


# -- training -------------------------------------------------------------------------------------
def split(n: int, seed: int) -> tuple[list[int], list[int], list[int]]:
    """80/10/10 (train, validation, test) positions, shuffled by `seed`; each part has at least one row."""
    import numpy as np

    if n < 3:
        raise OptionError(f"train-scar needs at least 3 quads (train, validation, test), got {n}")
    perm = np.random.default_rng(seed).permutation(n).tolist()
    n_val = max(1, round(0.1 * n))
    n_test = max(1, round(0.1 * n))
    return perm[: n - n_val - n_test], perm[n - n_val - n_test : n - n_test], perm[n - n_test :]


def quads_digest(quads: Sequence[Quad]) -> str:
    h = hashlib.sha256()
    for q in quads:
        h.update(json.dumps(dataclasses.asdict(q), sort_keys=True, ensure_ascii=False).encode())
    return h.hexdigest()


def _optimizer_state(optimizer: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """AdamW's state as (tensors, JSON): no pickle."""
    sd = optimizer.state_dict()
    tensors = {f"{i}.{k}": v.detach().cpu().contiguous() for i, st in sd["state"].items() for k, v in st.items()}
    return tensors, {"param_groups": sd["param_groups"]}


def _load_optimizer_state(optimizer: Any, tensors: dict[str, Any], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {}
    for key, v in tensors.items():
        i, name = key.split(".", 1)
        state.setdefault(int(i), {})[name] = v
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


class Trainer:
    """One training run of a ranker from quads into `out`, resumable from its work folder."""

    def __init__(self, quads: Sequence[Quad], out: str | Path, config: ScarTrainConfig) -> None:
        self.quads, self.out, self.config = list(quads), Path(out), config
        self.train_idx, self.val_idx, self.test_idx = split(len(self.quads), config.seed)
        self.enc_path, self.enc_name = resolve_encoder(config.encoder)
        from ..models.fingerprint import folder_fingerprint

        settings = {k: v for k, v in dataclasses.asdict(config).items() if k not in ("device", "save_every")}
        self.key = hashlib.sha256(
            json.dumps(
                {"quads": quads_digest(self.quads), "encoder": folder_fingerprint(self.enc_path, True), **settings},
                sort_keys=True,
            ).encode()
        ).hexdigest()[:16]
        self.work = self.out.with_name(f".{self.out.name}.scar-{self.key}")

    def setup(self) -> None:
        import torch
        from transformers import get_linear_schedule_with_warmup

        from ..models.device import choose_device
        from ..models.scar import build_ranker

        torch.manual_seed(self.config.seed)
        self.model, self.tokenizer = build_ranker(self.enc_path, self.config.linear_dim)
        self.device = choose_device(self.config.device)
        self.model.to(self.device).train()
        self.steps_per_epoch = math.ceil(len(self.train_idx) / self.config.batch_size)
        total = self.steps_per_epoch * self.config.epochs
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.learning_rate)
        self.scheduler = get_linear_schedule_with_warmup(self.optimizer, int(total * self.config.warmup), total)
        self.state: dict[str, Any] = {"epoch": 0, "batch": 0, "step": 0, "best": -1.0, "history": [], "loss_sum": 0.0}
        self.state["loss_n"] = 0

    # resume state: weights, optimiser, scheduler, RNG, position
    def save_state(self) -> None:
        import torch
        from safetensors.torch import save_file

        from ..atomic import write_text

        self.work.mkdir(parents=True, exist_ok=True)
        weights = {k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}
        save_file(weights, str(self.work / "current.safetensors.tmp"))
        (self.work / "current.safetensors.tmp").replace(self.work / "current.safetensors")
        tensors, meta = _optimizer_state(self.optimizer)
        tensors["__rng__"] = torch.get_rng_state()
        save_file(tensors, str(self.work / "optimizer.safetensors.tmp"))
        (self.work / "optimizer.safetensors.tmp").replace(self.work / "optimizer.safetensors")
        meta["scheduler"] = {k: v for k, v in self.scheduler.state_dict().items() if k != "lr_lambdas"}
        write_text(self.work / "state.json", json.dumps({**self.state, **meta}))  # last: marks the rest complete

    def load_state(self) -> bool:
        import torch
        from safetensors.torch import load_file

        try:
            saved = json.loads((self.work / "state.json").read_text(encoding="utf-8"))
            weights = load_file(str(self.work / "current.safetensors"))
            tensors = load_file(str(self.work / "optimizer.safetensors"))
        except (OSError, ValueError):
            return False
        self.model.load_state_dict(weights)
        torch.set_rng_state(tensors.pop("__rng__"))
        _load_optimizer_state(self.optimizer, tensors, saved)
        sched = self.scheduler.state_dict()
        sched.update(saved.pop("scheduler"))
        self.scheduler.load_state_dict(sched)
        saved.pop("param_groups")
        self.state = saved
        return True

    def step(self, batch: Sequence[Quad]) -> float | None:
        """One optimiser step on a batch; the loss, or None when no pair counted (no step, as the reference)."""
        import torch

        out = forward_quads(self.model, self.tokenizer, batch, self.config.max_length)
        loss = scar_loss(out, batch_masks(batch, self.config, self.device))
        if loss is None:
            return None
        self.optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), max_norm=1.0)
        self.optimizer.step()
        self.scheduler.step()
        return float(loss.detach())

    def run(self, progress: bool = True, log: Callable[[str], None] | None = None) -> dict[str, Any]:
        import numpy as np

        from ..models.scar import load_ranker, save_ranker
        from ..progress import progress_bar

        log = log or (lambda _m: None)
        self.setup()
        if self.load_state():
            log(f"train-scar: resuming at epoch {self.state['epoch'] + 1}, batch {self.state['batch']}")
        cfg = self.config
        best_dir = self.work / "best"
        val = [self.quads[i] for i in self.val_idx]
        with progress_bar(progress) as bar:
            done = self.state["epoch"] * self.steps_per_epoch + self.state["batch"]
            task = bar.add_task("train-scar", total=self.steps_per_epoch * cfg.epochs, completed=done)
            while self.state["epoch"] < cfg.epochs:
                epoch = self.state["epoch"]
                order = np.random.default_rng(cfg.seed + 1 + epoch).permutation(self.train_idx).tolist()
                batches = [order[i : i + cfg.batch_size] for i in range(0, len(order), cfg.batch_size)]
                for b in range(self.state["batch"], len(batches)):
                    loss = self.step([self.quads[i] for i in batches[b]])
                    if loss is not None:
                        self.state["loss_sum"] += loss
                        self.state["loss_n"] += 1
                    self.state["batch"] = b + 1
                    self.state["step"] += 1
                    bar.advance(task, 1)
                    if self.state["step"] % cfg.save_every == 0 and b + 1 < len(batches):
                        self.save_state()
                acc = pairwise_accuracy(self.model, self.tokenizer, val, cfg)
                n = self.state["loss_n"]
                record = {"epoch": epoch + 1, "train_loss": self.state["loss_sum"] / n if n else None, "val": acc}
                self.state["history"].append(record)
                log(f"train-scar: epoch {epoch + 1}: loss {record['train_loss']}, validation accuracy {acc['all']:.4f}")
                if acc["all"] > self.state["best"]:
                    self.state["best"] = acc["all"]
                    save_ranker(self.model, self.tokenizer, best_dir, self.enc_name)
                self.state.update(epoch=epoch + 1, batch=0, loss_sum=0.0, loss_n=0)
                self.save_state()
        best = load_ranker(best_dir, self.device)
        test = pairwise_accuracy(best.model, best.tokenizer, [self.quads[i] for i in self.test_idx], cfg)
        report = {
            "config": dataclasses.asdict(cfg),
            "encoder_name": self.enc_name,
            "rows": {"train": len(self.train_idx), "validation": len(self.val_idx), "test": len(self.test_idx)},
            "history": self.state["history"],
            "best_validation": self.state["best"],
            "test": test,
        }
        (best_dir / "training.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        if self.out.exists():
            shutil.rmtree(self.out)
        best_dir.replace(self.out)
        shutil.rmtree(self.work, ignore_errors=True)
        log(f"train-scar: best validation accuracy {self.state['best']:.4f}, test {test['all']:.4f} -> {self.out}")
        return report


def train_scar(
    quads: str | Path | Sequence[Quad],
    out: str | Path,
    config: ScarTrainConfig | None = None,
    *,
    progress: bool = True,
    log: Callable[[str], None] | None = None,
) -> dict[str, Any]:
    """Train a ranker on a quads file (or list) into the folder `out`; returns the training report."""
    rows = read_quads(quads) if isinstance(quads, (str, Path)) else list(quads)
    return Trainer(rows, out, config or ScarTrainConfig()).run(progress=progress, log=log)


# -- the fit step ---------------------------------------------------------------------------------
ScarFitParams = create_model(
    "ScarFitParams",
    __base__=StrictModel,
    quads=(FilePath, ...),
    **{name: (f.annotation, f) for name, f in params_of(ScarTrainConfig).model_fields.items()},
)


@register("fit", "scar_ranker", params=ScarFitParams)
@under_cache_dir
def fit_scar_ranker(
    dataset: Any, params: Any, *, cache_dir: Any = None, progress: bool = True, log: Callable | None = None
) -> str:
    """Train a SCAR ranker on `params.quads` (the step's rows are not used); returns the ranker folder,
    cached under `<cache>/artifacts/scar-<key>/ranker` by the quads' content, the encoder and the settings."""
    from ..models import cache_root

    log = log or (lambda _m: None)
    config = ScarTrainConfig(**params.model_dump(exclude={"quads"}))
    root = cache_root()  # `cache_dir`, where given (`under_cache_dir`)
    probe = Trainer(read_quads(params.quads), root / "artifacts" / "scar" / "ranker", config)
    folder = root / "artifacts" / f"scar-{probe.key}" / "ranker"
    if (folder / "config.json").exists():
        log(f"SCAR ranker from {params.quads}: cached ({folder})")
        return str(folder)
    Trainer(probe.quads, folder, config).run(progress=progress, log=log)
    return str(folder)
