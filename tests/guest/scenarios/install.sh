# Scenario "install": `vigild install` from inside the guest (issue 13, test 5(b); InstallFromGuestBootTests). The
# disk is the USB image of `vigil image` on a virtio drive (the guest has virtio_blk, FAT and efivarfs as modules).
# First boot (the firmware started \EFI\BOOT\BOOTX64.EFI = vigil.efi): vigil.efi and vigil-hv.efi are taken off the ESP
# into /usr/lib/vigil/efi (where the .deb puts them), the ESP's copies and the removable-media path
# \EFI\BOOT\BOOTX64.EFI are deleted (so the next boot can only start Vigil through a boot entry), and
# `vigild install` writes EFI/vigil again and adds the entry through efivarfs. Second boot (no BOOTX64.EFI left):
# BootCurrent names the entry, and `vigild install` again has nothing to change.
GLOBAL=8be4df61-93ca-11d2-aa0d-00e098032b8c
OPTIONS='console=tty0 console=ttyS0,115200 initrd=\EFI\vigil\initrd.img'

# efivar_u16s NAME: a global variable's UINT16s (little-endian) as hex, comma-separated, after efivarfs' 4 bytes of
# attributes (read and dropped: efivarfs files cannot seek, so no od -j).
efivar_u16s() {
	od -An -v -tx1 "/sys/firmware/efi/efivars/$1-$GLOBAL" | tr -s ' \n' '  ' \
		| awk '{o = ""; for (i = 5; i < NF; i += 2) o = o (o ? "," : "") toupper($(i + 1) $i); print o}'
}
mark "install: BootCurrent=Boot$(efivar_u16s BootCurrent)"
vigild status 2>&1 | grep -E '^vigild: (boot|PROTECTION OFF)'

for m in virtio_ring virtio virtio_pci_legacy_dev virtio_pci_modern_dev virtio_pci virtio_blk fat vfat nls_cp437 nls_ascii; do
	out=$(insmod /lib/modules/$m.ko 2>&1) || { mark "install: insmod $m FAILED: $out"; return 1; }
done
# No udev: the ESP is partition 1 of the virtio disk; devtmpfs makes its node (give it a moment).
part=
for try in 1 2 3 4 5 6 7 8 9 10; do
	for p in /sys/block/vd*/vd*1; do [ -e "$p/partition" ] && [ -b "/dev/${p##*/}" ] && part=${p##*/}; done
	[ -n "$part" ] && break
	sleep 1
done
[ -n "$part" ] || { mark "install: no virtio disk partition: $(ls /sys/block)"; return 1; }
mkdir -p /esp
mount -t vfat "/dev/$part" /esp || { mark "install: mount /dev/$part FAILED"; return 1; }
mark "install: ESP /dev/$part mounted"

if [ -e /esp/EFI/BOOT/BOOTX64.EFI ]; then
	mkdir -p /usr/lib/vigil/efi
	cp /esp/EFI/BOOT/BOOTX64.EFI /usr/lib/vigil/efi/vigil.efi && cp /esp/EFI/vigil/vigil-hv.efi /usr/lib/vigil/efi/ \
		&& rm /esp/EFI/BOOT/BOOTX64.EFI /esp/EFI/vigil/vigil.efi /esp/EFI/vigil/vigil-hv.efi \
		|| { mark "install: preparing the ESP FAILED"; return 1; }
	mark "install: removable-media path and EFI/vigil's images removed"
	efi=/usr/lib/vigil/efi
else
	efi=/esp/EFI/vigil
fi
vigild install --esp /esp --efi $efi --loader '\EFI\vigil\linux.efi' --options "$OPTIONS" --log-port com2
mark "vigild install rc=$?"
mark "install: BootOrder=$(efivar_u16s BootOrder)"
umount /esp
mark "install: ESP unmounted rc=$?"
return 0
