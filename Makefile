# Vigil: the developer's verbs. build.ps1 offers the same ones.
#   make run    build everything (installing what is missing), boot QEMU (AMD SVM) with a guest shell
#   make test   unit tests + emulator boots in QEMU and Bochs
CONFIG ?= Release
DOTNET ?= dotnet
TOOL    = out/artifacts/bin/Vigil.Tool/$(shell echo $(CONFIG) | tr A-Z a-z)/vigil.dll
VIGIL   = $(DOTNET) $(TOOL)
TESTS   = tests/Vigil.Tests

.PHONY: all deps build generate check-generated payload guest image deb test unit-test emulator-test run run-bochs run-kvm bench bench-quick clean help

all: build

help:
	@sed -n 's/^#   //p' Makefile
	@echo "  make build | generate | payload | guest | image | deb | unit-test | emulator-test | run-bochs | run-kvm | bench | bench-quick | clean"

deps:
	@tools/install-deps.sh
	$(DOTNET) restore Vigil.slnx

# The default policy is compiled too (a policy that does not compile fails the build); every ESP the tools
# build carries it as \EFI\vigil\default.pol (EspLayout compiles it again from the same source).
build: deps
	$(DOTNET) build Vigil.slnx -c $(CONFIG) --no-restore
	$(VIGIL) policy compile policy/default.policy --out out/efi/default.pol

# Rewrites every generated source (stub bindings, listings); CI checks `git diff` is empty after it.
generate: deps
	$(DOTNET) build tools/Vigil.Tool -c $(CONFIG) --no-restore
	$(VIGIL) generate

check-generated: generate
	@if [ -n "$$(git status --porcelain)" ]; then git status --short; git diff; echo "generated files are stale or new: run 'make generate' and commit"; exit 1; fi

# vigild, the in-guest agent: a NativeAOT Linux program.
payload: build
	$(DOTNET) publish payload/Vigild -c $(CONFIG) -o out/payload --no-restore

# The test guest: Debian kernel + busybox initramfs per scenario + guest kernel modules + vigild.
guest: payload
	$(VIGIL) guest

image: build guest
	$(VIGIL) esp --target qemu --scenario smoke --out out/images/qemu-smoke.img
	$(VIGIL) esp --target bochs --scenario smoke --out out/images/bochs-smoke.img
	$(VIGIL) image --out out/images/vigil-usb.img

# The Debian package: vigild, vigild.service, the initramfs hook, the `vigil` tool, the EFI images (no root).
deb: build payload
	CONFIG=$(shell echo $(CONFIG) | tr A-Z a-z) packaging/deb/build.sh out/deb

unit-test: build
	$(DOTNET) test $(TESTS) -c $(CONFIG) --no-build --filter "Category!=Emulator" --logger "console;verbosity=normal"

emulator-test: build guest
	$(DOTNET) test $(TESTS) -c $(CONFIG) --no-build --filter "Category=Emulator" --logger "console;verbosity=normal"

test: build guest
	@rm -f out/test-results/timings.txt
	$(DOTNET) test $(TESTS) -c $(CONFIG) --no-build --logger "console;verbosity=normal"
	@echo "--- emulator timings"; cat out/test-results/timings.txt 2>/dev/null || true

run: build guest
	$(VIGIL) run --emulator qemu

run-bochs: build guest
	$(VIGIL) run --emulator bochs

run-kvm: build guest
	$(VIGIL) run --emulator kvm

# Vigil on vs off in one run (issue 12; docs/benchmarks.md): idle exits per reason, exit round trips
# (QEMU -icount: instructions), a guest workload, boot-to-init, sizes, memory. Nothing is asserted.
# `make bench` is the full run on QEMU (about 5 minutes here; rewrites docs/benchmarks.md and its chart);
# `make bench-quick` is CI's (a few minutes; out/bench/ only). Bochs is left out (`vigil bench` without
# --no-bochs adds it): an idle Bochs guest's clock crawls, a 60 s idle period takes far more than 12 minutes of
# wall time; its idle exits are measured with the idle scenario instead (vigil.idle=S on the kernel command line).
bench: build guest
	$(VIGIL) bench --no-bochs

bench-quick: build guest
	$(VIGIL) bench --quick

clean:
	rm -rf out/artifacts out/efi out/tests out/run out/images out/test-results out/deb
