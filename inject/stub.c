/*
 * stub.c - the machine code the fresh thread runs in the target, started
 * by pthread_create with the data block (stub.h) as its argument:
 *
 *	d->tid = gettid();
 *	d->handle = dlopen(d->path, RTLD_NOW);
 *	if (d->handle && (d->func = dlsym(d->handle, d->name)))
 *		d->status = d->func(d->arg);
 *	else if ((e = dlerror()))
 *		copy e into d->error;
 *	pthread_detach(pthread_self());
 *	d->done = 1;
 *	return NULL;
 *
 * It copies dlerror's text because glibc frees that buffer when the thread
 * exits. Must never write outside its data block, nor touch the block after
 * setting done (reqid-inject may then rewrite it for the next injection),
 * nor misalign the stack: every call is made with rsp a multiple of 16.
 * After done it still runs its last three instructions, so this code is
 * never unmapped nor rewritten; the same bytes in a page tell reqid-inject
 * that the page and the block before it are a previous injection's.
 */
#include "stub.h"

#define D(field) offsetof(struct stub_data, field)

_Static_assert(D(dlopen) == 0x00 && D(dlsym) == 0x08 && D(dlerror) == 0x10 &&
	       D(pthread_self) == 0x18 && D(pthread_detach) == 0x20 &&
	       D(path) == 0x28 && D(name) == 0x30 && D(arg) == 0x38 &&
	       D(handle) == 0x40 && D(func) == 0x48 && D(status) == 0x50 &&
	       D(tid) == 0x54 && D(done) == 0x58 && D(error) == 0x68 &&
	       sizeof(((struct stub_data *)0)->error) == 512,
	       "the displacements in stub_code");

const unsigned char stub_code[] = {
	0xf3, 0x0f, 0x1e, 0xfa,			/* 00 endbr64 (IBT landing pad) */
	0x53,					/* 04 push rbx: saves it, aligns rsp */
	0x48, 0x89, 0xfb,			/* 05 mov rbx, rdi: the data block */
	0xb8, 0xba, 0x00, 0x00, 0x00,		/* 08 mov eax, SYS_gettid */
	0x0f, 0x05,				/* 0d syscall */
	0x89, 0x43, 0x54,			/* 0f mov [rbx+tid], eax */
	0x48, 0x8b, 0x7b, 0x28,			/* 12 mov rdi, [rbx+path] */
	0xbe, 0x02, 0x00, 0x00, 0x00,		/* 16 mov esi, RTLD_NOW */
	0xff, 0x13,				/* 1b call [rbx+dlopen] */
	0x48, 0x89, 0x43, 0x40,			/* 1d mov [rbx+handle], rax */
	0x48, 0x85, 0xc0,			/* 21 test rax, rax */
	0x74, 0x1e,				/* 24 jz fail */
	0x48, 0x89, 0xc7,			/* 26 mov rdi, rax */
	0x48, 0x8b, 0x73, 0x30,			/* 29 mov rsi, [rbx+name] */
	0xff, 0x53, 0x08,			/* 2d call [rbx+dlsym] */
	0x48, 0x89, 0x43, 0x48,			/* 30 mov [rbx+func], rax */
	0x48, 0x85, 0xc0,			/* 34 test rax, rax */
	0x74, 0x0b,				/* 37 jz fail */
	0x48, 0x8b, 0x7b, 0x38,			/* 39 mov rdi, [rbx+arg] */
	0xff, 0xd0,				/* 3d call rax: FUNCTION(arg) */
	0x89, 0x43, 0x50,			/* 3f mov [rbx+status], eax */
	0xeb, 0x23,				/* 42 jmp done */
						/* fail: */
	0xff, 0x53, 0x10,			/* 44 call [rbx+dlerror] */
	0x48, 0x85, 0xc0,			/* 47 test rax, rax */
	0x74, 0x1b,				/* 4a jz done */
	0x48, 0x8d, 0x7b, 0x68,			/* 4c lea rdi, [rbx+error] */
	0xb9, 0xff, 0x01, 0x00, 0x00,		/* 50 mov ecx, 511: error[511] stays 0 */
						/* copy: */
	0x8a, 0x10,				/* 55 mov dl, [rax] */
	0x88, 0x17,				/* 57 mov [rdi], dl */
	0x84, 0xd2,				/* 59 test dl, dl */
	0x74, 0x0a,				/* 5b jz done: copied the NUL */
	0x48, 0xff, 0xc0,			/* 5d inc rax */
	0x48, 0xff, 0xc7,			/* 60 inc rdi */
	0xff, 0xc9,				/* 63 dec ecx */
	0x75, 0xee,				/* 65 jnz copy */
						/* done: */
	0xff, 0x53, 0x18,			/* 67 call [rbx+pthread_self] */
	0x48, 0x89, 0xc7,			/* 6a mov rdi, rax */
	0xff, 0x53, 0x20,			/* 6d call [rbx+pthread_detach] */
	0x48, 0xc7, 0x43, 0x58, 0x01, 0x00, 0x00, 0x00, /* 70 mov qword [rbx+done], 1 */
	0x31, 0xc0,				/* 78 xor eax, eax: return NULL */
	0x5b,					/* 7a pop rbx */
	0xc3,					/* 7b ret */
};

const size_t stub_code_size = sizeof stub_code;
