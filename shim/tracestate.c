/*
 * tracestate.c - W3C Trace Context tracestate validation and normalisation.
 *
 * One pass over the members; each is copied to out only once it is known to
 * be valid and its key is not in out yet (a repeated key keeps its first
 * member), so out never grows past what in held. Never allocates, never does
 * I/O, never reads past in[len-1] or writes past out[len-1].
 */
#include "tracestate.h"

#include <stdbool.h>
#include <string.h>

enum {
	KEY_MAX = 256,
	VALUE_MAX = 256,
};

/* Where a member already copied to out has its key. */
struct kept_key {
	size_t at;
	size_t len;
};

static bool is_ows(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_lcalpha(char c)
{
	return c >= 'a' && c <= 'z';
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/* A char allowed after a key's first one. */
static bool is_key_char(char c)
{
	return is_lcalpha(c) || is_digit(c) || c == '_' || c == '-' || c == '*' || c == '/' ||
	       c == '@';
}

/* 1..256 chars: a lowercase letter or digit, then key chars ('@' any number
 * of times). */
static bool is_key(const char *s, size_t n)
{
	if (n == 0 || n > KEY_MAX)
		return false;
	if (!is_lcalpha(s[0]) && !is_digit(s[0]))
		return false;
	for (size_t i = 1; i < n; i++) {
		if (!is_key_char(s[i]))
			return false;
	}
	return true;
}

/* 1..256 chars of 0x20..0x7e except ',' and '='. The member was stripped of
 * trailing OWS, so the value cannot end in a space. */
static bool is_value(const char *s, size_t n)
{
	if (n == 0 || n > VALUE_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e || c == ',' || c == '=')
			return false;
	}
	return true;
}

/* Whether out already holds a member with this key. */
static bool key_kept(const char *out, const struct kept_key *kept, size_t n_kept,
		     const char *key, size_t key_len)
{
	for (size_t i = 0; i < n_kept; i++) {
		if (kept[i].len == key_len && memcmp(out + kept[i].at, key, key_len) == 0)
			return true;
	}
	return false;
}

int tracestate_normalize(const char *in, size_t len, char *out)
{
	struct kept_key kept[TRACESTATE_MEMBERS_MAX];
	size_t members = 0; /* every non-empty member, repeated keys too */
	size_t n_kept = 0;
	size_t out_len = 0;

	if (len > TRACESTATE_MAX)
		return -1;
	for (size_t pos = 0; pos < len;) {
		const char *comma = memchr(in + pos, ',', len - pos);
		size_t end = comma ? (size_t)(comma - in) : len;
		size_t start = pos;

		pos = end + 1;
		while (start < end && is_ows(in[start]))
			start++;
		while (end > start && is_ows(in[end - 1]))
			end--;
		if (start == end)
			continue;

		const char *member = in + start;
		size_t member_len = end - start;
		const char *eq = memchr(member, '=', member_len);
		if (!eq)
			return -1;
		size_t key_len = (size_t)(eq - member);
		if (!is_key(member, key_len) || !is_value(eq + 1, member_len - key_len - 1))
			return -1;
		if (members == TRACESTATE_MEMBERS_MAX)
			return -1;
		members++;
		if (key_kept(out, kept, n_kept, member, key_len))
			continue;
		if (out_len > 0)
			out[out_len++] = ',';
		kept[n_kept].at = out_len;
		kept[n_kept].len = key_len;
		n_kept++;
		memcpy(out + out_len, member, member_len);
		out_len += member_len;
	}
	return (int)out_len;
}
