/*
 * default_shim.h - for unit tests that link the shim's tables and output
 * code: the shim's state as a process with no REQID_ settings starts it
 * (shim_activate's configuration steps, which these programs do not link),
 * ids drawn from a fixed key. Included once per program.
 */
#ifndef REQID_TEST_DEFAULT_SHIM_H
#define REQID_TEST_DEFAULT_SHIM_H

#include <string.h>

#include "http_response.h"
#include "shim_init.h"

static const char *no_environment(const char *name)
{
	(void)name;
	return NULL;
}

/* The shim's state zeroed, then configured from an empty environment. */
static void default_shim(void)
{
	static const uint8_t key[16] = {1, 2, 3};
	memset(&shim, 0, sizeof(shim));
	config_parse(&shim.config, no_environment);
	header_matcher_init(&shim.matcher, &shim.config);
	http_response_set_header(shim.config.response_header, shim.config.response_header_len);
	id_generator_seed(&process.ids, key);
}

#endif
