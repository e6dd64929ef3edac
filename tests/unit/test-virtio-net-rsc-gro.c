/*
 * Unit tests of the virtio-net RSC engine's GRO profile on plain memory
 *
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The chain is configured with NET_RSC_PROFILE_GRO (Linux guests with
 * GUEST_TSO4/6 and no RSC_EXT).  Frames come from
 * tests/include/virtio-net-rsc-frames.h; a fake guest keeps what the
 * engine delivers.  The rules themselves are tested through the device
 * in tests/qtest/virtio-net-rsc-gro-test.c; here: the header, the switch
 * between profiles on one chain, and that the engine's shortcut for
 * segments continuing a unit (taken from the second segment on) refuses
 * what the full path refuses.
 */

#include "qemu/osdep.h"
#include "qemu/bswap.h"
#include "net/eth.h"
#include "hw/virtio/virtio-net-rsc.h"
#include "../include/virtio-net-rsc-frames.h"
#include "virtio-net-rsc-unit.h"

#define MSS 1448

/* The engine with the rule profile @profile, for IPv4 and IPv6. */
static Env *env_profile(NetRscProfile profile)
{
    Env *e = env_new(8, 1000000);

    virtio_net_rsc_configure(e->chain, profile, true, true);
    return e;
}

/* A frame built from @s with @plen payload bytes; advances @s. */
typedef struct Frame {
    uint8_t buf[8192];
    size_t len;
} Frame;

static void seg_init(RscSeg *s, bool v6)
{
    memset(s, 0, sizeof(*s));
    s->v6 = v6;
    s->src_ip[0] = s->dst_ip[0] = v6 ? 0xfd : 10;
    s->src_ip[v6 ? 15 : 3] = 1;
    s->dst_ip[v6 ? 15 : 3] = 2;
    s->ttl = 64;
    s->df = true;
    s->ip_id = 7;
    s->sport = 40000;
    s->dport = 5001;
    s->seq = 0x1000;
    s->ack = 0x2000;
    s->flags = 0x10;
    s->win = 500;
    s->opts = rsc_seg_ts_opts;
    s->opts_len = 12;
    s->tsval = 100;
    s->tsecr = 50;
}

static void frame(RscSeg *s, uint32_t plen, Frame *fr)
{
    s->plen = plen;
    g_assert_cmpuint(rsc_seg_len(s), <=, sizeof(fr->buf));
    fr->len = rsc_seg_build(s, fr->buf);
    s->seq += plen;
    s->pay_off += plen;
    s->ip_id++;
}

static void rx(Env *f, const Frame *fr)
{
    g_assert_cmpint(virtio_net_rsc_receive(f->chain, 0, fr->buf, fr->len, 0,
                                           NULL), ==, fr->len);
}

/* The header and the bytes of a coalesced packet, IPv4 and IPv6. */
static void test_header(const void *data)
{
    bool v6 = *(const bool *)data;
    Env *f = env_profile(NET_RSC_PROFILE_GRO);
    Frame fr[3];
    const uint8_t *seg[3];
    size_t len[3], ulen, l4 = ETH_HLEN + (v6 ? 40 : 20);
    g_autofree uint8_t *unit = g_malloc(RSC_SEG_MAX_UNIT);
    uint8_t vhdr[RSC_SEG_VHDR_LEN];
    RscSeg s;
    unsigned i;

    seg_init(&s, v6);
    for (i = 0; i < 3; i++) {
        frame(&s, i < 2 ? MSS : 100, &fr[i]);
        seg[i] = fr[i].buf;
        len[i] = fr[i].len;
        rx(f, &fr[i]);
    }
    /* the short segment ends the unit */
    g_assert_cmpuint(f->fake.nout, ==, 1);
    g_assert(f->fake.out[0].has_hdr);
    g_assert_cmpuint(f->fake.out[0].hdr.flags, ==, VIRTIO_NET_HDR_F_NEEDS_CSUM);
    g_assert_cmpuint(f->fake.out[0].hdr.gso_type, ==,
                     v6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4);
    g_assert_cmpuint(f->fake.out[0].hdr.gso_size, ==, MSS);
    g_assert_cmpuint(f->fake.out[0].hdr.hdr_len, ==, l4 + 32);
    g_assert_cmpuint(f->fake.out[0].hdr.csum_start, ==, l4);
    g_assert_cmpuint(f->fake.out[0].hdr.csum_offset, ==, 16);
    /* ACK, window, timestamps, TTL equal: the bytes RSC_EXT would make */
    ulen = rsc_unit_expect(seg, len, 3, unit, vhdr);
    g_assert_cmpuint(ulen, ==, 2 * MSS + 100 + l4 + 32);
    g_assert_cmpmem(f->fake.out[0].frame, f->fake.out[0].len, unit, ulen);
    g_assert_cmpuint(env_stat(f, "flush-short"), ==, 1);
    env_free(f);
}

/*
 * One chain, the same frames: an advancing ACK merges under RSC_EXT and
 * not under GRO; the profile is data chosen by virtio_net_rsc_configure().
 */
static void test_profile_switch(void)
{
    Env *f = env_profile(NET_RSC_PROFILE_RSC_EXT);
    NetRscProfile p;
    Frame fr[2];
    RscSeg s;

    for (p = NET_RSC_PROFILE_RSC_EXT; p <= NET_RSC_PROFILE_GRO; p++) {
        virtio_net_rsc_configure(f->chain, p, true, true);
        seg_init(&s, false);
        s.seq += p * 0x100000;
        frame(&s, MSS, &fr[0]);
        s.ack += 10;
        frame(&s, MSS, &fr[1]);
        rx(f, &fr[0]);
        rx(f, &fr[1]);
        virtio_net_rsc_flush_all(f->chain, NET_RSC_FLUSH_TIMER);
        if (p == NET_RSC_PROFILE_RSC_EXT) {
            g_assert_cmpuint(f->fake.nout, ==, 1);
            g_assert_cmpuint(f->fake.out[0].hdr.flags, ==,
                             VIRTIO_NET_HDR_F_NEEDS_CSUM |
                             VIRTIO_NET_HDR_F_RSC_INFO);
            g_assert_cmpuint(f->fake.out[0].hdr.csum_start, ==, 2);
        } else {
            g_assert_cmpuint(f->fake.nout, ==, 2);
            g_assert(!f->fake.out[0].has_hdr && !f->fake.out[1].has_hdr);
            g_assert_cmpmem(f->fake.out[0].frame, f->fake.out[0].len, fr[0].buf,
                            fr[0].len);
            g_assert_cmpmem(f->fake.out[1].frame, f->fake.out[1].len, fr[1].buf,
                            fr[1].len);
        }
        env_clear_out(f);
    }
    env_free(f);
}

/* PSH: merged and flushed (flush-push); alone with no unit (bypass-push). */
static void test_push(void)
{
    Env *f = env_profile(NET_RSC_PROFILE_GRO);
    Frame fr[4];
    RscSeg s;

    seg_init(&s, false);
    frame(&s, MSS, &fr[0]);
    frame(&s, MSS, &fr[1]);
    s.flags |= RSC_SEG_TCP_PSH;
    frame(&s, MSS, &fr[2]);
    frame(&s, MSS, &fr[3]);
    rx(f, &fr[0]);
    rx(f, &fr[1]);
    rx(f, &fr[2]);
    g_assert_cmpuint(f->fake.nout, ==, 1);
    g_assert_cmpuint(f->fake.out[0].len, ==, fr[0].len + 2 * MSS);
    g_assert(f->fake.out[0].frame[ETH_HLEN + 20 + 13] & RSC_SEG_TCP_PSH);
    g_assert_cmpuint(env_stat(f, "flush-push"), ==, 1);
    rx(f, &fr[3]);
    g_assert_cmpuint(f->fake.nout, ==, 2);
    g_assert(!f->fake.out[1].has_hdr);
    g_assert_cmpmem(f->fake.out[1].frame, f->fake.out[1].len, fr[3].buf,
                    fr[3].len);
    g_assert_cmpuint(env_stat(f, "bypass-push"), ==, 1);
    g_assert_cmpuint(virtio_net_rsc_held(f->chain), ==, 0);
    env_free(f);
}

/*
 * What the shortcut must refuse: after a run of three segments (so that
 * the next one takes the shortcut), a segment that differs in one field
 * the GRO rules keep equal.  The unit of three is delivered and the
 * segment is not in it.  Expected: the segment starts a unit (then @alone
 * is false) or goes alone.
 */
typedef struct Spoil {
    const char *name;
    bool v6;
    void (*fn)(RscSeg *s);
    bool alone;
    size_t trailer;
} Spoil;

static void spoil_ttl(RscSeg *s)
{
    s->ttl--;
}

static void spoil_tsval(RscSeg *s)
{
    s->tsval++;
}

static void spoil_tsecr(RscSeg *s)
{
    s->tsecr++;
}

static void spoil_ack(RscSeg *s)
{
    s->ack++;
}

static void spoil_win(RscSeg *s)
{
    s->win++;
}

static void spoil_ip_id(RscSeg *s)
{
    s->ip_id += 2;
}

static void spoil_reserved(RscSeg *s)
{
    s->frag = 0x8000;
}

static void spoil_urg_ptr(RscSeg *s)
{
    s->urg = 1;
}

static void spoil_none(RscSeg *s)
{
}

static const Spoil spoils[] = {
    { "ttl", false, spoil_ttl },
    { "hop-limit", true, spoil_ttl },
    { "tsval", false, spoil_tsval },
    { "tsecr", true, spoil_tsecr },
    { "ack", false, spoil_ack },
    { "window", true, spoil_win },
    { "ip-id", false, spoil_ip_id },
    { "ip-reserved-flag", false, spoil_reserved, true },
    { "urgent-pointer", false, spoil_urg_ptr },
    { "trailer", false, spoil_none, true, 4 },
    { "trailer-ipv6", true, spoil_none, true, 4 },
};

static void test_shortcut(const void *data)
{
    const Spoil *sp = data;
    Env *f = env_profile(NET_RSC_PROFILE_GRO);
    Frame fr[5];
    RscSeg s;
    unsigned i;

    seg_init(&s, sp->v6);
    for (i = 0; i < 3; i++) {
        frame(&s, MSS, &fr[i]);
        rx(f, &fr[i]);
    }
    sp->fn(&s);
    s.trailer = sp->trailer;
    s.trailer_byte = 0xee;
    frame(&s, MSS, &fr[3]);
    rx(f, &fr[3]);
    virtio_net_rsc_flush_all(f->chain, NET_RSC_FLUSH_TIMER);
    g_assert_cmpuint(f->fake.nout, ==, 2);
    g_assert(f->fake.out[0].has_hdr);
    g_assert_cmpuint(f->fake.out[0].len, ==, fr[0].len + 2 * MSS);
    g_assert(!f->fake.out[1].has_hdr);
    g_assert_cmpmem(f->fake.out[1].frame, f->fake.out[1].len, fr[3].buf,
                    fr[3].len);
    g_assert_cmpuint(env_stat(f, "flush-exception"), ==, 1);
    g_assert_cmpuint(env_stat(f, "flush-timer"), ==, sp->alone ? 0 : 1);
    env_free(f);
}

/*
 * IPv6: the same extension header bytes under another next header
 * (hop-by-hop, then destination options) do not merge.
 */
static void test_ext_kind(void)
{
    Env *f = env_profile(NET_RSC_PROFILE_GRO);
    Frame fr[4];
    RscSeg s;
    unsigned i;

    seg_init(&s, true);
    s.hbh = true;
    for (i = 0; i < 4; i++) {
        frame(&s, MSS, &fr[i]);
        if (i >= 2) {
            /* the hop-by-hop header becomes destination options */
            fr[i].buf[ETH_HLEN + 6] = 60;
        }
        rx(f, &fr[i]);
    }
    virtio_net_rsc_flush_all(f->chain, NET_RSC_FLUSH_TIMER);
    g_assert_cmpuint(f->fake.nout, ==, 2);
    g_assert_cmpuint(f->fake.out[0].len, ==, fr[0].len + MSS);
    g_assert_cmpuint(f->fake.out[1].len, ==, fr[2].len + MSS);
    g_assert_cmpuint(f->fake.out[1].frame[ETH_HLEN + 6], ==, 60);
    env_free(f);
}

int main(int argc, char **argv)
{
    static const bool v4 = false, v6 = true;
    unsigned i;

    g_test_init(&argc, &argv, NULL);
    g_test_add_data_func("/virtio-net-rsc-gro/header/ipv4", &v4, test_header);
    g_test_add_data_func("/virtio-net-rsc-gro/header/ipv6", &v6, test_header);
    g_test_add_func("/virtio-net-rsc-gro/profile-switch",
                    test_profile_switch);
    g_test_add_func("/virtio-net-rsc-gro/push", test_push);
    for (i = 0; i < G_N_ELEMENTS(spoils); i++) {
        g_autofree char *path = g_strdup_printf("/virtio-net-rsc-gro/"
                                                "shortcut/%s", spoils[i].name);

        g_test_add_data_func(path, &spoils[i], test_shortcut);
    }
    g_test_add_func("/virtio-net-rsc-gro/ext-kind", test_ext_kind);
    return g_test_run();
}
