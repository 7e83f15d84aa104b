"""Reading, carving and converting data sets; the demo data; the JsonlCorpus reader."""

import json
from collections import Counter
from pathlib import Path

import pytest
import spacy
from conftest import DEMO_DIR
from spacy.tokens import DocBin

from spacy_threephase.data import convert_dataset, load_hf_dataset, read_split
from spacy_threephase.data.corpus import create_jsonl_corpus
from spacy_threephase.data.readers import Record
from spacy_threephase.data.split import stratified_split
from spacy_threephase.errors import DataError, UserError


def write_jsonl(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf8")
    return path


def make_rows(n_per_class, field_text="text", field_label="label", prefix=""):
    rows = []
    for label, n in n_per_class.items():
        rows += [{field_text: f"{prefix}{label} example number {i}", field_label: label} for i in range(n)]
    return rows


# --- demo data set -----------------------------------------------------------------------------


def test_demo_dataset_properties():
    splits = {
        s: [json.loads(line) for line in (DEMO_DIR / f"{s}.jsonl").read_text("utf8").splitlines()]
        for s in ("train", "dev", "test")
    }
    total = sum(len(v) for v in splits.values())
    assert total >= 400
    train_counts = Counter(r["label"] for r in splits["train"])
    assert len(train_counts) >= 6
    assert min(train_counts.values()) / max(train_counts.values()) <= 0.2
    for split in ("dev", "test"):
        assert set(r["label"] for r in splits[split]) == set(train_counts)
    texts = {s: {r["text"].strip().lower() for r in rows} for s, rows in splits.items()}
    assert all(len(texts[s]) == len(splits[s]) for s in splits), "duplicate text inside a split"
    assert not texts["train"] & texts["dev"] and not texts["train"] & texts["test"] and not texts["dev"] & texts["test"]
    assert "MIT" in (DEMO_DIR / "README.md").read_text("utf8")


# --- reading -----------------------------------------------------------------------------------


def test_read_jsonl_custom_fields_numbers_and_lists(tmp_path):
    f = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"sentence": "first one", "intent": "a"},
            {"sentence": "second one", "intent": 3},
            {"sentence": "third one", "intent": ["x", "y", "x"]},
        ],
    )
    res = read_split(f, text_field="sentence", label_field="intent")
    assert [r.labels for r in res.records] == [["a"], ["3"], ["x", "y"]]
    assert [r.line for r in res.records] == [1, 2, 3]
    assert res.multi_label and res.skipped_empty == 0 and res.path == str(f)


def test_read_csv_tsv_custom_columns_and_label_sep(tmp_path):
    csv_file = tmp_path / "d.csv"
    csv_file.write_text(
        'id,utterance,tags\n1,"hello, world",a|b\n2,"multi\nline text",c\n3,plain,"[""p"", ""q""]"\n', encoding="utf8"
    )
    res = read_split(csv_file, text_field="utterance", label_field="tags", label_sep="|")
    assert [(r.text, r.labels, r.line) for r in res.records] == [
        ("hello, world", ["a", "b"], 2),
        ("multi\nline text", ["c"], 3),
        ("plain", ["p", "q"], 5),
    ]
    assert res.multi_label
    tsv = tmp_path / "d.tsv"
    tsv.write_text('text\tlabel\nhe said "hi"\tgreet\nbye\tleave\n', encoding="utf8")
    res = read_split(tsv)
    assert [(r.text, r.labels) for r in res.records] == [('he said "hi"', ["greet"]), ("bye", ["leave"])]
    assert not res.multi_label


def test_empty_and_whitespace_texts_skipped_and_counted(tmp_path):
    f = write_jsonl(
        tmp_path / "a.jsonl",
        [
            {"text": "", "label": "a"},
            {"text": "   \t ", "label": "a"},
            {"text": "real", "label": "a"},
            {"text": "\n", "label": "b"},
        ],
    )
    res = read_split(f)
    assert res.skipped_empty == 3 and [r.text for r in res.records] == ["real"]
    c = tmp_path / "a.csv"
    c.write_text("text,label\n,a\n  ,b\nok,a\n", encoding="utf8")
    assert read_split(c).skipped_empty == 2


def test_hierarchical_labels_kept(tmp_path):
    rows = make_rows({"Sports/Football": 6, "Sports/Tennis": 6, "Politics/Europe": 6})
    src = write_jsonl(tmp_path / "in" / "data.jsonl", rows)
    stats = convert_dataset(src, tmp_path / "out")
    assert stats["hierarchical"] and not stats["multi_label"]
    assert stats["labels"] == ["Politics/Europe", "Sports/Football", "Sports/Tennis"]
    meta = json.loads((tmp_path / "out" / "labels.json").read_text("utf8"))
    assert meta["hierarchical"] is True
    lines = [json.loads(line) for line in (tmp_path / "out" / "train.jsonl").read_text("utf8").splitlines()]
    assert {tuple(lab["labels"]) for lab in lines} == {("Sports/Football",), ("Sports/Tennis",), ("Politics/Europe",)}


def test_flat_keeps_slash_labels_as_plain_classes(tmp_path):
    rows = make_rows({"Sci/Tech": 6, "World": 6, "n/": 6})
    src = write_jsonl(tmp_path / "in" / "data.jsonl", rows)
    with pytest.raises(DataError, match="has an empty level"):
        convert_dataset(src, tmp_path / "auto")
    stats = convert_dataset(src, tmp_path / "out", hierarchical=False)
    assert stats["hierarchical"] is False
    assert json.loads((tmp_path / "out" / "labels.json").read_text("utf8"))["hierarchical"] is False
    assert stats["labels"] == ["Sci/Tech", "World", "n/"]


def test_ordered_labels_written_and_checked(tmp_path):
    from spacy_threephase.contrastive.corpus import read_corpus

    rows = make_rows({"bad": 6, "ok": 6, "good": 6})
    src = write_jsonl(tmp_path / "in" / "data.jsonl", rows)
    stats = convert_dataset(src, tmp_path / "out", ordered="bad, ok,good")
    assert stats["labels"] == ["bad", "good", "ok"]  # the textcat's labels stay sorted
    assert json.loads((tmp_path / "out" / "labels.json").read_text("utf8"))["label_order"] == ["bad", "ok", "good"]
    assert read_corpus(tmp_path / "out").label_order == ["bad", "ok", "good"]
    assert "label_order" not in json.loads(
        (Path(convert_dataset(src, tmp_path / "plain")["output_dir"]) / "labels.json").read_text("utf8")
    )
    for ordered, message in (
        ("bad,ok", r"missing \['good'\]"),
        ("bad,ok,good,great", r"not in train \['great'\]"),
        ("bad,ok,ok,good", "each label once"),
    ):
        with pytest.raises(UserError, match=message):
            convert_dataset(src, tmp_path / "never", ordered=ordered)
        assert not (tmp_path / "never").exists()


def test_label_order_in_labels_json_is_checked_when_read(tmp_path):
    from spacy_threephase.contrastive.corpus import read_corpus

    stats = convert_dataset(
        write_jsonl(tmp_path / "in" / "data.jsonl", make_rows({"a": 4, "b": 4, "c": 4})), tmp_path / "out"
    )
    meta_path = Path(stats["output_dir"]) / "labels.json"
    meta = json.loads(meta_path.read_text("utf8"))
    meta_path.write_text(json.dumps({**meta, "label_order": ["a", "b"]}), "utf8")
    with pytest.raises(DataError, match=r"train.jsonl: label 'c' is not in labels.json's label_order"):
        read_corpus(tmp_path / "out")
    meta_path.write_text(json.dumps({**meta, "label_order": "a,b,c"}), "utf8")
    with pytest.raises(DataError, match="labels.json: .*must be a list"):
        read_corpus(tmp_path / "out")


def test_ordered_needs_single_label_flat_classes(tmp_path):
    hier = write_jsonl(tmp_path / "h" / "data.jsonl", make_rows({"A/x": 6, "A/y": 6, "B/z": 6}))
    with pytest.raises(UserError, match="these labels are hierarchical"):
        convert_dataset(hier, tmp_path / "out", ordered="A/x,A/y,B/z")


# --- carving -----------------------------------------------------------------------------------


def test_stratified_split_deterministic_and_keeps_classes():
    labels = ["a"] * 50 + ["b"] * 10 + ["c"] * 3 + ["d"]
    records = [Record(f"t{i}", [lab], i + 1) for i, lab in enumerate(labels)]
    kept1, out1 = stratified_split(records, 0.2, seed=7)
    kept2, out2 = stratified_split(records, 0.2, seed=7)
    _, out3 = stratified_split(records, 0.2, seed=8)
    assert out1 == out2 and kept1 == kept2 and out1 != out3
    assert Counter(r.labels[0] for r in out1) == {"a": 10, "b": 2, "c": 1}
    assert {r.labels[0] for r in kept1} == {"a", "b", "c", "d"}
    assert len(kept1) + len(out1) == len(records)
    assert [r.line for r in out1] == sorted(r.line for r in out1)  # input order kept


def test_convert_single_file_carves_dev_and_test(tmp_path):
    src = write_jsonl(tmp_path / "all.jsonl", make_rows({"a": 50, "b": 30, "c": 20}))
    s1 = convert_dataset(src, tmp_path / "o1", seed=1)
    s2 = convert_dataset(src, tmp_path / "o2", seed=1)
    assert {k: v for k, v in s2.items() if k != "output_dir"} == {k: v for k, v in s1.items() if k != "output_dir"}
    assert s1["carved"] == ["dev", "test"]
    assert s1["sizes"] == {"train": 80, "dev": 10, "test": 10}
    assert s1["counts"]["dev"] == {"a": 5, "b": 3, "c": 2} == s1["counts"]["test"]
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "texts.txt"):
        assert (tmp_path / "o1" / name).read_bytes() == (tmp_path / "o2" / name).read_bytes()
    texts = {s: set((tmp_path / "o1" / f"{s}.jsonl").read_text("utf8").splitlines()) for s in ("train", "dev", "test")}
    assert not texts["train"] & texts["dev"] and not texts["dev"] & texts["test"] and not texts["train"] & texts["test"]


def test_convert_directory_csv_missing_dev(tmp_path):
    d = tmp_path / "src"
    d.mkdir()
    rows = "".join(f'"text {i}, {lab}",{lab}\n' for lab in ("pos", "neg") for i in range(20))
    (d / "train.csv").write_text("text,label\n" + rows + ",pos\n", encoding="utf8")
    (d / "test.csv").write_text("text,label\ngood,pos\nbad,neg\n", encoding="utf8")
    stats = convert_dataset(d, tmp_path / "out", dev_ratio=0.25)
    assert stats["carved"] == ["dev"]
    assert stats["sizes"] == {"train": 30, "dev": 10, "test": 2}
    assert stats["skipped_empty"] == {"train": 1, "dev": 0, "test": 0}


# --- outputs -----------------------------------------------------------------------------------


def test_demo_conversion_outputs(tmp_path):
    out = tmp_path / "corpus"
    stats = convert_dataset(DEMO_DIR, out)
    assert stats["carved"] == [] and not stats["multi_label"] and not stats["hierarchical"]
    meta = json.loads((out / "labels.json").read_text("utf8"))
    assert meta["labels"] == sorted(meta["labels"]) and len(meta["labels"]) >= 6
    assert set(meta) >= {"labels", "multi_label", "hierarchical", "counts", "skipped_empty", "source"}
    nlp = spacy.blank("en")
    rows = [json.loads(line) for line in (DEMO_DIR / "dev.jsonl").read_text("utf8").splitlines()]
    docs = list(DocBin().from_disk(out / "dev.spacy").get_docs(nlp.vocab))
    assert len(docs) == len(rows)
    for doc, row in zip(docs, rows):
        assert doc.text == row["text"].strip()
        assert set(doc.cats) == set(meta["labels"])
        assert doc.cats[row["label"]] == 1.0 and sum(doc.cats.values()) == 1.0
    train_texts = (out / "texts.txt").read_text("utf8").splitlines()
    assert len(train_texts) == stats["sizes"]["train"]
    normalised = [json.loads(line) for line in (out / "test.jsonl").read_text("utf8").splitlines()]
    assert all(set(r) == {"text", "labels"} and len(r["labels"]) == 1 for r in normalised)


def test_multilabel_cats_and_texts_one_per_line(tmp_path):
    rows = [
        {"text": f"line {i}\nsecond part", "label": ["a", "b"] if i % 3 == 0 else ["a"] if i % 3 == 1 else ["c"]}
        for i in range(30)
    ]
    stats = convert_dataset(write_jsonl(tmp_path / "m.jsonl", rows), tmp_path / "out")
    assert stats["multi_label"]
    texts = (tmp_path / "out" / "texts.txt").read_text("utf8").splitlines()
    assert len(texts) == stats["sizes"]["train"] and all("second part" in t for t in texts)
    docs = list(DocBin().from_disk(tmp_path / "out" / "train.spacy").get_docs(spacy.blank("en").vocab))
    both = [d for d in docs if d.cats["a"] == 1.0 and d.cats["b"] == 1.0]
    assert both and all(d.cats["c"] == 0.0 for d in both)


def test_existing_output_not_overwritten(tmp_path):
    src = write_jsonl(tmp_path / "all.jsonl", make_rows({"a": 10, "b": 10}))
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(UserError, match="--overwrite"):
        convert_dataset(src, out)
    assert (out / "keep.txt").read_text() == "old"
    convert_dataset(src, out, overwrite=True)
    assert not (out / "keep.txt").exists() and (out / "train.spacy").exists()


def test_failed_conversion_leaves_no_output(tmp_path):
    src = write_jsonl(tmp_path / "all.jsonl", make_rows({"a": 10}))
    with pytest.raises(UserError):
        convert_dataset(src, tmp_path / "out")
    assert list(tmp_path.iterdir()) == [src]


# --- JsonlCorpus reader ------------------------------------------------------------------------


def test_jsonl_corpus_reader(tmp_path):
    convert_dataset(DEMO_DIR, tmp_path / "c")
    labels = json.loads((tmp_path / "c" / "labels.json").read_text("utf8"))["labels"]
    reader = spacy.registry.readers.get("spacy_threephase.JsonlCorpus.v1")
    assert reader is create_jsonl_corpus
    nlp = spacy.blank("en")
    examples = list(reader(tmp_path / "c" / "dev.jsonl")(nlp))
    rows = [json.loads(line) for line in (DEMO_DIR / "dev.jsonl").read_text("utf8").splitlines()]
    assert len(examples) == len(rows)
    for ex, row in zip(examples, rows):
        assert ex.reference.text == row["text"].strip()
        assert ex.reference.cats == {lab: float(lab == row["label"]) for lab in labels}
    assert len(list(reader(tmp_path / "c" / "dev.jsonl", limit=5)(nlp))) == 5


def test_jsonl_corpus_from_config(tmp_path):
    src = write_jsonl(tmp_path / "m.jsonl", [{"text": f"t {i}", "label": ["x", "y"][: 1 + i % 2]} for i in range(20)])
    convert_dataset(src, tmp_path / "c")
    from thinc.api import Config

    cfg = Config().from_str(f"""
    [corpus]
    @readers = "spacy_threephase.JsonlCorpus.v1"
    path = "{tmp_path / "c" / "train.jsonl"}"
    labels = ["x", "y", "z"]
    multi_label = true
    """)
    corpus = spacy.registry.resolve(cfg)["corpus"]
    examples = list(corpus(spacy.blank("en")))
    assert examples and all(set(ex.reference.cats) == {"x", "y", "z"} for ex in examples)
    assert any(ex.reference.cats["y"] == 1.0 for ex in examples)


# --- Hugging Face path (local files only, no network) -----------------------------------------


def test_load_hf_dataset_from_local_json(tmp_path):
    train = write_jsonl(tmp_path / "train.jsonl", make_rows({"a": 8, "b": 4}, "sentence", "y"))
    test = write_jsonl(tmp_path / "test.jsonl", make_rows({"a": 2, "b": 2}, "sentence", "y", prefix="t "))
    splits = load_hf_dataset(
        "json",
        data_files={"train": str(train), "test": str(test)},
        text_field="sentence",
        label_field="y",
        cache_dir=str(tmp_path / "hf_cache"),
    )
    assert set(splits) == {"train", "test"}
    assert Counter(r.labels[0] for r in splits["train"].records) == {"a": 8, "b": 4}
    assert splits["test"].records[0].line == 1 and splits["test"].path.startswith("hf:json[")


def test_hf_classlabel_names_and_convert(tmp_path, monkeypatch):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    dd = datasets.DatasetDict(
        {
            "train": datasets.Dataset.from_dict(
                {"text": [f"text {i}" for i in range(20)], "label": [i % 2 for i in range(20)]}, features=features
            ),
            "validation": datasets.Dataset.from_dict({"text": ["v1", "v2"], "label": [0, 1]}, features=features),
            "test": datasets.Dataset.from_dict({"text": ["u1", "u2"], "label": [-1, -1]}, features=features),
        }
    )
    calls = []
    monkeypatch.setattr(datasets, "load_dataset", lambda name, config=None, **kw: calls.append((name, config)) or dd)
    stats = convert_dataset("someone/sentiment", tmp_path / "out", hf_config="default")
    assert calls == [("someone/sentiment", "default")]
    assert stats["labels"] == ["neg", "pos"] and stats["source"] == "hf:someone/sentiment"
    assert stats["carved"] == ["test"]  # the unlabelled test split is replaced by a carved one
    assert stats["sizes"]["dev"] == 2 and stats["counts"]["dev"] == {"neg": 1, "pos": 1}
    stats = convert_dataset("hf:someone/sentiment", tmp_path / "out2")
    assert stats["source"] == "hf:someone/sentiment"


def test_hf_load_failure_is_user_error(monkeypatch):
    import datasets

    def fail(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'nope/nope' on the Hub (LocalEntryNotFoundError)")

    monkeypatch.setattr(datasets, "load_dataset", fail)
    with pytest.raises(UserError, match="could not load.*local"):
        load_hf_dataset("nope/nope")


# --- shared benchmark data ---------------------------------------------------------------------


def test_convert_shared_snips(shared_datasets, tmp_path):
    stats = convert_dataset(shared_datasets / "snips", tmp_path / "snips")
    assert stats["sizes"] == {"train": 13084, "dev": 700, "test": 700}
    assert len(stats["labels"]) == 7 and stats["carved"] == []
    assert stats["counts"]["dev"] == {label: 100 for label in stats["labels"]}
    assert len((tmp_path / "snips" / "texts.txt").read_text("utf8").splitlines()) == 13084


def test_stratified_split_multilabel_uses_rarest_label():
    combos = [["a", "b"], ["a", "c"], ["a"], ["b", "c"], ["a", "b", "c"]]
    records = [Record(f"t{i}", combos[i % len(combos)], i + 1) for i in range(50)]
    kept, out = stratified_split(records, 0.2, seed=0)
    assert len(out) == 10 and len(kept) == 40
    assert {lab for r in out for lab in r.labels} == {"a", "b", "c"}


def test_hf_multilabel_classlabel_sequence():
    import datasets

    from spacy_threephase.data.readers import _read_hf_split

    feats = datasets.Features(
        {"text": datasets.Value("string"), "tags": datasets.Sequence(datasets.ClassLabel(names=["x", "y", "z"]))}
    )
    ds = datasets.Dataset.from_dict({"text": ["a", "b", " "], "tags": [[0, 2], [1], [0]]}, features=feats)
    res = _read_hf_split("hf:t[train]", ds, "text", "tags", None)
    assert [r.labels for r in res.records] == [["x", "z"], ["y"]] and res.multi_label and res.skipped_empty == 1
