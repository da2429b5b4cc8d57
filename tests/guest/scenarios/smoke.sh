# Scenario "smoke": the guest boots, guest modules load, the CPU is what the test expects, and
# what the hypervisor shows of itself: its CPUID leaf on every CPU, `vigild status`, and that its
# memory cannot be read. Sourced by /init (tests/guest/init.sh); its exit status is the scenario's rc.
load_module hello || rc=1
mark "cpus online=$(cat /sys/devices/system/cpu/online) nproc=$(nproc) processors=$(grep -c '^processor' /proc/cpuinfo)"
for flag in svm vmx hypervisor; do
	if has_cpu_flag "$flag"; then mark "cpu flag $flag yes"; else mark "cpu flag $flag no"; fi
done

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
