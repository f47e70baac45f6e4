#!/bin/bash
# netboot's main job on its embedded defaults: the example farm. Part 1 shows what two nodes
# of the rack get from its lts.conf; part 2 builds the farm, starts netbootd in a network
# namespace of its own and network-boots a QEMU machine from it (needs root; touches nothing
# outside that namespace, which is removed at the end). NETBOOT_DEMO_NO_VM=1 stops after part 1.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --locked --release -q -p netboot-bins
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

[ "${NETBOOT_DEMO_NO_VM:-0}" = 1 ] && exit 0
echo
echo "== 5. the farm boots a machine: netbootd (DHCP + TFTP + NBD) and a BIOS/iPXE VM under QEMU"
if [ "$(id -u)" != 0 ]; then
  echo "   skipped: booting needs root (a network namespace and a tap); rerun as root"
  exit 2
fi
missing=0
for t in qemu-system-x86_64 grub-mknetdir mksquashfs nbd-client busybox ip; do
  command -v "$t" >/dev/null || missing=1
done
ls /boot/vmlinuz-* >/dev/null 2>&1 || missing=1
if [ "$missing" = 1 ]; then
  echo "   installing the tools first (scripts/install-tools.sh)"
  bash scripts/install-tools.sh >/dev/null
fi
bin=${CARGO_TARGET_DIR:-target}/release
farm=${CARGO_TARGET_DIR:-target}/demo-farm
bash examples/farm/build.sh --out "$farm" --ltsconf "$bin/ltsconf" --nbdroot 198.18.0.1:10809/root
farm=$(cd "$farm" && pwd)
ns=netboot-demo-$$ br=nbdemo$$br tap=nbdemo$$tp
cleanup() {
  [ -n "${server:-}" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
  ip netns delete "$ns" 2>/dev/null || true
}
trap cleanup EXIT
ip netns add "$ns"
ip -n "$ns" link set lo up
ip -n "$ns" link add "$br" type bridge forward_delay 0
ip -n "$ns" addr add 198.18.0.1/24 dev "$br"
ip -n "$ns" link set "$br" up
ip -n "$ns" tuntap add dev "$tap" mode tap
ip -n "$ns" link set "$tap" master "$br" up
sed -e "s|/srv/farm|$farm|g" -e "s|\"farm0\"|\"$br\"|" \
    -e "s|/var/lib/netboot/leases.journal|$farm/leases.journal|" examples/farm/netboot.toml > "$farm/netboot.toml"
echo "   namespace $ns, bridge $br 198.18.0.1/24, config $farm/netboot.toml"
"$bin/netbootd" --config "$farm/netboot.toml" --check-config
ip netns exec "$ns" "$bin/netbootd" --config "$farm/netboot.toml" > "$farm/netbootd.log" 2>&1 &
server=$!
sleep 1
echo "   netbootd is up (log: $farm/netbootd.log); powering on a VM with MAC 52:54:00:12:34:56:"
start=$SECONDS
# The serial console, cut to the milestones our initramfs and the booted root print
# (SeaBIOS, iPXE and GRUB write to the screen, which this headless run does not show).
ip netns exec "$ns" timeout 300 qemu-system-x86_64 -machine pc,accel=tcg -m 512 -display none \
    -monitor none -no-reboot -serial stdio \
    -netdev "tap,id=n0,ifname=$tap,script=no,downscript=no" \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:12:34:56,bootindex=1 -boot n </dev/null 2>/dev/null \
  | sed -u -e 's/\r//g' -e 's/\x1b\[[0-9;]*[A-Za-z]//g' \
  | grep --line-buffered -E 'netboot:|NETBOOT-' \
  | while IFS= read -r line; do
      printf '   %5ss  %s\n' "$((SECONDS - start))" "$line"
      case "$line" in NETBOOT-OK*|NETBOOT-FAIL*) pkill -f "ifname=$tap," || true ;; esac
    done
echo
echo "== 6. what netbootd logged: one line per lease, transfer and connection"
sed 's/\x1b\[[0-9;]*m//g' "$farm/netbootd.log" | grep -E 'lease bound|core\.0"|vmlinuz|initrd|lts\.conf|connection' | cut -c1-200
