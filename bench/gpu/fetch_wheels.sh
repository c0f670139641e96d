#!/usr/bin/env bash
# Download, on a machine that reaches PyPI, the wheels the GPU machine lacks, for its Python 3.12 (x86-64):
#   .whl/lf/  LLaMA-Factory 0.9.5 and the versions it needs (transformers 5.6, peft 0.18, datasets 4.0, ...)
#   .whl/ts/  tunesmith's pins that differ from what the GPU image has (transformers 5.23, peft 0.21, datasets 5.2)
# The GPU image already has torch, triton, accelerate, tokenizers, safetensors, huggingface_hub, numpy, pandas,
# pyarrow, pyyaml, jinja2, tqdm and matplotlib. About 35 MiB in all; carry `.whl` to the device.
# usage (repo root): bash bench/gpu/fetch_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
grep -qx "/.whl/" .git/info/exclude 2>/dev/null || { mkdir -p .git/info; echo "/.whl/" >> .git/info/exclude; }
get() {  # get DIR PACKAGE==VERSION...
  local dir=$1; shift
  mkdir -p "$dir"
  for p in "$@"; do
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d "$dir" "$p" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  done
}
# LLaMA-Factory 0.9.5: transformers 5.6.0 checks tokenizers<=0.23.0 at import (the image has 0.23.2);
# datasets 4.0.0 pins dill<0.3.9, multiprocess<0.70.17, fsspec<=2025.3.0.
get .whl/lf llamafactory==0.9.5 transformers==5.6.0 accelerate==1.11.0 datasets==4.0.0 peft==0.18.1 trl==0.24.0 \
  tokenizers==0.22.2 dill==0.3.8 multiprocess==0.70.16 fsspec==2025.3.0 omegaconf==2.4.0 torchdata==0.11.0 \
  fire==0.7.1 termcolor==3.3.0 tyro==0.8.14 docstring-parser==0.18.0 shtab==1.13.0
# tunesmith (its source travels with the repo and is put on PYTHONPATH)
get .whl/ts transformers==5.23.0 peft==0.21.0 datasets==5.2.0 dill==0.4.0 multiprocess==0.70.18
du -sh .whl/lf .whl/ts
