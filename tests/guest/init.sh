#!/bin/sh
# /init of the Vigil test guest: PID 1, busybox ash, in the initramfs `vigil guest` builds.
#
# Everything it prints goes to the console (COM1). Lines the tests look for start with
# "VIGIL-GUEST: " so they cannot be mistaken for kernel messages. The scenario script
# (/scenario.sh, from tests/guest/scenarios/NAME.sh) is sourced into this shell, so it can use the
# helpers below and may `exec` to hand PID 1 over (the interactive shell does); `exit N` or falling
# off its end powers the guest off.
export PATH=/bin
export HOME=/
umask 022

mount -t proc proc /proc
mount -t sysfs sysfs /sys
# devtmpfs (CONFIG_DEVTMPFS) replaces the three nodes of the archive with the kernel's full /dev.
mount -t devtmpfs devtmpfs /dev 2>/dev/null
# efivarfs (a module in Debian's kernel): vigil.efi's boot state for vigild status (hv/Abi/BootState.cs).
insmod /lib/modules/efivarfs.ko 2>/dev/null
mount -t efivarfs efivarfs /sys/firmware/efi/efivars 2>/dev/null
exec </dev/console >/dev/console 2>&1

VIGIL_SCENARIO=$(cat /etc/vigil-scenario)

# mark TEXT...: a marker line for the tests.
mark() {
	echo "VIGIL-GUEST: $*"
}

# uptime_s: seconds since the kernel started, e.g. 3.21.
uptime_s() {
	cut -d' ' -f1 /proc/uptime
}

# load_module NAME: insmod /modules/NAME.ko and check its init ran. Every guest module prints
# "vigil-NAME: loaded" from its init function (see tests/guest/modules/README.md): insmod
# succeeding alone would not show the module's code ran. Returns non-zero on failure.
load_module() {
	local out
	if ! out=$(insmod "/modules/$1.ko" 2>&1); then
		mark "module $1 FAILED: insmod: $out"
		return 1
	fi
	if ! dmesg | grep -q "vigil-$1: loaded"; then
		mark "module $1 FAILED: no 'vigil-$1: loaded' in dmesg"
		return 1
	fi
	mark "module $1 loaded"
}

# has_cpu_flag FLAG: whether cpu0's /proc/cpuinfo flags list FLAG (svm, vmx, hypervisor, ...).
has_cpu_flag() {
	grep -m1 '^flags' /proc/cpuinfo | grep -qw "$1"
}

# Runs when the scenario ends (exit, error or end of file) but not after it exec'd away.
finish() {
	mark "scenario $VIGIL_SCENARIO finished rc=$1"
	mark "powering off"
	# busybox stty waits (tcsetattr TCSADRAIN) until the UART has sent everything; without it the
	# last lines can be lost. Not `sleep`: idle guest time is very slow in Bochs.
	stty -F /dev/console -tostop 2>/dev/null
	poweroff -f
}
trap 'finish $?' EXIT

mark "init started uptime=$(uptime_s)"
mark "kernel $(uname -r) cpus=$(nproc)"
mark "scenario $VIGIL_SCENARIO starting"
. /scenario.sh
