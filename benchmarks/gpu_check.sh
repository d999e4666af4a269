#!/usr/bin/env bash
# The fused Triton sweep on one CUDA GPU, from a fresh checkout, in under 8 minutes:
#
#     bash benchmarks/gpu_check.sh                 # on the GPU machine
#     bash benchmarks/gpu_check.sh --cpu-dry-run   # here: the same steps on the CPU, tiny sizes
#
# 1. shows the torch it finds; installs what is missing: with a CUDA torch present only
#    `pip install -e .[gpu,test]` (torch is left alone), torch==2.13.0 first only when there is
#    no CUDA torch; nothing when pdn's dependencies, triton and pytest already import;
# 2. compiles the kernels for sm_90 and shows their register use (no GPU needed);
# 3. runs tests/test_triton_sweep.py on the GPU (PDN_TEST_DEVICE=cuda; the dry run: interpreted);
# 4. runs benchmarks/gpu_check.py (agreement, latency, kernel counts, training time).
# Timeouts 60 + 150 + 240 s (expected well under half). The output also goes to
# $OUT/gpu_check.log when $OUT is set. Exits non-zero if a step failed.
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
DRY_RUN=""
[[ "${1:-}" == "--cpu-dry-run" ]] && DRY_RUN="--cpu-dry-run"
[[ -n "${OUT:-}" ]] && exec > >(tee -a "$OUT/gpu_check.log") 2>&1
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
failed=0

echo "== torch"
$PYTHON -c "import torch; print(torch.__version__, torch.cuda.is_available())" || echo "no torch"
has_cuda_torch() { $PYTHON -c "import torch, sys; sys.exit(not torch.cuda.is_available())" 2>/dev/null; }
needs_install() { ! $PYTHON -c "import numpy, PIL, omegaconf, tqdm, pytest, triton" 2>/dev/null; }
if [[ -z "$DRY_RUN" ]] && ! has_cuda_torch; then
    echo "== no CUDA torch: pip install torch==2.13.0 (the CUDA build on Linux)"
    $PYTHON -m pip install -q torch==2.13.0 || failed=1
fi
if needs_install; then
    echo "== pip install -e .[gpu,test] (torch as it is)"
    $PYTHON -m pip install -q -e ".[gpu,test]" || failed=1
fi
$PYTHON -c "import torch, triton; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(), 'triton', triton.__version__)" || failed=1

echo "== the kernels compiled for sm_90 (registers; a spill shows as stack bytes)"
env -u TRITON_INTERPRET timeout 60 $PYTHON benchmarks/gpu_check.py --compile-only || failed=1

echo "== tests/test_triton_sweep.py ${DRY_RUN:+(on the CPU, interpreted)}"
if [[ -n "$DRY_RUN" ]]; then
    OMP_NUM_THREADS=1 timeout 150 $PYTHON -m pytest -q --tb=short tests/test_triton_sweep.py || failed=1
else
    PDN_TEST_DEVICE=cuda timeout 150 $PYTHON -m pytest -q --tb=short tests/test_triton_sweep.py || failed=1
fi

echo "== benchmarks/gpu_check.py $DRY_RUN"
if [[ -n "$DRY_RUN" ]]; then export OMP_NUM_THREADS=1; fi
timeout 240 $PYTHON benchmarks/gpu_check.py $DRY_RUN || failed=1

echo "== done (failed steps: $failed)"
exit $failed
