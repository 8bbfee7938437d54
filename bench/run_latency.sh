#!/usr/bin/env bash
# Latency of `docker run --rm busybox true` through the docker CLI: median and p90
# over N runs against dockyard and, if given, another Docker-compatible daemon,
# alternating runs so both see the same machine load.
#
#   bench/run_latency.sh unix:///var/run/dockyard.sock [unix:///var/run/docker.sock] [N=20]
#
# Both daemons need a busybox image (contrib/mkimage-busybox.sh for dockyard).
set -euo pipefail
a=${1:?usage: $0 DOCKYARD_HOST [OTHER_HOST] [RUNS]}
b=${2:-}
runs=${3:-20}
docker=${DOCKER:-$(command -v docker)}
python=${PYTHON:-python3}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
one() {  # host -> microseconds
    local start end
    start=$(date +%s%N)
    DOCKER_HOST=$1 "$docker" run --rm busybox true >/dev/null
    end=$(date +%s%N)
    echo $(( (end - start) / 1000 ))
}
for host in $a $b; do DOCKER_HOST=$host "$docker" run --rm busybox true >/dev/null; done  # warm up
for _ in $(seq "$runs"); do
    one "$a" >> "$tmp/a"
    [ -n "$b" ] && one "$b" >> "$tmp/b"
done
"$python" - "$tmp" "$a" "$b" <<'PY'
import statistics, sys
from pathlib import Path
tmp, a, b = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
def stats(name):
    xs = sorted(int(x) / 1e6 for x in (tmp / name).read_text().split())
    return statistics.median(xs), xs[max(0, int(round(0.9 * len(xs))) - 1)], len(xs)
ma, pa, n = stats("a")
print(f"dockyard  {a}: median {ma*1000:.0f} ms  p90 {pa*1000:.0f} ms  ({n} runs)")
if b:
    mb, pb, _ = stats("b")
    print(f"other     {b}: median {mb*1000:.0f} ms  p90 {pb*1000:.0f} ms")
    print(f"ratio dockyard/other: median {ma/mb:.2f}  p90 {pa/pb:.2f}")
PY
