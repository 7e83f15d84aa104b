"""Multi-label data end to end on the tiny encoder: the `data` step, phase 2 (contrastive),
phase 3 (`spacy threephase train` with the project's multi-label overrides, as
`--vars.textcat_factory textcat_multilabel --vars.exclusive_classes false` passes them) and
`evaluate`. The pipeline's cats are independent probabilities (one sigmoid per label) and the
metrics are the multi-label ones."""

import json
import re
import shlex
from pathlib import Path

import numpy
import pytest
import spacy
from conftest import REPO_ROOT, quick_phase_args
from typer.testing import CliRunner

from spacy_threephase.cli import app

LABELS = ["music", "travel", "weather"]
# several labels per text for about a third of the examples
ROWS = [
    ("play some jazz music in the kitchen", ["music"]),
    ("play the new album by the beatles", ["music"]),
    ("add this song to my workout playlist", ["music"]),
    ("put on some relaxing piano music", ["music"]),
    ("play a song by the rolling stones", ["music"]),
    ("book a flight to paris for tomorrow", ["travel"]),
    ("find me a hotel in london this weekend", ["travel"]),
    ("how long is the train ride to rome", ["travel"]),
    ("book a ticket to berlin on friday", ["travel"]),
    ("what is the weather like in paris tomorrow", ["weather", "travel"]),
    ("will it rain in london this weekend", ["weather"]),
    ("how hot will it be on friday", ["weather"]),
    ("is it going to snow in the mountains", ["weather"]),
    ("play road trip music for the drive to rome", ["music", "travel"]),
    ("will it be sunny on my flight to berlin", ["weather", "travel"]),
    ("play songs about the rain", ["music", "weather"]),
    ("play music for my holiday in spain", ["music", "travel"]),
    ("is it cold in oslo next week for my trip", ["weather", "travel"]),
]
DEV = [
    ("play a song by queen", ["music"]),
    ("book a hotel in madrid", ["travel"]),
    ("will it be windy tomorrow", ["weather"]),
    ("play music on the train to paris", ["music", "travel"]),
]
TEST = [
    ("put on the radio", ["music"]),
    ("find a flight to lisbon", ["travel"]),
    ("what is the forecast for berlin", ["weather"]),
    ("play summer songs for the beach trip", ["music", "travel"]),
    ("will it rain during my trip to london", ["weather", "travel"]),
    ("play the rain song", ["music", "weather"]),
]
TEXTCAT_CFG = REPO_ROOT / "configs" / "textcat.cfg"
CONTRASTIVE_CFG = REPO_ROOT / "configs" / "contrastive.cfg"


def project_textcat_overrides(**var_overrides):
    """The `--components.textcat.*` overrides of project.yml's `train` command, with the
    project's vars (and `var_overrides`, as `spacy project run --vars.NAME VALUE` sets them)."""
    import srsly

    project = srsly.read_yaml(REPO_ROOT / "project.yml")
    variables = {**project["vars"], **var_overrides}
    (command,) = [c for c in project["commands"] if c["name"] == "train"]
    (script,) = command["script"]
    args = shlex.split(re.sub(r"\$\{vars\.(\w+)\}", lambda m: str(variables[m.group(1)]), script))
    out = []
    for i, key in enumerate(args[:-1]):  # (no itertools.pairwise: Python 3.9 is supported)
        if key.startswith("--components.textcat."):
            out += [key, args[i + 1]]
    return out


# the README's switch for multi-label data: --vars.textcat_factory textcat_multilabel --vars.exclusive_classes false
MULTILABEL = project_textcat_overrides(textcat_factory="textcat_multilabel", exclusive_classes="false")


def _write_jsonl(path: Path, rows):
    with path.open("w", encoding="utf8") as fh:
        for text, labels in rows:
            fh.write(json.dumps({"text": text, "label": labels}) + "\n")


def _ok(res):
    assert res.exit_code == 0, res.output + (repr(res.exception) if res.exception else "")
    return res


@pytest.fixture(scope="module")
def run(tmp_path_factory, tiny_encoder_dir):
    """data -> contrastive -> threephase train -> evaluate, as the project's commands run them."""
    from spacy.cli._util import app as spacy_app

    import spacy_threephase.cli.spacy_commands  # noqa: F401  (registers `spacy threephase`)

    root = tmp_path_factory.mktemp("multilabel")
    raw = root / "raw"
    raw.mkdir()
    for split, rows in (("train", ROWS), ("dev", DEV), ("test", TEST)):
        _write_jsonl(raw / f"{split}.jsonl", rows)
    runner = CliRunner()
    corpus = root / "corpus"
    data_out = _ok(runner.invoke(app, ["data", str(raw), str(corpus), "--overwrite"])).output
    _ok(
        runner.invoke(
            app,
            [
                "contrastive",
                str(CONTRASTIVE_CFG),
                str(corpus),
                str(root / "contrastive"),
                "--encoder",
                str(tiny_encoder_dir),
                "--overwrite",
                *quick_phase_args(8, max_length=32),
            ],
        )
    )
    _ok(
        runner.invoke(
            spacy_app,
            [
                "threephase",
                "train",
                str(TEXTCAT_CFG),
                "--output",
                str(root / "textcat"),
                "--overwrite",
                "--paths.train",
                str(corpus / "train.spacy"),
                "--paths.dev",
                str(corpus / "dev.spacy"),
                "--paths.encoder",
                str(root / "contrastive"),
                *MULTILABEL,
                "--training.max_epochs",
                "4",
                "--training.eval_frequency",
                "4",
                "--training.batcher.size",
                "4",
                "--training.optimizer.warmup_steps",
                "0",
                "--training.optimizer.learn_rate",
                "0.01",
                "--components.textcat.model.hidden_width",
                "16",
                "--nlp.batch_size",
                "8",
                "--checkpoint-every",
                "0",
            ],
        )
    )
    evaluated = _ok(
        runner.invoke(
            app, ["evaluate", str(root / "textcat" / "model-best"), str(corpus / "test.spacy"), str(root / "metrics")]
        )
    ).output
    return {"root": root, "corpus": corpus, "data_output": data_out, "evaluate_output": evaluated}


def test_data_step_keeps_several_labels(run):
    from spacy.tokens import DocBin

    corpus = run["corpus"]
    meta = json.loads((corpus / "labels.json").read_text(encoding="utf8"))
    assert meta["multi_label"] is True and meta["labels"] == LABELS
    assert "multi-label" in run["data_output"]
    docs = list(DocBin().from_disk(corpus / "train.spacy").get_docs(spacy.blank("en").vocab))
    assert [d.text for d in docs] == [t for t, _ in ROWS]
    for doc, (_, labels) in zip(docs, ROWS):
        assert doc.cats == {lab: float(lab in labels) for lab in LABELS}
    normalised = [json.loads(line) for line in (corpus / "test.jsonl").read_text(encoding="utf8").splitlines()]
    assert [sorted(r["labels"]) for r in normalised] == [sorted(labels) for _, labels in TEST]


def test_phase2_encoder_and_multilabel_imbalance_table(run):
    from transformers import AutoModel

    out = run["root"] / "contrastive"
    assert AutoModel.from_pretrained(out).config.hidden_size == 32
    table = json.loads((out / "imbalance.json").read_text(encoding="utf8"))["classes"]
    # label frequencies over the multi-label records (a record counts for each of its labels)
    before = {lab: sum(lab in labels for _, labels in ROWS) for lab in LABELS}
    assert {c["class"]: c["before"] for c in table} == before


def test_pipeline_cats_are_independent_probabilities(run):
    nlp = spacy.load(run["root"] / "textcat" / "model-best")
    assert nlp.pipe_names == ["transformer", "textcat"]
    pipe = nlp.get_pipe("textcat")
    assert type(pipe).__name__ == "MultiLabel_TextCategorizer"
    assert sorted(pipe.labels) == LABELS and pipe.model.attrs["multi_label"] is True
    texts = [t for t, _ in TEST]
    cats = [nlp(t).cats for t in texts]
    scores = numpy.array([[c[lab] for lab in pipe.labels] for c in cats])
    assert ((scores > 0) & (scores < 1)).all()
    assert not numpy.allclose(scores.sum(axis=1), 1.0, atol=1e-3)  # not a softmax over the labels
    # independent: moving one label's output weights changes that label's score only
    out = pipe.model.get_ref("output_layer")
    W, b = out.get_param("W").copy(), out.get_param("b").copy()
    b2 = b.copy()
    b2[0] += 3.0
    out.set_param("b", b2)
    moved = numpy.array([[c[lab] for lab in pipe.labels] for c in (nlp(t).cats for t in texts)])
    out.set_param("W", W)
    out.set_param("b", b)
    assert (moved[:, 0] > scores[:, 0] + 1e-3).all()
    numpy.testing.assert_allclose(moved[:, 1:], scores[:, 1:], rtol=0, atol=1e-7)
    # the sigmoid: logit(score) moves by exactly the bias change
    logit = lambda p: numpy.log(p / (1 - p))
    numpy.testing.assert_allclose(logit(moved[:, 0]) - logit(scores[:, 0]), 3.0, atol=1e-3)


def test_evaluate_writes_multilabel_metrics(run):
    metrics = json.loads((run["root"] / "metrics" / "metrics.json").read_text(encoding="utf8"))
    assert metrics["multi_label"] is True and metrics["component"] == "textcat"
    assert metrics["n_examples"] == len(TEST) and sorted(metrics["labels"]) == LABELS
    assert "confusion_matrix" not in metrics  # single-label only
    # recompute every number from the pipeline's own predictions (threshold 0.5)
    nlp = spacy.load(run["root"] / "textcat" / "model-best")
    pred = [{lab for lab, p in nlp(t).cats.items() if p >= 0.5} for t, _ in TEST]
    gold = [set(labels) for _, labels in TEST]
    assert metrics["accuracy"] == pytest.approx(sum(p == g for p, g in zip(pred, gold)) / len(TEST))  # exact match
    for lab in LABELS:
        tp = sum(lab in p and lab in g for p, g in zip(pred, gold))
        n_pred, support = sum(lab in p for p in pred), sum(lab in g for g in gold)
        precision = tp / n_pred if n_pred else 0.0
        recall = tp / support
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        assert metrics["per_class"][lab] == pytest.approx(
            {"precision": precision, "recall": recall, "f1": f1, "support": support}
        )
    for key in ("precision", "recall", "f1"):
        assert metrics[f"macro_{key}"] == pytest.approx(numpy.mean([metrics["per_class"][lab][key] for lab in LABELS]))
    txt = (run["root"] / "metrics" / "metrics.txt").read_text(encoding="utf8")
    assert "macro F1" in txt and "confusion matrix" not in txt
    assert "accuracy" in run["evaluate_output"]


def test_project_multilabel_switch_sets_factory_and_sigmoid():
    pairs = dict(zip(MULTILABEL[::2], MULTILABEL[1::2]))
    assert pairs["--components.textcat.factory"] == "textcat_multilabel"
    assert pairs["--components.textcat.model.exclusive_classes"] == "false"
    assert "--vars.textcat_factory textcat_multilabel --vars.exclusive_classes false" in (
        REPO_ROOT / "README.md"
    ).read_text(encoding="utf8")


def test_phase3_dev_score_is_the_multilabel_score(run):
    """spaCy's scoring of the trained pipeline (what phase 3 selects model-best by) is the
    multi-label scoring at threshold 0.5 that `evaluate` reports."""
    from spacy.tokens import DocBin
    from spacy.training import Example

    nlp = spacy.load(run["root"] / "textcat" / "model-best")
    pipe = nlp.get_pipe("textcat")
    assert type(pipe).__name__ == "MultiLabel_TextCategorizer"
    assert (
        nlp.config.interpolate()["components"]["textcat"]["scorer"]["exclusive_classes"] is False
    )  # the switch reached it
    docs = DocBin().from_disk(run["corpus"] / "test.spacy").get_docs(nlp.vocab)
    scores = nlp.evaluate([Example(nlp.make_doc(d.text), d) for d in docs])
    metrics = json.loads((run["root"] / "metrics" / "metrics.json").read_text(encoding="utf8"))
    for key in ("p", "r", "f"):
        assert scores[f"cats_macro_{key}"] == pytest.approx(
            metrics[{"p": "macro_precision", "r": "macro_recall", "f": "macro_f1"}[key]]
        )
