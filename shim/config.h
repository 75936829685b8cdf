/*
 * config.h - the shim's settings, parsed from REQID_* environment variables.
 *
 * Pure logic: parsing takes a lookup function, so unit tests feed a fake
 * environment. Never allocates, never does I/O; an invalid value leaves that
 * setting at its default and is reported through the warnings mask.
 */
#ifndef REQID_CONFIG_H
#define REQID_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_MAX_HEADERS 8
#define CONFIG_MAX_HEADER_NAME 63
#define CONFIG_MAX_FIELD 63
#define CONFIG_MAX_LOG_FDS 16
#define CONFIG_MAX_FD 1048575
#define CONFIG_MAX_OUTSIDE 128
#define CONFIG_MAX_LOG_PATHS 16
#define CONFIG_MAX_LOG_PATH 255
#define CONFIG_MAX_FIELDS 3
#define CONFIG_MAX_AUDIT_DIR 200

enum log_format { FORMAT_JSON, FORMAT_PREFIX, FORMAT_LOGFMT };

/* What a log line can carry (REQID_FIELDS): the request id, and the
 * request's trace as the OpenTelemetry log data model names it. */
enum log_field { FIELD_REQUEST_ID, FIELD_TRACE_ID, FIELD_SPAN_ID };

/* One warning bit per variable whose value was rejected. */
enum config_warning {
	WARN_FORMAT = 1 << 0,
	WARN_FIELD = 1 << 1,
	WARN_HEADERS = 1 << 2,
	WARN_LOG_FDS = 1 << 3,
	WARN_OUTSIDE = 1 << 4,
	WARN_DISABLE = 1 << 5,
	WARN_LOG_PATHS = 1 << 6,
	WARN_RESPONSE_HEADER = 1 << 7,
	WARN_FIELDS = 1 << 8,
	WARN_PROPAGATE = 1 << 9,
	WARN_EVENT_STACKS = 1 << 10,
	WARN_EVENT_BRACKETS = 1 << 11,
	WARN_AUDIT_DIR = 1 << 12,
	WARN_JOIN_OPEN = 1 << 13,
	WARN_PROXY_PROTOCOL = 1 << 14,
};

struct header_name {
	uint8_t len;
	char name[CONFIG_MAX_HEADER_NAME + 1]; /* lowercase, NUL-terminated */
};

struct reqid_config {
	uint8_t log_path_count;
	bool disabled;
	bool proxy_protocol; /* connections begin with a PROXY protocol header
				the program reads (behind a load balancer) */
	enum log_format format;
	uint8_t field_len;
	char field[CONFIG_MAX_FIELD + 1]; /* name of the request_id field */
	uint8_t field_count;
	uint8_t fields[CONFIG_MAX_FIELDS]; /* enum log_field, in output order */
	bool propagate; /* outbound requests get traceparent and the id header */
	bool event_stacks; /* event loops: one event per epoll_wait, handler lines
			      proven by call chains (event_batch.h) */
	bool event_brackets; /* event loops: nested brackets too (event_batch.h);
				off by default: a dispatcher that runs another
				request's timer between two I/O calls on one
				connection defeats them */
	uint8_t outside_len; /* 0: lines outside a request carry no id */
	char outside[CONFIG_MAX_OUTSIDE + 1];
	uint8_t header_count;
	struct header_name headers[CONFIG_MAX_HEADERS]; /* precedence order */
	uint8_t log_fd_count;
	int log_fds[CONFIG_MAX_LOG_FDS];
	uint8_t response_header_len; /* 0: responses get no header */
	char response_header[CONFIG_MAX_HEADER_NAME + 1]; /* as given; also the
							     id header of outbound
							     requests */
	bool join_open; /* attach: join connections read from before attach,
			   mid-stream (conn_table.h, enum join_state) */
	uint8_t audit_dir_len; /* 0: no audit (reqid audit sets it) */
	char audit_dir[CONFIG_MAX_AUDIT_DIR + 1]; /* absolute: where each process
						     appends its audit records */
	/* Last, apart from the rest: the defaults leave these bytes as they
	 * are (only the first log_path_count entries mean anything), so a
	 * process without REQID_LOG_PATHS never touches their pages. */
	char log_paths[CONFIG_MAX_LOG_PATHS][CONFIG_MAX_LOG_PATH + 1]; /* globs */
};

/* Returns the value of an environment variable, or NULL when unset. */
typedef const char *(*config_lookup)(const char *name);

/* Fills cfg with the defaults, then applies every REQID_* variable that
 * lookup returns. Returns a mask of enum config_warning for rejected values. */
unsigned config_parse(struct reqid_config *cfg, config_lookup lookup);

/* The variable name for one warning bit, for messages. */
const char *config_warning_variable(unsigned warning_bit);

/* REQID_LOG_IDS: the files (device and inode) an exec'ing process wrote its
 * logs to, "dev:ino" in hex, comma-separated. A program started with it
 * treats a configured log descriptor as a log only if it is one of those
 * files, so a pipe its parent set up to read its output stays data. */
#define LOG_IDS_VARIABLE "REQID_LOG_IDS"

/* REQID_REQUEST_ID: the id of the request a program was exec'ed for (a CGI
 * script, a helper): the program's lines carry it. */
#define REQUEST_VARIABLE "REQID_REQUEST_ID"

/* REQID_TRACEPARENT, REQID_TRACESTATE: that request's trace, as
 * "00-<trace-id>-<the request's span id>-<flags>" and its tracestate. */
#define TRACEPARENT_VARIABLE "REQID_TRACEPARENT"
#define TRACESTATE_VARIABLE "REQID_TRACESTATE"

bool log_ids_contain(const char *ids, uint64_t dev, uint64_t ino);

/* Appends ",dev:ino" (no comma when len is 0) to buf of size bytes holding
 * len bytes, NUL-terminated; returns the new length, or len if it does not
 * fit. */
size_t log_ids_append(char *buf, size_t len, size_t size, uint64_t dev, uint64_t ino);

#endif
