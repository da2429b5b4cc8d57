# Scenario "protect": the kernel guard's control plane. vigild protects and locks the running kernel
# (the hypervisor finds its text, rodata, sys_call_table and IDT itself; kallsyms only gives hints),
# status shows what is guarded, a second protect and lock are refused after Lock, and the guest keeps
# running: a module loads and the CPUs keep scheduling. The kernel's own text patching (static keys,
# ftrace, ...) is the benign suite's: it needs the guarded-write handler. Sourced by /init
# (tests/guest/init.sh).
mkdir -p /run
rc=0
vigild status
mark "vigild status before rc=$?"
vigild protect --lock
protect_rc=$?
mark "vigild protect rc=$protect_rc"
[ "$protect_rc" = 0 ] || rc=1
vigild status
status_rc=$?
mark "vigild status after rc=$status_rc"
mark "secret mode $(stat -c %a /run/vigild.secret 2>/dev/null)"
vigild protect
mark "vigild protect after lock rc=$? (1 expected: not permitted)"
vigild lock
mark "vigild lock after lock rc=$? (1 expected: not permitted)"
vigild events --json | sed 's/^/VIGIL-EVENT: /'
mark "vigild events rc=$?"
load_module hello || rc=1
i=0
while [ $i -lt 50 ]; do cat /proc/loadavg > /dev/null; i=$((i + 1)); done
mark "guest alive after protect uptime=$(uptime_s)"
vigild status | grep -E 'protection|verdicts|events'
mark "vigild status end rc=$?"
exit $rc
