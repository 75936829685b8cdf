/*
 * fail.h - the one error line reqid-inject prints (see fail.c).
 */
#ifndef REQID_INJECT_FAIL_H
#define REQID_INJECT_FAIL_H

/* Records why reqid-inject fails, unless a cause is already recorded;
 * returns -1. */
int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The recorded cause. */
const char *fail_message(void);

#endif
