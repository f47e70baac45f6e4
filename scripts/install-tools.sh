#!/bin/bash
# Installs every external tool netboot's tests, benchmarks and demo use, from Debian packages.
# Run as root on Debian 12. Safe to run again: it only adds what is missing.
#
# Two traps handled here:
# - atftpd and tftpd-hpa conflict as packages; tftpd-hpa is installed normally and atftpd's
#   binary is unpacked (not installed) into $PEERS_DIR, where the tests look for it.
# - qemu-system-x86 from Debian must not downgrade a newer qemu-utils already on the machine,
#   so nothing here asks for a qemu-utils version; apt keeps the installed one.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
PEERS_DIR=${NETBOOT_PEERS_DIR:-/opt/netboot-peers}

# Packages whose maintainer scripts would start a daemon (kea, tftpd-hpa) must not start one
# here: tests start their own instances inside namespaces.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

PACKAGES=(
  iproute2 procps psmisc curl ca-certificates
  tftp-hpa atftp tftpd-hpa
  busybox-static udhcpc isc-dhcp-client
  nbdkit libnbd-bin nbd-client nbd-server python3-libnbd python3-scapy
  systemd openssl python3-yaml   # verify the units; NBD TLS test certificates; the k8s manifests
  kea-dhcp4-server kea-admin dnsmasq-base
  qemu-system-x86 ovmf ipxe-qemu
  squashfs-tools cpio kmod
  libpcre2-8-0 libwrap0   # atftpd's libraries (atftpd itself is unpacked below)
  linux-image-amd64 grub-common grub-pc-bin grub-efi-amd64-bin binutils   # the example farm
)
apt-get update -q
apt-get install -y -q --no-install-recommends "${PACKAGES[@]}"

if ! command -v qemu-img >/dev/null || ! command -v qemu-io >/dev/null; then
  apt-get install -y -q --no-install-recommends qemu-utils
fi

# atftpd, unpacked beside the installed tftpd-hpa.
if [ ! -x "$PEERS_DIR/atftpd/usr/sbin/atftpd" ] || [ ! -e "$PEERS_DIR/atftpd.deb" ]; then
  tmp=$(mktemp -d)
  chmod 0755 "$tmp"
  (cd "$tmp" && apt-get download -q atftpd)
  mkdir -p "$PEERS_DIR/atftpd"
  dpkg-deb -x "$tmp"/atftpd_*.deb "$PEERS_DIR/atftpd"
  cp "$tmp"/atftpd_*.deb "$PEERS_DIR/atftpd.deb"
  rm -rf "$tmp"
fi
mkdir -p "$PEERS_DIR/bin"
ln -sf "$PEERS_DIR/atftpd/usr/sbin/atftpd" "$PEERS_DIR/bin/atftpd"

echo "netboot packages:"
dpkg-query -W -f='  ${Package} ${Version}\n' "${PACKAGES[@]}" qemu-utils
printf '  atftpd %s (unpacked in %s)\n' "$(dpkg-deb -f "$PEERS_DIR/atftpd.deb" Version 2>/dev/null || echo '?')" "$PEERS_DIR/atftpd"

missing=0
check() {
  if command -v "$1" >/dev/null 2>&1 || [ -x "$PEERS_DIR/bin/$1" ]; then
    printf '  %-20s %s\n' "$1" "$(command -v "$1" || echo "$PEERS_DIR/bin/$1")"
  else
    printf '  %-20s MISSING\n' "$1"; missing=1
  fi
}
echo "netboot tools:"
for t in ip tftp atftp curl busybox udhcpc dhclient nbdkit nbdinfo nbdcopy nbdsh nbd-client nbd-server \
         systemd-analyze openssl \
         qemu-img qemu-io qemu-system-x86_64 perfdhcp kea-dhcp4 dnsmasq in.tftpd atftpd \
         mksquashfs cpio; do
  check "$t"
done
for f in /usr/share/OVMF/OVMF_CODE.fd /usr/lib/ipxe/qemu/efi-virtio.rom; do
  if [ -e "$f" ]; then printf '  %-20s %s\n' "$(basename "$f")" "$f"; else printf '  %-20s MISSING\n' "$f"; missing=1; fi
done
if ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then echo "  python3-yaml         MISSING (import yaml in /usr/bin/python3)"; missing=1; fi
if ! /usr/bin/python3 -c 'import nbd' 2>/dev/null; then echo "  python3-libnbd       MISSING (import nbd in /usr/bin/python3)"; missing=1; fi
exit "$missing"
