"""Generate the bad-input regression corpus: every kind of bad input, option and output path that the
`instructsift` command must handle, each with the exit code and message it must give.

    python tests/badinput/make_corpus.py FOLDER     # writes the files and FOLDER/cases.json

Nothing here is copied data: every file is written by `build`. To add a case, add a `Case` to `CASES`:
`files` maps a name to its content (str or bytes; a callable gets the folder and writes it itself), and
`args` is the command line, where `{d}` is the corpus folder. The CLI's stderr must hold `message` (also
with `{d}` resolved) on one `error:` line, without a traceback; `accounting` cases must end with a summary
line where read = kept + dropped + rejected.
"""

from __future__ import annotations

import gzip
import json
import os
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

# Three good rows, the same in every case, so that scores cached by one case serve all the others.
GOOD = [
    {"instruction": "Name a primary colour.", "input": "", "output": "Red."},
    {"instruction": "Add two and three.", "input": "", "output": "Five."},
    {"instruction": "Say hello in French.", "input": "", "output": "Bonjour."},
]
SELECT = ["select", "--method", "superfiltering", "--top", "1", "-q"]
SCORE = ["score", "--method", "superfiltering", "-q"]
# Cases that must succeed print their summary line, which -q leaves out.
SELECT_LOUD, SCORE_LOUD = [a for a in SELECT if a != "-q"], [a for a in SCORE if a != "-q"]


def _json(rows: list) -> str:
    return json.dumps(rows, indent=2)


def _jsonl(rows: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


def _parquet(rows: list) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), path)

    return write


def _parquet_schema_only(path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"instruction": pa.array([], pa.string()), "output": pa.array([], pa.string())}), path)


def _dataset_dict(path: Path) -> None:
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(GOOD)}).save_to_disk(str(path))


def _folder_of_files(path: Path) -> None:
    path.mkdir()
    (path / "notes.txt").write_text("my own notes\n")


def _symlink_to(target: str) -> Callable[[Path], None]:
    return lambda path: path.symlink_to(target)


def _hardlink_to(target: str) -> Callable[[Path], None]:
    return lambda path: os.link(path.parent / target, path)


Content = str | bytes | Callable[[Path], None]


@dataclass
class Case:
    name: str
    args: list[str]
    code: int
    message: str  # a fragment of the one `error:` line (or of stderr, for exit 0)
    files: dict[str, Content] = field(default_factory=dict)
    accounting: bool = False  # the summary line must say read = kept + dropped + rejected
    unchanged: list[str] = field(default_factory=list)  # files that must be the same after the run


def _bad(name: str, text: str | bytes, message: str, ext: str = ".json") -> Case:
    """A data file that must fail to read: exit 2, with where and why."""
    return Case(name, [*SELECT, "{d}/" + name + ext, "-o", "{d}/" + name + ".out.json"], 2, message, {name + ext: text})


ROWS_JSON = '[{"instruction": "a", "output": "b"},\n'
CASES: list[Case] = [
    # -- bad data, already handled by the reader: file, line, row and field -----------------------------
    _bad("invalid_json", ROWS_JSON + ' {"instruction": "c" "output": "d"}]', "invalid_json.json, line 2: invalid JSON"),
    _bad("not_object", ROWS_JSON + " 7]", "not_object.json, line 2, row 1: a record must be an object"),
    _bad("missing_field", ROWS_JSON + ' {"instruction": "c"}]', "row 1, field 'output': missing"),
    _bad("empty_field", ROWS_JSON + ' {"instruction": "c", "output": ""}]', "field 'output': is empty"),
    _bad(
        "wrong_type",
        ROWS_JSON + ' {"instruction": 3, "output": "d"}]',
        "field 'instruction': must be a string, got int",
    ),
    _bad("history_not_pair", '[{"instruction": "a", "output": "b", "history": [["q"]]}]', "field 'history[0]'"),
    _bad(
        "sharegpt_role",
        '[{"conversations": [{"from": "human", "value": "q"}, {"from": "robot", "value": "a"}]}]',
        "unsupported role 'robot'",
    ),
    _bad("sharegpt_no_answer", '[{"conversations": [{"from": "human", "value": "q"}]}]', "no assistant turn"),
    _bad("openai_no_user", '[{"messages": [{"role": "assistant", "content": "a"}]}]', "no user turn before it"),
    _bad(
        "openai_image",
        '[{"messages": [{"role": "user", "content": [{"type": "image_url"}]}, {"role": "assistant", "content": "a"}]}]',
        "only text parts",
    ),
    _bad("unknown_format", '[{"question": "q", "answer": "a"}]', "cannot tell the format"),
    _bad(
        "broken_jsonl",
        _jsonl(GOOD[:1]) + '{"instruction": "a", "output": "b"\n',
        "line 2, row 1: invalid JSON",
        ".jsonl",
    ),
    _bad("not_utf8", '{"instruction": "caf\xe9", "output": "x"}\n'.encode("latin-1"), "line 1", ".jsonl"),
    _bad("empty_file", "", "empty_file.json: no records"),
    _bad("gzip_bad_line", gzip.compress(b'{"instruction": "a"}\n'), "field 'output': missing", ".jsonl.gz"),
    _bad("not_parquet", '[{"instruction": "a", "output": "b"}]', "not_parquet.parquet: not a Parquet file", ".parquet"),
    _bad("damaged_parquet", b"PAR1 cut short", "damaged_parquet.parquet: a damaged Parquet file", ".parquet"),
    _bad("unknown_content", "instruction,output\na,b\n", "unknown_content: cannot tell the file type", ""),
    _bad("gzip_no_name", gzip.compress(b"not json\n"), "gzip_no_name.gz: cannot tell the file type", ".gz"),
    Case("dataset_dict", [*SELECT, "{d}/dd", "-o", "{d}/dd.out.json"], 2, "a DatasetDict", {"dd": _dataset_dict}),
    # -- bad paths: never a traceback -------------------------------------------------------------------
    Case(
        "unknown_input_type",
        [*SELECT, "{d}/data.csv", "-o", "{d}/o.json"],
        2,
        "unknown file type '.csv'",
        {"data.csv": "a,b\n"},
    ),
    Case("missing_input", [*SELECT, "{d}/nope.json", "-o", "{d}/o.json"], 2, "{d}/nope.json: no such file or folder"),
    Case(
        "input_folder_named_json",
        [*SELECT, "{d}/folder.json", "-o", "{d}/o.json"],
        2,
        "{d}/folder.json: is a folder, but its name says a .json file",
        {"folder.json": _folder_of_files},
    ),
    Case(
        "input_folder_not_datasets",
        [*SELECT, "{d}/plain", "-o", "{d}/o.json"],
        2,
        "{d}/plain: a folder that is not a datasets folder",
        {"plain": _folder_of_files},
    ),
    Case(
        "missing_scores",
        [*SELECT, "{d}/good.json", "--scores", "{d}/none.parquet", "-o", "{d}/o.json"],
        2,
        "none.parquet: no such file",
        {"good.json": _json(GOOD)},
    ),
    # -- outputs: never over an input or the user's files, and of a kind known before any work ----------
    Case(
        "output_is_input",
        [*SELECT, "{d}/in1.json", "-o", "{d}/in1.json", "--overwrite"],
        2,
        "--output {d}/in1.json: is the input {d}/in1.json",
        {"in1.json": _json(GOOD)},
        unchanged=["in1.json"],
    ),
    Case(
        "output_is_input_other_name",
        [*SELECT, "{d}/in2.json", "-o", "{d}/sub/../in2.json"],
        2,
        "is the input {d}/in2.json",
        {"in2.json": _json(GOOD), "sub/keep.txt": "x"},
        unchanged=["in2.json"],
    ),
    Case(
        "output_symlink_to_input",
        [*SELECT, "{d}/in3.json", "-o", "{d}/link3.json", "--overwrite"],
        2,
        "--output {d}/link3.json: is the input",
        {"in3.json": _json(GOOD), "link3.json": _symlink_to("in3.json")},
        unchanged=["in3.json"],
    ),
    Case(
        "output_hardlink_to_input",
        [*SELECT, "{d}/in4.json", "-o", "{d}/hard4.json", "--overwrite"],
        2,
        "--output {d}/hard4.json: is the input",
        {"in4.json": _json(GOOD), "hard4.json": _hardlink_to("in4.json")},
        unchanged=["in4.json"],
    ),
    Case(
        "output_exists",
        [*SELECT, "{d}/good.json", "-o", "{d}/exists.json"],
        2,
        "--output {d}/exists.json: already exists; pass --overwrite to replace it",
        {"good.json": _json(GOOD), "exists.json": "[]\n"},
        unchanged=["exists.json"],
    ),
    Case(
        "output_user_folder",
        [*SELECT, "{d}/good.json", "-o", "{d}/mine", "--overwrite"],
        2,
        "--output {d}/mine: the folder exists and is not a datasets folder",
        {"good.json": _json(GOOD), "mine": _folder_of_files},
        unchanged=["mine/notes.txt"],
    ),
    Case(
        "output_csv",
        [*SELECT, "{d}/good.json", "-o", "{d}/x.csv"],
        2,
        "--output {d}/x.csv: unknown output kind '.csv' (accepted: .json, .jsonl",
        {"good.json": _json(GOOD)},
    ),
    Case(
        "score_output_csv",
        [*SCORE, "{d}/good.json", "-o", "{d}/s.csv"],
        2,
        "--output {d}/s.csv: unknown output kind '.csv' (accepted: .parquet, .jsonl)",
        {"good.json": _json(GOOD)},
    ),
    Case(
        "output_folder_named_json",
        [*SELECT, "{d}/good.json", "-o", "{d}/outdir.json"],
        2,
        "--output {d}/outdir.json: is a folder, but a .json output is a file",
        {"good.json": _json(GOOD), "outdir.json": _folder_of_files},
    ),
    Case(
        "outputs_collide",
        [*SELECT, "{d}/good.json", "-o", "{d}/same.jsonl", "--save-scores", "{d}/same.jsonl"],
        2,
        "--output and --save-scores are the same file",
        {"good.json": _json(GOOD)},
    ),
    Case(
        "rejects_is_output",
        [*SELECT, "{d}/good.json", "-o", "{d}/r.jsonl", "--on-error", "skip", "--rejects", "{d}/r.jsonl"],
        2,
        "--output and --rejects are the same file",
        {"good.json": _json(GOOD)},
    ),
    Case(
        "finetune_output_user_folder",
        ["finetune", "{d}/good.json", "-o", "{d}/mine_ft", "--overwrite", "-q"],
        2,
        "--output {d}/mine_ft: the folder exists and is not a model folder from `instructsift finetune`",
        {"good.json": _json(GOOD), "mine_ft": _folder_of_files},
        unchanged=["mine_ft/notes.txt"],
    ),
    Case(
        "finetune_output_is_a_file",
        ["finetune", "{d}/good.json", "-o", "{d}/model.bin", "-q"],
        2,
        "--output {d}/model.bin: is a file, but this output is a folder",
        {"good.json": _json(GOOD), "model.bin": "weights"},
        unchanged=["model.bin"],
    ),
    Case(
        "evaluate_output_kind",
        ["evaluate", "{d}/good.json", "-o", "{d}/result.txt", "-q"],
        2,
        "--output {d}/result.txt: unknown output kind '.txt' (accepted: .json)",
        {"good.json": _json(GOOD)},
    ),
    Case(
        "evaluate_output_is_input",
        ["evaluate", "{d}/good.json", "-o", "{d}/good.json", "--overwrite", "-q"],
        2,
        "--output {d}/good.json: is the input",
        {"good.json": _json(GOOD)},
        unchanged=["good.json"],
    ),
    # -- options --------------------------------------------------------------------------------------
    Case(
        "unknown_method",
        ["select", "{d}/good.json", "-m", "nope", "--top", "1", "-o", "{d}/o.json"],
        2,
        "unknown method 'nope'",
        {"good.json": _json(GOOD)},
    ),
    Case(
        "ratio_and_top",
        ["select", "{d}/good.json", "-m", "superfiltering", "--top", "1", "--ratio", "0.5", "-o", "{d}/o.json"],
        2,
        "needs exactly one of --ratio or --top",
        {"good.json": _json(GOOD)},
    ),
    Case(
        "ratio_a_percent",
        ["select", "{d}/good.json", "-m", "superfiltering", "--ratio", "5", "-o", "{d}/o.json"],
        2,
        "--ratio 5 is not a share between 0 and 1 (0.05 for 5%); use --top for a count",
        {"good.json": _json(GOOD)},
    ),
    Case(
        "ratio_zero",
        ["select", "{d}/good.json", "-m", "cherry", "--ratio", "0", "-o", "{d}/o.json"],
        2,
        "0 is not a share between 0 and 1",
        {"good.json": _json(GOOD)},
    ),
    Case(
        "bracket_text_in_error",
        [*SELECT, "{d}/[brackets].json", "-o", "{d}/o.json"],
        2,
        "{d}/[brackets].json: no such file or folder",
    ),
    # -- nothing readable or scorable: exit 1 unless --allow-empty --------------------------------------
    Case(
        "all_rejected_json",
        [*SELECT, "{d}/allbad.json", "--on-error", "skip", "-o", "{d}/allbad.out.json"],
        1,
        "{d}/allbad.json: nothing could be read: all 2 rows were rejected",
        {"allbad.json": _json([{"instruction": "a", "output": 5}, {"instruction": "b"}])},
    ),
    Case(
        "all_rejected_parquet",
        [*SELECT, "{d}/allbad.parquet", "--on-error", "skip", "-o", "{d}/allbad.out.parquet"],
        1,
        "nothing could be read: all 2 rows were rejected",
        {"allbad.parquet": _parquet([{"instruction": "a", "output": ""}, {"instruction": "", "output": "b"}])},
    ),
    Case(
        "all_rejected_parquet_allowed",
        [*SELECT_LOUD, "{d}/allbad2.parquet", "--on-error", "skip", "--allow-empty", "-o", "{d}/allbad2.out.parquet"],
        0,
        "read 2 · kept 0 · dropped 0 · rejected 2",
        {"allbad2.parquet": _parquet([{"instruction": "a", "output": ""}, {"instruction": "", "output": "b"}])},
        accounting=True,
    ),
    Case(
        "empty_file_allowed",
        [*SELECT_LOUD, "{d}/empty2.json", "--allow-empty", "-o", "{d}/empty2.out.json"],
        0,
        "read 0 · kept 0 · dropped 0 · rejected 0",
        {"empty2.json": ""},
        accounting=True,
    ),
    Case(
        "empty_parquet_allowed",
        [*SCORE_LOUD, "{d}/empty3.parquet", "--allow-empty", "-o", "{d}/empty3.scores.parquet"],
        0,
        "read 0 · scored 0",
        {"empty3.parquet": _parquet_schema_only},
    ),
    Case(
        "every_judge_score_missing",
        [
            "score",
            "{d}/good.json",
            "-m",
            "alpagasus",
            "--judge-url",
            "http://127.0.0.1:9/v1",
            "--judge-model",
            "judge",
            "--judge-retries",
            "0",
            "-q",
            "-o",
            "{d}/judge.parquet",
        ],
        1,
        "good.json: no row could be scored (judge: no reply",
        {"good.json": _json(GOOD)},
    ),
    # -- skip: the bad rows go to the rejects file and every row is accounted for ------------------------
    Case(
        "skip_mixed_jsonl",
        [*SELECT_LOUD, "{d}/mixed.jsonl", "--on-error", "skip", "-o", "{d}/mixed.out.jsonl"],
        0,
        "read 5 · kept 1 · dropped 2",
        {
            "mixed.jsonl": b"\n".join(
                [
                    json.dumps(GOOD[0]).encode(),
                    b'{"instruction": "q", "output": ',
                    json.dumps(GOOD[1]).encode(),
                    b"\xff\xfe{}",
                    json.dumps(GOOD[2]).encode(),
                ]
            )
            + b"\n"
        },
        accounting=True,
    ),
    # -- a file whose name says nothing is read by its content ------------------------------------------
    Case(
        "no_extension_json",
        [*SELECT_LOUD, "{d}/noext", "-o", "{d}/noext.out.json"],
        0,
        "read 3 · kept 1",
        {"noext": _json(GOOD)},
        accounting=True,
    ),
    Case(
        "no_extension_jsonl",
        [*SELECT_LOUD, "{d}/noextl", "-o", "{d}/noextl.out.jsonl"],
        0,
        "read 3 · kept 1",
        {"noextl": _jsonl(GOOD)},
        accounting=True,
    ),
    Case(
        "no_extension_parquet",
        [*SELECT_LOUD, "{d}/noextp", "-o", "{d}/noextp.out.parquet"],
        0,
        "read 3 · kept 1",
        {"noextp": _parquet(GOOD)},
        accounting=True,
    ),
    Case(
        "gzip_no_extension",
        [*SELECT_LOUD, "{d}/noextz.gz", "-o", "{d}/noextz.out.jsonl"],
        0,
        "read 3 · kept 1",
        {"noextz.gz": gzip.compress(_jsonl(GOOD).encode())},
        accounting=True,
    ),
    Case(
        "selection_keeps_nothing",
        ["select", "--method", "superfiltering", "--top", "0", "{d}/good.json", "-o", "{d}/[none].json"],
        0,
        "warning: the selection kept no rows",
        {"good.json": _json(GOOD)},
        accounting=True,
    ),
]


def build(folder: str | os.PathLike) -> list[Case]:
    """Write every case's files under `folder`; return the cases with `{d}` resolved to it."""
    d = Path(folder).resolve()
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for case in CASES:
        for name, content in case.files.items():
            path = d / name
            if path.exists() or path.is_symlink():
                continue  # shared between cases (good.json): written once
            path.parent.mkdir(parents=True, exist_ok=True)
            if callable(content):
                content(path)
            elif isinstance(content, bytes):
                path.write_bytes(content)
            else:
                path.write_text(content, encoding="utf-8")
        resolve = lambda s: s.replace("{d}", str(d))  # noqa: E731
        out.append(
            Case(
                case.name,
                [resolve(a) for a in case.args],
                case.code,
                resolve(case.message),
                {},
                case.accounting,
                [str(d / u) for u in case.unchanged],
            )
        )
    return out


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/badinput/make_corpus.py FOLDER")
    cases = build(sys.argv[1])
    (Path(sys.argv[1]) / "cases.json").write_text(json.dumps([asdict(c) for c in cases], indent=2))
    print(f"{len(cases)} cases in {Path(sys.argv[1]).resolve()}/cases.json")


if __name__ == "__main__":
    main()
