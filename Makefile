# reqid - build, test, demo and benchmark.
#
#   make          build/libreqid.so and the test programs
#   make test     install missing Debian packages, then unit tests (plain and
#                 under ASan+UBSan) and integration tests on bundled servers
#   make demo     run the bundled legacy-style server under the shim
#   make bench    cost of the shim per call, as ratios to the unshimmed run

CC      ?= cc
CFLAGS  ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Werror
BUILD   := build

# Pure logic: no interposition, unit-tested and fuzzable as plain functions.
PURE_SRCS := shim/frame_rule.c shim/config.c shim/request_id.c shim/traceparent.c shim/trace_context.c shim/tracestate.c \
             shim/http_parser.c shim/http_response.c shim/line_format.c shim/path_glob.c \
             shim/audit_record.c shim/next_symbol.c shim/thread_found.c
# Interposition glue and the state it keeps.
GLUE_SRCS := shim/shim_init.c shim/request_table.c shim/conn_table.c shim/head_store.c \
             shim/thread_ctx.c shim/log_order.c shim/log_writer.c shim/log_output.c shim/insert_output.c \
             shim/conn_output.c shim/client_output.c shim/tls_bind.c \
             shim/call_chain.c shim/thread_count.c shim/epoll_map.c shim/epoll_queue.c shim/event_batch.c \
             shim/hook_net.c shim/hook_io.c shim/hook_ssl.c shim/hook_fd.c shim/hook_wait.c shim/hook_process.c shim/hook_syslog.c shim/hook_stdio.c shim/hook_signal.c \
             shim/hook_loader.c shim/attach.c shim/resident_return.c shim/got_patch.c shim/audit_log.c
SHIM_HDRS := $(wildcard shim/*.h)

UNIT_TESTS := $(patsubst tests/unit/%.c,%,$(wildcard tests/unit/test_*.c))
SERVERS    := $(patsubst tests/servers/%.c,%,$(wildcard tests/servers/*.c))

# Debian packages the build, the tests and the benchmarks use.
DEB_PACKAGES := gcc make libc6-dev libunwind-dev libxxhash-dev libcmocka-dev \
                python3 valgrind clang libclang-rt-14-dev rsyslog \
                nginx lighttpd lighttpd-mod-openssl apache2 busybox curl libuv1-dev libevent-dev wrk \
                python3-aiohttp openssl golang-go

FUZZERS := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_SECONDS ?= 300

.PHONY: soak soak-quick unit-tsan fuzz-long install uninstall all deps test unit unit-asan integration realtest fuzz fuzz-smoke servers demo bench bench-quick clean

all: $(BUILD)/libreqid.so $(BUILD)/reqid-inject servers

# make install PREFIX=/usr/local DESTDIR=: the command, the library, the
# injector and the helper scripts (PREFIX/lib/reqid), the man page.
PREFIX ?= /usr/local
LIBDIR := $(DESTDIR)$(PREFIX)/lib/reqid
HELPERS := scripts/reqid_show.py scripts/reqid_attach.py scripts/reqid_audit.py

install: $(BUILD)/libreqid.so $(BUILD)/reqid-inject
	install -d $(DESTDIR)$(PREFIX)/bin $(LIBDIR) $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 scripts/reqid $(DESTDIR)$(PREFIX)/bin/reqid
	install -m 755 $(BUILD)/libreqid.so $(BUILD)/reqid-inject $(LIBDIR)
	install -m 644 $(HELPERS) $(LIBDIR)
	install -m 644 scripts/reqid.1 $(DESTDIR)$(PREFIX)/share/man/man1/reqid.1

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/reqid $(DESTDIR)$(PREFIX)/share/man/man1/reqid.1
	rm -f $(LIBDIR)/libreqid.so $(LIBDIR)/reqid-inject $(addprefix $(LIBDIR)/,$(notdir $(HELPERS)))
	rmdir $(LIBDIR) 2>/dev/null || true

deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null || exit 1; \
	  else \
	    echo "reqid needs these Debian packages:$$missing"; \
	    echo "run as root: apt-get update && apt-get install$$missing"; exit 1; \
	  fi; \
	fi

# XXH3 is compiled in (no libxxhash.so to load); --sort-section=name lays the
# FORK_HOT globals (shim/fork_hot.h) side by side. -nostartfiles: none of
# the C runtime's start files (crti, crtbeginS, crtendS), whose code is for
# C++ and for unloading: the library has no DT_INIT and no DT_FINI, the
# loader no _init or _fini to call, no frame_dummy at start nor
# __do_global_dtors_aux (__cxa_finalize) at exit, and no imports of
# __gmon_start__, __cxa_finalize and the two _ITM_ functions, weak names the
# loader looked for in every object at every start (some 3,000 instructions
# of a process's start and exit). shim_init.c defines __dso_handle, which
# crtbeginS did. -z nodelete: the library is never unloaded (dlclose of it
# does nothing): its fork handlers, once registered, stay valid, as
# __cxa_finalize unregistering them at unload made them before, and the
# GOT entries attach patched keep pointing at its hooks.
# shim/layout.ld puts what an event-loop server runs per connection in one
# 64 KiB window and a fork child's code in the next, the constants in RELRO
# and the FORK_HOT globals on the page of .data; the windows' 64 KiB
# alignment makes the loader put the library at a 64 KiB boundary, so that
# each window is one in the process too; -z noseparate-code and
# -z max-page-size=0x1000 make two segments (code with the headers, data)
# with no gap between them: four mappings, not nine, for every fork to copy;
# -fno-plt calls libc through the GOT (a child does not map the PLT's
# window). -Bsymbolic-functions binds the library's calls to its own exports
# when it is linked, as -Bsymbolic did, without DT_SYMBOLIC, which made the
# loader search the library itself before the global scope for each of its
# imports (some 8,600 instructions at every start); its one exported
# variable is used under a local name (attach.c).
# -falign-jumps=1 -falign-loops=1: no padding before branch targets and
# loops (-O2 pads them to 16 bytes), which spread a request's code over more
# cache lines: an nginx request missed 21 fewer lines of shim code (I1
# misses under callgrind --cache-sim, 552.5 -> 531.7 a request), and the
# code is 5% smaller (the FORK_PATH window 65,068 -> 62,067 bytes).
SHIM_BUILD := -D_GNU_SOURCE -fPIC -shared -fvisibility=hidden -pthread -falign-jumps=1 -falign-loops=1 \
  -ftls-model=initial-exec -fno-stack-protector -DXXH_INLINE_ALL \
  -Wl,--version-script=shim/exports.map -Wl,-z,now -Wl,-z,relro -Wl,-z,defs -Wl,-Bsymbolic-functions -Wl,--sort-section=name -nostartfiles -Wl,-z,nodelete -Wl,-T,shim/layout.ld -fno-plt -Wl,-z,max-page-size=0x1000 -Wl,-z,noseparate-code \
  $(foreach f,mmap munmap mremap madvise clock_gettime ioctl fileno fileno_unlocked ferror ftrylockfile fwide mbsnrtowcs snprintf malloc free exit dlopen dl_iterate_phdr pthread_self pthread_getattr_np pthread_attr_getstack pthread_attr_destroy syscall \
    __register_atfork __pthread_register_cancel __pthread_unregister_cancel __pthread_unwind_next \
    __x86_get_cpuid_feature_leaf dlvsym,-Wl,--wrap=$(f))
$(BUILD)/libreqid.so: $(PURE_SRCS) $(GLUE_SRCS) $(SHIM_HDRS) shim/exports.map shim/layout.ld Makefile | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) $(SHIM_BUILD) -o $@ $(PURE_SRCS) $(GLUE_SRCS) -ldl -lunwind

# The same library with the flat part of the per-fd tables ending at 4096
# instead of 65536, so that tests reach the paged part (fds up to 2^20)
# under this machine's descriptor limit (run_all.py's high-fd runs).
$(BUILD)/libreqid-fdpages.so: $(PURE_SRCS) $(GLUE_SRCS) $(SHIM_HDRS) shim/exports.map shim/layout.ld Makefile | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -DFD_LOW=4096u $(SHIM_BUILD) -o $@ $(PURE_SRCS) $(GLUE_SRCS) -ldl -lunwind

# reqid attach's injector: a plain program, no shim code in it.
$(BUILD)/reqid-inject: $(wildcard inject/*.c inject/*.h) | $(BUILD)
	$(CC) $(CFLAGS) $(WARN) -D_GNU_SOURCE -o $@ $(wildcard inject/*.c) -lunwind-ptrace -lunwind-generic

$(BUILD) $(BUILD)/unit $(BUILD)/unit-asan $(BUILD)/unit-tsan $(BUILD)/servers:
	mkdir -p $@

# Unit tests link the pure sources directly, and the shim's tables where a
# test names them (no hooks: nothing is interposed). test_log_order
# includes log_order.c's source (it holds a place busy).
$(BUILD)/unit/test_log_order $(BUILD)/unit-asan/test_log_order $(BUILD)/unit-tsan/test_log_order: shim/log_order.c
UNIT_TABLES_test_conn_table := shim/conn_table.c shim/resident_return.c shim/head_store.c shim/request_table.c shim/log_order.c
UNIT_TABLES_test_request_table := shim/request_table.c
UNIT_TABLES_test_epoll_map := shim/epoll_map.c shim/conn_table.c shim/resident_return.c shim/head_store.c shim/request_table.c shim/log_order.c
UNIT_TABLES_test_tls_bind := shim/tls_bind.c
UNIT_TABLES_test_tls_output := shim/conn_output.c shim/insert_output.c shim/conn_table.c shim/resident_return.c shim/head_store.c shim/request_table.c shim/log_order.c
UNIT_TABLES_test_client_tls_output := shim/client_output.c shim/insert_output.c shim/conn_table.c shim/resident_return.c shim/head_store.c shim/request_table.c shim/log_order.c
UNIT_TABLES_test_log_slots := shim/log_writer.c shim/log_output.c shim/request_table.c shim/log_order.c
UNIT_TABLES_test_epoll_queue := shim/epoll_queue.c shim/epoll_map.c shim/conn_table.c shim/resident_return.c shim/head_store.c shim/request_table.c shim/log_order.c
UNIT_TABLES_test_call_chain := shim/call_chain.c shim/thread_count.c
UNIT_TABLES_test_insert_output := shim/insert_output.c
UNIT_LIBS_test_call_chain := -lunwind
UNIT_TABLES_test_proc_maps := inject/proc_maps.c
UNIT_TABLES_test_borrow_point := inject/borrow_point.c
UNIT_TABLES_test_dead_stack := inject/dead_stack.c inject/proc_maps.c

# Each kind of test build (plain, ASan+UBSan, TSan, libFuzzer) compiles a
# shim source once, into $(BUILD)/obj-KIND/, and links that object into
# every test program that names the source: not once per program.
UNIT_CC := $(CC) $(CFLAGS) $(WARN) -D_GNU_SOURCE -Ishim -pthread
ASAN_CC := $(CC) -O1 -g $(WARN) -fsanitize=address,undefined -fno-sanitize-recover=all \
  -fno-omit-frame-pointer -D_GNU_SOURCE -Ishim -pthread
TSAN_CC := $(CC) -O1 -g $(WARN) -Wno-tsan -fsanitize=thread -D_GNU_SOURCE -Ishim -pthread
FUZZ_CC := clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -D_GNU_SOURCE -Ishim -pthread
objs = $(patsubst shim/%.c,$(BUILD)/obj-$(1)/%.o,$(2))
.SECONDARY: # the objects stay for the next test program, not deleted as intermediates

$(BUILD)/obj-unit/%.o: shim/%.c $(SHIM_HDRS)
	@mkdir -p $(@D)
	$(UNIT_CC) -c -o $@ $<
$(BUILD)/obj-asan/%.o: shim/%.c $(SHIM_HDRS)
	@mkdir -p $(@D)
	$(ASAN_CC) -c -o $@ $<
$(BUILD)/obj-tsan/%.o: shim/%.c $(SHIM_HDRS)
	@mkdir -p $(@D)
	$(TSAN_CC) -c -o $@ $<
$(BUILD)/obj-fuzz/%.o: shim/%.c $(SHIM_HDRS)
	@mkdir -p $(@D)
	$(FUZZ_CC) -c -o $@ $<

.SECONDEXPANSION:
$(BUILD)/unit/%: tests/unit/%.c $$(call objs,unit,$$(PURE_SRCS) $$(UNIT_TABLES_$$*)) $(SHIM_HDRS) | $(BUILD)/unit
	$(UNIT_CC) -o $@ $< $(call objs,unit,$(PURE_SRCS) $(UNIT_TABLES_$*)) \
	  -lcmocka -lxxhash $(UNIT_LIBS_$*)

$(BUILD)/unit-asan/%: tests/unit/%.c $$(call objs,asan,$$(PURE_SRCS) $$(UNIT_TABLES_$$*)) $(SHIM_HDRS) | $(BUILD)/unit-asan
	$(ASAN_CC) -o $@ $< $(call objs,asan,$(PURE_SRCS) $(UNIT_TABLES_$*)) \
	  -lcmocka -lxxhash $(UNIT_LIBS_$*)

# Unit tests whose stress cases hammer a lock-free table from many threads
# (the request table's seqlocked rings; the connection table's entries,
# copies and pages; the line slots, drained by other threads; the call
# chains' shared cache of frame rules), under ThreadSanitizer (it does not
# model fences: -Wno-tsan).
TSAN_TESTS := test_request_table test_conn_table test_log_slots test_call_chain test_log_order
$(BUILD)/unit-tsan/%: tests/unit/%.c $$(call objs,tsan,$$(PURE_SRCS) $$(UNIT_TABLES_$$*)) $(SHIM_HDRS) | $(BUILD)/unit-tsan
	$(TSAN_CC) -o $@ $< $(call objs,tsan,$(PURE_SRCS) $(UNIT_TABLES_$*)) \
	  -lcmocka -lxxhash $(UNIT_LIBS_$*)

servers: $(addprefix $(BUILD)/servers/,$(SERVERS))

$(BUILD)/servers/%: tests/servers/%.c tests/servers/legacy_http.h tests/servers/evloop.h tests/servers/one_connection.h | $(BUILD)/servers
	$(CC) -O2 -g -Wall -Wextra -Werror -pthread -o $@ $<

# The libuv server (test_event_loops.py) links libuv.
$(BUILD)/servers/uv_server: tests/servers/uv_server.c tests/servers/legacy_http.h tests/servers/evloop.h | $(BUILD)/servers
	$(CC) -O2 -g -Wall -Wextra -Werror -pthread -o $@ $< -luv

# The libevent server (test_event_loops.py) links the real libevent 2.1.
$(BUILD)/servers/event_server: tests/servers/event_server.c tests/servers/legacy_http.h tests/servers/evloop.h | $(BUILD)/servers
	$(CC) -O2 -g -Wall -Wextra -Werror -pthread -o $@ $< -levent

unit: deps $(addprefix $(BUILD)/unit/,$(UNIT_TESTS))
	@for t in $(UNIT_TESTS); do $(BUILD)/unit/$$t || exit 1; done
	python3 tests/unit/test_audit_report.py

unit-tsan: deps $(addprefix $(BUILD)/unit-tsan/,$(TSAN_TESTS))
	@for t in $(TSAN_TESTS); do TSAN_OPTIONS=halt_on_error=1 $(BUILD)/unit-tsan/$$t || exit 1; done

unit-asan: deps $(addprefix $(BUILD)/unit-asan/,$(UNIT_TESTS))
	@for t in $(UNIT_TESTS); do \
	  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(BUILD)/unit-asan/$$t || exit 1; \
	done

integration: deps $(BUILD)/libreqid.so $(BUILD)/libreqid-fdpages.so $(BUILD)/reqid-inject servers
	python3 tests/integration/run_all.py
	python3 tests/integration/test_semantics.py
	python3 tests/integration/test_logpaths_syslog.py
	python3 tests/integration/test_stdio.py
	python3 tests/integration/test_faults.py
	python3 tests/integration/test_response_header.py
	python3 tests/integration/test_splice.py
	python3 tests/integration/test_interim.py
	python3 tests/integration/test_write_shut.py
	python3 tests/integration/test_unread_body.py
	python3 tests/integration/test_tls.py
	python3 tests/integration/test_spawn.py
	python3 tests/integration/test_fork_faults.py
	python3 tests/integration/test_buffered_flush.py
	python3 tests/integration/test_shared_log_buffer.py
	python3 tests/integration/test_gateway.py
	python3 tests/integration/test_outbound.py
	python3 tests/integration/test_w3c_harness.py
	python3 tests/integration/test_multihost.py
	python3 tests/integration/test_show.py
	python3 tests/integration/test_event_loops.py
	python3 tests/integration/test_first_use.py
	python3 tests/integration/test_epoll_edges.py
	python3 tests/integration/test_parking.py
	python3 tests/integration/test_signal_reopen.py
	python3 tests/integration/test_signal_lines.py
	python3 tests/integration/test_inject.py
	python3 tests/integration/test_audit.py
	python3 tests/integration/test_attach.py
	python3 tests/integration/test_attach_event_loops.py

# libFuzzer targets over the pure logic, with ASan and UBSan.
# Fuzzers link the pure sources, and the shim's parts a target names.
FUZZ_PARTS_fuzz_line_assembly := shim/log_writer.c shim/log_output.c shim/request_table.c shim/log_order.c
$(BUILD)/fuzz/%: tests/fuzz/%.c $$(call objs,fuzz,$$(PURE_SRCS) $$(FUZZ_PARTS_$$*)) $(SHIM_HDRS)
	@mkdir -p $(BUILD)/fuzz
	$(FUZZ_CC) -o $@ $< $(call objs,fuzz,$(PURE_SRCS) $(FUZZ_PARTS_$*)) -lxxhash

# A fixed number of runs from the seed corpus: part of `make test`.
fuzz-smoke: deps $(addprefix $(BUILD)/fuzz/,$(FUZZERS))
	@for f in $(FUZZERS); do \
	  name=$${f#fuzz_}; rm -rf $(BUILD)/fuzz/corpus-$$name; mkdir -p $(BUILD)/fuzz/corpus-$$name; \
	  dict=; [ -f tests/fuzz/$$f.dict ] && dict=-dict=tests/fuzz/$$f.dict; \
	  $(BUILD)/fuzz/$$f -runs=200000 -seed=1 $$dict \
	    $(BUILD)/fuzz/corpus-$$name tests/fuzz/corpus/$$name 2>$(BUILD)/fuzz/$$f.log \
	    || { tail -40 $(BUILD)/fuzz/$$f.log; exit 1; }; \
	  echo "$$f: $$(grep -o 'Done [0-9]* runs' $(BUILD)/fuzz/$$f.log)"; \
	done

# Longer fuzzing, FUZZ_SECONDS per target (not part of `make test`).
fuzz: deps $(addprefix $(BUILD)/fuzz/,$(FUZZERS))
	@for f in $(FUZZERS); do \
	  name=$${f#fuzz_}; mkdir -p $(BUILD)/fuzz/corpus-$$name; \
	  dict=; [ -f tests/fuzz/$$f.dict ] && dict=-dict=tests/fuzz/$$f.dict; \
	  $(BUILD)/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) $$dict \
	    $(BUILD)/fuzz/corpus-$$name tests/fuzz/corpus/$$name || exit 1; \
	done

# Each target FUZZ_LONG_RUNS executions (ten million unless told), then its
# corpus in the tree replaced by the minimised union of the old one and
# what the run found, plus the seeds people named (a reproducer stays by
# its name even when others cover its edges); prints runs and coverage per
# target. Not part of `make test`: two to three hours on one core
# (FUZZERS=... for fewer).
FUZZ_LONG_RUNS ?= 10000000
fuzz-long: deps $(addprefix $(BUILD)/fuzz/,$(FUZZERS))
	@for f in $(FUZZERS); do \
	  name=$${f#fuzz_}; work=$(BUILD)/fuzz/long-$$name; rm -rf $$work; mkdir -p $$work/found $$work/min; \
	  dict=; [ -f tests/fuzz/$$f.dict ] && dict=-dict=tests/fuzz/$$f.dict; \
	  $(BUILD)/fuzz/$$f -runs=$(FUZZ_LONG_RUNS) $$dict $$work/found tests/fuzz/corpus/$$name \
	    2>$$work/log || { tail -40 $$work/log; exit 1; }; \
	  $(BUILD)/fuzz/$$f -merge=1 $$work/min tests/fuzz/corpus/$$name $$work/found 2>>$$work/log \
	    || exit 1; \
	  find tests/fuzz/corpus/$$name -regextype posix-extended -type f ! -regex '.*/[0-9a-f]{40}' \
	    -exec cp {} $$work/min/ \; ; \
	  rm -rf tests/fuzz/corpus/$$name.new && cp -r $$work/min tests/fuzz/corpus/$$name.new && \
	    rm -rf tests/fuzz/corpus/$$name && mv tests/fuzz/corpus/$$name.new tests/fuzz/corpus/$$name; \
	  echo "$$f: $$(grep -o 'Done [0-9]* runs' $$work/log), $$(grep -o 'cov: [0-9]*' $$work/log | tail -1 | sed 's/cov:/coverage/') edges, corpus $$(ls tests/fuzz/corpus/$$name | wc -l) inputs"; \
	done

# nginx, then the bundled thread-pool server, under the shim for
# SOAK_SECONDS each (5 minutes unless told) at concurrency 512: no request
# lost, garbled or wrongly tagged, memory, descriptors and CPU per request
# flat. Not part of `make test`.
SOAK_SECONDS ?= 300
soak: deps $(BUILD)/libreqid.so $(BUILD)/servers/thread_pool
	python3 tests/integration/soak.py --seconds $(SOAK_SECONDS)

# The same in five minutes (150 s a server): what CI may run.
soak-quick: deps $(BUILD)/libreqid.so $(BUILD)/servers/thread_pool
	python3 tests/integration/soak.py --seconds 150

# Debian's own servers under the shim (nginx, lighttpd, busybox httpd with a
# CGI, python3 http.server): the attribution matrix; nginx's operations
# (reload, rotation, upgrade, stop, attach) and framing edges under load; the
# files a shell script writes under the shim.
realtest: deps $(BUILD)/libreqid.so
	python3 tests/realservers/run_real.py
	python3 tests/realservers/test_forged_headers.py
	python3 tests/realservers/test_rewritten_lines.py
	python3 tests/realservers/nginx_ops.py
	python3 tests/realservers/start_scripts.py

# Every program the tests run is built first, as many at once as there are
# processors; the tests then run one at a time.
TEST_PROGRAMS := $(BUILD)/libreqid.so $(BUILD)/libreqid-fdpages.so $(BUILD)/reqid-inject servers \
  $(addprefix $(BUILD)/unit/,$(UNIT_TESTS)) $(addprefix $(BUILD)/unit-asan/,$(UNIT_TESTS)) \
  $(addprefix $(BUILD)/unit-tsan/,$(TSAN_TESTS)) $(addprefix $(BUILD)/fuzz/,$(FUZZERS))
test: deps
	$(MAKE) -j$$(nproc) $(TEST_PROGRAMS)
	$(MAKE) unit unit-asan unit-tsan fuzz-smoke integration realtest

demo: deps $(BUILD)/libreqid.so servers
	python3 tests/integration/demo.py

bench: deps $(BUILD)/libreqid.so $(BUILD)/bench_io $(BUILD)/bench_process $(BUILD)/bench_spin.so $(BUILD)/servers/prefork
	python3 tests/bench/bench.py
	python3 tests/bench/bench_process.py
	python3 tests/bench/bench_servers.py

# The same scripts with fewer and shorter rounds: under a minute.
bench-quick: deps $(BUILD)/libreqid.so $(BUILD)/bench_io $(BUILD)/bench_process $(BUILD)/bench_spin.so $(BUILD)/servers/prefork
	python3 tests/bench/bench.py --quick
	python3 tests/bench/bench_process.py --quick
	python3 tests/bench/bench_servers.py --quick

$(BUILD)/bench_io: tests/bench/bench_io.c | $(BUILD)
	$(CC) -O2 -g -Wall -Wextra -Werror -o $@ $<

$(BUILD)/bench_process: tests/bench/bench_process.c | $(BUILD)
	$(CC) -O2 -g -Wall -Wextra -Werror -pthread -o $@ $<

$(BUILD)/bench_spin.so: tests/bench/spin_writev.c | $(BUILD)
	$(CC) -O2 -g -Wall -Wextra -Werror -shared -fPIC -o $@ $< -ldl

clean:
	rm -rf $(BUILD)
