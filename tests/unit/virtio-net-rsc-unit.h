/*
 * SPDX-License-Identifier: GPL-2.0-or-later
 *
 * The fake guest of the unit tests of the virtio-net RSC engine
 *
 * It implements NetRscOps on plain memory: a unit is built in a buffer
 * of its own, every packet the engine delivers (a unit at its end, or a
 * frame alone) is kept in order with its header, the guest's buffers can
 * run out, and the clock is a number the test sets.  Shared by
 * tests/unit/test-virtio-net-rsc.c and test-virtio-net-rsc-gro.c; the
 * includer includes qemu/osdep.h and hw/virtio/virtio-net-rsc.h first.
 */

#ifndef TESTS_UNIT_VIRTIO_NET_RSC_UNIT_H
#define TESTS_UNIT_VIRTIO_NET_RSC_UNIT_H

#define MAX_OUT 4096       /* packets a test can receive */

/* A packet as the fake guest received it. */
typedef struct OutPkt {
    uint8_t *frame;
    size_t len;
    bool coalesced;         /* unit_end with a header */
    bool alone;             /* deliver() */
    NetRscVnetHdr hdr;
    bool has_hdr;
    unsigned queue;         /* receive queue it was delivered on */
} OutPkt;

/* A unit under construction in the fake guest's memory. */
typedef struct FakeUnit {
    unsigned queue;
    uint8_t *buf;
    size_t cap;
    size_t len;
} FakeUnit;

typedef struct Fake {
    OutPkt out[MAX_OUT];
    unsigned nout;
    int buffers;            /* guest buffers left, < 0: unlimited */
    size_t cap;             /* bytes one unit can hold */
    unsigned live;          /* units begun and not ended */
    size_t vhl;             /* backend vnet header bytes in each frame */
    int64_t now;            /* virtual clock */
} Fake;

static NetRscBegin fake_begin(void *opaque, unsigned queue,
                              const uint8_t *buf, size_t size, size_t keep,
                              const NetRscRxInfo *info, void **unit)
{
    Fake *f = opaque;
    size_t vhl = f->vhl;
    FakeUnit *u;

    if (f->buffers == 0) {
        return NET_RSC_BEGIN_NO_BUFFER;
    }
    if (f->buffers > 0) {
        f->buffers--;
    }
    u = g_new0(FakeUnit, 1);
    u->queue = queue;
    u->cap = f->cap;
    u->buf = g_malloc(u->cap);
    g_assert_cmpuint(size - vhl, <=, u->cap);
    memcpy(u->buf, buf + vhl, size - vhl);
    u->len = size - vhl;
    f->live++;
    *unit = u;
    return NET_RSC_BEGIN_OK;
}

static bool fake_write(void *opaque, void *unit, size_t offset,
                       const void *data, size_t len)
{
    FakeUnit *u = unit;

    if (offset + len > u->cap) {
        return false;
    }
    memcpy(u->buf + offset, data, len);
    u->len = MAX(u->len, offset + len);
    return true;
}

static void fake_end(void *opaque, void *unit, const NetRscVnetHdr *hdr,
                     const uint8_t *l234, size_t l234_len, size_t frame_len)
{
    Fake *f = opaque;
    FakeUnit *u = unit;
    OutPkt *o;

    g_assert_cmpuint(f->nout, <, MAX_OUT);
    g_assert_cmpuint(frame_len, <=, u->cap);
    o = &f->out[f->nout++];
    memset(o, 0, sizeof(*o));
    if (hdr) {
        memcpy(u->buf, l234, l234_len);
        o->hdr = *hdr;
        o->has_hdr = true;
        o->coalesced = true;
    }
    o->frame = g_memdup2(u->buf, frame_len);
    o->len = frame_len;
    o->queue = u->queue;
    g_free(u->buf);
    g_free(u);
    f->live--;
}

static ssize_t fake_deliver(void *opaque, unsigned queue, const uint8_t *buf,
                            size_t size, const NetRscVnetHdr *hdr,
                            const NetRscRxInfo *info)
{
    Fake *f = opaque;
    size_t vhl = f->vhl;
    OutPkt *o;

    if (f->buffers == 0) {
        return 0;
    }
    g_assert_cmpuint(f->nout, <, MAX_OUT);
    o = &f->out[f->nout++];
    memset(o, 0, sizeof(*o));
    o->frame = g_memdup2(buf + vhl, size - vhl);
    o->len = size - vhl;
    o->alone = true;
    o->queue = queue;
    if (hdr) {
        o->hdr = *hdr;
        o->has_hdr = true;
    }
    return size;
}

static int64_t fake_now(void *opaque)
{
    Fake *f = opaque;

    return f->now;
}

static const NetRscOps fake_ops = {
    .unit_begin = fake_begin,
    .unit_write = fake_write,
    .unit_end = fake_end,
    .deliver = fake_deliver,
    .now = fake_now,
};

/* The fake guest and the engine under test. */
typedef struct Env {
    Fake fake;
    NetRscChain *chain;
} Env;

static inline Env *env_new_mq(unsigned queues, unsigned max_flows,
                              uint64_t interval)
{
    Env *e = g_new0(Env, 1);

    e->fake.buffers = -1;
    e->fake.cap = NET_RSC_MAX_FRAME;
    e->chain = virtio_net_rsc_new(&fake_ops, &e->fake, queues, max_flows,
                                  interval);
    return e;
}

static inline Env *env_new(unsigned max_flows, uint64_t interval)
{
    return env_new_mq(1, max_flows, interval);
}

/* Forget the packets received so far. */
static inline void env_clear_out(Env *e)
{
    unsigned i;

    for (i = 0; i < e->fake.nout; i++) {
        g_free(e->fake.out[i].frame);
    }
    e->fake.nout = 0;
}

/* Reset the engine (nothing may stay held) and free everything. */
static inline void env_free(Env *e)
{
    virtio_net_rsc_flush_all(e->chain, NET_RSC_FLUSH_RESET);
    g_assert_cmpuint(e->fake.live, ==, 0);
    virtio_net_rsc_delete(e->chain);
    env_clear_out(e);
    g_free(e);
}

typedef struct EnvStat {
    const char *name;
    uint64_t value;
    bool found;
} EnvStat;

static inline void env_stat_cb(const char *name, uint64_t value,
                               void *opaque)
{
    EnvStat *q = opaque;

    if (!strcmp(name, q->name)) {
        q->value = value;
        q->found = true;
    }
}

/* The engine's counter @name, which must exist. */
static inline uint64_t env_stat(Env *e, const char *name)
{
    EnvStat q = { .name = name };

    virtio_net_rsc_stats_foreach(e->chain, env_stat_cb, &q);
    g_assert(q.found);
    return q.value;
}

#endif
