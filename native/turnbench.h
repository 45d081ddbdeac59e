/*
 * The load generator and the echo peer of python -m twisted_turn.bench.
 *
 * Python does the TURN control plane (Allocate, CreatePermission, ChannelBind) and hands over
 * one connected UDP socket per client; the flood runs here, so the generator is not the
 * bottleneck.  Each datagram is a ChannelData frame
 *
 *     [channel u16][length u16][seq u32][client u32][send time u64][filler ...]
 *
 * all big-endian, the send time in CLOCK_MONOTONIC nanoseconds.  The echo peer sends every
 * datagram it receives back to its source, unchanged.
 *
 * Plain C with no Python.h; cffi builds the binding (native/build_turnio.py).  Buffers are
 * allocated once per generator or peer and reused: nothing is allocated per datagram.  The
 * statistics structs are written by the thread running tb_gen_run / tb_peer_run and may be
 * read by another thread meanwhile (the counters are stored whole, once per batch).
 */
#ifndef TWISTED_TURN_TURNBENCH_H
#define TWISTED_TURN_TURNBENCH_H

#include <stddef.h>
#include <stdint.h>

/* Bytes of the ChannelData header. */
#define TB_CHANNEL_HEADER 4
/* Bytes of the payload header: sequence number, client index, send time. */
#define TB_PAYLOAD_HEADER 16
/* Largest payload (the buffers are 2048 bytes a datagram). */
#define TB_MAX_PAYLOAD 2040
/* Datagrams per sendmmsg / recvmmsg call at most. */
#define TB_MAX_BATCH 64
/* Most distinct payload sizes in a cycle. */
#define TB_MAX_SIZES 64
/* Round-trip histogram: values below 32 ns exactly, above with 32 linear steps per power of
 * two (at most 3 % relative error), up to 2^41 ns. */
#define TB_HIST_SUB_BITS 5
#define TB_HIST_BUCKETS 1216

struct tb_gen_config {
    unsigned int nclients;
    const int *fds;            /* one connected UDP socket per client */
    const uint16_t *channels;  /* the channel number of each client */
    const uint32_t *sizes;     /* payload sizes, cycled (each client starts at its index) */
    unsigned int nsizes;
    double rate;               /* datagrams per second per client; 0 floods */
    unsigned int inflight;     /* flood: most datagrams per client beyond the newest echo; 0
                                * for a plain open loop */
    double duration;           /* seconds of sending */
    double drain;              /* seconds to wait for late echoes once sending stopped */
    uint64_t count;            /* most datagrams per client; 0 for no limit but duration */
    unsigned int batch;        /* flood: datagrams per sendmmsg, 1..TB_MAX_BATCH */
    double stall;              /* flood with inflight: seconds without an echo after which
                                * the outstanding window counts as lost and sending resumes */
    int gso;                   /* send runs of equal-size frames as one UDP GSO sendmsg (the
                                * kernel splits them; the server still sees datagrams) */
    double tick;               /* rate: seconds between wakeups at least, so that the due
                                * sends and the echoes are handled together (the round trip
                                * times come from the kernel's receive times); 0: wake for
                                * every send and every echo */
};

struct tb_gen_stats {
    uint64_t sent;             /* datagrams the kernel accepted */
    uint64_t sent_bytes;       /* their UDP payload bytes (ChannelData header included) */
    uint64_t received;         /* echoes of our own datagrams */
    uint64_t received_bytes;
    uint64_t send_calls;       /* sendmmsg and sendmsg calls */
    uint64_t gso_sends;        /* of which GSO sends */
    uint64_t recv_calls;       /* recvmmsg calls that returned datagrams */
    uint64_t send_drops;       /* EAGAIN / ENOBUFS: never left this host's socket */
    uint64_t send_errors;      /* other send errors (ECONNREFUSED: nothing listens) */
    uint64_t recv_errors;
    uint64_t bad;              /* datagrams that are not an echo of this client's frames */
    uint64_t reordered;        /* echoes older than one already received */
    uint64_t stalls;           /* in-flight windows given up after the stall time */
    uint64_t skipped;          /* rate: send slots given up because the generator fell
                                * more than a batch behind its schedule */
    int64_t start_ns;          /* CLOCK_MONOTONIC when sending started */
    int64_t send_end_ns;       /* ... when it stopped */
    int64_t end_ns;            /* ... when the drain ended */
    uint64_t rtt_count;
    uint64_t rtt_sum_ns;
    uint64_t rtt_min_ns;
    uint64_t rtt_max_ns;
    uint64_t rtt_hist[TB_HIST_BUCKETS];
    int running;               /* 1 while tb_gen_run sends or drains */
    int error;                 /* errno of a failure that ended the run, else 0 */
};

struct tb_gen {
    struct tb_gen_stats stats;
    void *state;               /* private */
};

struct tb_peer_stats {
    uint64_t received;
    uint64_t received_bytes;
    uint64_t sent;
    uint64_t send_drops;       /* EAGAIN / ENOBUFS */
    uint64_t send_errors;
    uint64_t recv_calls;
    uint64_t send_calls;
    uint64_t gso_sends;
    int running;
    int error;
};

struct tb_peer {
    struct tb_peer_stats stats;
    void *state;               /* private */
};

/* Copy the configuration and allocate every buffer; NULL on a bad configuration (errno says
 * why: EINVAL) or no memory. */
struct tb_gen *tb_gen_new(const struct tb_gen_config *config);
/* Run the load: block until duration (or count) and drain are over or tb_gen_stop is called.
 * The sockets are made non-blocking.  0, or -errno of a fatal error. */
int tb_gen_run(struct tb_gen *gen);
/* Ask a running tb_gen_run (in another thread) to stop sending and return soon. */
void tb_gen_stop(struct tb_gen *gen);
void tb_gen_free(struct tb_gen *gen);

/* An echo peer on the bound UDP socket fd, receiving and sending batch (<= TB_MAX_BATCH)
 * datagrams per call; with gso, runs of equal size to one source go back as one GSO send. */
struct tb_peer *tb_peer_new(int fd, unsigned int batch, int gso);
/* Echo until tb_peer_stop; 0, or -errno of a fatal error. */
int tb_peer_run(struct tb_peer *peer);
void tb_peer_stop(struct tb_peer *peer);
void tb_peer_free(struct tb_peer *peer);

/* Write the frame the generator sends into buf: the headers, then filler up to payload bytes
 * (at least TB_PAYLOAD_HEADER).  The frame's length, or 0 when it does not fit in size. */
size_t tb_frame(char *buf, size_t size, uint16_t channel, uint32_t seq, uint32_t client,
                uint64_t sent_ns, uint32_t payload);
/* CLOCK_MONOTONIC in nanoseconds (what the frames carry). */
int64_t tb_now_ns(void);

/* The histogram bucket of a value, and the smallest value of a bucket. */
unsigned int tb_hist_index(uint64_t value);
uint64_t tb_hist_lower(unsigned int index);
/* The value at quantile q (0..1) of a histogram of TB_HIST_BUCKETS counts: the middle of the
 * bucket holding it; 0 for an empty histogram. */
uint64_t tb_hist_quantile(const uint64_t *hist, double q);

int tb_version(void);

#endif
