/*
 * epoll_map.h - which descriptor an epoll event is about.
 *
 * epoll_wait hands back only the application's data word (often a pointer
 * to its own connection object); this map remembers what epoll_ctl
 * registered, so an event can be turned back into its fd. A lookup answers
 * only when exactly one live registration on that epoll instance carries
 * the data word: two fds registered with the same word, a registration the
 * map lost, or one made before the shim saw it all answer "unknown" (-1),
 * never a guess. (An attached process's registrations from before attach
 * are read from /proc: epoll_map_import.) Never allocates or blocks.
 */
#ifndef REQID_EPOLL_MAP_H
#define REQID_EPOLL_MAP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

#include "fork_hot.h"

/* epfd names a new epoll instance: registrations under its number before
 * are void. */
void epoll_map_new_instance(int epfd) __attribute__((visibility("hidden")));

/* attach, before the hooks come on: epfd is an epoll instance the program
 * made before the shim came in (shared: other threads may have waited on
 * it). From here on every epoll_ctl and close stamps what it changes.
 * False if the tables cannot be mapped. */
bool epoll_map_adopt_instance(int epfd, bool shared) __attribute__((visibility("hidden")));

/* attach, after the hooks came on: fd was registered on epfd with data and
 * events when /proc said so, and epfd and fd had the stamps given before it
 * was read: recorded as epoll_ctl would have, unless either changed since
 * (a hooked call knows better). conn: fd is an accepted connection,
 * counted as one. */
void epoll_map_import(int epfd, uint32_t epfd_stamp, int fd, uint32_t fd_stamp, uint64_t data,
		      uint32_t events, bool conn) __attribute__((visibility("hidden")));

/* epoll_ctl(epfd, EPOLL_CTL_ADD or MOD, fd) with data and events succeeded. */
void epoll_map_set(int epfd, int fd, uint64_t data, uint32_t events)
	__attribute__((visibility("hidden")));

/* fd's registration on epfd's current instance as the map has it (its
 * events mask and data word): false if it has none there, or its mask is
 * not known. */
bool epoll_map_registration(int epfd, int fd, struct epoll_event *out)
	__attribute__((visibility("hidden")));

/* epoll_ctl(epfd, EPOLL_CTL_DEL, fd) succeeded. */
void epoll_map_delete(int epfd, int fd) __attribute__((visibility("hidden")));

/* Detach, after every fd was forgotten: the tables are emptied and their
 * pages given back (zeroes are no registration: lookups answer -1). */
void epoll_map_release(void) __attribute__((visibility("hidden")));

/* Whether fd is registered on an epoll instance or is (or was) one: then
 * its closing must reach epoll_map_forget. */
bool epoll_map_tracks(int fd) __attribute__((visibility("hidden")));

/* fd is being closed or replaced (by this process: a vfork child shares the
 * map but not the descriptors). For an epoll instance's number the
 * registrations made under it are void, as for a new instance: dup2 or
 * F_DUPFD may put another instance on it. */
void epoll_map_forget(int fd) __attribute__((visibility("hidden")));

/* How often fd was closed, replaced, or registered, modified or deleted
 * on an epoll instance (or, for an epoll fd, made an instance), as a
 * number that changes each time; 0 before the first epoll instance. */
uint32_t epoll_map_stamp(int fd) __attribute__((visibility("hidden")));

/* epoll_ctl changed fd's registration on some instance. */
void epoll_map_changed(int fd) __attribute__((visibility("hidden")));

/* epoll_ctl made or changed a registration on epfd with EPOLLET or
 * EPOLLONESHOT: the kernel reports such an event once. */
void epoll_map_edge_registered(int epfd) __attribute__((visibility("hidden")));

/* Whether an edge-triggered or one-shot registration was ever made on
 * instance epfd (true when unknown). */
bool epoll_map_has_edges(int epfd) __attribute__((visibility("hidden")));

/* Thread tid waits on epfd: whether it is the only thread (of any
 * process) that ever waited on this instance. */
bool epoll_map_one_waiter(int epfd, int32_t tid) __attribute__((visibility("hidden")));

/* In a fork child: a writer the parent had is gone. */
void epoll_map_after_fork(void) __attribute__((visibility("hidden"))) FORK_PATH;

/* How many connections are registered on epfd now (as far as the map
 * knows: a registration it lost is not counted). */
unsigned epoll_map_connections(int epfd) __attribute__((visibility("hidden")));

/* The fd an event from epfd carrying data is about, or -1 if unknown. */
int epoll_map_lookup(int epfd, uint64_t data) __attribute__((visibility("hidden")));

/* epoll_map_lookup, also setting *events to the fd's registration's events
 * mask as epoll_map_registration(epfd, fd) would give it, or to 0 if that
 * would answer false (its mask not known, or changing meanwhile): one
 * lookup for both. */
int epoll_map_lookup_events(int epfd, uint64_t data, uint32_t *events)
	__attribute__((visibility("hidden")));

/* The hash the look-ups of (epfd, data) start from, the index slot where
 * they start asked of the cache (a hint): a batch's events looked up one
 * after another would each wait for memory in turn, an event loop's
 * connections' slots being seldom in the cache when the batch comes. */
uint64_t epoll_map_prefetch(int epfd, uint64_t data) __attribute__((visibility("hidden")));

/* epoll_map_lookup_events (epoll_map_lookup when events is NULL) with
 * hash = epoll_map_prefetch(epfd, data): the same answer. */
int epoll_map_lookup_hashed(int epfd, uint64_t data, uint64_t hash, uint32_t *events)
	__attribute__((visibility("hidden")));

/* A count that moves before and after every change of what
 * epoll_map_lookup answers from (a registration, an instance's
 * generation, the index, lookups stopping): a lookup made after reading it
 * would answer the same again while it reads the same. */
uint32_t epoll_map_changes(void) __attribute__((visibility("hidden")));

/* How many slots the index has now (0 before the first registration): what
 * its memory follows. */
unsigned epoll_map_index_slots(void) __attribute__((visibility("hidden")));

#endif
