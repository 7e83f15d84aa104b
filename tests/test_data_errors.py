"""Bad input gives one clear DataError/UserError naming the file, the line and the problem."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import DEMO_DIR, REPO_ROOT
from typer.testing import CliRunner

from spacy_threephase.cli import app
from spacy_threephase.data import convert_dataset, read_split
from spacy_threephase.errors import DataError, UserError

GOOD = [{"text": f"sentence {i}", "label": "ab"[i % 2]} for i in range(20)]


def jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf8")
    return path


def expect(path: Path, line, *fragments, call=None):
    with pytest.raises(DataError) as info:
        (call or (lambda: read_split(path)))()
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith(f"{path}:{line}:" if line is not None else f"{path}:"), msg
    assert info.value.line == line
    for frag in fragments:
        assert frag in msg, msg
    return msg


@pytest.mark.parametrize(
    "bad_line,fragments",
    [
        ('{"text": "oops", "label": "a"', ["malformed JSON"]),
        ('["a", "b"]', ["expected a JSON object", "list"]),
        ('{"label": "a"}', ["missing field 'text'", "'label'"]),
        ('{"text": "no label here", "lab": "a"}', ["missing field 'label'", "'text', 'lab'"]),
        ('{"text": null, "label": "a"}', ["missing text"]),
        ('{"text": 5, "label": "a"}', ["text must be a string"]),
        ('{"text": "x", "label": null}', ["missing label"]),
        ('{"text": "x", "label": ""}', ["missing label"]),
        ('{"text": "x", "label": {"a": 1}}', ["label must be"]),
    ],
)
def test_bad_jsonl_lines(tmp_path, bad_line, fragments):
    f = jsonl(tmp_path / "train.jsonl", GOOD[:2] + [bad_line] + GOOD[2:4])
    expect(f, 3, *fragments)


def test_empty_files(tmp_path):
    for name, content in (("a.jsonl", ""), ("b.jsonl", "\n  \n"), ("c.csv", "")):
        f = tmp_path / name
        f.write_text(content, encoding="utf8")
        expect(f, 1, "empty file")
    f = jsonl(tmp_path / "d.jsonl", [{"text": " ", "label": "a"}, {"text": "", "label": "b"}])
    expect(f, 1, "no examples", "2 empty texts skipped")
    c = tmp_path / "header_only.csv"
    c.write_text("text,label\n", encoding="utf8")
    expect(c, 1, "no examples")


def test_json_array_file(tmp_path):
    f = tmp_path / "a.json"
    f.write_text(json.dumps(GOOD), encoding="utf8")
    expect(f, 1, "JSON Lines")


def test_non_utf8(tmp_path):
    f = tmp_path / "train.jsonl"
    f.write_bytes(b'{"text": "fine", "label": "a"}\n{"text": "caf\xe9", "label": "b"}\n')
    expect(f, 2, "not valid UTF-8", "byte offset 44")
    c = tmp_path / "train.csv"
    c.write_bytes("text,label\nok,a\n".encode("utf8") + "na\u00efve,b\n".encode("latin-1"))
    expect(c, 3, "UTF-8")


def test_utf8_bom_is_fine(tmp_path):
    f = tmp_path / "a.csv"
    f.write_bytes(b"\xef\xbb\xbftext,label\nhello,a\n")
    assert read_split(f).records[0].labels == ["a"]


def test_csv_problems(tmp_path):
    c = tmp_path / "a.csv"
    c.write_text("sentence,intent,id\nx,a,1\n", encoding="utf8")
    expect(c, 1, "missing column 'text'", "'sentence', 'intent', 'id'")
    expect(c, 1, "missing column 'label'", call=lambda: read_split(c, text_field="sentence"))
    c.write_text('text,label\nok,a\n"multi\nline",b\ntoo,many,fields\n', encoding="utf8")
    expect(c, 5, "expected 2 fields", "found 3")
    c.write_text('text,label\nok,a\n"bad"quote,b\n', encoding="utf8")
    expect(c, 3, "malformed CSV")


def test_single_class(tmp_path):
    f = jsonl(
        tmp_path / "train.jsonl", [{"text": "   ", "label": "b"}] + [{"text": f"t{i}", "label": "a"} for i in range(10)]
    )
    expect(f, 2, "only one class ('a')", "at least 2", call=lambda: convert_dataset(tmp_path, tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_dev_and_test_label_unseen_in_train(tmp_path):
    jsonl(tmp_path / "train.jsonl", GOOD)
    dev = jsonl(tmp_path / "dev.jsonl", [{"text": "d1", "label": "a"}, {"text": "d2", "label": "zebra"}])
    expect(dev, 2, "label 'zebra' never occurs in train", call=lambda: convert_dataset(tmp_path, tmp_path / "out"))
    dev.unlink()
    test = tmp_path / "test.csv"
    test.write_text("text,label\nx,a\ny,b\nz,c\n", encoding="utf8")
    expect(test, 4, "label 'c'", call=lambda: convert_dataset(tmp_path, tmp_path / "out"))


def test_source_problems(tmp_path):
    with pytest.raises(UserError, match="no train file"):
        convert_dataset(tmp_path, tmp_path / "out")
    with pytest.raises(UserError, match="no such file or directory"):
        convert_dataset(tmp_path / "missing.jsonl", tmp_path / "out")
    jsonl(tmp_path / "train.jsonl", GOOD)
    jsonl(tmp_path / "train.csv", [])
    with pytest.raises(UserError, match="several files"):
        convert_dataset(tmp_path, tmp_path / "out")
    with pytest.raises(UserError, match="ratio"):
        convert_dataset(tmp_path / "train.jsonl", tmp_path / "out", dev_ratio=0.6, test_ratio=0.5)
    with pytest.raises(UserError, match="language code"):
        convert_dataset(tmp_path / "train.jsonl", tmp_path / "out", lang="qqq")
    assert not (tmp_path / "out").exists()


def test_cli_converts_and_prints_summary(tmp_path):
    result = CliRunner().invoke(app, ["data", str(DEMO_DIR), str(tmp_path / "corpus"), "--seed", "1"])
    assert result.exit_code == 0, result.output
    assert "play_music" in result.output and "skipped empty" in result.output
    assert (tmp_path / "corpus" / "train.spacy").exists()
    again = CliRunner().invoke(app, ["data", str(DEMO_DIR), str(tmp_path / "corpus")])
    assert again.exit_code == 1 and "--overwrite" in again.output
    assert CliRunner().invoke(app, ["data", str(DEMO_DIR), str(tmp_path / "corpus"), "--overwrite"]).exit_code == 0


@pytest.mark.parametrize("entry", [["-m", "spacy_threephase"], ["-m", "spacy", "threephase"]])
def test_cli_bad_input_is_one_line(tmp_path, entry):
    f = jsonl(tmp_path / "data" / "train.jsonl", GOOD[:3] + ['{"text": "broken", '] + GOOD[3:])
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, *entry, "data", str(f.parent), str(out)],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert f"{f}:4: malformed JSON" in lines[0]
    assert "Traceback" not in proc.stderr and not out.exists()


def test_cli_ordered_labels(tmp_path):
    assert CliRunner().invoke(app, ["data", str(DEMO_DIR), str(tmp_path / "c")]).exit_code == 0
    labels = json.loads((tmp_path / "c" / "labels.json").read_text())["labels"]
    order = ",".join(reversed(labels))
    result = CliRunner().invoke(app, ["data", str(DEMO_DIR), str(tmp_path / "corpus"), "--ordered", order])
    assert result.exit_code == 0, result.output
    assert "ordered: " + " < ".join(reversed(labels)) in result.output
    assert json.loads((tmp_path / "corpus" / "labels.json").read_text())["label_order"] == list(reversed(labels))
    bad = CliRunner().invoke(app, ["data", str(DEMO_DIR), str(tmp_path / "bad"), "--ordered", order + ",extra"])
    assert bad.exit_code == 1 and "not in train ['extra']" in bad.output and not (tmp_path / "bad").exists()
