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
return "${rc:-0}"
