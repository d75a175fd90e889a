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
PROVE := prove -I t/lib
SOURCES := $(wildcard ngx_mpns_module/*.c ngx_mpns_module/*.h)

.PHONY: all module test test-valgrind check-style clang demo bench clean \
	test-mainline test-matrix deb

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

# Internal: the build itself, without the package check.
module: $(BUILD)/nginx/objs/Makefile
	$(MAKE) -C $(BUILD)/nginx -f objs/Makefile modules
	@# a new file, renamed into place: nginx processes that have the old
	@# one mapped must not see it change under them
	cp $(BUILD)/nginx/objs/$(MODULE_NAME).so $(MODULE).tmp
	mv -f $(MODULE).tmp $(MODULE)

test:
	util/install-deps test
	$(MAKE) module
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) $(PROVE) -j2 t/
	$(MAKE) test-mainline

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

test-valgrind:
	util/install-deps valgrind
	$(MAKE) module
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) TEST_NGINX_VALGRIND=1 \
	    $(PROVE) -j1 t/

check-style:
	util/install-deps style
	util/check-style $(SOURCES)

clang:
	util/install-deps clang
	$(MAKE) module BUILD=build-clang CC=clang

demo:
	util/install-deps test
	$(MAKE) module
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/demo

bench:
	util/install-deps bench
	$(MAKE) module
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/bench
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/bench-fanout
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/bench-tls

clean:
	rm -rf build build-clang t/tmp
