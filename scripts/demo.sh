#!/bin/bash
# netboot's main job on its embedded defaults. Until netbootd lands, the most useful real
# binary: the lts.conf checker and resolver, run on the bundled example farm's lts.conf for
# two nodes of the rack.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release -q -p netboot-bins --bin ltsconf
ltsconf=target/release/ltsconf
conf=examples/farm/lts.conf

echo "== ltsconf check $conf"
"$ltsconf" check "$conf"
for mac in 52:54:00:12:34:56 52:54:00:aa:00:07; do
  echo
  echo "== what node $mac gets (ltsconf resolve --mac $mac --format shell)"
  "$ltsconf" resolve --mac "$mac" --format shell "$conf"
done
