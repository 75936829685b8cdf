/*
 * stub.h - the code the fresh thread runs and the data block it reads
 * (see stub.c).
 */
#ifndef REQID_INJECT_STUB_H
#define REQID_INJECT_STUB_H

#include <stddef.h>
#include <stdint.h>

/* At the start of the data mapping; the strings follow it. */
struct stub_data {
	/* written by reqid-inject */
	uint64_t dlopen, dlsym, dlerror, pthread_self, pthread_detach;
	uint64_t path, name, arg;		/* addresses of the strings */
	/* written by the stub, in this order */
	uint64_t handle;			/* dlopen's result */
	uint64_t func;				/* dlsym's result */
	int32_t status;				/* FUNCTION's result */
	uint32_t unused;
	uint64_t done;				/* set last */
	uint64_t thread;			/* pthread_create's pthread_t */
	char error[512];			/* dlerror's text, cut to fit */
};

extern const unsigned char stub_code[];
extern const size_t stub_code_size;

#endif
