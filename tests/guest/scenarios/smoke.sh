# Scenario "smoke": the guest boots, a guest module loads, and the CPU is what the test expects.
# Sourced by /init (tests/guest/init.sh); its exit status is the scenario's rc.
load_module hello || rc=1
mark "cpus online=$(cat /sys/devices/system/cpu/online) nproc=$(nproc) processors=$(grep -c '^processor' /proc/cpuinfo)"
for flag in svm vmx hypervisor; do
	if has_cpu_flag "$flag"; then mark "cpu flag $flag yes"; else mark "cpu flag $flag no"; fi
done
return "${rc:-0}"
