/*
 * The load generator and echo peer of python -m twisted_turn.bench; see turnbench.h.
 */
#define _GNU_SOURCE
#include "turnbench.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

/* Bytes per datagram buffer: the largest frame plus room to see a larger one as truncated. */
#define TB_SLOT 2048
/* Longest single wait, so that a stop request is seen soon. */
#define TB_WAIT_MS 100
/* recvmmsg calls per ready socket and wakeup, so one busy socket cannot starve sending. */
#define TB_RECV_ROUNDS 4

#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif
/* Most payload bytes in one GSO send (an IP datagram's 16-bit length, with headroom). */
#define TB_GSO_MAX_BYTES 65000

#define STORE(field, value) __atomic_store_n(&(field), (value), __ATOMIC_RELAXED)

int tb_version(void) { return 2; }

int64_t tb_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void put16(char *p, uint16_t v)
{
    p[0] = (char)(v >> 8);
    p[1] = (char)v;
}

static void put32(char *p, uint32_t v)
{
    put16(p, (uint16_t)(v >> 16));
    put16(p + 2, (uint16_t)v);
}

static void put64(char *p, uint64_t v)
{
    put32(p, (uint32_t)(v >> 32));
    put32(p + 4, (uint32_t)v);
}

static uint32_t get16(const char *p)
{
    return ((uint32_t)(uint8_t)p[0] << 8) | (uint8_t)p[1];
}

static uint32_t get32(const char *p)
{
    return (get16(p) << 16) | get16(p + 2);
}

static uint64_t get64(const char *p)
{
    return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

/* The headers only: the filler is written once when a buffer is set up. */
static size_t write_headers(char *buf, uint16_t channel, uint32_t seq, uint32_t client,
                            uint64_t sent_ns, uint32_t payload)
{
    put16(buf, channel);
    put16(buf + 2, (uint16_t)payload);
    put32(buf + 4, seq);
    put32(buf + 8, client);
    put64(buf + 12, sent_ns);
    return TB_CHANNEL_HEADER + (size_t)payload;
}

static void fill(char *buf, size_t size)
{
    size_t i;

    for (i = 0; i < size; i++)
        buf[i] = (char)(0xA5 ^ i);
}

/*
 * Send count datagrams of segment bytes each (the last may be shorter), one per iovec, as one
 * UDP GSO sendmsg to name (NULL on a connected socket).  The bytes sent, or -errno.
 */
static ssize_t gso_send(int fd, struct iovec *iov, unsigned int count, unsigned int segment,
                        void *name, socklen_t namelen)
{
    char control[CMSG_SPACE(sizeof(uint16_t))];
    struct msghdr msg;
    struct cmsghdr *cmsg;
    uint16_t size = (uint16_t)segment;
    ssize_t sent;

    memset(&msg, 0, sizeof msg);
    memset(control, 0, sizeof control);
    msg.msg_name = name;
    msg.msg_namelen = namelen;
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsg = CMSG_FIRSTHDR(&msg);
    cmsg->cmsg_level = SOL_UDP;
    cmsg->cmsg_type = UDP_SEGMENT;
    cmsg->cmsg_len = CMSG_LEN(sizeof size);
    memcpy(CMSG_DATA(cmsg), &size, sizeof size);
    sent = sendmsg(fd, &msg, 0);
    return sent < 0 ? -errno : sent;
}

/* Whether a GSO send failed because GSO is not available at all (then use sendmmsg). */
static int gso_refused(int error)
{
    return error == EINVAL || error == EOPNOTSUPP || error == ENOPROTOOPT || error == EIO;
}

size_t tb_frame(char *buf, size_t size, uint16_t channel, uint32_t seq, uint32_t client,
                uint64_t sent_ns, uint32_t payload)
{
    size_t length = TB_CHANNEL_HEADER + (size_t)payload;

    if (payload < TB_PAYLOAD_HEADER || payload > TB_MAX_PAYLOAD || length > size)
        return 0;
    fill(buf, length);
    return write_headers(buf, channel, seq, client, sent_ns, payload);
}

/* ---- histogram ---- */

unsigned int tb_hist_index(uint64_t value)
{
    unsigned int exponent, index;

    if (value < (1u << TB_HIST_SUB_BITS))
        return (unsigned int)value;
    exponent = 63 - (unsigned int)__builtin_clzll(value);
    index = ((exponent - TB_HIST_SUB_BITS + 1) << TB_HIST_SUB_BITS) +
            (unsigned int)((value >> (exponent - TB_HIST_SUB_BITS)) &
                           ((1u << TB_HIST_SUB_BITS) - 1));
    return index < TB_HIST_BUCKETS ? index : TB_HIST_BUCKETS - 1;
}

uint64_t tb_hist_lower(unsigned int index)
{
    unsigned int exponent, sub;

    if (index < (1u << TB_HIST_SUB_BITS))
        return index;
    if (index >= TB_HIST_BUCKETS)
        index = TB_HIST_BUCKETS - 1;
    exponent = (index >> TB_HIST_SUB_BITS) + TB_HIST_SUB_BITS - 1;
    sub = index & ((1u << TB_HIST_SUB_BITS) - 1);
    return ((uint64_t)((1u << TB_HIST_SUB_BITS) + sub)) << (exponent - TB_HIST_SUB_BITS);
}

uint64_t tb_hist_quantile(const uint64_t *hist, double q)
{
    uint64_t total = 0, rank, seen = 0, lower, upper;
    unsigned int i;

    for (i = 0; i < TB_HIST_BUCKETS; i++)
        total += hist[i];
    if (total == 0)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    /* The rank of the wanted value, 1-based: the smallest value has rank 1. */
    rank = (uint64_t)(q * (double)(total - 1)) + 1;
    for (i = 0; i < TB_HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen >= rank)
            break;
    }
    if (i >= TB_HIST_BUCKETS)
        i = TB_HIST_BUCKETS - 1;
    lower = tb_hist_lower(i);
    upper = i + 1 < TB_HIST_BUCKETS ? tb_hist_lower(i + 1) : lower + 1;
    return lower + (upper - lower - 1) / 2;
}

/* ---- generator ---- */

struct tb_client {
    int fd;
    uint16_t channel;
    uint32_t next_seq;     /* datagrams sent so far: the next frame's sequence number */
    int64_t newest;        /* the newest sequence number echoed, or given up on; -1: none */
    uint64_t received;
    unsigned int size_index;
    uint64_t slot;         /* rate: the next send slot of the schedule */
    int64_t phase_ns;      /* rate: offset of this client's schedule */
};

struct tb_gen_state {
    struct tb_gen_config config;
    struct tb_client *clients;
    uint32_t sizes[TB_MAX_SIZES];
    int epfd;
    int timerfd;
    int64_t armed_ns;      /* the deadline timerfd is set to; 0: disarmed */
    int stop;
    char *send_buffers;    /* TB_MAX_BATCH frames */
    struct mmsghdr send_headers[TB_MAX_BATCH];
    struct iovec send_vectors[TB_MAX_BATCH];
    char *recv_buffers;    /* TB_MAX_BATCH datagrams */
    struct mmsghdr recv_headers[TB_MAX_BATCH];
    struct iovec recv_vectors[TB_MAX_BATCH];
    /* Room for each datagram's SCM_TIMESTAMPNS (the kernel's receive time). */
    char recv_control[TB_MAX_BATCH][CMSG_SPACE(sizeof(struct timespec)) + 16];
    /* CLOCK_REALTIME minus CLOCK_MONOTONIC at the start, to read those receive times on the
     * clock the frames carry. */
    int64_t realtime_offset;
    struct epoll_event *events;
    /* Counters kept here and published to the stats struct once per loop. */
    struct tb_gen_stats local;
};

static void gen_release(struct tb_gen *gen)
{
    struct tb_gen_state *st;

    if (gen == NULL)
        return;
    st = gen->state;
    if (st != NULL) {
        if (st->epfd >= 0)
            close(st->epfd);
        if (st->timerfd >= 0)
            close(st->timerfd);
        free(st->clients);
        free(st->send_buffers);
        free(st->recv_buffers);
        free(st->events);
        free(st);
    }
    free(gen);
}

void tb_gen_free(struct tb_gen *gen) { gen_release(gen); }

struct tb_gen *tb_gen_new(const struct tb_gen_config *config)
{
    struct tb_gen *gen;
    struct tb_gen_state *st;
    unsigned int i;

    if (config == NULL || config->nclients == 0 || config->nclients > 65536 ||
        config->fds == NULL || config->channels == NULL || config->sizes == NULL ||
        config->nsizes == 0 || config->nsizes > TB_MAX_SIZES || !(config->rate >= 0) ||
        !(config->duration >= 0) || config->duration > 86400 || !(config->drain >= 0) ||
        config->drain > 3600 || config->batch == 0 || config->batch > TB_MAX_BATCH ||
        !(config->stall >= 0) || !(config->tick >= 0) || config->tick > 1) {
        errno = EINVAL;
        return NULL;
    }
    for (i = 0; i < config->nsizes; i++) {
        if (config->sizes[i] < TB_PAYLOAD_HEADER || config->sizes[i] > TB_MAX_PAYLOAD) {
            errno = EINVAL;
            return NULL;
        }
    }
    gen = calloc(1, sizeof *gen);
    st = calloc(1, sizeof *st);
    if (gen == NULL || st == NULL) {
        free(gen);
        free(st);
        errno = ENOMEM;
        return NULL;
    }
    gen->state = st;
    st->epfd = st->timerfd = -1;
    st->config = *config;
    memcpy(st->sizes, config->sizes, config->nsizes * sizeof *st->sizes);
    st->config.sizes = st->sizes;
    st->config.fds = NULL;
    st->config.channels = NULL;
    st->clients = calloc(config->nclients, sizeof *st->clients);
    st->send_buffers = malloc((size_t)TB_MAX_BATCH * TB_SLOT);
    st->recv_buffers = malloc((size_t)TB_MAX_BATCH * TB_SLOT);
    st->events = calloc(config->nclients + 1, sizeof *st->events);
    if (!st->clients || !st->send_buffers || !st->recv_buffers || !st->events) {
        gen_release(gen);
        errno = ENOMEM;
        return NULL;
    }
    for (i = 0; i < config->nclients; i++) {
        st->clients[i].fd = config->fds[i];
        st->clients[i].channel = config->channels[i];
        st->clients[i].newest = -1;
        st->clients[i].size_index = i % config->nsizes;
        /* Spread the clients' schedules over one interval, so they do not send in bursts. */
        if (config->rate > 0)
            st->clients[i].phase_ns =
                (int64_t)(1e9 / config->rate * i / config->nclients);
    }
    for (i = 0; i < TB_MAX_BATCH; i++) {
        fill(st->send_buffers + (size_t)i * TB_SLOT, TB_SLOT);
        st->send_vectors[i].iov_base = st->send_buffers + (size_t)i * TB_SLOT;
        st->send_headers[i].msg_hdr.msg_iov = &st->send_vectors[i];
        st->send_headers[i].msg_hdr.msg_iovlen = 1;
        st->recv_vectors[i].iov_base = st->recv_buffers + (size_t)i * TB_SLOT;
        st->recv_vectors[i].iov_len = TB_SLOT;
        st->recv_headers[i].msg_hdr.msg_iov = &st->recv_vectors[i];
        st->recv_headers[i].msg_hdr.msg_iovlen = 1;
        st->recv_headers[i].msg_hdr.msg_control = st->recv_control[i];
    }
    return gen;
}

void tb_gen_stop(struct tb_gen *gen)
{
    struct tb_gen_state *st = gen->state;

    __atomic_store_n(&st->stop, 1, __ATOMIC_RELAXED);
}

static int set_nonblocking(int fd)
{
    int flags = fcntl(fd, F_GETFL);

    if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
        return -errno;
    return 0;
}

static void publish(struct tb_gen *gen)
{
    struct tb_gen_stats *out = &gen->stats, *in = &((struct tb_gen_state *)gen->state)->local;

    STORE(out->sent, in->sent);
    STORE(out->sent_bytes, in->sent_bytes);
    STORE(out->received, in->received);
    STORE(out->received_bytes, in->received_bytes);
    STORE(out->send_calls, in->send_calls);
    STORE(out->gso_sends, in->gso_sends);
    STORE(out->recv_calls, in->recv_calls);
    STORE(out->send_drops, in->send_drops);
    STORE(out->send_errors, in->send_errors);
    STORE(out->recv_errors, in->recv_errors);
    STORE(out->bad, in->bad);
    STORE(out->reordered, in->reordered);
    STORE(out->stalls, in->stalls);
    STORE(out->skipped, in->skipped);
    STORE(out->rtt_count, in->rtt_count);
    STORE(out->rtt_sum_ns, in->rtt_sum_ns);
    STORE(out->rtt_min_ns, in->rtt_min_ns);
    STORE(out->rtt_max_ns, in->rtt_max_ns);
}

/* Send count frames of client c in one sendmmsg; the number the kernel took. */
static unsigned int send_frames(struct tb_gen_state *st, struct tb_client *c, unsigned int index,
                                unsigned int count, int64_t now)
{
    struct tb_gen_stats *s = &st->local;
    unsigned int i, sizes = st->config.nsizes, size_index = c->size_index;
    int sent;

    for (i = 0; i < count; i++) {
        uint32_t payload = st->sizes[size_index];

        size_index = size_index + 1 == sizes ? 0 : size_index + 1;
        st->send_vectors[i].iov_len =
            write_headers(st->send_buffers + (size_t)i * TB_SLOT, c->channel, c->next_seq + i,
                          index, (uint64_t)now, payload);
    }
    if (st->config.gso && count > 1) {
        /* One GSO send when every frame has the size of the first. */
        size_t segment = st->send_vectors[0].iov_len;
        ssize_t bytes;

        for (i = 1; i < count && st->send_vectors[i].iov_len == segment; i++)
            ;
        if (i == count && segment * count <= TB_GSO_MAX_BYTES) {
            bytes = gso_send(c->fd, st->send_vectors, count, (unsigned int)segment, NULL, 0);
            s->send_calls++;
            if (bytes >= 0) {
                s->gso_sends++;
                s->sent += count;
                s->sent_bytes += (uint64_t)bytes;
                c->next_seq += count;
                c->size_index = size_index;
                return count;
            }
            if (gso_refused((int)-bytes)) {
                st->config.gso = 0;
            } else {
                if (-bytes == EAGAIN || -bytes == EWOULDBLOCK || -bytes == ENOBUFS)
                    s->send_drops += count;
                else
                    s->send_errors += count;
                return 0;
            }
        }
    }
    sent = sendmmsg(c->fd, st->send_headers, count, 0);
    s->send_calls++;
    if (sent < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
            s->send_drops += count;
        else
            s->send_errors += count;
        return 0;
    }
    for (i = 0; i < (unsigned int)sent; i++) {
        s->sent_bytes += st->send_vectors[i].iov_len;
        c->size_index = c->size_index + 1 == sizes ? 0 : c->size_index + 1;
    }
    s->sent += (unsigned int)sent;
    c->next_seq += (unsigned int)sent;
    /* A short count means the next datagram met an error, which the next call reports; these
     * frames were not sent and their sequence numbers are used again. */
    if ((unsigned int)sent < count)
        s->send_drops += count - (unsigned int)sent;
    return (unsigned int)sent;
}

/* When the kernel queued a datagram, on CLOCK_MONOTONIC; fallback without a timestamp. */
static int64_t received_at(struct tb_gen_state *st, struct msghdr *msg, int64_t fallback)
{
    struct cmsghdr *cmsg;

    for (cmsg = CMSG_FIRSTHDR(msg); cmsg != NULL; cmsg = CMSG_NXTHDR(msg, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_TIMESTAMPNS) {
            struct timespec ts;
            int64_t at;

            memcpy(&ts, CMSG_DATA(cmsg), sizeof ts);
            at = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec - st->realtime_offset;
            /* A clock step since the start would make it nonsense: then use the fallback. */
            return at > 0 && at <= fallback ? at : fallback;
        }
    }
    return fallback;
}

static void receive(struct tb_gen_state *st, unsigned int index)
{
    struct tb_client *c = &st->clients[index];
    struct tb_gen_stats *s = &st->local;
    unsigned int round, i;
    int got;

    for (round = 0; round < TB_RECV_ROUNDS; round++) {
        int64_t now;

        for (i = 0; i < TB_MAX_BATCH; i++)
            st->recv_headers[i].msg_hdr.msg_controllen = sizeof st->recv_control[i];
        got = recvmmsg(c->fd, st->recv_headers, TB_MAX_BATCH, MSG_DONTWAIT, NULL);
        if (got <= 0) {
            if (got < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                s->recv_errors++;
            return;
        }
        s->recv_calls++;
        /* Without a kernel receive time, the time of reading stands in (all were queued). */
        now = tb_now_ns();
        for (i = 0; i < (unsigned int)got; i++) {
            const char *p = st->recv_buffers + (size_t)i * TB_SLOT;
            unsigned int length = st->recv_headers[i].msg_len;
            uint32_t payload, seq;
            uint64_t sent_ns, rtt;
            int64_t arrived;

            if (length < TB_CHANNEL_HEADER + TB_PAYLOAD_HEADER || length >= TB_SLOT ||
                (st->recv_headers[i].msg_hdr.msg_flags & MSG_TRUNC)) {
                s->bad++;
                continue;
            }
            payload = get16(p + 2);
            seq = get32(p + 4);
            /* Over UDP a server may pad ChannelData to four bytes (RFC 8656 section 12.5). */
            if (get16(p) != c->channel || payload > length - TB_CHANNEL_HEADER ||
                length - TB_CHANNEL_HEADER - payload > 3 || payload < TB_PAYLOAD_HEADER ||
                get32(p + 8) != index || seq >= c->next_seq) {
                s->bad++;
                continue;
            }
            s->received++;
            s->received_bytes += length;
            c->received++;
            if ((int64_t)seq <= c->newest)
                s->reordered++;
            else
                c->newest = seq;
            sent_ns = get64(p + 12);
            arrived = received_at(st, &st->recv_headers[i].msg_hdr, now);
            rtt = (int64_t)sent_ns < arrived ? (uint64_t)(arrived - (int64_t)sent_ns) : 0;
            s->rtt_hist[tb_hist_index(rtt)]++;
            s->rtt_count++;
            s->rtt_sum_ns += rtt;
            if (rtt < s->rtt_min_ns || s->rtt_count == 1)
                s->rtt_min_ns = rtt;
            if (rtt > s->rtt_max_ns)
                s->rtt_max_ns = rtt;
        }
        if ((unsigned int)got < TB_MAX_BATCH)
            return;
    }
}

/* Set timerfd to fire at deadline (absolute CLOCK_MONOTONIC ns), unless it already is. */
static void arm(struct tb_gen_state *st, int64_t deadline)
{
    struct itimerspec spec;

    if (deadline == st->armed_ns)
        return;
    memset(&spec, 0, sizeof spec);
    if (deadline <= 0)
        deadline = 1;
    spec.it_value.tv_sec = deadline / 1000000000;
    spec.it_value.tv_nsec = deadline % 1000000000;
    if (timerfd_settime(st->timerfd, TFD_TIMER_ABSTIME, &spec, NULL) == 0)
        st->armed_ns = deadline;
}

int tb_gen_run(struct tb_gen *gen)
{
    struct tb_gen_state *st = gen->state;
    struct tb_gen_config *cfg = &st->config;
    struct tb_gen_stats *s = &st->local;
    struct epoll_event ev;
    unsigned int i, n = cfg->nclients;
    int64_t now, start, send_end, end = 0, last_echo, deadline;
    uint64_t last_received = 0, limit = cfg->count ? cfg->count : UINT32_MAX;
    double interval = cfg->rate > 0 ? 1e9 / cfg->rate : 0;
    int sending = 1, result = 0;

    memset(&gen->stats, 0, sizeof gen->stats);
    memset(s, 0, sizeof *s);
    st->armed_ns = 0;
    if (limit > UINT32_MAX)
        limit = UINT32_MAX;
    st->epfd = epoll_create1(EPOLL_CLOEXEC);
    st->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (st->epfd < 0 || st->timerfd < 0) {
        result = -errno;
        goto out;
    }
    for (i = 0; i <= n; i++) {
        ev.events = EPOLLIN;
        ev.data.u32 = i;
        if (i < n && (result = set_nonblocking(st->clients[i].fd)) < 0)
            goto out;
        if (i < n) {
            int on = 1;

            /* Receive times from the kernel: the round trip ends when the echo arrives, not
             * when this loop gets to read it. */
            setsockopt(st->clients[i].fd, SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on);
        }
        if (epoll_ctl(st->epfd, EPOLL_CTL_ADD, i < n ? st->clients[i].fd : st->timerfd,
                      &ev) < 0) {
            result = -errno;
            goto out;
        }
    }
    {
        struct timespec real;
        int64_t before = tb_now_ns(), after;

        clock_gettime(CLOCK_REALTIME, &real);
        after = tb_now_ns();
        st->realtime_offset =
            (int64_t)real.tv_sec * 1000000000 + real.tv_nsec - (before + after) / 2;
    }
    STORE(gen->stats.running, 1);
    now = start = last_echo = tb_now_ns();
    send_end = start + (int64_t)(cfg->duration * 1e9);
    gen->stats.start_ns = start;

    for (;;) {
        int any_sent = 0, ready, k;

        if (__atomic_load_n(&st->stop, __ATOMIC_RELAXED))
            break;
        now = tb_now_ns();
        if (s->received != last_received) {
            last_received = s->received;
            last_echo = now;
        }
        if (sending) {
            int more = 0;

            for (i = 0; i < n && now < send_end; i++) {
                struct tb_client *c = &st->clients[i];
                uint64_t room = limit - c->next_seq, want;

                if (room == 0)
                    continue;
                more = 1;
                if (interval > 0) {
                    int64_t due = start + c->phase_ns + (int64_t)(c->slot * interval);

                    if (due > now)
                        continue;
                    want = (uint64_t)((double)(now - due) / interval) + 1;
                    if (want > TB_MAX_BATCH) {
                        /* Fallen behind: keep the rate, give up the backlog. */
                        s->skipped += want - 1;
                        c->slot += want - 1;
                        want = 1;
                    }
                    if (want > room)
                        want = room;
                    send_frames(st, c, i, (unsigned int)want, now);
                    c->slot += want;
                    any_sent = 1;
                } else {
                    want = cfg->batch;
                    /* Equal frames go out as one GSO send: keep within its limit. */
                    if (cfg->gso && cfg->nsizes == 1 &&
                        want * (TB_CHANNEL_HEADER + st->sizes[0]) > TB_GSO_MAX_BYTES)
                        want = TB_GSO_MAX_BYTES / (TB_CHANNEL_HEADER + st->sizes[0]);
                    if (cfg->inflight) {
                        int64_t space = (int64_t)cfg->inflight -
                                        ((int64_t)c->next_seq - (c->newest + 1));

                        /* Refill in chunks (a quarter of the window, at most a batch), not
                         * echo by echo: fewer, fuller sends, and the server still holds
                         * three quarters of the window meanwhile. */
                        if (space < (int64_t)want && space < (int64_t)(cfg->inflight + 3) / 4)
                            continue;
                        if ((uint64_t)space < want)
                            want = (uint64_t)space;
                    }
                    if (want > room)
                        want = room;
                    if (send_frames(st, c, i, (unsigned int)want, now) > 0)
                        any_sent = 1;
                }
            }
            if (!more || now >= send_end) {
                sending = 0;
                gen->stats.send_end_ns = now;
                end = now + (int64_t)(cfg->drain * 1e9);
            } else if (!any_sent && interval == 0 && cfg->inflight &&
                       now - last_echo >= (int64_t)(cfg->stall * 1e9)) {
                /* Nothing came back for the stall time: the window was lost. */
                for (i = 0; i < n; i++)
                    st->clients[i].newest = (int64_t)st->clients[i].next_seq - 1;
                s->stalls++;
                last_echo = now;
                continue;
            }
        }
        if (!sending && (now >= end || s->received >= s->sent))
            break;
        publish(gen);

        /* When to wake up at the latest. */
        if (!sending) {
            deadline = end;
        } else if (interval > 0) {
            deadline = send_end;
            for (i = 0; i < n; i++) {
                struct tb_client *c = &st->clients[i];
                int64_t due = start + c->phase_ns + (int64_t)(c->slot * interval);

                if (c->next_seq < limit && due < deadline)
                    deadline = due;
            }
        } else {
            deadline = send_end;
            if (cfg->inflight && last_echo + (int64_t)(cfg->stall * 1e9) < deadline)
                deadline = last_echo + (int64_t)(cfg->stall * 1e9);
        }
        if (sending && interval > 0 && cfg->tick > 0) {
            /* Paced: wake once a tick at most, and collect the echoes (with their kernel
             * receive times) and the due sends together, not one wakeup per datagram. */
            int64_t wake = now + (int64_t)(cfg->tick * 1e9);
            struct timespec until;

            if (deadline > wake)
                wake = deadline;
            if (wake > send_end)
                wake = send_end;
            if (wake - now > TB_WAIT_MS * 1000000LL)
                wake = now + TB_WAIT_MS * 1000000LL;
            until.tv_sec = wake / 1000000000;
            until.tv_nsec = wake % 1000000000;
            while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR)
                ;
            ready = epoll_wait(st->epfd, st->events, (int)n + 1, 0);
        } else if (any_sent && interval == 0) {
            ready = epoll_wait(st->epfd, st->events, (int)n + 1, 0);
        } else if (deadline <= now) {
            ready = epoll_wait(st->epfd, st->events, (int)n + 1, 0);
        } else {
            arm(st, deadline);
            ready = epoll_wait(st->epfd, st->events, (int)n + 1, TB_WAIT_MS);
        }
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            result = -errno;
            break;
        }
        for (k = 0; k < ready; k++) {
            unsigned int which = st->events[k].data.u32;

            if (which < n) {
                receive(st, which);
            } else {
                uint64_t expirations;

                if (read(st->timerfd, &expirations, sizeof expirations) < 0) {
                    /* Not due yet (EAGAIN): nothing to clear. */
                }
                st->armed_ns = 0;
            }
        }
    }
    if (sending)
        gen->stats.send_end_ns = tb_now_ns();
    gen->stats.end_ns = tb_now_ns();
out:
    publish(gen);
    memcpy(gen->stats.rtt_hist, s->rtt_hist, sizeof s->rtt_hist);
    if (st->epfd >= 0)
        close(st->epfd);
    if (st->timerfd >= 0)
        close(st->timerfd);
    st->epfd = st->timerfd = -1;
    gen->stats.error = result < 0 ? -result : 0;
    STORE(gen->stats.running, 0);
    return result;
}

/* ---- echo peer ---- */

struct tb_peer_state {
    int fd;
    unsigned int batch;
    int gso;
    int stop;
    char *buffers;
    struct mmsghdr recv_headers[TB_MAX_BATCH];
    struct mmsghdr send_headers[TB_MAX_BATCH];
    struct iovec recv_vectors[TB_MAX_BATCH];
    struct iovec send_vectors[TB_MAX_BATCH];
    struct sockaddr_storage names[TB_MAX_BATCH];
};

struct tb_peer *tb_peer_new(int fd, unsigned int batch, int gso)
{
    struct tb_peer *peer;
    struct tb_peer_state *st;
    unsigned int i;

    if (fd < 0 || batch == 0 || batch > TB_MAX_BATCH) {
        errno = EINVAL;
        return NULL;
    }
    peer = calloc(1, sizeof *peer);
    st = calloc(1, sizeof *st);
    if (peer == NULL || st == NULL || (st->buffers = malloc((size_t)batch * TB_SLOT)) == NULL) {
        free(peer);
        free(st);
        errno = ENOMEM;
        return NULL;
    }
    peer->state = st;
    st->fd = fd;
    st->batch = batch;
    st->gso = gso;
    for (i = 0; i < batch; i++) {
        st->recv_vectors[i].iov_base = st->send_vectors[i].iov_base =
            st->buffers + (size_t)i * TB_SLOT;
        st->recv_vectors[i].iov_len = TB_SLOT;
        st->recv_headers[i].msg_hdr.msg_iov = &st->recv_vectors[i];
        st->recv_headers[i].msg_hdr.msg_iovlen = 1;
        st->recv_headers[i].msg_hdr.msg_name = &st->names[i];
        st->send_headers[i].msg_hdr.msg_iov = &st->send_vectors[i];
        st->send_headers[i].msg_hdr.msg_iovlen = 1;
        st->send_headers[i].msg_hdr.msg_name = &st->names[i];
    }
    return peer;
}

void tb_peer_stop(struct tb_peer *peer)
{
    struct tb_peer_state *st = peer->state;

    __atomic_store_n(&st->stop, 1, __ATOMIC_RELAXED);
}

void tb_peer_free(struct tb_peer *peer)
{
    if (peer == NULL)
        return;
    if (peer->state != NULL)
        free(((struct tb_peer_state *)peer->state)->buffers);
    free(peer->state);
    free(peer);
}

/* How many datagrams from index i on have the same destination and size as datagram i (within
 * the GSO limits); the peer sends such a run as one GSO send. */
static unsigned int peer_run(struct tb_peer_state *st, unsigned int i, unsigned int count)
{
    size_t segment = st->send_vectors[i].iov_len, total = segment;
    socklen_t namelen = st->send_headers[i].msg_hdr.msg_namelen;
    unsigned int j;

    for (j = i + 1; j < count; j++) {
        if (st->send_vectors[j].iov_len != segment || total + segment > TB_GSO_MAX_BYTES ||
            st->send_headers[j].msg_hdr.msg_namelen != namelen ||
            memcmp(&st->names[j], &st->names[i], namelen) != 0)
            break;
        total += segment;
    }
    return j - i;
}

/* Echo count datagrams from index first with sendmmsg, counting into local. */
static void peer_sendmmsg(struct tb_peer_state *st, unsigned int first, unsigned int count,
                          struct tb_peer_stats *local)
{
    unsigned int done;

    for (done = 0; done < count;) {
        int sent = sendmmsg(st->fd, st->send_headers + first + done, count - done, 0);

        local->send_calls++;
        if (sent > 0) {
            done += (unsigned int)sent;
            local->sent += (unsigned int)sent;
        } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)) {
            local->send_drops += count - done;
            break;
        } else {
            /* This datagram cannot go (EPERM, EMSGSIZE, ...); the rest still may. */
            local->send_errors++;
            done++;
        }
    }
}

int tb_peer_run(struct tb_peer *peer)
{
    struct tb_peer_state *st = peer->state;
    struct tb_peer_stats local, *out = &peer->stats;
    struct pollfd pfd = {.fd = st->fd, .events = POLLIN};
    int result;

    memset(&local, 0, sizeof local);
    memset(out, 0, sizeof *out);
    __atomic_store_n(&st->stop, 0, __ATOMIC_RELAXED);
    if ((result = set_nonblocking(st->fd)) < 0)
        goto out;
    STORE(out->running, 1);
    while (!__atomic_load_n(&st->stop, __ATOMIC_RELAXED)) {
        unsigned int i, done, singles, first = 0;
        int got, ready;

        ready = poll(&pfd, 1, TB_WAIT_MS);
        if (ready < 0) {
            if (errno == EINTR)
                continue;
            result = -errno;
            break;
        }
        if (ready == 0)
            continue;
        /* Drain what is queued, a bounded number of batches, then look at the stop flag. */
        for (int round = 0; round < 16; round++) {
            for (i = 0; i < st->batch; i++) {
                st->recv_vectors[i].iov_len = TB_SLOT;
                st->recv_headers[i].msg_hdr.msg_namelen = sizeof st->names[i];
            }
            got = recvmmsg(st->fd, st->recv_headers, st->batch, MSG_DONTWAIT, NULL);
            if (got <= 0)
                break;
            local.recv_calls++;
            local.received += (unsigned int)got;
            for (i = 0; i < (unsigned int)got; i++) {
                local.received_bytes += st->recv_headers[i].msg_len;
                st->send_vectors[i].iov_len = st->recv_headers[i].msg_len;
                st->send_headers[i].msg_hdr.msg_namelen =
                    st->recv_headers[i].msg_hdr.msg_namelen;
            }
            for (done = 0, singles = 0; done < (unsigned int)got;) {
                unsigned int run = st->gso ? peer_run(st, done, (unsigned int)got) : 1;
                ssize_t bytes;

                if (run < 2) {
                    /* Gathered for one sendmmsg with the other datagrams that have no run. */
                    if (singles++ == 0)
                        first = done;
                    done++;
                    continue;
                }
                if (singles) {
                    peer_sendmmsg(st, first, singles, &local);
                    singles = 0;
                }
                bytes = gso_send(st->fd, &st->send_vectors[done], run,
                                 (unsigned int)st->send_vectors[done].iov_len, &st->names[done],
                                 st->send_headers[done].msg_hdr.msg_namelen);
                local.send_calls++;
                if (bytes >= 0) {
                    local.gso_sends++;
                    local.sent += run;
                } else if (gso_refused((int)-bytes)) {
                    /* No GSO here: these and all later datagrams go through sendmmsg. */
                    st->gso = 0;
                    continue;
                } else if (-bytes == EAGAIN || -bytes == EWOULDBLOCK || -bytes == ENOBUFS) {
                    local.send_drops += run;
                } else {
                    local.send_errors += run;
                }
                done += run;
            }
            if (singles)
                peer_sendmmsg(st, first, singles, &local);
            if ((unsigned int)got < st->batch)
                break;
        }
        STORE(out->received, local.received);
        STORE(out->received_bytes, local.received_bytes);
        STORE(out->sent, local.sent);
        STORE(out->send_drops, local.send_drops);
        STORE(out->send_errors, local.send_errors);
        STORE(out->recv_calls, local.recv_calls);
        STORE(out->send_calls, local.send_calls);
        STORE(out->gso_sends, local.gso_sends);
    }
out:
    out->error = result < 0 ? -result : 0;
    STORE(out->running, 0);
    return result;
}
