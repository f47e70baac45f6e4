#!/bin/bash
# netboot's main job on its embedded defaults. Until netbootd lands, the most useful real
# binary: the lts.conf checker and resolver, run on the bundled example farm's lts.conf for
# two nodes of the rack.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release -q -p netboot-bins --bin ltsconf
ltsconf=${CARGO_TARGET_DIR:-target}/release/ltsconf
conf=examples/farm/lts.conf

cat <<INTRO
Every node of the farm boots the same image and configures itself from $conf,
an LTSP lts.conf: [Default] for everyone, a [storage] group, one node by MAC address
that joins it with LIKE, and a [52:54:00:aa:*] glob for the small nodes.

INTRO
echo "== 1. ltsconf check $conf   (every problem with line:column; exit 1 on errors)"
"$ltsconf" check "$conf"
for mac in 52:54:00:12:34:56 52:54:00:aa:00:07; do
  echo
  echo "== 2. which sections node $mac gets, and where LTSP_NBD_TO_RAM comes from"
  "$ltsconf" explain --mac "$mac" LTSP_NBD_TO_RAM "$conf"
  echo
  echo "== 3. what node $mac gets (ltsconf resolve --mac $mac --format shell)"
  "$ltsconf" resolve --mac "$mac" --format shell "$conf"
done
echo
echo "== 4. the shell output is safe: after eval every variable holds exactly its lts.conf text"
echo "   (nothing in it is expanded or run, unlike getltscfg's output), shown here in [brackets]:"
out=$("$ltsconf" resolve --mac 52:54:00:12:34:56 --format shell "$conf")
names=$(printf '%s\n' "$out" | sed -n 's/^export //p')
# shellcheck disable=SC2016,SC2086
sh -c 'eval "$1"; shift; for n in "$@"; do eval "v=\${$n}"; printf "  %-22s [%s]\n" "$n" "$v"; done' \
  sh "$out" $names
