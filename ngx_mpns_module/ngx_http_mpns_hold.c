
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"


/*
 * MPNS punishes senders that retry a 412 (device inactive) sooner than an
 * hour, and a 406 means the channel's daily quota is spent: the answer is
 * remembered per channel, by all workers, and repeated without asking
 * MPNS until its window ends.  The oldest entries make room when the zone
 * is full: a hold is advice, not state that must survive.
 */


/* not the registry's: a zone name means one kind of zone */
#define NGX_HTTP_MPNS_HOLD_TAG          ((void *) ngx_http_mpns_hold_zone)


typedef struct {
    ngx_rbtree_node_t              node;      /* key: crc32 of the channel */
    ngx_queue_t                    queue;     /* most recent first */
    ngx_msec_t                     until;
    uint16_t                       status;
    u_char                         outcome;
    u_char                         pad;
    uint16_t                       len;
    u_char                         data[1];
} ngx_http_mpns_hold_node_t;


typedef struct {
    ngx_rbtree_t                   rbtree;
    ngx_rbtree_node_t              sentinel;
    ngx_queue_t                    queue;
} ngx_http_mpns_hold_shctx_t;


typedef struct {
    ngx_http_mpns_hold_shctx_t    *sh;
    ngx_slab_pool_t               *shpool;
} ngx_http_mpns_hold_ctx_t;


static ngx_int_t ngx_http_mpns_hold_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_http_mpns_hold_node_t *ngx_http_mpns_hold_lookup(
    ngx_http_mpns_hold_ctx_t *ctx, ngx_str_t *channel, uint32_t hash);
static void ngx_http_mpns_hold_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static void ngx_http_mpns_hold_free(ngx_http_mpns_hold_ctx_t *ctx,
    ngx_http_mpns_hold_node_t *hn);


char *
ngx_http_mpns_hold_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ssize_t                    size;
    ngx_str_t                 *value, name;
    ngx_shm_zone_t            *shm_zone;
    ngx_http_mpns_hold_ctx_t  *ctx;

    value = cf->args->elts;

    if (ngx_http_mpns_zone_param(cf, &value[1], &name, &size) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    ctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_hold_ctx_t));
    if (ctx == NULL) {
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, NGX_HTTP_MPNS_HOLD_TAG);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    shm_zone->init = ngx_http_mpns_hold_init_zone;
    shm_zone->data = ctx;

    return NGX_CONF_OK;
}


char *
ngx_http_mpns_hold(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_hold_conf_t *hc = (void *) ((char *) conf + cmd->offset);

    ngx_str_t   *value, name, s;
    ngx_msec_t  *window, msec;
    ngx_uint_t   i;

    if (hc->zone != NGX_CONF_UNSET_PTR) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (ngx_strcmp(value[1].data, "off") == 0) {
        if (cf->args->nelts > 2) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "invalid parameter \"%V\"", &value[2]);
            return NGX_CONF_ERROR;
        }

        hc->zone = NULL;
        return NGX_CONF_OK;
    }

    ngx_str_null(&name);

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {
            name.data = value[i].data + 5;
            name.len = value[i].len - 5;
            continue;
        }

        if (ngx_strncmp(value[i].data, "device_inactive=", 16) == 0) {
            window = &hc->device_inactive;
            s.data = value[i].data + 16;
            s.len = value[i].len - 16;

        } else if (ngx_strncmp(value[i].data, "throttled=", 10) == 0) {
            window = &hc->throttled;
            s.data = value[i].data + 10;
            s.len = value[i].len - 10;

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

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    hc->zone = ngx_shared_memory_add(cf, &name, 0, NGX_HTTP_MPNS_HOLD_TAG);
    if (hc->zone == NULL) {
        return NGX_CONF_ERROR;
    }

    /* MPNS: a 412 no sooner than an hour; a 406 hourly */

    if (hc->device_inactive == NGX_CONF_UNSET_MSEC) {
        hc->device_inactive = 3660000;
    }

    if (hc->throttled == NGX_CONF_UNSET_MSEC) {
        hc->throttled = 3600000;
    }

    return NGX_CONF_OK;
}


void
ngx_http_mpns_hold_create_conf(ngx_http_mpns_hold_conf_t *hc)
{
    hc->zone = NGX_CONF_UNSET_PTR;
    hc->device_inactive = NGX_CONF_UNSET_MSEC;
    hc->throttled = NGX_CONF_UNSET_MSEC;
}


char *
ngx_http_mpns_hold_merge_conf(ngx_conf_t *cf, ngx_http_mpns_hold_conf_t *conf,
    ngx_http_mpns_hold_conf_t *prev)
{
    if (conf->zone == NGX_CONF_UNSET_PTR) {
        *conf = *prev;

        if (conf->zone == NGX_CONF_UNSET_PTR) {
            conf->zone = NULL;
        }
    }

    if (conf->zone && conf->zone->data == NULL) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "unknown mpns_hold_zone \"%V\"",
                           &conf->zone->shm.name);
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_mpns_hold_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mpns_hold_ctx_t *octx = data;

    size_t                     len;
    ngx_http_mpns_hold_ctx_t  *ctx;

    ctx = shm_zone->data;

    if (octx) {
        ctx->sh = octx->sh;
        ctx->shpool = octx->shpool;
        return NGX_OK;
    }

    ctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    ctx->sh = ngx_slab_alloc(ctx->shpool, sizeof(ngx_http_mpns_hold_shctx_t));
    if (ctx->sh == NULL) {
        return NGX_ERROR;
    }

    ctx->shpool->data = ctx->sh;

    ngx_rbtree_init(&ctx->sh->rbtree, &ctx->sh->sentinel,
                    ngx_http_mpns_hold_insert_value);
    ngx_queue_init(&ctx->sh->queue);

    len = sizeof(" in mpns hold zone \"\"") + shm_zone->shm.name.len;

    ctx->shpool->log_ctx = ngx_slab_alloc(ctx->shpool, len);
    if (ctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(ctx->shpool->log_ctx, " in mpns hold zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* the oldest entries make room: a full zone is not an error */
    ctx->shpool->log_nomem = 0;

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_hold_check(ngx_http_mpns_hold_conf_t *hc, ngx_str_t *channel,
    ngx_uint_t *outcome, ngx_uint_t *status, time_t *left,
    ngx_http_mpns_store_op_t *op)
{
    uint32_t                    hash;
    ngx_int_t                   rc;
    ngx_http_mpns_hold_ctx_t   *ctx;
    ngx_http_mpns_hold_node_t  *hn;

    if (hc->zone == NULL) {
        return NGX_DECLINED;
    }

    ctx = hc->zone->data;
    hash = ngx_crc32_short(channel->data, channel->len);

    rc = NGX_DECLINED;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    hn = ngx_http_mpns_hold_lookup(ctx, channel, hash);

    if (hn) {
        if ((ngx_msec_int_t) (hn->until - ngx_current_msec) > 0) {
            *outcome = hn->outcome;
            *status = hn->status;
            *left = (hn->until - ngx_current_msec + 999) / 1000;
            rc = NGX_OK;

        } else {
            ngx_http_mpns_hold_free(ctx, hn);
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return rc;
}


ngx_int_t
ngx_http_mpns_hold_set(ngx_http_mpns_hold_conf_t *hc, ngx_str_t *channel,
    ngx_uint_t outcome, ngx_uint_t status, ngx_log_t *log,
    ngx_http_mpns_store_op_t *op)
{
    uint32_t                    hash;
    ngx_uint_t                  n;
    ngx_queue_t                *q;
    ngx_http_mpns_hold_ctx_t   *ctx;
    ngx_http_mpns_hold_node_t  *hn;

    if (hc->zone == NULL || ngx_http_mpns_hold_window(hc, outcome) == 0) {
        return NGX_OK;
    }

    ctx = hc->zone->data;
    hash = ngx_crc32_short(channel->data, channel->len);

    ngx_shmtx_lock(&ctx->shpool->mutex);

    hn = ngx_http_mpns_hold_lookup(ctx, channel, hash);

    if (hn) {
        ngx_http_mpns_hold_free(ctx, hn);
    }

    for (n = 0; /* void */ ; n++) {
        hn = ngx_slab_alloc_locked(ctx->shpool,
                                   offsetof(ngx_http_mpns_hold_node_t, data)
                                   + channel->len);
        if (hn) {
            break;
        }

        if (ngx_queue_empty(&ctx->sh->queue) || n == 16) {
            ngx_shmtx_unlock(&ctx->shpool->mutex);
            ngx_log_error(NGX_LOG_WARN, log, 0,
                          "mpns hold zone \"%V\" has no room for \"%V\"",
                          &hc->zone->shm.name, channel);
            return NGX_OK;
        }

        q = ngx_queue_last(&ctx->sh->queue);
        ngx_http_mpns_hold_free(ctx,
                       ngx_queue_data(q, ngx_http_mpns_hold_node_t, queue));
    }

    hn->node.key = hash;
    hn->until = ngx_current_msec
                + (outcome == NGX_HTTP_MPNS_DEVICE_INACTIVE
                   ? hc->device_inactive : hc->throttled);
    hn->status = (uint16_t) status;
    hn->outcome = (u_char) outcome;
    hn->len = (uint16_t) channel->len;
    ngx_memcpy(hn->data, channel->data, channel->len);

    ngx_rbtree_insert(&ctx->sh->rbtree, &hn->node);
    ngx_queue_insert_head(&ctx->sh->queue, &hn->queue);

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}


time_t
ngx_http_mpns_hold_window(ngx_http_mpns_hold_conf_t *hc, ngx_uint_t outcome)
{
    if (hc->zone == NULL) {
        return 0;
    }

    switch (outcome) {

    case NGX_HTTP_MPNS_DEVICE_INACTIVE:
        return (hc->device_inactive + 999) / 1000;

    case NGX_HTTP_MPNS_THROTTLED:
        return (hc->throttled + 999) / 1000;

    default:
        return 0;
    }
}


static ngx_http_mpns_hold_node_t *
ngx_http_mpns_hold_lookup(ngx_http_mpns_hold_ctx_t *ctx, ngx_str_t *channel,
    uint32_t hash)
{
    ngx_int_t                   rc;
    ngx_rbtree_node_t          *node, *sentinel;
    ngx_http_mpns_hold_node_t  *hn;

    node = ctx->sh->rbtree.root;
    sentinel = ctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash != node->key) {
            node = (hash < node->key) ? node->left : node->right;
            continue;
        }

        hn = (ngx_http_mpns_hold_node_t *) node;

        rc = ngx_memn2cmp(channel->data, hn->data, channel->len, hn->len);

        if (rc == 0) {
            return hn;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static void
ngx_http_mpns_hold_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t          **p;
    ngx_http_mpns_hold_node_t   *hn, *ht;

    for ( ;; ) {

        if (node->key != temp->key) {
            p = (node->key < temp->key) ? &temp->left : &temp->right;

        } else {
            hn = (ngx_http_mpns_hold_node_t *) node;
            ht = (ngx_http_mpns_hold_node_t *) temp;

            p = (ngx_memn2cmp(hn->data, ht->data, hn->len, ht->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


static void
ngx_http_mpns_hold_free(ngx_http_mpns_hold_ctx_t *ctx,
    ngx_http_mpns_hold_node_t *hn)
{
    ngx_rbtree_delete(&ctx->sh->rbtree, &hn->node);
    ngx_queue_remove(&hn->queue);
    ngx_slab_free_locked(ctx->shpool, hn);
}


ngx_int_t
ngx_http_mpns_hold_stat(ngx_shm_zone_t *zone, ngx_uint_t *entries,
    ngx_uint_t *active)
{
    ngx_queue_t                *q;
    ngx_http_mpns_hold_ctx_t   *ctx;
    ngx_http_mpns_hold_node_t  *hn;

    if (zone->tag != NGX_HTTP_MPNS_HOLD_TAG || zone->data == NULL) {
        return NGX_DECLINED;
    }

    ctx = zone->data;

    *entries = 0;
    *active = 0;

    ngx_shmtx_lock(&ctx->shpool->mutex);

    for (q = ngx_queue_head(&ctx->sh->queue);
         q != ngx_queue_sentinel(&ctx->sh->queue);
         q = ngx_queue_next(q))
    {
        hn = ngx_queue_data(q, ngx_http_mpns_hold_node_t, queue);

        (*entries)++;

        if ((ngx_msec_int_t) (hn->until - ngx_current_msec) > 0) {
            (*active)++;
        }
    }

    ngx_shmtx_unlock(&ctx->shpool->mutex);

    return NGX_OK;
}
