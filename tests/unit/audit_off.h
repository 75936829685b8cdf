/*
 * audit_off.h - for unit tests that link the shim's tables (conn_table.c)
 * without its audit channel: shim.audit stays false there, so these are
 * never called; they only stand in for shim/audit_log.c at link time.
 */
#ifndef REQID_TEST_AUDIT_OFF_H
#define REQID_TEST_AUDIT_OFF_H

#include "audit_log.h"

void audit_request_started(uint64_t serial, const char *id, size_t id_len)
{
	(void)serial;
	(void)id;
	(void)id_len;
	fail_msg("audit_request_started called with audit off");
}

void audit_request_ended(uint64_t serial)
{
	(void)serial;
	fail_msg("audit_request_ended called with audit off");
}

void audit_request_answered(uint64_t serial)
{
	(void)serial;
	fail_msg("audit_request_answered called with audit off");
}

#endif
