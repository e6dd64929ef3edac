/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for virtio-net receive segment coalescing (RSC) with several
 * queues, RSS and hash reports
 *
 * The guest side negotiates like the Windows netkvm driver does on a
 * multi-queue adapter: MQ, RSS, HASH_REPORT, CTRL_VQ, CTRL_GUEST_OFFLOADS,
 * GUEST_CSUM, GUEST_TSO4/6 and RSC_EXT; it configures RSS through
 * VIRTIO_NET_CTRL_MQ_RSS_CONFIG with a Toeplitz key and an indirection
 * table that spreads the test's connections over every receive queue,
 * and reads the 20-byte virtio_net_hdr_v1_hash of every packet.
 *
 * The backend is a multi-queue tap (IFF_MULTI_QUEUE, one fd per queue
 * pair, -netdev tap,fds=) in a private network namespace; frames are
 * injected with an AF_PACKET socket bound to it.  The socket backend has a
 * single queue and QEMU offers no hash reports without vnet headers, so
 * through it the test runs one queue pair with RSS, without hash reports.
 * Ring layouts: split and packed (the test has its own packed-ring
 * driver), receive buffers as one descriptor, an indirect table or a
 * chain, event index on or off, and VIRTIO_F_IN_ORDER.
 *
 * The device, the backends, the frames and the packet checker are the
 * fixture of the RSC qtest (virtio-net-rsc-utils.h); the ring driver
 * (several queues, packed rings, indirect and chained buffers, in-order
 * checks), RSS and hash reports are here.  Every payload byte is a
 * function of (connection, sequence offset).  The checker maps each
 * received packet back to the segments it must have been built from: its
 * connection must be steered to the queue it came on (the test computes
 * the Toeplitz hash itself), it must start where the previous packet of
 * its connection ended, and every byte of it, its vnet header and its
 * hash report must be what the device has to make of those segments.
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include "qemu/bswap.h"
#include "standard-headers/linux/virtio_ring.h"
#include "virtio-net-rsc-utils.h"

#define MQ_MAX_PAIRS        RSC_MAX_PAIRS
#define MQ_RING_SIZE        256

#define RSS_KEY_LEN         40
#define RSS_TABLE_LEN       128
#define RSS_HASH_TYPES      (VIRTIO_NET_RSS_HASH_TYPE_IPv4 | \
                             VIRTIO_NET_RSS_HASH_TYPE_TCPv4 | \
                             VIRTIO_NET_RSS_HASH_TYPE_IPv6 | \
                             VIRTIO_NET_RSS_HASH_TYPE_TCPv6)

/* netkvm turns RSC off by clearing TSO4/TSO6, keeping the RSC_EXT bit */
#define RSC_OFF_OFFLOADS    (BIT(VIRTIO_NET_F_GUEST_CSUM) | \
                             BIT(VIRTIO_NET_F_RSC_EXT))
#define MQ_FEATURES         (BIT(VIRTIO_F_VERSION_1) | \
                             BIT(VIRTIO_NET_F_CTRL_VQ) | \
                             BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | \
                             BIT(VIRTIO_NET_F_MQ) | \
                             BIT(VIRTIO_NET_F_RSS) | \
                             RSC_OFFLOADS)

/* The Toeplitz key of Microsoft's RSS verification suite. */
static const uint8_t rss_key[RSS_KEY_LEN] = {
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2,
    0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4,
    0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
};

/* How a case wants the device and the driver set up. */
typedef struct MqOpts {
    /*
     * The device and the backend: queue pairs (the socket backend has
     * one), tap, rsc_interval (0: burst), mergeable, in_order and packed
     * (the driver negotiates them too), receive buffer bytes
     */
    RscOpts r;
    bool hash;              /* negotiate VIRTIO_NET_F_HASH_REPORT */
    bool indirect;          /* receive buffers as indirect descriptors */
    bool chain;             /* receive buffers as chains of 2 descriptors */
    bool split_hdr;         /* chains: a first descriptor of 7 bytes */
    bool no_event_idx;      /* do not negotiate VIRTIO_RING_F_EVENT_IDX */
} MqOpts;

/* A TCP connection from the peer to the guest, and what came of it. */
typedef struct MqConn {
    Conn *c;                /* the fixture's connection */
    uint32_t hash;          /* Toeplitz hash the test computed */
    unsigned queue;         /* receive queue RSS must steer it to */
    GPtrArray *segs;        /* Frame *, data segments sent, in order */
    unsigned next;          /* segments received so far */
    unsigned packets;       /* packets received so far */
    unsigned coalesced;     /* packets received with RSC_INFO */
    uint32_t single_hash;   /* hash report of the last segment alone */
    uint16_t single_report;
    uint32_t unit_hash;     /* hash report of the last coalesced packet */
    uint16_t unit_report;
} MqConn;

/* One receive queue of the driver. */
typedef struct MqQueue {
    QVirtQueue *rx, *tx;
    unsigned nbuf;          /* rx buffers: ring size, half with chains */
    uint64_t bufs;          /* guest memory of the rx buffers */
    uint64_t itab;          /* their indirect descriptor tables */
    uint16_t avail_idx;     /* split: rx avail index written; packed: slot */
    uint16_t used_idx;      /* split: rx used entries consumed; packed: slot */
    bool avail_wrap;        /* packed: driver ring wrap counter */
    bool used_wrap;         /* packed: used wrap counter */
    bool repost;            /* give buffers back after reading them */
    uint16_t posted[2 * MQ_RING_SIZE];  /* ids in the order made available */
    unsigned npost, nused;  /* ids made available, used */
} MqQueue;

typedef struct MqTest {
    RscTest r;              /* device, backend, frames: the fixture */
    MqQueue q[MQ_MAX_PAIRS];
    MqOpts opts;
    uint16_t ctrl_slot;     /* packed: next free slot of the control queue */
    bool ctrl_wrap;         /* packed: its wrap counter */
    uint16_t table[RSS_TABLE_LEN];
    GPtrArray *conns;       /* MqConn *, by the index of their MqConn */
} MqTest;

/* --- Toeplitz hash ------------------------------------------------------- */

/*
 * The Toeplitz hash of @in/@len under @key: for every set input bit, the
 * 32 key bits starting at that bit position are XORed into the result.
 */
static uint32_t toeplitz(const uint8_t *key, size_t key_len,
                         const uint8_t *in, size_t len)
{
    uint32_t hash = 0, window = ldl_be_p(key);
    size_t i;
    int b;

    g_assert_cmpuint(len + 4, <=, key_len);
    for (i = 0; i < len; i++) {
        for (b = 7; b >= 0; b--) {
            if (in[i] & (1 << b)) {
                hash ^= window;
            }
            window = window << 1 | ((key[i + 4] >> b) & 1);
        }
    }
    return hash;
}

/* The RSS hash of a TCP connection: addresses, then ports. */
static uint32_t conn_toeplitz(const uint8_t *saddr, const uint8_t *daddr,
                              bool v6, uint16_t sport, uint16_t dport)
{
    uint8_t in[36];
    size_t alen = v6 ? 16 : 4;

    memcpy(in, saddr, alen);
    memcpy(in + alen, daddr, alen);
    stw_be_p(in + 2 * alen, sport);
    stw_be_p(in + 2 * alen + 2, dport);
    return toeplitz(rss_key, sizeof(rss_key), in, 2 * alen + 4);
}

/*
 * The test's own hash against the verification values Microsoft publishes
 * for this key, so that a wrong expectation cannot pass for a device bug.
 */
static void test_toeplitz_reference(void)
{
    static const uint8_t s4[4] = { 66, 9, 149, 187 };
    static const uint8_t d4[4] = { 161, 142, 100, 80 };
    static const uint8_t s6[16] = { 0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00,
                                    0x1f, 0xff, [15] = 7 };
    static const uint8_t d6[16] = { 0x3f, 0xfe, 0x25, 0x01, 0x02, 0x00,
                                    0x00, 0x03, [15] = 1 };

    g_assert_cmphex(conn_toeplitz(s4, d4, false, 2794, 1766), ==,
                    0x51ccc178);
    g_assert_cmphex(conn_toeplitz(s6, d6, true, 2794, 1766), ==,
                    0x40207d3d);
}

/* --- connections ------------------------------------------------------- */

/*
 * A new connection whose Toeplitz hash the indirection table maps to
 * @queue: source ports are tried in turn from a per-connection start.
 */
static MqConn *mq_conn_new(MqTest *t, bool v6, unsigned queue)
{
    MqConn *m = g_new0(MqConn, 1);
    Conn *c = conn_new(&t->r, v6);
    uint8_t saddr[16], daddr[16];
    unsigned i;

    g_assert_cmpuint(c->idx, ==, t->conns->len);
    m->c = c;
    c->src_host = c->idx << 8 | 1;
    conn_addrs(c, saddr, daddr);
    for (i = 0; i < 4096; i++) {
        c->sport = 20000 + 37 * c->idx + i;
        m->hash = conn_toeplitz(saddr, daddr, v6, c->sport, c->dport);
        m->queue = t->table[m->hash % RSS_TABLE_LEN];
        if (m->queue == queue) {
            break;
        }
    }
    g_assert_cmpuint(m->queue, ==, queue);
    m->segs = g_ptr_array_new();
    g_ptr_array_add(t->conns, m);
    return m;
}

static void mq_conn_free(gpointer p)
{
    MqConn *m = p;

    g_ptr_array_unref(m->segs);
    g_free(m);
}

/* The next segment of @m: @plen payload bytes and TCP @flags. */
static Frame *mq_seg_flags(MqTest *t, MqConn *m, uint32_t plen,
                           uint8_t flags)
{
    Frame *f;

    m->c->flags = flags;
    f = seg(&t->r, m->c, plen);
    m->c->flags = TCP_ACK;
    if (plen) {
        g_ptr_array_add(m->segs, f);
    }
    return f;
}

static Frame *mq_seg(MqTest *t, MqConn *m, uint32_t plen)
{
    return mq_seg_flags(t, m, plen, TCP_ACK);
}

/* --- the device and the driver ------------------------------------------- */

static void mq_kick(MqTest *t, unsigned qi)
{
    t->r.vdev->bus->virtqueue_kick(t->r.vdev, t->q[qi].rx);
}

#define PACKED_F_AVAIL      (1 << 7)
#define PACKED_F_USED       (1 << 15)

/* Packed ring: the flags that make a descriptor available now. */
static uint16_t packed_avail_flags(bool wrap)
{
    return wrap ? PACKED_F_AVAIL : PACKED_F_USED;
}

/* Write a 16-byte descriptor; for packed rings @next is the buffer id. */
static void desc_write(MqTest *t, uint64_t a, uint64_t addr, uint32_t len,
                       uint16_t flags, uint16_t next)
{
    uint8_t d[16];

    stq_le_p(d, addr);
    stl_le_p(d + 8, len);
    if (t->r.opts.packed) {
        stw_le_p(d + 12, next);
        stw_le_p(d + 14, flags);
    } else {
        stw_le_p(d + 12, flags);
        stw_le_p(d + 14, next);
    }
    qtest_memwrite(t->r.qts, a, d, sizeof(d));
}

/*
 * Make receive buffer @b of queue @qi available (no kick): one
 * descriptor, an indirect table of two, or a chain of two (the 20-byte
 * header, then the rest of the buffer; or 7 bytes, which split the
 * virtio-net header, then the rest).
 */
static void rx_post(MqTest *t, unsigned qi, uint16_t b)
{
    MqQueue *q = &t->q[qi];
    uint64_t buf = q->bufs + (uint64_t)b * t->r.buf_size;
    uint64_t ring = q->rx->desc;
    uint16_t w = VRING_DESC_F_WRITE;
    uint32_t hl = t->opts.split_hdr ? 7 : t->r.hdr_len;
    uint32_t rest = t->r.buf_size - hl;
    uint16_t head;

    q->posted[q->npost++ % ARRAY_SIZE(q->posted)] = b;
    if (t->opts.indirect) {
        uint64_t tab = q->itab + 32 * (uint64_t)b;

        desc_write(t, tab, buf, hl,
                   w | (t->r.opts.packed ? 0 : VRING_DESC_F_NEXT), 1);
        desc_write(t, tab + 16, buf + hl, rest, w, 0);
    }
    if (!t->r.opts.packed) {
        head = t->opts.chain ? 2 * b : b;
        if (t->opts.indirect) {
            desc_write(t, ring + 16 * head, q->itab + 32 * (uint64_t)b, 32,
                       VRING_DESC_F_INDIRECT, 0);
        } else if (t->opts.chain) {
            desc_write(t, ring + 16 * head, buf, hl,
                       w | VRING_DESC_F_NEXT, head + 1);
            desc_write(t, ring + 16 * (head + 1), buf + hl, rest, w, 0);
        } else {
            desc_write(t, ring + 16 * head, buf, t->r.buf_size, w, 0);
        }
        qtest_writew(t->r.qts, q->rx->avail + 4 +
                     2 * (q->avail_idx % q->rx->size), head);
        q->avail_idx++;
        qtest_writew(t->r.qts, q->rx->avail + 2, q->avail_idx);
        return;
    }
    /* packed: the head's flags are written last */
    head = q->avail_idx;
    if (t->opts.indirect) {
        desc_write(t, ring + 16 * head, q->itab + 32 * (uint64_t)b, 32,
                   VRING_DESC_F_INDIRECT | packed_avail_flags(q->avail_wrap),
                   b);
    } else if (t->opts.chain) {
        uint16_t second = (head + 1) % q->rx->size;
        bool wrap2 = second ? q->avail_wrap : !q->avail_wrap;

        desc_write(t, ring + 16 * second, buf + hl,
                   rest, w | packed_avail_flags(wrap2), b);
        desc_write(t, ring + 16 * head, buf, hl,
                   w | VRING_DESC_F_NEXT | packed_avail_flags(q->avail_wrap),
                   b);
    } else {
        desc_write(t, ring + 16 * head, buf, t->r.buf_size,
                   w | packed_avail_flags(q->avail_wrap), b);
    }
    q->avail_idx += t->opts.chain ? 2 : 1;
    if (q->avail_idx >= q->rx->size) {
        q->avail_idx -= q->rx->size;
        q->avail_wrap = !q->avail_wrap;
    }
}

/* Set queue @qi's receive buffers up; post and kick the first @n. */
static void rx_setup(MqTest *t, unsigned qi, unsigned n)
{
    MqQueue *q = &t->q[qi];
    uint32_t i;

    q->nbuf = t->opts.chain ? q->rx->size / 2 : q->rx->size;
    q->bufs = guest_alloc(&t->r.alloc, (uint64_t)q->nbuf * t->r.buf_size);
    q->itab = guest_alloc(&t->r.alloc, 32 * q->nbuf);
    qtest_memset(t->r.qts, q->rx->desc, 0, 16 * q->rx->size);
    q->avail_idx = 0;
    q->used_idx = 0;
    q->avail_wrap = q->used_wrap = true;
    q->npost = q->nused = 0;
    q->repost = true;
    g_assert_cmpuint(n, <=, q->nbuf);
    for (i = 0; i < n; i++) {
        rx_post(t, qi, i);
    }
    mq_kick(t, qi);
}

/* Packed ring: is the descriptor at @slot used (wrap counter @wrap)? */
static bool packed_used(MqTest *t, QVirtQueue *vq, uint16_t slot, bool wrap)
{
    uint16_t flags = qtest_readw(t->r.qts, vq->desc + 16 * slot + 14);

    return !!(flags & PACKED_F_AVAIL) == wrap &&
           !!(flags & PACKED_F_USED) == wrap;
}

/* Send a control command; returns the ack byte. */
static uint8_t ctrl_cmd(MqTest *t, uint8_t class, uint8_t cmd,
                        const void *data, size_t len)
{
    g_autofree uint8_t *b = g_malloc(2 + len);
    uint16_t before = used_idx(&t->r, t->r.ctrl);
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    uint32_t head;

    g_assert_cmpuint(2 + len, <=, 1024);
    b[0] = class;
    b[1] = cmd;
    memcpy(b + 2, data, len);
    qtest_memwrite(t->r.qts, t->r.ctrl_buf, b, 2 + len);
    qtest_writeb(t->r.qts, t->r.ctrl_buf + 1024, 0xff);
    if (t->r.opts.packed) {
        uint16_t slot = t->ctrl_slot, second = (slot + 1) % t->r.ctrl->size;
        bool wrap = t->ctrl_wrap, wrap2 = second ? wrap : !wrap;

        desc_write(t, t->r.ctrl->desc + 16 * second, t->r.ctrl_buf + 1024, 1,
                   VRING_DESC_F_WRITE | packed_avail_flags(wrap2), 0);
        desc_write(t, t->r.ctrl->desc + 16 * slot, t->r.ctrl_buf, 2 + len,
                   VRING_DESC_F_NEXT | packed_avail_flags(wrap), 0);
        t->r.vdev->bus->virtqueue_kick(t->r.vdev, t->r.ctrl);
        while (!packed_used(t, t->r.ctrl, slot, wrap)) {
            if (g_get_monotonic_time() > deadline) {
                rsc_fail("no answer to control command %u/%u", class, cmd);
            }
        }
        t->ctrl_slot = (slot + 2) % t->r.ctrl->size;
        t->ctrl_wrap = t->ctrl_slot < slot ? !wrap : wrap;
        return qtest_readb(t->r.qts, t->r.ctrl_buf + 1024);
    }
    head = qvirtqueue_add(t->r.qts, t->r.ctrl, t->r.ctrl_buf, 2 + len, false,
                          true);
    qvirtqueue_add(t->r.qts, t->r.ctrl, t->r.ctrl_buf + 1024, 1, true, false);
    qvirtqueue_kick(t->r.qts, t->r.vdev, t->r.ctrl, head);
    while (used_idx(&t->r, t->r.ctrl) == before) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("no answer to control command %u/%u", class, cmd);
        }
    }
    t->r.ctrl->last_used_idx++;
    return qtest_readb(t->r.qts, t->r.ctrl_buf + 1024);
}

static uint8_t mq_ctrl_offloads(MqTest *t, uint64_t offloads)
{
    uint8_t le[8];

    stq_le_p(le, offloads);
    return ctrl_cmd(t, VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                    VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, le, sizeof(le));
}

/*
 * VIRTIO_NET_CTRL_MQ_RSS_CONFIG with the test's key and indirection table
 * over @t->r.opts.pairs queues.
 */
static uint8_t ctrl_rss(MqTest *t)
{
    uint8_t b[8 + 2 * RSS_TABLE_LEN + 3 + RSS_KEY_LEN];
    uint8_t *p = b;
    unsigned i;

    stl_le_p(p, RSS_HASH_TYPES);
    stw_le_p(p + 4, RSS_TABLE_LEN - 1);
    stw_le_p(p + 6, 0);
    p += 8;
    for (i = 0; i < RSS_TABLE_LEN; i++, p += 2) {
        stw_le_p(p, t->table[i]);
    }
    stw_le_p(p, t->r.opts.pairs);
    p[2] = RSS_KEY_LEN;
    memcpy(p + 3, rss_key, RSS_KEY_LEN);
    return ctrl_cmd(t, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_RSS_CONFIG, b,
                    sizeof(b));
}

/*
 * Negotiate like netkvm, set every queue up, post receive buffers on the
 * queues whose bit is set in @post_mask, configure RSS and turn RSC on.
 */
static void mq_driver_init(MqTest *t, unsigned post_mask)
{
    uint64_t host, want = MQ_FEATURES;
    unsigned i;

    if (t->r.opts.mergeable) {
        want |= BIT(VIRTIO_NET_F_MRG_RXBUF);
    }
    if (t->r.opts.in_order) {
        want |= BIT(VIRTIO_F_IN_ORDER);
    }
    if (t->opts.hash) {
        want |= BIT(VIRTIO_NET_F_HASH_REPORT);
    }
    t->r.hdr_len = t->opts.hash ? VNET_HASH_HDR_LEN : VNET_HDR_LEN;
    if (t->r.opts.packed) {
        want |= BIT(VIRTIO_F_RING_PACKED);
    }
    if (t->opts.indirect) {
        want |= BIT(VIRTIO_RING_F_INDIRECT_DESC);
    }
    if (!t->opts.no_event_idx) {
        want |= BIT(VIRTIO_RING_F_EVENT_IDX);
    }
    qvirtio_start_device(t->r.vdev);
    host = qvirtio_get_features(t->r.vdev);
    if ((host & want) != want) {
        rsc_fail("device offers features 0x%016" PRIx64 ", the test needs "
                "0x%016" PRIx64 " (missing 0x%016" PRIx64 ")", host, want,
                want & ~host);
    }
    qvirtio_set_features(t->r.vdev, want);
    g_assert_cmpuint(qvirtio_config_readw(t->r.vdev, 8), ==, t->r.opts.pairs);
    for (i = 0; i < t->r.opts.pairs; i++) {
        t->q[i].rx = qvirtqueue_setup(t->r.vdev, &t->r.alloc, 2 * i);
        t->q[i].tx = qvirtqueue_setup(t->r.vdev, &t->r.alloc, 2 * i + 1);
    }
    t->r.ctrl = qvirtqueue_setup(t->r.vdev, &t->r.alloc, 2 * t->r.opts.pairs);
    if (t->r.opts.packed) {
        /*
         * The split layout libqos wrote serves as a packed one: the
         * descriptor ring where the split one is, the driver event
         * suppression area where the available ring starts (flags 0:
         * notify), the device's where the used ring starts.
         */
        for (i = 0; i < t->r.opts.pairs; i++) {
            qtest_memset(t->r.qts, t->q[i].tx->desc, 0, 16 * t->q[i].tx->size);
        }
        qtest_memset(t->r.qts, t->r.ctrl->desc, 0, 16 * t->r.ctrl->size);
        t->ctrl_slot = 0;
        t->ctrl_wrap = true;
    }
    qvirtio_set_driver_ok(t->r.vdev);
    for (i = 0; i < t->r.opts.pairs; i++) {
        rx_setup(t, i, post_mask & (1u << i) ?
                 (t->opts.chain ? t->q[i].rx->size / 2 : t->q[i].rx->size) :
                 0);
    }
    g_assert_cmpuint(ctrl_rss(t), ==, VIRTIO_NET_OK);
    g_assert_cmpuint(mq_ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
}

/*
 * Start QEMU with the backend of @o; the driver posts buffers on the
 * queues of @post_mask.  Fails (not skips: the cases that need a tap are
 * registered as skips when it cannot be made) if the tap cannot be made.
 */
static MqTest *mq_start_posted(const MqOpts *o, unsigned post_mask)
{
    MqTest *t = g_new0(MqTest, 1);
    RscOpts r = o->r;
    unsigned i;

    g_assert_cmpuint(r.pairs, >=, 1);
    g_assert_cmpuint(r.pairs, <=, MQ_MAX_PAIRS);
    r.rss = true;
    r.burst = !r.interval;
    r.ring_size = MQ_RING_SIZE;
    t->opts = *o;
    t->conns = g_ptr_array_new_with_free_func(mq_conn_free);
    /* spread the table over every queue */
    for (i = 0; i < RSS_TABLE_LEN; i++) {
        t->table[i] = (i * 7 + i / 16) % r.pairs;
    }
    rsc_launch(&t->r, &r);
    mq_driver_init(t, post_mask);
    return t;
}

static MqTest *mq_start(const MqOpts *o)
{
    return mq_start_posted(o, ~0u);
}

static void mq_end(MqTest *t)
{
    rsc_fini(&t->r);
    g_ptr_array_unref(t->conns);
    g_free(t);
}

/* --- receiving and checking ---------------------------------------------- */

static bool mq_ready(MqTest *t, unsigned qi)
{
    MqQueue *q = &t->q[qi];

    if (t->r.opts.packed) {
        return packed_used(t, q->rx, q->used_idx, q->used_wrap);
    }
    return used_idx(&t->r, q->rx) != q->used_idx;
}

/* Pop one used element of queue @qi, which must be there. */
static void rx_pop_elem(MqTest *t, unsigned qi, uint32_t *id, uint32_t *len)
{
    MqQueue *q = &t->q[qi];
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    uint64_t a;

    while (!mq_ready(t, qi)) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("queue %u: timed out waiting for the rest of a "
                    "packet", qi);
        }
    }
    if (t->r.opts.packed) {
        a = q->rx->desc + 16 * q->used_idx;
        *id = qtest_readw(t->r.qts, a + 12);
        *len = qtest_readl(t->r.qts, a + 8);
        q->used_idx += t->opts.chain ? 2 : 1;
        if (q->used_idx >= q->rx->size) {
            q->used_idx -= q->rx->size;
            q->used_wrap = !q->used_wrap;
        }
    } else {
        a = q->rx->used + 4 + 8 * (q->used_idx % q->rx->size);
        *id = qtest_readl(t->r.qts, a);
        *len = qtest_readl(t->r.qts, a + 4);
        q->used_idx++;
        if (t->opts.chain && !t->opts.indirect) {
            if (*id & 1) {
                rsc_fail("queue %u: used id %u is not the head of a chain",
                        qi, *id);
            }
            *id /= 2;
        }
    }
    if (*id >= q->nbuf || *len > t->r.buf_size) {
        rsc_fail("queue %u: used element id %u length %u (ring %u, buffers "
                "of %u bytes)", qi, *id, *len, q->rx->size, t->r.buf_size);
    }
    if (t->r.opts.in_order &&
        *id != q->posted[q->nused % ARRAY_SIZE(q->posted)]) {
        rsc_fail("queue %u: VIRTIO_F_IN_ORDER: used buffer %u, the next one "
                "made available is %u", qi, *id,
                q->posted[q->nused % ARRAY_SIZE(q->posted)]);
    }
    q->nused++;
}

/*
 * Pop the next packet of queue @qi and check it against the stream of its
 * connection: steered to this queue, next in sequence, every byte and the
 * vnet header (the fixture's checker), and the hash report.
 */
static MqConn *rx_check_one(MqTest *t, unsigned qi)
{
    MqQueue *q = &t->q[qi];
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_autofree uint32_t *ids = NULL;
    uint32_t id, len, hash;
    uint16_t report, want;
    unsigned i, nbufs = 1, n;
    RxPacket p = { 0 };
    MqConn *c;
    int conn;

    rx_pop_elem(t, qi, &id, &len);
    if (len < t->r.hdr_len) {
        rsc_fail("queue %u: used length %u is shorter than the header", qi,
                 len);
    }
    g_byte_array_set_size(b, len);
    qtest_bufread(t->r.qts, q->bufs + (uint64_t)id * t->r.buf_size, b->data,
                  len);
    if (t->r.opts.mergeable) {
        nbufs = lduw_le_p(b->data + 10);
        if (nbufs < 1 || nbufs > q->nbuf) {
            rsc_fail("queue %u: num_buffers is %u", qi, nbufs);
        }
    }
    ids = g_new(uint32_t, nbufs);
    ids[0] = id;
    for (i = 1; i < nbufs; i++) {
        size_t old = b->len;

        rx_pop_elem(t, qi, &ids[i], &len);
        if (!len) {
            /* the fixture's checker tells why num_buffers is too large */
            p.nempty++;
            continue;
        }
        g_byte_array_set_size(b, old + len);
        qtest_bufread(t->r.qts, q->bufs + (uint64_t)ids[i] * t->r.buf_size,
                      b->data + old, len);
    }
    if (q->repost) {
        for (i = 0; i < nbufs; i++) {
            rx_post(t, qi, ids[i]);
        }
        mq_kick(t, qi);
    }
    memcpy(p.hdr, b->data, t->r.hdr_len);
    p.nbufs = nbufs;
    p.len = b->len - t->r.hdr_len;
    p.data = b->data + t->r.hdr_len;

    conn = rx_conn(&t->r, &p);
    if (conn < 0) {
        g_autofree char *d = describe_frame(&t->r, p.data, p.len);

        rsc_fail("queue %u: a packet of no test connection: %s", qi, d);
    }
    c = g_ptr_array_index(t->conns, conn);
    if (c->queue != qi) {
        rsc_fail("conn %u (IPv%d, hash 0x%08x) arrived on queue %u, RSS "
                 "steers it to queue %u", c->c->idx, c->c->v6 ? 6 : 4,
                 c->hash, qi, c->queue);
    }
    if ((p.hdr[0] & VIRTIO_NET_HDR_F_RSC_INFO) && lduw_le_p(p.hdr + 6) < 2) {
        rsc_fail("conn %u: RSC_INFO with %u segments: a single segment "
                 "goes untouched", c->c->idx, lduw_le_p(p.hdr + 6));
    }
    n = check_next_packet(&t->r, &p, c->segs, &c->next);
    want = c->c->v6 ? VIRTIO_NET_HASH_REPORT_TCPv6
                    : VIRTIO_NET_HASH_REPORT_TCPv4;
    hash = t->opts.hash ? ldl_le_p(p.hdr + 12) : c->hash;
    report = t->opts.hash ? lduw_le_p(p.hdr + 16) : want;
    if (hash != c->hash || report != want) {
        rsc_fail("conn %u (%u segments from %u): hash 0x%08x type %u, "
                 "expected the Toeplitz hash 0x%08x type %u", c->c->idx, n,
                 c->next - n, hash, report, c->hash, want);
    }
    if (n > 1) {
        c->unit_hash = hash;
        c->unit_report = report;
    } else {
        c->single_hash = hash;
        c->single_report = report;
    }
    c->packets++;
    c->coalesced += n > 1;
    return c;
}

/* Check every packet that is in the used ring of queue @qi now. */
static unsigned rx_check_ready(MqTest *t, unsigned qi)
{
    unsigned n = 0;

    while (mq_ready(t, qi)) {
        rx_check_one(t, qi);
        n++;
    }
    return n;
}

static bool all_received(MqTest *t)
{
    unsigned i;

    for (i = 0; i < t->conns->len; i++) {
        MqConn *c = g_ptr_array_index(t->conns, i);

        if (c->next != c->segs->len) {
            return false;
        }
    }
    return true;
}

/* Name the first connection with segments not received yet. */
static G_NORETURN void fail_missing(MqTest *t, const char *why)
{
    unsigned i;

    for (i = 0; i < t->conns->len; i++) {
        MqConn *c = g_ptr_array_index(t->conns, i);

        if (c->next != c->segs->len) {
            rsc_fail("%s: conn %u (queue %u) got %u of %u segments", why,
                    c->c->idx, c->queue, c->next, c->segs->len);
        }
    }
    rsc_fail("%s", why);
}

/*
 * Receive on every queue until every segment sent has arrived, without
 * any clock step: they must all be in the rings or on their way.
 */
static void rx_all_now(MqTest *t, const char *why)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    unsigned qi;

    backend_sync(&t->r);
    while (!all_received(t)) {
        for (qi = 0; qi < t->r.opts.pairs; qi++) {
            rx_check_ready(t, qi);
        }
        if (g_get_monotonic_time() > deadline) {
            fail_missing(t, why);
        }
    }
}

/* Nothing may be in any used ring (after the backend was read). */
static void mq_assert_idle(MqTest *t, unsigned mask, const char *why)
{
    unsigned qi;

    backend_sync(&t->r);
    for (qi = 0; qi < t->r.opts.pairs; qi++) {
        if ((mask & (1u << qi)) && mq_ready(t, qi)) {
            MqConn *c = rx_check_one(t, qi);

            rsc_fail("expected no delivery on queue %u (%s), but conn %u "
                    "got a packet", qi, why, c->c->idx);
        }
    }
}

/* Per connection: exactly @packets packets so far, all coalesced. */
static void assert_units(MqTest *t, unsigned packets)
{
    unsigned i;

    for (i = 0; i < t->conns->len; i++) {
        MqConn *c = g_ptr_array_index(t->conns, i);

        if (c->packets != packets || c->coalesced != packets) {
            rsc_fail("conn %u (queue %u): %u packets, %u coalesced; "
                    "expected %u coalesced units", c->c->idx, c->queue,
                    c->packets, c->coalesced, packets);
        }
    }
}

/* --- test cases ---------------------------------------------------------- */

typedef struct MqCase {
    unsigned pairs;
    bool tap;
    bool mergeable;
    bool packed;
    bool indirect;
    bool chain;
    bool split_hdr;
    bool no_event_idx;
    bool layout;            /* a ring layout variant: fewer cases */
} MqCase;

static MqOpts case_opts(const void *data, uint32_t interval)
{
    const MqCase *mc = data;
    MqOpts o = {
        .r = {
            .pairs = mc->pairs,
            .tap = mc->tap,
            .mergeable = mc->mergeable,
            .packed = mc->packed,
            .interval = interval,
        },
        .indirect = mc->indirect,
        .chain = mc->chain,
        .split_hdr = mc->split_hdr,
        .no_event_idx = mc->no_event_idx,
        .hash = mc->tap,
    };

    return o;
}

/* @nconn connections, alternately IPv4 and IPv6, spread over the queues. */
static void conns_spread(MqTest *t, MqConn **c, unsigned nconn)
{
    unsigned i;

    for (i = 0; i < nconn; i++) {
        c[i] = mq_conn_new(t, i & 1, (i / 2) % t->r.opts.pairs);
    }
}

/* @nseg segments of each connection, interleaved, in one burst. */
static void send_interleaved(MqTest *t, MqConn **c, unsigned nconn,
                             unsigned nseg)
{
    g_autofree Frame **f = g_new(Frame *, nconn * nseg);
    unsigned i, j;

    for (j = 0; j < nseg; j++) {
        for (i = 0; i < nconn; i++) {
            f[j * nconn + i] = mq_seg(t, c[i], MSS);
        }
    }
    send_frames(&t->r, f, nconn * nseg);
}

/*
 * Start the device of case @data with rsc_interval @interval and
 * @nconn connections in @c, spread by conns_spread().
 */
static MqTest *mq_start_conns(const MqCase *mc, uint32_t interval,
                              MqConn **c, unsigned nconn)
{
    MqOpts o = case_opts(mc, interval);
    MqTest *t = mq_start(&o);

    conns_spread(t, c, nconn);
    return t;
}

/*
 * 24 interleaved connections, IPv4 and IPv6, spread by RSS over every
 * queue: each connection's segments are held as one unit on the queue
 * RSS chose, until rsc_interval, and arrive there coalesced, in order,
 * with the hash report of the connection.
 */
static void test_rss_spread(const void *data)
{
    enum { NCONN = 24, NSEG = 5 };
    MqConn *c[NCONN];
    MqTest *t = mq_start_conns(data, RSC_INTERVAL, c, NCONN);

    send_interleaved(t, c, NCONN, NSEG);
    clock_step(&t->r, RSC_INTERVAL - 1);
    mq_assert_idle(t, ~0u, "units are held until rsc_interval");
    clock_step(&t->r, 1);
    rx_all_now(t, "every unit is due after rsc_interval");
    assert_units(t, 1);
    mq_assert_idle(t, ~0u, "everything was received");
    g_assert_cmpuint(rsc_stat(&t->r, "units-delivered"), ==, NCONN);
    g_assert_cmpuint(rsc_stat(&t->r, "segments-merged"), ==,
                     NCONN * (NSEG - 1));

    /* a second round on the same connections */
    send_interleaved(t, c, NCONN, NSEG);
    clock_step(&t->r, RSC_INTERVAL);
    rx_all_now(t, "the second units are due");
    assert_units(t, 2);
    mq_end(t);
}

/*
 * rsc_interval=0: every unit is delivered at the end of the receive
 * burst, on every queue, with no clock step; coalescing still happens.
 */
static void test_rss_burst_end(const void *data)
{
    enum { NCONN = 16, NSEG = 4 };
    MqConn *c[NCONN];
    MqTest *t = mq_start_conns(data, 0, c, NCONN);

    send_interleaved(t, c, NCONN, NSEG);
    rx_all_now(t, "units are delivered at the end of the burst");
    g_assert_cmpuint(rsc_stat(&t->r, "segments-merged"), >, 0);
    mq_end(t);
}

/*
 * Every queue has its own timer: a unit held on queue 1 is neither
 * delayed nor flushed by traffic on queue 0, and queue 0's unit is due
 * at its own deadline whatever queue 1 holds.
 */
static void test_rss_queue_timers(const void *data)
{
    MqOpts o = case_opts(data, RSC_INTERVAL);
    MqTest *t = mq_start(&o);
    MqConn *a4 = mq_conn_new(t, false, 0);
    MqConn *a6 = mq_conn_new(t, true, 0);
    MqConn *b4 = mq_conn_new(t, false, 1);
    MqConn *b6 = mq_conn_new(t, true, 1);
    Frame *f[4];
    unsigned i;

    /* t0: units of queue 0 start */
    f[0] = mq_seg(t, a4, MSS);
    f[1] = mq_seg(t, a6, MSS);
    f[2] = mq_seg(t, a4, MSS);
    f[3] = mq_seg(t, a6, MSS);
    send_frames(&t->r, f, 4);
    clock_step(&t->r, RSC_INTERVAL / 2);

    /* t0 + interval/2: units of queue 1 start */
    f[0] = mq_seg(t, b4, MSS);
    f[1] = mq_seg(t, b6, MSS);
    f[2] = mq_seg(t, b4, MSS);
    f[3] = mq_seg(t, b6, MSS);
    send_frames(&t->r, f, 4);
    clock_step(&t->r, RSC_INTERVAL / 2 - 1);
    mq_assert_idle(t, ~0u, "no unit is due yet");

    /* t0 + interval: queue 0's units, not queue 1's */
    clock_step(&t->r, 1);
    for (i = 0; i < 2; i++) {
        /* the timer has fired: the packets are in the ring */
        if (!mq_ready(t, 0)) {
            rsc_fail("queue 0's units are not delivered at their deadline");
        }
        rx_check_one(t, 0);
    }
    mq_assert_idle(t, 0x2, "queue 1's units are due only later");
    g_assert_cmpuint(a4->coalesced + a6->coalesced, ==, 2);

    /* queue 0 traffic that ends a unit at once leaves queue 1 alone */
    f[0] = mq_seg(t, a4, MSS);
    f[1] = mq_seg(t, a4, 100);
    f[2] = mq_seg(t, a6, MSS);
    f[3] = mq_seg_flags(t, a6, 100, TCP_ACK | TCP_PSH);
    send_frames(&t->r, f, 4);
    backend_sync(&t->r);
    while (a4->next < a4->segs->len || a6->next < a6->segs->len) {
        if (!mq_ready(t, 0)) {
            rsc_fail("queue 0's short segments did not end their units");
        }
        rx_check_one(t, 0);
    }
    mq_assert_idle(t, 0x2, "traffic on queue 0 does not flush queue 1");

    /* queue 1's units at exactly their own deadline */
    clock_step(&t->r, RSC_INTERVAL / 2 - 1);
    mq_assert_idle(t, ~0u, "queue 1's units are not due yet");
    clock_step(&t->r, 1);
    rx_all_now(t, "queue 1's units are due");
    g_assert_cmpuint(b4->packets, ==, 1);
    g_assert_cmpuint(b6->packets, ==, 1);
    g_assert_cmpuint(b4->coalesced + b6->coalesced, ==, 2);
    mq_end(t);
}

/*
 * Hash reports: with RSC off (netkvm clears TSO4/TSO6) every segment goes
 * alone and the device reports its hash; with RSC on, the unit built of
 * the next segments of each connection carries the same hash value and
 * report type, and both are the Toeplitz hash the test computed.
 */
static void test_hash_report(const void *data)
{
    enum { NCONN = 16 };
    MqConn *c[NCONN];
    unsigned i;
    MqTest *t = mq_start_conns(data, RSC_INTERVAL, c, NCONN);

    g_assert_cmpuint(mq_ctrl_offloads(t, RSC_OFF_OFFLOADS), ==, VIRTIO_NET_OK);
    send_interleaved(t, c, NCONN, 2);
    rx_all_now(t, "with RSC off every segment goes alone at once");
    g_assert_cmpuint(mq_ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    send_interleaved(t, c, NCONN, 4);
    clock_step(&t->r, RSC_INTERVAL);
    rx_all_now(t, "the units are due");
    for (i = 0; i < NCONN; i++) {
        g_assert_cmpuint(c[i]->packets, ==, 3);
        g_assert_cmpuint(c[i]->coalesced, ==, 1);
        g_assert_cmphex(c[i]->unit_hash, ==, c[i]->single_hash);
        g_assert_cmpuint(c[i]->unit_report, ==, c[i]->single_report);
        g_assert_cmphex(c[i]->unit_hash, ==, c[i]->hash);
    }
    mq_end(t);
}

/* Frames of the connections in @c[0..n-1] on queue @qi (or not). */
static unsigned frames_for(MqTest *t, MqConn **c, unsigned n, unsigned nseg,
                           unsigned qi, bool on_queue, Frame **f)
{
    unsigned i, j, k = 0;

    for (j = 0; j < nseg; j++) {
        for (i = 0; i < n; i++) {
            if ((c[i]->queue == qi) == on_queue) {
                f[k++] = mq_seg(t, c[i], MSS);
            }
        }
    }
    return k;
}

/* Wait until QEMU has read at least @n frames more than @before. */
static void backend_read_some(MqTest *t, uint64_t before, unsigned n)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    int outq = 0;

    for (;;) {
        if (t->r.pkt >= 0) {
            if (tap_frames_read(&t->r) >= before + n) {
                break;
            }
        } else {
            g_assert_cmpint(ioctl(t->r.sock, SIOCOUTQ, &outq), ==, 0);
            if (outq < before) {
                break;
            }
        }
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("QEMU read none of the frames for the empty queue");
        }
        used_idx(&t->r, t->r.ctrl);
    }
    used_idx(&t->r, t->r.ctrl);
}

/* Receive until every connection not steered to @skip has everything. */
static void rx_all_but(MqTest *t, unsigned skip, const char *why)
{
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    unsigned i, qi;

    for (;;) {
        bool done = true;

        for (i = 0; i < t->conns->len; i++) {
            MqConn *c = g_ptr_array_index(t->conns, i);

            done = done && (c->queue == skip || c->next == c->segs->len);
        }
        if (done) {
            return;
        }
        for (qi = 0; qi < t->r.opts.pairs; qi++) {
            if (qi != skip) {
                rx_check_ready(t, qi);
            }
        }
        if (g_get_monotonic_time() > deadline) {
            fail_missing(t, why);
        }
    }
}

/*
 * Liveness: the last queue has no receive buffers.  The connections of
 * the other queues are delivered; those of the empty queue wait, nothing
 * of them is lost.  When the driver posts buffers there and kicks that
 * queue once, everything held back arrives with no further kick, as a
 * Windows guest that waits for interrupts needs it.  The frames for the
 * empty queue are sent last: in the backend they hold back what follows
 * them on their backend queue, with or without RSC (see the docs).  The
 * same run with RSC off needs the same single kick.
 */
static void liveness(const void *data, bool rsc)
{
    enum { NCONN = 16, NSEG = 4 };
    MqOpts o = case_opts(data, 0);
    unsigned empty = o.r.pairs - 1;
    MqTest *t = mq_start_posted(&o, ~(1u << empty));
    MqConn *c[NCONN];
    Frame *f[NCONN * NSEG];
    uint64_t before;
    unsigned n, qi;

    if (!rsc) {
        g_assert_cmpuint(mq_ctrl_offloads(t, RSC_OFF_OFFLOADS), ==,
                         VIRTIO_NET_OK);
    }
    conns_spread(t, c, NCONN);
    n = frames_for(t, c, NCONN, NSEG, empty, false, f);
    send_frames(&t->r, f, n);
    rx_all_but(t, empty, "the queues with buffers go on");

    n = frames_for(t, c, NCONN, NSEG, empty, true, f);
    if (t->r.pkt >= 0) {
        before = tap_frames_read(&t->r);
    } else {
        for (before = 0, qi = 0; qi < n; qi++) {
            before += 4 + f[qi]->len;
        }
    }
    send_frames(&t->r, f, n);
    backend_read_some(t, before, 1);
    /* (the backend holds the rest: no backend_sync() here) */
    if (mq_ready(t, empty)) {
        rsc_fail("queue %u has no buffers, but a packet was delivered",
                empty);
    }

    /* buffers on the empty queue, one kick, no more kicks */
    for (qi = 0; qi < o.r.pairs; qi++) {
        t->q[qi].repost = false;
    }
    for (n = 0; n < t->q[empty].nbuf; n++) {
        rx_post(t, empty, n);
    }
    mq_kick(t, empty);
    rx_all_now(t, "one kick of the refilled queue delivers everything");
    if (rsc) {
        g_assert_cmpuint(rsc_stat(&t->r, "segments-merged"), >, 0);
    }
    mq_end(t);
}

static void test_liveness_rsc_on(const void *data)
{
    liveness(data, true);
}

static void test_liveness_rsc_off(const void *data)
{
    liveness(data, false);
}

/* Hold a unit of @nseg segments on each connection, on every queue. */
static void hold_units(MqTest *t, MqConn **c, unsigned nconn, unsigned nseg)
{
    send_interleaved(t, c, nconn, nseg);
    mq_assert_idle(t, ~0u, "the units are held");
}

/*
 * Lifecycle events with units held on every queue: each one delivers the
 * units at once, whole and in order; afterwards RSS and RSC work as
 * before.  A row names the event, and how the test goes on after it
 * until units are held again.
 */
typedef struct MqLifecycle {
    const char *name;
    /* the event; returns its flush counter where it happened */
    uint64_t (*flush)(MqTest *t);
    const char *flushed;    /* what rx_all_now() waits for */
    /* back to RSC on, with units of 3 segments held per connection */
    void (*resume)(MqTest *t, MqConn **c, unsigned nconn);
    unsigned alone;         /* packets per connection that go alone */
    unsigned units;         /* units-delivered at the end, per connection */
} MqLifecycle;

/* A case of the table below on a ring layout of cases[]. */
typedef struct MqLifecycleCase {
    const MqCase *mc;
    const MqLifecycle *lc;
} MqLifecycleCase;

/*
 * VM stop delivers the units; frames offered while the VM is stopped
 * wait in the backend and are coalesced after cont.
 */
static uint64_t lc_stop(MqTest *t)
{
    qtest_qmp_assert_success(t->r.qts, "{ 'execute': 'stop' }");
    return rsc_stat(&t->r, "flush-vm-stop");
}

static void lc_cont(MqTest *t, MqConn **c, unsigned nconn)
{
    send_interleaved(t, c, nconn, 3);
    qtest_qmp_assert_success(t->r.qts, "{ 'execute': 'cont' }");
    mq_assert_idle(t, ~0u, "frames offered while stopped start units at "
                   "cont");
}

/*
 * A device reset puts the units in the rings before the queues are
 * reset; then the driver sets the device up again.
 */
static uint64_t lc_reset(MqTest *t)
{
    unsigned qi;

    qvirtio_reset(t->r.vdev);
    for (qi = 0; qi < t->r.opts.pairs; qi++) {
        t->q[qi].repost = false;
    }
    return rsc_stat(&t->r, "flush-reset");
}

static void lc_reinit(MqTest *t, MqConn **c, unsigned nconn)
{
    mq_driver_init(t, ~0u);
    hold_units(t, c, nconn, 3);
}

/*
 * Turning RSC off (CTRL_GUEST_OFFLOADS_SET without TSO4/TSO6) delivers
 * the units; what follows goes alone, in order; turning it on again
 * coalesces again.
 */
static uint64_t lc_rsc_off(MqTest *t)
{
    g_assert_cmpuint(mq_ctrl_offloads(t, RSC_OFF_OFFLOADS), ==,
                     VIRTIO_NET_OK);
    return rsc_stat(&t->r, "flush-offloads");
}

static void lc_rsc_on(MqTest *t, MqConn **c, unsigned nconn)
{
    unsigned i;

    send_interleaved(t, c, nconn, 2);
    rx_all_now(t, "with RSC off segments go alone at once");
    for (i = 0; i < nconn; i++) {
        g_assert_cmpuint(c[i]->packets, ==, 3);
    }
    g_assert_cmpuint(mq_ctrl_offloads(t, RSC_OFFLOADS), ==, VIRTIO_NET_OK);
    hold_units(t, c, nconn, 3);
}

/*
 * Live migration: the source delivers the units when the VM stops,
 * before the last RAM pass, so the guest finds them in its rings on the
 * destination.  RSS, hash reports and RSC go on at the destination,
 * whose backend is a new socketpair or new queues of the same tap; from
 * here on the test drives the destination.
 */
static uint64_t lc_migrate(MqTest *t)
{
    g_autoptr(QDict) src = rsc_migrate(&t->r);

    return stats_get(src, "flush-vm-stop");
}

static void lc_hold(MqTest *t, MqConn **c, unsigned nconn)
{
    hold_units(t, c, nconn, 3);
}

static const MqLifecycle lifecycles[] = {
    { "vm-stop", lc_stop, "stopping the VM flushes every queue", lc_cont,
      0, 2 },
    { "reset", lc_reset, "a reset flushes every queue into its ring",
      lc_reinit, 0, 2 },
    { "offloads", lc_rsc_off, "turning RSC off flushes every queue",
      lc_rsc_on, 2, 2 },
    { "migration", lc_migrate, "the units flushed at the stop are in the "
      "rings", lc_hold, 0, 1 },
};

static void test_lifecycle(const void *data)
{
    enum { NCONN = 16 };
    const MqLifecycleCase *lcc = data;
    const MqLifecycle *lc = lcc->lc;
    MqConn *c[NCONN];
    unsigned i;
    MqTest *t = mq_start_conns(lcc->mc, RSC_INTERVAL, c, NCONN);

    hold_units(t, c, NCONN, 3);
    g_assert_cmpuint(lc->flush(t), ==, NCONN);
    rx_all_now(t, lc->flushed);
    assert_units(t, 1);
    lc->resume(t, c, NCONN);
    clock_step(&t->r, RSC_INTERVAL);
    rx_all_now(t, "the units held after the event are due");
    for (i = 0; i < NCONN; i++) {
        if (c[i]->coalesced != 2 || c[i]->packets != 2 + lc->alone) {
            rsc_fail("conn %u: %u packets, %u coalesced; expected 2 units "
                     "and %u packets alone", c[i]->c->idx, c[i]->packets,
                     c[i]->coalesced, lc->alone);
        }
    }
    g_assert_cmpuint(rsc_stat(&t->r, "units-delivered"), ==,
                     lc->units * NCONN);
    mq_end(t);
}

/*
 * VIRTIO_F_IN_ORDER: buffers are used in the order they were made
 * available (checked for every used element).  Consecutive segments of
 * one connection still merge: each connection's run becomes one unit,
 * and the unit is flushed when a frame of another connection comes.
 */
static void test_in_order_runs(const void *data)
{
    enum { NCONN = 8, NSEG = 4 };
    MqOpts o = case_opts(data, RSC_INTERVAL);
    MqTest *t;
    MqConn *c[NCONN];
    Frame *f[NCONN * NSEG];
    unsigned i, j;

    o.r.in_order = true;
    t = mq_start(&o);
    conns_spread(t, c, NCONN);
    for (i = 0; i < NCONN; i++) {
        for (j = 0; j < NSEG; j++) {
            f[i * NSEG + j] = mq_seg(t, c[i], MSS);
        }
    }
    send_frames(&t->r, f, NCONN * NSEG);
    clock_step(&t->r, RSC_INTERVAL);
    rx_all_now(t, "every run is delivered");
    if (!o.r.tap) {
        /* one backend queue: the runs reach the device as sent */
        assert_units(t, 1);
    }
    g_assert_cmpuint(rsc_stat(&t->r, "segments-merged"), >, 0);
    mq_end(t);
}

/* Has every connection everything but the last segment of @last? */
static bool all_received_but_last(MqTest *t, MqConn *last)
{
    unsigned i;

    for (i = 0; i < t->conns->len; i++) {
        MqConn *c = g_ptr_array_index(t->conns, i);

        if (c->next + (c == last) != c->segs->len) {
            return false;
        }
    }
    return true;
}

/*
 * VIRTIO_F_IN_ORDER with connections interleaved segment by segment: a
 * unit cannot stay open while another connection's frame takes the next
 * buffer, so every segment goes alone, in order, nothing lost.
 */
static void test_in_order_interleaved(const void *data)
{
    enum { NCONN = 16, NSEG = 4 };
    MqOpts o = case_opts(data, RSC_INTERVAL);
    MqTest *t;
    MqConn *c[NCONN];

    o.r.in_order = true;
    t = mq_start(&o);
    conns_spread(t, c, NCONN);
    send_interleaved(t, c, NCONN, NSEG);
    if (!o.r.tap) {
        /*
         * One backend queue: each frame is flushed by the next one, at
         * once; only the last frame sent waits for the timer.
         */
        MqConn *last = c[NCONN - 1];
        gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;

        backend_sync(&t->r);
        while (!all_received_but_last(t, last)) {
            rx_check_ready(t, 0);
            if (g_get_monotonic_time() > deadline) {
                fail_missing(t, "an open unit is flushed by the next frame "
                             "of another connection");
            }
        }
        mq_assert_idle(t, ~0u, "the last frame's unit is held");
    }
    clock_step(&t->r, RSC_INTERVAL);
    rx_all_now(t, "every segment is delivered");
    mq_end(t);
}

/*
 * A new RSS configuration moves connections to other queues: the units
 * held under the old one are delivered first, so that no data of a
 * connection on its new queue can overtake its unit on the old one.
 */
static void test_rss_reconfig(const void *data)
{
    enum { NCONN = 16 };
    MqConn *c[NCONN];
    Frame *f[2 * NCONN];
    unsigned i;
    MqTest *t = mq_start_conns(data, RSC_INTERVAL, c, NCONN);

    hold_units(t, c, NCONN, 3);
    for (i = 0; i < RSS_TABLE_LEN; i++) {
        t->table[i] = (t->table[i] + 1) % t->r.opts.pairs;
    }
    g_assert_cmpuint(ctrl_rss(t), ==, VIRTIO_NET_OK);
    rx_all_now(t, "a new RSS configuration delivers the units held under "
               "the old one");
    assert_units(t, 1);
    for (i = 0; i < NCONN; i++) {
        c[i]->queue = t->table[c[i]->hash % RSS_TABLE_LEN];
        f[2 * i] = mq_seg(t, c[i], MSS);
        f[2 * i + 1] = mq_seg(t, c[i], 100);
    }
    send_frames(&t->r, f, 2 * NCONN);
    rx_all_now(t, "short segments end the units on the new queues at once");
    assert_units(t, 2);
    mq_end(t);
}

/*
 * Receive buffers of 1 KiB without mergeable buffers: a frame that does
 * not fit is dropped, as virtio-net does without RSC, and the buffer it
 * was tried in is given back.  The frames that fit, before and after, all
 * arrive, coalesced where RSC is on; the ring stays consistent (with
 * chained descriptors on a packed ring, giving a buffer back must rewind
 * every descriptor of the chain).
 */
static void small_buffers(const void *data, bool rsc)
{
    MqOpts o = case_opts(data, 0);
    MqTest *t;
    MqConn *big, *c;
    Frame *f[5];
    unsigned i, j;

    o.r.buf_size = 1024;
    t = mq_start(&o);
    if (!rsc) {
        g_assert_cmpuint(mq_ctrl_offloads(t, RSC_OFF_OFFLOADS), ==,
                         VIRTIO_NET_OK);
    }
    big = mq_conn_new(t, false, 0);
    c = mq_conn_new(t, true, 0);
    for (j = 0; j < 4; j++) {
        f[0] = mq_seg(t, big, MSS);
        for (i = 1; i < 5; i++) {
            f[i] = mq_seg(t, c, 100);
        }
        send_frames(&t->r, f, 5);
    }
    /* the frames of @big are dropped: none may arrive */
    g_ptr_array_set_size(big->segs, 0);
    rx_all_now(t, "the frames that fit arrive");
    mq_assert_idle(t, ~0u, "the frames too large for the buffers are dropped");
    if (rsc) {
        g_assert_cmpuint(c->coalesced, >, 0);
    }
    mq_end(t);
}

static void test_small_buffers_rsc_on(const void *data)
{
    small_buffers(data, true);
}

static void test_small_buffers_rsc_off(const void *data)
{
    small_buffers(data, false);
}

/* A case registered as a skip, with the reason. */
static void test_skip(const void *data)
{
    g_test_skip(data);
}

static const MqCase cases[] = {
    { .pairs = 1 },
    { .pairs = 1, .mergeable = true },
    { .pairs = 2, .tap = true },
    { .pairs = 4, .tap = true },
    { .pairs = 4, .tap = true, .mergeable = true },
    { .pairs = 1, .packed = true, .layout = true },
    { .pairs = 1, .packed = true, .mergeable = true, .layout = true },
    { .pairs = 4, .tap = true, .packed = true, .layout = true },
    { .pairs = 1, .indirect = true, .no_event_idx = true, .layout = true },
    { .pairs = 1, .packed = true, .indirect = true, .mergeable = true,
      .no_event_idx = true, .layout = true },
    { .pairs = 1, .chain = true, .layout = true },
    { .pairs = 1, .packed = true, .chain = true, .layout = true },
    { .pairs = 1, .chain = true, .split_hdr = true, .mergeable = true,
      .layout = true },
    { .pairs = 1, .packed = true, .chain = true, .split_hdr = true,
      .layout = true },
};

static char *case_path(const char *name, const MqCase *mc)
{
    return g_strdup_printf("virtio-net-rsc-mq/%s/%uq%s%s%s%s%s%s/%s",
                           mc->tap ? "tap" : "socket", mc->pairs,
                           mc->packed ? "-packed" : "",
                           mc->mergeable ? "-mergeable" : "",
                           mc->indirect ? "-indirect" : "",
                           mc->chain ? "-chain" : "",
                           mc->split_hdr ? "-split-hdr" : "",
                           mc->no_event_idx ? "-no-event-idx" : "", name);
}

static void add_skip(const char *name, const MqCase *mc, const char *why)
{
    g_autofree char *path = case_path(name, mc);

    qtest_add_data_func(path, why, test_skip);
}

/* Case @name on the ring layout @mc, run by @fn with @data. */
static void add_case_data(const char *name, const MqCase *mc,
                          GTestDataFunc fn, const void *data)
{
    g_autofree char *path = case_path(name, mc);

    if (mc->tap && tap_unavailable) {
        qtest_add_data_func(path, tap_unavailable, test_skip);
    } else {
        qtest_add_data_func(path, data, fn);
    }
}

static void add_case(const char *name, const MqCase *mc, GTestDataFunc fn)
{
    add_case_data(name, mc, fn, mc);
}

static MqLifecycleCase lc_cases[ARRAY_SIZE(cases)][ARRAY_SIZE(lifecycles)];

int main(int argc, char **argv)
{
    unsigned i, j;

    /* before anything can start a thread */
    tap_netns_setup();
    g_test_init(&argc, &argv, NULL);
    qtest_add_func("virtio-net-rsc-mq/toeplitz-reference",
                   test_toeplitz_reference);
    for (i = 0; i < ARRAY_SIZE(cases); i++) {
        const MqCase *mc = &cases[i];

        add_case("rss-spread", mc, test_rss_spread);
        add_case("burst-end", mc, test_rss_burst_end);
        add_case("liveness/rsc-on", mc, test_liveness_rsc_on);
        add_case("in-order/runs", mc, test_in_order_runs);
        if (!mc->mergeable && !mc->tap) {
            add_case("small-buffers/rsc-on", mc, test_small_buffers_rsc_on);
            add_case("small-buffers/rsc-off", mc,
                     test_small_buffers_rsc_off);
        }
        if (mc->layout) {
            continue;
        }
        if (mc->tap) {
            add_case("hash-report", mc, test_hash_report);
        } else {
            add_skip("hash-report", mc, "QEMU offers no VIRTIO_NET_F_HASH_"
                     "REPORT with a backend without vnet headers");
        }
        if (mc->pairs > 1) {
            add_case("queue-timers", mc, test_rss_queue_timers);
            add_case("rss-reconfig", mc, test_rss_reconfig);
        }
        add_case("liveness/rsc-off", mc, test_liveness_rsc_off);
        for (j = 0; j < ARRAY_SIZE(lifecycles); j++) {
            g_autofree char *name = g_strdup_printf("lifecycle/%s",
                                                    lifecycles[j].name);

            lc_cases[i][j].mc = mc;
            lc_cases[i][j].lc = &lifecycles[j];
            add_case_data(name, mc, test_lifecycle, &lc_cases[i][j]);
        }
        add_case("in-order/interleaved", mc, test_in_order_interleaved);
    }
    return g_test_run();
}
