/*
 * twisted-turn's batching UDP I/O: recvmmsg into buffers owned here, and flushes of queued
 * datagrams as UDP GSO sends (sendmsg with UDP_SEGMENT) and sendmmsg.
 *
 * Plain C with no Python.h: cffi (native/build_turnio.py) builds the binding.  The reactor is
 * single-threaded, so the statistics and the GSO switch are process globals.
 */
#ifndef TWISTED_TURN_TURNIO_H
#define TWISTED_TURN_TURNIO_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of one packed destination: a sockaddr_in or sockaddr_in6, zero padded. */
#define TT_NAME_SIZE 28
/* keys[i] for a datagram from an IPv6 (or other non-IPv4) source. */
#define TT_KEY_OTHER 0x8000000000000000ULL
/* tt_send flags. */
#define TT_SEND_GSO 1
/* tt_send result bit: this call turned GSO off for the process. */
#define TT_GSO_TURNED_OFF 1
/* Most segments in one GSO send (the kernel's UDP_MAX_SEGMENTS was 64 for years). */
#define TT_GSO_MAX_SEGMENTS 64
#define TT_HISTOGRAM_BUCKETS 8

struct tt_rx {
    unsigned int capacity;   /* datagrams per recvmmsg */
    unsigned int slot;       /* bytes per datagram buffer */
    char *buffers;           /* capacity * slot bytes; datagram i at i * slot */
    uint32_t *lengths;       /* bytes received into buffer i */
    uint64_t *keys;          /* IPv4 source as address << 16 | port, else TT_KEY_OTHER */
    char *names;             /* capacity * TT_NAME_SIZE raw source addresses */
    void *headers;           /* private: struct mmsghdr[capacity] */
    void *vectors;           /* private: struct iovec[capacity] */
    void *storage;           /* private: struct sockaddr_storage[capacity] */
};

struct tt_stats {
    uint64_t recv_calls;          /* recvmmsg calls that returned datagrams */
    uint64_t recv_datagrams;
    uint64_t recv_histogram[TT_HISTOGRAM_BUCKETS]; /* per call: 1, 2-3, ..., 64-127, 128+ */
    uint64_t recv_truncated;      /* dropped: larger than the buffer */
    uint64_t flushes;             /* tt_send calls */
    uint64_t sent_datagrams;
    uint64_t sent_bytes;
    uint64_t gso_sends;
    uint64_t gso_datagrams;
    uint64_t sendmmsg_calls;
    uint64_t drop_eagain;
    uint64_t drop_enobufs;
    uint64_t drop_error;          /* any other send error: EMSGSIZE, EPERM, ENETUNREACH, ... */
    int gso_enabled;              /* cleared for good by the first GSO refusal */
    int gso_errno;                /* the errno that cleared it */
    int last_error;               /* errno of the latest drop_error */
};

extern struct tt_stats tt_stats;

/*
 * Fault injection for tests: the next `calls` send system calls (sendmmsg or GSO sendmsg) fail
 * with `error` instead of being made.  Zero in normal running; one comparison per call.
 */
struct tt_inject {
    int calls;
    int error;
};
extern struct tt_inject tt_inject;

struct tt_rx *tt_rx_new(unsigned int capacity, unsigned int slot);
void tt_rx_free(struct tt_rx *rx);
/* Receive up to want (<= capacity) datagrams; the count, or -errno. */
int tt_recv(struct tt_rx *rx, int fd, unsigned int want);
/*
 * Unpack source address i: its family (AF_INET or AF_INET6, else 0), with the address in
 * host (4 or 16 bytes), the port and the IPv6 scope id.
 */
int tt_rx_address(struct tt_rx *rx, unsigned int i, uint8_t *host, uint16_t *port,
                  uint32_t *scope);
/*
 * Send count datagrams stored back to back in data (lengths[i] bytes each), in ngroups groups
 * of groups[g] consecutive datagrams for destination names + g * TT_NAME_SIZE.  Runs of equal
 * size to one destination become GSO super-datagrams (a UDP_SEGMENT control message) when
 * flags has TT_SEND_GSO and GSO is still on; runs and single datagrams go out together, in
 * order, through sendmmsg: usually one system call per flush.  Never blocks: EAGAIN and
 * ENOBUFS drop and count.
 * Returns TT_GSO_TURNED_OFF when this call switched GSO off, else 0.
 */
int tt_send(int fd, const char *data, const uint32_t *lengths, size_t count,
            const char *names, const uint32_t *groups, size_t ngroups, int flags);
/* Pack a destination for tt_send; 0, or -1 for an unknown family. */
int tt_pack_name(int family, const uint8_t *host, uint16_t port, uint32_t scope, char *name);
/* Whether this kernel and libc define UDP_SEGMENT (GSO can be tried at all). */
int tt_gso_compiled(void);
void tt_reset_stats(void);

#endif
