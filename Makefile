# ngx_http_mpns_module: build, test and helper targets (GNU make).
#
# The module is built against Debian's nginx 1.22.1 source (nginx-dev) with
# the same configure flags as the packaged binary, so the result loads into
# /usr/sbin/nginx.  Every target installs what it needs via util/install-deps.

SHELL := /bin/bash

NGINX_SRC ?= /usr/share/nginx/src
BUILD ?= build
CC ?= cc

MODULE_NAME := ngx_http_mpns_module
MODULE := $(BUILD)/$(MODULE_NAME).so
PROVE := prove -I t/lib
SOURCES := $(wildcard ngx_mpns_module/*.c ngx_mpns_module/*.h)

.PHONY: all module test test-valgrind check-style clang demo bench clean

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
	TEST_NGINX_MODULE=$(CURDIR)/$(MODULE) util/bench-state

clean:
	rm -rf build build-clang t/tmp
