"""Shared fixtures: the real data in ../shared/data, one model cache for the whole session, the tiny random
models (two causal Llamas, a T5, a reward model, a BERT encoder: each built once per session), and a real
OpenAI-compatible server on loopback (`transformers serve`, transformers[serving]) with the embedded model.
Helpers that are not fixtures (the `cli()` command, the tiny model builders) are in helpers.py; numeric
tolerances in tolerances.py."""

from __future__ import annotations

import importlib.util
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
CHAT = re.compile(r"POST /v1/chat/completions")


# The test files that take longest on two cores, longest first (`make test`'s --durations, summed per file).
# xdist's --dist loadfile hands a worker the next file in collection order whenever it runs short of work:
# with the long files first, the short ones fill the end of both workers' runs instead of one long file
# running alone at the end (longest-processing-time-first). Files not listed keep their order, after these.
LONGEST_FIRST = [
    "test_models.py", "test_engine_ray.py", "test_cli.py", "test_bad_input.py", "test_report.py",
    "test_front_door.py", "test_instructmining.py", "test_judge.py", "test_rules.py", "test_rds.py",
    "test_hub_more.py", "test_compare.py", "test_train.py", "test_ifd.py", "test_columns.py", "test_deita.py",
    "test_scar.py", "test_token_budget.py", "test_scar_synthesize.py", "test_diversity.py",
]  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    gone = [name for name in LONGEST_FIRST if not (ROOT / "tests" / name).exists()]
    if gone:
        raise pytest.UsageError(f"tests/conftest.py LONGEST_FIRST names files that do not exist: {gone}")
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: within a file, as written


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Point the instructsift cache at a session folder, so that no test reads scores that another run left
    behind. Converted models go to one folder for the whole run ($INSTRUCTSIFT_MODELS, beside the xdist
    workers' folders): the embedded model is converted once per run, whatever cache folder a test passes,
    the other worker waiting on the conversion's file lock."""
    path = tmp_path_factory.mktemp("instructsift-cache")
    base = tmp_path_factory.getbasetemp()
    models = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "instructsift-models"
    models.mkdir(exist_ok=True)
    old = {k: os.environ.get(k) for k in ("INSTRUCTSIFT_CACHE", "INSTRUCTSIFT_MODELS")}
    os.environ.update(INSTRUCTSIFT_CACHE=str(path), INSTRUCTSIFT_MODELS=str(models))
    yield path
    for k, v in old.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """../shared/data, or skip: the tests that need real data say so instead of failing."""
    if not SHARED.is_dir():
        pytest.skip(f"real data not found at {SHARED} (see SOURCES.md in the shared folder)")
    return SHARED


@pytest.fixture(scope="session")
def lm32():
    """The embedded SmolLM2 in float32 on the CPU, loaded once per session (IFD, DEITA and the local judge
    compare against plain forward passes of it). Read-only: do not change its weights or settings."""
    from instructsift.models import load_causal_lm

    return load_causal_lm("embedded", dtype="float32", device="cpu")


@pytest.fixture(scope="session")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide Llama with random weights (seed 0) and the embedded SmolLM2 tokenizer, saved as a
    folder once per session. Read-only: a test that changes it works on a copy (shutil.copytree)."""
    from helpers import tiny_llama
    from transformers import AutoTokenizer

    from instructsift.models import resolve

    tok = AutoTokenizer.from_pretrained(resolve("embedded").path)
    path = tmp_path_factory.mktemp("tiny") / "tiny-llama"
    return tiny_llama(path, tok, max_position_embeddings=512, bos_token_id=tok.bos_token_id, tie_word_embeddings=True)


@pytest.fixture(scope="session")
def tiny_bpe_llama(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same shape with a 1024-token byte-level BPE tokenizer trained on the 32 shortest of the first 300
    real Alpaca rows (test_compare's pool and held-out rows: its greedy answers, which a judge rates, are
    those of this exact model): a small vocabulary keeps fine-tuning fast (a trial of a few steps in about a
    second on a CPU). Built once per session; read-only like `tiny_llama`."""
    import json

    from helpers import bpe_tokenizer, tiny_llama

    rows = json.loads((shared_data / "alpaca" / "alpaca_random_9k.json").read_text(encoding="utf-8"))[:300]
    short = sorted(rows, key=lambda r: len(r["instruction"]) + len(r["input"]) + len(r["output"]))[:32]
    tok = bpe_tokenizer(v for r in short for v in r.values())
    path = tmp_path_factory.mktemp("tiny") / "tiny-bpe-llama"
    return tiny_llama(path, tok, max_position_embeddings=256, tie_word_embeddings=True)


@pytest.fixture(scope="session")
def tiny_t5(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide T5 with random weights (seed 0): an evaluator for `unieval` (UniEval's checkpoints do
    not install offline). Its tokenizer is a T5-like one (<pad> 0, </s> 1 appended to every text, <unk> 2),
    BPE trained on examples/sample_alpaca.json, UniEval's questions and many a "Yes" and "No" (each one
    token: the scorer needs their first tokens to differ). Saved as a model folder once per session; read-only like `tiny_llama`."""
    import json

    from helpers import saved_model
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    from instructsift.scoring.unieval import QUESTIONS

    records = json.loads((ROOT / "examples" / "sample_alpaca.json").read_text(encoding="utf-8"))
    texts = [v for r in records for v in r.values()] + list(QUESTIONS.values()) + ["Yes", "No"] * 100
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.Metaspace()
    bpe.decoder = decoders.Metaspace()
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=500, special_tokens=["<pad>", "</s>", "<unk>"]))
    bpe.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")
    config = T5Config(vocab_size=len(tok), d_model=32, d_ff=64, d_kv=8, num_layers=2, num_decoder_layers=2,
                      num_heads=4, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)  # fmt: skip
    return saved_model(tmp_path_factory.mktemp("tiny") / "tiny-t5", lambda: T5ForConditionalGeneration(config), tok)


@pytest.fixture(scope="session")
def tiny_reward(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A reward model: a 2-layer, 16-wide Llama sequence classifier with one label and random weights (seed 0,
    the head saved too) and the embedded SmolLM2 tokenizer. Saved once per session; read-only."""
    from helpers import saved_model
    from transformers import AutoTokenizer, LlamaConfig, LlamaForSequenceClassification

    from instructsift.models import resolve

    tok = AutoTokenizer.from_pretrained(resolve("embedded").path)
    config = LlamaConfig(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, num_labels=1,
                         pad_token_id=tok.pad_token_id)  # fmt: skip
    path = tmp_path_factory.mktemp("tiny") / "tiny-reward"
    return saved_model(path, lambda: LlamaForSequenceClassification(config), tok)


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-wide BERT with random weights (seed 0) and the embedded encoder's (all-MiniLM-L6-v2's)
    tokenizer: an encoder for a SCAR ranker. Saved once per session; read-only."""
    from helpers import saved_model
    from transformers import AutoTokenizer, BertConfig, BertModel

    from instructsift.models import resolve_encoder

    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64)  # fmt: skip
    tok = AutoTokenizer.from_pretrained(str(resolve_encoder("embedded")[0]))
    return saved_model(tmp_path_factory.mktemp("tiny") / "tiny-encoder", lambda: BertModel(config), tok)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def free_port() -> int:
    """A loopback port that nothing listens on (just now)."""
    return _free_port()


class Server:
    """`transformers serve MODEL` on 127.0.0.1; `requests()` counts the chat requests in its access log."""

    def __init__(self, model: str, log: Path) -> None:
        self.model, self.log = model, log
        self.log.write_text("")
        self.start()

    def start(self) -> None:
        """Start the server on a free port (again, after `stop()`); the access log goes on where it was."""
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        # One torch thread: on a small shared machine the default (one per core) spin-waits at every barrier.
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "transformers.cli.transformers", "serve", self.model, "--host", "127.0.0.1"]
        cmd += ["--port", str(self.port), "--device", "cpu", "--log-level", "info"]
        with open(self.log, "a") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)

    def wait(self, limit_s: float = 300) -> None:
        deadline = time.monotonic() + limit_s
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"transformers serve exited with {self.proc.returncode}:\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"transformers serve did not answer in {limit_s:.0f} s:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.3)

    def requests(self) -> int:
        return len(CHAT.findall(self.log.read_text(errors="replace")))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


@pytest.fixture(scope="session")
def _serve(tmp_path_factory) -> Iterator[Server]:
    """One `transformers serve` for the whole session (starting it loads the model: many seconds)."""
    missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"`transformers serve` needs transformers[serving] ({', '.join(missing)} not installed)")
    from instructsift.models import resolve

    srv = Server(resolve("embedded").path, tmp_path_factory.mktemp("serve") / "serve.log")
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def server(_serve: Server) -> Server:
    """`transformers serve` with the embedded SmolLM2 on 127.0.0.1, shared by the session's tests and stopped
    at its end; started again (on a new port) where an earlier test stopped it. `requests()` counts every
    request of the session: a test counts from the value it starts with."""
    if _serve.proc.poll() is not None:
        _serve.start()
    _serve.wait()
    return _serve
