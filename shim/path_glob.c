/*
 * path_glob.c - shell-style matching of paths against log path patterns.
 *
 * Runs inside open() hooks: no allocation, no locale, no libc calls that may
 * allocate. Backtracks only to the last '*', so the cost is at most
 * O(pattern x path).
 */
#include "path_glob.h"

#include <stddef.h>

/* Matches one bracket expression at *pp against c and advances *pp past
 * it. A bracket with no closing ']' is a literal '['. */
static bool match_bracket(const char **pp, char c)
{
	const char *p = *pp + 1;
	bool negate = false, found = false;
	if (*p == '!' || *p == '^') {
		negate = true;
		p++;
	}
	const char *first = p;
	while (*p && (*p != ']' || p == first)) {
		unsigned char lo = (unsigned char)*p, hi = lo;
		if (p[1] == '-' && p[2] && p[2] != ']') {
			hi = (unsigned char)p[2];
			p += 3;
		} else {
			p++;
		}
		found |= lo <= (unsigned char)c && (unsigned char)c <= hi;
	}
	if (*p != ']') {
		*pp += 1;
		return c == '[';
	}
	*pp = p + 1;
	return found != negate && c != '/';
}

bool path_glob_match(const char *pattern, const char *path)
{
	const char *p = pattern, *s = path;
	const char *star_p = NULL, *star_s = NULL;

	while (*s) {
		if (*p == '*') {
			while (*p == '*')
				p++;
			star_p = p;
			star_s = s;
			continue;
		}
		if (*p) {
			const char *next = p;
			bool ok;
			if (*p == '?') {
				ok = *s != '/';
				next = p + 1;
			} else if (*p == '[') {
				ok = match_bracket(&next, *s);
			} else if (*p == '\\' && p[1]) {
				ok = p[1] == *s;
				next = p + 2;
			} else {
				ok = *p == *s;
				next = p + 1;
			}
			if (ok) {
				p = next;
				s++;
				continue;
			}
		}
		/* Mismatch: let the last '*' swallow one more character, but never
		 * a '/'. */
		if (!star_p || *star_s == '/')
			return false;
		p = star_p;
		s = ++star_s;
	}
	while (*p == '*')
		p++;
	return *p == '\0';
}
