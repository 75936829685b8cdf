/*
 * fuzz_config.c - libFuzzer target for the REQID_* configuration parser and
 * the REQID_LOG_IDS list.
 *
 * The input is split at NUL bytes into values, given in turn to the
 * variables config_parse asks for (a value left out is an unset variable).
 * Checks that every length field matches its NUL-terminated text and stays
 * within its CONFIG_MAX_*, that enums hold defined values, header names are
 * lowercase, descriptors are in range, and that a warning bit is set for
 * each variable whose value was rejected only when that variable was given.
 * Then reads the last value as a REQID_LOG_IDS list and appends to a small
 * buffer past its end. Never prints on success.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static const char *const variables[] = {
	"REQID_FORMAT",		"REQID_FIELD",	       "REQID_HEADERS",	   "REQID_LOG_FDS",
	"REQID_OUTSIDE",	"REQID_DISABLE",       "REQID_LOG_PATHS",  "REQID_RESPONSE_HEADER",
	"REQID_FIELDS",		"REQID_PROPAGATE",     "REQID_EVENT_STACKS", "REQID_EVENT_BRACKETS",
	"REQID_AUDIT_DIR",	"REQID_JOIN_OPEN",
};
#define VARIABLES (sizeof(variables) / sizeof(variables[0]))

static char *values[VARIABLES];

static const char *lookup(const char *name)
{
	for (unsigned i = 0; i < VARIABLES; i++)
		if (strcmp(name, variables[i]) == 0)
			return values[i];
	return NULL;
}

static void check_text(const char *text, size_t len, size_t max)
{
	if (len > max || strlen(text) != len)
		abort();
}

static void check(const struct reqid_config *c, unsigned warnings)
{
	if (c->format > FORMAT_LOGFMT)
		abort();
	check_text(c->field, c->field_len, CONFIG_MAX_FIELD);
	if (c->field_count > CONFIG_MAX_FIELDS)
		abort();
	for (unsigned i = 0; i < c->field_count; i++)
		if (c->fields[i] > FIELD_SPAN_ID)
			abort();
	check_text(c->outside, c->outside_len, CONFIG_MAX_OUTSIDE);
	if (c->header_count > CONFIG_MAX_HEADERS)
		abort();
	for (unsigned i = 0; i < c->header_count; i++) {
		const struct header_name *h = &c->headers[i];
		check_text(h->name, h->len, CONFIG_MAX_HEADER_NAME);
		if (h->len == 0)
			abort();
		for (unsigned k = 0; k < h->len; k++)
			if (h->name[k] >= 'A' && h->name[k] <= 'Z')
				abort();
	}
	if (c->log_fd_count > CONFIG_MAX_LOG_FDS)
		abort();
	for (unsigned i = 0; i < c->log_fd_count; i++)
		if (c->log_fds[i] < 0 || c->log_fds[i] > CONFIG_MAX_FD)
			abort();
	if (c->response_header_len) /* 0: no header, whatever the text */
		check_text(c->response_header, c->response_header_len, CONFIG_MAX_HEADER_NAME);
	check_text(c->audit_dir, c->audit_dir_len, CONFIG_MAX_AUDIT_DIR);
	if (c->audit_dir_len && c->audit_dir[0] != '/')
		abort();
	if (c->log_path_count > CONFIG_MAX_LOG_PATHS)
		abort();
	for (unsigned i = 0; i < c->log_path_count; i++)
		if (strlen(c->log_paths[i]) > CONFIG_MAX_LOG_PATH)
			abort();
	/* a warning names a variable that was given a value */
	for (unsigned bit = 0; bit < 32; bit++) {
		if (!(warnings & (1u << bit)))
			continue;
		const char *name = config_warning_variable(1u << bit);
		if (!name || !lookup(name))
			abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = malloc(size + 1);
	if (!copy)
		return 0;
	memcpy(copy, data, size);
	copy[size] = '\0';
	/* value i runs to the i-th NUL; a value that is a single 0x01 byte
	 * stands for an unset variable */
	char *p = copy, *end = copy + size, *last = copy;
	for (unsigned i = 0; i < VARIABLES; i++) {
		values[i] = NULL;
		if (p > end)
			continue;
		size_t len = strlen(p);
		if (!(len == 1 && p[0] == '\x01'))
			values[i] = p;
		last = p;
		p += len + 1;
	}
	struct reqid_config *cfg = malloc(sizeof(*cfg));
	if (cfg) {
		unsigned warnings = config_parse(cfg, lookup);
		check(cfg, warnings);
		free(cfg);
	}
	(void)log_ids_contain(last, 0x803, 0x1234);
	char buf[40];
	size_t len = strlen(last) < sizeof(buf) ? strlen(last) : 0;
	memcpy(buf, last, len);
	buf[len] = '\0';
	size_t n = log_ids_append(buf, len, sizeof(buf), UINT64_MAX, UINT64_MAX);
	if (n >= sizeof(buf) || strlen(buf) != n || (n != len && n < len))
		abort();
	free(copy);
	return 0;
}
