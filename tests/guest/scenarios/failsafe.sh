# Scenario "failsafe": vigil.efi's fail-safe boot counter (hv/Abi/BootCounter.cs, issue 13). With
# vigil_failsafe=crash on the kernel command line (vigil.conf options) it powers off at once, before any
# agent runs, as a hang or a crash would; otherwise it shows the boot state and the counter, confirms the
# boot (`vigild confirm`; after an unprotected boot `vigild confirm --retry`) and shows the counter again.
if grep -qw vigil_failsafe=crash /proc/cmdline; then
	mark "failsafe: powering off before the agent confirms"
	return 0
fi
vigild status 2>&1 | grep -E '^vigild: (boot|PROTECTION OFF)'
if vigild confirm; then
	mark "vigild confirm rc=0"
else
	mark "vigild confirm rc=$?"
	vigild confirm --retry
	mark "vigild confirm --retry rc=$?"
fi
vigild status 2>&1 | grep '^vigild: boot counter'
# The guard on (as the initramfs script does; refused without a hypervisor), then the service's follower, as systemd starts it (JOURNAL_STREAM set: syslog priority prefixes), for a moment.
mkdir -p /run   # the test guest has no /run (a real system has it from the initramfs on)
vigild protect --lock
mark "vigild protect rc=$?"
JOURNAL_STREAM=8:1 timeout 3 vigild run --jsonl /run/vigild-events.jsonl
mark "vigild run rc=$?"
return 0
