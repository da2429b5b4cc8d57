#!/bin/sh
# benign: the kernel guard's benign suite (issue 10 item 8), /bin/benign in the guest. What the kernel
# legitimately does to its own code and registers at run time, each checked by its EFFECT, not only by
# the command's exit status:
#   static-key   sysctl kernel.sched_schedstats=1 then 0 (jump labels in the scheduler, text_poke_bp);
#                the value reads back and /proc/self/sched shows the schedstat fields only while on
#   ftrace       the function tracer on a few functions (set_ftrace_filter), trace entries appear, off
#   kprobe       a kprobe through kprobe_events on do_sys_openat2, hits in kprobe_profile, removed
#   module       insmod + rmmod of the hello module (its load and unload messages)
#   patch-under-load  a tracepoint's static key on and off 30 times while every CPU schedules (skipped with 1 CPU)
#   cpu-hotplug  CPU 1 offline and online again, then a process runs on it (skipped with 1 CPU)
#   bpf          socket filters loaded with bpf(BPF_PROG_LOAD), JIT-compiled, attached with
#                SO_ATTACH_BPF and filtering (tests/guest/programs/bpfsock.c)
# One line per check:  VIGIL-BENIGN: name=<name> ok=yes|no <details>
# Exit status: the number of failed checks.
failed=0

benign() {
	echo "VIGIL-BENIGN: name=$1 ok=$2 $3"
	[ "$2" = yes ] || failed=$((failed + 1))
}

# tracefs (CONFIG_FTRACE): /sys/kernel/tracing, or debugfs's tracing folder.
T=/sys/kernel/tracing
if [ ! -e "$T/trace" ]; then
	mount -t tracefs nodev "$T" 2>/dev/null
fi
if [ ! -e "$T/trace" ]; then
	mount -t debugfs nodev /sys/kernel/debug 2>/dev/null
	T=/sys/kernel/debug/tracing
fi

# --- static key: kernel.sched_schedstats flips the sched_schedstats key (its jump labels are patched).
schedstat_fields() {
	grep -c -E '^(stats\.)?(wait_start|sum_sleep_runtime|sum_block_runtime) ' /proc/self/sched 2>/dev/null
}
was=$(sysctl -n kernel.sched_schedstats 2>&1)
sysctl -w kernel.sched_schedstats=1 >/dev/null 2>&1
on=$(sysctl -n kernel.sched_schedstats 2>&1)
fields_on=$(schedstat_fields)
sysctl -w kernel.sched_schedstats=0 >/dev/null 2>&1
off=$(sysctl -n kernel.sched_schedstats 2>&1)
fields_off=$(schedstat_fields)
if [ "$on" = 1 ] && [ "$off" = 0 ] && [ "$fields_on" -gt 0 ] && [ "$fields_off" = 0 ]; then ok=yes; else ok=no; fi
benign static-key $ok "kernel.sched_schedstats $was -> 1 (read back $on, /proc/self/sched schedstat lines $fields_on) -> 0 (read back $off, lines $fields_off)"

# --- ftrace: the function tracer on a set of functions, entries in the trace, then off.
if [ -w "$T/current_tracer" ]; then
	functions="vfs_read vfs_write do_sys_openat2"
	echo 0 > "$T/tracing_on"
	echo > "$T/trace"
	echo "$functions" > "$T/set_ftrace_filter" 2>/dev/null
	filtered=$(grep -c . "$T/set_ftrace_filter")
	echo function > "$T/current_tracer"
	echo 1 > "$T/tracing_on"
	cat /proc/version /proc/cmdline >/dev/null
	ls / >/dev/null
	echo 0 > "$T/tracing_on"
	entries=$(grep -c -E ' (vfs_read|vfs_write|do_sys_openat2) <-' "$T/trace")
	echo nop > "$T/current_tracer"
	echo > "$T/set_ftrace_filter"
	echo > "$T/trace"
	echo 1 > "$T/tracing_on"
	tracer=$(cat "$T/current_tracer")
	if [ "$filtered" -ge 3 ] && [ "$entries" -gt 0 ] && [ "$tracer" = nop ]; then ok=yes; else ok=no; fi
	benign ftrace $ok "function tracer on $filtered functions ($functions): $entries trace entries; tracer now $tracer"
else
	benign ftrace no "no tracefs at $T"
fi

# --- kprobe: kprobe_events on a function every open hits, its hits, then removed.
if [ -w "$T/kprobe_events" ]; then
	echo 'p:vigil_openat do_sys_openat2' > "$T/kprobe_events" 2>/dev/null
	defined=$(grep -c vigil_openat "$T/kprobe_events")
	echo 1 > "$T/events/kprobes/vigil_openat/enable" 2>/dev/null
	cat /proc/version /proc/cmdline /proc/uptime >/dev/null
	hits=$(awk '$1 == "vigil_openat" { print $2 }' "$T/kprobe_profile")
	echo 0 > "$T/events/kprobes/vigil_openat/enable" 2>/dev/null
	echo '-:vigil_openat' >> "$T/kprobe_events" 2>/dev/null
	left=$(grep -c vigil_openat "$T/kprobe_events")
	if [ "$defined" = 1 ] && [ "${hits:-0}" -gt 0 ] 2>/dev/null && [ "$left" = 0 ]; then ok=yes; else ok=no; fi
	benign kprobe $ok "p:vigil_openat do_sys_openat2: defined $defined, ${hits:-no} hits, removed: $([ "$left" = 0 ] && echo yes || echo no)"
else
	benign kprobe no "no kprobe_events at $T"
fi

# --- module: load and unload.
loads=$(dmesg | grep -c 'vigil-hello: loaded')
unloads=$(dmesg | grep -c 'vigil-hello: unloaded')
insmod_out=$(insmod /modules/hello.ko 2>&1)
insmod_rc=$?
listed=$(grep -c '^hello ' /proc/modules)
rmmod_out=$(rmmod hello 2>&1)
rmmod_rc=$?
still=$(grep -c '^hello ' /proc/modules)
loads=$(($(dmesg | grep -c 'vigil-hello: loaded') - loads))
unloads=$(($(dmesg | grep -c 'vigil-hello: unloaded') - unloads))
if [ $insmod_rc = 0 ] && [ $rmmod_rc = 0 ] && [ "$loads" = 1 ] && [ "$unloads" = 1 ] && [ "$listed" = 1 ] && [ "$still" = 0 ]; then ok=yes; else ok=no; fi
benign module $ok "insmod hello rc=$insmod_rc (listed $listed, init ran $loads) rmmod rc=$rmmod_rc (listed $still, exit ran $unloads) $insmod_out $rmmod_out"

# --- patching under load: the sched_switch tracepoint's key (jump labels in __schedule, text_poke_bp)
# on and off PATCH_ROUNDS times while every CPU schedules (a pipe per CPU). With 2 CPUs this is where
# a CPU of QEMU's TCG kept a stale translation of text_poke_bp's INT3 and hung in exc_int3
# (hv/Core/Vcpu/BreakpointExit). Checked: every round reads back on and off, sched_switch entries in the
# trace while on, the load still running at the end.
PATCH_ROUNDS=30
E="$T/events/sched/sched_switch/enable"
if [ "$(nproc)" -lt 2 ]; then
	benign patch-under-load yes "skipped: $(nproc) CPU (the race needs a second CPU)"
elif [ -w "$E" ]; then
	loads=""
	n=0
	while [ $n -lt "$(nproc)" ]; do
		yes | cat > /dev/null &
		loads="$loads $!"
		n=$((n + 1))
	done
	echo > "$T/trace"
	bad=0
	i=0
	while [ $i -lt $PATCH_ROUNDS ]; do
		echo 1 > "$E"; [ "$(cat "$E")" = 1 ] || bad=$((bad + 1))
		echo 0 > "$E"; [ "$(cat "$E")" = 0 ] || bad=$((bad + 1))
		i=$((i + 1))
	done
	switches=$(grep -c 'sched_switch:' "$T/trace")
	alive=0
	for p in $loads; do kill -0 "$p" 2>/dev/null && alive=$((alive + 1)); done
	kill $loads 2>/dev/null
	echo > "$T/trace"
	if [ $bad = 0 ] && [ "$switches" -gt 0 ] && [ $alive = "$(nproc)" ]; then ok=yes; else ok=no; fi
	benign patch-under-load $ok "sched_switch tracepoint on/off $i rounds under load on $(nproc) CPUs: $bad wrong read-backs, $switches sched_switch entries, $alive of $(nproc) load pipes alive"
else
	benign patch-under-load no "no $E"
fi

# --- CPU hotplug: CPU 1 offline and back, then work runs on it.
if [ "$(nproc)" -ge 2 ] && [ -w /sys/devices/system/cpu/cpu1/online ]; then
	echo 0 > /sys/devices/system/cpu/cpu1/online
	off=$(cat /sys/devices/system/cpu/online)
	echo 1 > /sys/devices/system/cpu/cpu1/online
	on=$(cat /sys/devices/system/cpu/online)
	ran=$(taskset -c 1 cut -d' ' -f39 /proc/self/stat 2>&1)
	if [ "$off" = 0 ] && [ "$ran" = 1 ] && [ "$(cat /sys/devices/system/cpu/cpu1/online)" = 1 ]; then ok=yes; else ok=no; fi
	benign cpu-hotplug $ok "cpu1 offline: online=$off; online again: online=$on; a process pinned to cpu1 ran on cpu $ran"
else
	benign cpu-hotplug yes "skipped: $(nproc) CPU (no CPU 1 to take offline)"
fi

# --- BPF: socket filters, JIT-compiled, attached and filtering (prints its own VIGIL-BENIGN line).
if command -v bpfsock >/dev/null; then
	bpfsock || failed=$((failed + 1))
else
	benign bpf no "bpfsock is missing from /bin"
fi

exit $failed
