/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * QTest for virtio-net RSC with the GRO profile (rsc_gro=on)
 *
 * The guest side negotiates like Linux's virtio_net driver: VERSION_1,
 * GUEST_CSUM, GUEST_TSO4, GUEST_TSO6, CTRL_VQ, CTRL_GUEST_OFFLOADS and
 * optionally MRG_RXBUF, never RSC_EXT; Linux then treats the device as
 * hardware GRO.  The device, the driver, the socketpair backend
 * (-netdev socket) and the frames come from the fixture of the RSC qtest
 * (virtio-net-rsc-utils.h), set up with the options of gro_opts().
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
#include "qemu/bswap.h"
#include "virtio-net-rsc-utils.h"

#define GRO_OFFLOADS        (BIT(VIRTIO_NET_F_GUEST_CSUM) | \
                             BIT(VIRTIO_NET_F_GUEST_TSO4) | \
                             BIT(VIRTIO_NET_F_GUEST_TSO6))
#define GRO_GROUPS          4   /* connections a case tells apart */

/* The oracle's state, around the fixture's device and driver. */
typedef struct GroTest {
    RscTest r;
    GPtrArray *sent;        /* Frame *, injected and not yet delivered */
    unsigned conn0;         /* index of the first connection of a case */
    GString *groups[GRO_GROUPS];    /* per connection of a case: "3!,2" */
    unsigned coalesced;     /* packets with gso_type TCPV4/6 */
    unsigned merged;        /* segments in them beyond the first */
    unsigned alone;         /* packets delivered untouched */
} GroTest;

/*
 * What Linux's virtio_net driver does with rsc_gro=on: it acks what the
 * device offers of VERSION_1, CTRL_VQ, CTRL_GUEST_OFFLOADS, GUEST_CSUM
 * and GUEST_TSO4/6, never RSC_EXT, which the device does not offer.
 */
static RscOpts gro_opts(void)
{
    RscOpts o = {
        .rsc_gro = true,
        .no_rsc_ext = true,
        .no_offer_rsc_ext = true,
        .ack_offered = true,
    };

    return o;
}

static GroTest *gro_start(const RscOpts *o)
{
    GroTest *t = g_new0(GroTest, 1);
    unsigned i;

    rsc_init(&t->r, o);
    t->sent = g_ptr_array_new();
    for (i = 0; i < GRO_GROUPS; i++) {
        t->groups[i] = g_string_new(NULL);
    }
    return t;
}

static void gro_end(GroTest *t)
{
    unsigned i;

    if (t->sent->len) {
        rsc_fail("%u injected frames never reached the guest", t->sent->len);
    }
    rsc_fini(&t->r);
    g_ptr_array_unref(t->sent);
    for (i = 0; i < GRO_GROUPS; i++) {
        g_string_free(t->groups[i], true);
    }
    g_free(t);
}

/* gro_start(), with an IPv4 connection in @c[0] and an IPv6 one in @c[1]. */
static GroTest *gro_start_conns(const RscOpts *o, Conn **c)
{
    GroTest *t = gro_start(o);

    c[0] = conn_new(&t->r, false);
    c[1] = conn_new(&t->r, true);
    return t;
}

/* Inject @n frames in one burst; the oracle expects each of them. */
static void gro_send(GroTest *t, Frame **f, unsigned n)
{
    unsigned i;

    for (i = 0; i < n; i++) {
        g_ptr_array_add(t->sent, f[i]);
    }
    send_frames(&t->r, f, n);
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

/* The first unmatched injected frame of connection @conn, or -1. */
static int sent_next(GroTest *t, int conn, unsigned from)
{
    unsigned i;

    for (i = from; i < t->sent->len; i++) {
        Frame *s = g_ptr_array_index(t->sent, i);

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
        Frame *s = g_ptr_array_index(t->sent, i);

        if (s->len == len && !memcmp(s->data, p, len)) {
            return i;
        }
    }
    return -1;
}

/* The groups of connection @conn (its index among all of the test). */
static GString *group_of(GroTest *t, int conn)
{
    g_assert_cmpint(conn, >=, t->conn0);
    return t->groups[MIN(conn - t->conn0, GRO_GROUPS - 1)];
}

static void group_add(GroTest *t, int conn, unsigned n, bool timer)
{
    GString *g = group_of(t, conn);

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
    Frame *s;

    if (i < 0) {
        hexdump("packet", p->data, MIN(p->len, 96));
        rsc_fail("a %zu-byte packet with gso_type NONE is none of the "
                 "injected frames", p->len);
    }
    s = g_ptr_array_index(t->sent, i);
    first = sent_next(t, s->conn, 0);
    if (first != i) {
        rsc_fail("connection %d: a frame came before an earlier one",
                 s->conn);
    }
    if (p->hdr[0] || p->hdr[1] || lduw_le_p(p->hdr + 2) ||
        lduw_le_p(p->hdr + 4) || lduw_le_p(p->hdr + 6) ||
        lduw_le_p(p->hdr + 8)) {
        hexdump("vnet header", p->hdr, VNET_HDR_LEN);
        rsc_fail("a frame delivered alone has a non-zero vnet header");
    }
    group_add(t, s->conn, 1, timer);
    g_ptr_array_remove_index(t->sent, i);
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
    unsigned n, i;
    int idx[256], conn;
    Frame *s;

    if (!tcp_offsets(u, len, &v6, &l4, &hl)) {
        rsc_fail("a packet with gso_type %u is not TCP/IP", p->hdr[1]);
    }
    if (p->hdr[0] != VIRTIO_NET_HDR_F_NEEDS_CSUM) {
        rsc_fail("coalesced packet: flags 0x%x, expected NEEDS_CSUM only",
                 p->hdr[0]);
    }
    if (p->hdr[1] != (v6 ? VIRTIO_NET_HDR_GSO_TCPV6 :
                      VIRTIO_NET_HDR_GSO_TCPV4)) {
        rsc_fail("coalesced IPv%d packet: gso_type %u", v6 ? 6 : 4,
                 p->hdr[1]);
    }
    if (lduw_le_p(p->hdr + 2) != hl || lduw_le_p(p->hdr + 6) != l4 ||
        lduw_le_p(p->hdr + 8) != 16) {
        rsc_fail("coalesced packet: hdr_len %u csum_start %u csum_offset "
                 "%u, expected %zu %zu 16", lduw_le_p(p->hdr + 2),
                 lduw_le_p(p->hdr + 6), lduw_le_p(p->hdr + 8), hl, l4);
    }
    payload = len - hl;
    if (!gso_size || payload <= gso_size) {
        rsc_fail("coalesced packet: gso_size %u, %u payload bytes",
                 gso_size, payload);
    }
    if (v6 ? lduw_be_p(u + ETH_HLEN + 4) != len - ETH_HLEN - 40 :
        (lduw_be_p(u + ETH_HLEN + 2) != len - ETH_HLEN ||
         rsc_csum_fold(rsc_csum_add(0, u + ETH_HLEN, l4 - ETH_HLEN)) !=
         0xffff)) {
        rsc_fail("coalesced packet: IP length or header checksum wrong");
    }
    sum = rsc_csum_pseudo(u + ETH_HLEN, v6, len - l4);
    if (lduw_be_p(u + l4 + 16) != rsc_csum_fold(sum)) {
        rsc_fail("coalesced packet: TCP checksum field 0x%04x, the "
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
            rsc_fail("the first piece of a coalesced packet (%u pieces, "
                     "gso_size %u) is none of the injected frames", n,
                     gso_size);
        }
    }
    s = g_ptr_array_index(t->sent, idx[0]);
    conn = s->conn;
    if (sent_next(t, conn, 0) != idx[0]) {
        rsc_fail("connection %d: a unit came before an earlier frame", conn);
    }
    id0 = lduw_be_p(s->data + ETH_HLEN + 4);
    for (i = 0; i < n; i++) {
        if (i) {
            idx[i] = sent_next(t, conn, idx[i - 1] + 1);
            if (idx[i] < 0) {
                rsc_fail("coalesced packet: piece %u of %u has no injected "
                         "frame left on its connection", i + 1, n);
            }
        }
        s = g_ptr_array_index(t->sent, idx[i]);
        id_fixed &= !v6 && (s->data[ETH_HLEN + 6] & 0x40) &&
                    lduw_be_p(s->data + ETH_HLEN + 4) == id0;
    }
    if (id_fixed && lduw_be_p(u + ETH_HLEN + 4) != id0) {
        rsc_fail("fixed-ID unit: IP ID 0x%04x, the first segment had 0x%04x",
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
                rsc_fail("piece %u of %u: %zu bytes, the injected frame has "
                         "%zu", i + 1, n, plen, s->len);
            }
            rsc_fail("piece %u of %u differs from the injected frame at byte "
                     "%zu: 0x%02x, expected 0x%02x", i + 1, n, diff,
                     piece[diff], s->data[diff]);
        }
    }
    /* every piece matched: those frames are delivered */
    for (i = n; i-- > 0;) {
        g_ptr_array_remove_index(t->sent, idx[i]);
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
    while (rx_ready(&t->r)) {
        RxPacket p;

        rx_pop(&t->r, &p);
        check_packet(t, &p, timer);
        rx_packet_free(&p);
    }
}

/*
 * Check what the device delivered before the flush timer ("!" groups),
 * step the clock past it and check the rest; nothing may be left.
 */
static void receive_all(GroTest *t)
{
    backend_sync(&t->r);
    receive_ready(t, false);
    clock_step(&t->r, RSC_INTERVAL);
    used_idx(&t->r, t->r.rx);
    receive_ready(t, true);
    if (t->sent->len) {
        Frame *s = g_ptr_array_index(t->sent, 0);

        hexdump("first frame not delivered", s->data, MIN(s->len, 96));
        rsc_fail("%u injected frames were not delivered", t->sent->len);
    }
}

static void groups_reset(GroTest *t)
{
    unsigned i;

    for (i = 0; i < GRO_GROUPS; i++) {
        g_string_truncate(t->groups[i], 0);
    }
}

/* --- the rule cases ----------------------------------------------------- */

/* Where a case puts its frames; the second connection is @d. */
typedef struct Build {
    RscTest *t;
    GPtrArray *out;         /* Frame *, sent in one burst */
    Conn *d;
} Build;

/*
 * A case builds frames on one or two connections; they are sent in one
 * burst.  @expect lists per connection ("|" between them) the packets in
 * the order delivered: how many injected frames each holds, "!" when it
 * must come before the flush timer (a flush, or a frame delivered alone).
 */
typedef enum GroIp {
    IP4,
    IP6,
    IP46,                   /* two cases, name/ipv4 and name/ipv6 */
} GroIp;

typedef struct GroCase {
    const char *name;
    void (*build)(Build *b, Conn *c);
    GroIp ip;
    const char *expect;
    const char *counter;    /* a counter that must grow by @count */
    unsigned count;
} GroCase;

#define SEG(b, c, plen) g_ptr_array_add((b)->out, seg((b)->t, c, plen))

static void segs_n(Build *b, Conn *c, unsigned n, uint32_t plen)
{
    while (n--) {
        SEG(b, c, plen);
    }
}

/* @stmt, then @n segments. */
#define RUN_CASE(name, stmt, n)                                           \
    static void name(Build *b, Conn *c)                                   \
    {                                                                     \
        stmt;                                                             \
        segs_n(b, c, n, MSS);                                             \
    }

/* @n1 segments, the change @stmt, then @n2 segments. */
#define CHANGE_CASE(name, n1, stmt, n2)                                   \
    static void name(Build *b, Conn *c)                                   \
    {                                                                     \
        segs_n(b, c, n1, MSS);                                            \
        stmt;                                                             \
        segs_n(b, c, n2, MSS);                                            \
    }

/* Two segments, one of @plen bytes with @stmt applied (then undone), two. */
#define ONE_CASE(name, stmt, undo, plen)                                  \
    static void name(Build *b, Conn *c)                                   \
    {                                                                     \
        segs_n(b, c, 2, MSS);                                             \
        stmt;                                                             \
        SEG(b, c, plen);                                                  \
        undo;                                                             \
        segs_n(b, c, 2, MSS);                                             \
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

/* timestamps first, EOL-padded; then moved behind them */
static const uint8_t ts_eol[12] = { 8, 10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
static const uint8_t ts_nop_last[12] = { 8, 10, 0, 0, 0, 0, 0, 0, 0, 0,
                                         1, 1 };
static const uint8_t ts_sack[24] = { 1, 1, 8, 10, 0, 0, 0, 0, 0, 0, 0, 0,
                                     1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2 };

/* The IP datagram room of a unit for TCP payload: 65535 - headers. */
#define UNIT_ROOM(c)    (65535 - ((c)->v6 ? 40 : 20) - 32)

RUN_CASE(case_same_size, , 4)
RUN_CASE(case_no_options, conn_set_opts(c, NULL, 0), 3)
RUN_CASE(case_ts_eol_padded, conn_set_opts(c, ts_eol, 12), 3)
RUN_CASE(case_ece_same, c->flags |= TCP_ECE, 3)
RUN_CASE(case_ipid_fixed_df, c->ip_id_fixed = true, 4)
RUN_CASE(case_ipid_fixed_nodf, (c->df = false, c->ip_id_fixed = true), 4)
RUN_CASE(case_ipid_step_nodf, c->df = false, 4)
RUN_CASE(case_ipid_wrap, c->ip_id = 0xfffe, 4)
RUN_CASE(case_ext_hbh, ext_set(c, 0, ext_opt8, 8), 3)
RUN_CASE(case_ext_dst, ext_set(c, 60, ext_opt8, 8), 3)
RUN_CASE(case_ext_hbh_dst, ext_set(c, 0, ext_hbh_dst, 16), 3)
RUN_CASE(case_ext_routing, ext_set(c, 43, ext_rt0, 8), 3)
RUN_CASE(case_ext_routing_left, ext_set(c, 43, ext_rt1, 8), 3)
RUN_CASE(case_ext_long, ext_set(c, 60, ext_opt24, 24), 3)
RUN_CASE(case_limit_over, , UNIT_ROOM(c) / MSS + 2)
/* 11 x 5953 bytes: a full unit of equal segments */
RUN_CASE(case_limit_full_equal, segs_n(b, c, 12, 5953), 0)
CHANGE_CASE(case_ts_layout, 2, conn_set_opts(c, ts_nop_last, 12), 2)
CHANGE_CASE(case_gap, 2, c->next_off += MSS, 2)
CHANGE_CASE(case_retransmit, 3, c->next_off -= 2 * MSS, 2)
CHANGE_CASE(case_ece_change, 2, c->flags |= TCP_ECE, 3)
CHANGE_CASE(case_ipid_jump, 3, c->ip_id += 7, 2)
CHANGE_CASE(case_df_change, 2, c->df = false, 2)
CHANGE_CASE(case_ext_added, 2, ext_set(c, 60, ext_opt8, 8), 2)
CHANGE_CASE(case_urg_ptr_no_flag, 2, c->urg = 100, 2)
CHANGE_CASE(case_tsval, 2, c->tsval++, 2)
CHANGE_CASE(case_tsecr, 2, c->tsecr++, 2)
CHANGE_CASE(case_ack, 2, c->ack += MSS, 2)
CHANGE_CASE(case_window, 2, c->win++, 2)
CHANGE_CASE(case_tos, 2, c->tos = 0x10, 2)
CHANGE_CASE(case_ecn, 2, c->tos = 0x03, 2)
CHANGE_CASE(case_ttl, 2, c->ttl--, 2)
CHANGE_CASE(case_flow_label, 2, c->flow = 0x12345, 2)
CHANGE_CASE(case_traffic_class, 2, c->tos = 0x20, 2)
ONE_CASE(case_short_last, , , 700)
ONE_CASE(case_psh, c->flags |= TCP_PSH, c->flags &= ~TCP_PSH, MSS)
ONE_CASE(case_syn, c->flags |= TCP_SYN, c->flags &= ~TCP_SYN, 0)
ONE_CASE(case_rst, c->flags |= TCP_RST, c->flags &= ~TCP_RST, 0)
ONE_CASE(case_fin, c->flags |= TCP_FIN, c->flags &= ~TCP_FIN, MSS)
ONE_CASE(case_urg, (c->flags |= TCP_URG, c->urg = 10),
         (c->flags &= ~TCP_URG, c->urg = 0), MSS)
ONE_CASE(case_cwr, c->flags |= TCP_CWR, c->flags &= ~TCP_CWR, MSS)
ONE_CASE(case_ns, c->ns = true, c->ns = false, MSS)
ONE_CASE(case_bad_tcp_csum, c->bad_tcp_csum = true, c->bad_tcp_csum = false,
         MSS)
ONE_CASE(case_bad_ip_csum, c->bad_ip_csum = true, c->bad_ip_csum = false,
         MSS)
ONE_CASE(case_data_offset, c->doff = 4, c->doff = 0, MSS)
ONE_CASE(case_ip_frag_mf, c->frag = IP_MF, c->frag = 0, MSS)
ONE_CASE(case_ip_reserved, c->frag = 0x8000, c->frag = 0, MSS)
ONE_CASE(case_sack, conn_set_opts(c, ts_sack, 24),
         conn_set_opts(c, rsc_seg_ts_opts, 12), MSS)
ONE_CASE(case_ip_options, c->ip_opts_len = 4, c->ip_opts_len = 0, MSS)
ONE_CASE(case_ext_fragment, ext_set(c, 44, ext_frag, 8), c->ext_len = 0,
         MSS)
ONE_CASE(case_trailer, c->trailer = 4, c->trailer = 0, MSS)

/* Fill a unit to exactly 65535 bytes of IP datagram: 45 x MSS + rest. */
static void case_limit_exact(Build *b, Conn *c)
{
    segs_n(b, c, UNIT_ROOM(c) / MSS, MSS);
    SEG(b, c, UNIT_ROOM(c) % MSS);
}

static void case_ext_differ(Build *b, Conn *c)
{
    ext_set(c, 60, ext_opt8, 8);
    segs_n(b, c, 2, MSS);
    ext_set(c, 60, ext_opt8b, 8);
    segs_n(b, c, 2, MSS);
}

static void case_ext_kind(Build *b, Conn *c)
{
    /* the same bytes, once as hop-by-hop, then as destination options */
    ext_set(c, 0, ext_opt8, 8);
    segs_n(b, c, 2, MSS);
    ext_set(c, 60, ext_opt8, 8);
    segs_n(b, c, 2, MSS);
}

static void case_short_first(Build *b, Conn *c)
{
    SEG(b, c, 700);
    SEG(b, c, MSS);
}

static void case_larger(Build *b, Conn *c)
{
    segs_n(b, c, 2, MSS);
    SEG(b, c, MSS + 52);
    SEG(b, c, MSS);
}

static void case_psh_first(Build *b, Conn *c)
{
    c->flags |= TCP_PSH;
    SEG(b, c, MSS);
    c->flags &= ~TCP_PSH;
    segs_n(b, c, 2, MSS);
}

static void case_psh_short(Build *b, Conn *c)
{
    segs_n(b, c, 2, MSS);
    c->flags |= TCP_PSH;
    SEG(b, c, 300);
}

static void case_pure_ack(Build *b, Conn *c)
{
    segs_n(b, c, 2, MSS);
    SEG(b, c, 0);
    SEG(b, c, MSS);
}

static void case_window_update(Build *b, Conn *c)
{
    segs_n(b, c, 2, MSS);
    c->win += 100;
    SEG(b, c, 0);
}

static void case_cwr_first(Build *b, Conn *c)
{
    c->flags |= TCP_CWR;
    SEG(b, c, MSS);
    c->flags &= ~TCP_CWR;
    segs_n(b, c, 2, MSS);
}

static void case_ipid_fixed_then_step(Build *b, Conn *c)
{
    c->ip_id_fixed = true;
    segs_n(b, c, 2, MSS);
    c->ip_id_fixed = false;
    c->ip_id++;
    SEG(b, c, MSS);
}

static void case_ipid_step_then_fixed(Build *b, Conn *c)
{
    SEG(b, c, MSS);
    c->ip_id_fixed = true;
    segs_n(b, c, 2, MSS);
}

static void case_min_frame_padding(Build *b, Conn *c)
{
    conn_set_opts(c, NULL, 0);
    segs_n(b, c, 2, MSS);
    c->trailer = 60 - (ETH_HLEN + 20 + 20 + 2);
    SEG(b, c, 2);
}

static void case_truncated(Build *b, Conn *c)
{
    Frame *f;

    segs_n(b, c, 2, MSS);
    f = seg(b->t, c, MSS);
    f->len -= 200;          /* the IP length says 200 bytes more */
    g_ptr_array_add(b->out, f);
    segs_n(b, c, 2, MSS);
}

static void case_interleaved(Build *b, Conn *c)
{
    unsigned i;

    for (i = 0; i < 3; i++) {
        SEG(b, c, MSS);
        SEG(b, b->d, MSS);
    }
}

static const GroCase gro_cases[] = {
    /* sizes */
    { "same-size", case_same_size, IP46, "4" },
    { "short-last", case_short_last, IP46, "3!,2", "flush-short", 1 },
    { "short-first", case_short_first, IP4, "1!,1" },
    { "larger-than-mss", case_larger, IP4, "2!,2!" },
    { "pure-ack", case_pure_ack, IP4, "2!,1!,1", "bypass-pure-ack", 1 },
    { "window-update", case_window_update, IP4, "2!,1!" },
    /* TCP flags */
    { "psh", case_psh, IP46, "3!,2", "flush-push", 1 },
    { "psh-first", case_psh_first, IP4, "1!,2", "bypass-push", 1 },
    { "psh-short", case_psh_short, IP4, "3!" },
    { "syn", case_syn, IP4, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "rst", case_rst, IP4, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "urg", case_urg, IP4, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "fin", case_fin, IP4, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "cwr", case_cwr, IP4, "2!,1!,2", "bypass-tcp-flags", 1 },
    { "cwr-first", case_cwr_first, IP6, "1!,2" },
    { "ece-same", case_ece_same, IP4, "3" },
    { "ece-change", case_ece_change, IP4, "2!,1!,2" },
    { "ns-bit", case_ns, IP4, "2!,1!,2" },
    { "urg-pointer-without-urg", case_urg_ptr_no_flag, IP4, "2!,2" },
    /* checksums */
    { "bad-tcp-csum", case_bad_tcp_csum, IP46, "2!,1!,2",
      "bypass-checksum", 1 },
    { "bad-ip-csum", case_bad_ip_csum, IP4, "2!,1!,2",
      "bypass-checksum", 1 },
    /* malformed */
    { "truncated", case_truncated, IP46, "2!,1!,2", "bypass-malformed", 1 },
    { "tcp-data-offset", case_data_offset, IP4, "2!,1!,2",
      "bypass-malformed", 1 },
    /* sequence, ACK, window */
    { "seq-gap", case_gap, IP4, "2!,2" },
    { "seq-retransmit", case_retransmit, IP6, "3!,2" },
    { "ack-change", case_ack, IP4, "2!,2" },
    { "window-change", case_window, IP4, "2!,2" },
    /* TCP options */
    { "no-options", case_no_options, IP4, "3" },
    { "ts-eol-padded", case_ts_eol_padded, IP4, "3" },
    { "option-layout-change", case_ts_layout, IP4, "2!,2" },
    { "option-sack", case_sack, IP4, "2!,1!,2", "bypass-tcp-options", 1 },
    { "tsval-change", case_tsval, IP4, "2!,2" },
    { "tsecr-change", case_tsecr, IP6, "2!,2" },
    /* IPv4 */
    { "tos-change", case_tos, IP4, "2!,2" },
    { "ecn-change", case_ecn, IP4, "2!,2" },
    { "ttl-change", case_ttl, IP4, "2!,2" },
    { "df-change", case_df_change, IP4, "2!,2" },
    { "ipid-step-df", case_same_size, IP4, "4" },
    { "ipid-step-nodf", case_ipid_step_nodf, IP4, "4" },
    { "ipid-fixed-df", case_ipid_fixed_df, IP4, "4" },
    { "ipid-fixed-nodf", case_ipid_fixed_nodf, IP4, "1!,1!,1!,1" },
    { "ipid-jump", case_ipid_jump, IP4, "3!,2" },
    { "ipid-wrap", case_ipid_wrap, IP4, "4" },
    { "ipid-fixed-then-step", case_ipid_fixed_then_step, IP4, "2!,1" },
    { "ipid-step-then-fixed", case_ipid_step_then_fixed, IP4, "2!,1" },
    { "ip-options", case_ip_options, IP4, "2!,1!,2",
      "bypass-ip-options", 1 },
    { "ip-fragment", case_ip_frag_mf, IP4, "2!,1!,2",
      "bypass-fragment", 1 },
    { "ip-reserved-flag", case_ip_reserved, IP4, "2!,1!,2",
      "bypass-malformed", 1 },
    /* IPv6 */
    { "flow-label-change", case_flow_label, IP6, "2!,2" },
    { "traffic-class-change", case_traffic_class, IP6, "2!,2" },
    { "hop-limit-change", case_ttl, IP6, "2!,2" },
    { "ext-hop-by-hop", case_ext_hbh, IP6, "3" },
    { "ext-dest-options", case_ext_dst, IP6, "3" },
    { "ext-hop-by-hop-dest-16", case_ext_hbh_dst, IP6, "3" },
    { "ext-routing-done", case_ext_routing, IP6, "3" },
    { "ext-routing-segments-left", case_ext_routing_left, IP6,
      "1!,1!,1!" },
    { "ext-over-16-bytes", case_ext_long, IP6, "1!,1!,1!" },
    { "ext-differ", case_ext_differ, IP6, "2!,2" },
    { "ext-added", case_ext_added, IP6, "2!,2" },
    { "ext-kind-change", case_ext_kind, IP6, "2!,2" },
    { "ext-fragment", case_ext_fragment, IP6, "2!,1!,2",
      "bypass-fragment", 1 },
    /* sizes of the whole */
    { "limit-exact", case_limit_exact, IP46, "46!" },
    { "limit-over", case_limit_over, IP46, "45!,2", "flush-full", 1 },
    { "limit-equal-segments", case_limit_full_equal, IP4, "11!,1",
      "flush-full", 1 },
    /* bytes after the IP datagram */
    { "trailer", case_trailer, IP46, "2!,1!,2", "bypass-trailer", 1 },
    { "min-frame-padding", case_min_frame_padding, IP4, "2!,1!",
      "bypass-trailer", 1 },
    /* two connections */
    { "interleaved", case_interleaved, IP4, "3|3" },
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
    Build b = { .out = out };
    Conn *c;

    if (!t) {
        RscOpts o = gro_opts();

        o.mergeable = mergeable;
        t = shared[mergeable] = gro_start(&o);
        g_assert(t->r.features & BIT(VIRTIO_NET_F_GUEST_TSO4));
        g_assert(t->r.features & BIT(VIRTIO_NET_F_GUEST_TSO6));
    }
    b.t = &t->r;
    c = conn_new(&t->r, gc->ip == IP6);
    b.d = conn_new(&t->r, gc->ip == IP6);
    t->conn0 = c->idx;
    gc->build(&b, c);
    before = rsc_stats(&t->r);
    groups_reset(t);
    t->coalesced = t->merged = t->alone = 0;
    gro_send(t, (Frame **)out->pdata, out->len);
    receive_all(t);

    g_string_append(got, t->groups[0]->str);
    if (t->groups[1]->len) {
        g_string_append_printf(got, "|%s", t->groups[1]->str);
    }
    if (strcmp(got->str, gc->expect)) {
        rsc_fail("%s: the device delivered %s, expected %s", gc->name,
                 got->str, gc->expect);
    }
    after = rsc_stats(&t->r);
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
static void hold_units(GroTest *t, Conn **c, unsigned n)
{
    Frame *f[8];
    unsigned i;

    g_assert(n <= 4);
    for (i = 0; i < n; i++) {
        segs(&t->r, c[i], &f[2 * i], 2, MSS);
    }
    gro_send(t, f, 2 * n);
    backend_sync(&t->r);
    if (rx_ready(&t->r)) {
        rsc_fail("a unit was delivered before the flush timer");
    }
}

/* Send @n segments of @c and check what comes: the groups in @expect. */
static void send_check(GroTest *t, Conn *c, unsigned n, const char *expect)
{
    Frame *f[16];

    g_assert(n <= G_N_ELEMENTS(f));
    segs(&t->r, c, f, n, MSS);
    groups_reset(t);
    gro_send(t, f, n);
    receive_all(t);
    if (strcmp(group_of(t, c->idx)->str, expect)) {
        rsc_fail("the device delivered %s, expected %s",
                 group_of(t, c->idx)->str, expect);
    }
}

/*
 * rx-gro-hw off (CTRL_GUEST_OFFLOADS_SET without TSO4/TSO6, what Linux's
 * ethtool -K eth0 rx-gro-hw off sends) flushes the held units first, then
 * every frame goes untouched; rx-gro-hw on coalesces again.
 */
static void test_ctrl_gro_hw_toggle(void)
{
    RscOpts o = gro_opts();
    Conn *c[2];
    GroTest *t = gro_start_conns(&o, c);

    hold_units(t, c, 2);
    groups_reset(t);
    g_assert_cmpuint(ctrl_offloads(&t->r, BIT(VIRTIO_NET_F_GUEST_CSUM)), ==,
                     VIRTIO_NET_OK);
    /* the units come at once, not at the timer */
    backend_sync(&t->r);
    receive_ready(t, false);
    g_assert_cmpstr(t->groups[0]->str, ==, "2!");
    g_assert_cmpstr(t->groups[1]->str, ==, "2!");
    g_assert_cmpuint(rsc_stat(&t->r, "flush-offloads"), ==, 2);

    send_check(t, c[0], 3, "1!,1!,1!");
    send_check(t, c[1], 3, "1!,1!,1!");

    g_assert_cmpuint(ctrl_offloads(&t->r, GRO_OFFLOADS), ==, VIRTIO_NET_OK);
    send_check(t, c[0], 3, "3");
    send_check(t, c[1], 3, "3");
    /* TSO4 alone off: IPv4 untouched, IPv6 still coalesced */
    g_assert_cmpuint(ctrl_offloads(&t->r, GRO_OFFLOADS &
                                   ~BIT(VIRTIO_NET_F_GUEST_TSO4)), ==,
                     VIRTIO_NET_OK);
    send_check(t, c[0], 3, "1!,1!,1!");
    send_check(t, c[1], 3, "3");
    /* RSC_EXT was not negotiated: its bit is refused, nothing changes */
    g_assert_cmpuint(ctrl_offloads(&t->r, GRO_OFFLOADS |
                                   BIT(VIRTIO_NET_F_RSC_EXT)), ==,
                     VIRTIO_NET_ERR);
    send_check(t, c[0], 3, "1!,1!,1!");
    /* no GUEST_CSUM (Linux: ethtool -K eth0 rx off): no NEEDS_CSUM units */
    g_assert_cmpuint(ctrl_offloads(&t->r, BIT(VIRTIO_NET_F_GUEST_TSO4) |
                                   BIT(VIRTIO_NET_F_GUEST_TSO6)), ==,
                     VIRTIO_NET_OK);
    send_check(t, c[0], 3, "1!,1!,1!");
    send_check(t, c[1], 3, "1!,1!,1!");
    gro_end(t);
}

/* A driver without GUEST_TSO4: IPv4 untouched, IPv6 coalesced. */
static void test_tso6_only(void)
{
    RscOpts o = gro_opts();
    GroTest *t;
    Conn *c[2];

    o.drop_features = BIT(VIRTIO_NET_F_GUEST_TSO4);
    t = gro_start_conns(&o, c);
    g_assert(!(t->r.features & BIT(VIRTIO_NET_F_GUEST_TSO4)));
    send_check(t, c[0], 3, "1!,1!,1!");
    send_check(t, c[1], 3, "3");
    gro_end(t);
}

/*
 * guest_rsc_ext=on offered but a Linux driver does not ack RSC_EXT: the
 * GRO profile applies (the oracle fails on RSC_INFO).
 */
static void test_rsc_ext_offered_not_acked(void)
{
    RscOpts o = gro_opts();
    GroTest *t;
    Conn *c;

    o.no_offer_rsc_ext = false;
    t = gro_start(&o);
    g_assert(!(t->r.features & BIT(VIRTIO_NET_F_RSC_EXT)));
    c = conn_new(&t->r, false);
    send_check(t, c, 3, "3");
    c->ack++;
    send_check(t, c, 2, "2");
    gro_end(t);
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
    RscOpts o = gro_opts();
    GroTest *t;
    Frame *f[2];
    Conn *c;

    /* netkvm: RSC_EXT offered, acked and enabled by rsc_init() */
    o.no_offer_rsc_ext = false;
    o.no_rsc_ext = false;
    t = gro_start(&o);
    g_assert(t->r.features & BIT(VIRTIO_NET_F_RSC_EXT));
    g_assert_cmpuint(ctrl_offloads(&t->r, GRO_OFFLOADS |
                                   BIT(VIRTIO_NET_F_RSC_EXT)), ==,
                     VIRTIO_NET_OK);
    c = conn_new(&t->r, false);
    f[0] = seg(&t->r, c, MSS);
    c->ack += 100;
    f[1] = seg(&t->r, c, MSS);
    send_frames(&t->r, f, 2);
    /* the RSC_EXT unit, RSC_INFO header, by the fixture's checker */
    expect_unit(&t->r, f, 2);
    clock_step(&t->r, RSC_INTERVAL);
    check_expected(&t->r);

    /* netkvm's RSC off: TSO4/6 cleared, bit 61 kept */
    g_assert_cmpuint(ctrl_offloads(&t->r, BIT(VIRTIO_NET_F_GUEST_CSUM) |
                                   BIT(VIRTIO_NET_F_RSC_EXT)), ==,
                     VIRTIO_NET_OK);
    send_check(t, c, 3, "1!,1!,1!");
    /* TSO4/6 without bit 61: still off, no GRO for RSC_EXT guests */
    g_assert_cmpuint(ctrl_offloads(&t->r, GRO_OFFLOADS), ==, VIRTIO_NET_OK);
    send_check(t, c, 3, "1!,1!,1!");
    gro_end(t);
}

/*
 * rsc_gro=off (the default) on a socket backend: GUEST_CSUM/TSO4/TSO6
 * are not offered, so a Linux driver gets every frame untouched.
 */
static void test_gro_off_default(void)
{
    RscOpts o = gro_opts();
    GroTest *t;
    Conn *c[2];

    o.rsc_gro = false;
    t = gro_start_conns(&o, c);
    g_assert(!(t->r.features & BIT(VIRTIO_NET_F_GUEST_TSO4)));
    g_assert(!(t->r.features & BIT(VIRTIO_NET_F_GUEST_TSO6)));
    g_assert(!(t->r.features & BIT(VIRTIO_NET_F_GUEST_CSUM)));
    send_check(t, c[0], 4, "1!,1!,1!,1!");
    send_check(t, c[1], 4, "1!,1!,1!,1!");
    g_assert_cmpuint(rsc_stat(&t->r, "segments-received"), ==, 0);
    gro_end(t);
}

/*
 * rsc_interval=0: units are delivered when the receive burst ends,
 * without a clock step (flush-burst-end), still checked by the oracle.
 */
static void test_burst_end(void)
{
    RscOpts o = gro_opts();
    GroTest *t;
    gint64 deadline = g_get_monotonic_time() + RSC_TIMEOUT_US;
    Frame *f[7];
    Conn *c[2];
    unsigned i;

    o.burst = true;
    t = gro_start_conns(&o, c);
    for (i = 0; i < 7; i++) {
        f[i] = seg(&t->r, c[i & 1], MSS);
    }
    groups_reset(t);
    gro_send(t, f, 7);
    backend_sync(&t->r);
    while ((uint16_t)(used_idx(&t->r, t->r.rx) - t->r.used_idx) < 2) {
        if (g_get_monotonic_time() > deadline) {
            rsc_fail("the units did not come at the end of the burst");
        }
    }
    receive_ready(t, false);
    g_assert_cmpstr(t->groups[0]->str, ==, "4!");
    g_assert_cmpstr(t->groups[1]->str, ==, "3!");
    g_assert_cmpuint(t->sent->len, ==, 0);
    g_assert_cmpuint(rsc_stat(&t->r, "flush-burst-end"), ==, 2);
    gro_end(t);
}

/* --- migration ----------------------------------------------------------- */

/*
 * Units held when the VM stops are flushed on the source (flush-vm-stop)
 * and read on the destination, checked by the oracle; the destination
 * coalesces under the GRO profile.  A guest that turned rx-gro-hw off
 * before the migration keeps it off on the destination.
 */
static void test_migration(void)
{
    RscOpts o = gro_opts();
    g_autoptr(QDict) src = NULL;
    g_autoptr(QDict) src2 = NULL;
    Conn *c[2];
    GroTest *t = gro_start_conns(&o, c);

    hold_units(t, c, 2);
    groups_reset(t);
    src = rsc_migrate(&t->r);
    g_assert_cmpuint(stats_get(src, "flush-vm-stop"), ==, 2);
    g_assert_cmpuint(stats_get(src, "units-delivered"), ==, 2);
    receive_ready(t, false);
    g_assert_cmpstr(t->groups[0]->str, ==, "2!");
    g_assert_cmpstr(t->groups[1]->str, ==, "2!");
    g_assert_cmpuint(t->sent->len, ==, 0);

    send_check(t, c[0], 3, "3");
    send_check(t, c[1], 3, "3");

    g_assert_cmpuint(ctrl_offloads(&t->r, BIT(VIRTIO_NET_F_GUEST_CSUM)), ==,
                     VIRTIO_NET_OK);
    src2 = rsc_migrate(&t->r);
    send_check(t, c[0], 3, "1!,1!,1!");
    send_check(t, c[1], 3, "1!,1!,1!");
    g_assert_cmpuint(ctrl_offloads(&t->r, GRO_OFFLOADS), ==, VIRTIO_NET_OK);
    send_check(t, c[0], 3, "3");
    gro_end(t);
}

/* Register @gc with IPv4 or IPv6 (@ip), with and without MRG_RXBUF. */
static void add_rule(const GroCase *gc, GroIp ip)
{
    static GroCase cases[2 * G_N_ELEMENTS(gro_cases)];
    static unsigned n;
    GroCase *c = &cases[n++];
    g_autofree char *big = NULL, *mrg = NULL;

    *c = *gc;
    if (gc->ip == IP46) {
        c->name = g_strdup_printf("%s/ipv%d", gc->name, ip == IP6 ? 6 : 4);
        c->ip = ip;
    }
    big = g_strdup_printf("/virtio-net-rsc-gro/rule/%s", c->name);
    mrg = g_strdup_printf("/virtio-net-rsc-gro/rule-mrg/%s", c->name);
    qtest_add_data_func(big, c, test_case_big);
    qtest_add_data_func(mrg, c, test_case_mrg);
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
        const GroCase *gc = &gro_cases[i];

        if (gc->ip == IP46) {
            add_rule(gc, IP4);
            add_rule(gc, IP6);
        } else {
            add_rule(gc, gc->ip);
        }
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
