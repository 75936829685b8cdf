/*
 * fork_code_off.h - for unit tests that link the shim's tables
 * (conn_table.c) without shim/hook_process.c: a test's first accepted
 * connection leaves the test program's mappings as they are. Stands in
 * for fork_copies_code (fork_hot.h) at link time only.
 */
#ifndef REQID_TEST_FORK_CODE_OFF_H
#define REQID_TEST_FORK_CODE_OFF_H

#include "fork_hot.h"

void fork_copies_code(void)
{
}

#endif
