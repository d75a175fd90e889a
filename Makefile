# ngx_http_mpns_module: build, test and helper targets (GNU make).
#
# The module is built against Debian's nginx 1.22.1 source (nginx-dev) with
# the same configure flags as the packaged binary, so the result loads into
# /usr/sbin/nginx.  Every target installs what it needs via util/install-deps.

SHELL := /bin/bash

NGINX_SRC ?= /usr/share/nginx/src
BUILD ?= build
CC ?= cc

# Release tarballs of other nginx versions (nginx-VERSION.tar.gz) for the
# compatibility matrix and the mainline leg of "make test"; the default is
# where CI's checkout finds them.  Nothing is installed: each nginx is
# built under build/matrix/ and the tests run that binary.
NGINX_SRC_DIR ?= $(abspath $(CURDIR)/../shared/nginx-src)
NGINX_MAINLINE ?= 1.31.4
NGINX_VERSIONS ?= system 1.26.3 1.30.4 $(NGINX_MAINLINE)
export NGINX_SRC_DIR

MODULE_NAME := ngx_http_mpns_module
MODULE := $(BUILD)/$(MODULE_NAME).so
TILE_MODULE := $(BUILD)/ngx_http_mpns_tile_module.so
PROVE := prove -I t/lib
SOURCES := $(wildcard ngx_mpns_module/*.c ngx_mpns_module/*.h)
DASHBOARD := ngx_mpns_module/ngx_http_mpns_dashboard.c

# nginx itself and the module from Debian's source, with ASan and UBSan
ASAN_BUILD ?= build-asan
ASAN_NGINX := $(ASAN_BUILD)/nginx
SANITIZE := -fsanitize=address,undefined -fno-omit-frame-pointer
# NGX_DEBUG_PALLOC: a malloc() per pool allocation, so ASan sees its bounds
ASAN_CC_OPT := $(SANITIZE) -U_FORTIFY_SOURCE -DNGX_DEBUG_PALLOC=1 \
               -fsanitize-ignorelist=$(CURDIR)/t/ubsan.ignorelist
# -Bsymbolic: a dynamic module's own ngx_modules (nginx finds it with
# dlsym()) is not nginx's, or ASan sizes nginx's array as the module's
ASAN_LD_OPT := $(SANITIZE) -Wl,-Bsymbolic

# libFuzzer targets: one file fuzz/fuzz_NAME.c and one line here each
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 30
# what "make test" gives each target: a short run over the seeds
FUZZ_TEST_SECONDS ?= 20
FUZZ_TARGETS := json
FUZZ_TARGETS += request
FUZZ_TARGETS += response
FUZZ_TARGETS += registry
FUZZ_TARGETS += outbox

.PHONY: all module test test-valgrind test-asan asan fuzz check-style clang \
        demo bench clean FORCE test-mainline test-matrix deb test-deb

all:
	util/install-deps build
	$(MAKE) module

# Configure once per build directory; again whenever `config` changes.
$(BUILD)/nginx/objs/Makefile: config
	rm -rf $(BUILD)/nginx
	mkdir -p $(BUILD)
	cp -r $(NGINX_SRC) $(BUILD)/nginx
	cd $(BUILD)/nginx && . ./conf_flags \
	    && ./configure "$${NGX_CONF_FLAGS[@]}" --with-cc=$(CC) \
	        --add-dynamic-module=$(CURDIR)

# The dashboard page of mpns_status, as a C string (checked in as well).
$(DASHBOARD): util/dashboard.html util/gen-dashboard
	util/gen-dashboard util/dashboard.html > $@.tmp
	mv -f $@.tmp $@

# Internal: the build itself, without the package check.
module: $(BUILD)/nginx/objs/Makefile $(DASHBOARD)
	$(MAKE) -C $(BUILD)/nginx -f objs/Makefile modules
	@# a new file, renamed into place: nginx processes that have the old
	@# one mapped must not see it change under them
	cp $(BUILD)/nginx/objs/$(MODULE_NAME).so $(MODULE).tmp
	mv -f $(MODULE).tmp $(MODULE)
	cp $(BUILD)/nginx/objs/$(notdir $(TILE_MODULE)) $(TILE_MODULE).tmp
	mv -f $(TILE_MODULE).tmp $(TILE_MODULE)

test:
	util/install-deps test
	$(MAKE) module
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) $(PROVE) -j2 t/
	$(MAKE) test-mainline
	$(MAKE) fuzz FUZZ_SECONDS=$(FUZZ_TEST_SECONDS)
	$(MAKE) test-deb

# The suite against mainline nginx built from its tarball (gcc, -O2);
# skipped, with a message, when the tarball is not there.
test-mainline:
	util/install-deps test
	util/test-matrix -m -c gcc -O 2 $(NGINX_MAINLINE)

# Every version with gcc and clang: the module at -O0, -O3 and -O2 under
# -Werror, the suite against the -O2 build.
test-matrix:
	util/install-deps matrix
	util/test-matrix -c "gcc clang" -O 0,3,2 $(NGINX_VERSIONS)

# The Debian packages (debian/) in build/deb/: built as a build daemon
# builds them, the suite run by the build, lintian clean; util/build-deb.
deb:
	util/install-deps deb
	util/build-deb

# The packages of make deb installed into this machine's nginx and their
# autopkgtests (debian/tests) run on it; the last leg of make test, as it
# installs (and then purges) packages.  Root; util/test-deb.
test-deb:
	util/install-deps deb
	util/test-deb

test-valgrind:
	util/install-deps valgrind
	$(MAKE) module
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) TEST_NGINX_VALGRIND=1 \
	    $(PROVE) -j1 t/

# Reports go to stderr, which nginx sends to error.log, where the
# harness fails a test file on them; see docs/hacking.md.
test-asan:
	util/install-deps asan
	$(MAKE) asan
	ASAN_OPTIONS=$${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_string_checks=1} \
	LSAN_OPTIONS=$${LSAN_OPTIONS:-suppressions=$(CURDIR)/t/lsan.supp:print_suppressions=0} \
	UBSAN_OPTIONS=$${UBSAN_OPTIONS:-print_stacktrace=1:report_error_type=1} \
	TEST_NGINX_BINARY=$(CURDIR)/$(ASAN_NGINX)/objs/nginx \
	TEST_NGINX_MODULE=$(CURDIR)/$(ASAN_NGINX)/objs/$(MODULE_NAME).so \
	    $(PROVE) -j2 t/

# configured again when the flags change
$(ASAN_BUILD)/flags: FORCE
	@mkdir -p $(ASAN_BUILD)
	@echo '$(ASAN_CC_OPT) / $(ASAN_LD_OPT)' | cmp -s - $@ \
	    || echo '$(ASAN_CC_OPT) / $(ASAN_LD_OPT)' > $@

$(ASAN_NGINX)/objs/Makefile: config util/nginx-source $(ASAN_BUILD)/flags \
                             t/ubsan.ignorelist
	util/nginx-source $(ASAN_BUILD) clang "$(ASAN_CC_OPT)" "$(ASAN_LD_OPT)"

# Internal: the sanitized nginx binary and module, without the package check.
asan: $(ASAN_NGINX)/objs/Makefile
	$(MAKE) -C $(ASAN_NGINX) -f objs/Makefile binary modules

# Each target for FUZZ_SECONDS from its seeds (fuzz/corpus/NAME) and what
# earlier runs found ($(FUZZ_BUILD)/corpus/NAME); a crash or a broken
# invariant fails, leaving its input in $(FUZZ_BUILD)/artifacts/.
fuzz:
	util/install-deps fuzz
	$(MAKE) asan
	fuzz/build $(ASAN_NGINX) $(FUZZ_BUILD) $(FUZZ_TARGETS)
	@mkdir -p $(FUZZ_BUILD)/artifacts
	@for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s, log in $(FUZZ_BUILD)/$$t.log"; \
	    if ! UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	            $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) \
	            -print_final_stats=1 \
	            -artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- \
	            $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t \
	            > $(FUZZ_BUILD)/$$t.log 2>&1; \
	    then \
	        tail -n 60 $(FUZZ_BUILD)/$$t.log; exit 1; \
	    fi; \
	    grep -E '^stat::(number_of_executed_units|new_units_added)' \
	        $(FUZZ_BUILD)/$$t.log; \
	done

check-style:
	util/install-deps style
	util/check-style $(SOURCES)

clang:
	util/install-deps clang
	$(MAKE) module BUILD=build-clang CC=clang

demo:
	util/install-deps test
	$(MAKE) module
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) \
	TEST_NGINX_TILE_MODULE=$(CURDIR)/$(TILE_MODULE) util/demo

bench:
	util/install-deps bench
	$(MAKE) module
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/bench
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/bench-fanout
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/bench-tls
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/bench-callgrind
	TEST_NGINX_TILE_MODULE=$(CURDIR)/$(TILE_MODULE) util/bench-tile
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/bench-state

clean:
	rm -rf build build-clang $(ASAN_BUILD) $(FUZZ_BUILD) t/tmp
