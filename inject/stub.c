/*
 * stub.c - the machine code reqid-inject runs in the target: the setup, on
 * the borrowed thread, and the fresh thread's.
 *
 * The setup is one call on the borrowed thread, with the data block
 * (stub.h) as its argument, so that the thread is resumed once to start
 * the fresh one (each resume may wait for a CPU while the threads are
 * stopped):
 *
 *	if (d->guard) {			(pages mapped now, read+exec)
 *		mprotect(d->guard, d->guard_size, PROT_NONE);	(a system call:
 *		mprotect(d->stack, d->writable_size, PROT_READ|PROT_WRITE); no errno)
 *	}
 *	d->errno_at = __errno_location(); d->saved_errno = *d->errno_at;
 *	pthread_attr_init(d->attr);
 *	pthread_attr_setstack(d->attr, d->stack, d->stack_size);
 *	pthread_create(&d->thread, d->attr, <this page>, d);
 *	*d->errno_at = d->saved_errno;
 *	return 0, or the failed step << 32 | its error number;
 *
 * The fresh thread's code, started by pthread_create with the data block
 * as its argument:
 *
 *	d->tid = gettid();
 *	if (!hold.registered && __register_atfork(prepare, parent, child, NULL) == 0)
 *		hold.registered = 1;
 *	if (hold.registered) {
 *		hold.loading = d->tid;
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
 * the fork in hold.forking, then looks at hold.loading (the loading
 * thread's tid), and while a load runs steps back (uncounts itself), naps
 * 1 ms and tries again; parent uncounts it once the fork is done; child
 * clears both words. The stub sets loading and then waits for the counted
 * forks to end, so a fork either saw the load coming and waits, or the
 * load waits for it: both sides write then read with a locked instruction
 * between. Each side gives up after 1000 naps (a second at least: a nap a
 * signal cuts short sleeps the rest) and goes on as if there were no
 * hold. A fork made by the loading thread itself (a constructor's) does
 * not wait for itself. A fork that was already running other prepare
 * handlers when these were registered runs none of them (glibc runs the
 * handlers a fork found at its start), and its child may hold a copy of a
 * half-loaded library, and loading set by no thread of its own: prepare
 * finds that thread gone from the process (tgkill with signal 0: ESRCH)
 * and clears the word, so that child's forks do not wait. The handlers are
 * registered once per page (they stay registered for the process's life,
 * which the page also lives) with no DSO handle, so no dlclose takes them
 * away; hold lies in the last STUB_HOLD_SIZE bytes of the data mapping,
 * just before this page, where the code finds it by rip-relative
 * addressing.
 *
 * It copies dlerror's text because glibc frees that buffer when the thread
 * exits. Must never write outside its data block, nor touch the block after
 * setting done (reqid-inject may then rewrite it for the next injection),
 * nor misalign the stack: every call is made with rsp a multiple of 16.
 * The setup's mprotect calls touch only pages reqid-inject mapped this
 * run, and it puts errno back whatever pthread_* returned.
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
	       D(thread) == 0x68 && D(error) == 0x70 &&
	       sizeof(((struct stub_data *)0)->error) == 512 &&
	       D(errno_location) == 0x270 && D(pthread_attr_init) == 0x278 &&
	       D(pthread_attr_setstack) == 0x280 && D(pthread_create) == 0x288 &&
	       D(attr) == 0x290 && D(stack) == 0x298 && D(stack_size) == 0x2a0 &&
	       D(guard) == 0x2a8 && D(guard_size) == 0x2b0 && D(writable_size) == 0x2b8 &&
	       D(errno_at) == 0x2c0 && D(saved_errno) == 0x2c8,
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
	0x48, 0x8d, 0x3d, 0xe4, 0x00, 0x00, 0x00,	/* 1b lea rdi, [prepare] */
	0x48, 0x8d, 0x35, 0x49, 0x01, 0x00, 0x00,	/* 22 lea rsi, [parent] */
	0x48, 0x8d, 0x15, 0x4e, 0x01, 0x00, 0x00,	/* 29 lea rdx, [child] */
	0x31, 0xc9,				/* 30 xor ecx, ecx: no DSO handle */
	0xff, 0x53, 0x28,			/* 32 call [rbx+register_atfork] */
	0x85, 0xc0,				/* 35 test eax, eax */
	0x75, 0x2c,				/* 37 jne load: not registered, no hold */
	0xc7, 0x05, 0x85, 0xff, 0xff, 0xff, 0x01, 0x00, 0x00, 0x00,	/* 39 mov [registered], 1 */
						/* hold: */
	0x8b, 0x43, 0x5c,			/* 43 mov eax, [rbx+tid] */
	0x87, 0x05, 0x74, 0xff, 0xff, 0xff,	/* 46 xchg [loading], eax: loading = this thread, a full barrier */
	0x41, 0xb8, 0xe8, 0x03, 0x00, 0x00,	/* 4c mov r8d, 1000: naps at most */
						/* settle: */
	0x83, 0x3d, 0x6b, 0xff, 0xff, 0xff, 0x00,	/* 52 cmp [forking], 0 */
	0x7e, 0x0a,				/* 59 jle load: no fork in flight */
	0xe8, 0x79, 0x00, 0x00, 0x00,		/* 5b call nap */
	0x41, 0xff, 0xc8,			/* 60 dec r8d */
	0x75, 0xed,				/* 63 jne settle */
						/* load: */
	0x48, 0x8b, 0x7b, 0x30,			/* 65 mov rdi, [rbx+path] */
	0xbe, 0x02, 0x00, 0x00, 0x00,		/* 69 mov esi, RTLD_NOW */
	0xff, 0x13,				/* 6e call [rbx+dlopen] */
	0xc7, 0x05, 0x46, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,	/* 70 mov [loading], 0 */
	0x48, 0x89, 0x43, 0x48,			/* 7a mov [rbx+handle], rax */
	0x48, 0x85, 0xc0,			/* 7e test rax, rax */
	0x74, 0x1e,				/* 81 je fail */
	0x48, 0x89, 0xc7,			/* 83 mov rdi, rax */
	0x48, 0x8b, 0x73, 0x38,			/* 86 mov rsi, [rbx+name] */
	0xff, 0x53, 0x08,			/* 8a call [rbx+dlsym] */
	0x48, 0x89, 0x43, 0x50,			/* 8d mov [rbx+func], rax */
	0x48, 0x85, 0xc0,			/* 91 test rax, rax */
	0x74, 0x0b,				/* 94 je fail */
	0x48, 0x8b, 0x7b, 0x40,			/* 96 mov rdi, [rbx+arg] */
	0xff, 0xd0,				/* 9a call rax */
	0x89, 0x43, 0x58,			/* 9c mov [rbx+status], eax */
	0xeb, 0x23,				/* 9f jmp done */
						/* fail: */
	0xff, 0x53, 0x10,			/* a1 call [rbx+dlerror] */
	0x48, 0x85, 0xc0,			/* a4 test rax, rax */
	0x74, 0x1b,				/* a7 je done */
	0x48, 0x8d, 0x7b, 0x70,			/* a9 lea rdi, [rbx+error] */
	0xb9, 0xff, 0x01, 0x00, 0x00,		/* ad mov ecx, 511: error[511] stays 0 */
						/* copy: */
	0x8a, 0x10,				/* b2 mov dl, [rax] */
	0x88, 0x17,				/* b4 mov [rdi], dl */
	0x84, 0xd2,				/* b6 test dl, dl */
	0x74, 0x0a,				/* b8 je done */
	0x48, 0xff, 0xc0,			/* ba inc rax */
	0x48, 0xff, 0xc7,			/* bd inc rdi */
	0xff, 0xc9,				/* c0 dec ecx */
	0x75, 0xee,				/* c2 jne copy */
						/* done: */
	0xff, 0x53, 0x18,			/* c4 call [rbx+pthread_self] */
	0x48, 0x89, 0xc7,			/* c7 mov rdi, rax */
	0xff, 0x53, 0x20,			/* ca call [rbx+pthread_detach] */
	0x48, 0xc7, 0x43, 0x60, 0x01, 0x00, 0x00, 0x00,	/* cd mov qword [rbx+done], 1 */
	0x31, 0xc0,				/* d5 xor eax, eax */
	0x5b,					/* d7 pop rbx */
	0xc3,					/* d8 ret */
						/* nap: */
	0x48, 0x83, 0xec, 0x18,			/* d9 sub rsp, 24 */
	0x48, 0xc7, 0x04, 0x24, 0x00, 0x00, 0x00, 0x00,	/* dd mov [rsp], 0 */
	0x48, 0xc7, 0x44, 0x24, 0x08, 0x40, 0x42, 0x0f, 0x00,	/* e5 mov [rsp+8], 1000000: 1 ms */
						/* again: */
	0x48, 0x89, 0xe7,			/* ee mov rdi, rsp */
	0x48, 0x89, 0xe6,			/* f1 mov rsi, rsp */
	0xb8, 0x23, 0x00, 0x00, 0x00,		/* f4 mov eax, SYS_nanosleep */
	0x0f, 0x05,				/* f9 syscall */
	0x48, 0x83, 0xf8, 0xfc,			/* fb cmp rax, -EINTR */
	0x74, 0xed,				/* ff je again: a signal came: sleep the rest */
	0x48, 0x83, 0xc4, 0x18,			/* 101 add rsp, 24 */
	0xc3,					/* 105 ret */
						/* prepare: */
	0xf3, 0x0f, 0x1e, 0xfa,			/* 106 endbr64 */
	0xf0, 0xff, 0x05, 0xb3, 0xfe, 0xff, 0xff,	/* 10a lock inc [forking] */
	0x41, 0xb8, 0xe8, 0x03, 0x00, 0x00,	/* 111 mov r8d, 1000: naps at most */
						/* wait: */
	0x44, 0x8b, 0x0d, 0xa2, 0xfe, 0xff, 0xff,	/* 117 mov r9d, [loading] */
	0x45, 0x85, 0xc9,			/* 11e test r9d, r9d */
	0x74, 0x4e,				/* 121 je out: no load runs */
	0xb8, 0xba, 0x00, 0x00, 0x00,		/* 123 mov eax, SYS_gettid */
	0x0f, 0x05,				/* 128 syscall */
	0x44, 0x39, 0xc8,			/* 12a cmp eax, r9d */
	0x74, 0x42,				/* 12d je out: the loader itself forks: no wait */
	0xb8, 0x27, 0x00, 0x00, 0x00,		/* 12f mov eax, SYS_getpid */
	0x0f, 0x05,				/* 134 syscall */
	0x89, 0xc7,				/* 136 mov edi, eax */
	0x44, 0x89, 0xce,			/* 138 mov esi, r9d */
	0x31, 0xd2,				/* 13b xor edx, edx */
	0xb8, 0xea, 0x00, 0x00, 0x00,		/* 13d mov eax, SYS_tgkill */
	0x0f, 0x05,				/* 142 syscall */
	0x48, 0x83, 0xf8, 0xfd,			/* 144 cmp rax, -ESRCH */
	0x75, 0x0f,				/* 148 jne alive: the loader is a thread of this process */
	0x44, 0x89, 0xc8,			/* 14a mov eax, r9d */
	0x31, 0xc9,				/* 14d xor ecx, ecx */
	0xf0, 0x0f, 0xb1, 0x0d, 0x69, 0xfe, 0xff, 0xff,	/* 14f lock cmpxchg [loading], ecx: else a copy of one (a fork made as the handlers came): cleared */
	0xeb, 0x18,				/* 157 jmp out */
						/* alive: */
	0xf0, 0xff, 0x0d, 0x64, 0xfe, 0xff, 0xff,	/* 159 lock dec [forking]: steps back */
	0xe8, 0x74, 0xff, 0xff, 0xff,		/* 160 call nap */
	0xf0, 0xff, 0x05, 0x58, 0xfe, 0xff, 0xff,	/* 165 lock inc [forking] */
	0x41, 0xff, 0xc8,			/* 16c dec r8d */
	0x75, 0xa6,				/* 16f jne wait */
						/* out: */
	0xc3,					/* 171 ret */
						/* parent: */
	0xf3, 0x0f, 0x1e, 0xfa,			/* 172 endbr64 */
	0xf0, 0xff, 0x0d, 0x47, 0xfe, 0xff, 0xff,	/* 176 lock dec [forking] */
	0xc3,					/* 17d ret */
						/* child: */
	0xf3, 0x0f, 0x1e, 0xfa,			/* 17e endbr64 */
	0xc7, 0x05, 0x38, 0xfe, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,	/* 182 mov [forking], 0 */
	0xc7, 0x05, 0x2a, 0xfe, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,	/* 18c mov [loading], 0 */
	0xc3,					/* 196 ret */
						/* setup: rdi = the block; entered with rsp 8 mod 16 */
	0xf3, 0x0f, 0x1e, 0xfa,			/* 197 endbr64 */
	0x53,					/* 19b push rbx */
	0x41, 0x54,				/* 19c push r12 */
	0x41, 0x55,				/* 19e push r13: rsp 0 mod 16 */
	0x48, 0x89, 0xfb,			/* 1a0 mov rbx, rdi */
	0x48, 0x8b, 0xbb, 0xa8, 0x02, 0x00, 0x00,	/* 1a3 mov rdi, [rbx+guard] */
	0x48, 0x85, 0xff,			/* 1aa test rdi, rdi */
	0x74, 0x42,				/* 1ad je calls: pages reused */
	0x48, 0x8b, 0xb3, 0xb0, 0x02, 0x00, 0x00,	/* 1af mov rsi, [rbx+guard_size] */
	0x31, 0xd2,				/* 1b6 xor edx, edx: PROT_NONE */
	0xb8, 0x0a, 0x00, 0x00, 0x00,		/* 1b8 mov eax, SYS_mprotect */
	0x0f, 0x05,				/* 1bd syscall */
	0xb9, 0x01, 0x00, 0x00, 0x00,		/* 1bf mov ecx, SETUP_GUARD */
	0x48, 0x85, 0xc0,			/* 1c4 test rax, rax */
	0x0f, 0x85, 0x9e, 0x00, 0x00, 0x00,	/* 1c7 jne sysfail */
	0x48, 0x8b, 0xbb, 0x98, 0x02, 0x00, 0x00,	/* 1cd mov rdi, [rbx+stack] */
	0x48, 0x8b, 0xb3, 0xb8, 0x02, 0x00, 0x00,	/* 1d4 mov rsi, [rbx+writable_size] */
	0xba, 0x03, 0x00, 0x00, 0x00,		/* 1db mov edx, PROT_READ|PROT_WRITE */
	0xb8, 0x0a, 0x00, 0x00, 0x00,		/* 1e0 mov eax, SYS_mprotect */
	0x0f, 0x05,				/* 1e5 syscall */
	0xb9, 0x02, 0x00, 0x00, 0x00,		/* 1e7 mov ecx, SETUP_WRITABLE */
	0x48, 0x85, 0xc0,			/* 1ec test rax, rax */
	0x75, 0x7a,				/* 1ef jne sysfail */
						/* calls: */
	0xff, 0x93, 0x70, 0x02, 0x00, 0x00,	/* 1f1 call [rbx+errno_location] */
	0x49, 0x89, 0xc4,			/* 1f7 mov r12, rax */
	0x44, 0x8b, 0x28,			/* 1fa mov r13d, [rax]: the thread's errno */
	0x4c, 0x89, 0xa3, 0xc0, 0x02, 0x00, 0x00,	/* 1fd mov [rbx+errno_at], r12 */
	0x44, 0x89, 0xab, 0xc8, 0x02, 0x00, 0x00,	/* 204 mov [rbx+saved_errno], r13d */
	0x48, 0x8b, 0xbb, 0x90, 0x02, 0x00, 0x00,	/* 20b mov rdi, [rbx+attr] */
	0xff, 0x93, 0x78, 0x02, 0x00, 0x00,	/* 212 call [rbx+pthread_attr_init] */
	0xb9, 0x03, 0x00, 0x00, 0x00,		/* 218 mov ecx, SETUP_ATTR_INIT */
	0x85, 0xc0,				/* 21d test eax, eax */
	0x75, 0x44,				/* 21f jne back */
	0x48, 0x8b, 0xbb, 0x90, 0x02, 0x00, 0x00,	/* 221 mov rdi, [rbx+attr] */
	0x48, 0x8b, 0xb3, 0x98, 0x02, 0x00, 0x00,	/* 228 mov rsi, [rbx+stack] */
	0x48, 0x8b, 0x93, 0xa0, 0x02, 0x00, 0x00,	/* 22f mov rdx, [rbx+stack_size] */
	0xff, 0x93, 0x80, 0x02, 0x00, 0x00,	/* 236 call [rbx+pthread_attr_setstack] */
	0xb9, 0x04, 0x00, 0x00, 0x00,		/* 23c mov ecx, SETUP_ATTR_SETSTACK */
	0x85, 0xc0,				/* 241 test eax, eax */
	0x75, 0x20,				/* 243 jne back */
	0x48, 0x8d, 0x7b, 0x68,			/* 245 lea rdi, [rbx+thread] */
	0x48, 0x8b, 0xb3, 0x90, 0x02, 0x00, 0x00,	/* 249 mov rsi, [rbx+attr] */
	0x48, 0x8d, 0x15, 0xa9, 0xfd, 0xff, 0xff,	/* 250 lea rdx, [rip-0x257]: this page's start */
	0x48, 0x89, 0xd9,			/* 257 mov rcx, rbx */
	0xff, 0x93, 0x88, 0x02, 0x00, 0x00,	/* 25a call [rbx+pthread_create] */
	0xb9, 0x05, 0x00, 0x00, 0x00,		/* 260 mov ecx, SETUP_CREATE */
						/* back: */
	0x45, 0x89, 0x2c, 0x24,			/* 265 mov [r12], r13d: errno back */
	0xeb, 0x02,				/* 269 jmp out */
						/* sysfail: */
	0xf7, 0xd8,				/* 26b neg eax: -errno -> errno */
						/* out: */
	0x89, 0xc0,				/* 26d mov eax, eax */
	0x85, 0xc0,				/* 26f test eax, eax */
	0x74, 0x07,				/* 271 je done */
	0x48, 0xc1, 0xe1, 0x20,			/* 273 shl rcx, 32 */
	0x48, 0x09, 0xc8,			/* 277 or rax, rcx */
						/* done: */
	0x41, 0x5d,				/* 27a pop r13 */
	0x41, 0x5c,				/* 27c pop r12 */
	0x5b,					/* 27e pop rbx */
	0xc3,					/* 27f ret */
};

const size_t stub_code_size = sizeof stub_code;
const size_t stub_setup_offset = 0x197;
