
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"
#include "ngx_http_mpns_state.h"


/*
 * The outbox: background sends in shared memory, and every lock on them.
 * Its runner (ngx_http_mpns_background.c) reaches it only through the
 * operations of ngx_http_mpns_outbox.h: add, claim what is due, update
 * a send, a result callback or a broadcast's progress, get an entry.
 *
 * Every entry is in one tree by the time it is next looked at: a pending
 * send at its scheduled time, a send in flight at the end of its lease
 * (a worker that dies mid-send leaves it to the others), a final result
 * at its next callback attempt or, once reported, when it is forgotten.
 */


#define NGX_HTTP_MPNS_OB_PENDING        0
#define NGX_HTTP_MPNS_OB_SENDING        1
#define NGX_HTTP_MPNS_OB_FINAL          2

#define NGX_HTTP_MPNS_LEASE             60000

/* a line of the state file with a 64 KB body in base64 fits */
#define NGX_HTTP_MPNS_OB_STATE_BUFFER   131072

/* an entry keeps the body's length in 16 bits */
#define NGX_HTTP_MPNS_OB_MAX_PAYLOAD    65535

/* what a state file may say of a recurring send */
#define NGX_HTTP_MPNS_OB_MAX_EVERY      2592000000
#define NGX_HTTP_MPNS_OB_MAX_TIMES      1000000


struct ngx_http_mpns_outbox_node_s {
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
    uint32_t                       removed;
    uint16_t                       removed_len;
    u_char                         removed_truncated;

    /* a recurring send: "at" is the time of this occurrence */
    ngx_msec_t                     every;     /* 0: once */
    ngx_msec_t                     until;     /* 0: none */
    ngx_msec_t                     at;
    uint32_t                       times;     /* 0: any */
    uint32_t                       runs;      /* occurrences ended */
    u_char                         cancelled;

    /*
     * channel, type, target, body; user, tag, os, cursor (1 KB), the
     * channels removed (NGX_HTTP_MPNS_REMOVED_LIST)
     */
    u_char                         data[1];
};


typedef struct {
    ngx_rbtree_t                   ids;
    ngx_rbtree_node_t              ids_sentinel;
    ngx_rbtree_t                   due;
    ngx_rbtree_node_t              due_sentinel;
    ngx_uint_t                     count;
    ngx_uint_t                     full;
    ngx_http_mpns_state_sh_t       file;
} ngx_http_mpns_outbox_shctx_t;


struct ngx_http_mpns_outbox_s {
    ngx_http_mpns_outbox_shctx_t  *sh;
    ngx_slab_pool_t               *shpool;
    ngx_shm_zone_t                *shm_zone;
    ngx_http_mpns_state_t          file;

    /* the one location that sends into it, this cycle */
    ngx_http_mpns_loc_conf_t      *mlcf;
    ngx_http_core_loc_conf_t      *clcf;

    /* per worker: posted when a send is added */
    ngx_event_t                   *added;
};


static ngx_int_t ngx_http_mpns_outbox_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_mpns_outbox_insert(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_engine_t *engine, ngx_log_t *log,
    ngx_http_mpns_message_t *msg, ngx_str_t *channel,
    ngx_http_mpns_filter_t *filter, ngx_http_mpns_recur_t *recur,
    ngx_msec_t due, u_char *id, ngx_http_mpns_store_op_t *op);
static u_char *ngx_http_mpns_outbox_cursor(ngx_http_mpns_outbox_node_t *on);
static u_char *ngx_http_mpns_outbox_removed(ngx_http_mpns_outbox_node_t *on);
static size_t ngx_http_mpns_outbox_removed_json(u_char *buf,
    ngx_http_mpns_outbox_node_t *on);
static void ngx_http_mpns_outbox_view(ngx_http_mpns_outbox_node_t *on,
    ngx_http_mpns_outbox_entry_t *e);
static void ngx_http_mpns_outbox_final(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t now);
static ngx_int_t ngx_http_mpns_outbox_again(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t now);
static void ngx_http_mpns_outbox_schedule(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t when);
static void ngx_http_mpns_outbox_journal(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on);
static void ngx_http_mpns_outbox_free(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_uint_t record);
static ngx_http_mpns_outbox_node_t *ngx_http_mpns_outbox_lookup(
    ngx_http_mpns_outbox_t *ctx, uint64_t id);
static size_t ngx_http_mpns_outbox_json(u_char *buf,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t now);
static u_char *ngx_http_mpns_outbox_time(u_char *p, ngx_msec_t ms);
static ngx_int_t ngx_http_mpns_outbox_render(ngx_http_mpns_state_t *st,
    void *cursor, ngx_buf_t *b);
static size_t ngx_http_mpns_outbox_record(u_char *buf,
    ngx_http_mpns_service_t *service, ngx_http_mpns_outbox_node_t *on);
static ngx_http_mpns_service_t *ngx_http_mpns_outbox_service(
    ngx_http_mpns_outbox_t *ctx);
static ngx_int_t ngx_http_mpns_outbox_load(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_str_t *line, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_outbox_remove(ngx_http_mpns_state_t *st,
    ngx_str_t *key);
static void ngx_http_mpns_outbox_loaded(ngx_http_mpns_state_t *st,
    ngx_log_t *log);
static ngx_int_t ngx_http_mpns_outbox_coded(ngx_http_mpns_state_t *st,
    ngx_str_t *key, ngx_http_mpns_json_tok_t *tok, ngx_str_t *name);
static ngx_int_t ngx_http_mpns_outbox_mistake(ngx_http_mpns_error_t *err,
    const char *text, char *field);


/* by NGX_HTTP_MPNS_OB_*, then as shown: given up, cancelled */
static ngx_str_t  ngx_http_mpns_outbox_states[] = {
    ngx_string("pending"),
    ngx_string("sending"),
    ngx_string("done"),
    ngx_string("expired"),
    ngx_string("cancelled")
};


/*
 * State files written before names were persisted had numbers for the
 * state, the outcome and the type (a bit: its index here).  What they
 * meant then, whatever the numbers of today.
 */

static ngx_str_t  ngx_http_mpns_outbox_old_states[] = {
    ngx_string("pending"),
    ngx_string("sending"),
    ngx_string("done"),
    ngx_null_string
};


static ngx_str_t  ngx_http_mpns_outbox_old_outcomes[] = {
    ngx_string("delivered"),
    ngx_string("queue_full"),
    ngx_string("suppressed"),
    ngx_string("dropped"),
    ngx_string("bad_request"),
    ngx_string("unauthorized"),
    ngx_string("forbidden"),
    ngx_string("expired"),
    ngx_string("method_not_allowed"),
    ngx_string("throttled"),
    ngx_string("device_inactive"),
    ngx_string("unavailable"),
    ngx_string("transport_error"),
    ngx_string("timeout"),
    ngx_string("refused"),
    ngx_string("tls_handshake_failed"),
    ngx_string("tls_verify_failed"),
    ngx_string("certificate_rejected"),
    ngx_null_string
};


static ngx_str_t  ngx_http_mpns_outbox_old_types[] = {
    ngx_string("toast"),
    ngx_string("tile"),
    ngx_string("flip"),
    ngx_string("cycle"),
    ngx_string("iconic"),
    ngx_string("raw"),
    ngx_string("callback"),
    ngx_null_string
};


static ngx_http_mpns_state_format_t  ngx_http_mpns_outbox_format = {
    ngx_string("outbox"),
    ngx_http_mpns_outbox_load,
    ngx_http_mpns_outbox_remove,
    ngx_http_mpns_outbox_loaded,
    ngx_http_mpns_outbox_render,
    sizeof(uint64_t),
    NGX_HTTP_MPNS_OB_STATE_BUFFER
};


char *
ngx_http_mpns_outbox_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_main_conf_t *mmcf = conf;

    ssize_t                      size;
    ngx_str_t                   *value, name, state;
    ngx_shm_zone_t              *shm_zone, **zones;
    ngx_http_mpns_outbox_t  *ctx;

    value = cf->args->elts;

    if (ngx_http_mpns_zone_param(cf, &value[1], &name, &size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_outbox_t));
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

        state.data = value[2].data + 6;
        state.len = value[2].len - 6;

        if (ngx_http_mpns_state_path(cf, &ctx->file, &state, &mmcf->journal)
            != NGX_CONF_OK)
        {
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
    ctx->file.format = &ngx_http_mpns_outbox_format;
    ctx->file.data = ctx;
    ctx->file.shm_zone = shm_zone;

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
    oc->min_interval = NGX_CONF_UNSET_MSEC;
}


char *
ngx_http_mpns_outbox_merge_conf(ngx_conf_t *cf, void *conf,
    ngx_http_mpns_outbox_conf_t *oc, ngx_http_mpns_outbox_conf_t *prev)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_http_mpns_outbox_t  *ctx;

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
    ngx_conf_merge_msec_value(oc->min_interval, prev->min_interval, 60000);

    if (oc->min_interval < 1000) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mpns_min_interval\" must be at least 1s");
        return NGX_CONF_ERROR;
    }

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

    if (mlcf->max_payload_size > NGX_HTTP_MPNS_OB_MAX_PAYLOAD) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"mpns_max_payload_size\" must be less than 64k "
                           "with \"mpns_outbox\"");
        return NGX_CONF_ERROR;
    }

    ctx->mlcf = mlcf;
    ctx->clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_mpns_outbox_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mpns_outbox_t *octx = data;

    size_t                   len;
    ngx_http_mpns_outbox_t  *ctx, *old;

    ctx = shm_zone->data;

    if (ngx_http_mpns_state_check(&ctx->file) != NGX_OK) {
        return NGX_ERROR;
    }

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        ctx->file.sh = &ctx->sh->file;
        ctx->file.shpool = ctx->shpool;
        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ctx->sh = ngx_slab_calloc(ctx->shpool,
                              sizeof(ngx_http_mpns_outbox_shctx_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;
    ctx->file.sh = &ctx->sh->file;
    ctx->file.shpool = ctx->shpool;

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

    /* resized on reload: the old zone's workers leave the files to us */

    old = ngx_http_mpns_state_previous(shm_zone);

    return ngx_http_mpns_state_load(&ctx->file, old ? &old->file : NULL,
                                    shm_zone->shm.log);
}


ngx_msec_t
ngx_http_mpns_outbox_now(void)
{
    ngx_time_t  *tp;

    tp = ngx_timeofday();

    return (ngx_msec_t) tp->sec * 1000 + tp->msec;
}


ngx_int_t
ngx_http_mpns_outbox_add(ngx_shm_zone_t *zone, ngx_http_mpns_message_t *msg,
    ngx_str_t *channel, ngx_http_mpns_filter_t *filter,
    ngx_http_mpns_recur_t *recur, ngx_msec_t due, u_char *id,
    ngx_http_mpns_store_op_t *op)
{
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(ngx_cycle,
                                               ngx_http_mpns_module);

    return ngx_http_mpns_outbox_insert(zone->data, mmcf->engine, op->log,
                                       msg, channel, filter, recur, due, id,
                                       op);
}


static ngx_int_t
ngx_http_mpns_outbox_insert(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_engine_t *engine, ngx_log_t *log,
    ngx_http_mpns_message_t *msg, ngx_str_t *channel,
    ngx_http_mpns_filter_t *filter, ngx_http_mpns_recur_t *recur,
    ngx_msec_t due, u_char *id, ngx_http_mpns_store_op_t *op)
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
                + NGX_HTTP_MPNS_MAX_CHANNEL + NGX_HTTP_MPNS_REMOVED_LIST;
    }

    ngx_shmtx_lock(&ctx->shpool->mutex);

    if (ngx_http_mpns_state_retired(&ctx->file)) {
        /* the new zone, loaded already, would not have it */
        ngx_shmtx_unlock(&ctx->shpool->mutex);

        ngx_log_error(NGX_LOG_ERR, log, 0,
                      "mpns outbox zone \"%V\" was resized on reload, "
                      "a send through an old worker refused",
                      &ctx->shm_zone->shm.name);
        return NGX_ERROR;
    }

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

    /* a broadcast has no channel, a raw notification no target */

    p = ngx_http_mpns_cpymem(on->data, channel->data, channel->len);
    p = ngx_cpymem(p, msg->content_type.data, msg->content_type.len);
    p = ngx_http_mpns_cpymem(p, msg->target.data, msg->target.len);
    p = ngx_cpymem(p, msg->body.data, msg->body.len);

    if (filter) {
        on->broadcast = 1;
        on->user_len = (u_char) filter->user.len;
        on->tag_len = (u_char) filter->tag.len;
        on->os_len = (u_char) filter->os.len;

        p = ngx_http_mpns_cpymem(p, filter->user.data, filter->user.len);
        p = ngx_http_mpns_cpymem(p, filter->tag.data, filter->tag.len);
        (void) ngx_http_mpns_cpymem(p, filter->os.data, filter->os.len);
    }

    if (recur) {
        on->every = recur->every;
        on->until = recur->until;
        on->times = (uint32_t) recur->times;
    }

    on->at = due;

    ngx_rbtree_insert(&ctx->sh->ids, &on->node);

    on->due.key = (ngx_rbtree_key_t) due;
    ngx_rbtree_insert(&ctx->sh->due, &on->due);

    ctx->sh->count++;

    ngx_http_mpns_outbox_journal(ctx, on);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (id) {
        ngx_sprintf(id, "%016xL", key);
    }

    /* this worker looks at once; the others on their next turn */

    if (ctx->added && !ctx->added->posted) {
        ngx_post_event(ctx->added, &ngx_posted_events);
    }

    return ngx_http_mpns_state_commit(&ctx->file, op, NGX_OK);
}


ngx_int_t
ngx_http_mpns_outbox_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_shm_zone_t             **zones;
    ngx_http_mpns_main_conf_t   *mmcf;
    ngx_http_mpns_outbox_t  *ctx;

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

        if (ngx_http_mpns_state_init_process(&ctx->file, cycle) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


void
ngx_http_mpns_outbox_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                   i;
    ngx_shm_zone_t             **zones;
    ngx_http_mpns_main_conf_t   *mmcf;
    ngx_http_mpns_outbox_t  *ctx;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mpns_module);

    if (mmcf == NULL) {
        return;
    }

    zones = mmcf->outboxes.elts;

    for (i = 0; i < mmcf->outboxes.nelts; i++) {
        ctx = zones[i]->data;
        ngx_http_mpns_state_exit_process(&ctx->file, cycle);
    }
}


/*
 * Entries due now, at most "max": a send or a broadcast to make, a result
 * to report; "handler" returns NGX_OK to take one (it is leased to this
 * worker), NGX_DECLINED to leave it.  What is given up or forgotten is
 * done here.  "claimed" counts the entries taken.
 */

ngx_int_t
ngx_http_mpns_outbox_claim(ngx_http_mpns_outbox_t *ctx, ngx_uint_t max,
    ngx_http_mpns_outbox_claim_pt handler, void *data, ngx_uint_t *claimed,
    ngx_http_mpns_store_op_t *op)
{
    ngx_int_t                      rc;
    ngx_uint_t                     n;
    ngx_msec_t                     now, age;
    ngx_rbtree_node_t             *node, *next, *sentinel;
    ngx_http_mpns_outbox_conf_t   *oc;
    ngx_http_mpns_outbox_node_t   *on;
    ngx_http_mpns_outbox_entry_t   e;

    n = 0;
    *claimed = 0;
    now = ngx_http_mpns_outbox_now();
    oc = &ctx->mlcf->outbox;
    sentinel = ctx->sh->due.sentinel;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    node = (ctx->sh->due.root == sentinel)
           ? NULL : ngx_rbtree_min(ctx->sh->due.root, sentinel);

    /* what is forgotten or given up is bounded too, per lock hold */

    while (node && (ngx_msec_t) node->key <= now && *claimed < max
           && n < 8 * max)
    {

        next = ngx_rbtree_next(&ctx->sh->due, node);

        on = ngx_rbtree_data(node, ngx_http_mpns_outbox_node_t, due);
        node = next;

        /*
         * a send is as old as the time it was to be made: its creation,
         * its "delay" or "send_at", a recurring send's occurrence
         */
        age = (now > on->at) ? now - on->at : 0;
        n++;

        if (on->state != NGX_HTTP_MPNS_OB_FINAL && age >= oc->max_age) {
            /* the service never took it in time */
            on->gave_up = 1;
            ngx_http_mpns_outbox_final(ctx, on, now);
            continue;
        }

        if (on->state == NGX_HTTP_MPNS_OB_FINAL && on->reported) {
            /* kept long enough */
            ngx_http_mpns_outbox_free(ctx, on, 1);
            continue;
        }

        if (on->state == NGX_HTTP_MPNS_OB_FINAL && oc->callback == NULL) {
            /* no longer reported since a reload */
            on->reported = 1;
            ngx_http_mpns_outbox_schedule(ctx, on, now + oc->keep);
            continue;
        }

        if (on->state == NGX_HTTP_MPNS_OB_FINAL
            && age >= oc->max_age + oc->keep)
        {
            ngx_log_error(NGX_LOG_ERR, op->log, 0,
                          "mpns result callback for %016xL given up "
                          "after %ui tries", (uint64_t) on->node.key,
                          (ngx_uint_t) on->callbacks);
            on->reported = 1;
            ngx_http_mpns_outbox_schedule(ctx, on, now + oc->keep);
            continue;
        }

        if (on->every && on->state == NGX_HTTP_MPNS_OB_PENDING
            && on->attempts == 0)
        {
            /* a new occurrence: the last one's counts were shown so far */
            ngx_memzero(on->counts, sizeof(on->counts));
            on->removed = 0;
            on->removed_len = 0;
            on->removed_truncated = 0;
        }

        ngx_http_mpns_outbox_view(on, &e);

        rc = handler(&e, data);

        if (rc == NGX_ERROR) {
            break;
        }

        if (rc != NGX_OK) {
            continue;
        }

        if (on->state == NGX_HTTP_MPNS_OB_FINAL) {
            on->callbacks++;

        } else {
            on->state = NGX_HTTP_MPNS_OB_SENDING;
            on->attempts++;
        }

        ngx_http_mpns_outbox_schedule(ctx, on, now + NGX_HTTP_MPNS_LEASE);

        (*claimed)++;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    /* nothing is sent before its claim is kept: see docs/design.md */

    return ngx_http_mpns_state_commit(&ctx->file, *claimed ? op : NULL,
                                      NGX_OK);
}


/*
 * A send's answer: "outcome" and "status" kept, then pending again in
 * "delay" ms, or final with a delay of 0.  NGX_DECLINED: the entry is not
 * this worker's send any more.
 */

ngx_int_t
ngx_http_mpns_outbox_sent(ngx_http_mpns_outbox_t *ctx, uint64_t id,
    ngx_uint_t outcome, ngx_uint_t status, ngx_msec_t delay,
    ngx_http_mpns_store_op_t *op)
{
    ngx_msec_t                    now;
    ngx_http_mpns_outbox_node_t  *on;

    now = ngx_http_mpns_outbox_now();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    on = ngx_http_mpns_outbox_lookup(ctx, id);

    if (on == NULL || on->state != NGX_HTTP_MPNS_OB_SENDING) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_DECLINED;
    }

    on->outcome = (u_char) outcome;
    on->status = (uint16_t) status;

    if (delay && !on->cancelled) {
        on->state = NGX_HTTP_MPNS_OB_PENDING;
        ngx_http_mpns_outbox_schedule(ctx, on, now + delay);

    } else {
        ngx_http_mpns_outbox_final(ctx, on, now);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return ngx_http_mpns_state_commit(&ctx->file, op, NGX_OK);
}


/* a result callback's answer: reported, or tried again in "delay" ms */

ngx_int_t
ngx_http_mpns_outbox_reported(ngx_http_mpns_outbox_t *ctx, uint64_t id,
    ngx_uint_t reported, ngx_msec_t delay, ngx_http_mpns_store_op_t *op)
{
    ngx_msec_t                    now;
    ngx_http_mpns_outbox_node_t  *on;

    now = ngx_http_mpns_outbox_now();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    on = ngx_http_mpns_outbox_lookup(ctx, id);

    if (on == NULL || on->reported) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_DECLINED;
    }

    if (reported) {
        on->reported = 1;
        ngx_http_mpns_outbox_schedule(ctx, on, now + ctx->mlcf->outbox.keep);

    } else {
        ngx_http_mpns_outbox_schedule(ctx, on, now + delay);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return ngx_http_mpns_state_commit(&ctx->file, op, NGX_OK);
}


/*
 * A broadcast's cursor and counts into its entry, the lease renewed;
 * "done": NGX_HTTP_MPNS_OB_GOING, _DONE (final), _BACK (pending again,
 * for the next workers).
 */

ngx_int_t
ngx_http_mpns_outbox_progress(ngx_http_mpns_outbox_t *ctx, uint64_t id,
    ngx_http_mpns_cursor_t *cursor, uint32_t *counts,
    ngx_http_mpns_removed_t *removed, ngx_uint_t done,
    ngx_http_mpns_store_op_t *op)
{
    ngx_msec_t                    now;
    ngx_http_mpns_outbox_node_t  *on;

    now = ngx_http_mpns_outbox_now();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    on = ngx_http_mpns_outbox_lookup(ctx, id);

    if (on == NULL || on->state != NGX_HTTP_MPNS_OB_SENDING) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_DECLINED;
    }

    if (cursor) {
        on->cursor_hash = cursor->hash;
        on->cursor_len = (uint16_t) cursor->len;
        ngx_memcpy(ngx_http_mpns_outbox_cursor(on), cursor->channel,
                   cursor->len);
        ngx_memcpy(on->counts, counts, sizeof(on->counts));
    }

    if (removed && on->broadcast) {
        on->removed = (uint32_t) removed->count;
        on->removed_len = (uint16_t) ngx_min(removed->list.len,
                                             NGX_HTTP_MPNS_REMOVED_LIST);
        on->removed_truncated = (u_char) removed->truncated;
        ngx_memcpy(ngx_http_mpns_outbox_removed(on), removed->list.data,
                   on->removed_len);
    }

    if (done == NGX_HTTP_MPNS_OB_DONE) {
        on->outcome = NGX_HTTP_MPNS_DELIVERED;
        ngx_http_mpns_outbox_final(ctx, on, now);

    } else if (done == NGX_HTTP_MPNS_OB_BACK && on->cancelled) {
        ngx_http_mpns_outbox_final(ctx, on, now);

    } else if (done == NGX_HTTP_MPNS_OB_BACK) {
        on->state = NGX_HTTP_MPNS_OB_PENDING;
        ngx_http_mpns_outbox_schedule(ctx, on, now);

    } else {
        ngx_http_mpns_outbox_schedule(ctx, on, now + NGX_HTTP_MPNS_LEASE);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return ngx_http_mpns_state_commit(&ctx->file, op, NGX_OK);
}


/* an entry as JSON in "pool": NGX_OK, NGX_DECLINED if there is none */

ngx_int_t
ngx_http_mpns_outbox_get(ngx_http_mpns_outbox_t *ctx, ngx_str_t *id,
    ngx_pool_t *pool, ngx_str_t *json, ngx_http_mpns_store_op_t *op)
{
    uint64_t                      key;
    ngx_int_t                     rc;
    ngx_msec_t                    now;
    ngx_http_mpns_outbox_node_t  *on;

    if (ngx_http_mpns_outbox_parse_id(id, &key) != NGX_OK) {
        return NGX_DECLINED;
    }

    rc = NGX_DECLINED;
    now = ngx_http_mpns_outbox_now();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    on = ngx_http_mpns_outbox_lookup(ctx, key);

    if (on) {
        json->data = ngx_pnalloc(pool,
                                 ngx_http_mpns_outbox_json(NULL, on, now));

        if (json->data) {
            json->len = ngx_http_mpns_outbox_json(json->data, on, now);
            rc = NGX_OK;

        } else {
            rc = NGX_ERROR;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


/*
 * DELETE: an entry not sent yet is final, cancelled, and not reported; an
 * occurrence being sent ends, and no other follows.  NGX_OK with the
 * entry as JSON in "pool", NGX_DECLINED if there is none, NGX_BUSY if it
 * had ended.
 */

ngx_int_t
ngx_http_mpns_outbox_cancel(ngx_http_mpns_outbox_t *ctx, ngx_str_t *id,
    ngx_pool_t *pool, ngx_str_t *json, ngx_http_mpns_store_op_t *op)
{
    uint64_t                      key;
    ngx_msec_t                    now;
    ngx_http_mpns_outbox_node_t  *on;

    if (ngx_http_mpns_outbox_parse_id(id, &key) != NGX_OK) {
        return NGX_DECLINED;
    }

    now = ngx_http_mpns_outbox_now();

    ngx_shmtx_lock(&ctx->shpool->mutex);

    on = ngx_http_mpns_outbox_lookup(ctx, key);

    if (on == NULL || on->state == NGX_HTTP_MPNS_OB_FINAL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return on ? NGX_BUSY : NGX_DECLINED;
    }

    on->cancelled = 1;

    if (on->state == NGX_HTTP_MPNS_OB_PENDING) {
        on->state = NGX_HTTP_MPNS_OB_FINAL;
        on->finished = now;
        on->reported = 1;
        ngx_http_mpns_outbox_schedule(ctx, on, now + ctx->mlcf->outbox.keep);

    } else {
        ngx_http_mpns_outbox_journal(ctx, on);
    }

    json->data = ngx_pnalloc(pool, ngx_http_mpns_outbox_json(NULL, on, now));

    if (json->data) {
        json->len = ngx_http_mpns_outbox_json(json->data, on, now);
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return ngx_http_mpns_state_commit(&ctx->file, op,
                                      json->data ? NGX_OK : NGX_ERROR);
}


/*
 * The recurring sends the outbox keeps, as {"recurring":[...]} in "pool",
 * by id; every entry is looked at, under the zone lock
 */

ngx_int_t
ngx_http_mpns_outbox_list(ngx_http_mpns_outbox_t *ctx, ngx_pool_t *pool,
    ngx_str_t *json)
{
    u_char                       *p;
    size_t                        len;
    ngx_msec_t                    now;
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_mpns_outbox_node_t  *on;

    now = ngx_http_mpns_outbox_now();
    sentinel = ctx->sh->ids.sentinel;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    len = sizeof("{\"recurring\":[]}\n") - 1;

    node = (ctx->sh->ids.root == sentinel)
           ? NULL : ngx_rbtree_min(ctx->sh->ids.root, sentinel);

    for ( /* void */ ; node; node = ngx_rbtree_next(&ctx->sh->ids, node)) {
        on = (ngx_http_mpns_outbox_node_t *) node;

        if (on->every) {
            /* a comma for its line feed */
            len += ngx_http_mpns_outbox_json(NULL, on, now);
        }
    }

    p = ngx_pnalloc(pool, len);

    if (p == NULL) {
        ngx_shmtx_unlock(&ctx->shpool->mutex);
        return NGX_ERROR;
    }

    json->data = p;
    p = ngx_cpymem(p, "{\"recurring\":[", sizeof("{\"recurring\":[") - 1);

    node = (ctx->sh->ids.root == sentinel)
           ? NULL : ngx_rbtree_min(ctx->sh->ids.root, sentinel);

    for ( /* void */ ; node; node = ngx_rbtree_next(&ctx->sh->ids, node)) {
        on = (ngx_http_mpns_outbox_node_t *) node;

        if (on->every) {
            p += ngx_http_mpns_outbox_json(p, on, now);
            p[-1] = ',';
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    if (p[-1] == ',') {
        p--;
    }

    p = ngx_cpymem(p, "]}\n", sizeof("]}\n") - 1);

    json->len = p - json->data;

    return NGX_OK;
}


/* the entry's JSON, as GET shows it, for a result callback's body */

size_t
ngx_http_mpns_outbox_result(ngx_http_mpns_outbox_entry_t *e, u_char *buf)
{
    return ngx_http_mpns_outbox_json(buf, e->node,
                                     ngx_http_mpns_outbox_now());
}


/* a look at an entry, valid while the zone is locked */

static void
ngx_http_mpns_outbox_view(ngx_http_mpns_outbox_node_t *on,
    ngx_http_mpns_outbox_entry_t *e)
{
    u_char  *p;

    ngx_memzero(e, sizeof(ngx_http_mpns_outbox_entry_t));

    e->node = on;
    e->id = on->node.key;
    e->attempts = on->attempts;
    e->callbacks = on->callbacks;
    e->report = (on->state == NGX_HTTP_MPNS_OB_FINAL);
    e->broadcast = on->broadcast;

    p = on->data;

    e->channel.data = p;
    e->channel.len = on->channel_len;
    p += on->channel_len;

    e->msg.type = on->type;
    e->msg.notification_class = on->notification_class;
    e->msg.content_type.data = p;
    e->msg.content_type.len = on->content_type_len;
    p += on->content_type_len;
    e->msg.target.data = p;
    e->msg.target.len = on->target_len;
    p += on->target_len;
    e->msg.body.data = p;
    e->msg.body.len = on->body_len;
    p += on->body_len;
    e->msg.message_id.data = on->message_id;
    e->msg.message_id.len = 36;

    e->filter.user.data = p;
    e->filter.user.len = on->user_len;
    p += on->user_len;
    e->filter.tag.data = p;
    e->filter.tag.len = on->tag_len;
    p += on->tag_len;
    e->filter.os.data = p;
    e->filter.os.len = on->os_len;
    p += on->os_len;

    e->cursor_hash = on->cursor_hash;
    e->cursor.data = p;
    e->cursor.len = on->cursor_len;

    if (on->broadcast) {
        e->removed.list.data = ngx_http_mpns_outbox_removed(on);
        e->removed.list.len = on->removed_len;
        e->removed.count = on->removed;
        e->removed.truncated = on->removed_truncated;
    }

    ngx_memcpy(e->counts, on->counts, sizeof(e->counts));
}


/* the event this worker's runner wants posted when a send is added */

void
ngx_http_mpns_outbox_watch(ngx_http_mpns_outbox_t *ctx, ngx_event_t *ev)
{
    ctx->added = ev;
}


/* the one location that sends from the outbox */

ngx_http_mpns_loc_conf_t *
ngx_http_mpns_outbox_location(ngx_http_mpns_outbox_t *ctx,
    ngx_http_core_loc_conf_t **clcf)
{
    if (clcf) {
        *clcf = ctx->clcf;
    }

    return ctx->mlcf;
}


/* called with the zone locked */

static void
ngx_http_mpns_outbox_final(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t now)
{
    if (on->every) {
        on->runs++;

        if (ngx_http_mpns_outbox_again(ctx, on, now) == NGX_OK) {
            return;
        }
    }

    on->state = NGX_HTTP_MPNS_OB_FINAL;
    on->finished = now;

    /* the application knows what it cancelled */

    if (ctx->mlcf->outbox.callback && !on->cancelled) {
        on->reported = 0;
        ngx_http_mpns_outbox_schedule(ctx, on, now);

    } else {
        on->reported = 1;
        ngx_http_mpns_outbox_schedule(ctx, on, now + ctx->mlcf->outbox.keep);
    }
}


/*
 * The next occurrence of a recurring send, called with the zone locked:
 * on its schedule, "every" after the last one's time, not after its end;
 * occurrences whose time passed (nginx was stopped, the sends took long)
 * are skipped.  NGX_DECLINED: the series has ended.
 */

static ngx_int_t
ngx_http_mpns_outbox_again(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t now)
{
    ngx_msec_t  next;

    if (on->cancelled || (on->times && on->runs >= on->times)) {
        return NGX_DECLINED;
    }

    next = on->at + on->every;

    if (next <= now) {
        next += ((now - next) / on->every + 1) * on->every;
    }

    if (on->until && next > on->until) {
        return NGX_DECLINED;
    }

    on->at = next;
    on->state = NGX_HTTP_MPNS_OB_PENDING;
    on->attempts = 0;
    on->gave_up = 0;
    on->cursor_hash = 0;
    on->cursor_len = 0;

    ngx_http_mpns_outbox_schedule(ctx, on, next);

    return NGX_OK;
}


static void
ngx_http_mpns_outbox_schedule(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_msec_t when)
{
    ngx_rbtree_delete(&ctx->sh->due, &on->due);

    on->due.key = (ngx_rbtree_key_t) when;
    ngx_rbtree_insert(&ctx->sh->due, &on->due);

    /* every change of an entry ends here */

    ngx_http_mpns_outbox_journal(ctx, on);
}


/* called with the zone locked: the entry as it is now, into the journal */

static void
ngx_http_mpns_outbox_journal(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on)
{
    u_char                   *p;
    size_t                    len;
    ngx_http_mpns_service_t  *service;

    service = ngx_http_mpns_outbox_service(ctx);

    p = ngx_http_mpns_state_record(&ctx->file, NGX_HTTP_MPNS_RECORD_SET,
                                   ngx_http_mpns_outbox_record(NULL, service,
                                                               on));
    if (p == NULL) {
        return;
    }

    /* without its line feed */

    len = ngx_http_mpns_outbox_record(p, service, on);

    ngx_http_mpns_state_recorded(&ctx->file, p + len - 1);
}


/* called with the zone locked */

static void
ngx_http_mpns_outbox_free(ngx_http_mpns_outbox_t *ctx,
    ngx_http_mpns_outbox_node_t *on, ngx_uint_t record)
{
    u_char  *p;

    if (record) {
        p = ngx_http_mpns_state_record(&ctx->file,
                                       NGX_HTTP_MPNS_RECORD_REMOVE,
                                       NGX_HTTP_MPNS_ID_LEN);
        if (p) {
            ngx_http_mpns_state_recorded(&ctx->file,
                                         ngx_sprintf(p, "%016xL",
                                                     (uint64_t) on->node.key));
        }
    }

    ngx_rbtree_delete(&ctx->sh->due, &on->due);
    ngx_rbtree_delete(&ctx->sh->ids, &on->node);
    ngx_slab_free_locked(ctx->shpool, on);

    ctx->sh->count--;
    ctx->sh->full = 0;
}


static ngx_http_mpns_outbox_node_t *
ngx_http_mpns_outbox_lookup(ngx_http_mpns_outbox_t *ctx, uint64_t id)
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
ngx_http_mpns_outbox_json(u_char *buf, ngx_http_mpns_outbox_node_t *on,
    ngx_msec_t now)
{
    u_char                   *p;
    ngx_str_t                 channel, *state;
    ngx_http_mpns_outcome_t  *o;

    channel.data = on->data;
    channel.len = on->channel_len;

    state = &ngx_http_mpns_outbox_states[on->gave_up ? 3 : on->state];

    if (on->cancelled) {
        /* an occurrence in flight ends, none follows */
        state = &ngx_http_mpns_outbox_states[4];
    }

    /* a recurring send's pending again: the last occurrence's */
    o = (on->state == NGX_HTTP_MPNS_OB_FINAL || on->attempts || on->runs)
        ? ngx_http_mpns_outcome(on->outcome) : NULL;

    if (buf == NULL) {
        return sizeof("{\"id\":\"\",\"state\":\"\",\"channel\":,"
                      "\"message_id\":\"\",\"attempts\":,\"outcome\":,"
                      "\"status\":}\n") - 1
               + NGX_HTTP_MPNS_ID_LEN + state->len
               + ngx_http_mpns_json_str_len(&channel) + 36
               + NGX_INT_T_LEN + sizeof("\"\"") - 1 + 32 + NGX_INT_T_LEN
               + sizeof(",\"sent\":,\"delivered\":,\"expired\":,"
                        "\"failed\":,\"deferred\":") + 5 * NGX_INT_T_LEN
               + sizeof(",\"every\":,\"times\":,\"until\":\"\","
                        "\"runs\":,\"due_in_ms\":")
               + 4 * NGX_INT64_LEN + sizeof("1970-01-01T00:00:00.000Z")
               + (on->broadcast
                  ? sizeof(",\"removed\":,\"removed_channels\":[],"
                           "\"removed_truncated\":false") + NGX_INT_T_LEN
                    + ngx_http_mpns_outbox_removed_json(NULL, on)
                  : 0);
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

        p = ngx_sprintf(p, ",\"removed\":%uD,\"removed_channels\":[",
                        on->removed);
        p += ngx_http_mpns_outbox_removed_json(p, on);
        p = ngx_sprintf(p, "],\"removed_truncated\":%s",
                        on->removed_truncated ? "true" : "false");
    }
    p = ngx_sprintf(p, ",\"message_id\":\"%*s\",\"attempts\":%ui,"
                       "\"outcome\":", (size_t) 36, on->message_id,
                    (ngx_uint_t) on->attempts);

    p = o ? ngx_sprintf(p, "\"%V\"", &o->name)
          : ngx_cpymem(p, "null", 4);

    p = ngx_cpymem(p, ",\"status\":", sizeof(",\"status\":") - 1);
    p = on->status ? ngx_sprintf(p, "%ui", (ngx_uint_t) on->status)
                   : ngx_cpymem(p, "null", 4);

    if (on->every) {
        p = ngx_sprintf(p, ",\"every\":%M,\"times\":", on->every / 1000);
        p = on->times ? ngx_sprintf(p, "%uD", on->times)
                      : ngx_cpymem(p, "null", 4);

        p = ngx_cpymem(p, ",\"until\":", sizeof(",\"until\":") - 1);
        p = on->until ? ngx_http_mpns_outbox_time(p, on->until)
                      : ngx_cpymem(p, "null", 4);

        p = ngx_sprintf(p, ",\"runs\":%uD,\"due_in_ms\":", on->runs);

        if (on->state == NGX_HTTP_MPNS_OB_PENDING) {
            p = ngx_sprintf(p, "%M", (ngx_msec_t) on->due.key > now
                                     ? (ngx_msec_t) on->due.key - now : 0);

        } else {
            p = ngx_cpymem(p, "null", 4);
        }
    }

    *p++ = '}';
    *p++ = LF;

    return p - buf;
}


/* "2026-12-02T16:00:00Z", with milliseconds if any, quoted */

static u_char *
ngx_http_mpns_outbox_time(u_char *p, ngx_msec_t ms)
{
    ngx_tm_t  tm;

    ngx_gmtime((time_t) (ms / 1000), &tm);

    p = ngx_sprintf(p, "\"%4d-%02d-%02dT%02d:%02d:%02d",
                    tm.ngx_tm_year, tm.ngx_tm_mon, tm.ngx_tm_mday,
                    tm.ngx_tm_hour, tm.ngx_tm_min, tm.ngx_tm_sec);

    if (ms % 1000) {
        p = ngx_sprintf(p, ".%03M", ms % 1000);
    }

    return ngx_cpymem(p, "Z\"", 2);
}


ngx_int_t
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


/* the state file, a buffer at a time; see ngx_http_mpns_state_render_pt */

static ngx_int_t
ngx_http_mpns_outbox_render(ngx_http_mpns_state_t *st, void *cursor,
    ngx_buf_t *b)
{
    uint64_t *last = cursor;   /* the id of the last record rendered */

    ngx_int_t                     rc;
    ngx_rbtree_node_t            *node, *found, *sentinel;
    ngx_http_mpns_service_t      *service;
    ngx_http_mpns_outbox_t   *ctx;
    ngx_http_mpns_outbox_node_t  *on;

    ctx = st->data;
    service = ngx_http_mpns_outbox_service(ctx);
    rc = NGX_OK;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for ( ;; ) {

        /* the first entry with an id above the cursor */

        node = ctx->sh->ids.root;
        sentinel = ctx->sh->ids.sentinel;
        found = NULL;

        while (node != sentinel) {
            if ((uint64_t) node->key > *last) {
                found = node;
                node = node->left;

            } else {
                node = node->right;
            }
        }

        if (found == NULL) {
            break;
        }

        on = (ngx_http_mpns_outbox_node_t *) found;

        if ((size_t) (b->end - b->last)
            < ngx_http_mpns_outbox_record(NULL, service, on))
        {
            rc = NGX_AGAIN;
            break;
        }

        b->last += ngx_http_mpns_outbox_record(b->last, service, on);
        *last = on->node.key;
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


/*
 * One line of the state file; with buf NULL, an upper bound of its length.
 * The state, the outcome (null before the first answer, as in the status
 * answer) and the type are written as their names.
 */

static size_t
ngx_http_mpns_outbox_record(u_char *buf, ngx_http_mpns_service_t *service,
    ngx_http_mpns_outbox_node_t *on)
{
    u_char                   *p;
    size_t                    len;
    ngx_str_t                 s, b64, *state, *type, none;
    ngx_http_mpns_outcome_t  *o;

    ngx_str_null(&none);

    state = &ngx_http_mpns_outbox_states[on->state];

    /* a recurring send's pending again: the last occurrence's */
    o = (on->state == NGX_HTTP_MPNS_OB_FINAL || on->attempts || on->runs)
        ? ngx_http_mpns_outcome(on->outcome) : NULL;

    /* an unknown type is written empty: that line is skipped when read */
    type = service->type_name(on->type);
    if (type == NULL) {
        type = &none;
    }

    if (buf == NULL) {
        len = 0;

        if (on->broadcast) {
            s.len = on->removed_len;
            s.data = ngx_http_mpns_outbox_removed(on);
            len = ngx_http_mpns_json_str_len(&s);
        }

        s.len = on->channel_len;
        s.data = on->data;

        return sizeof("{\"id\":\"\",\"state\":\"\",\"created\":,\"due\":,"
                      "\"finished\":,\"attempts\":,\"callbacks\":,"
                      "\"status\":,\"outcome\":\"\",\"reported\":,"
                      "\"gave_up\":,\"type\":\"\",\"class\":,"
                      "\"message_id\":\"\",\"channel\":,\"content_type\":,"
                      "\"target\":,\"body\":\"\"}\n")
               + NGX_HTTP_MPNS_ID_LEN + 9 * NGX_INT64_LEN + 36
               + state->len + (o ? o->name.len : 4) + type->len
               + ngx_http_mpns_json_str_len(&s)
               + 2 * (on->content_type_len + on->target_len) + 4
               + ngx_base64_encoded_length(on->body_len)
               + sizeof(",\"broadcast\":,\"cursor_hash\":,\"sent\":,"
                        "\"delivered\":,\"expired\":,\"failed\":,"
                        "\"deferred\":,\"user\":,\"tag\":,\"os\":,"
                        "\"cursor\":") + 7 * NGX_INT_T_LEN
               + 6 * (on->user_len + on->tag_len + on->os_len
                      + on->cursor_len) + 8
               + sizeof(",\"every\":,\"times\":,\"until\":,\"at\":,"
                        "\"runs\":,\"cancelled\":") + 6 * NGX_INT64_LEN
               + sizeof(",\"removed\":,\"removed_truncated\":,"
                        "\"removed_list\":") + 2 * NGX_INT_T_LEN + len;
    }

    p = ngx_sprintf(buf, "{\"id\":\"%016xL\",\"state\":\"%V\",\"created\":%M,"
                         "\"due\":%M,\"finished\":%M,\"attempts\":%ui,"
                         "\"callbacks\":%ui,\"status\":%ui,\"outcome\":",
                    (uint64_t) on->node.key, state, on->created,
                    (ngx_msec_t) on->due.key, on->finished,
                    (ngx_uint_t) on->attempts, (ngx_uint_t) on->callbacks,
                    (ngx_uint_t) on->status);

    p = o ? ngx_sprintf(p, "\"%V\"", &o->name)
          : ngx_cpymem(p, "null", 4);

    p = ngx_sprintf(p, ",\"reported\":%ui,\"gave_up\":%ui,\"type\":\"%V\","
                       "\"class\":%ui,\"message_id\":\"%*s\",\"channel\":",
                    (ngx_uint_t) on->reported, (ngx_uint_t) on->gave_up,
                    type, (ngx_uint_t) on->notification_class, (size_t) 36,
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

        p = ngx_sprintf(p, ",\"removed\":%uD,\"removed_truncated\":%ui,"
                           "\"removed_list\":",
                        on->removed, (ngx_uint_t) on->removed_truncated);
        s.data = ngx_http_mpns_outbox_removed(on);
        s.len = on->removed_len;
        p = ngx_http_mpns_json_str(p, &s);
    }

    if (on->every || on->cancelled || on->at > on->created) {
        p = ngx_sprintf(p, ",\"every\":%M,\"times\":%uD,\"until\":%M,"
                           "\"at\":%M,\"runs\":%uD,\"cancelled\":%ui",
                        on->every, on->times, on->until, on->at, on->runs,
                        (ngx_uint_t) on->cancelled);
    }

    *p++ = '}';
    *p++ = LF;

    return p - buf;
}


/* a line of the state file; see ngx_http_mpns_state_load_pt */

static ngx_int_t
ngx_http_mpns_outbox_load(ngx_http_mpns_state_t *st, ngx_pool_t *pool,
    ngx_str_t *line, ngx_http_mpns_error_t *err)
{
    u_char                       *p;
    uint64_t                      id;
    ngx_int_t                     v[24], rc, state, outcome, type;
    ngx_str_t                     key, val, str[12], body, removed;
    ngx_uint_t                    i, j, k, nums, strs;
    ngx_http_mpns_json_t          json;
    ngx_http_mpns_json_tok_t     *t, *tv;
    ngx_http_mpns_outbox_t   *ctx;
    ngx_http_mpns_outbox_node_t  *on;

    /* numbers; strings, the three written as names last */

    static char  *nkey[] = { "created", "due", "finished", "attempts",
                             "callbacks", "status", "reported", "gave_up",
                             "class", "broadcast", "cursor_hash", "sent",
                             "delivered", "expired", "failed", "deferred",
                             "every", "times", "until", "at", "runs",
                             "cancelled", "removed", "removed_truncated",
                             NULL };
    static char  *skey[] = { "id", "message_id", "channel", "content_type",
                             "target", "user", "tag", "os", "cursor",
                             "state", "outcome", "type", NULL };

    ctx = st->data;

    rc = ngx_http_mpns_json_parse(pool, line, &json);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc != NGX_OK || json.tokens[0].type != NGX_HTTP_MPNS_JSON_OBJECT) {
        return ngx_http_mpns_outbox_mistake(err, "invalid JSON", NULL);
    }

    ngx_memzero(v, sizeof(v));

    /* a string not given is copied all the same: empty, but not NULL */

    for (j = 0; j < sizeof(str) / sizeof(ngx_str_t); j++) {
        ngx_str_set(&str[j], "");
    }

    ngx_str_set(&body, "");
    ngx_str_set(&removed, "");

    t = json.tokens;
    k = 1;
    nums = 0;
    strs = 0;

    for (i = 0; i < t[0].size; i++) {
        if (ngx_http_mpns_json_string(pool, &t[k], &key) != NGX_OK) {
            return ngx_http_mpns_outbox_mistake(err, "invalid JSON", NULL);
        }

        tv = &t[k + 1];
        k = tv->next;

        for (j = 9; skey[j]; j++) {
            if (key.len == ngx_strlen(skey[j])
                && ngx_strncmp(key.data, skey[j], key.len) == 0)
            {
                break;
            }
        }

        if (skey[j]) {
            rc = ngx_http_mpns_outbox_coded(st, &key, tv, &str[j]);

            if (rc != NGX_OK) {
                return ngx_http_mpns_outbox_mistake(err, "invalid value",
                                                    skey[j]);
            }

            strs |= 1 << j;
            continue;
        }

        if (tv->type == NGX_HTTP_MPNS_JSON_PRIMITIVE) {
            for (j = 0; nkey[j]; j++) {
                if (key.len == ngx_strlen(nkey[j])
                    && ngx_strncmp(key.data, nkey[j], key.len) == 0)
                {
                    v[j] = ngx_atoi(tv->raw.data, tv->raw.len);

                    if (v[j] == NGX_ERROR) {
                        return ngx_http_mpns_outbox_mistake(err,
                                                            "invalid value",
                                                            nkey[j]);
                    }

                    nums |= 1 << j;
                }
            }

            continue;
        }

        if (ngx_http_mpns_json_string(pool, tv, &val) != NGX_OK) {
            return ngx_http_mpns_outbox_mistake(err, "invalid JSON", NULL);
        }

        if (key.len == 4 && ngx_strncmp(key.data, "body", 4) == 0) {
            body.data = ngx_pnalloc(pool,
                                    ngx_base64_decoded_length(val.len));
            if (body.data == NULL) {
                return NGX_ERROR;
            }

            if (ngx_decode_base64(&body, &val) != NGX_OK) {
                return ngx_http_mpns_outbox_mistake(err, "invalid value",
                                                    "body");
            }

            continue;
        }

        if (key.len == 12 && ngx_strncmp(key.data, "removed_list", 12) == 0) {
            removed = val;
            continue;
        }

        for (j = 0; j < 9; j++) {
            if (key.len == ngx_strlen(skey[j])
                && ngx_strncmp(key.data, skey[j], key.len) == 0)
            {
                str[j] = val;
                strs |= 1 << j;
            }
        }
    }

    /* from "created" to "class"; "id", "message_id" and the names */

    for (j = 0; j < 9; j++) {
        if (!(nums & (1 << j))) {
            return ngx_http_mpns_outbox_mistake(err, "missing field",
                                                nkey[j]);
        }
    }

    for (j = 0; skey[j]; j++) {
        if ((j < 2 || j >= 9) && !(strs & (1 << j))) {
            return ngx_http_mpns_outbox_mistake(err, "missing field",
                                                skey[j]);
        }
    }

    for (state = 0; state <= NGX_HTTP_MPNS_OB_FINAL; state++) {
        if (str[9].len == ngx_http_mpns_outbox_states[state].len
            && ngx_strncmp(str[9].data, ngx_http_mpns_outbox_states[state].data,
                           str[9].len)
               == 0)
        {
            break;
        }
    }

    for (outcome = 0; str[10].len && outcome < NGX_HTTP_MPNS_NOUTCOMES;
         outcome++)
    {
        if (str[10].len == ngx_http_mpns_outcome(outcome)->name.len
            && ngx_strncmp(str[10].data,
                           ngx_http_mpns_outcome(outcome)->name.data,
                           str[10].len)
               == 0)
        {
            break;
        }
    }

    type = ngx_http_mpns_outbox_service(ctx)->type(&str[11]);

    if (state > NGX_HTTP_MPNS_OB_FINAL) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value", "state");
    }

    if (outcome == NGX_HTTP_MPNS_NOUTCOMES) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value", "outcome");
    }

    if (type == NGX_ERROR) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value", "type");
    }

    if (ngx_http_mpns_outbox_parse_id(&str[0], &id) != NGX_OK) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value", "id");
    }

    if (str[1].len != 36) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value",
                                            "message_id");
    }

    if ((str[2].len == 0 && !v[9]) || str[2].len > NGX_HTTP_MPNS_MAX_CHANNEL
        || str[8].len > NGX_HTTP_MPNS_MAX_CHANNEL)
    {
        return ngx_http_mpns_outbox_mistake(err, "invalid value",
                                            v[9] ? "cursor" : "channel");
    }

    for (j = 3; j < 8; j++) {
        if (str[j].len > 255) {
            return ngx_http_mpns_outbox_mistake(err, "value too long",
                                                skey[j]);
        }
    }

    if (body.len > 65535) {
        return ngx_http_mpns_outbox_mistake(err, "value too long", "body");
    }

    /* a recurring send: "every" 0 is a send made once */

    if (v[16] && (v[16] < 1000 || v[16] > NGX_HTTP_MPNS_OB_MAX_EVERY)) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value", "every");
    }

    if (v[17] > NGX_HTTP_MPNS_OB_MAX_TIMES) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value", "times");
    }

    if (v[20] > (ngx_int_t) NGX_MAX_UINT32_VALUE) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value", "runs");
    }

    if (v[21] > 1) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value",
                                            "cancelled");
    }

    /* what a broadcast removed */

    if (v[22] > (ngx_int_t) NGX_MAX_UINT32_VALUE) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value", "removed");
    }

    if (v[23] > 1) {
        return ngx_http_mpns_outbox_mistake(err, "invalid value",
                                            "removed_truncated");
    }

    if (removed.len > NGX_HTTP_MPNS_REMOVED_LIST) {
        return ngx_http_mpns_outbox_mistake(err, "value too long",
                                            "removed_list");
    }

    on = ngx_http_mpns_outbox_lookup(ctx, id);

    if (on) {
        if (!st->replaying) {
            return ngx_http_mpns_outbox_mistake(err, "duplicate id", "id");
        }

        /* a later state of the entry, from the journal */
        ngx_http_mpns_outbox_free(ctx, on, 0);
    }

    on = ngx_slab_alloc(ctx->shpool, offsetof(ngx_http_mpns_outbox_node_t,
                                              data)
                                     + str[2].len + str[3].len + str[4].len
                                     + body.len
                                     + (v[9] ? str[5].len + str[6].len
                                               + str[7].len
                                               + NGX_HTTP_MPNS_MAX_CHANNEL
                                               + NGX_HTTP_MPNS_REMOVED_LIST
                                             : 0));
    if (on == NULL) {
        return NGX_BUSY;
    }

    ngx_memzero(on, offsetof(ngx_http_mpns_outbox_node_t, data));

    on->node.key = (ngx_rbtree_key_t) id;

    /* one in flight is sent again: see ngx_http_mpns_outbox_loaded() */
    on->state = (u_char) state;

    on->created = (ngx_msec_t) v[0];
    on->due.key = (ngx_rbtree_key_t) v[1];
    on->finished = (ngx_msec_t) v[2];
    on->attempts = (uint16_t) v[3];
    on->callbacks = (uint16_t) v[4];
    on->status = (uint16_t) v[5];
    on->outcome = (u_char) (str[10].len ? outcome : 0);
    on->reported = (u_char) v[6];
    on->gave_up = (u_char) v[7];
    on->type = (u_char) type;
    on->notification_class = (u_char) v[8];
    ngx_memcpy(on->message_id, str[1].data, 36);

    on->channel_len = (uint16_t) str[2].len;
    on->content_type_len = (u_char) str[3].len;
    on->target_len = (u_char) str[4].len;
    on->body_len = (uint16_t) body.len;

    p = ngx_cpymem(on->data, str[2].data, str[2].len);
    p = ngx_cpymem(p, str[3].data, str[3].len);
    p = ngx_cpymem(p, str[4].data, str[4].len);
    p = ngx_cpymem(p, body.data, body.len);

    if (v[9]) {
        on->broadcast = 1;
        on->cursor_hash = (uint32_t) v[10];

        for (i = 0; i < 5; i++) {
            on->counts[i] = (uint32_t) v[11 + i];
        }

        on->user_len = (u_char) str[5].len;
        on->tag_len = (u_char) str[6].len;
        on->os_len = (u_char) str[7].len;
        on->cursor_len = (uint16_t) str[8].len;

        p = ngx_cpymem(p, str[5].data, str[5].len);
        p = ngx_cpymem(p, str[6].data, str[6].len);
        p = ngx_cpymem(p, str[7].data, str[7].len);
        (void) ngx_cpymem(p, str[8].data, str[8].len);

        on->removed = (uint32_t) v[22];
        on->removed_truncated = (u_char) v[23];
        on->removed_len = (uint16_t) removed.len;
        ngx_memcpy(ngx_http_mpns_outbox_removed(on), removed.data,
                   removed.len);
    }

    on->every = (ngx_msec_t) v[16];
    on->times = (uint32_t) v[17];
    on->until = (ngx_msec_t) v[18];
    on->at = (ngx_msec_t) (v[19] ? v[19] : v[0]);
    on->runs = (uint32_t) v[20];
    on->cancelled = (u_char) v[21];

    ngx_rbtree_insert(&ctx->sh->ids, &on->node);
    ngx_rbtree_insert(&ctx->sh->due, &on->due);

    ctx->sh->count++;

    return NGX_OK;
}


/* a removal of the journal; see ngx_http_mpns_state_remove_pt */

static ngx_int_t
ngx_http_mpns_outbox_remove(ngx_http_mpns_state_t *st, ngx_str_t *key)
{
    uint64_t                      id;
    ngx_http_mpns_outbox_node_t  *on;

    if (ngx_http_mpns_outbox_parse_id(key, &id) != NGX_OK) {
        return NGX_OK;
    }

    on = ngx_http_mpns_outbox_lookup(st->data, id);

    if (on) {
        ngx_http_mpns_outbox_free(st->data, on, 0);
    }

    return NGX_OK;
}


/*
 * Loaded: the sends that were in flight when the files were last written
 * may have been made or not; they are made again now, not at the end of
 * a lease nobody holds.  This is what a crash can send twice.
 */

static void
ngx_http_mpns_outbox_loaded(ngx_http_mpns_state_t *st, ngx_log_t *log)
{
    ngx_msec_t                    now;
    ngx_uint_t                    n;
    ngx_rbtree_node_t            *node, *next, *sentinel;
    ngx_http_mpns_outbox_t       *ctx;
    ngx_http_mpns_outbox_node_t  *on;

    ctx = st->data;
    now = ngx_http_mpns_outbox_now();
    sentinel = ctx->sh->ids.sentinel;
    n = 0;

    if (ctx->sh->ids.root == sentinel) {
        return;
    }

    for (node = ngx_rbtree_min(ctx->sh->ids.root, sentinel);
         node;
         node = next)
    {
        next = ngx_rbtree_next(&ctx->sh->ids, node);
        on = (ngx_http_mpns_outbox_node_t *) node;

        if (on->state != NGX_HTTP_MPNS_OB_SENDING) {
            continue;
        }

        on->state = NGX_HTTP_MPNS_OB_PENDING;

        ngx_rbtree_delete(&ctx->sh->due, &on->due);
        on->due.key = ngx_min((ngx_msec_t) on->due.key, now);
        ngx_rbtree_insert(&ctx->sh->due, &on->due);

        n++;
    }

    if (n) {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "mpns outbox zone \"%V\": %ui sends in flight when "
                      "it stopped are made again", &ctx->shm_zone->shm.name,
                      n);
    }
}


/*
 * "state", "outcome" or "type" as a name: a string, null for no outcome,
 * or a number of the old numbering (then the file is written anew)
 */

static ngx_int_t
ngx_http_mpns_outbox_coded(ngx_http_mpns_state_t *st, ngx_str_t *key,
    ngx_http_mpns_json_tok_t *tok, ngx_str_t *name)
{
    ngx_int_t   n;
    ngx_str_t  *old;
    ngx_uint_t  i;

    if (tok->type == NGX_HTTP_MPNS_JSON_STRING) {
        /* names have nothing to unescape */
        *name = tok->raw;
        return NGX_OK;
    }

    if (tok->type != NGX_HTTP_MPNS_JSON_PRIMITIVE) {
        return NGX_DECLINED;
    }

    if (key->data[0] == 'o'
        && tok->raw.len == 4 && ngx_strncmp(tok->raw.data, "null", 4) == 0)
    {
        ngx_str_null(name);
        return NGX_OK;
    }

    n = ngx_atoi(tok->raw.data, tok->raw.len);

    if (n == NGX_ERROR) {
        return NGX_DECLINED;
    }

    if (key->data[0] == 's') {
        old = ngx_http_mpns_outbox_old_states;

    } else if (key->data[0] == 'o') {
        old = ngx_http_mpns_outbox_old_outcomes;

    } else {
        old = ngx_http_mpns_outbox_old_types;

        /* a bit */
        for (i = 0; old[i].len && n != (1 << i); i++) { /* void */ }

        n = i;
    }

    for (i = 0; old[i].len; i++) {
        if ((ngx_uint_t) n == i) {
            *name = old[i];
            st->outdated = 1;
            return NGX_OK;
        }
    }

    return NGX_DECLINED;
}


/* whose type names the entries have; an outbox no location uses: MPNS */

static ngx_http_mpns_service_t *
ngx_http_mpns_outbox_service(ngx_http_mpns_outbox_t *ctx)
{
    return ctx->mlcf ? ctx->mlcf->service : &ngx_http_mpns_service_mpns;
}


static ngx_int_t
ngx_http_mpns_outbox_mistake(ngx_http_mpns_error_t *err, const char *text,
    char *field)
{
    err->text = text;

    if (field) {
        err->field.data = (u_char *) field;
        err->field.len = ngx_strlen(field);
    }

    return NGX_DECLINED;
}


static u_char *
ngx_http_mpns_outbox_cursor(ngx_http_mpns_outbox_node_t *on)
{
    return on->data + on->channel_len + on->content_type_len
           + on->target_len + on->body_len + on->user_len + on->tag_len
           + on->os_len;
}


/* a broadcast's only */

static u_char *
ngx_http_mpns_outbox_removed(ngx_http_mpns_outbox_node_t *on)
{
    return ngx_http_mpns_outbox_cursor(on) + NGX_HTTP_MPNS_MAX_CHANNEL;
}


/*
 * The channels removed, kept one a line, as JSON strings with commas
 * between; with buf NULL, an upper bound of the length
 */

static size_t
ngx_http_mpns_outbox_removed_json(u_char *buf,
    ngx_http_mpns_outbox_node_t *on)
{
    u_char     *p, *s, *last, *lf;
    size_t      len;
    ngx_str_t   ch;

    s = ngx_http_mpns_outbox_removed(on);
    last = s + on->removed_len;
    p = buf;
    len = 0;

    while (s < last) {
        lf = ngx_strlchr(s, last, LF);

        ch.data = s;
        ch.len = (lf ? lf : last) - s;
        s += ch.len + 1;

        if (buf == NULL) {
            len += ngx_http_mpns_json_str_len(&ch) + 1;
            continue;
        }

        if (p != buf) {
            *p++ = ',';
        }

        p = ngx_http_mpns_json_str(p, &ch);
    }

    return buf ? (size_t) (p - buf) : len;
}


void
ngx_http_mpns_outbox_stat(ngx_shm_zone_t *zone,
    ngx_http_mpns_outbox_stat_t *st, ngx_uint_t walk)
{
    ngx_msec_t                    now, since;
    ngx_rbtree_node_t            *node, *sentinel;
    ngx_http_mpns_outbox_t   *ctx;
    ngx_http_mpns_outbox_node_t  *on;

    ctx = zone->data;
    now = ngx_http_mpns_outbox_now();

    ngx_memzero(st, sizeof(ngx_http_mpns_outbox_stat_t));

    st->state = ctx->file.path;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    st->entries = ctx->sh->count;
    st->full = ctx->sh->full;

    sentinel = ctx->sh->ids.sentinel;

    node = (!walk || ctx->sh->ids.root == sentinel)
           ? NULL : ngx_rbtree_min(ctx->sh->ids.root, sentinel);

    for ( /* void */ ; node; node = ngx_rbtree_next(&ctx->sh->ids, node)) {
        on = (ngx_http_mpns_outbox_node_t *) node;

        if (on->state == NGX_HTTP_MPNS_OB_PENDING) {
            st->pending++;

            /* a recurring send's occurrence is as old as its time */
            since = on->every ? on->at : on->created;

            if (now > since && now - since > st->oldest_pending) {
                st->oldest_pending = now - since;
            }

            if ((ngx_msec_t) on->due.key <= now) {
                st->due++;
                st->lag = ngx_max(st->lag, now - (ngx_msec_t) on->due.key);
            }

        } else if (on->state == NGX_HTTP_MPNS_OB_SENDING) {
            st->sending++;

        } else {
            if (on->gave_up) {
                st->expired++;

            } else {
                st->done++;
            }

            if (!on->reported) {
                st->callbacks_pending++;

                if (on->callbacks) {
                    st->callbacks_failing++;
                }
            }
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);
}
