# Scenario "smoke": the guest boots, guest modules load, the CPU is what the test expects (CPUID
# features that work: single-stepping over CPUID, AVX), and what the hypervisor shows of itself: its
# CPUID leaf on every CPU, `vigild status`, and that its memory cannot be read. Sourced by /init
# (tests/guest/init.sh); its exit status is the scenario's rc.
load_module hello || rc=1
mark "cpus online=$(cat /sys/devices/system/cpu/online) nproc=$(nproc) processors=$(grep -c '^processor' /proc/cpuinfo)"
for flag in svm vmx hypervisor xsave avx; do
	if has_cpu_flag "$flag"; then mark "cpu flag $flag yes"; else mark "cpu flag $flag no"; fi
done

# How the kernel set up the FPU (XSAVE features, or why it turned XSAVE off).
dmesg | grep -E 'x86/fpu|xsave|XSAVE' | sed 's/^\[[^]]*\] /VIGIL-GUEST: fpu: /'

# Guest programs (tests/guest/programs): a debugger single-steps a child over CPUID (the hypervisor emulates
# CPUID and must raise the single-step trap itself), and AVX the way user space decides it may use it
# (CPUID.OSXSAVE, XGETBV, then a VEX instruction). Their lines are marked; rc 0 = ok.
run_program() {
	local out rc
	out=$("$@" 2>&1)
	rc=$?
	echo "$out" | sed 's/^/VIGIL-GUEST: /'
	mark "$1 rc=$rc"
}
run_program singlestep
run_program avx

vigild cpuid
mark "vigild cpuid rc=$?"
status=$(vigild status 2>&1)
status_rc=$?
echo "$status"
mark "vigild status rc=$status_rc"
# "... KiB reserved at 0xADDR": read the hypervisor's pages from the guest kernel.
base=$(echo "$status" | sed -n 's/.* reserved at \(0x[0-9A-Fa-f]*\).*/\1/p' | head -n1)
if [ -n "$base" ]; then
	# The module's printk would reach the serial console from whichever CPU runs it, in the middle of this
	# script's lines (seen with 4 CPUs): keep it off the console; its lines are read back from dmesg below.
	printk_levels=$(cat /proc/sys/kernel/printk)
	echo 1 > /proc/sys/kernel/printk
	if insmod /modules/hvpeek.ko base="$base" pages=64 2>/dev/null; then
		dmesg | grep 'vigil-hvpeek:' | sed 's/^\[[^]]*\] //'
		mark "hvpeek $(dmesg | sed -n 's/.*vigil-hvpeek: verdict //p' | tail -n1)"
	else
		mark "hvpeek FAILED: insmod"
	fi
	echo "$printk_levels" > /proc/sys/kernel/printk
else
	mark "hvpeek skipped: no hypervisor reservation reported"
fi

# Paging depth: Linux keeps the la57 flag only when it runs 5-level paging, and then its vmalloc area lies
# below 0xffff800000000000 (57-bit kernel addresses; 4-level kernel addresses start at that). The address is
# read from /proc/vmallocinfo, which shows real addresses to root only with kptr_restrict=1.
kptr=$(cat /proc/sys/kernel/kptr_restrict)
echo 1 > /proc/sys/kernel/kptr_restrict
va=$(sed -n 's/^0x\([0-9a-f]*\)-.*/\1/p' /proc/vmallocinfo | head -n1)
echo "$kptr" > /proc/sys/kernel/kptr_restrict
case "$va" in
ffff[89a-f]???????????) levels=4 ;;
ff??????????????) levels=5 ;;
*) levels=unknown ;;
esac
if has_cpu_flag la57; then la57=yes; else la57=no; fi
mark "paging levels=$levels la57=$la57 vmalloc=0x$va $(grep -m1 '^address sizes' /proc/cpuinfo | tr -s ' \t' ' ')"

# Device memory: an ivshmem-plain device (1af4:1110, the emulator tests add one with -device
# ivshmem-plain) has its shared memory behind BAR 2, a 64-bit BAR the firmware may place far above RAM.
# The guest writes and reads it back through /dev/mem at both ends of the BAR.
for dev in /sys/bus/pci/devices/*; do
	[ "$(cat "$dev/vendor")" = 0x1af4 ] && [ "$(cat "$dev/device")" = 0x1110 ] || continue
	set -- $(sed -n 3p "$dev/resource")   # BAR 2: start end flags
	bar=$1
	last=$(printf '0x%x' $(($2 - 7)))
	echo 1 > "$dev/enable"                # memory decoding on (no driver binds the device)
	ok=0
	for at in "$bar" "$last"; do
		devmem "$at" 64 0x5A6B7C8D1E2F3041
		devmem "$at" 32 0x13579BDF
		[ "$(devmem "$at" 64)" = 0x5A6B7C8D13579BDF ] && ok=$((ok + 1))
	done
	mark "bar ${dev##*/} $bar-$2 round-trip $ok of 2"
done

# CPU hotplug, with 2 CPUs or more: Linux takes CPU 1 offline (it halts in its play_dead loop, where no
# exit comes) and brings it back with INIT-SIPI-SIPI. The hypervisor must get the halted CPU out of the
# guest (an NMI kick), let it wait in the host and restart it at the start-up vector. Then work must run
# on it again: a process pinned to it reads its own CPU from /proc/self/stat (field 39), and while a
# loop pinned to it spins (an idle CPU stops its tick), its local timer interrupts (LOC in
# /proc/interrupts) must grow.
if [ "$(nproc)" -ge 2 ] && [ -w /sys/devices/system/cpu/cpu1/online ]; then
	echo 0 > /sys/devices/system/cpu/cpu1/online
	off=$(cat /sys/devices/system/cpu/online)
	echo 1 > /sys/devices/system/cpu/cpu1/online
	on=$(cat /sys/devices/system/cpu/online)
	ran=$(taskset -c 1 cut -d' ' -f39 /proc/self/stat 2>&1)
	loc_before=$(awk '$1 == "LOC:" { print $3 }' /proc/interrupts)
	taskset -c 1 sh -c 'while :; do :; done' 2>/dev/null &
	spinner=$!
	i=0
	while [ "$i" -lt 200 ]; do
		loc_after=$(awk '$1 == "LOC:" { print $3 }' /proc/interrupts)
		[ "$loc_after" -gt "$loc_before" ] 2>/dev/null && break
		i=$((i + 1))
	done
	kill "$spinner" 2>/dev/null
	wait "$spinner" 2>/dev/null
	if [ "$loc_after" -gt "$loc_before" ] 2>/dev/null; then ticks=growing; else ticks="stuck at $loc_after"; fi
	mark "hotplug cpu1 off=$off on=$on ran=$ran ticks=$ticks"

	# An NMI for the guest: sysrq 'l' has every other CPU print its backtrace from its NMI handler (NMI
	# IPIs, nmi_trigger_cpumask_backtrace; the sender waits for them). Under Vigil each NMI exits (VMX NMI
	# exiting, SVM NMI intercept) and must be injected back into the guest. Kept off the console.
	printk_levels=$(cat /proc/sys/kernel/printk)
	echo 1 > /proc/sys/kernel/printk
	echo l > /proc/sysrq-trigger
	echo "$printk_levels" > /proc/sys/kernel/printk
	mark "nmi backtraces from other cpus=$(dmesg | grep -c 'NMI backtrace for cpu [1-9]')"
fi
return "${rc:-0}"
