/*
 * traceparent.c - W3C Trace Context traceparent parsing.
 *
 * Pure logic on a caller's buffer; never allocates, never writes outside out.
 */
#include "traceparent.h"

#include <string.h>

int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1; /* uppercase is invalid in traceparent */
}

/* n lowercase hex chars; *nonzero tells whether any is not '0'. */
static bool is_hex_field(const char *s, size_t n, bool *nonzero)
{
	bool nz = false;
	for (size_t i = 0; i < n; i++) {
		if (hex_digit(s[i]) < 0)
			return false;
		nz |= s[i] != '0';
	}
	*nonzero = nz;
	return true;
}

bool traceparent_parse(const char *value, size_t len, struct traceparent *out)
{
	enum { LEN_V00 = 55 };
	bool nz;

	while (len > 0 && (*value == ' ' || *value == '\t')) {
		value++;
		len--;
	}
	while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t'))
		len--;
	if (len < LEN_V00)
		return false;
	if (!is_hex_field(value, 2, &nz))
		return false;
	uint8_t version = (uint8_t)(hex_digit(value[0]) << 4 | hex_digit(value[1]));
	if (version == 0xff)
		return false;
	if (version == 0 && len != LEN_V00)
		return false;
	if (len > LEN_V00 && value[LEN_V00] != '-')
		return false;
	if (value[2] != '-' || value[35] != '-' || value[52] != '-')
		return false;
	if (!is_hex_field(value + 3, 32, &nz) || !nz)
		return false;
	if (!is_hex_field(value + 36, 16, &nz) || !nz)
		return false;
	if (!is_hex_field(value + 53, 2, &nz))
		return false;
	out->version = version;
	memcpy(out->trace_id, value + 3, 32);
	memcpy(out->parent_id, value + 36, 16);
	out->flags = (uint8_t)(hex_digit(value[53]) << 4 | hex_digit(value[54]));
	return true;
}
