#!/usr/bin/env bash
# Soak: 3 release nodes on loopback, result TTL 5 s, snapshot every ~4 MiB of log;
# a bounded load loop (180 s) of `flotilla submit noop --count 2000 --wait`; samples every 20 s.
# Build first: cargo build --release --bin node --bin flotilla. Ports 127.0.0.1:7711-7713.
# Kills only the three nodes it started (by pid).
set -u
B=${BIN:-$(cd "$(dirname "$0")/../.." && pwd)/target/release}; D=${DATA:-/tmp/flotilla-soak}; rm -rf $D; mkdir -p $D
ARGS="--workers 16 --default-result-ttl-ms 5000 --snapshot-log-bytes 4194304"
$B/node --listen 127.0.0.1:7711 --data-dir $D/n1 $ARGS 2>$D/n1.log & P1=$!
sleep 1
$B/node --listen 127.0.0.1:7712 --data-dir $D/n2 --join 127.0.0.1:7711 $ARGS 2>$D/n2.log & P2=$!
sleep 2
$B/node --listen 127.0.0.1:7713 --data-dir $D/n3 --join 127.0.0.1:7711 $ARGS 2>$D/n3.log & P3=$!
sleep 3
NODES=127.0.0.1:7711,127.0.0.1:7712,127.0.0.1:7713
end=$((SECONDS+180)); total=0
( while [ $SECONDS -lt $end ]; do $B/flotilla --nodes $NODES submit noop --count 2000 --wait >/dev/null 2>&1; done ) & L=$!
for t in 0 20 40 60 80 100 120 140 160 180; do
  rss=""; for p in $P1 $P2 $P3; do rss="$rss $(awk '/VmRSS/{print int($2/1024)}' /proc/$p/status)MiB"; done
  disk=""; for n in n1 n2 n3; do disk="$disk $(du -sm $D/$n | cut -f1)MiB"; done
  st=$($B/flotilla --nodes $NODES stats 2>/dev/null | awk 'NR==2{print "succeeded="$6}')
  echo "t=${t}s rss:$rss disk:$disk $st"
  sleep 20
done
wait $L
kill $P1 $P2 $P3; wait
