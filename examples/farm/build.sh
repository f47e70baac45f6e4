#!/bin/bash
# Builds the example farm from Debian's packages into OUT (default target/farm):
#   OUT/tftp/boot/grub/i386-pc/core.0       BIOS network boot program (grub-mknetdir)
#   OUT/tftp/boot/grub/x86_64-efi/core.efi  UEFI x64 one (client architecture 7 and 9)
#   OUT/tftp/boot/grub/grub.cfg             kernel + initramfs over TFTP
#   OUT/tftp/boot/vmlinuz, initrd.img       Debian's kernel; an initramfs assembled here
#   OUT/tftp/ltsp/lts.conf                  this folder's lts.conf
#   OUT/root.sqfs                           the squashfs root served over NBD
#   OUT/known.sha256                        sha256 of /etc/netboot-known.txt in that root
# Usage: build.sh [--out OUT] [--ltsconf PATH-TO-ltsconf-BINARY] [--nbdroot HOST:PORT/EXPORT]
# Needs root (device nodes in the initramfs) and the packages scripts/install-tools.sh installs.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=$HERE/../../target/farm
LTSCONF_BIN=$HERE/../../target/release/ltsconf
NBDROOT=198.18.0.1:10809/root
while [ $# -gt 0 ]; do
  case "$1" in
    --out) OUT=$2; shift 2 ;;
    --ltsconf) LTSCONF_BIN=$2; shift 2 ;;
    --nbdroot) NBDROOT=$2; shift 2 ;;
    *) echo "build.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
need() { command -v "$1" >/dev/null || { echo "build.sh: $1 missing: run scripts/install-tools.sh" >&2; exit 1; }; }
for t in grub-mknetdir mksquashfs cpio modprobe depmod busybox nbd-client strip; do need "$t"; done
[ -x "$LTSCONF_BIN" ] || { echo "build.sh: no ltsconf binary at $LTSCONF_BIN" >&2; exit 1; }
KVER=$(ls /lib/modules | sort -V | tail -1)
[ -r "/boot/vmlinuz-$KVER" ] || { echo "build.sh: no kernel: run scripts/install-tools.sh" >&2; exit 1; }
BUSYBOX=$(command -v busybox)

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
rm -rf "$OUT/tftp" "$OUT/initramfs" "$OUT/root" "$OUT/root.sqfs"

# TFTP root: both GRUB core images, one grub.cfg, the kernel, the initramfs and lts.conf.
grub-mknetdir --net-directory="$OUT/tftp" --subdir=boot/grub --locales= --themes= --fonts= \
  > "$OUT/grub-mknetdir.log" 2>&1 || { cat "$OUT/grub-mknetdir.log" >&2; exit 1; }
sed "s|@NBDROOT@|$NBDROOT|" "$HERE/grub.cfg" > "$OUT/tftp/boot/grub/grub.cfg"
cp "/boot/vmlinuz-$KVER" "$OUT/tftp/boot/vmlinuz"
mkdir -p "$OUT/tftp/ltsp"
cp "$HERE/lts.conf" "$OUT/tftp/ltsp/lts.conf"

# Copies an executable and the shared libraries it loads (the loader goes to /lib64).
copy_exe() {
  local exe=$1 dest=$2
  mkdir -p "$dest/$(dirname "$3")" "$dest/lib/x86_64-linux-gnu" "$dest/lib64"
  cp "$exe" "$dest/$3"
  strip --strip-unneeded "$dest/$3"
  ldd "$exe" | awk '/=> \//{print $3} /^\t\/lib64/{print $1}' | while read -r lib; do
    case "$lib" in
      */ld-linux-x86-64.so.2) cp -L "$lib" "$dest/lib64/" ;;
      *) cp -L "$lib" "$dest/lib/x86_64-linux-gnu/" ;;
    esac
  done
}

# The root image: busybox, the known file whose checksum the node prints, netboot-init.
R=$OUT/root
mkdir -p "$R"/{bin,sbin,etc,dev,proc,sys,run,tmp,mnt,data,var/log}
cp "$BUSYBOX" "$R/bin/busybox"
for a in sh cat echo tr cut sha256sum poweroff sync sysctl touch hostname modprobe mount; do
  ln -s busybox "$R/bin/$a"
done
{ echo "netboot farm known file"; head -c 1048576 /dev/zero | tr '\0' 'n'; } > "$R/etc/netboot-known.txt"
: > "$R/etc/fstab"
cp "$HERE/root/netboot-init" "$R/sbin/netboot-init"
mksquashfs "$R" "$OUT/root.sqfs" -noappend -comp xz -all-root -quiet > /dev/null
sha256sum "$R/etc/netboot-known.txt" | cut -d' ' -f1 > "$OUT/known.sha256"

# The initramfs: busybox, nbd-client and ltsconf with their libraries, the kernel modules.
I=$OUT/initramfs
mkdir -p "$I"/{bin,sbin,etc,dev,proc,sys,run,tmp,mnt}
cp "$BUSYBOX" "$I/bin/busybox"
ln -s busybox "$I/bin/sh"
mknod -m 600 "$I/dev/console" c 5 1
mknod -m 666 "$I/dev/null" c 1 3
copy_exe "$(command -v nbd-client)" "$I" sbin/nbd-client
copy_exe "$LTSCONF_BIN" "$I" bin/ltsconf
MODULES="virtio_pci virtio_net nbd squashfs overlay loop"
for m in $MODULES; do
  modprobe -S "$KVER" --show-depends "$m" | awk '$1 == "insmod" {print $2}'
done | sort -u | while read -r ko; do
  mkdir -p "$I$(dirname "$ko")"
  cp "$ko" "$I$ko"
done
cp /lib/modules/"$KVER"/modules.{order,builtin,builtin.modinfo} "$I/lib/modules/$KVER/"
depmod -b "$I" "$KVER"
echo "$MODULES" > "$I/etc/modules"
cp "$HERE/initramfs/init" "$I/init"
cp "$HERE/initramfs/udhcpc.script" "$I/etc/udhcpc.script"
(cd "$I" && find . -print0 | sort -z | cpio --null -o -H newc --quiet) | gzip -1 > "$OUT/tftp/boot/initrd.img"

cp /usr/share/OVMF/OVMF_VARS_4M.fd "$OUT/OVMF_VARS_4M.fd"
echo "farm built in $OUT: kernel $KVER, initrd $(stat -c %s "$OUT/tftp/boot/initrd.img") bytes," \
  "root $(stat -c %s "$OUT/root.sqfs") bytes, known sha256 $(cat "$OUT/known.sha256")"
