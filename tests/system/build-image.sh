#!/bin/bash
# Build the system test's Debian 12 amd64 guest from Debian's packages with mmdebstrap:
# a bootable root file system (ext4 image, booted with QEMU's -kernel/-initrd), and in it
# a local apt repository holding the packages systemd/install.sh asks for, so the script can
# run unchanged inside a VM that has no network (apt's download cache, handed in).
#
# usage: build-image.sh OUTDIR PACKAGE...   (PACKAGE: what install.sh's apt-get wants)
# OUTDIR gets rootfs.img, vmlinuz, initrd.img; a failed build leaves no partial output.
set -euo pipefail
out=$1
shift
work=$(mktemp -d "${out%/}.build.XXXXXX")
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir "$root"

# The guest: what Raspberry Pi OS Lite brings that the appliance's units rely on (systemd,
# udev, networkd for network-online.target, timesyncd), the guest agent the test talks to,
# and nothing of the appliance (install.sh brings that).
# Speed only, for a throwaway disk under software emulation (a fresh install.sh took over
# 9 minutes in the guest): dpkg does not fsync each file, skips documentation,
# manual pages and translations, and man-db does not rebuild its index after every install.
# None of it changes what install.sh does or what the appliance gets.
base=linux-image-amd64,systemd-sysv,udev,dbus,kmod,procps,iproute2,apt-utils,sqlite3,
base+=qemu-guest-agent,systemd-timesyncd,libpam-systemd,ca-certificates,libdrm-tests

mmdebstrap --variant=minbase --include="$base" \
    --components=main \
    --customize-hook='echo trk-lobby-1 > "$1/etc/hostname"' \
    --customize-hook='printf "/dev/vda / ext4 rw,errors=remount-ro 0 1\n" > "$1/etc/fstab"' \
    --customize-hook='mkdir -p "$1/etc/systemd/network" && printf "[Match]\nName=en*\n\n[Network]\nDHCP=ipv4\n" > "$1/etc/systemd/network/20-wired.network"' \
    --customize-hook='chroot "$1" systemctl enable systemd-networkd.service' \
    --customize-hook='chroot "$1" passwd -d root' \
    --customize-hook='printf "%s\n" force-unsafe-io "path-exclude /usr/share/doc/*" "path-exclude /usr/share/man/*" "path-exclude /usr/share/locale/*" > "$1/etc/dpkg/dpkg.cfg.d/90-antrean-test-vm"' \
    --customize-hook='echo "man-db man-db/auto-update boolean false" | chroot "$1" debconf-set-selections' \
    --customize-hook="mkdir -p \"\$1/srv/antrean-apt\" && chroot \"\$1\" apt-get install -y -qq --download-only --no-install-recommends -o Dir::Cache::archives=/srv/antrean-apt $*" \
    --customize-hook='rm -f "$1"/srv/antrean-apt/lock; rm -rf "$1"/srv/antrean-apt/partial' \
    --customize-hook='cd "$1/srv/antrean-apt" && chroot "$1" sh -c "cd /srv/antrean-apt && apt-ftparchive packages . > Packages"' \
    --customize-hook='rm -f "$1/etc/apt/sources.list"; rm -f "$1"/etc/apt/sources.list.d/*; echo "deb [trusted=yes] file:/srv/antrean-apt ./" > "$1/etc/apt/sources.list.d/antrean-local.list"' \
    bookworm "$root" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main"

cp "$(ls "$root"/boot/vmlinuz-* | sort -V | tail -1)" "$work/vmlinuz"
cp "$(ls "$root"/boot/initrd.img-* | sort -V | tail -1)" "$work/initrd.img"
mke2fs -q -t ext4 -L antrean-root -d "$root" "$work/rootfs.img" 4G
rm -rf "$out"
mkdir -p "$out"
mv "$work/vmlinuz" "$work/initrd.img" "$work/rootfs.img" "$out/"
