/*
 * path_glob.h - matching file paths against REQID_LOG_PATHS patterns.
 *
 * Pure logic: no allocation, no recursion. Shell-style: '*' matches any run of characters except '/', '?' one
 * character except '/', "[...]" a set (ranges, '!' or '^' negation; no
 * escapes inside), '\' quotes the next character. The whole path must
 * match.
 */
#ifndef REQID_PATH_GLOB_H
#define REQID_PATH_GLOB_H

#include <stdbool.h>

bool path_glob_match(const char *pattern, const char *path);

#endif
