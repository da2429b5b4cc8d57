# Scenario "interactive" (`make run`): a shell on the guest console.
load_module hello
cat <<'BANNER'

  This is the Vigil test guest: Debian's kernel and busybox, started by Vigil.
  Modules built from tests/guest/modules are in /modules (insmod /modules/NAME.ko).
  Leave with:  poweroff -f

BANNER
# setsid + cttyhack give the shell a controlling terminal (the serial port behind /dev/console, which
# cannot be one itself), so Ctrl-C and job control work. exec: the shell becomes PID 1 and init's
# power-off never runs; the user powers off.
export PS1='vigil-guest:\w# '
exec setsid cttyhack sh
