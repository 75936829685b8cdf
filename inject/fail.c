/*
 * fail.c - the one error line reqid-inject prints.
 *
 * The code that finds a problem describes it; the first description wins,
 * because later failures are usually its consequences, so main prints
 * exactly one line. Must never print or exit by itself.
 */
#include "fail.h"

#include <stdarg.h>
#include <stdio.h>

static char message[1024];

int fail(const char *fmt, ...)
{
	va_list ap;

	if (message[0])
		return -1;
	va_start(ap, fmt);
	vsnprintf(message, sizeof message, fmt, ap);
	va_end(ap);
	return -1;
}

const char *fail_message(void)
{
	return message[0] ? message : "failed for an unknown reason";
}
