
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


/*
 * Background sends.  A notification goes into an outbox in shared memory
 * and the request is answered at once; every worker drains the outbox on
 * a timer, sends what is due through its engine, and reschedules what
 * MPNS asks to be retried.  Final results are kept for a while (GET
 * <location>/<id>) and POSTed to mpns_result_callback.
 *
 * Every entry is in one tree by the time it is next looked at: a pending
 * send at its scheduled time, a send in flight at the end of its lease
 * (a worker that dies mid-send leaves it to the others), a final result
 * at its next callback attempt or, once reported, when it is forgotten.
 */


#define NGX_HTTP_MPNS_OB_PENDING        0
#define NGX_HTTP_MPNS_OB_SENDING        1
#define NGX_HTTP_MPNS_OB_FINAL          2

#define NGX_HTTP_MPNS_DRAIN_INTERVAL    100
#define NGX_HTTP_MPNS_DRAIN_BATCH       32
#define NGX_HTTP_MPNS_LEASE             60000
#define NGX_HTTP_MPNS_MAX_BACKOFF       3600000
#define NGX_HTTP_MPNS_CALLBACK_BACKOFF  1000
#define NGX_HTTP_MPNS_CALLBACK_MAX      60000
#define NGX_HTTP_MPNS_OB_BUFFER         65536
#define NGX_HTTP_MPNS_OB_SAVE_DELAY     1000


typedef struct {
    ngx_rbtree_node_t              node;      /* key: the id */
    ngx_rbtree_node_t              due;       /* key: when to look again */
    ngx_msec_t                     created;
    ngx_msec_t                     finished;
    uint16_t                       attempts;
    uint16_t                       callbacks;
    uint16_t                       status;
    u_char                         state;
    u_char                         outcome;
    u_char                         reported;
    u_char                         gave_up;
    u_char                         type;
    u_char                         notification_class;
    u_char                         message_id[36];
    uint16_t                       channel_len;
    uint16_t                       body_len;
    u_char                         content_type_len;
    u_char                         target_len;

    /* a broadcast: its filter, where it is in the registry, its counts */
    u_char                         broadcast;
    u_char                         user_len;
    u_char                         tag_len;
    u_char                         os_len;
    uint16_t                       cursor_len;
    uint32_t                       cursor_hash;
    uint32_t                       counts[5];

    /* channel, type, target, body; user, tag, os, cursor (1 KB) */
    u_char                         data[1];
} ngx_http_mpns_outbox_node_t;


#define NGX_HTTP_MPNS_OB_SENT           0
#define NGX_HTTP_MPNS_OB_DELIVERED      1
#define NGX_HTTP_MPNS_OB_EXPIRED        2
#define NGX_HTTP_MPNS_OB_FAILED         3
#define NGX_HTTP_MPNS_OB_DEFERRED       4


typedef struct {
    ngx_rbtree_t                   ids;
    ngx_rbtree_node_t              ids_sentinel;
    ngx_rbtree_t                   due;
    ngx_rbtree_node_t              due_sentinel;
    ngx_uint_t                     count;
    ngx_uint_t                     full;
    uint64_t                       version;   /* bumped by every change */
    uint64_t                       saved;
    ngx_pid_t                      writer;
} ngx_http_mpns_outbox_shctx_t;


typedef struct {
    ngx_http_mpns_outbox_shctx_t  *sh;
    ngx_slab_pool_t               *shpool;
    ngx_shm_zone_t                *shm_zone;

    ngx_str_t                      state;     /* null-terminated or empty */
    ngx_cycle_t                   *cycle;     /* the one configured */

    /* the one location that sends into it, this cycle */
    ngx_http_mpns_loc_conf_t      *mlcf;
    ngx_http_core_loc_conf_t      *clcf;

    /* per worker */
    ngx_event_t                    drain;
    ngx_uint_t                     active;    /* jobs in flight */
    ngx_event_t                    save;
    u_char                        *temp;
    u_char                        *buf;
} ngx_http_mpns_outbox_ctx_t;


/*
 * A broadcast being sent by this worker: like a batch of the request
 * path, but reporting into its outbox entry, which keeps the cursor so
 * that another worker can go on if this one dies.
 */
typedef struct {
    ngx_pool_t                    *pool;
    ngx_http_mpns_outbox_ctx_t    *ctx;
    uint64_t                       id;
    ngx_http_mpns_reader_t        *reader;
    ngx_http_mpns_message_t        msg;
    ngx_uint_t                     active;
    uint32_t                       counts[5];
    ngx_event_t                    start;

    unsigned                       pumping:1;
    unsigned                       exhausted:1;
} ngx_http_mpns_outbox_run_t;


/* what a job of the outbox carries */
typedef struct {
    ngx_http_mpns_outbox_ctx_t    *ctx;
    uint64_t                       id;
    ngx_http_mpns_outbox_run_t    *run;      /* a broadcast's recipient */
    ngx_str_t                      channel;
    unsigned                       callback:1;
} ngx_http_mpns_outbox_job_t;


static ngx_int_t ngx_http_mpns_outbox_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_mpns_outbox_insert(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_engine_t *engine, ngx_log_t *log,
    ngx_http_mpns_message_t *msg, ngx_str_t *channel,
    ngx_http_mpns_filter_t *filter, ngx_msec_t due, u_char *id);
static void ngx_http_mpns_outbox_drain(ngx_event_t *ev);
static ngx_http_mpns_job_t *ngx_http_mpns_outbox_send_job(
    ngx_http_mpns_outbox_ctx_t *ctx, ngx_http_mpns_outbox_node_t *on);
static ngx_http_mpns_job_t *ngx_http_mpns_outbox_callback_job(
    ngx_http_mpns_outbox_ctx_t *ctx, ngx_http_mpns_outbox_node_t *on);
static ngx_int_t ngx_http_mpns_outbox_prepare(
    ngx_http_mpns_outbox_ctx_t *ctx, ngx_http_mpns_job_t *job,
    ngx_str_t *channel, ngx_http_mpns_message_t *msg);
static void ngx_http_mpns_outbox_sent(ngx_http_mpns_job_t *job);
static ngx_int_t ngx_http_mpns_outbox_run(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_outbox_node_t *on);
static void ngx_http_mpns_outbox_pump(ngx_http_mpns_outbox_run_t *run);
static void ngx_http_mpns_outbox_recipient(ngx_http_mpns_job_t *job);
static ngx_msec_t ngx_http_mpns_outbox_delay(ngx_http_mpns_outbox_conf_t *oc,
    ngx_uint_t outcome, ngx_uint_t attempts);
static void ngx_http_mpns_outbox_start_handler(ngx_event_t *ev);
static void ngx_http_mpns_outbox_progress(ngx_http_mpns_outbox_run_t *run,
    ngx_uint_t done);
static u_char *ngx_http_mpns_outbox_cursor(ngx_http_mpns_outbox_node_t *on);
static void ngx_http_mpns_outbox_reported(ngx_http_mpns_job_t *job);
static void ngx_http_mpns_outbox_final(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t now);
static void ngx_http_mpns_outbox_schedule(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t when);
static ngx_http_mpns_outbox_node_t *ngx_http_mpns_outbox_lookup(
    ngx_http_mpns_outbox_ctx_t *ctx, uint64_t id);
static size_t ngx_http_mpns_outbox_json(u_char *buf,
    ngx_http_mpns_outbox_node_t *on);
static ngx_int_t ngx_http_mpns_outbox_parse_id(ngx_str_t *s, uint64_t *id);
static void ngx_http_mpns_outbox_changed(ngx_http_mpns_outbox_ctx_t *ctx);
static void ngx_http_mpns_outbox_save_handler(ngx_event_t *ev);
static ngx_int_t ngx_http_mpns_outbox_save(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_log_t *log);
static size_t ngx_http_mpns_outbox_record(u_char *buf,
    ngx_http_mpns_outbox_node_t *on);
static ngx_int_t ngx_http_mpns_outbox_load(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_log_t *log);
static ngx_int_t ngx_http_mpns_outbox_load_line(
    ngx_http_mpns_outbox_ctx_t *ctx, ngx_pool_t *pool, ngx_str_t *line);


static ngx_str_t  ngx_http_mpns_outbox_states[] = {
    ngx_string("pending"),
    ngx_string("sending"),
    ngx_string("done"),
    ngx_string("expired")
};


char *
ngx_http_mpns_outbox_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_main_conf_t *mmcf = conf;

    ssize_t                      size;
    ngx_str_t                   *value, name;
    ngx_shm_zone_t              *shm_zone, **zones;
    ngx_http_mpns_outbox_ctx_t  *ctx;

    value = cf->args->elts;

    if (ngx_http_mpns_zone_param(cf, &value[1], &name, &size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_outbox_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    if (cf->args->nelts == 3) {
        if (ngx_strncmp(value[2].data, "state=", 6) != 0
            || value[2].len == 6)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        ctx->state.data = value[2].data + 6;
        ctx->state.len = value[2].len - 6;

        if (ngx_conf_full_name(cf->cycle, &ctx->state, 0) != NGX_OK) {
            return NGX_CONF_ERROR;
        }
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size,
                                     (void *) ngx_http_mpns_outbox_zone);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    ctx->shm_zone = shm_zone;
    ctx->cycle = cf->cycle;

    shm_zone->init = ngx_http_mpns_outbox_init_zone;
    shm_zone->data = ctx;

    zones = ngx_array_push(&mmcf->outboxes);
    if (zones == NULL) {
        return NGX_CONF_ERROR;
    }

    *zones = shm_zone;

    return NGX_CONF_OK;
}


char *
ngx_http_mpns_outbox(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_outbox_conf_t *oc = (void *) ((char *) conf + cmd->offset);

    ngx_str_t  *value;

    if (oc->zone != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    oc->zone = ngx_shared_memory_add(cf, &value[1], 0,
                                     (void *) ngx_http_mpns_outbox_zone);
    if (oc->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


char *
ngx_http_mpns_result_callback(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_outbox_conf_t *oc = (void *) ((char *) conf + cmd->offset);

    u_char                    *p;
    ngx_url_t                  u;
    ngx_str_t                 *value, url;
    ngx_http_mpns_callback_t  *cb;

    if (oc->callback != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        oc->callback = NULL;
        return NGX_CONF_OK;
    }

    url = value[1];

    if (url.len <= 7
        || ngx_strncasecmp(url.data, (u_char *) "http://", 7) != 0)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid result callback \"%V\": an http URL "
                           "is expected", &value[1]);
        return NGX_CONF_ERROR;
    }

    url.data += 7;
    url.len -= 7;

    cb = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_callback_t));
    if (cb == NULL) {
        return NGX_CONF_ERROR;
    }

    p = ngx_strlchr(url.data, url.data + url.len, '/');

    if (p) {
        cb->uri.data = p;
        cb->uri.len = url.data + url.len - p;
        url.len = p - url.data;

    } else {
        ngx_str_set(&cb->uri, "/");
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = url;
    u.default_port = 80;

    /* like proxy_pass to a name: resolved once, here */

    if (ngx_parse_url(cf->pool, &u) != NGX_OK) {
        if (u.err) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "%s in result callback \"%V\"", u.err,
                               &value[1]);
        }

        return NGX_CONF_ERROR;
    }

    cb->addrs = u.addrs;
    cb->naddrs = u.naddrs;
    cb->host = url;
    cb->port = u.port;

    oc->callback = cb;

    return NGX_CONF_OK;
}


char *
ngx_http_mpns_backoff(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_outbox_conf_t *oc = (void *) ((char *) conf + cmd->offset);

    ngx_str_t   *value, s;
    ngx_msec_t  *window, msec;
    ngx_uint_t   i;

    if (oc->backoff != NGX_CONF_UNSET_MSEC) {
        return "is duplicate";
    }

    value = cf->args->elts;

    for (i = 1; i < cf->args->nelts; i++) {

        window = &oc->backoff;
        s = value[i];

        if (i == 1) {
            /* the base delay */

        } else if (ngx_strncmp(s.data, "device_inactive=", 16) == 0) {
            window = &oc->device_inactive;
            s.data += 16;
            s.len -= 16;

        } else if (ngx_strncmp(s.data, "throttled=", 10) == 0) {
            window = &oc->throttled;
            s.data += 10;
            s.len -= 10;

        } else {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        msec = ngx_parse_time(&s, 0);

        if (msec == (ngx_msec_t) NGX_ERROR || msec == 0) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[i]);
            return NGX_CONF_ERROR;
        }

        *window = msec;
    }

    return NGX_CONF_OK;
}


void
ngx_http_mpns_outbox_create_conf(ngx_http_mpns_outbox_conf_t *oc)
{
    oc->mode = NGX_CONF_UNSET_UINT;
    oc->zone = NGX_CONF_UNSET_PTR;
    oc->async = NGX_CONF_UNSET;
    oc->callback = NGX_CONF_UNSET_PTR;
    oc->backoff = NGX_CONF_UNSET_MSEC;
    oc->device_inactive = NGX_CONF_UNSET_MSEC;
    oc->throttled = NGX_CONF_UNSET_MSEC;
    oc->max_age = NGX_CONF_UNSET_MSEC;
    oc->keep = NGX_CONF_UNSET_MSEC;
}


char *
ngx_http_mpns_outbox_merge_conf(ngx_conf_t *cf, void *conf,
    ngx_http_mpns_outbox_conf_t *oc, ngx_http_mpns_outbox_conf_t *prev)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_http_mpns_outbox_ctx_t  *ctx;

    ngx_conf_merge_uint_value(oc->mode, prev->mode, NGX_HTTP_MPNS_MODE_WAIT);
    ngx_conf_merge_ptr_value(oc->zone, prev->zone, NULL);
    ngx_conf_merge_value(oc->async, prev->async, 0);
    ngx_conf_merge_ptr_value(oc->callback, prev->callback, NULL);
    ngx_conf_merge_msec_value(oc->backoff, prev->backoff, 60000);
    ngx_conf_merge_msec_value(oc->device_inactive, prev->device_inactive,
                              3660000);
    ngx_conf_merge_msec_value(oc->throttled, prev->throttled, 3600000);
    ngx_conf_merge_msec_value(oc->max_age, prev->max_age, 86400000);
    ngx_conf_merge_msec_value(oc->keep, prev->keep, 3600000);

    if (oc->zone == NULL) {

        if ((mlcf->send || mlcf->broadcast)
            && (oc->mode == NGX_HTTP_MPNS_MODE_BACKGROUND || oc->async))
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "background sends need \"mpns_outbox\"");
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    ctx = oc->zone->data;

    if (ctx == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown mpns_outbox_zone \"%V\"",
                           &oc->zone->shm.name);
        return NGX_CONF_ERROR;
    }

    if (!mlcf->send && !mlcf->broadcast) {
        /* inherited by a level that does not send */
        return NGX_CONF_OK;
    }

    /* the outbox is drained with the configuration of its location */

    if (ctx->mlcf && ctx->mlcf != mlcf) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "mpns outbox \"%V\" is used by another location",
                           &oc->zone->shm.name);
        return NGX_CONF_ERROR;
    }

    ctx->mlcf = mlcf;
    ctx->clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_mpns_outbox_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mpns_outbox_ctx_t *octx = data;

    size_t                       len;
    ngx_http_mpns_outbox_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (ctx->state.len
        && ngx_http_mpns_state_check(ctx->cycle, "outbox",
                                     &shm_zone->shm.name, &ctx->state)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ctx->sh = ngx_slab_calloc(ctx->shpool,
                              sizeof(ngx_http_mpns_outbox_shctx_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->ids, &ctx->sh->ids_sentinel,
                    ngx_rbtree_insert_value);
    ngx_rbtree_init(&ctx->sh->due, &ctx->sh->due_sentinel,
                    ngx_rbtree_insert_value);

    len = sizeof(" in mpns outbox zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in mpns outbox zone \"%V\"%Z",
                &shm_zone->shm.name);

    ctx->shpool->log_nomem = 0;

    if (ctx->state.len == 0 || ngx_test_config) {
        return NGX_OK;
    }

    return ngx_http_mpns_outbox_load(ctx, shm_zone->shm.log);
}


ngx_msec_t
ngx_http_mpns_outbox_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (ngx_msec_t) tp->sec * 1000 + tp->msec;
}


ngx_int_t
ngx_http_mpns_outbox_add(ngx_http_request_t *r, void *msg,
    ngx_str_t *channel, void *filter, ngx_msec_t due, u_char *id)
{
    ngx_http_mpns_loc_conf_t   *mlcf;
    ngx_http_mpns_main_conf_t  *mmcf;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);
    mmcf = ngx_http_get_module_main_conf(r, ngx_http_mpns_module);

    return ngx_http_mpns_outbox_insert(mlcf->outbox.zone->data, mmcf->engine,
                                       r->connection->log, msg, channel,
                                       filter, due, id);
}


static ngx_int_t
ngx_http_mpns_outbox_insert(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_engine_t *engine, ngx_log_t *log,
    ngx_http_mpns_message_t *msg, ngx_str_t *channel,
    ngx_http_mpns_filter_t *filter, ngx_msec_t due, u_char *id)
{
    u_char                       *p, *rnd;
    size_t                        size;
    uint64_t                      key;
    ngx_uint_t                    i;
    ngx_http_mpns_outbox_node_t  *on;

    size = offsetof(ngx_http_mpns_outbox_node_t, data)
           + channel->len + msg->content_type.len + msg->target.len
           + msg->body.len;

    if (filter) {
        size += filter->user.len + filter->tag.len + filter->os.len
                + NGX_HTTP_MPNS_MAX_CHANNEL;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    on = ngx_slab_alloc_locked(ctx->shpool, size);

    if (on == NULL) {
        if (!ctx->sh->full) {
            ctx->sh->full = 1;
            ngx_log_error(NGX_LOG_CRIT, log, 0,
                          "mpns outbox zone \"%V\" is full",
                          &ctx->shm_zone->shm.name);
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_BUSY;
    }

    /* an id nobody can guess, unique in the outbox */

    do {
        rnd = ngx_http_mpns_engine_random(engine);

        for (key = 0, i = 0; i < 8; i++) {
            key = (key << 8) | rnd[i];
        }

        key &= 0x7fffffffffffffffULL;

    } while (key == 0 || ngx_http_mpns_outbox_lookup(ctx, key));

    ngx_memzero(on, offsetof(ngx_http_mpns_outbox_node_t, data));

    on->node.key = (ngx_rbtree_key_t) key;
    on->created = ngx_http_mpns_outbox_now();
    on->state = NGX_HTTP_MPNS_OB_PENDING;
    on->type = (u_char) msg->type;
    on->notification_class = (u_char) msg->notification_class;
    ngx_memcpy(on->message_id, msg->message_id.data, 36);

    on->channel_len = (uint16_t) channel->len;
    on->content_type_len = (u_char) msg->content_type.len;
    on->target_len = (u_char) msg->target.len;
    on->body_len = (uint16_t) msg->body.len;

    p = ngx_cpymem(on->data, channel->data, channel->len);
    p = ngx_cpymem(p, msg->content_type.data, msg->content_type.len);
    p = ngx_cpymem(p, msg->target.data, msg->target.len);
    p = ngx_cpymem(p, msg->body.data, msg->body.len);

    if (filter) {
        on->broadcast = 1;
        on->user_len = (u_char) filter->user.len;
        on->tag_len = (u_char) filter->tag.len;
        on->os_len = (u_char) filter->os.len;

        p = ngx_cpymem(p, filter->user.data, filter->user.len);
        p = ngx_cpymem(p, filter->tag.data, filter->tag.len);
        (void) ngx_cpymem(p, filter->os.data, filter->os.len);
    }

    ngx_rbtree_insert(&ctx->sh->ids, &on->node);

    on->due.key = (ngx_rbtree_key_t) due;
    ngx_rbtree_insert(&ctx->sh->due, &on->due);

    ctx->sh->count++;
    ctx->sh->version++;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_mpns_outbox_changed(ctx);

    if (id) {
        ngx_sprintf(id, "%016xL", key);
    }

    /* this worker looks at once; the others on their next turn */

    if (!ctx->drain.posted && ctx->drain.handler) {
        ngx_post_event(&ctx->drain, &ngx_posted_events);
    }

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_outbox_status(ngx_http_request_t *r, ngx_str_t *id)
{
    u_char                       *buf;
    size_t                        len;
    uint64_t                      key;
    ngx_http_mpns_error_t         err;
    ngx_http_mpns_loc_conf_t     *mlcf;
    ngx_http_mpns_outbox_ctx_t   *ctx;
    ngx_http_mpns_outbox_node_t  *on;

    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_mpns_module);
    ctx = mlcf->outbox.zone->data;

    buf = NULL;
    len = 0;

    if (ngx_http_mpns_outbox_parse_id(id, &key) == NGX_OK) {

        ngx_shmtx_lock(&ctx->shpool->mutex);

        on = ngx_http_mpns_outbox_lookup(ctx, key);

        if (on) {
            buf = ngx_pnalloc(r->pool,
                              ngx_http_mpns_outbox_json(NULL, on));
            if (buf) {
                len = ngx_http_mpns_outbox_json(buf, on);
            }
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        if (on && buf == NULL) {
            return NGX_HTTP_INTERNAL_SERVER_ERROR;
        }
    }

    if (buf == NULL) {
        err.status = NGX_HTTP_NOT_FOUND;
        err.text = "not found";
        ngx_str_set(&err.field, "id");
        return ngx_http_mpns_send_error(r, &err);
    }

    return ngx_http_mpns_send_json(r, NGX_HTTP_OK, buf, len);
}


ngx_int_t
ngx_http_mpns_outbox_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_shm_zone_t             **zones;
    ngx_http_mpns_main_conf_t   *mmcf;
    ngx_http_mpns_outbox_ctx_t  *ctx;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mpns_module);

    if (mmcf == NULL) {
        return NGX_OK;
    }

    zones = mmcf->outboxes.elts;

    for (i = 0; i < mmcf->outboxes.nelts; i++) {
        ctx = zones[i]->data;

        if (ctx->mlcf == NULL) {
            continue;
        }

        ctx->drain.handler = ngx_http_mpns_outbox_drain;
        ctx->drain.data = ctx;
        ctx->drain.log = cycle->log;
        ctx->drain.cancelable = 1;

        ngx_add_timer(&ctx->drain, NGX_HTTP_MPNS_DRAIN_INTERVAL);

        if (ctx->state.len == 0) {
            continue;
        }

        ctx->temp = ngx_pnalloc(cycle->pool, ctx->state.len + NGX_INT64_LEN
                                             + sizeof("..tmp"));
        ctx->buf = ngx_palloc(cycle->pool, NGX_HTTP_MPNS_OB_BUFFER);

        if (ctx->temp == NULL || ctx->buf == NULL) {
            return NGX_ERROR;
        }

        ngx_sprintf(ctx->temp, "%V.%P.tmp%Z", &ctx->state, ngx_pid);

        ctx->save.handler = ngx_http_mpns_outbox_save_handler;
        ctx->save.data = ctx;
        ctx->save.log = cycle->log;

        /* what was loaded, and sends left in flight by the old workers */

        if (ngx_worker == 0) {
            ngx_add_timer(&ctx->save, NGX_HTTP_MPNS_OB_SAVE_DELAY);
        }
    }

    return NGX_OK;
}


void
ngx_http_mpns_outbox_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i, n;
    ngx_shm_zone_t             **zones;
    ngx_http_mpns_main_conf_t   *mmcf;
    ngx_http_mpns_outbox_ctx_t  *ctx;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mpns_module);

    if (mmcf == NULL) {
        return;
    }

    zones = mmcf->outboxes.elts;

    for (i = 0; i < mmcf->outboxes.nelts; i++) {
        ctx = zones[i]->data;

        if (ctx->save.handler == NULL) {
            continue;
        }

        /* another worker may be writing: wait for it a little */

        for (n = 0; n < 100; n++) {
            if (ngx_http_mpns_outbox_save(ctx, cycle->log) != NGX_BUSY) {
                break;
            }

            ngx_msleep(10);
        }
    }
}


static void
ngx_http_mpns_outbox_drain(ngx_event_t *ev)
{
    ngx_http_mpns_outbox_ctx_t *ctx = ev->data;

    ngx_uint_t                    n, i;
    ngx_msec_t                    now, age;
    ngx_rbtree_node_t            *node, *next, *sentinel;
    ngx_http_mpns_job_t          *jobs[NGX_HTTP_MPNS_DRAIN_BATCH], *job;
    ngx_http_mpns_outbox_node_t  *on;

    if (ngx_exiting || ngx_terminate) {
        return;
    }

    n = 0;
    now = ngx_http_mpns_outbox_now();
    sentinel = ctx->sh->due.sentinel;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = (ctx->sh->due.root == sentinel)
           ? NULL : ngx_rbtree_min(ctx->sh->due.root, sentinel);

    /* mpns_concurrency: jobs of this worker in flight for the outbox */

    while (node && (ngx_msec_t) node->key <= now
           && n < NGX_HTTP_MPNS_DRAIN_BATCH
           && ctx->active + n < ctx->mlcf->concurrency)
    {
        next = ngx_rbtree_next(&ctx->sh->due, node);

        on = ngx_rbtree_data(node, ngx_http_mpns_outbox_node_t, due);
        age = now - on->created;
        job = NULL;

        if (on->state != NGX_HTTP_MPNS_OB_FINAL
            && age >= ctx->mlcf->outbox.max_age)
        {
            /* MPNS never took it in time */
            on->gave_up = 1;
            ngx_http_mpns_outbox_final(ctx, on, now);

        } else if (on->state != NGX_HTTP_MPNS_OB_FINAL && on->broadcast) {

            if (ngx_http_mpns_outbox_run(ctx, on) == NGX_OK) {
                on->state = NGX_HTTP_MPNS_OB_SENDING;
                on->attempts++;
                ngx_http_mpns_outbox_schedule(ctx, on,
                                              now + NGX_HTTP_MPNS_LEASE);
            }

        } else if (on->state != NGX_HTTP_MPNS_OB_FINAL) {
            job = ngx_http_mpns_outbox_send_job(ctx, on);

            if (job == NGX_CONF_UNSET_PTR) {
                /* the configuration no longer allows the channel */
                job = NULL;
                on->outcome = NGX_HTTP_MPNS_REFUSED;
                ngx_http_mpns_outbox_final(ctx, on, now);

            } else if (job) {
                on->state = NGX_HTTP_MPNS_OB_SENDING;
                on->attempts++;
                ngx_http_mpns_outbox_schedule(ctx, on,
                                              now + NGX_HTTP_MPNS_LEASE);
            }

        } else if (!on->reported) {

            if (age >= ctx->mlcf->outbox.max_age
                + ctx->mlcf->outbox.keep)
            {
                ngx_log_error(NGX_LOG_ERR, ev->log, 0,
                              "mpns result callback for %016xL given up "
                              "after %ui tries", (uint64_t) on->node.key,
                              (ngx_uint_t) on->callbacks);
                on->reported = 1;
                ngx_http_mpns_outbox_schedule(ctx, on,
                                              now + ctx->mlcf->outbox.keep);

            } else {
                job = ngx_http_mpns_outbox_callback_job(ctx, on);

                if (job) {
                    on->callbacks++;
                    ngx_http_mpns_outbox_schedule(ctx, on,
                                                  now + NGX_HTTP_MPNS_LEASE);
                }
            }

        } else {
            /* kept long enough */
            ngx_rbtree_delete(&ctx->sh->due, &on->due);
            ngx_rbtree_delete(&ctx->sh->ids, &on->node);
            ngx_slab_free_locked(ctx->shpool, on);
            ctx->sh->count--;
            ctx->sh->full = 0;
            ctx->sh->version++;
        }

        if (job) {
            jobs[n++] = job;
        }

        node = next;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_mpns_outbox_changed(ctx);

    ctx->active += n;

    for (i = 0; i < n; i++) {
        ngx_http_mpns_job_start(jobs[i]);
    }

    if (n == NGX_HTTP_MPNS_DRAIN_BATCH) {
        /* more may be due: on the next turn, after other events */
        ngx_post_event(ev, &ngx_posted_next_events);
        return;
    }

    if (!ev->timer_set) {
        ngx_add_timer(ev, NGX_HTTP_MPNS_DRAIN_INTERVAL);
    }
}


/* called with the zone locked: copies what the send needs */

static ngx_http_mpns_job_t *
ngx_http_mpns_outbox_send_job(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_outbox_node_t *on)
{
    u_char                      *p;
    ngx_int_t                    rc;
    ngx_str_t                    channel;
    ngx_http_mpns_job_t         *job;
    ngx_http_mpns_message_t      msg;
    ngx_http_mpns_main_conf_t   *mmcf;
    ngx_http_mpns_outbox_job_t  *oj;

    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mpns_module);

    job = ngx_http_mpns_job_create(mmcf->engine, ngx_cycle->log);
    if (job == NULL) {
        return NULL;
    }

    oj = ngx_palloc(job->pool, sizeof(ngx_http_mpns_outbox_job_t));
    if (oj == NULL) {
        goto failed;
    }

    oj->ctx = ctx;
    oj->id = on->node.key;
    oj->callback = 0;

    p = ngx_pnalloc(job->pool, on->channel_len + on->content_type_len
                               + on->target_len + on->body_len + 36);
    if (p == NULL) {
        goto failed;
    }

    ngx_memcpy(p, on->data, on->channel_len + on->content_type_len
                            + on->target_len + on->body_len);
    ngx_memcpy(p + on->channel_len + on->content_type_len + on->target_len
               + on->body_len, on->message_id, 36);

    channel.data = p;
    channel.len = on->channel_len;
    p += on->channel_len;

    ngx_memzero(&msg, sizeof(ngx_http_mpns_message_t));

    msg.type = on->type;
    msg.notification_class = on->notification_class;
    msg.content_type.data = p;
    msg.content_type.len = on->content_type_len;
    p += on->content_type_len;
    msg.target.data = p;
    msg.target.len = on->target_len;
    p += on->target_len;
    msg.body.data = p;
    msg.body.len = on->body_len;
    p += on->body_len;
    msg.message_id.data = p;
    msg.message_id.len = 36;

    rc = ngx_http_mpns_outbox_prepare(ctx, job, &channel, &msg);

    if (rc == NGX_DECLINED) {
        ngx_http_mpns_job_cancel(job);
        return NGX_CONF_UNSET_PTR;
    }

    if (rc != NGX_OK) {
        goto failed;
    }

    job->handler = ngx_http_mpns_outbox_sent;
    job->data = oj;

    return job;

failed:

    ngx_http_mpns_job_cancel(job);

    return NULL;
}


/*
 * The request of a send, with the configuration of the outbox's location;
 * NGX_DECLINED if that no longer allows the channel (logged at info).
 */

static ngx_int_t
ngx_http_mpns_outbox_prepare(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_job_t *job, ngx_str_t *channel,
    ngx_http_mpns_message_t *msg)
{
    ngx_int_t                  rc;
    ngx_http_mpns_error_t      err;
    ngx_http_mpns_target_t     target;
    ngx_http_mpns_loc_conf_t  *mlcf;

    mlcf = ctx->mlcf;

    rc = ngx_http_mpns_channel_check(ngx_cycle->log, ctx->clcf, mlcf,
                                     channel, job->pool, job, &target, &err);

    if (rc == NGX_DECLINED) {
        ngx_log_error(NGX_LOG_INFO, ngx_cycle->log, 0,
                      "mpns background send to \"%V\" refused: %s",
                      channel, err.text);
        return NGX_DECLINED;
    }

    if (rc != NGX_OK
        || ngx_http_mpns_message_request(job->pool, msg, &target,
                                         &job->request)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    job->connect_timeout = mlcf->connect_timeout;
    job->send_timeout = mlcf->send_timeout;
    job->read_timeout = mlcf->read_timeout;

    /* the outbox retries, in minutes, not the engine in seconds */
    job->retries = 0;

    return NGX_OK;
}


static ngx_http_mpns_job_t *
ngx_http_mpns_outbox_callback_job(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_outbox_node_t *on)
{
    u_char                      *p, *body;
    size_t                       len, json;
    ngx_http_mpns_job_t         *job;
    ngx_http_mpns_callback_t    *cb;
    ngx_http_mpns_main_conf_t   *mmcf;
    ngx_http_mpns_outbox_job_t  *oj;

    cb = ctx->mlcf->outbox.callback;
    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mpns_module);

    job = ngx_http_mpns_job_create(mmcf->engine, ngx_cycle->log);
    if (job == NULL) {
        return NULL;
    }

    oj = ngx_palloc(job->pool, sizeof(ngx_http_mpns_outbox_job_t));
    if (oj == NULL) {
        goto failed;
    }

    oj->ctx = ctx;
    oj->id = on->node.key;
    oj->callback = 1;

    /* the body first: its length goes into the header */

    len = ngx_http_mpns_outbox_json(NULL, on);

    body = ngx_pnalloc(job->pool, len);
    if (body == NULL) {
        goto failed;
    }

    json = ngx_http_mpns_outbox_json(body, on);

    len = sizeof("POST  HTTP/1.1" CRLF "Host: " CRLF
                 "Content-Type: application/json" CRLF
                 "Content-Length: " CRLF
                 "Connection: keep-alive" CRLF CRLF) - 1
          + cb->uri.len + cb->host.len + NGX_SIZE_T_LEN + json;

    p = ngx_pnalloc(job->pool, len);
    if (p == NULL) {
        goto failed;
    }

    job->request.data = p;

    p = ngx_sprintf(p, "POST %V HTTP/1.1" CRLF "Host: %V" CRLF
                       "Content-Type: application/json" CRLF
                       "Content-Length: %uz" CRLF
                       "Connection: keep-alive" CRLF CRLF,
                    &cb->uri, &cb->host, json);
    p = ngx_cpymem(p, body, json);

    job->request.len = p - job->request.data;

    job->addrs = cb->addrs;
    job->naddrs = cb->naddrs;
    job->port = cb->port;
    job->name = cb->host;

    job->connect_timeout = ctx->mlcf->connect_timeout;
    job->send_timeout = ctx->mlcf->send_timeout;
    job->read_timeout = ctx->mlcf->read_timeout;
    job->retries = 0;

    job->handler = ngx_http_mpns_outbox_reported;
    job->data = oj;

    return job;

failed:

    ngx_http_mpns_job_cancel(job);

    return NULL;
}


static void
ngx_http_mpns_outbox_sent(ngx_http_mpns_job_t *job)
{
    ngx_http_mpns_outbox_job_t *oj = job->data;

    ngx_msec_t                    now, delay;
    ngx_http_mpns_outbox_ctx_t   *ctx;
    ngx_http_mpns_outbox_conf_t  *oc;
    ngx_http_mpns_outbox_node_t  *on;

    ctx = oj->ctx;
    oc = &ctx->mlcf->outbox;
    now = ngx_http_mpns_outbox_now();

    ctx->active--;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    on = ngx_http_mpns_outbox_lookup(ctx, oj->id);

    if (on == NULL || on->state != NGX_HTTP_MPNS_OB_SENDING) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return;
    }

    on->outcome = (u_char) job->outcome;
    on->status = (uint16_t) job->response.status;

    delay = ngx_http_mpns_outbox_delay(oc, job->outcome, on->attempts);

    if (delay) {
        ngx_log_error(NGX_LOG_INFO, &job->log, 0,
                      "mpns background send %016xL %V, next try in %M ms",
                      oj->id, &ngx_http_mpns_outcome(job->outcome)->name,
                      delay);

        on->state = NGX_HTTP_MPNS_OB_PENDING;
        ngx_http_mpns_outbox_schedule(ctx, on, now + delay);

    } else {
        ngx_http_mpns_outbox_final(ctx, on, now);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_mpns_outbox_changed(ctx);
}


static void
ngx_http_mpns_outbox_reported(ngx_http_mpns_job_t *job)
{
    ngx_http_mpns_outbox_job_t *oj = job->data;

    ngx_msec_t                    now, delay;
    ngx_http_mpns_outbox_ctx_t   *ctx;
    ngx_http_mpns_outbox_node_t  *on;

    ctx = oj->ctx;
    now = ngx_http_mpns_outbox_now();

    ctx->active--;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    on = ngx_http_mpns_outbox_lookup(ctx, oj->id);

    if (on == NULL || on->reported) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return;
    }

    if (job->response.status >= 200 && job->response.status < 300) {
        on->reported = 1;
        ngx_http_mpns_outbox_schedule(ctx, on, now + ctx->mlcf->outbox.keep);

    } else {
        delay = NGX_HTTP_MPNS_CALLBACK_BACKOFF
                << ngx_min(on->callbacks - 1, 16);
        delay = ngx_min(delay, NGX_HTTP_MPNS_CALLBACK_MAX);

        ngx_log_error(NGX_LOG_WARN, &job->log, 0,
                      "mpns result callback for %016xL failed (%ui), "
                      "next try in %M ms", oj->id,
                      job->response.status, delay);

        ngx_http_mpns_outbox_schedule(ctx, on, now + delay);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_mpns_outbox_changed(ctx);
}


/* called with the zone locked */

static void
ngx_http_mpns_outbox_final(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t now)
{
    on->state = NGX_HTTP_MPNS_OB_FINAL;
    on->finished = now;

    if (ctx->mlcf->outbox.callback) {
        on->reported = 0;
        ngx_http_mpns_outbox_schedule(ctx, on, now);

    } else {
        on->reported = 1;
        ngx_http_mpns_outbox_schedule(ctx, on, now + ctx->mlcf->outbox.keep);
    }
}


static void
ngx_http_mpns_outbox_schedule(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t when)
{
    ngx_rbtree_delete(&ctx->sh->due, &on->due);

    on->due.key = (ngx_rbtree_key_t) when;
    ngx_rbtree_insert(&ctx->sh->due, &on->due);

    ctx->sh->version++;
}


static ngx_http_mpns_outbox_node_t *
ngx_http_mpns_outbox_lookup(ngx_http_mpns_outbox_ctx_t *ctx, uint64_t id)
{
    ngx_rbtree_node_t  *node, *sentinel;

    node = ctx->sh->ids.root;
    sentinel = ctx->sh->ids.sentinel;

    while (node != sentinel) {

        if ((uint64_t) node->key == id) {
            return (ngx_http_mpns_outbox_node_t *) node;
        }

        node = (id < (uint64_t) node->key) ? node->left : node->right;
    }

    return NULL;
}


/* with buf NULL, the length; called with the zone locked */

static size_t
ngx_http_mpns_outbox_json(u_char *buf, ngx_http_mpns_outbox_node_t *on)
{
    u_char                   *p;
    ngx_str_t                 channel, *state;
    ngx_http_mpns_outcome_t  *o;

    channel.data = on->data;
    channel.len = on->channel_len;

    state = &ngx_http_mpns_outbox_states[on->gave_up ? 3 : on->state];
    o = (on->state == NGX_HTTP_MPNS_OB_FINAL || on->attempts)
        ? ngx_http_mpns_outcome(on->outcome) : NULL;

    if (buf == NULL) {
        return sizeof("{\"id\":\"\",\"state\":\"\",\"channel\":,"
                      "\"message_id\":\"\",\"attempts\":,\"outcome\":,"
                      "\"status\":}\n") - 1
               + NGX_HTTP_MPNS_ID_LEN + state->len
               + ngx_http_mpns_json_str_len(&channel) + 36
               + NGX_INT_T_LEN + sizeof("\"\"") - 1 + 32 + NGX_INT_T_LEN
               + sizeof(",\"sent\":,\"delivered\":,\"expired\":,"
                        "\"failed\":,\"deferred\":") + 5 * NGX_INT_T_LEN;
    }

    p = ngx_sprintf(buf, "{\"id\":\"%016xL\",\"state\":\"%V\",\"channel\":",
                    (uint64_t) on->node.key, state);
    p = on->broadcast ? ngx_cpymem(p, "null", 4)
                      : ngx_http_mpns_json_str(p, &channel);

    if (on->broadcast) {
        p = ngx_sprintf(p, ",\"sent\":%uD,\"delivered\":%uD,\"expired\":%uD,"
                           "\"failed\":%uD,\"deferred\":%uD",
                        on->counts[0], on->counts[1], on->counts[2],
                        on->counts[3], on->counts[4]);
    }
    p = ngx_sprintf(p, ",\"message_id\":\"%*s\",\"attempts\":%ui,"
                       "\"outcome\":", (size_t) 36, on->message_id,
                    (ngx_uint_t) on->attempts);

    p = o ? ngx_sprintf(p, "\"%V\"", &o->name)
          : ngx_cpymem(p, "null", 4);

    p = ngx_cpymem(p, ",\"status\":", sizeof(",\"status\":") - 1);
    p = on->status ? ngx_sprintf(p, "%ui", (ngx_uint_t) on->status)
                   : ngx_cpymem(p, "null", 4);

    *p++ = '}';
    *p++ = LF;

    return p - buf;
}


static ngx_int_t
ngx_http_mpns_outbox_parse_id(ngx_str_t *s, uint64_t *id)
{
    u_char      c;
    uint64_t    v;
    ngx_uint_t  i;

    if (s->len != NGX_HTTP_MPNS_ID_LEN) {
        return NGX_ERROR;
    }

    v = 0;

    for (i = 0; i < s->len; i++) {
        c = s->data[i];

        if (c >= '0' && c <= '9') {
            v = (v << 4) | (c - '0');

        } else if (c >= 'a' && c <= 'f') {
            v = (v << 4) | (c - 'a' + 10);

        } else {
            return NGX_ERROR;
        }
    }

    *id = v;

    return NGX_OK;
}


static void
ngx_http_mpns_outbox_changed(ngx_http_mpns_outbox_ctx_t *ctx)
{
    /* non-cancelable: a graceful stop saves before it ends */

    if (ctx->save.handler && !ctx->save.timer_set) {
        ngx_add_timer(&ctx->save, NGX_HTTP_MPNS_OB_SAVE_DELAY);
    }
}


static void
ngx_http_mpns_outbox_save_handler(ngx_event_t *ev)
{
    ngx_http_mpns_outbox_ctx_t *ctx = ev->data;

    ngx_int_t  rc;

    rc = ngx_http_mpns_outbox_save(ctx, ev->log);

    if (rc == NGX_OK || ngx_exiting || ngx_terminate) {
        return;
    }

    ngx_add_timer(ev, NGX_HTTP_MPNS_OB_SAVE_DELAY);
}


/*
 * The whole outbox, a buffer at a time under the lock, into a temporary
 * file that replaces the state file once synced.  NGX_OK: saved or
 * nothing to save, NGX_BUSY: another worker is saving, NGX_ERROR.
 */

static ngx_int_t
ngx_http_mpns_outbox_save(ngx_http_mpns_outbox_ctx_t *ctx, ngx_log_t *log)
{
    u_char                       *p, *last;
    size_t                        len;
    ssize_t                       n;
    uint64_t                      version, cursor;
    ngx_fd_t                      fd;
    ngx_int_t                     rc;
    ngx_uint_t                    done;
    ngx_rbtree_node_t            *node, *found, *sentinel;
    ngx_http_mpns_outbox_node_t  *on;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (ctx->sh->version == ctx->sh->saved) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_OK;
    }

    if (ctx->sh->writer && ctx->sh->writer != ngx_pid) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_BUSY;
    }

    ctx->sh->writer = ngx_pid;
    version = ctx->sh->version;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    rc = NGX_ERROR;

    fd = ngx_open_file(ctx->temp, NGX_FILE_WRONLY, NGX_FILE_TRUNCATE,
                       NGX_FILE_DEFAULT_ACCESS);

    if (fd == NGX_INVALID_FILE) {
        ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                      ngx_open_file_n " \"%s\" failed", ctx->temp);
        goto done;
    }

    cursor = 0;
    done = 0;

    while (!done) {
        p = ctx->buf;
        last = ctx->buf + NGX_HTTP_MPNS_OB_BUFFER;

        ngx_shmtx_lock(&ctx->shpool->mutex);

        for ( ;; ) {

            /* the first entry with an id above the cursor */

            node = ctx->sh->ids.root;
            sentinel = ctx->sh->ids.sentinel;
            found = NULL;

            while (node != sentinel) {
                if ((uint64_t) node->key > cursor) {
                    found = node;
                    node = node->left;

                } else {
                    node = node->right;
                }
            }

            if (found == NULL) {
                done = 1;
                break;
            }

            on = (ngx_http_mpns_outbox_node_t *) found;

            len = ngx_http_mpns_outbox_record(NULL, on);

            if ((size_t) (last - p) < len) {
                break;
            }

            p += ngx_http_mpns_outbox_record(p, on);
            cursor = on->node.key;
        }

        ngx_shmtx_unlock(&ctx->shpool->mutex);

        for (last = ctx->buf; last < p; last += n) {
            n = ngx_write_fd(fd, last, p - last);

            if (n == -1) {
                ngx_log_error(NGX_LOG_CRIT, log, ngx_errno,
                              ngx_write_fd_n " \"%s\" failed", ctx->temp);
                goto done;
            }
        }
    }

    rc = ngx_http_mpns_state_commit(fd, ctx->temp, ctx->state.data, log);
    fd = NGX_INVALID_FILE;

done:

    if (rc != NGX_OK) {
        if (fd != NGX_INVALID_FILE) {
            (void) ngx_close_file(fd);
        }

        (void) ngx_delete_file(ctx->temp);
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (rc == NGX_OK) {
        ctx->sh->saved = version;
    }

    ctx->sh->writer = 0;

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


/* one line of the state file; with buf NULL, an upper bound of its length */

static size_t
ngx_http_mpns_outbox_record(u_char *buf, ngx_http_mpns_outbox_node_t *on)
{
    u_char     *p;
    ngx_str_t   s, b64;

    if (buf == NULL) {
        s.len = on->channel_len;
        s.data = on->data;

        return sizeof("{\"id\":\"\",\"state\":,\"created\":,\"due\":,"
                      "\"finished\":,\"attempts\":,\"callbacks\":,"
                      "\"status\":,\"outcome\":,\"reported\":,\"gave_up\":,"
                      "\"type\":,\"class\":,\"message_id\":\"\","
                      "\"channel\":,\"content_type\":,\"target\":,"
                      "\"body\":\"\"}\n")
               + NGX_HTTP_MPNS_ID_LEN + 13 * NGX_INT64_LEN + 36
               + ngx_http_mpns_json_str_len(&s)
               + 2 * (on->content_type_len + on->target_len) + 4
               + ngx_base64_encoded_length(on->body_len)
               + sizeof(",\"broadcast\":,\"cursor_hash\":,\"sent\":,"
                        "\"delivered\":,\"expired\":,\"failed\":,"
                        "\"deferred\":,\"user\":,\"tag\":,\"os\":,"
                        "\"cursor\":") + 7 * NGX_INT_T_LEN
               + 6 * (on->user_len + on->tag_len + on->os_len
                      + on->cursor_len) + 8;
    }

    p = ngx_sprintf(buf, "{\"id\":\"%016xL\",\"state\":%ui,\"created\":%M,"
                         "\"due\":%M,\"finished\":%M,\"attempts\":%ui,"
                         "\"callbacks\":%ui,\"status\":%ui,\"outcome\":%ui,"
                         "\"reported\":%ui,\"gave_up\":%ui,\"type\":%ui,"
                         "\"class\":%ui,\"message_id\":\"%*s\",\"channel\":",
                    (uint64_t) on->node.key, (ngx_uint_t) on->state,
                    on->created, (ngx_msec_t) on->due.key, on->finished,
                    (ngx_uint_t) on->attempts, (ngx_uint_t) on->callbacks,
                    (ngx_uint_t) on->status, (ngx_uint_t) on->outcome,
                    (ngx_uint_t) on->reported, (ngx_uint_t) on->gave_up,
                    (ngx_uint_t) on->type,
                    (ngx_uint_t) on->notification_class, (size_t) 36,
                    on->message_id);

    s.data = on->data;
    s.len = on->channel_len;
    p = ngx_http_mpns_json_str(p, &s);

    p = ngx_cpymem(p, ",\"content_type\":", sizeof(",\"content_type\":") - 1);
    s.data += s.len;
    s.len = on->content_type_len;
    p = ngx_http_mpns_json_str(p, &s);

    p = ngx_cpymem(p, ",\"target\":", sizeof(",\"target\":") - 1);
    s.data += s.len;
    s.len = on->target_len;
    p = ngx_http_mpns_json_str(p, &s);

    /* a raw payload may be any bytes */

    p = ngx_cpymem(p, ",\"body\":\"", sizeof(",\"body\":\"") - 1);
    s.data += s.len;
    s.len = on->body_len;
    b64.data = p;
    ngx_encode_base64(&b64, &s);
    p += b64.len;

    *p++ = '"';

    if (on->broadcast) {
        p = ngx_sprintf(p, ",\"broadcast\":1,\"cursor_hash\":%uD,"
                           "\"sent\":%uD,\"delivered\":%uD,\"expired\":%uD,"
                           "\"failed\":%uD,\"deferred\":%uD",
                        on->cursor_hash, on->counts[0], on->counts[1],
                        on->counts[2], on->counts[3], on->counts[4]);

        p = ngx_cpymem(p, ",\"user\":", sizeof(",\"user\":") - 1);
        s.data += s.len;
        s.len = on->user_len;
        p = ngx_http_mpns_json_str(p, &s);

        p = ngx_cpymem(p, ",\"tag\":", sizeof(",\"tag\":") - 1);
        s.data += s.len;
        s.len = on->tag_len;
        p = ngx_http_mpns_json_str(p, &s);

        p = ngx_cpymem(p, ",\"os\":", sizeof(",\"os\":") - 1);
        s.data += s.len;
        s.len = on->os_len;
        p = ngx_http_mpns_json_str(p, &s);

        p = ngx_cpymem(p, ",\"cursor\":", sizeof(",\"cursor\":") - 1);
        s.data += s.len;
        s.len = on->cursor_len;
        p = ngx_http_mpns_json_str(p, &s);
    }

    *p++ = '}';
    *p++ = LF;

    return p - buf;
}


static ngx_int_t
ngx_http_mpns_outbox_load(ngx_http_mpns_outbox_ctx_t *ctx, ngx_log_t *log)
{
    u_char           *buf, *p, *last, *lf;
    ssize_t           n;
    ngx_fd_t          fd;
    ngx_err_t         err;
    ngx_str_t         line;
    ngx_uint_t        loaded, lines;
    ngx_pool_t       *pool;
    ngx_file_info_t   fi;

    fd = ngx_open_file(ctx->state.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        err = ngx_errno;

        if (err == NGX_ENOENT) {
            return NGX_OK;
        }

        ngx_log_error(NGX_LOG_EMERG, log, err,
                      ngx_open_file_n " \"%s\" failed", ctx->state.data);
        return NGX_ERROR;
    }

    buf = NULL;
    pool = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      ngx_fd_info_n " \"%s\" failed", ctx->state.data);
        goto failed;
    }

    buf = ngx_alloc(ngx_file_size(&fi) + 1, log);
    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, log);

    if (buf == NULL || pool == NULL) {
        goto failed;
    }

    n = ngx_read_fd(fd, buf, ngx_file_size(&fi));

    if (n == -1) {
        ngx_log_error(NGX_LOG_EMERG, log, ngx_errno,
                      ngx_read_fd_n " \"%s\" failed", ctx->state.data);
        goto failed;
    }

    loaded = 0;
    lines = 0;
    p = buf;
    last = buf + n;

    while (p < last) {
        lf = ngx_strlchr(p, last, LF);

        line.data = p;
        line.len = (lf ? lf : last) - p;

        p = lf ? lf + 1 : last;
        lines++;

        if (line.len == 0) {
            continue;
        }

        /* a line cut short by a crash is skipped */

        if (ngx_http_mpns_outbox_load_line(ctx, pool, &line) == NGX_OK) {
            loaded++;

        } else {
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "mpns outbox zone \"%V\": line %ui of \"%s\" "
                          "skipped", &ctx->shm_zone->shm.name, lines,
                          ctx->state.data);
        }

        ngx_reset_pool(pool);
    }

    ngx_log_error(NGX_LOG_NOTICE, log, 0,
                  "mpns outbox zone \"%V\": loaded %ui entries from \"%s\"",
                  &ctx->shm_zone->shm.name, loaded, ctx->state.data);

    ngx_free(buf);
    ngx_destroy_pool(pool);
    (void) ngx_close_file(fd);

    return NGX_OK;

failed:

    if (buf) {
        ngx_free(buf);
    }

    if (pool) {
        ngx_destroy_pool(pool);
    }

    (void) ngx_close_file(fd);

    return NGX_ERROR;
}


static ngx_int_t
ngx_http_mpns_outbox_load_line(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_pool_t *pool, ngx_str_t *line)
{
    u_char                       *p;
    uint64_t                      id;
    ngx_int_t                     v[20];
    ngx_str_t                     key, val, str[9], body;
    ngx_uint_t                    i, j, k, got;
    ngx_http_mpns_json_t          json;
    ngx_http_mpns_json_tok_t     *t, *tv;
    ngx_http_mpns_outbox_node_t  *on;

    static char  *nums[] = { "state", "created", "due", "finished",
                             "attempts", "callbacks", "status", "outcome",
                             "reported", "gave_up", "type", "class",
                             "broadcast", "cursor_hash", "sent", "delivered",
                             "expired", "failed", "deferred", NULL };
    static char  *strs[] = { "id", "message_id", "channel", "content_type",
                             "target", "user", "tag", "os", "cursor", NULL };

    if (ngx_http_mpns_json_parse(pool, line, &json) != NGX_OK
        || json.tokens[0].type != NGX_HTTP_MPNS_JSON_OBJECT)
    {
        return NGX_DECLINED;
    }

    ngx_memzero(v, sizeof(v));
    ngx_memzero(str, sizeof(str));
    ngx_str_null(&body);

    t = json.tokens;
    k = 1;
    got = 0;

    for (i = 0; i < t[0].size; i++) {
        if (ngx_http_mpns_json_string(pool, &t[k], &key) != NGX_OK) {
            return NGX_DECLINED;
        }

        tv = &t[k + 1];
        k = tv->next;

        if (tv->type == NGX_HTTP_MPNS_JSON_PRIMITIVE) {
            for (j = 0; nums[j]; j++) {
                if (key.len == ngx_strlen(nums[j])
                    && ngx_strncmp(key.data, nums[j], key.len) == 0)
                {
                    v[j] = ngx_atoi(tv->raw.data, tv->raw.len);

                    if (v[j] == NGX_ERROR) {
                        return NGX_DECLINED;
                    }

                    got |= 1 << j;
                }
            }

            continue;
        }

        if (ngx_http_mpns_json_string(pool, tv, &val) != NGX_OK) {
            return NGX_DECLINED;
        }

        if (key.len == 4 && ngx_strncmp(key.data, "body", 4) == 0) {
            body.data = ngx_pnalloc(pool,
                                    ngx_base64_decoded_length(val.len));
            if (body.data == NULL
                || ngx_decode_base64(&body, &val) != NGX_OK)
            {
                return NGX_DECLINED;
            }

            continue;
        }

        for (j = 0; strs[j]; j++) {
            if (key.len == ngx_strlen(strs[j])
                && ngx_strncmp(key.data, strs[j], key.len) == 0)
            {
                str[j] = val;
            }
        }
    }

    if ((got & ((1 << 12) - 1)) != (1 << 12) - 1
        || ngx_http_mpns_outbox_parse_id(&str[0], &id) != NGX_OK
        || str[1].len != 36 || (str[2].len == 0 && !v[12])
        || str[2].len > NGX_HTTP_MPNS_MAX_CHANNEL
        || str[5].len > 255 || str[6].len > 255 || str[7].len > 255
        || str[8].len > NGX_HTTP_MPNS_MAX_CHANNEL
        || str[3].len > 255 || str[4].len > 255 || body.len > 65535
        || v[0] > NGX_HTTP_MPNS_OB_FINAL
        || v[7] >= NGX_HTTP_MPNS_NOUTCOMES
        || ngx_http_mpns_outbox_lookup(ctx, id))
    {
        return NGX_DECLINED;
    }

    on = ngx_slab_alloc(ctx->shpool, offsetof(ngx_http_mpns_outbox_node_t,
                                              data)
                                     + str[2].len + str[3].len + str[4].len
                                     + body.len
                                     + (v[12] ? str[5].len + str[6].len
                                                + str[7].len
                                                + NGX_HTTP_MPNS_MAX_CHANNEL
                                              : 0));
    if (on == NULL) {
        return NGX_DECLINED;
    }

    ngx_memzero(on, offsetof(ngx_http_mpns_outbox_node_t, data));

    on->node.key = (ngx_rbtree_key_t) id;

    /* a send in flight when the file was written is sent again */
    on->state = (v[0] == NGX_HTTP_MPNS_OB_SENDING)
                ? NGX_HTTP_MPNS_OB_PENDING : (u_char) v[0];

    on->created = (ngx_msec_t) v[1];
    on->due.key = (ngx_rbtree_key_t) v[2];
    on->finished = (ngx_msec_t) v[3];
    on->attempts = (uint16_t) v[4];
    on->callbacks = (uint16_t) v[5];
    on->status = (uint16_t) v[6];
    on->outcome = (u_char) v[7];
    on->reported = (u_char) v[8];
    on->gave_up = (u_char) v[9];
    on->type = (u_char) v[10];
    on->notification_class = (u_char) v[11];
    ngx_memcpy(on->message_id, str[1].data, 36);

    on->channel_len = (uint16_t) str[2].len;
    on->content_type_len = (u_char) str[3].len;
    on->target_len = (u_char) str[4].len;
    on->body_len = (uint16_t) body.len;

    p = ngx_cpymem(on->data, str[2].data, str[2].len);
    p = ngx_cpymem(p, str[3].data, str[3].len);
    p = ngx_cpymem(p, str[4].data, str[4].len);
    p = ngx_cpymem(p, body.data, body.len);

    if (v[12]) {
        on->broadcast = 1;
        on->cursor_hash = (uint32_t) v[13];

        for (i = 0; i < 5; i++) {
            on->counts[i] = (uint32_t) v[14 + i];
        }

        on->user_len = (u_char) str[5].len;
        on->tag_len = (u_char) str[6].len;
        on->os_len = (u_char) str[7].len;
        on->cursor_len = (uint16_t) str[8].len;

        p = ngx_cpymem(p, str[5].data, str[5].len);
        p = ngx_cpymem(p, str[6].data, str[6].len);
        p = ngx_cpymem(p, str[7].data, str[7].len);
        (void) ngx_cpymem(p, str[8].data, str[8].len);
    }

    ngx_rbtree_insert(&ctx->sh->ids, &on->node);
    ngx_rbtree_insert(&ctx->sh->due, &on->due);

    ctx->sh->count++;

    return NGX_OK;
}


/* 0: the outcome is final */

static ngx_msec_t
ngx_http_mpns_outbox_delay(ngx_http_mpns_outbox_conf_t *oc,
    ngx_uint_t outcome, ngx_uint_t attempts)
{
    ngx_uint_t  n;
    ngx_msec_t  delay;

    switch (outcome) {

    case NGX_HTTP_MPNS_QUEUE_FULL:
    case NGX_HTTP_MPNS_UNAVAILABLE:
    case NGX_HTTP_MPNS_TRANSPORT_ERROR:
    case NGX_HTTP_MPNS_TIMEOUT:
    case NGX_HTTP_MPNS_TLS_HANDSHAKE_FAILED:

        /* MPNS: exponential backoff, in minute increments */

        n = attempts ? attempts - 1 : 0;
        delay = oc->backoff << ngx_min(n, 16);

        return ngx_min(delay, NGX_HTTP_MPNS_MAX_BACKOFF);

    case NGX_HTTP_MPNS_DEVICE_INACTIVE:

        /* no sooner than an hour (61 minutes) */
        return oc->device_inactive;

    case NGX_HTTP_MPNS_THROTTLED:

        /* the daily quota: hourly, until the maximum age */
        return oc->throttled;

    default:
        return 0;
    }
}


/* called with the zone locked: a broadcast entry starts on this worker */

static ngx_int_t
ngx_http_mpns_outbox_run(ngx_http_mpns_outbox_ctx_t *ctx,
    ngx_http_mpns_outbox_node_t *on)
{
    u_char                      *p;
    size_t                       len;
    ngx_pool_t                  *pool;
    ngx_http_mpns_filter_t       filter;
    ngx_http_mpns_cursor_t      *cursor;
    ngx_http_mpns_outbox_run_t  *run;

    if (ctx->mlcf->broadcast == NULL) {
        return NGX_ERROR;
    }

    pool = ngx_create_pool(NGX_DEFAULT_POOL_SIZE, ngx_cycle->log);
    if (pool == NULL) {
        return NGX_ERROR;
    }

    run = ngx_pcalloc(pool, sizeof(ngx_http_mpns_outbox_run_t));
    if (run == NULL) {
        goto failed;
    }

    len = on->content_type_len + on->target_len + on->body_len
          + on->user_len + on->tag_len + on->os_len + 36;

    p = ngx_pnalloc(pool, len);
    if (p == NULL) {
        goto failed;
    }

    run->pool = pool;
    run->ctx = ctx;
    run->id = on->node.key;

    ngx_memcpy(p, on->data + on->channel_len, len - 36);
    ngx_memcpy(p + len - 36, on->message_id, 36);

    run->msg.type = on->type;
    run->msg.notification_class = on->notification_class;
    run->msg.content_type.data = p;
    run->msg.content_type.len = on->content_type_len;
    p += on->content_type_len;
    run->msg.target.data = p;
    run->msg.target.len = on->target_len;
    p += on->target_len;
    run->msg.body.data = p;
    run->msg.body.len = on->body_len;
    p += on->body_len;
    filter.user.data = p;
    filter.user.len = on->user_len;
    p += on->user_len;
    filter.tag.data = p;
    filter.tag.len = on->tag_len;
    p += on->tag_len;
    filter.os.data = p;
    filter.os.len = on->os_len;
    p += on->os_len;
    run->msg.message_id.data = p;
    run->msg.message_id.len = 36;

    run->reader = ngx_http_mpns_reader_create(pool,
                          ngx_http_mpns_registry_get(ctx->mlcf->broadcast),
                          &filter);
    if (run->reader == NULL) {
        goto failed;
    }

    /* where the last worker got to, and what it had counted */

    cursor = &run->reader->cursor;

    cursor->hash = on->cursor_hash;
    cursor->len = on->cursor_len;
    cursor->started = (on->cursor_len != 0);
    ngx_memcpy(cursor->channel, ngx_http_mpns_outbox_cursor(on),
               on->cursor_len);
    ngx_memcpy(run->counts, on->counts, sizeof(run->counts));

    /* the pump takes the zone lock: it starts after the drain is done */

    run->start.handler = ngx_http_mpns_outbox_start_handler;
    run->start.data = run;
    run->start.log = ngx_cycle->log;

    ctx->active++;

    ngx_post_event(&run->start, &ngx_posted_events);

    return NGX_OK;

failed:

    ngx_destroy_pool(pool);

    return NGX_ERROR;
}


static void
ngx_http_mpns_outbox_start_handler(ngx_event_t *ev)
{
    ngx_http_mpns_outbox_pump(ev->data);
}


static void
ngx_http_mpns_outbox_pump(ngx_http_mpns_outbox_run_t *run)
{
    ngx_int_t                    rc;
    ngx_str_t                    channel;
    ngx_uint_t                   refilled;
    ngx_http_mpns_job_t         *job;
    ngx_http_mpns_loc_conf_t    *mlcf;
    ngx_http_mpns_main_conf_t   *mmcf;
    ngx_http_mpns_outbox_job_t  *oj;

    if (run->pumping) {
        return;
    }

    run->pumping = 1;

    mlcf = run->ctx->mlcf;
    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mpns_module);

    while (!run->exhausted && run->active < mlcf->concurrency) {

        if (ngx_exiting || ngx_terminate) {
            break;
        }

        rc = ngx_http_mpns_reader_next(run->reader, &channel, &refilled);

        if (rc != NGX_OK) {
            run->exhausted = 1;
            break;
        }

        if (refilled) {
            /* the entry knows where we are, should this worker die */
            ngx_http_mpns_outbox_progress(run, 0);
        }

        job = ngx_http_mpns_job_create(mmcf->engine, ngx_cycle->log);
        if (job == NULL) {
            run->exhausted = 1;
            break;
        }

        oj = ngx_palloc(job->pool, sizeof(ngx_http_mpns_outbox_job_t));
        if (oj == NULL) {
            ngx_http_mpns_job_cancel(job);
            run->exhausted = 1;
            break;
        }

        oj->ctx = run->ctx;
        oj->id = run->id;
        oj->run = run;
        oj->callback = 0;
        oj->channel.len = channel.len;
        oj->channel.data = ngx_pstrdup(job->pool, &channel);

        if (oj->channel.data == NULL
            || ngx_http_mpns_outbox_prepare(run->ctx, job, &oj->channel,
                                            &run->msg)
               != NGX_OK)
        {
            /* not allowed (any more), or no memory: counted as failed */
            run->counts[NGX_HTTP_MPNS_OB_SENT]++;
            run->counts[NGX_HTTP_MPNS_OB_FAILED]++;
            ngx_http_mpns_job_cancel(job);
            continue;
        }

        job->handler = ngx_http_mpns_outbox_recipient;
        job->data = oj;

        run->active++;

        ngx_http_mpns_job_start(job);
    }

    run->pumping = 0;

    if (run->active) {
        return;
    }

    if (run->exhausted) {
        ngx_http_mpns_outbox_progress(run, 1);

    } else if (ngx_exiting || ngx_terminate) {
        /* the next workers go on from the cursor */
        ngx_http_mpns_outbox_progress(run, 2);

    } else {
        return;
    }

    run->ctx->active--;
    ngx_destroy_pool(run->pool);
}


static void
ngx_http_mpns_outbox_recipient(ngx_http_mpns_job_t *job)
{
    ngx_http_mpns_outbox_job_t *oj = job->data;

    ngx_msec_t                   delay;
    ngx_uint_t                   deleted;
    ngx_http_mpns_loc_conf_t    *mlcf;
    ngx_http_mpns_main_conf_t   *mmcf;
    ngx_http_mpns_outbox_run_t  *run;

    run = oj->run;
    mlcf = run->ctx->mlcf;

    run->active--;
    run->counts[NGX_HTTP_MPNS_OB_SENT]++;

    delay = ngx_http_mpns_outbox_delay(&mlcf->outbox, job->outcome, 1);

    if (job->outcome == NGX_HTTP_MPNS_DELIVERED) {
        run->counts[NGX_HTTP_MPNS_OB_DELIVERED]++;

    } else if (job->outcome == NGX_HTTP_MPNS_EXPIRED) {
        run->counts[NGX_HTTP_MPNS_OB_EXPIRED]++;

        if (mlcf->remove_expired) {
            (void) ngx_http_mpns_registry_delete(run->reader->registry,
                                                 NGX_HTTP_MPNS_BY_CHANNEL,
                                                 &oj->channel, &deleted);
        }

    } else if (delay) {

        /* tried again on its own, as a send of the outbox */

        mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                                   ngx_http_mpns_module);

        if (ngx_http_mpns_outbox_insert(run->ctx, mmcf->engine, &job->log,
                                        &run->msg, &oj->channel, NULL,
                                        ngx_http_mpns_outbox_now() + delay,
                                        NULL)
            == NGX_OK)
        {
            run->counts[NGX_HTTP_MPNS_OB_DEFERRED]++;

        } else {
            run->counts[NGX_HTTP_MPNS_OB_FAILED]++;
        }

    } else {
        run->counts[NGX_HTTP_MPNS_OB_FAILED]++;
    }

    ngx_http_mpns_outbox_pump(run);
}


/* the cursor and the counts into the entry; "done": 1 ends it, 2 hands
 * it back to the outbox */

static void
ngx_http_mpns_outbox_progress(ngx_http_mpns_outbox_run_t *run,
    ngx_uint_t done)
{
    ngx_msec_t                    now;
    ngx_http_mpns_outbox_ctx_t   *ctx;
    ngx_http_mpns_outbox_node_t  *on;

    ctx = run->ctx;
    now = ngx_http_mpns_outbox_now();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    on = ngx_http_mpns_outbox_lookup(ctx, run->id);

    if (on && on->state == NGX_HTTP_MPNS_OB_SENDING) {
        on->cursor_hash = run->reader->cursor.hash;
        on->cursor_len = (uint16_t) run->reader->cursor.len;
        ngx_memcpy(ngx_http_mpns_outbox_cursor(on),
                   run->reader->cursor.channel, run->reader->cursor.len);
        ngx_memcpy(on->counts, run->counts, sizeof(on->counts));

        if (done == 1) {
            on->outcome = NGX_HTTP_MPNS_DELIVERED;
            ngx_http_mpns_outbox_final(ctx, on, now);

        } else if (done == 2) {
            on->state = NGX_HTTP_MPNS_OB_PENDING;
            ngx_http_mpns_outbox_schedule(ctx, on, now);

        } else {
            ngx_http_mpns_outbox_schedule(ctx, on, now + NGX_HTTP_MPNS_LEASE);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    ngx_http_mpns_outbox_changed(ctx);
}


static u_char *
ngx_http_mpns_outbox_cursor(ngx_http_mpns_outbox_node_t *on)
{
    return on->data + on->channel_len + on->content_type_len
           + on->target_len + on->body_len + on->user_len + on->tag_len
           + on->os_len;
}
