# SPDX-License-Identifier: GPL-2.0-or-later
#
# Entry points.  Each target runs one script in scripts/; the scripts print
# one line saying what went wrong and what to do.  See README.md.
#
#   make              deps -> fetch -> assemble -> build
#   make check        make, then the tests and lint
#   make refresh      write build/qemu's changes back into the repository
#   make lint         checkpatch over the changes + "refresh changes nothing"
#   make series       out/series/*.patch from the series/ plan
#   make series-check apply the series on base, build each commit, test, lint
#   make demo         a real kernel TCP stream through RSC, with a report
#   make check-asan   the RSC tests under ASan/UBSan (own build dir)
#   make fuzz         the libFuzzer target (FUZZ_SECONDS=N, default 120)
#   make fuzz-coverage line/branch coverage of the engine by the fuzz corpus
#   make fuzz-device  QEMU's own virtio-net fuzz targets with RSC on
#                     (--enable-fuzzing, FUZZ_SECONDS=N per target)
#   make bench        side-by-side benchmark against upstream (bench/)
#   make microbench   the engine on plain memory against one memcpy
#   make bench-guest  a real Linux guest, rsc_gro off against on (bench/)
#   make clean        remove build/ and out/ (refuses to drop unsaved edits)
#   make distclean    clean, and the downloaded QEMU source cache too
#   make install      a full-featured QEMU (build/qemu/build-full) into PREFIX
#   make uninstall    remove what 'make install' installed into PREFIX
#   make install-check  boot the installed QEMU (q35, OVMF, VNC, TPM, RSC)
#   make deps-install the packages of 'make check' and 'make install'
#
# Variables: QEMU_SRC=/path/to/qemu (base on that checkout instead of the
# Debian source), RSC_CACHE=dir (cache, default ~/.cache/virtio-net-rsc),
# FORCE=1 (clean even with unsaved edits in build/qemu).
# PREFIX=dir (default /usr/local) and DESTDIR=dir for install/uninstall.

RSC_CACHE ?= $(HOME)/.cache/virtio-net-rsc
export RSC_CACHE QEMU_SRC FORCE FUZZ_SECONDS

TREE := build/qemu
SRC := $(RSC_CACHE)/src

.DEFAULT_GOAL := all
.PHONY: all deps fetch assemble build check refresh lint series clean distclean \
	demo check-asan fuzz fuzz-coverage fuzz-device bench microbench series-check \
	bench-guest
.PHONY: deps-install install-build install uninstall install-check
PREFIX ?= /usr/local
export PREFIX DESTDIR SERIES_AUTHOR
MAKEFLAGS += --no-print-directory
# A failed step must stop everything after it, even with -k or -j.
.NOTPARALLEL:

all: build

deps:
	@scripts/deps.sh

fetch: deps
	@scripts/fetch-base.sh $(SRC)

assemble: fetch
	@scripts/assemble.sh $(SRC) $(TREE)

build: assemble
	@scripts/build.sh $(TREE)

check: build
	@scripts/check.sh

refresh:
	@scripts/refresh.sh

lint:
	@scripts/lint.sh

series:
	@scripts/series.sh

series-check: series
	@scripts/series-check.sh

demo: build
	@scripts/demo.sh

check-asan: build
	@scripts/check-asan.sh

fuzz: build
	@scripts/fuzz.sh

fuzz-coverage: build
	@scripts/fuzz-coverage.sh

fuzz-device: assemble
	@scripts/fuzz-device.sh

bench: build
	@BENCH_COMMAND="make bench" scripts/bench.sh

microbench: build
	@scripts/microbench.sh

bench-guest: build
	@scripts/guest.sh bench

clean:
	@scripts/clean.sh

distclean:
	@scripts/clean.sh --dist

deps-install:
	@scripts/deps.sh --install

install-build: deps-install
	@$(MAKE) assemble
	@scripts/install.sh build

install:
	@scripts/install.sh preflight
	@$(MAKE) install-build
	@scripts/install.sh install

uninstall:
	@scripts/uninstall.sh

install-check: deps-install
	@scripts/install-check.sh
