/*
 * call_chain.h - the calling thread's chain of return addresses, for the
 * event-loop rule (event_batch.h): which function activations are live when
 * a line is written.
 *
 * Addresses come from the modules' own unwind tables (frame_rule.h: the
 * return address and rbp where the CFI says a frame keeps them, the rule
 * for each address cached, a few ns per frame), or, when a frame is not of
 * the common shape or has no table, from libunwind's unw_backtrace for the
 * whole chain; never from reading stack slots by guess. A chain that
 * cannot be had whole or cannot be trusted is reported as none, and the
 * rules then prove nothing: deeper than CHAIN_MAX; taken while the thread
 * is already unwinding (a signal handler interrupted it); running through
 * a signal handler's frame (its lines are not the interrupted code's); or
 * taken on another stack than the thread's first unwind (a coroutine's or
 * an alternate signal stack, which may be too small for the unwinder).
 * libunwind checks memory it is unsure of by writing it to a pipe of its
 * own, made on its first unwind (the first stack the frame rules do not
 * take whole): the shim makes that pipe itself, as
 * descriptors 1022 and 1023 (or the two below RLIMIT_NOFILE if that is
 * lower), and stops unwinding for good once the
 * program closes or replaces one of its descriptors (call_chain_fd_closing),
 * so libunwind never writes to a descriptor of the program's. Never
 * allocates but in libunwind's first unwind in a thread; never blocks but
 * on the loader's lock, at a rule the cache does not hold (as libunwind
 * at a miss of its own).
 */
#ifndef REQID_CALL_CHAIN_H
#define REQID_CALL_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CHAIN_MAX 64

/* Makes chains ready: the frame rules' part (dl_iterate_phdr) at once,
 * and libunwind (dlopen, into its own scope: its _Unwind_* never stand in
 * for the program's) when whole is true or a walk has met a frame the
 * rules do not take; until libunwind is loaded such a walk gives no chain
 * (the rules then prove nothing). dlopen allocates and takes the loader's
 * lock: it is called only while the process has one thread (no other
 * thread can hold that lock waiting for this one), from a listen, an
 * event loop's wait or a thread's creation, never from a signal handler's
 * calls in practice; a process that never listens, or starts its threads
 * first, has no chains. At start under `reqid audit` (whole), and at
 * attach (whole if the process has threads), it is called at once. */
void call_chain_load(bool whole) __attribute__((visibility("hidden")));

/* The process listens: it may run event loops, which need chains. They are
 * made ready only when an event loop's wait wants a chain
 * (call_chain_load_if_wanted), not now, and libunwind only once a walk
 * needs it: a fork server whose children serve a connection each and exit
 * would have every child run libunwind's and liblzma's exit code (three
 * page faults a child), and a server whose stacks the rules take whole
 * (nginx) would map them, look up their symbols and keep their pages
 * (about 200 KiB resident, 0.6 ms at its first wait) for nothing.
 * Inherited by fork children. */
void call_chain_wanted(void) __attribute__((visibility("hidden")));

/* call_chain_load if the process (or the one it was forked from) listened
 * and something it would load is missing: libunwind too if whole (a
 * thread's creation: the last moment with one thread) or a walk wanted
 * it. The caller makes sure the process has one thread: as an event
 * loop's wait returns and a chain is first wanted (batch_after_wait), or
 * as it starts its first thread. */
void call_chain_load_if_wanted(bool whole) __attribute__((visibility("hidden")));

/* Whether call_chain_load_if_wanted(false) would do nothing now (the
 * frame rules are set up, and libunwind is loaded, refused or not wanted):
 * an event loop's wait need not call it. */
extern _Atomic bool call_chain_settled __attribute__((visibility("hidden")));

/* Whether chains can be taken (the frame rules' part is set up). */
bool call_chain_ready(void) __attribute__((visibility("hidden")));

/* Detach: the shared cache of frame rules is emptied and its pages go
 * back (up to 128 KiB); rules cached from now on are of a new generation.
 * Left as it is if a writer holds one of its sets for long. */
void call_chain_release_rules(void) __attribute__((visibility("hidden")));

struct call_chain {
	int count;                /* frames, innermost first; 0: no chain */
	uint64_t walk;            /* the serial of the remembered walk it was
				     taken again from (struct chain_memo), 0
				     if none: two chains of the same serial
				     have the same frames */
	void *const *frames;      /* own, or the thread's remembered walk's
				     (call_chain_take): read them through this */
	void *own[CHAIN_MAX];
};

/* The chain whose frames are a remembered walk's (call_chain_take lends
 * them instead of copying), while its scope lasts: a take made meanwhile
 * (a signal handler's line) neither lends nor replaces a remembered walk,
 * so those frames stay as they are. NULL: none. */
extern __thread const struct call_chain *call_chain_lender
	__attribute__((tls_model("initial-exec"), visibility("hidden")));

/* The end of a chain's scope (CALL_CHAIN's cleanup). */
static inline void call_chain_return(const struct call_chain *chain)
{
	if (__builtin_expect(call_chain_lender == chain, 1))
		call_chain_lender = NULL;
}

/* Declares a call chain that call_chain_take may lend a remembered walk's
 * frames: they are given back when it goes out of scope. Copying such a
 * chain copies a pointer to frames that may change once it is gone. */
#define CALL_CHAIN(name) \
	struct call_chain name __attribute__((cleanup(call_chain_return)))

/* The last few walks of one thread, to take the same chain again without
 * walking: each walk from a given stack pointer (and rbp, when the walk
 * used it before reloading it), under the same frame rules (the same
 * generation of the rule cache: call_chain.c), reads the same stack words
 * in the same order while they hold the same values, and then gives the
 * same chain. A remembered walk is the addresses it read, with what they
 * held, and the chain it gave; checking them again is a load and a compare
 * per word, in the walk's order (a word that differs may lead another
 * stack elsewhere, so none after it is read), instead of a rule lookup per
 * frame. The walk last taken again or remembered for a stack pointer is
 * looked at first (by a hash of the stack pointer: a hint, checked as any
 * other), the others in turn after it. Owned by one thread (a walk is never
 * re-entered), in memory of its own. */
#define MEMO_WALKS 8
#define MEMO_READS 64
#define MEMO_HINTS 16

struct chain_memo {
	struct remembered_walk {
		uintptr_t sp, bp;
		uint32_t generation;
		uint64_t serial; /* of this walk's remembering (never 0) */
		int16_t count;   /* the walk's result; 0: nothing remembered */
		uint8_t bp_used;
		uint8_t reads;
		/* the words read, in order, then a stop: one that never holds
		 * what it says (checking needs no count) */
		struct stack_read {
			uintptr_t at, value;
		} read[MEMO_READS + 1];
		void *frames[CHAIN_MAX];
	} walk[MEMO_WALKS];
	unsigned next;
	uint64_t serials; /* the last serial given (they never wrap) */
	uint8_t hint[MEMO_HINTS]; /* by stack pointer: the walk to look at first */
};

/* Fills chain with the calling thread's return addresses, from the return
 * address of this call out, the shim's own frames included (innermost);
 * memo, if not NULL, is the calling thread's (zero-filled at first). A
 * walk taken again from memo lends its frames to a chain declared with
 * CALL_CHAIN when no other chain holds a lend (call_chain_lender), else
 * they are copied to the chain's own. */
void call_chain_take(struct call_chain *chain, struct chain_memo *memo)
	__attribute__((visibility("hidden")));

/* The start of the function return address ip is in, from its unwind
 * table (or libunwind's answer); 0 if unknown. Slow (microseconds): cache
 * it when *final says the answer will not change (it may once libunwind
 * is loaded). */
uintptr_t call_chain_function(const void *ip, bool *final) __attribute__((visibility("hidden")));

/* Whether the calling thread is inside call_chain_take (libunwind calling
 * back into hooked functions). */
bool call_chain_unwinding(void) __attribute__((visibility("hidden")));

/* Makes libunwind's pipe (pipe2 called while unwinding): returns what
 * pipe2 would. */
int call_chain_pipe(int fds[2], int flags) __attribute__((visibility("hidden")));

/* Whether fd is one of libunwind's pipe. */
bool call_chain_is_pipe(int fd) __attribute__((visibility("hidden")));

/* fd is being closed or replaced by the program (in its own process: a
 * vfork child's copies are its own): if it is one of libunwind's pipe, no
 * more chains. */
void call_chain_fd_closing(int fd) __attribute__((visibility("hidden")));

/* The hash of the outermost depth frames of chain (those of a function's
 * callers, from its caller out to the thread's first frame). */
uint64_t call_chain_outer_hash(const struct call_chain *chain, int depth)
	__attribute__((visibility("hidden")));

#endif
