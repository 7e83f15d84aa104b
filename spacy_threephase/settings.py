"""The plain (non-registered) sections of the phase-1/phase-2/Joint configs, as pydantic models.

As spaCy validates its own sections: `extra="forbid"` (an unknown key is an error that lists
the known ones), types checked, and every error turned into one line that names the config
file, the section and the key. A boolean is never accepted where a number is expected.
"""

from typing import Any, Dict, Literal, Optional, Type, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UserError

M = TypeVar("M", bound=BaseModel)


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    @field_validator("*", mode="before")
    @classmethod
    def _no_bool_for_numbers(cls, value, info):
        annotation = cls.model_fields[info.field_name].annotation
        if isinstance(value, bool) and annotation in (int, float, Optional[int], Optional[float]):
            raise ValueError("must be a number, not true/false")
        return value


class EncoderSection(Section):
    """`[encoder]`: the encoder a phase starts from."""

    name: str = "default"
    pooling: Optional[str] = None  # None = what the model directory says (mean for all-MiniLM-*)
    max_length: Optional[int] = 128  # wordpieces kept per text; 0 or None = the model's own limit

    @field_validator("max_length")
    @classmethod
    def _length(cls, value):
        if value is not None and (value < 0 or value == 1):
            raise ValueError("must be 0 (the model's limit) or at least 2")
        return value


class TrainingSection(Section):
    """`[training]` of every PyTorch phase (1, 2 and Joint)."""

    epochs: int = Field(1, ge=1)
    batch_size: int = Field(16, ge=1)
    learning_rate: float = 5e-5
    weight_decay: float = 0.01
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    max_grad_norm: float = 1.0
    max_steps: int = Field(0, ge=0)  # 0 = no limit beyond `epochs`
    # On small data `epochs` are raised until the run makes at least this many optimizer steps
    # (0 = no floor); max_steps still caps it.
    min_steps: int = Field(0, ge=0)
    seed: int = 0
    gpu_id: int = -1  # -1 = CPU; >= 0 = use CUDA (that device in a one-process run)
    # CUDA: bf16 where supported, else fp16; CPU: phase 1's fixed LM head in bf16 where the CPU has AMX
    mixed_precision: bool = True
    progress: bool = True
    checkpoint_every: int = Field(500, ge=0)  # steps between resumable checkpoints; 0 = none
    torch_threads: int = Field(0, ge=0)  # CPU threads for torch; 0 = torch's default
    # Model selection: the encoder the phase starts from is scored on dev first and is a
    # candidate; then every `eval_steps` steps (0: `evals_per_epoch` times an epoch) and at
    # the end. The best candidate is written, which may be the input encoder unchanged.
    select_best: bool = True
    # stop after this many evaluations in a row without a new best (0 = never): a phase that
    # only makes the encoder worse on dev stops early and hands on its input unchanged
    patience: int = Field(3, ge=0)
    # The best checkpoint replaces the input encoder only when its dev gain is beyond noise: the
    # paired z of its per-text dev scores against the input's (McNemar's test for accuracy) must
    # be at least this (1.645 = one-sided 5%). 0 = any gain counts. Needs dev labels; phase 1's
    # held-out reconstruction loss has no per-text scores, and any gain counts there.
    min_gain_z: float = Field(0.0, ge=0)
    # When the run reaches the end of its schedule (the learning rate decayed to 0) and an
    # earlier checkpoint scored best on dev, the final weights are written instead unless the
    # best beats them by a paired z of at least this (they must still score above the input).
    # An earlier checkpoint was taken at a high learning rate; the final one is annealed.
    # 0 = off: the best checkpoint is written.
    prefer_final_z: float = Field(0.0, ge=0)
    evals_per_epoch: int = Field(2, ge=1)
    eval_steps: int = Field(0, ge=0)
    eval_batch_size: int = Field(64, ge=1)
    # The selection score with labels: "centroid" (dev accuracy of the nearest class mean of the
    # train vectors) or "knn" (of the majority of the knn_k nearest train texts); both are logged.
    selection_metric: Literal["knn", "centroid"] = "centroid"
    knn_k: int = Field(5, ge=1)  # k of the dev k-NN accuracy
    # Evaluation cost is bounded: neighbours from at most knn_max_train train texts, scored on at
    # most knn_max_dev dev texts (stratified samples, fixed by the seed); 0 = all.
    knn_max_train: int = Field(2000, ge=0)
    knn_max_dev: int = Field(1000, ge=0)
    # share of train carved off as dev when the corpus has no dev.jsonl
    dev_fraction: float = Field(0.1, ge=0, lt=1)
    # Length-bucketed batches: texts are sorted by length within chunks of this many batches
    # (then the batches are shuffled), so that little is computed for padding. 1 = random batches.
    bucket_batches: int = Field(50, ge=1)


class DAETrainingSection(TrainingSection):
    """Phase 1's `[training]`: selection without labels uses a held-out share of the texts."""

    epochs: int = 3
    learning_rate: float = 1e-4
    min_gain_z: float = Field(1.645, ge=0)
    # A labelled corpus directory (train.jsonl, dev.jsonl): select on its dev accuracy (selection_metric).
    # null: hold out `heldout_fraction` of the texts (at most `heldout_max`) and select on
    # their reconstruction loss (a fixed corruption, so the score is comparable).
    dev_corpus: Optional[str] = None
    heldout_fraction: float = Field(0.05, ge=0, lt=1)
    heldout_max: int = Field(500, ge=0)
    # false: the word-embedding matrix (tied to the LM head) stays fixed, a quarter less time per
    # step on a CPU (no vocabulary-sized gradient or update); the transformer layers still train
    train_word_embeddings: bool = False


class ContrastiveTrainingSection(TrainingSection):
    """Phase 2's and Joint's `[training]`."""

    epochs: int = 2
    dev_pairs_seed: int = 1234


class JointSection(Section):
    """`[joint]`: the weights of the two losses and where the DAE texts come from."""

    dae_weight: float = Field(1.0, ge=0)
    cl_weight: float = Field(1.0, ge=0)
    # "auto" = CORPUS_DIR/texts.txt when present, else the train texts; "train"; or a texts file
    dae_texts: str = "auto"
    dae_batch_size: int = Field(0, ge=0)  # 0 = [training] batch_size

    @model_validator(mode="after")
    def _some_loss(self):
        if self.dae_weight + self.cl_weight <= 0:
            raise ValueError("dae_weight and cl_weight must not both be 0")
        return self


def parse_section(model: Type[M], section: Optional[Dict[str, Any]], where: str) -> M:
    """Validate a config section; the first problem becomes a one-line UserError."""
    try:
        return model(**dict(section or {}))
    except ValidationError as err:
        raise UserError(f"{where}: {describe(err, model)}") from None


def describe(err: ValidationError, model: Type[BaseModel]) -> str:
    first = err.errors()[0]
    key = ".".join(str(p) for p in first.get("loc", ()))
    if first.get("type") == "extra_forbidden":
        return f"unknown setting {key!r}; known settings: {', '.join(model.model_fields)}"
    kind = first.get("type", "")
    value = first.get("input")
    if kind.startswith("int"):
        return f"{key} must be an integer, got {value!r}"
    if kind.startswith("float"):
        return f"{key} must be a number, got {value!r}"
    if kind.startswith("bool"):
        return f"{key} must be true or false, got {value!r}"
    bounds = {"greater_than_equal": "at least {ge}", "less_than": "less than {lt}", "greater_than": "more than {gt}"}
    if kind in bounds:
        return f"{key} must be {bounds[kind].format(**first.get('ctx', {}))}, got {value!r}"
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{key} {message}, got {value!r}" if key else message
