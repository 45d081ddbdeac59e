/*
 * twisted-turn's batching UDP I/O; see turnio.h for the contract.
 */
#define _GNU_SOURCE
#include "turnio.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#ifndef SOL_UDP
#define SOL_UDP 17
#endif

/* Largest GSO segment: 1500-byte MTU minus IP and UDP headers, so a GSO send never exceeds the
 * path MTU of an ordinary link (the kernel refuses that with EINVAL, which would cost GSO). */
#define TT_GSO_SEGMENT_IPV4 1472
#define TT_GSO_SEGMENT_IPV6 1452
/* Largest total payload of one GSO send (an IP datagram's 16-bit length, with headroom). */
#define TT_GSO_MAX_BYTES 65000
/* Datagrams queued for one sendmmsg call. */
#define TT_SENDMMSG_BATCH 256

struct tt_stats tt_stats = {.gso_enabled = 1};
struct tt_inject tt_inject;

/* Whether the next send fails by injection (tests only); sets errno like the call would. */
static int injected_failure(void)
{
    if (tt_inject.calls <= 0)
        return 0;
    tt_inject.calls--;
    errno = tt_inject.error;
    return 1;
}

void tt_reset_stats(void)
{
    int enabled = tt_stats.gso_enabled, why = tt_stats.gso_errno;
    memset(&tt_stats, 0, sizeof tt_stats);
    tt_stats.gso_enabled = enabled;
    tt_stats.gso_errno = why;
}

int tt_gso_compiled(void)
{
#ifdef UDP_SEGMENT
    return 1;
#else
    return 0;
#endif
}

struct tt_rx *tt_rx_new(unsigned int capacity, unsigned int slot)
{
    struct tt_rx *rx;
    struct mmsghdr *headers;
    struct iovec *vectors;
    struct sockaddr_storage *storage;
    unsigned int i;

    if (capacity == 0 || slot == 0)
        return NULL;
    rx = calloc(1, sizeof *rx);
    if (rx == NULL)
        return NULL;
    rx->capacity = capacity;
    rx->slot = slot;
    rx->buffers = malloc((size_t)capacity * slot);
    rx->lengths = calloc(capacity, sizeof *rx->lengths);
    rx->keys = calloc(capacity, sizeof *rx->keys);
    rx->names = calloc(capacity, TT_NAME_SIZE);
    rx->headers = headers = calloc(capacity, sizeof *headers);
    rx->vectors = vectors = calloc(capacity, sizeof *vectors);
    rx->storage = storage = calloc(capacity, sizeof *storage);
    if (!rx->buffers || !rx->lengths || !rx->keys || !rx->names || !headers || !vectors ||
        !storage) {
        tt_rx_free(rx);
        return NULL;
    }
    for (i = 0; i < capacity; i++) {
        vectors[i].iov_base = rx->buffers + (size_t)i * slot;
        vectors[i].iov_len = slot;
        headers[i].msg_hdr.msg_iov = &vectors[i];
        headers[i].msg_hdr.msg_iovlen = 1;
        headers[i].msg_hdr.msg_name = &storage[i];
    }
    return rx;
}

void tt_rx_free(struct tt_rx *rx)
{
    if (rx == NULL)
        return;
    free(rx->buffers);
    free(rx->lengths);
    free(rx->keys);
    free(rx->names);
    free(rx->headers);
    free(rx->vectors);
    free(rx->storage);
    free(rx);
}

static unsigned int histogram_bucket(unsigned int n)
{
    unsigned int bucket = 0;
    while (n > 1 && bucket < TT_HISTOGRAM_BUCKETS - 1) {
        n >>= 1;
        bucket++;
    }
    return bucket;
}

int tt_recv(struct tt_rx *rx, int fd, unsigned int want)
{
    struct mmsghdr *headers = rx->headers;
    struct sockaddr_storage *storage = rx->storage;
    unsigned int i, kept = 0;
    int n;

    if (want > rx->capacity)
        want = rx->capacity;
    for (i = 0; i < want; i++) {
        headers[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_storage);
        headers[i].msg_hdr.msg_flags = 0;
    }
    do {
        n = recvmmsg(fd, headers, want, MSG_DONTWAIT, NULL);
    } while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;
    if (n == 0)
        return 0;
    tt_stats.recv_calls++;
    tt_stats.recv_histogram[histogram_bucket((unsigned int)n)]++;
    for (i = 0; i < (unsigned int)n; i++) {
        const struct sockaddr *name = (const struct sockaddr *)&storage[i];
        if (headers[i].msg_hdr.msg_flags & MSG_TRUNC) {
            tt_stats.recv_truncated++;
            continue;
        }
        /* Close the gaps left by truncated datagrams, so Python sees 0..kept-1. */
        if (kept != i) {
            memcpy(rx->buffers + (size_t)kept * rx->slot, rx->buffers + (size_t)i * rx->slot,
                   headers[i].msg_len);
        }
        rx->lengths[kept] = headers[i].msg_len;
        memcpy(rx->names + (size_t)kept * TT_NAME_SIZE, name, TT_NAME_SIZE);
        if (name->sa_family == AF_INET) {
            const struct sockaddr_in *in4 = (const struct sockaddr_in *)name;
            rx->keys[kept] = ((uint64_t)ntohl(in4->sin_addr.s_addr) << 16) | ntohs(in4->sin_port);
        } else {
            rx->keys[kept] = TT_KEY_OTHER;
        }
        kept++;
    }
    tt_stats.recv_datagrams += kept;
    return (int)kept;
}

int tt_rx_address(struct tt_rx *rx, unsigned int i, uint8_t *host, uint16_t *port,
                  uint32_t *scope)
{
    struct sockaddr_storage name;

    if (i >= rx->capacity)
        return 0;
    memset(&name, 0, sizeof name);
    memcpy(&name, rx->names + (size_t)i * TT_NAME_SIZE, TT_NAME_SIZE);
    if (name.ss_family == AF_INET) {
        const struct sockaddr_in *in4 = (const struct sockaddr_in *)&name;
        memcpy(host, &in4->sin_addr, 4);
        *port = ntohs(in4->sin_port);
        *scope = 0;
        return AF_INET;
    }
    if (name.ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)&name;
        memcpy(host, &in6->sin6_addr, 16);
        *port = ntohs(in6->sin6_port);
        *scope = in6->sin6_scope_id;
        return AF_INET6;
    }
    return 0;
}

int tt_pack_name(int family, const uint8_t *host, uint16_t port, uint32_t scope, char *name)
{
    memset(name, 0, TT_NAME_SIZE);
    if (family == AF_INET) {
        struct sockaddr_in in4;
        memset(&in4, 0, sizeof in4);
        in4.sin_family = AF_INET;
        in4.sin_port = htons(port);
        memcpy(&in4.sin_addr, host, 4);
        memcpy(name, &in4, sizeof in4);
        return 0;
    }
    if (family == AF_INET6) {
        struct sockaddr_in6 in6;
        memset(&in6, 0, sizeof in6);
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(port);
        in6.sin6_scope_id = scope;
        memcpy(&in6.sin6_addr, host, 16);
        memcpy(name, &in6, sizeof in6);
        return 0;
    }
    return -1;
}

static socklen_t name_length(const char *name)
{
    sa_family_t family;
    memcpy(&family, name, sizeof family);
    return family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/* Datagrams waiting for one sendmmsg call. */
struct pending {
    struct mmsghdr headers[TT_SENDMMSG_BATCH];
    struct iovec vectors[TT_SENDMMSG_BATCH];
    unsigned int count;
};

static void count_drop(int error, uint64_t datagrams)
{
    if (error == EAGAIN || error == EWOULDBLOCK) {
        tt_stats.drop_eagain += datagrams;
    } else if (error == ENOBUFS) {
        tt_stats.drop_enobufs += datagrams;
    } else {
        tt_stats.drop_error += datagrams;
        tt_stats.last_error = error;
    }
}

static void flush_pending(int fd, struct pending *p)
{
    unsigned int done = 0, i;
    int n;

    while (done < p->count) {
        n = injected_failure() ? -1
                               : sendmmsg(fd, p->headers + done, p->count - done, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        tt_stats.sendmmsg_calls++;
        if (n > 0) {
            for (i = done; i < done + (unsigned int)n; i++)
                tt_stats.sent_bytes += p->headers[i].msg_len;
            tt_stats.sent_datagrams += (unsigned int)n;
            done += (unsigned int)n;
            continue;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            /* The socket or the host is out of buffers: the rest would fail the same way. */
            count_drop(errno, p->count - done);
            break;
        }
        /* This datagram's own problem (too big, unreachable, refused): drop it, go on. */
        count_drop(errno, 1);
        done++;
    }
    p->count = 0;
}

static void add_pending(int fd, struct pending *p, const char *data, uint32_t length,
                        const char *name)
{
    struct msghdr *h;

    if (p->count == TT_SENDMMSG_BATCH)
        flush_pending(fd, p);
    p->vectors[p->count].iov_base = (void *)data;
    p->vectors[p->count].iov_len = length;
    h = &p->headers[p->count].msg_hdr;
    memset(h, 0, sizeof *h);
    h->msg_name = (void *)name;
    h->msg_namelen = name_length(name);
    h->msg_iov = &p->vectors[p->count];
    h->msg_iovlen = 1;
    p->count++;
}

/* 0 when sent (or dropped and counted); 1 when GSO was refused and the run must go by sendmmsg. */
static int send_gso(int fd, const char *data, uint32_t total, uint16_t segment, const char *name,
                    unsigned int datagrams)
{
#ifdef UDP_SEGMENT
    struct iovec vector = {(void *)data, total};
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } control;
    struct msghdr h;
    struct cmsghdr *c;
    ssize_t n;

    memset(&h, 0, sizeof h);
    memset(&control, 0, sizeof control);
    h.msg_name = (void *)name;
    h.msg_namelen = name_length(name);
    h.msg_iov = &vector;
    h.msg_iovlen = 1;
    h.msg_control = control.buf;
    h.msg_controllen = sizeof control.buf;
    c = CMSG_FIRSTHDR(&h);
    c->cmsg_level = SOL_UDP;
    c->cmsg_type = UDP_SEGMENT;
    c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
    memcpy(CMSG_DATA(c), &segment, sizeof segment);
    do {
        n = injected_failure() ? -1 : sendmsg(fd, &h, MSG_DONTWAIT);
    } while (n < 0 && errno == EINTR);
    if (n >= 0) {
        tt_stats.gso_sends++;
        tt_stats.gso_datagrams += datagrams;
        tt_stats.sent_datagrams += datagrams;
        tt_stats.sent_bytes += total;
        return 0;
    }
    if (errno == EINVAL || errno == ENOPROTOOPT || errno == EOPNOTSUPP || errno == EIO) {
        tt_stats.gso_enabled = 0;
        tt_stats.gso_errno = errno;
        return 1;
    }
    count_drop(errno, datagrams);
    return 0;
#else
    (void)fd; (void)data; (void)total; (void)segment; (void)name; (void)datagrams;
    tt_stats.gso_enabled = 0;
    tt_stats.gso_errno = EOPNOTSUPP;
    return 1;
#endif
}

int tt_send(int fd, const char *data, const uint32_t *lengths, size_t count,
            const char *names, const uint32_t *groups, size_t ngroups, int flags)
{
    static struct pending pending;
    int result = 0;
    size_t g, index = 0, offset = 0;

    tt_stats.flushes++;
    pending.count = 0;
    for (g = 0; g < ngroups && index < count; g++) {
        const char *name = names + g * TT_NAME_SIZE;
        size_t end = index + groups[g];
        unsigned int pending_from_group = 0;
        uint32_t largest_segment = name_length(name) == sizeof(struct sockaddr_in6)
                                       ? TT_GSO_SEGMENT_IPV6
                                       : TT_GSO_SEGMENT_IPV4;
        if (end > count)
            end = count;
        while (index < end) {
            uint32_t segment = lengths[index];
            if ((flags & TT_SEND_GSO) && tt_stats.gso_enabled && segment > 0 &&
                segment <= largest_segment) {
                size_t run = 1;
                uint32_t total = segment;
                while (index + run < end && run < TT_GSO_MAX_SEGMENTS &&
                       lengths[index + run] == segment && total + segment <= TT_GSO_MAX_BYTES) {
                    total += segment;
                    run++;
                }
                /* The last datagram of a run may be shorter. */
                if (index + run < end && run < TT_GSO_MAX_SEGMENTS &&
                    lengths[index + run] > 0 && lengths[index + run] < segment &&
                    total + lengths[index + run] <= TT_GSO_MAX_BYTES) {
                    total += lengths[index + run];
                    run++;
                }
                if (run >= 2) {
                    /* Keep this destination's order: its earlier singles go first. */
                    if (pending_from_group) {
                        flush_pending(fd, &pending);
                        pending_from_group = 0;
                    }
                    if (send_gso(fd, data + offset, total, (uint16_t)segment, name,
                                 (unsigned int)run) == 0) {
                        index += run;
                        offset += total;
                        continue;
                    }
                    result |= TT_GSO_TURNED_OFF;
                    /* Refused: the same datagrams go out through sendmmsg below. */
                }
            }
            if (pending.count == TT_SENDMMSG_BATCH)
                pending_from_group = 0;
            add_pending(fd, &pending, data + offset, lengths[index], name);
            pending_from_group++;
            offset += lengths[index];
            index++;
        }
    }
    flush_pending(fd, &pending);
    return result;
}
