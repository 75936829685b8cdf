/*
 * config.c - parsing REQID_* variables into struct reqid_config.
 *
 * Runs once at start-up (or at the first hooked call, if that comes before
 * the constructor). Must never allocate or do I/O: it may run inside another
 * library's constructor, before malloc is safe to call from here.
 */
#include "config.h"

#include <stddef.h>
#include <string.h>

static const char *const default_headers[] = {
	"x-request-id", "x-correlation-id", "x-trace-id", "traceparent",
};

static bool is_id_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == ':' || c == '-';
}

static bool is_field_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	       (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '@' || c == '-';
}

/* RFC 7230 tchar. */
static bool is_token_char(unsigned char c)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
		return true;
	return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static unsigned char to_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? (unsigned char)(c + 32) : c;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool parse_format(const char *v, enum log_format *out)
{
	if (strcmp(v, "json") == 0)
		*out = FORMAT_JSON;
	else if (strcmp(v, "prefix") == 0)
		*out = FORMAT_PREFIX;
	else if (strcmp(v, "logfmt") == 0)
		*out = FORMAT_LOGFMT;
	else
		return false;
	return true;
}

static bool same_word(const char *v, const char *word)
{
	for (; *v && *word; v++, word++)
		if (to_lower((unsigned char)*v) != (unsigned char)*word)
			return false;
	return *v == *word;
}

/* A yes/no setting. A value that is neither clearly on nor clearly off is
 * reported and sets *out to unclear, the side that changes least
 * (REQID_DISABLE: disabled; REQID_PROPAGATE, REQID_EVENT_STACKS,
 * REQID_EVENT_BRACKETS: off). */
static bool parse_switch(const char *v, bool *out, bool unclear)
{
	static const char *const on[] = {"1", "true", "yes", "on"};
	static const char *const off[] = {"0", "false", "no", "off", ""};
	for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++)
		if (same_word(v, on[i])) {
			*out = true;
			return true;
		}
	for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++)
		if (same_word(v, off[i])) {
			*out = false;
			return true;
		}
	*out = unclear;
	return false;
}

/* Comma-separated field names, each at most once; all or nothing. */
static bool parse_fields(const char *v, struct reqid_config *cfg)
{
	static const char *const names[] = {"request_id", "trace_id", "span_id"};
	uint8_t fields[CONFIG_MAX_FIELDS];
	uint8_t count = 0, seen = 0;
	for (const char *p = v;;) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		while (p < end && is_blank(*p))
			p++;
		size_t n = (size_t)(end - p);
		while (n > 0 && is_blank(p[n - 1]))
			n--;
		uint8_t f = 0;
		while (f < CONFIG_MAX_FIELDS && (strlen(names[f]) != n || memcmp(names[f], p, n) != 0))
			f++;
		if (f == CONFIG_MAX_FIELDS || (seen & 1u << f))
			return false;
		seen |= (uint8_t)(1u << f);
		fields[count++] = f;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	memcpy(cfg->fields, fields, count);
	cfg->field_count = count;
	return true;
}

/* Copies v into dst if it is 1..max chars all accepted by ok(). */
static bool parse_word(const char *v, bool (*ok)(unsigned char), size_t max,
		       char *dst, uint8_t *dst_len)
{
	size_t n = strlen(v);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!ok((unsigned char)v[i]))
			return false;
	memcpy(dst, v, n);
	dst[n] = '\0';
	*dst_len = (uint8_t)n;
	return true;
}

/* An absolute path, no control characters. */
static bool is_path_char(unsigned char c)
{
	return c >= 0x20 && c != 0x7f;
}

static bool parse_audit_dir(const char *v, struct reqid_config *cfg)
{
	return v[0] == '/' && parse_word(v, is_path_char, CONFIG_MAX_AUDIT_DIR, cfg->audit_dir,
					 &cfg->audit_dir_len);
}

/* Comma-separated header names; all or nothing. */
static bool parse_headers(const char *v, struct reqid_config *cfg)
{
	struct header_name parsed[CONFIG_MAX_HEADERS];
	uint8_t count = 0;
	const char *p = v;
	for (;;) {
		const char *end = strchr(p, ',');
		if (!end)
			end = p + strlen(p);
		const char *a = p, *b = end;
		while (a < b && is_blank(*a))
			a++;
		while (b > a && is_blank(b[-1]))
			b--;
		size_t n = (size_t)(b - a);
		if (n == 0 || n > CONFIG_MAX_HEADER_NAME || count == CONFIG_MAX_HEADERS)
			return false;
		for (size_t i = 0; i < n; i++) {
			if (!is_token_char((unsigned char)a[i]))
				return false;
			parsed[count].name[i] = (char)to_lower((unsigned char)a[i]);
		}
		parsed[count].name[n] = '\0';
		parsed[count].len = (uint8_t)n;
		count++;
		if (*end == '\0')
			break;
		p = end + 1;
	}
	memcpy(cfg->headers, parsed, sizeof(parsed[0]) * count);
	cfg->header_count = count;
	return true;
}

/* Comma-separated fds; all or nothing; duplicates dropped. */
static bool parse_log_fds(const char *v, struct reqid_config *cfg)
{
	int fds[CONFIG_MAX_LOG_FDS];
	uint8_t count = 0;
	const char *p = v;
	if (*p == '\0') {
		cfg->log_fd_count = 0;
		return true;
	}
	for (;;) {
		while (is_blank(*p))
			p++;
		if (*p < '0' || *p > '9')
			return false;
		long fd = 0;
		while (*p >= '0' && *p <= '9') {
			fd = fd * 10 + (*p++ - '0');
			if (fd > CONFIG_MAX_FD)
				return false;
		}
		while (is_blank(*p))
			p++;
		bool dup = false;
		for (uint8_t i = 0; i < count; i++)
			dup |= fds[i] == (int)fd;
		if (!dup) {
			if (count == CONFIG_MAX_LOG_FDS)
				return false;
			fds[count++] = (int)fd;
		}
		if (*p == '\0')
			break;
		if (*p++ != ',')
			return false;
	}
	memcpy(cfg->log_fds, fds, sizeof(fds[0]) * count);
	cfg->log_fd_count = count;
	return true;
}

/* Colon-separated path globs; all or nothing. Empty: none. */
static bool parse_log_paths(const char *v, struct reqid_config *cfg)
{
	uint8_t count = 0;
	cfg->log_path_count = 0;
	for (const char *p = v; *v;) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		if (n == 0 || n > CONFIG_MAX_LOG_PATH || count == CONFIG_MAX_LOG_PATHS)
			return false;
		memcpy(cfg->log_paths[count], p, n);
		cfg->log_paths[count][n] = '\0';
		count++;
		if (!end)
			break;
		p = end + 1;
	}
	cfg->log_path_count = count;
	return true;
}

static void set_defaults(struct reqid_config *cfg)
{
	_Static_assert(offsetof(struct reqid_config, log_paths) + sizeof(cfg->log_paths) ==
			       sizeof(struct reqid_config),
		       "log_paths comes last");
	memset(cfg, 0, offsetof(struct reqid_config, log_paths));
	cfg->format = FORMAT_JSON;
	memcpy(cfg->field, "request_id", sizeof("request_id"));
	cfg->field_len = sizeof("request_id") - 1;
	cfg->fields[0] = FIELD_REQUEST_ID;
	cfg->field_count = 1;
	cfg->propagate = true;
	cfg->event_stacks = true;
	for (size_t i = 0; i < sizeof(default_headers) / sizeof(default_headers[0]); i++) {
		size_t n = strlen(default_headers[i]);
		memcpy(cfg->headers[i].name, default_headers[i], n + 1);
		cfg->headers[i].len = (uint8_t)n;
	}
	cfg->header_count = sizeof(default_headers) / sizeof(default_headers[0]);
	cfg->log_fds[0] = 1;
	cfg->log_fds[1] = 2;
	cfg->log_fd_count = 2;
	memcpy(cfg->response_header, "X-Request-ID", sizeof("X-Request-ID"));
	cfg->response_header_len = sizeof("X-Request-ID") - 1;
}

unsigned config_parse(struct reqid_config *cfg, config_lookup lookup)
{
	unsigned warnings = 0;
	const char *v;

	set_defaults(cfg);
	if ((v = lookup("REQID_DISABLE")) && !parse_switch(v, &cfg->disabled, true))
		warnings |= WARN_DISABLE;
	if ((v = lookup("REQID_FORMAT")) && !parse_format(v, &cfg->format))
		warnings |= WARN_FORMAT;
	if ((v = lookup("REQID_FIELD")) &&
	    !parse_word(v, is_field_char, CONFIG_MAX_FIELD, cfg->field, &cfg->field_len))
		warnings |= WARN_FIELD;
	if ((v = lookup("REQID_FIELDS")) && !parse_fields(v, cfg))
		warnings |= WARN_FIELDS;
	if ((v = lookup("REQID_PROPAGATE")) && !parse_switch(v, &cfg->propagate, false))
		warnings |= WARN_PROPAGATE;
	if ((v = lookup("REQID_EVENT_STACKS")) && !parse_switch(v, &cfg->event_stacks, false))
		warnings |= WARN_EVENT_STACKS;
	if ((v = lookup("REQID_EVENT_BRACKETS")) && !parse_switch(v, &cfg->event_brackets, false))
		warnings |= WARN_EVENT_BRACKETS;
	if ((v = lookup("REQID_OUTSIDE")) && *v &&
	    !parse_word(v, is_id_char, CONFIG_MAX_OUTSIDE, cfg->outside, &cfg->outside_len))
		warnings |= WARN_OUTSIDE;
	if ((v = lookup("REQID_HEADERS")) && !parse_headers(v, cfg))
		warnings |= WARN_HEADERS;
	if ((v = lookup("REQID_LOG_FDS")) && !parse_log_fds(v, cfg))
		warnings |= WARN_LOG_FDS;
	if ((v = lookup("REQID_LOG_PATHS")) && !parse_log_paths(v, cfg))
		warnings |= WARN_LOG_PATHS;
	if ((v = lookup("REQID_JOIN_OPEN")) && !parse_switch(v, &cfg->join_open, false))
		warnings |= WARN_JOIN_OPEN;
	if ((v = lookup("REQID_PROXY_PROTOCOL")) && !parse_switch(v, &cfg->proxy_protocol, false))
		warnings |= WARN_PROXY_PROTOCOL;
	if ((v = lookup("REQID_AUDIT_DIR")) && *v && !parse_audit_dir(v, cfg))
		warnings |= WARN_AUDIT_DIR;
	if ((v = lookup("REQID_RESPONSE_HEADER"))) {
		if (*v == '\0')
			cfg->response_header_len = 0;
		else if (!parse_word(v, is_token_char, CONFIG_MAX_HEADER_NAME, cfg->response_header,
				     &cfg->response_header_len))
			warnings |= WARN_RESPONSE_HEADER;
	}
	return warnings;
}

const char *config_warning_variable(unsigned warning_bit)
{
	switch (warning_bit) {
	case WARN_FORMAT: return "REQID_FORMAT";
	case WARN_FIELD: return "REQID_FIELD";
	case WARN_HEADERS: return "REQID_HEADERS";
	case WARN_LOG_FDS: return "REQID_LOG_FDS";
	case WARN_OUTSIDE: return "REQID_OUTSIDE";
	case WARN_DISABLE: return "REQID_DISABLE";
	case WARN_LOG_PATHS: return "REQID_LOG_PATHS";
	case WARN_RESPONSE_HEADER: return "REQID_RESPONSE_HEADER";
	case WARN_FIELDS: return "REQID_FIELDS";
	case WARN_PROPAGATE: return "REQID_PROPAGATE";
	case WARN_EVENT_STACKS: return "REQID_EVENT_STACKS";
	case WARN_EVENT_BRACKETS: return "REQID_EVENT_BRACKETS";
	case WARN_AUDIT_DIR: return "REQID_AUDIT_DIR";
	case WARN_JOIN_OPEN: return "REQID_JOIN_OPEN";
	case WARN_PROXY_PROTOCOL: return "REQID_PROXY_PROTOCOL";
	default: return "REQID_?";
	}
}

static bool parse_hex(const char **p, uint64_t *out)
{
	uint64_t v = 0;
	const char *s = *p;
	int digits = 0;
	for (;; s++, digits++) {
		int d = (*s >= '0' && *s <= '9') ? *s - '0' : (*s >= 'a' && *s <= 'f') ? *s - 'a' + 10 : -1;
		if (d < 0)
			break;
		if (digits == 16)
			return false;
		v = v << 4 | (uint64_t)d;
	}
	*p = s;
	*out = v;
	return digits > 0;
}

bool log_ids_contain(const char *ids, uint64_t dev, uint64_t ino)
{
	const char *p = ids;
	while (*p) {
		uint64_t d, i;
		if (!parse_hex(&p, &d) || *p++ != ':' || !parse_hex(&p, &i))
			return false;
		if (d == dev && i == ino)
			return true;
		if (*p == ',')
			p++;
		else if (*p)
			return false;
	}
	return false;
}

static size_t put_hex(char *out, uint64_t v)
{
	char tmp[16];
	size_t n = 0;
	do {
		tmp[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

size_t log_ids_append(char *buf, size_t len, size_t size, uint64_t dev, uint64_t ino)
{
	char item[1 + 16 + 1 + 16];
	size_t n = 0;
	if (len > 0)
		item[n++] = ',';
	n += put_hex(item + n, dev);
	item[n++] = ':';
	n += put_hex(item + n, ino);
	if (len + n + 1 > size)
		return len;
	memcpy(buf + len, item, n);
	buf[len + n] = '\0';
	return len + n;
}
