/*
 * log_order.h - the order in which this process answered its requests, and
 * for each log descriptor which of them its next access line is.
 *
 * An access log line written when nothing else says whose it is (a
 * buffered log's flush: nginx buffer=, lighttpd, Apache BufferedLogs) is
 * named by the request line it quotes (request_table.h). That alone is not
 * enough: a format that rebuilds the line from the path the server chose
 * (nginx "$request_method $uri $server_protocol" after index or rewrite,
 * lighttpd "%m %U %H" after mod_rewrite) logs a request for /d/ as
 * "GET /d/index.html HTTP/1.1", the line of whoever asked for
 * /d/index.html. But a server writes one line per request, in the order it
 * answers them: the line of /d/ comes at /d/'s place, not at the other's.
 *
 * So the shim keeps count. Answered requests (serial and request-line
 * buckets) go into a ring, in the order their responses ended (began, if
 * the shim does not follow responses). Each log
 * descriptor has a place in it: the oldest answered request none of its
 * lines has been taken for, and which of the next ones have. A line
 * quoting a request line is taken for the first request from there (within
 * ORDER_SEARCH) with the same buckets that no line has been taken for. It
 * is placed, that is may be named, only if that request is the oldest not
 * taken and the descriptor's last ORDER_QUIET lines taken were too, with
 * no hole since: a request left untaken while a line was taken
 * ORDER_HOLE_AGE or more requests after it (a request the server did not
 * log there, or one whose line was rebuilt into another's, which took that
 * other request instead). A line that comes late (its response began
 * before others' and ended after) only keeps the lines taken meanwhile
 * from being placed. Any line not taken so (out of order, or for no
 * request) sets the count of lines in order back to 0, each hole to one
 * less. So a rebuilt line names a request only if it comes right after
 * that one was answered and that one's own line comes later or elsewhere
 * (threads that log in another order than they answer, another virtual
 * host's log), and its path was rebuilt into exactly that request's.
 *
 * A descriptor's place is made when the program opens it, or at its first
 * line quoting a request line. One the program opened before it answered
 * any request is trusted from its second line taken in order; any other
 * starts where the ring is, distrusted until ORDER_QUIET lines were taken
 * in order. A file opened on a descriptor number whose place another
 * thread is using (counting a line of the closed file's) gets a new place,
 * the old one lost. A file opened on a number again, or put on it by dup2,
 * keeps what the number's lines showed (flushed, below): a rotated log is
 * written as the one before it.
 * Lock-free, no allocation: safe in hooks and signal handlers. A place
 * another thread is using or making is not waited for: that line is taken
 * for no request, and its request becomes a hole; it is still a buffer's
 * (below) if its descriptor's lines were shown to be, and shows them so.
 * A descriptor past ORDER_PLACES gets no place: its lines are taken for no
 * request, and once one such descriptor got a write of two lines, all
 * their lines are a buffer's (which one it was is not kept).
 */
#ifndef REQID_LOG_ORDER_H
#define REQID_LOG_ORDER_H

#include <stdbool.h>
#include <stdint.h>

#define ORDER_RING 4096   /* answered requests kept: how late a buffered log's line may come */
#define ORDER_SEARCH 128  /* requests from its place a line may be taken for */
#define ORDER_HOLE_AGE 16 /* how far behind a line's request one not taken is a hole */
#define ORDER_QUIET 16    /* lines taken in order before one is placed */
#define ORDER_PLACES 64   /* log descriptors with a place; more place no line */

/* Request serial was answered: its response began. buckets: of its
 * request line as it came (request_line_buckets; 0: none kept); path: of
 * the line a format of the path alone logs for it, if that differs (a
 * query dropped), else 0. */
void log_order_answered(uint64_t serial, uint32_t buckets, uint32_t path)
	__attribute__((visibility("hidden")));

/* The program opened log descriptor fd (a file whose path is a log's):
 * its lines are counted from here. */
void log_order_log_opened(int fd) __attribute__((visibility("hidden")));

/* A line written to log descriptor fd quotes a request line with buckets
 * (0: one too long to be kept, which matches a request with no line
 * counted): counts it, and returns the serial of the request it is placed
 * at; 0 if it is not placed. buffer: the line is the second of one write
 * to quote a request line. A server writes one access line per request,
 * as it answers it, so a write of two is a buffer's flush (Apache's
 * BufferedLogs, nginx's buffer=, lighttpd). *flushed says whether fd's
 * lines were ever shown so to be a buffer's: from then on, a flush of a
 * single line (the buffer held no more: Apache's lines of over half its
 * 4 KiB) is one too, written by whichever thread fills the buffer next,
 * and its line gets an id only where naming and the order agree. A place
 * started again (a file opened on the number again) stays shown. */
uint64_t log_order_line(int fd, uint32_t buckets, bool buffer, bool *flushed)
	__attribute__((visibility("hidden")));

/* At detach: the ring and the places are emptied, their pages given back. */
void log_order_release(void) __attribute__((visibility("hidden")));

#endif
