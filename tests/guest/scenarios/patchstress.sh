# Scenario "patchstress": text patching under load, many times (issue 10: the intermittent SVM 2-CPU hang
# in the guard boot). `vigild protect --lock` unless the kernel command line says vigil.noprotect, then
# PATCH_ROUNDS rounds of: the sched_switch tracepoint's static key on and off (jump labels in __schedule,
# text_poke_bp) and kernel.sched_schedstats on and off, while every CPU schedules heavily (pipes).
# Lines: "VIGIL-GUEST: patchstress round N uptime=S" every 50 rounds, "patchstress done rounds=N".
PATCH_ROUNDS=${PATCH_ROUNDS:-100}

mount -t tracefs nodev /sys/kernel/tracing 2>/dev/null
mkdir -p /run && mount -t tmpfs -o mode=0755 tmpfs /run 2>/dev/null
mark "cpus online=$(cat /sys/devices/system/cpu/online) nproc=$(nproc)"
if grep -qw vigil.noprotect /proc/cmdline; then
	mark "patchstress unprotected"
else
	grep -i kernel /proc/iomem | sed 's/^/VIGIL-GUEST: iomem: /'
	grep -E ' (_stext|_etext|__start_rodata|__end_rodata|_sdata|__init_begin|__init_end|_edata|__bss_start|_end)$' /proc/kallsyms | sed 's/^/VIGIL-GUEST: kallsyms: /'
	vigild protect --lock 2>&1 | sed 's/^/VIGIL-GUEST: protect: /'
	vigild status 2>&1 | sed 's/^/VIGIL-GUEST: status: /'
	vigild events --json 2>&1 | head -20 | sed 's/^/VIGIL-GUEST: event: /'
fi
# Load: a pipe per CPU keeps both ends scheduling.
n=0
while [ $n -lt "$(nproc)" ]; do
	(yes | cat > /dev/null) &
	n=$((n + 1))
done
E=/sys/kernel/tracing/events/sched/sched_switch/enable
i=0
while [ $i -lt "$PATCH_ROUNDS" ]; do
	echo 1 > $E; echo 0 > $E
	echo 1 > /proc/sys/kernel/sched_schedstats; echo 0 > /proc/sys/kernel/sched_schedstats
	i=$((i + 1))
	[ $((i % 50)) = 0 ] && mark "patchstress round $i uptime=$(uptime_s)"
done
mark "patchstress done rounds=$i"
vigild status 2>&1 | grep -E 'verdicts|events|exits' | sed 's/^/VIGIL-GUEST: /'
vigild events --json 2>&1 | grep -v '"verdict": *"allow"' | tail -n 20 | sed 's/^/VIGIL-GUEST: event: /'
