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

#ifdef UDP_SEGMENT
struct tt_stats tt_stats = {.gso_enabled = 1};
#else
struct tt_stats tt_stats = {.gso_enabled = 0, .gso_errno = EOPNOTSUPP};
#endif
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

static int name_port_is_zero(const char *name)
{
    /* sin_port and sin6_port sit at the same offset. */
    return ((const struct sockaddr_in *)(const void *)name)->sin_port == 0;
}

static socklen_t name_length(const char *name)
{
    sa_family_t family;
    memcpy(&family, name, sizeof family);
    return family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

/*
 * Messages waiting for one sendmmsg call.  A message is one datagram, or a run of datagrams
 * sent as one GSO super-datagram: its own UDP_SEGMENT control message rides in the same
 * sendmmsg call, so runs and single datagrams share one system call and keep their order.
 */
struct pending {
    struct mmsghdr headers[TT_SENDMMSG_BATCH];
    struct iovec vectors[TT_SENDMMSG_BATCH];
    union {
        char buf[CMSG_SPACE(sizeof(uint16_t))];
        struct cmsghdr align;
    } controls[TT_SENDMMSG_BATCH];
    uint16_t segments[TT_SENDMMSG_BATCH];  /* GSO segment size, 0 for a single datagram */
    uint32_t datagrams[TT_SENDMMSG_BATCH]; /* datagrams the message carries */
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

static int is_gso_refusal(int error)
{
    return error == EINVAL || error == ENOPROTOOPT || error == EOPNOTSUPP || error == EIO;
}

static void set_message(struct pending *p, unsigned int i, const char *data, uint32_t length,
                        const char *name, uint16_t segment, uint32_t datagrams)
{
    struct msghdr *h = &p->headers[i].msg_hdr;

    p->vectors[i].iov_base = (void *)data;
    p->vectors[i].iov_len = length;
    memset(h, 0, sizeof *h);
    h->msg_name = (void *)name;
    h->msg_namelen = name_length(name);
    h->msg_iov = &p->vectors[i];
    h->msg_iovlen = 1;
    p->segments[i] = segment;
    p->datagrams[i] = datagrams;
#ifdef UDP_SEGMENT
    if (segment) {
        struct cmsghdr *c;
        memset(&p->controls[i], 0, sizeof p->controls[i]);
        h->msg_control = p->controls[i].buf;
        h->msg_controllen = sizeof p->controls[i].buf;
        c = CMSG_FIRSTHDR(h);
        c->cmsg_level = SOL_UDP;
        c->cmsg_type = UDP_SEGMENT;
        c->cmsg_len = CMSG_LEN(sizeof(uint16_t));
        memcpy(CMSG_DATA(c), &segment, sizeof segment);
    }
#endif
}

/*
 * GSO was refused: rewrite the unsent messages (from `from` on) as single datagrams at the
 * start of the vector (a run's datagrams are back to back in memory, each `segment` bytes but
 * the last).  Returns 0, or -1 if they do not fit in one vector; then nothing is changed.
 */
static int expand_runs(struct pending *p, unsigned int from)
{
    struct pending copy;
    unsigned int i, out = 0, k;

    for (i = from; i < p->count; i++)
        out += p->datagrams[i];
    if (out > TT_SENDMMSG_BATCH)
        return -1;
    memcpy(&copy, p, sizeof copy);
    out = 0;
    for (i = from; i < copy.count; i++) {
        const char *data = copy.vectors[i].iov_base;
        uint32_t left = (uint32_t)copy.vectors[i].iov_len;
        if (!copy.segments[i]) {
            set_message(p, out++, data, left, copy.headers[i].msg_hdr.msg_name, 0, 1);
            continue;
        }
        for (k = 0; k < copy.datagrams[i]; k++) {
            uint32_t length = left < copy.segments[i] ? left : copy.segments[i];
            set_message(p, out++, data, length, copy.headers[i].msg_hdr.msg_name, 0, 1);
            data += length;
            left -= length;
        }
    }
    p->count = out;
    return 0;
}

/* Send everything pending; returns TT_GSO_TURNED_OFF if GSO was refused on the way. */
static int flush_pending(int fd, struct pending *p)
{
    unsigned int done = 0, i;
    int n, result = 0;

    while (done < p->count) {
        n = injected_failure() ? -1
                               : sendmmsg(fd, p->headers + done, p->count - done, MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0) {
            /* Not documented to happen; read it as "no buffer space" rather than loop. */
            n = -1;
            errno = EAGAIN;
        }
        tt_stats.sendmmsg_calls++;
        if (n > 0) {
            for (i = done; i < done + (unsigned int)n; i++) {
                tt_stats.sent_bytes += p->headers[i].msg_len;
                tt_stats.sent_datagrams += p->datagrams[i];
                if (p->segments[i]) {
                    tt_stats.gso_sends++;
                    tt_stats.gso_datagrams += p->datagrams[i];
                }
            }
            done += (unsigned int)n;
            continue;
        }
        if (p->segments[done] && is_gso_refusal(errno)) {
            /* The kernel (or the device) cannot do GSO: off for good, same data unbatched. */
            tt_stats.gso_enabled = 0;
            tt_stats.gso_errno = errno;
            result = TT_GSO_TURNED_OFF;
            if (expand_runs(p, done) == 0) {
                done = 0;
                continue;
            }
            /* Too many datagrams for one vector: send this run alone, datagram by datagram. */
            {
                struct pending single;
                single.count = 1;
                set_message(&single, 0, p->vectors[done].iov_base,
                            (uint32_t)p->vectors[done].iov_len,
                            p->headers[done].msg_hdr.msg_name, p->segments[done],
                            p->datagrams[done]);
                expand_runs(&single, 0);
                flush_pending(fd, &single);
                done++;
                continue;
            }
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
            /* The socket or the host is out of buffers: the rest would fail the same way. */
            uint64_t dropped = 0;
            for (i = done; i < p->count; i++)
                dropped += p->datagrams[i];
            count_drop(errno, dropped);
            break;
        }
        /* This message's own problem (too big, unreachable, refused): drop it, go on. */
        count_drop(errno, p->datagrams[done]);
        done++;
    }
    p->count = 0;
    return result;
}

static int add_pending(int fd, struct pending *p, const char *data, uint32_t length,
                       const char *name, uint16_t segment, uint32_t datagrams)
{
    int result = 0;

    if (p->count == TT_SENDMMSG_BATCH)
        result = flush_pending(fd, p);
    set_message(p, p->count, data, length, name, segment, datagrams);
    p->count++;
    return result;
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
        uint32_t largest_segment = name_length(name) == sizeof(struct sockaddr_in6)
                                       ? TT_GSO_SEGMENT_IPV6
                                       : TT_GSO_SEGMENT_IPV4;
        int may_gso = (flags & TT_SEND_GSO) && tt_gso_compiled() && !name_port_is_zero(name);
        if (end > count)
            end = count;
        while (index < end) {
            uint32_t segment = lengths[index];
            size_t run = 1;
            uint32_t total = segment;
            /* The kernel refuses port 0 with EINVAL, which must not read as "GSO refused". */
            if (may_gso && tt_stats.gso_enabled && segment > 0 && segment <= largest_segment) {
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
            }
            if (run >= 2)
                result |= add_pending(fd, &pending, data + offset, total, name,
                                      (uint16_t)segment, (uint32_t)run);
            else
                result |= add_pending(fd, &pending, data + offset, segment, name, 0, 1);
            index += run;
            offset += total;
        }
    }
    result |= flush_pending(fd, &pending);
    return result;
}
