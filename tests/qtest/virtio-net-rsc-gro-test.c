/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for virtio-net RSC with the GRO profile (rsc_gro=on)
 *
 * The guest side negotiates like Linux's virtio_net driver: VERSION_1,
 * GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, CTRL_VQ, CTRL_GUEST_OFFLOADS and
 * optionally MRG_RXBUF, never RSC_EXT; Linux then treats the device as
 * hardware GRO.  Frames are injected through a socketpair (-netdev socket).
 *
 * Every packet the guest receives is checked by a re-segmentation oracle
 * written here: a packet with gso_type TCPV4/TCPV6 must carry a header
 * Linux accepts (NEEDS_CSUM, csum_start at the TCP header, csum_offset
 * 16, gso_size the MSS, hdr_len the header bytes, the pseudo-header sum
 * in the TCP checksum field), and splitting it into gso_size pieces the
 * way Linux GSO does must give back, byte for byte, the frames that were
 * injected; any other packet must be one injected frame, untouched.  Each
 * rule case also states which frames merge, and which packets come
 * before the flush timer and which only at it.
 */

#include "qemu/osdep.h"
#include <sys/ioctl.h>
#include <linux/sockios.h>
#include <linux/if_ether.h>
#include "qemu/bswap.h"
#include "libqtest.h"
#include "qobject/qdict.h"
#include "qobject/qnum.h"
#include "libqos/malloc-pc.h"
#include "libqos/pci-pc.h"
#include "libqos/virtio.h"
#include "libqos/virtio-pci.h"
#include "standard-headers/linux/virtio_config.h"
#include "standard-headers/linux/virtio_ids.h"
#include "standard-headers/linux/virtio_net.h"
#include "standard-headers/linux/virtio_ring.h"
#include "../include/virtio-net-rsc-frames.h"

#define GRO_TIMEOUT_US      (30 * G_USEC_PER_SEC)
#define GRO_INTERVAL        1000000     /* ns */
#define GRO_PCI_SLOT        4
#define VNET_HDR_LEN        12          /* struct virtio_net_hdr_v1 */
#define BIG_BUF_SIZE        (64 * 1024 + 64)
#define MRG_BUF_SIZE        4096
#define RX_RING_SIZE        1024
#define MSS                 1448
#define MAX_GROUPS          64

#define TCP_FIN             0x01
#define TCP_SYN             0x02
#define TCP_RST             0x04
#define TCP_PSH             0x08
#define TCP_ACK             0x10
#define TCP_URG             0x20
#define TCP_ECE             0x40
#define TCP_CWR             0x80

#define BIT(n)              (1ULL << (n))
/* What Linux's virtio_net acks of what a socket backend offers */
#define LINUX_FEATURES      (BIT(VIRTIO_F_VERSION_1) | \
                             BIT(VIRTIO_NET_F_CTRL_VQ) | \
                             BIT(VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) | \
                             BIT(VIRTIO_NET_F_GUEST_CSUM) | \
                             BIT(VIRTIO_NET_F_GUEST_TSO4) | \
                             BIT(VIRTIO_NET_F_GUEST_TSO6))
#define GRO_OFFLOADS        (BIT(VIRTIO_NET_F_GUEST_CSUM) | \
                             BIT(VIRTIO_NET_F_GUEST_TSO4) | \
                             BIT(VIRTIO_NET_F_GUEST_TSO6))

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };
static const uint8_t peer_mac[6] = { 0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc };

/* How a test wants the device and the driver. */
typedef struct GroOpts {
    bool mergeable;         /* MRG_RXBUF, 4 KiB buffers */
    bool gro_off;           /* leave rsc_gro at its default (off) */
    bool rsc_ext_offered;   /* guest_rsc_ext=on */
    bool rsc_ext_acked;     /* the driver acks RSC_EXT (netkvm) */
    bool no_tso4;           /* the driver does not ack GUEST_TSO4 */
    bool burst;             /* rsc_interval=0: flush at each burst end */
} GroOpts;

/* A frame injected into the backend. */
typedef struct Sent {
    uint8_t *data;
    size_t len;
    unsigned conn;          /* its connection, for per-connection order */
    bool used;              /* matched by a received packet */
} Sent;

typedef struct GroTest {
    QTestState *qts;
    QGuestAllocator alloc;
    QPCIBus *bus;
    QVirtioPCIDevice *vpci;
    QVirtioDevice *vdev;
    QVirtQueue *rx, *tx, *ctrl;
    int sock;
    GroOpts opts;
    uint64_t features;
    uint32_t buf_size;
    uint64_t bufs_base;
    uint16_t avail_idx;
    uint16_t used_idx;
    uint64_t ctrl_buf;
    unsigned nconns;        /* connections made so far */
    GPtrArray *sent;        /* Sent *, not yet matched */
    GString *groups[4];     /* per connection of a case: "3!,2" */
    unsigned coalesced;     /* packets with gso_type TCPV4/6 */
    unsigned merged;        /* segments in them beyond the first */
    unsigned alone;         /* packets delivered untouched */
} GroTest;

/* A packet popped from the receive ring. */
typedef struct RxPacket {
    uint8_t hdr[VNET_HDR_LEN];
    uint8_t *data;
    size_t len;
} RxPacket;

G_GNUC_PRINTF(4, 5) G_NORETURN
static void gro_fail_at(const char *file, int line, const char *func,
                        const char *fmt, ...)
{
    g_autofree char *msg = NULL;
    va_list ap;

    va_start(ap, fmt);
    msg = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_assertion_message(G_LOG_DOMAIN, file, line, func, msg);
    abort();
}

#define gro_fail(...) gro_fail_at(__FILE__, __LINE__, G_STRFUNC, __VA_ARGS__)

/* --- the device and the driver ----------------------------------------- */

static uint16_t used_idx(GroTest *t, QVirtQueue *vq)
{
    uint16_t le;

    qtest_memread(t->qts, vq->used + 2, &le, 2);
    return le16_to_cpu(le);
}

static void rx_kick(GroTest *t)
{
    t->vdev->bus->virtqueue_kick(t->vdev, t->rx);
}

static void rx_post(GroTest *t, uint16_t desc)
{
    uint16_t le = cpu_to_le16(desc);

    qtest_memwrite(t->qts, t->rx->avail + 4 + 2 * (t->avail_idx % t->rx->size),
                   &le, 2);
    t->avail_idx++;
    le = cpu_to_le16(t->avail_idx);
    qtest_memwrite(t->qts, t->rx->avail + 2, &le, 2);
}

/* One buffer per descriptor, all of them posted. */
static void rx_setup(GroTest *t)
{
    uint32_t size = t->rx->size, i;
    g_autofree uint8_t *desc = g_malloc0(size * 16);
    g_autofree uint16_t *ring = g_new0(uint16_t, size);
    uint16_t le;

    t->bufs_base = guest_alloc(&t->alloc, (uint64_t)size * t->buf_size);
    for (i = 0; i < size; i++) {
        stq_le_p(desc + 16 * i, t->bufs_base + (uint64_t)i * t->buf_size);
        stl_le_p(desc + 16 * i + 8, t->buf_size);
        stw_le_p(desc + 16 * i + 12, VRING_DESC_F_WRITE);
        ring[i] = cpu_to_le16(i);
    }
    qtest_bufwrite(t->qts, t->rx->desc, desc, size * 16);
    qtest_bufwrite(t->qts, t->rx->avail + 4, ring, size * 2);
    t->avail_idx = size;
    le = cpu_to_le16(size);
    qtest_memwrite(t->qts, t->rx->avail + 2, &le, 2);
    rx_kick(t);
}

/* CTRL_GUEST_OFFLOADS_SET @offloads; returns the ack byte. */
static uint8_t ctrl_offloads(GroTest *t, uint64_t offloads)
{
    uint8_t cmd[10] = { VIRTIO_NET_CTRL_GUEST_OFFLOADS,
                        VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET };
    uint16_t before = used_idx(t, t->ctrl);
    gint64 deadline = g_get_monotonic_time() + GRO_TIMEOUT_US;
    uint32_t head;

    stq_le_p(cmd + 2, offloads);
    qtest_memwrite(t->qts, t->ctrl_buf, cmd, sizeof(cmd));
    qtest_writeb(t->qts, t->ctrl_buf + 16, 0xff);
    head = qvirtqueue_add(t->qts, t->ctrl, t->ctrl_buf, sizeof(cmd),
                          false, true);
    qvirtqueue_add(t->qts, t->ctrl, t->ctrl_buf + 16, 1, true, false);
    qvirtqueue_kick(t->qts, t->vdev, t->ctrl, head);
    while (used_idx(t, t->ctrl) == before) {
        if (g_get_monotonic_time() > deadline) {
            gro_fail("no answer to CTRL_GUEST_OFFLOADS_SET 0x%" PRIx64,
                     offloads);
        }
    }
    t->ctrl->last_used_idx++;
    return qtest_readb(t->qts, t->ctrl_buf + 16);
}

static void gro_machine_args(GString *args, const GroOpts *o)
{
    g_string_append_printf(args, "-M pc -m 512 -nodefaults "
                           "-device virtio-net-pci,netdev=n0,id=net0,"
                           "addr=%d.0,disable-legacy=on,romfile=,"
                           "rx_queue_size=%d,mrg_rxbuf=%s,rsc_interval=%d",
                           GRO_PCI_SLOT, RX_RING_SIZE,
                           o->mergeable ? "on" : "off",
                           o->burst ? 0 : GRO_INTERVAL);
    if (!o->gro_off) {
        g_string_append(args, ",rsc_gro=on");
    }
    if (o->rsc_ext_offered) {
        g_string_append(args, ",guest_rsc_ext=on");
    }
}

/*
 * Start QEMU and negotiate like Linux: ack every feature of
 * LINUX_FEATURES the device offers (and MRG_RXBUF, RSC_EXT as @o says).
 */
static GroTest *gro_start(const GroOpts *o)
{
    GroTest *t = g_new0(GroTest, 1);
    g_autoptr(GString) args = g_string_new(NULL);
    QPCIAddress addr = { .devfn = QPCI_DEVFN(GRO_PCI_SLOT, 0) };
    uint64_t host, want = LINUX_FEATURES;
    int sv[2];
    unsigned i;

    t->opts = *o;
    t->sent = g_ptr_array_new();
    for (i = 0; i < G_N_ELEMENTS(t->groups); i++) {
        t->groups[i] = g_string_new(NULL);
    }
    t->buf_size = o->mergeable ? MRG_BUF_SIZE : BIG_BUF_SIZE;
    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    t->sock = sv[0];
    g_string_append_printf(args, "-netdev socket,fd=%d,id=n0 ", sv[1]);
    gro_machine_args(args, o);
    t->qts = qtest_init(args->str);
    close(sv[1]);

    pc_alloc_init(&t->alloc, t->qts, 0);
    t->bus = qpci_new_pc(t->qts, &t->alloc);
    t->vpci = virtio_pci_new(t->bus, &addr);
    g_assert_nonnull(t->vpci);
    t->vdev = &t->vpci->vdev;
    g_assert_cmpuint(t->vdev->device_type, ==, VIRTIO_ID_NET);
    qvirtio_pci_device_enable(t->vpci);
    t->ctrl_buf = guest_alloc(&t->alloc, 64);

    qvirtio_start_device(t->vdev);
    host = qvirtio_get_features(t->vdev);
    if (o->mergeable) {
        want |= BIT(VIRTIO_NET_F_MRG_RXBUF);
    }
    if (o->rsc_ext_acked) {
        want |= BIT(VIRTIO_NET_F_RSC_EXT);
    }
    if (o->no_tso4) {
        want &= ~BIT(VIRTIO_NET_F_GUEST_TSO4);
    }
    t->features = host & want;
    qvirtio_set_features(t->vdev, t->features);
    t->rx = qvirtqueue_setup(t->vdev, &t->alloc, 0);
    t->tx = qvirtqueue_setup(t->vdev, &t->alloc, 1);
    t->ctrl = qvirtqueue_setup(t->vdev, &t->alloc, 2);
    qvirtio_set_driver_ok(t->vdev);
    rx_setup(t);
    return t;
}

static void gro_end(GroTest *t)
{
    unsigned i;

    if (t->sent->len) {
        gro_fail("%u injected frames never reached the guest", t->sent->len);
    }
    qtest_quit(t->qts);
    qvirtio_pci_device_disable(t->vpci);
    g_free(t->vpci->pdev);
    g_free(t->vpci);
    qpci_free_pc(t->bus);
    alloc_destroy(&t->alloc);
    close(t->sock);
    g_ptr_array_unref(t->sent);
    for (i = 0; i < G_N_ELEMENTS(t->groups); i++) {
        g_string_free(t->groups[i], true);
    }
    g_free(t);
}

/* --- sending ----------------------------------------------------------- */

static void sent_free(Sent *s)
{
    g_free(s->data);
    g_free(s);
}

/* Write @n frames (4-byte length, bytes) in one write: one burst. */
static void send_frames(GroTest *t, Sent **f, unsigned n)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    size_t done = 0;
    unsigned i;

    for (i = 0; i < n; i++) {
        uint8_t len[4];

        stl_be_p(len, f[i]->len);
        g_byte_array_append(b, len, 4);
        g_byte_array_append(b, f[i]->data, f[i]->len);
        g_ptr_array_add(t->sent, f[i]);
    }
    while (done < b->len) {
        ssize_t r = send(t->sock, b->data + done, b->len - done,
                         MSG_NOSIGNAL);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            gro_fail("writing to the socket backend: %s", strerror(errno));
        }
        done += r;
    }
}

/*
 * Wait until QEMU has read all we wrote; the socket backend hands what it
 * reads to the device in the same main loop callback, so one more qtest
 * round trip afterwards means the device has seen every frame.
 */
static void backend_sync(GroTest *t)
{
    gint64 deadline = g_get_monotonic_time() + GRO_TIMEOUT_US;
    int outq;

    for (;;) {
        g_assert_cmpint(ioctl(t->sock, SIOCOUTQ, &outq), ==, 0);
        if (outq == 0) {
            break;
        }
        if (g_get_monotonic_time() > deadline) {
            gro_fail("QEMU did not read %d bytes from the socket", outq);
        }
        used_idx(t, t->rx);
    }
    used_idx(t, t->rx);
}

/* --- counters ----------------------------------------------------------- */

static QDict *gro_stats(QTestState *qts)
{
    QDict *rsp, *ret;

    rsp = qtest_qmp(qts, "{ 'execute': 'qom-get', 'arguments': {"
                    " 'path': '/machine/peripheral/net0',"
                    " 'property': 'rsc-stats' } }");
    if (qdict_haskey(rsp, "error")) {
        gro_fail("qom-get net0 rsc-stats failed: %s",
                 qdict_get_try_str(qdict_get_qdict(rsp, "error"), "desc"));
    }
    ret = qdict_get_qdict(rsp, "return");
    g_assert_nonnull(ret);
    qobject_ref(ret);
    qobject_unref(rsp);
    return ret;
}

static uint64_t stats_get(QDict *s, const char *name)
{
    QNum *n = qobject_to(QNum, qdict_get(s, name));
    uint64_t v;

    if (!n || !qnum_get_try_uint(n, &v)) {
        gro_fail("rsc-stats has no uint64 counter '%s'", name);
    }
    return v;
}

static uint64_t gro_stat(GroTest *t, const char *name)
{
    g_autoptr(QDict) s = NULL;

    backend_sync(t);
    s = gro_stats(t->qts);
    return stats_get(s, name);
}

/* --- receiving ---------------------------------------------------------- */

static bool rx_ready(GroTest *t)
{
    return used_idx(t, t->rx) != t->used_idx;
}

static void rx_pop_elem(GroTest *t, uint32_t *id, uint32_t *len)
{
    gint64 deadline = g_get_monotonic_time() + GRO_TIMEOUT_US;
    uint8_t elem[8];

    while (!rx_ready(t)) {
        if (g_get_monotonic_time() > deadline) {
            gro_fail("timed out waiting for a used rx buffer");
        }
    }
    qtest_memread(t->qts, t->rx->used + 4 + 8 * (t->used_idx % t->rx->size),
                  elem, sizeof(elem));
    t->used_idx++;
    *id = ldl_le_p(elem);
    *len = ldl_le_p(elem + 4);
    if (*id >= t->rx->size || *len > t->buf_size) {
        gro_fail("used element id %u length %u (ring %u, buffers %u)", *id,
                 *len, t->rx->size, t->buf_size);
    }
}

/* Pop the next packet (num_buffers buffers with MRG_RXBUF), repost. */
static void rx_pop(GroTest *t, RxPacket *p)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    uint32_t id, len, ids[RX_RING_SIZE];
    unsigned i, n = 1;

    rx_pop_elem(t, &id, &len);
    if (len < VNET_HDR_LEN) {
        gro_fail("used length %u is shorter than the vnet header", len);
    }
    g_byte_array_set_size(b, len);
    qtest_bufread(t->qts, t->bufs_base + (uint64_t)id * t->buf_size,
                  b->data, len);
    memcpy(p->hdr, b->data, VNET_HDR_LEN);
    if (t->opts.mergeable) {
        n = lduw_le_p(p->hdr + 10);
        if (n < 1 || n > t->rx->size) {
            gro_fail("num_buffers is %u", n);
        }
    }
    ids[0] = id;
    for (i = 1; i < n; i++) {
        size_t old = b->len;

        rx_pop_elem(t, &ids[i], &len);
        g_byte_array_set_size(b, old + len);
        qtest_bufread(t->qts, t->bufs_base + (uint64_t)ids[i] * t->buf_size,
                      b->data + old, len);
    }
    p->len = b->len - VNET_HDR_LEN;
    p->data = g_memdup2(b->data + VNET_HDR_LEN, p->len);
    for (i = 0; i < n; i++) {
        rx_post(t, ids[i]);
    }
    rx_kick(t);
}

/* --- the oracle --------------------------------------------------------- */

/*
 * Offsets of the IP header, the TCP header and the payload of the
 * TCP/IP frame @p (IPv6 with hop-by-hop, routing and destination options
 * headers); false if it is not one.
 */
static bool tcp_offsets(const uint8_t *p, size_t len, bool *v6, size_t *l4,
                        size_t *hl)
{
    size_t off;
    uint8_t nh;

    if (len < ETH_HLEN + 20) {
        return false;
    }
    if (lduw_be_p(p + 12) == ETH_P_IP) {
        *v6 = false;
        if (p[ETH_HLEN + 9] != 6) {
            return false;
        }
        off = ETH_HLEN + (p[ETH_HLEN] & 0xf) * 4;
    } else if (lduw_be_p(p + 12) == ETH_P_IPV6 && len >= ETH_HLEN + 40) {
        *v6 = true;
        nh = p[ETH_HLEN + 6];
        off = ETH_HLEN + 40;
        while ((nh == 0 || nh == 43 || nh == 60) && off + 8 <= len) {
            nh = p[off];
            off += (p[off + 1] + 1) * 8;
        }
        if (nh != 6) {
            return false;
        }
    } else {
        return false;
    }
    if (off + 20 > len || off + (p[off + 12] >> 4) * 4 > len) {
        return false;
    }
    *l4 = off;
    *hl = off + (p[off + 12] >> 4) * 4;
    return true;
}

static void hexdump(const char *what, const uint8_t *p, size_t len)
{
    g_autoptr(GString) s = g_string_new(NULL);
    size_t i;

    g_test_message("%s (%zu bytes):", what, len);
    for (i = 0; i < len; i++) {
        g_string_append_printf(s, "%02x ", p[i]);
        if (i % 16 == 15 || i + 1 == len) {
            g_test_message("  %s", s->str);
            g_string_truncate(s, 0);
        }
    }
}

/* The first unmatched injected frame of connection @conn, or -1. */
static int sent_next(GroTest *t, unsigned conn, unsigned from)
{
    unsigned i;

    for (i = from; i < t->sent->len; i++) {
        Sent *s = g_ptr_array_index(t->sent, i);

        if (s->conn == conn) {
            return i;
        }
    }
    return -1;
}

/* The index of the injected frame equal to @p/@len, or -1. */
static int sent_find(GroTest *t, const uint8_t *p, size_t len)
{
    unsigned i;

    for (i = 0; i < t->sent->len; i++) {
        Sent *s = g_ptr_array_index(t->sent, i);

        if (s->len == len && !memcmp(s->data, p, len)) {
            return i;
        }
    }
    return -1;
}

static void group_add(GroTest *t, unsigned conn, unsigned n, bool timer)
{
    GString *g = t->groups[MIN(conn, G_N_ELEMENTS(t->groups) - 1)];

    g_string_append_printf(g, "%s%u%s", g->len ? "," : "", n,
                           timer ? "" : "!");
}

/*
 * A packet delivered alone: it must be an injected frame, untouched, the
 * first not yet delivered of its connection, with a zero header.
 */
static void check_alone(GroTest *t, const RxPacket *p, bool timer)
{
    int i = sent_find(t, p->data, p->len), first;
    Sent *s;

    if (i < 0) {
        hexdump("packet", p->data, MIN(p->len, 96));
        gro_fail("a %zu-byte packet with gso_type NONE is none of the "
                 "injected frames", p->len);
    }
    s = g_ptr_array_index(t->sent, i);
    first = sent_next(t, s->conn, 0);
    if (first != i) {
        gro_fail("connection %u: a frame came before an earlier one",
                 s->conn);
    }
    if (p->hdr[0] || p->hdr[1] || lduw_le_p(p->hdr + 2) ||
        lduw_le_p(p->hdr + 4) || lduw_le_p(p->hdr + 6) ||
        lduw_le_p(p->hdr + 8)) {
        hexdump("vnet header", p->hdr, VNET_HDR_LEN);
        gro_fail("a frame delivered alone has a non-zero vnet header");
    }
    group_add(t, s->conn, 1, timer);
    g_ptr_array_remove_index(t->sent, i);
    sent_free(s);
    t->alone++;
}

/* Piece @i of the coalesced packet @u, as Linux GSO cuts it. */
static uint8_t *gso_piece(const uint8_t *u, size_t len, bool v6, size_t l4,
                          size_t hl, uint16_t gso_size, unsigned i,
                          size_t *plen_out)
{
    uint32_t off = i * gso_size, plen = MIN(gso_size, len - hl - off);
    unsigned n = DIV_ROUND_UP(len - hl, gso_size);
    uint8_t *piece = g_malloc(hl + plen);
    uint8_t *ip = piece + ETH_HLEN, *tcp = piece + l4;
    uint32_t sum;

    memcpy(piece, u, hl);
    memcpy(piece + hl, u + hl + off, plen);
    if (v6) {
        stw_be_p(ip + 4, hl - ETH_HLEN - 40 + plen);
    } else {
        stw_be_p(ip + 2, hl - ETH_HLEN + plen);
        stw_be_p(ip + 4, lduw_be_p(ip + 4) + i);
        stw_be_p(ip + 10, 0);
        stw_be_p(ip + 10, rsc_csum_ip4(ip, l4 - ETH_HLEN));
    }
    stl_be_p(tcp + 4, ldl_be_p(tcp + 4) + off);
    if (i + 1 < n) {
        tcp[13] &= ~(TCP_PSH | TCP_FIN);
    }
    if (i > 0) {
        tcp[13] &= ~TCP_CWR;
    }
    stw_be_p(tcp + 16, 0);
    sum = rsc_csum_pseudo(ip, v6, hl - l4 + plen);
    stw_be_p(tcp + 16, ~rsc_csum_fold(rsc_csum_add(sum, tcp, hl - l4 + plen)));
    *plen_out = hl + plen;
    return piece;
}

/* Equal but for the IPv4 ID and header checksum (with @loose)? */
static bool same_frame(const uint8_t *a, const uint8_t *b, size_t len,
                       bool loose, size_t *diff)
{
    size_t j;

    for (j = 0; j < len; j++) {
        if (a[j] != b[j] &&
            !(loose && (j == ETH_HLEN + 4 || j == ETH_HLEN + 5 ||
                        j == ETH_HLEN + 10 || j == ETH_HLEN + 11))) {
            *diff = j;
            return false;
        }
    }
    return true;
}

/*
 * A coalesced packet: check the header, split it as Linux GSO does and
 * compare each piece with the next injected frames of its connection.
 * The exception of RSC-SPEC.md: a unit of DF segments that all had the
 * same IPv4 ID may come back with incrementing IDs.
 */
static void check_coalesced(GroTest *t, const RxPacket *p, bool timer)
{
    const uint8_t *u = p->data;
    size_t l4, hl, len = p->len, plen, diff = 0;
    bool v6, id_fixed = true;
    uint16_t gso_size = lduw_le_p(p->hdr + 4), id0 = 0;
    uint32_t payload, sum;
    unsigned n, i, conn = 0;
    int idx[256];
    Sent *s;

    if (!tcp_offsets(u, len, &v6, &l4, &hl)) {
        gro_fail("a packet with gso_type %u is not TCP/IP", p->hdr[1]);
    }
    if (p->hdr[0] != VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        gro_fail("coalesced packet: flags 0x%x, expected NEEDS_CSUM only",
                 p->hdr[0]);
    }
    if (p->hdr[1] != (v6 ? VIRTIO_NET_HDR_GSO_TCPV6 :
                      VIRTIO_NET_HDR_GSO_TCPV4)) {
        gro_fail("coalesced IPv%d packet: gso_type %u", v6 ? 6 : 4,
                 p->hdr[1]);
    }
    if (lduw_le_p(p->hdr + 2) != hl || lduw_le_p(p->hdr + 6) != l4 ||
        lduw_le_p(p->hdr + 8) != 16) {
        gro_fail("coalesced packet: hdr_len %u csum_start %u csum_offset "
                 "%u, expected %zu %zu 16", lduw_le_p(p->hdr + 2),
                 lduw_le_p(p->hdr + 6), lduw_le_p(p->hdr + 8), hl, l4);
    }
    payload = len - hl;
    if (!gso_size || payload <= gso_size) {
        gro_fail("coalesced packet: gso_size %u, %u payload bytes",
                 gso_size, payload);
    }
    if (v6 ? lduw_be_p(u + ETH_HLEN + 4) != len - ETH_HLEN - 40 :
        (lduw_be_p(u + ETH_HLEN + 2) != len - ETH_HLEN ||
         rsc_csum_fold(rsc_csum_add(0, u + ETH_HLEN, l4 - ETH_HLEN)) !=
         0xffff)) {
        gro_fail("coalesced packet: IP length or header checksum wrong");
    }
    sum = rsc_csum_pseudo(u + ETH_HLEN, v6, len - l4);
    if (lduw_be_p(u + l4 + 16) != rsc_csum_fold(sum)) {
        gro_fail("coalesced packet: TCP checksum field 0x%04x, the "
                 "pseudo-header sum is 0x%04x", lduw_be_p(u + l4 + 16),
                 rsc_csum_fold(sum));
    }

    /* the injected frames: the one the first piece is, and the next */
    n = DIV_ROUND_UP(payload, gso_size);
    g_assert_cmpuint(n, <=, G_N_ELEMENTS(idx));
    {
        g_autofree uint8_t *first = gso_piece(u, len, v6, l4, hl, gso_size,
                                              0, &plen);

        for (idx[0] = 0; idx[0] < (int)t->sent->len; idx[0]++) {
            s = g_ptr_array_index(t->sent, idx[0]);
            if (s->len == plen && same_frame(s->data, first, plen, !v6,
                                             &diff)) {
                break;
            }
        }
        if (idx[0] == (int)t->sent->len) {
            hexdump("first piece", first, MIN(plen, 96));
            gro_fail("the first piece of a coalesced packet (%u pieces, "
                     "gso_size %u) is none of the injected frames", n,
                     gso_size);
        }
    }
    s = g_ptr_array_index(t->sent, idx[0]);
    conn = s->conn;
    if (sent_next(t, conn, 0) != idx[0]) {
        gro_fail("connection %u: a unit came before an earlier frame", conn);
    }
    id0 = lduw_be_p(s->data + ETH_HLEN + 4);
    for (i = 0; i < n; i++) {
        if (i) {
            idx[i] = sent_next(t, conn, idx[i - 1] + 1);
            if (idx[i] < 0) {
                gro_fail("coalesced packet: piece %u of %u has no injected "
                         "frame left on its connection", i + 1, n);
            }
        }
        s = g_ptr_array_index(t->sent, idx[i]);
        id_fixed &= !v6 && (s->data[ETH_HLEN + 6] & 0x40) &&
                    lduw_be_p(s->data + ETH_HLEN + 4) == id0;
    }
    if (id_fixed && lduw_be_p(u + ETH_HLEN + 4) != id0) {
        gro_fail("fixed-ID unit: IP ID 0x%04x, the first segment had 0x%04x",
                 lduw_be_p(u + ETH_HLEN + 4), id0);
    }

    for (i = 0; i < n; i++) {
        g_autofree uint8_t *piece = gso_piece(u, len, v6, l4, hl, gso_size,
                                              i, &plen);

        s = g_ptr_array_index(t->sent, idx[i]);
        if (s->len != plen || !same_frame(s->data, piece, plen, id_fixed,
                                          &diff)) {
            hexdump("piece", piece, MIN(plen, 96));
            hexdump("injected", s->data, MIN(s->len, 96));
            if (s->len != plen) {
                gro_fail("piece %u of %u: %zu bytes, the injected frame has "
                         "%zu", i + 1, n, plen, s->len);
            }
            gro_fail("piece %u of %u differs from the injected frame at byte "
                     "%zu: 0x%02x, expected 0x%02x", i + 1, n, diff,
                     piece[diff], s->data[diff]);
        }
    }
    /* every piece matched: those frames are delivered */
    for (i = n; i-- > 0;) {
        sent_free(g_ptr_array_steal_index(t->sent, idx[i]));
    }
    group_add(t, conn, n, timer);
    t->coalesced++;
    t->merged += n - 1;
}

static void check_packet(GroTest *t, const RxPacket *p, bool timer)
{
    if (p->hdr[1] == VIRTIO_NET_HDR_GSO_NONE) {
        check_alone(t, p, timer);
    } else {
        check_coalesced(t, p, timer);
    }
}

/* Check every packet that is in the ring now. */
static void receive_ready(GroTest *t, bool timer)
{
    while (rx_ready(t)) {
        RxPacket p;

        rx_pop(t, &p);
        check_packet(t, &p, timer);
        g_free(p.data);
    }
}

/*
 * Check what the device delivered before the flush timer ("!" groups),
 * step the clock past it and check the rest; nothing may be left.
 */
static void receive_all(GroTest *t)
{
    backend_sync(t);
    receive_ready(t, false);
    qtest_clock_step(t->qts, GRO_INTERVAL);
    used_idx(t, t->rx);
    receive_ready(t, true);
    if (t->sent->len) {
        Sent *s = g_ptr_array_index(t->sent, 0);

        hexdump("first frame not delivered", s->data, MIN(s->len, 96));
        gro_fail("%u injected frames were not delivered", t->sent->len);
    }
}

static void groups_reset(GroTest *t)
{
    unsigned i;

    for (i = 0; i < G_N_ELEMENTS(t->groups); i++) {
        g_string_truncate(t->groups[i], 0);
    }
}

/* --- building frames ---------------------------------------------------- */

/* A connection: the template of its next segment. */
typedef struct Conn {
    GroTest *t;
    unsigned idx;           /* within the test, for the oracle */
    RscSeg s;
    uint8_t opts[40];
    int id_step;            /* IPv4 ID change per segment */
    uint8_t ext[64];        /* IPv6 extension headers after the header */
    uint8_t ext_len;
    uint8_t ext_nh;         /* next header of the IPv6 header with @ext */
    size_t trailer;
} Conn;

static void conn_init(GroTest *t, Conn *c, bool v6, unsigned idx)
{
    unsigned n = t->nconns++;

    g_assert(idx < G_N_ELEMENTS(t->groups));
    memset(c, 0, sizeof(*c));
    c->t = t;
    c->idx = idx;
    c->s.dst_mac = guest_mac;
    c->s.src_mac = peer_mac;
    c->s.v6 = v6;
    if (v6) {
        c->s.src_ip[0] = c->s.dst_ip[0] = 0xfd;
        c->s.src_ip[15] = 1;
        c->s.dst_ip[15] = 2;
    } else {
        c->s.src_ip[0] = c->s.dst_ip[0] = 10;
        c->s.src_ip[3] = 1;
        c->s.dst_ip[3] = 2;
    }
    c->s.ttl = 64;
    c->s.df = true;
    c->s.ip_id = 0x1000 + n * 0x100;
    c->id_step = 1;
    c->s.sport = 30000 + n;
    c->s.dport = 5001;
    c->s.seq = 0x10000000u + n * 0x01000193u;
    c->s.ack = 0x50000000u + n;
    c->s.flags = TCP_ACK;
    c->s.win = 502;
    memcpy(c->opts, rsc_seg_ts_opts, sizeof(rsc_seg_ts_opts));
    c->s.opts = c->opts;
    c->s.opts_len = 12;
    c->s.tsval = 1000 + n;
    c->s.tsecr = 500;
    c->s.stream = n;
}

/* The frame of the next segment of @c with @plen payload bytes. */
static Sent *conn_seg(Conn *c, uint32_t plen)
{
    Sent *f = g_new0(Sent, 1);
    size_t l3 = ETH_HLEN, len;
    uint8_t *p;

    c->s.plen = plen;
    len = rsc_seg_len(&c->s);
    p = g_malloc0(len + c->ext_len + c->trailer);
    rsc_seg_build(&c->s, p);
    if (c->ext_len) {
        /* insert the extension headers: the TCP checksum stays right */
        g_assert(c->s.v6 && !c->s.hbh);
        memmove(p + l3 + 40 + c->ext_len, p + l3 + 40, len - l3 - 40);
        memcpy(p + l3 + 40, c->ext, c->ext_len);
        p[l3 + 6] = c->ext_nh;
        stw_be_p(p + l3 + 4, lduw_be_p(p + l3 + 4) + c->ext_len);
        len += c->ext_len;
    }
    memset(p + len, 0xee, c->trailer);
    f->data = p;
    f->len = len + c->trailer;
    f->conn = c->idx;
    c->s.seq += plen;
    c->s.pay_off += plen;
    c->s.ip_id += c->id_step;
    return f;
}

/* --- the rule cases ----------------------------------------------------- */

/*
 * A case builds frames on one or two connections; they are sent in one
 * burst.  @expect lists per connection ("|" between them) the packets in
 * the order delivered: how many injected frames each holds, "!" when it
 * must come before the flush timer (a flush, or a frame delivered alone).
 */
typedef struct GroCase {
    const char *name;
    void (*build)(Conn *c, GPtrArray *out);
    bool v6;
    const char *expect;
    const char *counter;    /* a counter that must grow by @count */
    unsigned count;
} GroCase;

#define SEG(c, out, plen) g_ptr_array_add(out, conn_seg(c, plen))

static void segs_n(Conn *c, GPtrArray *out, unsigned n, uint32_t plen)
{
    while (n--) {
        SEG(c, out, plen);
    }
}

/* Two segments, the change @fn does to one, then two more segments. */
#define CHANGE_CASE(name, stmt)                                           \
    static void name(Conn *c, GPtrArray *out)                             \
    {                                                                     \
        segs_n(c, out, 2, MSS);                                           \
        stmt;                                                             \
        segs_n(c, out, 2, MSS);                                           \
    }

/* Two segments, one segment with @stmt applied (then undone), two more. */
#define ONE_CASE(name, stmt, undo, plen)                                  \
    static void name(Conn *c, GPtrArray *out)                             \
    {                                                                     \
        segs_n(c, out, 2, MSS);                                           \
        stmt;                                                             \
        SEG(c, out, plen);                                                \
        undo;                                                             \
        segs_n(c, out, 2, MSS);                                           \
    }

static void case_same_size(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 4, MSS);
}

static void case_short_last(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    SEG(c, out, 700);
    segs_n(c, out, 2, MSS);
}

static void case_short_first(Conn *c, GPtrArray *out)
{
    SEG(c, out, 700);
    SEG(c, out, MSS);
}

static void case_larger(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    SEG(c, out, MSS + 52);
    SEG(c, out, MSS);
}

static void case_psh_first(Conn *c, GPtrArray *out)
{
    c->s.flags |= TCP_PSH;
    SEG(c, out, MSS);
    c->s.flags &= ~TCP_PSH;
    segs_n(c, out, 2, MSS);
}

static void case_psh_short(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    c->s.flags |= TCP_PSH;
    SEG(c, out, 300);
}

static void case_no_options(Conn *c, GPtrArray *out)
{
    c->s.opts_len = 0;
    segs_n(c, out, 3, MSS);
}

static void case_ts_eol_padded(Conn *c, GPtrArray *out)
{
    static const uint8_t o[12] = { 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };

    memcpy(c->opts, o, sizeof(o));
    segs_n(c, out, 3, MSS);
}

static void case_ts_layout(Conn *c, GPtrArray *out)
{
    static const uint8_t o[12] = { 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 1, 1 };

    segs_n(c, out, 2, MSS);
    memcpy(c->opts, o, sizeof(o));
    segs_n(c, out, 2, MSS);
}

static void case_sack(Conn *c, GPtrArray *out)
{
    static const uint8_t sack[24] = { 1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0,
                                      1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2 };

    segs_n(c, out, 2, MSS);
    memcpy(c->opts, sack, sizeof(sack));
    c->s.opts_len = 24;
    SEG(c, out, MSS);
    c->s.opts_len = 12;
    segs_n(c, out, 2, MSS);
}

static void case_gap(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    c->s.seq += MSS;
    c->s.pay_off += MSS;
    segs_n(c, out, 2, MSS);
}

static void case_retransmit(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 3, MSS);
    c->s.seq -= 2 * MSS;
    c->s.pay_off -= 2 * MSS;
    segs_n(c, out, 2, MSS);
}

static void case_pure_ack(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    SEG(c, out, 0);
    SEG(c, out, MSS);
}

static void case_window_update(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    c->s.win += 100;
    SEG(c, out, 0);
}

static void case_ece_same(Conn *c, GPtrArray *out)
{
    c->s.flags |= TCP_ECE;
    segs_n(c, out, 3, MSS);
}

static void case_ece_change(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    c->s.flags |= TCP_ECE;
    segs_n(c, out, 3, MSS);
}

static void case_cwr_first(Conn *c, GPtrArray *out)
{
    c->s.flags |= TCP_CWR;
    SEG(c, out, MSS);
    c->s.flags &= ~TCP_CWR;
    segs_n(c, out, 2, MSS);
}

static void case_ipid_fixed_df(Conn *c, GPtrArray *out)
{
    c->id_step = 0;
    segs_n(c, out, 4, MSS);
}

static void case_ipid_fixed_nodf(Conn *c, GPtrArray *out)
{
    c->s.df = false;
    c->id_step = 0;
    segs_n(c, out, 4, MSS);
}

static void case_ipid_step_nodf(Conn *c, GPtrArray *out)
{
    c->s.df = false;
    segs_n(c, out, 4, MSS);
}

static void case_ipid_jump(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 3, MSS);
    c->s.ip_id += 7;
    segs_n(c, out, 2, MSS);
}

static void case_ipid_wrap(Conn *c, GPtrArray *out)
{
    c->s.ip_id = 0xfffe;
    segs_n(c, out, 4, MSS);
}

static void case_ipid_fixed_then_step(Conn *c, GPtrArray *out)
{
    c->id_step = 0;
    segs_n(c, out, 2, MSS);
    c->id_step = 1;
    c->s.ip_id++;
    SEG(c, out, MSS);
}

static void case_ipid_step_then_fixed(Conn *c, GPtrArray *out)
{
    SEG(c, out, MSS);
    c->id_step = 0;
    segs_n(c, out, 2, MSS);
}

static void case_df_change(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    c->s.df = false;
    segs_n(c, out, 2, MSS);
}

static void case_ip_options(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    c->s.ip_opts_len = 4;
    SEG(c, out, MSS);
    c->s.ip_opts_len = 0;
    segs_n(c, out, 2, MSS);
}

/* IPv6 extension headers: PadN options, next header TCP unless chained */
static void ext_set(Conn *c, uint8_t nh, const uint8_t *ext, uint8_t len)
{
    memcpy(c->ext, ext, len);
    c->ext_len = len;
    c->ext_nh = nh;
}

static const uint8_t ext_opt8[8] = { 6, 0, 1, 4, 0, 0, 0, 0 };
static const uint8_t ext_opt8b[8] = { 6, 0, 1, 4, 0, 0, 0, 1 };
static const uint8_t ext_hbh_dst[16] = { 60, 0, 1, 4, 0, 0, 0, 0,
                                         6, 0, 1, 4, 0, 0, 0, 0 };
static const uint8_t ext_opt24[24] = { 6, 2, 1, 20 };
static const uint8_t ext_rt0[8] = { 6, 0, 253, 0, 0, 0, 0, 0 };
static const uint8_t ext_rt1[8] = { 6, 0, 253, 1, 0, 0, 0, 0 };
static const uint8_t ext_frag[8] = { 6, 0, 0, 1, 0, 0, 0x12, 0x34 };

static void case_ext_hbh(Conn *c, GPtrArray *out)
{
    ext_set(c, 0, ext_opt8, 8);
    segs_n(c, out, 3, MSS);
}

static void case_ext_dst(Conn *c, GPtrArray *out)
{
    ext_set(c, 60, ext_opt8, 8);
    segs_n(c, out, 3, MSS);
}

static void case_ext_hbh_dst(Conn *c, GPtrArray *out)
{
    ext_set(c, 0, ext_hbh_dst, 16);
    segs_n(c, out, 3, MSS);
}

static void case_ext_routing(Conn *c, GPtrArray *out)
{
    ext_set(c, 43, ext_rt0, 8);
    segs_n(c, out, 3, MSS);
}

static void case_ext_routing_left(Conn *c, GPtrArray *out)
{
    ext_set(c, 43, ext_rt1, 8);
    segs_n(c, out, 3, MSS);
}

static void case_ext_long(Conn *c, GPtrArray *out)
{
    ext_set(c, 60, ext_opt24, 24);
    segs_n(c, out, 3, MSS);
}

static void case_ext_differ(Conn *c, GPtrArray *out)
{
    ext_set(c, 60, ext_opt8, 8);
    segs_n(c, out, 2, MSS);
    ext_set(c, 60, ext_opt8b, 8);
    segs_n(c, out, 2, MSS);
}

static void case_ext_added(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    ext_set(c, 60, ext_opt8, 8);
    segs_n(c, out, 2, MSS);
}

static void case_ext_kind(Conn *c, GPtrArray *out)
{
    /* the same bytes, once as hop-by-hop, then as destination options */
    ext_set(c, 0, ext_opt8, 8);
    segs_n(c, out, 2, MSS);
    ext_set(c, 60, ext_opt8, 8);
    segs_n(c, out, 2, MSS);
}

static void case_ext_fragment(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    ext_set(c, 44, ext_frag, 8);
    SEG(c, out, MSS);
    c->ext_len = 0;
    segs_n(c, out, 2, MSS);
}

/* Fill a unit to exactly 65535 bytes of IP datagram: 45 x MSS + rest. */
static void case_limit_exact(Conn *c, GPtrArray *out)
{
    uint32_t room = 65535 - (c->s.v6 ? 40 : 20) - 32;

    segs_n(c, out, room / MSS, MSS);
    SEG(c, out, room % MSS);
}

static void case_limit_over(Conn *c, GPtrArray *out)
{
    uint32_t room = 65535 - (c->s.v6 ? 40 : 20) - 32;

    segs_n(c, out, room / MSS + 2, MSS);
}

/* 11 x 5953 bytes: a full unit of equal segments */
static void case_limit_full_equal(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 12, 5953);
}

static void case_trailer(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    c->trailer = 4;
    SEG(c, out, MSS);
    c->trailer = 0;
    segs_n(c, out, 2, MSS);
}

static void case_min_frame_padding(Conn *c, GPtrArray *out)
{
    c->s.opts_len = 0;
    segs_n(c, out, 2, MSS);
    c->trailer = 60 - (ETH_HLEN + 20 + 20 + 2);
    SEG(c, out, 2);
}

static void case_truncated(Conn *c, GPtrArray *out)
{
    Sent *f;

    segs_n(c, out, 2, MSS);
    f = conn_seg(c, MSS);
    f->len -= 200;          /* the IP length says 200 bytes more */
    g_ptr_array_add(out, f);
    segs_n(c, out, 2, MSS);
}

static void case_urg_ptr_no_flag(Conn *c, GPtrArray *out)
{
    segs_n(c, out, 2, MSS);
    c->s.urg = 100;
    segs_n(c, out, 2, MSS);
}

static void case_interleaved(Conn *c, GPtrArray *out)
{
    Conn *d = c + 1;
    unsigned i;

    for (i = 0; i < 3; i++) {
        SEG(c, out, MSS);
        SEG(d, out, MSS);
    }
}

ONE_CASE(case_psh, c->s.flags |= TCP_PSH, c->s.flags &= ~TCP_PSH, MSS)
ONE_CASE(case_syn, c->s.flags |= TCP_SYN, c->s.flags &= ~TCP_SYN, 0)
ONE_CASE(case_rst, c->s.flags |= TCP_RST, c->s.flags &= ~TCP_RST, 0)
ONE_CASE(case_fin, c->s.flags |= TCP_FIN, c->s.flags &= ~TCP_FIN, MSS)
ONE_CASE(case_urg, (c->s.flags |= TCP_URG, c->s.urg = 10),
         (c->s.flags &= ~TCP_URG, c->s.urg = 0), MSS)
ONE_CASE(case_cwr, c->s.flags |= TCP_CWR, c->s.flags &= ~TCP_CWR, MSS)
ONE_CASE(case_ns, c->s.ns = true, c->s.ns = false, MSS)
ONE_CASE(case_bad_tcp_csum, c->s.tcp_csum_xor = 0x1111,
         c->s.tcp_csum_xor = 0, MSS)
ONE_CASE(case_bad_ip_csum, c->s.ip_csum_xor = 0x1111,
         c->s.ip_csum_xor = 0, MSS)
ONE_CASE(case_data_offset, c->s.doff = 4, c->s.doff = 0, MSS)
ONE_CASE(case_ip_frag_mf, c->s.frag = 0x2000, c->s.frag = 0, MSS)
ONE_CASE(case_ip_reserved, c->s.frag = 0x8000, c->s.frag = 0, MSS)
CHANGE_CASE(case_tsval, c->s.tsval++)
CHANGE_CASE(case_tsecr, c->s.tsecr++)
CHANGE_CASE(case_ack, c->s.ack += MSS)
CHANGE_CASE(case_window, c->s.win++)
CHANGE_CASE(case_tos, c->s.tos = 0x10)
CHANGE_CASE(case_ecn, c->s.tos = 0x03)
CHANGE_CASE(case_ttl, c->s.ttl--)
CHANGE_CASE(case_flow_label, c->s.flow = 0x12345)
CHANGE_CASE(case_traffic_class, c->s.tos = 0x20)

static const GroCase gro_cases[] = {
    /* sizes */
    { "same-size/ipv4", case_same_size, false, "4" },
    { "same-size/ipv6", case_same_size, true, "4" },
    { "short-last/ipv4", case_short_last, false, "3!,2",
      "flush-short", 1 },
    { "short-last/ipv6", case_short_last, true, "3!,2", "flush-short", 1 },
    { "short-first", case_short_first, false, "1!,1" },
    { "larger-than-mss", case_larger, false, "2!,2!" },
    { "pure-ack", case_pure_ack, false, "2!,1!,1", "bypass-pure-ack", 1 },
    { "window-update", case_window_update, false, "2!,1!" },
    /* TCP flags */
    { "psh/ipv4", case_psh, false, "3!,2", "flush-push", 1 },
    { "psh/ipv6", case_psh, true, "3!,2", "flush-push", 1 },
    { "psh-first", case_psh_first, false, "1!,2", "bypass-push", 1 },
    { "psh-short", case_psh_short, false, "3!" },
    { "syn", case_syn, false, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "rst", case_rst, false, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "urg", case_urg, false, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "fin", case_fin, false, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "cwr", case_cwr, false, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "cwr-first", case_cwr_first, true, "1!,2" },
    { "ece-same", case_ece_same, false, "3" },
    { "ece-change", case_ece_change, false, "2!,1!,2" },
    { "ns-bit", case_ns, false, "2!,1!,2" },
    { "urg-pointer-without-urg", case_urg_ptr_no_flag, false, "2!,2" },
    /* checksums */
    { "bad-tcp-csum/ipv4", case_bad_tcp_csum, false, "2!,1!,2",
      "bypass-checksum", 1 },
    { "bad-tcp-csum/ipv6", case_bad_tcp_csum, true, "2!,1!,2",
      "bypass-checksum", 1 },
    { "bad-ip-csum", case_bad_ip_csum, false, "2!,1!,2",
      "bypass-checksum", 1 },
    /* malformed */
    { "truncated/ipv4", case_truncated, false, "2!,1!,2",
      "bypass-malformed", 1 },
    { "truncated/ipv6", case_truncated, true, "2!,1!,2",
      "bypass-malformed", 1 },
    { "tcp-data-offset", case_data_offset, false, "2!,1!,2",
      "bypass-malformed", 1 },
    /* sequence, ACK, window */
    { "seq-gap", case_gap, false, "2!,2" },
    { "seq-retransmit", case_retransmit, true, "3!,2" },
    { "ack-change", case_ack, false, "2!,2" },
    { "window-change", case_window, false, "2!,2" },
    /* TCP options */
    { "no-options", case_no_options, false, "3" },
    { "ts-eol-padded", case_ts_eol_padded, false, "3" },
    { "option-layout-change", case_ts_layout, false, "2!,2" },
    { "option-sack", case_sack, false, "2!,1!,2", "bypass-tcp-options", 1 },
    { "tsval-change", case_tsval, false, "2!,2" },
    { "tsecr-change", case_tsecr, true, "2!,2" },
    /* IPv4 */
    { "tos-change", case_tos, false, "2!,2" },
    { "ecn-change", case_ecn, false, "2!,2" },
    { "ttl-change", case_ttl, false, "2!,2" },
    { "df-change", case_df_change, false, "2!,2" },
    { "ipid-step-df", case_same_size, false, "4" },
    { "ipid-step-nodf", case_ipid_step_nodf, false, "4" },
    { "ipid-fixed-df", case_ipid_fixed_df, false, "4" },
    { "ipid-fixed-nodf", case_ipid_fixed_nodf, false, "1!,1!,1!,1" },
    { "ipid-jump", case_ipid_jump, false, "3!,2" },
    { "ipid-wrap", case_ipid_wrap, false, "4" },
    { "ipid-fixed-then-step", case_ipid_fixed_then_step, false, "2!,1" },
    { "ipid-step-then-fixed", case_ipid_step_then_fixed, false, "2!,1" },
    { "ip-options", case_ip_options, false, "2!,1!,2",
      "bypass-ip-options", 1 },
    { "ip-fragment", case_ip_frag_mf, false, "2!,1!,2",
      "bypass-fragment", 1 },
    { "ip-reserved-flag", case_ip_reserved, false, "2!,1!,2",
      "bypass-malformed", 1 },
    /* IPv6 */
    { "flow-label-change", case_flow_label, true, "2!,2" },
    { "traffic-class-change", case_traffic_class, true, "2!,2" },
    { "hop-limit-change", case_ttl, true, "2!,2" },
    { "ext-hop-by-hop", case_ext_hbh, true, "3" },
    { "ext-dest-options", case_ext_dst, true, "3" },
    { "ext-hop-by-hop-dest-16", case_ext_hbh_dst, true, "3" },
    { "ext-routing-done", case_ext_routing, true, "3" },
    { "ext-routing-segments-left", case_ext_routing_left, true,
      "1!,1!,1!" },
    { "ext-over-16-bytes", case_ext_long, true, "1!,1!,1!" },
    { "ext-differ", case_ext_differ, true, "2!,2" },
    { "ext-added", case_ext_added, true, "2!,2" },
    { "ext-kind-change", case_ext_kind, true, "2!,2" },
    { "ext-fragment", case_ext_fragment, true, "2!,1!,2",
      "bypass-fragment", 1 },
    /* sizes of the whole */
    { "limit-exact/ipv4", case_limit_exact, false, "46!" },
    { "limit-exact/ipv6", case_limit_exact, true, "46!" },
    { "limit-over/ipv4", case_limit_over, false, "45!,2",
      "flush-full", 1 },
    { "limit-over/ipv6", case_limit_over, true, "45!,2", "flush-full", 1 },
    { "limit-equal-segments", case_limit_full_equal, false, "11!,1",
      "flush-full", 1 },
    /* bytes after the IP datagram */
    { "trailer/ipv4", case_trailer, false, "2!,1!,2", "bypass-trailer", 1 },
    { "trailer/ipv6", case_trailer, true, "2!,1!,2", "bypass-trailer", 1 },
    { "min-frame-padding", case_min_frame_padding, false, "2!,1!",
      "bypass-trailer", 1 },
    /* two connections */
    { "interleaved", case_interleaved, false, "3|3" },
};

/*
 * One QEMU per receive buffer layout serves every case: each case uses
 * new connections, and ends with nothing held.
 */
static GroTest *shared[2];

static void run_case(const void *data, bool mergeable)
{
    const GroCase *gc = data;
    GroTest *t = shared[mergeable];
    g_autoptr(GPtrArray) out = g_ptr_array_new();
    g_autoptr(GString) got = g_string_new(NULL);
    g_autoptr(QDict) before = NULL, after = NULL;
    Conn c[2];

    if (!t) {
        GroOpts o = { .mergeable = mergeable };

        t = shared[mergeable] = gro_start(&o);
        g_assert(t->features & BIT(VIRTIO_NET_F_GUEST_TSO4));
        g_assert(t->features & BIT(VIRTIO_NET_F_GUEST_TSO6));
    }
    conn_init(t, &c[0], gc->v6, 0);
    conn_init(t, &c[1], gc->v6, 1);
    gc->build(c, out);
    before = gro_stats(t->qts);
    groups_reset(t);
    t->coalesced = t->merged = t->alone = 0;
    send_frames(t, (Sent **)out->pdata, out->len);
    receive_all(t);

    g_string_append(got, t->groups[0]->str);
    if (t->groups[1]->len) {
        g_string_append_printf(got, "|%s", t->groups[1]->str);
    }
    if (strcmp(got->str, gc->expect)) {
        gro_fail("%s: the device delivered %s, expected %s", gc->name,
                 got->str, gc->expect);
    }
    after = gro_stats(t->qts);
#define DELTA(name) (stats_get(after, name) - stats_get(before, name))
    g_assert_cmpuint(DELTA("segments-received"), ==, out->len);
    g_assert_cmpuint(DELTA("units-delivered"), ==, t->coalesced);
    g_assert_cmpuint(DELTA("segments-merged"), ==, t->merged);
    g_assert_cmpuint(DELTA("frames-uncoalesced"), ==, t->alone);
    if (gc->counter) {
        g_assert_cmpuint(DELTA(gc->counter), ==, gc->count);
    }
#undef DELTA
}

static void test_case_big(const void *data)
{
    run_case(data, false);
}

static void test_case_mrg(const void *data)
{
    run_case(data, true);
}

/* --- offloads, profiles, defaults ---------------------------------------- */

/* Hold a unit of two segments on each of @n connections of @c. */
static void hold_units(GroTest *t, Conn *c, unsigned n)
{
    Sent *f[8];
    unsigned i;

    g_assert(n <= 4);
    for (i = 0; i < n; i++) {
        f[2 * i] = conn_seg(&c[i], MSS);
        f[2 * i + 1] = conn_seg(&c[i], MSS);
    }
    send_frames(t, f, 2 * n);
    backend_sync(t);
    if (rx_ready(t)) {
        gro_fail("a unit was delivered before the flush timer");
    }
}

/* Send @n segments of @c and check what comes: the groups in @expect. */
static void send_check(GroTest *t, Conn *c, unsigned n, const char *expect)
{
    Sent *f[16];
    unsigned i;

    for (i = 0; i < n; i++) {
        f[i] = conn_seg(c, MSS);
    }
    groups_reset(t);
    send_frames(t, f, n);
    receive_all(t);
    if (strcmp(t->groups[c->idx]->str, expect)) {
        gro_fail("the device delivered %s, expected %s",
                 t->groups[c->idx]->str, expect);
    }
}

/*
 * rx-gro-hw off (CTRL_GUEST_OFFLOADS_SET without TSO4/TSO6, what Linux's
 * ethtool -K eth0 rx-gro-hw off sends) flushes the held units first, then
 * every frame goes untouched; rx-gro-hw on coalesces again.
 */
static void test_ctrl_gro_hw_toggle(void)
{
    GroOpts o = { 0 };
    GroTest *t = gro_start(&o);
    Conn c[2];

    conn_init(t, &c[0], false, 0);
    conn_init(t, &c[1], true, 1);
    hold_units(t, c, 2);
    groups_reset(t);
    g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_CSUM)), ==,
                     VIRTIO_NET_OK);
    /* the units come at once, not at the timer */
    backend_sync(t);
    receive_ready(t, false);
    g_assert_cmpstr(t->groups[0]->str, ==, "2!");
    g_assert_cmpstr(t->groups[1]->str, ==, "2!");
    g_assert_cmpuint(gro_stat(t, "flush-offloads"), ==, 2);

    send_check(t, &c[0], 3, "1!,1!,1!");
    send_check(t, &c[1], 3, "1!,1!,1!");

    g_assert_cmpuint(ctrl_offloads(t, GRO_OFFLOADS), ==, VIRTIO_NET_OK);
    send_check(t, &c[0], 3, "3");
    send_check(t, &c[1], 3, "3");
    /* TSO4 alone off: IPv4 untouched, IPv6 still coalesced */
    g_assert_cmpuint(ctrl_offloads(t, GRO_OFFLOADS &
                                   ~BIT(VIRTIO_NET_F_GUEST_TSO4)), ==,
                     VIRTIO_NET_OK);
    send_check(t, &c[0], 3, "1!,1!,1!");
    send_check(t, &c[1], 3, "3");
    /* RSC_EXT was not negotiated: its bit is refused, nothing changes */
    g_assert_cmpuint(ctrl_offloads(t, GRO_OFFLOADS |
                                   BIT(VIRTIO_NET_F_RSC_EXT)), ==,
                     VIRTIO_NET_ERR);
    send_check(t, &c[0], 3, "1!,1!,1!");
    /* no GUEST_CSUM (Linux: ethtool -K eth0 rx off): no NEEDS_CSUM units */
    g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_TSO4) |
                                   BIT(VIRTIO_NET_F_GUEST_TSO6)), ==,
                     VIRTIO_NET_OK);
    send_check(t, &c[0], 3, "1!,1!,1!");
    send_check(t, &c[1], 3, "1!,1!,1!");
    gro_end(t);
}

/* A driver without GUEST_TSO4: IPv4 untouched, IPv6 coalesced. */
static void test_tso6_only(void)
{
    GroOpts o = { .no_tso4 = true };
    GroTest *t = gro_start(&o);
    Conn c[2];

    conn_init(t, &c[0], false, 0);
    conn_init(t, &c[1], true, 1);
    send_check(t, &c[0], 3, "1!,1!,1!");
    send_check(t, &c[1], 3, "3");
    gro_end(t);
}

/*
 * guest_rsc_ext=on offered but a Linux driver does not ack RSC_EXT: the
 * GRO profile applies (the oracle fails on RSC_INFO).
 */
static void test_rsc_ext_offered_not_acked(void)
{
    GroOpts o = { .rsc_ext_offered = true };
    GroTest *t = gro_start(&o);
    Conn c;

    g_assert(!(t->features & BIT(VIRTIO_NET_F_RSC_EXT)));
    conn_init(t, &c, false, 0);
    send_check(t, &c, 3, "3");
    c.s.ack++;
    send_check(t, &c, 2, "2");
    gro_end(t);
}

/* Pop one packet within the timeout; return its vnet header. */
static void pop_one(GroTest *t, RxPacket *p)
{
    backend_sync(t);
    qtest_clock_step(t->qts, GRO_INTERVAL);
    rx_pop(t, p);
}

/*
 * With RSC_EXT negotiated (netkvm), rsc_gro=on changes nothing: the
 * RSC_EXT rules apply (an advancing ACK merges) and the header carries
 * RSC_INFO with the segment count; netkvm's "RSC off" (TSO4/6 cleared,
 * bit 61 kept) and an offloads word without bit 61 turn coalescing off,
 * GRO does not take over.
 */
static void test_rsc_ext_unchanged(void)
{
    GroOpts o = { .rsc_ext_offered = true, .rsc_ext_acked = true };
    GroTest *t = gro_start(&o);
    const uint8_t *seg[2];
    size_t len[2], ulen;
    uint8_t vhdr[RSC_SEG_VHDR_LEN];
    g_autofree uint8_t *unit = g_malloc(RSC_SEG_MAX_UNIT);
    Sent *f[3];
    RxPacket p;
    Conn c;
    unsigned i;

    g_assert(t->features & BIT(VIRTIO_NET_F_RSC_EXT));
    g_assert_cmpuint(ctrl_offloads(t, GRO_OFFLOADS |
                                   BIT(VIRTIO_NET_F_RSC_EXT)), ==,
                     VIRTIO_NET_OK);
    conn_init(t, &c, false, 0);
    f[0] = conn_seg(&c, MSS);
    c.s.ack += 100;
    f[1] = conn_seg(&c, MSS);
    for (i = 0; i < 2; i++) {
        seg[i] = f[i]->data;
        len[i] = f[i]->len;
    }
    ulen = rsc_unit_expect(seg, len, 2, unit, vhdr);
    g_assert_cmpuint(ulen, >, 0);
    send_frames(t, f, 2);
    pop_one(t, &p);
    g_assert_cmpuint(p.hdr[0], ==, VIRTIO_NET_HDR_F_NEEDS_CSUM |
                     VIRTIO_NET_HDR_F_RSC_INFO);
    g_assert_cmpmem(p.hdr, RSC_SEG_VHDR_LEN, vhdr, RSC_SEG_VHDR_LEN);
    g_assert_cmpmem(p.data, p.len, unit, ulen);
    g_free(p.data);
    g_ptr_array_set_size(t->sent, 0);
    sent_free(f[0]);
    sent_free(f[1]);

    /* netkvm's RSC off: TSO4/6 cleared, bit 61 kept */
    g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_CSUM) |
                                   BIT(VIRTIO_NET_F_RSC_EXT)), ==,
                     VIRTIO_NET_OK);
    send_check(t, &c, 3, "1!,1!,1!");
    /* TSO4/6 without bit 61: still off, no GRO for RSC_EXT guests */
    g_assert_cmpuint(ctrl_offloads(t, GRO_OFFLOADS), ==, VIRTIO_NET_OK);
    send_check(t, &c, 3, "1!,1!,1!");
    gro_end(t);
}

/*
 * rsc_gro=off (the default) on a socket backend: GUEST_CSUM/TSO4/TSO6
 * are not offered, so a Linux driver gets every frame untouched.
 */
static void test_gro_off_default(void)
{
    GroOpts o = { .gro_off = true };
    GroTest *t = gro_start(&o);
    Conn c[2];

    g_assert(!(t->features & BIT(VIRTIO_NET_F_GUEST_TSO4)));
    g_assert(!(t->features & BIT(VIRTIO_NET_F_GUEST_TSO6)));
    g_assert(!(t->features & BIT(VIRTIO_NET_F_GUEST_CSUM)));
    conn_init(t, &c[0], false, 0);
    conn_init(t, &c[1], true, 1);
    send_check(t, &c[0], 4, "1!,1!,1!,1!");
    send_check(t, &c[1], 4, "1!,1!,1!,1!");
    g_assert_cmpuint(gro_stat(t, "segments-received"), ==, 0);
    gro_end(t);
}

/*
 * rsc_interval=0: units are delivered when the receive burst ends,
 * without a clock step (flush-burst-end), still checked by the oracle.
 */
static void test_burst_end(void)
{
    GroOpts o = { .burst = true };
    GroTest *t = gro_start(&o);
    gint64 deadline = g_get_monotonic_time() + GRO_TIMEOUT_US;
    Sent *f[7];
    Conn c[2];
    unsigned i;

    conn_init(t, &c[0], false, 0);
    conn_init(t, &c[1], true, 1);
    for (i = 0; i < 7; i++) {
        f[i] = conn_seg(&c[i & 1], MSS);
    }
    groups_reset(t);
    send_frames(t, f, 7);
    backend_sync(t);
    while ((uint16_t)(used_idx(t, t->rx) - t->used_idx) < 2) {
        if (g_get_monotonic_time() > deadline) {
            gro_fail("the units did not come at the end of the burst");
        }
    }
    receive_ready(t, false);
    g_assert_cmpstr(t->groups[0]->str, ==, "4!");
    g_assert_cmpstr(t->groups[1]->str, ==, "3!");
    g_assert_cmpuint(t->sent->len, ==, 0);
    g_assert_cmpuint(gro_stat(t, "flush-burst-end"), ==, 2);
    gro_end(t);
}

/* --- migration ----------------------------------------------------------- */

/*
 * Migrate @t's VM to a new QEMU with the same options and a new
 * socketpair backend; from then on @t drives the destination.  Returns
 * the source's rsc-stats at the end.
 */
static QDict *gro_migrate(GroTest *t)
{
    g_autoptr(GString) args = g_string_new(NULL);
    g_autofree char *dir = g_dir_make_tmp("virtio-net-gro-XXXXXX", NULL);
    g_autofree char *path = g_strdup_printf("%s/migration", dir);
    g_autofree char *uri = g_strdup_printf("unix:%s", path);
    QTestState *dst;
    QDict *stats;
    int sv[2];

    g_assert_cmpint(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), ==, 0);
    g_string_append_printf(args, "-netdev socket,fd=%d,id=n0 ", sv[1]);
    gro_machine_args(args, &t->opts);
    g_string_append(args, " -incoming defer");
    dst = qtest_init(args->str);
    close(sv[1]);
    qtest_qmp_assert_success(dst, "{ 'execute': 'migrate-incoming',"
                             " 'arguments': { 'uri': %s } }", uri);
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'migrate-set-capabilities',"
                             " 'arguments': { 'capabilities': [ {"
                             " 'capability': 'events', 'state': true } ] } }");
    qtest_qmp_assert_success(t->qts, "{ 'execute': 'migrate',"
                             " 'arguments': { 'uri': %s } }", uri);
    for (;;) {
        QDict *ev = qtest_qmp_eventwait_ref(t->qts, "MIGRATION");
        const char *st = qdict_get_str(qdict_get_qdict(ev, "data"),
                                       "status");
        bool done = !strcmp(st, "completed");

        if (!strcmp(st, "failed") || !strcmp(st, "cancelled")) {
            gro_fail("migration %s", st);
        }
        qobject_unref(ev);
        if (done) {
            break;
        }
    }
    qtest_qmp_eventwait(dst, "RESUME");
    stats = gro_stats(t->qts);
    qtest_quit(t->qts);
    close(t->sock);
    t->qts = dst;
    t->bus->qts = dst;
    t->sock = sv[0];
    unlink(path);
    rmdir(dir);
    return stats;
}

/*
 * Units held when the VM stops are flushed on the source (flush-vm-stop)
 * and read on the destination, checked by the oracle; the destination
 * coalesces under the GRO profile.  A guest that turned rx-gro-hw off
 * before the migration keeps it off on the destination.
 */
static void test_migration(void)
{
    GroOpts o = { 0 };
    GroTest *t = gro_start(&o);
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) src2 = NULL;
    Conn c[2];

    conn_init(t, &c[0], false, 0);
    conn_init(t, &c[1], true, 1);
    hold_units(t, c, 2);
    groups_reset(t);
    src = gro_migrate(t);
    g_assert_cmpuint(stats_get(src, "flush-vm-stop"), ==, 2);
    g_assert_cmpuint(stats_get(src, "units-delivered"), ==, 2);
    receive_ready(t, false);
    g_assert_cmpstr(t->groups[0]->str, ==, "2!");
    g_assert_cmpstr(t->groups[1]->str, ==, "2!");
    g_assert_cmpuint(t->sent->len, ==, 0);

    send_check(t, &c[0], 3, "3");
    send_check(t, &c[1], 3, "3");

    g_assert_cmpuint(ctrl_offloads(t, BIT(VIRTIO_NET_F_GUEST_CSUM)), ==,
                     VIRTIO_NET_OK);
    src2 = gro_migrate(t);
    send_check(t, &c[0], 3, "1!,1!,1!");
    send_check(t, &c[1], 3, "1!,1!,1!");
    g_assert_cmpuint(ctrl_offloads(t, GRO_OFFLOADS), ==, VIRTIO_NET_OK);
    send_check(t, &c[0], 3, "3");
    gro_end(t);
}

int main(int argc, char **argv)
{
    const char *arch = qtest_get_arch();
    unsigned i;
    int ret;

    g_test_init(&argc, &argv, NULL);
    if (strcmp(arch, "x86_64") && strcmp(arch, "i386")) {
        g_test_skip("the test drives a virtio-net-pci on the pc machine");
        return g_test_run();
    }
    for (i = 0; i < G_N_ELEMENTS(gro_cases); i++) {
        g_autofree char *big = g_strdup_printf("/virtio-net-rsc-gro/rule/%s",
                                               gro_cases[i].name);
        g_autofree char *mrg = g_strdup_printf("/virtio-net-rsc-gro/rule-mrg/"
                                               "%s", gro_cases[i].name);

        qtest_add_data_func(big, &gro_cases[i], test_case_big);
        qtest_add_data_func(mrg, &gro_cases[i], test_case_mrg);
    }
    qtest_add_func("/virtio-net-rsc-gro/ctrl/rx-gro-hw-toggle",
                   test_ctrl_gro_hw_toggle);
    qtest_add_func("/virtio-net-rsc-gro/negotiation/tso6-only",
                   test_tso6_only);
    qtest_add_func("/virtio-net-rsc-gro/negotiation/rsc-ext-not-acked",
                   test_rsc_ext_offered_not_acked);
    qtest_add_func("/virtio-net-rsc-gro/negotiation/rsc-ext-unchanged",
                   test_rsc_ext_unchanged);
    qtest_add_func("/virtio-net-rsc-gro/negotiation/rsc-gro-off",
                   test_gro_off_default);
    qtest_add_func("/virtio-net-rsc-gro/burst-end", test_burst_end);
    qtest_add_func("/virtio-net-rsc-gro/migration", test_migration);
    ret = g_test_run();
    for (i = 0; i < G_N_ELEMENTS(shared); i++) {
        if (shared[i]) {
            gro_end(shared[i]);
        }
    }
    return ret;
}
