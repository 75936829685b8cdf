/*
 * stub.c - the machine code the fresh thread runs in the target, started
 * by pthread_create with the data block (stub.h) as its argument:
 *
 *	d->handle = dlopen(d->path, RTLD_NOW);
 *	if (d->handle && (d->func = dlsym(d->handle, d->name)))
 *		d->status = d->func(d->arg);
 *	else if ((e = dlerror()))
 *		copy e into d->error;
 *	d->done = 1;
 *	pthread_detach(pthread_self());
 *	return NULL;
 *
 * It copies dlerror's text because glibc frees that buffer when the thread
 * exits. Must never write outside its data block, nor write to it after
 * setting done (reqid-inject may have read it and gone), nor misalign the
 * stack: every call is made with rsp a multiple of 16. After done it still
 * reads the block and runs this code, so neither is ever unmapped.
 */
#include "stub.h"

#define D(field) offsetof(struct stub_data, field)

_Static_assert(D(dlopen) == 0x00 && D(dlsym) == 0x08 && D(dlerror) == 0x10 &&
	       D(pthread_self) == 0x18 && D(pthread_detach) == 0x20 &&
	       D(path) == 0x28 && D(name) == 0x30 && D(arg) == 0x38 &&
	       D(handle) == 0x40 && D(func) == 0x48 && D(status) == 0x50 &&
	       D(done) == 0x58 && D(error) == 0x68 &&
	       sizeof(((struct stub_data *)0)->error) == 512,
	       "the displacements in stub_code");

const unsigned char stub_code[] = {
	0xf3, 0x0f, 0x1e, 0xfa,			/* 00 endbr64 (IBT landing pad) */
	0x53,					/* 04 push rbx: saves it, aligns rsp */
	0x48, 0x89, 0xfb,			/* 05 mov rbx, rdi: the data block */
	0x48, 0x8b, 0x7b, 0x28,			/* 08 mov rdi, [rbx+path] */
	0xbe, 0x02, 0x00, 0x00, 0x00,		/* 0c mov esi, RTLD_NOW */
	0xff, 0x13,				/* 11 call [rbx+dlopen] */
	0x48, 0x89, 0x43, 0x40,			/* 13 mov [rbx+handle], rax */
	0x48, 0x85, 0xc0,			/* 17 test rax, rax */
	0x74, 0x1e,				/* 1a jz fail */
	0x48, 0x89, 0xc7,			/* 1c mov rdi, rax */
	0x48, 0x8b, 0x73, 0x30,			/* 1f mov rsi, [rbx+name] */
	0xff, 0x53, 0x08,			/* 23 call [rbx+dlsym] */
	0x48, 0x89, 0x43, 0x48,			/* 26 mov [rbx+func], rax */
	0x48, 0x85, 0xc0,			/* 2a test rax, rax */
	0x74, 0x0b,				/* 2d jz fail */
	0x48, 0x8b, 0x7b, 0x38,			/* 2f mov rdi, [rbx+arg] */
	0xff, 0xd0,				/* 33 call rax: FUNCTION(arg) */
	0x89, 0x43, 0x50,			/* 35 mov [rbx+status], eax */
	0xeb, 0x23,				/* 38 jmp done */
						/* fail: */
	0xff, 0x53, 0x10,			/* 3a call [rbx+dlerror] */
	0x48, 0x85, 0xc0,			/* 3d test rax, rax */
	0x74, 0x1b,				/* 40 jz done */
	0x48, 0x8d, 0x7b, 0x68,			/* 42 lea rdi, [rbx+error] */
	0xb9, 0xff, 0x01, 0x00, 0x00,		/* 46 mov ecx, 511: error[511] stays 0 */
						/* copy: */
	0x8a, 0x10,				/* 4b mov dl, [rax] */
	0x88, 0x17,				/* 4d mov [rdi], dl */
	0x84, 0xd2,				/* 4f test dl, dl */
	0x74, 0x0a,				/* 51 jz done: copied the NUL */
	0x48, 0xff, 0xc0,			/* 53 inc rax */
	0x48, 0xff, 0xc7,			/* 56 inc rdi */
	0xff, 0xc9,				/* 59 dec ecx */
	0x75, 0xee,				/* 5b jnz copy */
						/* done: */
	0x48, 0xc7, 0x43, 0x58, 0x01, 0x00, 0x00, 0x00, /* 5d mov qword [rbx+done], 1 */
	0xff, 0x53, 0x18,			/* 65 call [rbx+pthread_self] */
	0x48, 0x89, 0xc7,			/* 68 mov rdi, rax */
	0xff, 0x53, 0x20,			/* 6b call [rbx+pthread_detach] */
	0x31, 0xc0,				/* 6e xor eax, eax: return NULL */
	0x5b,					/* 70 pop rbx */
	0xc3,					/* 71 ret */
};

const size_t stub_code_size = sizeof stub_code;
