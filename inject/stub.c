/*
 * stub.c - the machine code the fresh thread runs in the target, started
 * by pthread_create with the data block (stub.h) as its argument:
 *
 *	d->tid = gettid();
 *	if (!hold.registered && __register_atfork(prepare, parent, child, NULL) == 0)
 *		hold.registered = 1;
 *	if (hold.registered) {
 *		hold.loading = 1;
 *		while (hold.forking > 0 && fewer than 1000 naps)
 *			nap 1 ms;
 *	}
 *	d->handle = dlopen(d->path, RTLD_NOW);
 *	hold.loading = 0;
 *	if (d->handle && (d->func = dlsym(d->handle, d->name)))
 *		d->status = d->func(d->arg);
 *	else if ((e = dlerror()))
 *		copy e into d->error;
 *	pthread_detach(pthread_self());
 *	d->done = 1;
 *	return NULL;
 *
 * The fork hold: glibc's fork does not wait for a dlopen on another
 * thread, so a process that forks while the library is being loaded would
 * give its child a copy of a half-loaded library (mapped, maybe not
 * relocated, its constructor not run), which nothing can finish or use
 * there. The stub's fork handlers make such a fork wait: prepare counts
 * the fork in hold.forking, then looks at hold.loading, and while a load
 * runs steps back (uncounts itself), naps 1 ms and tries again; parent
 * uncounts it once the fork is done; child clears both words. The stub
 * sets loading and then waits for the counted forks to end, so a fork
 * either saw the load coming and waits, or the load waits for it: both
 * sides write then read with a locked instruction between. Each side gives
 * up after 1000 naps (about a second) and goes on as if there were no
 * hold. The handlers are registered once per page (they stay registered
 * for the process's life, which the page also lives) with no DSO handle,
 * so no dlclose takes them away; hold lies in the last STUB_HOLD_SIZE
 * bytes of the data mapping, just before this page, where the code finds
 * it by rip-relative addressing.
 *
 * It copies dlerror's text because glibc frees that buffer when the thread
 * exits. Must never write outside its data block, nor touch the block after
 * setting done (reqid-inject may then rewrite it for the next injection),
 * nor misalign the stack: every call is made with rsp a multiple of 16.
 * After done it still runs its last three instructions, and the fork
 * handlers run for the rest of the process's life, so this code is never
 * unmapped nor rewritten; the same bytes in a page tell reqid-inject that
 * the page and the block before it are a previous injection's.
 */
#include "stub.h"

#define D(field) offsetof(struct stub_data, field)
#define H(field) ((long)offsetof(struct stub_hold, field) - STUB_HOLD_SIZE)

_Static_assert(D(dlopen) == 0x00 && D(dlsym) == 0x08 && D(dlerror) == 0x10 &&
	       D(pthread_self) == 0x18 && D(pthread_detach) == 0x20 &&
	       D(register_atfork) == 0x28 && D(path) == 0x30 && D(name) == 0x38 &&
	       D(arg) == 0x40 && D(handle) == 0x48 && D(func) == 0x50 &&
	       D(status) == 0x58 && D(tid) == 0x5c && D(done) == 0x60 &&
	       D(error) == 0x70 && sizeof(((struct stub_data *)0)->error) == 512,
	       "the displacements in stub_code");
_Static_assert(H(loading) == -64 && H(forking) == -60 && H(registered) == -56 &&
	       sizeof(struct stub_hold) <= STUB_HOLD_SIZE,
	       "the rip-relative displacements in stub_code: hold at code - 64");

const unsigned char stub_code[] = {
	0xf3, 0x0f, 0x1e, 0xfa,			/* 00 endbr64 */
	0x53,					/* 04 push rbx */
	0x48, 0x89, 0xfb,			/* 05 mov rbx, rdi */
	0xb8, 0xba, 0x00, 0x00, 0x00,		/* 08 mov eax, SYS_gettid */
	0x0f, 0x05,				/* 0d syscall */
	0x89, 0x43, 0x5c,			/* 0f mov [rbx+tid], eax */
	0x83, 0x3d, 0xaf, 0xff, 0xff, 0xff, 0x00,	/* 12 cmp [registered], 0 */
	0x75, 0x28,				/* 19 jne hold */
	0x48, 0x8d, 0x3d, 0xdf, 0x00, 0x00, 0x00,	/* 1b lea rdi, [prepare] */
	0x48, 0x8d, 0x35, 0x0b, 0x01, 0x00, 0x00,	/* 22 lea rsi, [parent] */
	0x48, 0x8d, 0x15, 0x10, 0x01, 0x00, 0x00,	/* 29 lea rdx, [child] */
	0x31, 0xc9,				/* 30 xor ecx, ecx: no DSO handle */
	0xff, 0x53, 0x28,			/* 32 call [rbx+register_atfork] */
	0x85, 0xc0,				/* 35 test eax, eax */
	0x75, 0x2e,				/* 37 jne load: not registered, no hold */
	0xc7, 0x05, 0x85, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00,	/* 39 mov [registered], 1 */
						/* hold: */
	0xb8, 0x01, 0x00, 0x00, 0x00,		/* 43 mov eax, 1 */
	0x87, 0x05, 0x72, 0xff, 0xff, 0xff,	/* 48 xchg [loading], eax: a full barrier */
	0x41, 0xb8, 0xe8, 0x03, 0x00, 0x00,	/* 4e mov r8d, 1000: naps at most */
						/* settle: */
	0x83, 0x3d, 0x69, 0xff, 0xff, 0xff, 0x00,	/* 54 cmp [forking], 0 */
	0x7e, 0x0a,				/* 5b jle load: no fork in flight */
	0xe8, 0x79, 0x00, 0x00, 0x00,		/* 5d call nap */
	0x41, 0xff, 0xc8,			/* 62 dec r8d */
	0x75, 0xed,				/* 65 jne settle */
						/* load: */
	0x48, 0x8b, 0x7b, 0x30,			/* 67 mov rdi, [rbx+path] */
	0xbe, 0x02, 0x00, 0x00, 0x00,		/* 6b mov esi, RTLD_NOW */
	0xff, 0x13,				/* 70 call [rbx+dlopen] */
	0xc7, 0x05, 0x44, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,	/* 72 mov [loading], 0 */
	0x48, 0x89, 0x43, 0x48,			/* 7c mov [rbx+handle], rax */
	0x48, 0x85, 0xc0,			/* 80 test rax, rax */
	0x74, 0x1e,				/* 83 je fail */
	0x48, 0x89, 0xc7,			/* 85 mov rdi, rax */
	0x48, 0x8b, 0x73, 0x38,			/* 88 mov rsi, [rbx+name] */
	0xff, 0x53, 0x08,			/* 8c call [rbx+dlsym] */
	0x48, 0x89, 0x43, 0x50,			/* 8f mov [rbx+func], rax */
	0x48, 0x85, 0xc0,			/* 93 test rax, rax */
	0x74, 0x0b,				/* 96 je fail */
	0x48, 0x8b, 0x7b, 0x40,			/* 98 mov rdi, [rbx+arg] */
	0xff, 0xd0,				/* 9c call rax */
	0x89, 0x43, 0x58,			/* 9e mov [rbx+status], eax */
	0xeb, 0x23,				/* a1 jmp done */
						/* fail: */
	0xff, 0x53, 0x10,			/* a3 call [rbx+dlerror] */
	0x48, 0x85, 0xc0,			/* a6 test rax, rax */
	0x74, 0x1b,				/* a9 je done */
	0x48, 0x8d, 0x7b, 0x70,			/* ab lea rdi, [rbx+error] */
	0xb9, 0xff, 0x01, 0x00, 0x00,		/* af mov ecx, 511: error[511] stays 0 */
						/* copy: */
	0x8a, 0x10,				/* b4 mov dl, [rax] */
	0x88, 0x17,				/* b6 mov [rdi], dl */
	0x84, 0xd2,				/* b8 test dl, dl */
	0x74, 0x0a,				/* ba je done */
	0x48, 0xff, 0xc0,			/* bc inc rax */
	0x48, 0xff, 0xc7,			/* bf inc rdi */
	0xff, 0xc9,				/* c2 dec ecx */
	0x75, 0xee,				/* c4 jne copy */
						/* done: */
	0xff, 0x53, 0x18,			/* c6 call [rbx+pthread_self] */
	0x48, 0x89, 0xc7,			/* c9 mov rdi, rax */
	0xff, 0x53, 0x20,			/* cc call [rbx+pthread_detach] */
	0x48, 0xc7, 0x43, 0x60, 0x01, 0x00, 0x00, 0x00,	/* cf mov qword [rbx+done], 1 */
	0x31, 0xc0,				/* d7 xor eax, eax */
	0x5b,					/* d9 pop rbx */
	0xc3,					/* da ret */
						/* nap: */
	0x48, 0x83, 0xec, 0x18,			/* db sub rsp, 24 */
	0x48, 0xc7, 0x04, 0x24, 0x00, 0x00, 0x00, 0x00,	/* df mov [rsp], 0 */
	0x48, 0xc7, 0x44, 0x24, 0x08, 0x40, 0x42, 0x0f, 0x00,	/* e7 mov [rsp+8], 1000000: 1 ms */
	0x48, 0x89, 0xe7,			/* f0 mov rdi, rsp */
	0x31, 0xf6,				/* f3 xor esi, esi */
	0xb8, 0x23, 0x00, 0x00, 0x00,		/* f5 mov eax, SYS_nanosleep */
	0x0f, 0x05,				/* fa syscall */
	0x48, 0x83, 0xc4, 0x18,			/* fc add rsp, 24 */
	0xc3,					/* 100 ret */
						/* prepare: */
	0xf3, 0x0f, 0x1e, 0xfa,			/* 101 endbr64 */
	0xf0, 0xff, 0x05, 0xb8, 0xfe, 0xff, 0xff,	/* 105 lock inc [forking] */
	0x41, 0xb8, 0xe8, 0x03, 0x00, 0x00,	/* 10c mov r8d, 1000: naps at most */
						/* wait: */
	0x83, 0x3d, 0xa7, 0xfe, 0xff, 0xff, 0x00,	/* 112 cmp [loading], 0 */
	0x74, 0x18,				/* 119 je out: no dlopen runs */
	0xf0, 0xff, 0x0d, 0xa2, 0xfe, 0xff, 0xff,	/* 11b lock dec [forking]: steps back */
	0xe8, 0xb4, 0xff, 0xff, 0xff,		/* 122 call nap */
	0xf0, 0xff, 0x05, 0x96, 0xfe, 0xff, 0xff,	/* 127 lock inc [forking] */
	0x41, 0xff, 0xc8,			/* 12e dec r8d */
	0x75, 0xdf,				/* 131 jne wait */
						/* out: */
	0xc3,					/* 133 ret */
						/* parent: */
	0xf3, 0x0f, 0x1e, 0xfa,			/* 134 endbr64 */
	0xf0, 0xff, 0x0d, 0x85, 0xfe, 0xff, 0xff,	/* 138 lock dec [forking] */
	0xc3,					/* 13f ret */
						/* child: */
	0xf3, 0x0f, 0x1e, 0xfa,			/* 140 endbr64 */
	0xc7, 0x05, 0x76, 0xfe, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,	/* 144 mov [forking], 0 */
	0xc7, 0x05, 0x68, 0xfe, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,	/* 14e mov [loading], 0 */
	0xc3,					/* 158 ret */
};

const size_t stub_code_size = sizeof stub_code;
