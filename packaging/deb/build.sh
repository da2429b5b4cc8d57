#!/bin/sh
# Builds vigil_VERSION_amd64.deb without root (dpkg-deb --root-owner-group): vigild, its systemd unit, the
# initramfs-tools hook and script, the host tool `vigil` (a .NET program: /usr/lib/vigil/tool, run by
# /usr/bin/vigil through the dotnet runtime) and the EFI images under /usr/lib/vigil/efi (what
# `vigil install` copies to the ESP). Usage: packaging/deb/build.sh OUT-DIR (from the repository root, after
# `make build payload`).
set -eu
out=${1:?usage: packaging/deb/build.sh OUT-DIR}
version=${VIGIL_VERSION:-0.1.0}
config=${CONFIG:-release}
tool=out/artifacts/bin/Vigil.Tool/$config
for f in out/payload/vigild out/efi/vigil.efi out/efi/vigil-hv.efi "$tool/vigil.dll"; do
	[ -f "$f" ] || { echo "deb: missing $f: run 'make build payload' first" >&2; exit 1; }
done
command -v dpkg-deb >/dev/null || { echo "deb: dpkg-deb is missing (Debian package dpkg)" >&2; exit 1; }
stage=$(mktemp -d)
chmod 0755 "$stage"   # mktemp makes it 0700: it becomes the package's ./
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 out/payload/vigild "$stage/usr/sbin/vigild"
install -D -m 0644 packaging/systemd/vigild.service "$stage/usr/lib/systemd/system/vigild.service"
install -D -m 0755 packaging/initramfs-tools/hooks/vigild "$stage/usr/share/initramfs-tools/hooks/vigild"
install -D -m 0755 packaging/initramfs-tools/scripts/init-premount/vigild "$stage/usr/share/initramfs-tools/scripts/init-premount/vigild"
install -D -m 0644 out/efi/vigil.efi "$stage/usr/lib/vigil/efi/vigil.efi"
install -D -m 0644 out/efi/vigil-hv.efi "$stage/usr/lib/vigil/efi/vigil-hv.efi"
mkdir -p "$stage/usr/lib/vigil/tool"
cp -r "$tool"/. "$stage/usr/lib/vigil/tool/"
install -D -m 0755 /dev/stdin "$stage/usr/bin/vigil" <<'SH'
#!/bin/sh
exec dotnet /usr/lib/vigil/tool/vigil.dll "$@"
SH
install -D -m 0644 README.md "$stage/usr/share/doc/vigil/README.md"
mkdir -p "$stage/DEBIAN"
cat > "$stage/DEBIAN/control" <<CONTROL
Package: vigil
Version: $version
Architecture: amd64
Maintainer: Vigil developers <vigil@localhost>
Depends: libc6, initramfs-tools | dracut
Recommends: dotnet-runtime-10.0
Section: admin
Priority: optional
Description: thin security hypervisor guarding the Linux kernel
 vigil.efi starts before the OS, runs every CPU under a small hypervisor and chains the boot loader;
 vigild (in the initramfs and as vigild.service) asks it to guard the kernel and logs its verdicts.
 Install it on the ESP with: vigil install --esp /boot/efi (needs the dotnet runtime for /usr/bin/vigil).
CONTROL
cat > "$stage/DEBIAN/postinst" <<'SH'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
	command -v update-initramfs >/dev/null && update-initramfs -u || true
	if [ -d /run/systemd/system ]; then systemctl daemon-reload || true; systemctl enable vigild.service || true; fi
	echo "vigil: to boot through Vigil, run: vigil install --esp /boot/efi (vigil uninstall undoes it)"
fi
SH
cat > "$stage/DEBIAN/prerm" <<'SH'
#!/bin/sh
set -e
if [ -d /run/systemd/system ]; then systemctl disable --now vigild.service || true; fi
if [ "$1" = remove ] && [ -f /boot/efi/EFI/vigil/vigil.efi ]; then
	echo "vigil: vigil.efi stays on the ESP and in BootOrder: run 'vigil uninstall --esp /boot/efi' now (before the package goes) to take it out"
fi
SH
cat > "$stage/DEBIAN/postrm" <<'SH'
#!/bin/sh
set -e
if [ "$1" = remove ] || [ "$1" = purge ]; then
	command -v update-initramfs >/dev/null && update-initramfs -u || true
fi
SH
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"
mkdir -p "$out"
deb="$out/vigil_${version}_amd64.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null
echo "deb: $deb"
