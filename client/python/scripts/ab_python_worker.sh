#!/bin/bash
# Issue 11's Python-worker figure, A/B interleaved: for each set, for each build (the order
# alternating per set), `sim bench --scenario python` (the Rust load generator; one sim for
# both builds) then `bench_e2e.py` (the Python submitter), each with CPU per task of every
# process and the load average. JSON and a log in OUT.
#
#   client/python/scripts/ab_python_worker.sh OUT SETS SIM PY A_NODE A_SDK_SRC B_NODE B_SDK_SRC
#
# e.g. (main 43f8b9e against this branch, release builds, 3 sets):
#   client/python/scripts/ab_python_worker.sh /tmp/ab 3 target/release/sim \
#     target/sdk-venv/bin/python /work/bench-bins/main43/node /work/main/client/python/src \
#     target/release/node client/python/src
# Summary: python3 client/python/scripts/ab_summary.py OUT
set -u
out=$1; sets=$2; sim=$3; py=$4
declare -A node=([A]=$5 [B]=$7) sdk=([A]=$6 [B]=$8)
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
ld() { echo "$(date -u +%T) load $(cut -d' ' -f1-3 /proc/loadavg) $*" | tee -a "$out/log"; }
for s in $(seq 1 "$sets"); do
  order="A B"; [ $((s % 2)) = 0 ] && order="B A"
  for b in $order; do
    ld "$b set=$s sim"
    timeout 900 "$sim" bench --scenario python --tasks 20000 --rounds 3 --json \
      --node-bin "${node[$b]}" --python "$py" --sdk-src "${sdk[$b]}" \
      > "$out/$b-sim-$s.json" 2> "$out/$b-sim-$s.err"
    echo "  rc=$?" | tee -a "$out/log"
    ld "$b set=$s e2e"
    timeout 900 "$py" "$here/bench_e2e.py" --node-bin "${node[$b]}" --sdk-src "${sdk[$b]}" \
      --tasks 20000 --rounds 3 > "$out/$b-e2e-$s.json" 2> "$out/$b-e2e-$s.err"
    echo "  rc=$?" | tee -a "$out/log"
  done
done
ld DONE
