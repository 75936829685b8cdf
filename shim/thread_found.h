/*
 * thread_found.h - what a thread was doing when attach found it, read from
 * the text of its /proc/self/task/TID/syscall and wchan files (attach.c's
 * thread scan, note_unseen_threads), and the small parsers of /proc text
 * attach uses.
 *
 * Pure logic: no system call, no allocation, no libc parser (each function
 * the library imports costs every process's start a lookup).
 */
#ifndef REQID_THREAD_FOUND_H
#define REQID_THREAD_FOUND_H

#include <stdbool.h>

enum found {
	FOUND_IDLE,    /* waiting for work or input: taken for none */
	FOUND_AT_WORK, /* running, or asleep in a call made in the middle of
			  its work: it may be running a batch the shim never
			  saw, and a sleep, a lock or a one-descriptor poll of
			  a handler's does not end it */
	FOUND_IN_WAIT, /* in a wait that may be on several descriptors, whose
			  events it may serve next */
};

/* What the thread was doing. syscall_text: its syscall file ("NR ARG1 ...
 * SP PC" in hex after NR, "running", or "-1 SP PC" blocked outside a
 * system call), NULL if it could not be read (a process that changed its
 * user: the file is root's). wchan_text: its wchan file (the kernel
 * function it sleeps in, "0" running), NULL if not read or not readable.
 *   FOUND_IN_WAIT  epoll, select, a poll on several descriptors (a poll
 *                  on one is a read that waits, as APR's sockets do);
 *   FOUND_IDLE     a read or receive, accept, a blocking connect, a futex
 *                  wait with a bitset (a condition, semaphore, read-write
 *                  lock or join: glibc's since 2.25; a pool's worker
 *                  waiting for a job), a wait for a child or a signal;
 *   FOUND_AT_WORK  running, or any other call: a write to a slow pipe, a
 *                  mutex (a plain futex wait, a PI lock), a sleep, a sync.
 * A call the injector's stop interrupted and the kernel restarts as
 * restart_syscall (a timed poll, futex wait or sleep: select and ppoll
 * restart as themselves) keeps its arguments: its kernel function tells
 * which it was. With no syscall text, from wchan alone: "0" (or nothing)
 * at work; any function of epoll's, poll's or select's (ep_poll,
 * do_sys_poll, poll_schedule_timeout, do_select) a wait on several
 * descriptors, a poll on one too; any other idle.
 * Taken for idle though it may be in the middle of a batch: an event
 * loop's thread asleep in a read of a blocking file or pipe, or on a
 * condition, a semaphore or a read-write lock (it is not told from a
 * pool's worker there). */
enum found thread_found_from(const char *syscall_text, const char *wchan_text);

/* Whether thread_found_from needs the wchan text besides this syscall
 * text (NULL: unreadable). */
bool thread_found_needs_wchan(const char *syscall_text);

/* A decimal number at s (an optional '-', at most 18 digits); *end after it. */
long proc_decimal_at(const char *s, const char **end);

/* A hex number at s, after spaces and an optional 0x (at most 16 digits);
 * *end after it. */
unsigned long proc_hex_at(const char *s, const char **end);

/* Whether word is in s. */
bool proc_has_word(const char *s, const char *word);

#endif
