
/*
 * Copyright (C) ngx_mpns_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns_module.h"
#include "ngx_http_mpns_json.h"
#include "ngx_http_mpns_state.h"


#define NGX_HTTP_MPNS_STATE_BUFFER      65536
#define NGX_HTTP_MPNS_READER_BUFFER     16384
#define NGX_HTTP_MPNS_READER_REFILL     64

#define NGX_HTTP_MPNS_OWNER_NONE        0
#define NGX_HTTP_MPNS_OWNER_DEVICE      1
#define NGX_HTTP_MPNS_OWNER_USER        2


/*
 * One registration, one slab allocation: a 67-byte header, so that with an
 * MPNS channel of about 140 bytes and short user, device and os it still
 * fits a 256-byte slot.  Owners are found through a hash table of chains
 * rather than a second tree: a tree node would cost 28 bytes more.
 */

typedef struct ngx_http_mpns_registry_node_s  ngx_http_mpns_registry_node_t;

struct ngx_http_mpns_registry_node_s {
    ngx_rbtree_node_t              node;      /* by channel, first */
    ngx_http_mpns_registry_node_t *owner_next;
    uint32_t                       owner_hash;
    uint32_t                       created;
    uint16_t                       len;       /* of the channel */
    uint16_t                       tags_len;
    u_char                         user_len;
    u_char                         device_len;
    u_char                         os_len;
    u_char                         ntags;
    uint16_t                       tile_len;
    u_char                         count;

    /*
     * channel, user, device, os, each tag after its length byte, then
     * the last tile
     */
    u_char                         data[1];
};


typedef struct {
    ngx_rbtree_t                   channels;
    ngx_rbtree_node_t              channels_sentinel;
    ngx_http_mpns_registry_node_t **owners;   /* buckets of chains */
    ngx_uint_t                     owners_mask;
    ngx_uint_t                     count;
    ngx_uint_t                     full;      /* "is full" was logged */
    ngx_http_mpns_state_sh_t       file;
} ngx_http_mpns_registry_shctx_t;


struct ngx_http_mpns_registry_s {
    ngx_http_mpns_registry_shctx_t  *sh;
    ngx_slab_pool_t                 *shpool;
    ngx_shm_zone_t                  *shm_zone;
    ngx_http_mpns_state_t            file;
};


static ngx_int_t ngx_http_mpns_registry_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static ngx_int_t ngx_http_mpns_registry_migrate(ngx_http_mpns_registry_t *reg,
    ngx_log_t *log);
static ngx_int_t ngx_http_mpns_registry_copy(ngx_http_mpns_entry_t *entry,
    void *data);
static ngx_int_t ngx_http_mpns_registry_load(ngx_http_mpns_state_t *st,
    ngx_pool_t *pool, ngx_str_t *text, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_registry_remove(ngx_http_mpns_state_t *st,
    ngx_str_t *channel);
static ngx_int_t ngx_http_mpns_registry_refused(ngx_http_mpns_registry_t *reg,
    ngx_log_t *log);
static ngx_int_t ngx_http_mpns_registry_render(ngx_http_mpns_state_t *st,
    void *cursor, ngx_buf_t *b);
static ngx_int_t ngx_http_mpns_registry_record(ngx_http_mpns_entry_t *entry,
    void *data);

static void ngx_http_mpns_registry_insert_channel(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_mpns_registry_cmp(uint32_t hash, u_char *data,
    size_t len, ngx_rbtree_node_t *node);
static ngx_uint_t ngx_http_mpns_registry_owner(
    ngx_http_mpns_registry_node_t *rn, ngx_str_t *owner);
static ngx_http_mpns_registry_node_t *ngx_http_mpns_registry_lookup(
    ngx_http_mpns_registry_shctx_t *sh, ngx_str_t *channel);
static ngx_http_mpns_registry_node_t *ngx_http_mpns_registry_lookup_owner(
    ngx_http_mpns_registry_shctx_t *sh, ngx_uint_t kind, ngx_str_t *owner);
static ngx_http_mpns_registry_node_t *ngx_http_mpns_registry_after(
    ngx_http_mpns_registry_shctx_t *sh, ngx_http_mpns_cursor_t *cursor);
static ngx_http_mpns_registry_node_t *ngx_http_mpns_registry_succ(
    ngx_http_mpns_registry_shctx_t *sh, ngx_http_mpns_registry_node_t *rn);
static void ngx_http_mpns_registry_free(ngx_http_mpns_registry_t *reg,
    ngx_http_mpns_registry_node_t *rn, ngx_uint_t record);
static void ngx_http_mpns_registry_owner_replace(
    ngx_http_mpns_registry_shctx_t *sh, ngx_http_mpns_registry_node_t *rn,
    ngx_http_mpns_registry_node_t *by);
static void ngx_http_mpns_registry_entry(ngx_http_mpns_registry_node_t *rn,
    ngx_http_mpns_entry_t *entry);
static ngx_uint_t ngx_http_mpns_registry_match(
    ngx_http_mpns_registry_node_t *rn, ngx_http_mpns_filter_t *filter);
static void ngx_http_mpns_registry_mark(ngx_http_mpns_cursor_t *cursor,
    ngx_http_mpns_registry_node_t *rn);

static ngx_int_t ngx_http_mpns_reader_take(ngx_http_mpns_entry_t *entry,
    void *data);
static ngx_int_t ngx_http_mpns_registry_string(ngx_pool_t *pool,
    ngx_http_mpns_json_tok_t *tok, ngx_str_t *name, size_t max,
    ngx_str_t *value, ngx_http_mpns_error_t *err);
static ngx_int_t ngx_http_mpns_registry_mistake(ngx_http_mpns_error_t *err,
    ngx_uint_t status, const char *text, ngx_str_t *field);


static ngx_str_t  ngx_http_mpns_registry_fields[] = {
    ngx_string("channel"),
    ngx_string("user"),
    ngx_string("device"),
    ngx_string("os"),
    ngx_string("tags"),
    ngx_string("created"),
    ngx_string("count"),
    ngx_string("tile"),
    ngx_null_string
};

#define NGX_HTTP_MPNS_R_CHANNEL         0
#define NGX_HTTP_MPNS_R_USER            1
#define NGX_HTTP_MPNS_R_DEVICE          2
#define NGX_HTTP_MPNS_R_OS              3
#define NGX_HTTP_MPNS_R_TAGS            4
#define NGX_HTTP_MPNS_R_CREATED         5
#define NGX_HTTP_MPNS_R_COUNT           6
#define NGX_HTTP_MPNS_R_TILE            7


static ngx_str_t  ngx_http_mpns_registry_body_field = ngx_string("body");


static ngx_http_mpns_state_format_t  ngx_http_mpns_registry_format = {
    ngx_string("registry"),
    ngx_http_mpns_registry_load,
    ngx_http_mpns_registry_remove,
    NULL,
    ngx_http_mpns_registry_render,
    sizeof(ngx_http_mpns_cursor_t),
    NGX_HTTP_MPNS_STATE_BUFFER
};


char *
ngx_http_mpns_registry_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_mpns_main_conf_t *mmcf = conf;

    ssize_t                    size;
    ngx_str_t                 *value, name, state;
    ngx_uint_t                 i;
    ngx_shm_zone_t            *shm_zone, **zones;
    ngx_http_mpns_registry_t  *reg;

    value = cf->args->elts;

    size = 0;
    ngx_str_null(&name);
    ngx_str_null(&state);

    for (i = 1; i < cf->args->nelts; i++) {

        if (ngx_strncmp(value[i].data, "zone=", 5) == 0) {

            if (ngx_http_mpns_zone_param(cf, &value[i], &name, &size)
                != NGX_OK)
            {
                return NGX_CONF_ERROR;
            }

            continue;
        }

        if (ngx_strncmp(value[i].data, "state=", 6) == 0
            && value[i].len > 6)
        {
            state.data = value[i].data + 6;
            state.len = value[i].len - 6;

            continue;
        }

        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid parameter \"%V\"", &value[i]);
        return NGX_CONF_ERROR;
    }

    if (name.len == 0) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"%V\" must have \"zone\" parameter",
                           &cmd->name);
        return NGX_CONF_ERROR;
    }

    zones = mmcf->registries.elts;

    for (i = 0; i < mmcf->registries.nelts; i++) {
        if (zones[i]->shm.name.len == name.len
            && ngx_strncmp(zones[i]->shm.name.data, name.data, name.len)
               == 0)
        {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "duplicate zone \"%V\"", &name);
            return NGX_CONF_ERROR;
        }
    }

    reg = ngx_pcalloc(cf->pool, sizeof(ngx_http_mpns_registry_t));
    if (reg == NULL) {
        return NGX_CONF_ERROR;
    }

    if (state.len
        && ngx_http_mpns_state_path(cf, &reg->file, &state, &mmcf->journal)
           != NGX_CONF_OK)
    {
        return NGX_CONF_ERROR;
    }

    shm_zone = ngx_shared_memory_add(cf, &name, size, &ngx_http_mpns_module);
    if (shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "duplicate zone \"%V\"", &name);
        return NGX_CONF_ERROR;
    }

    reg->shm_zone = shm_zone;
    reg->file.format = &ngx_http_mpns_registry_format;
    reg->file.data = reg;
    reg->file.shm_zone = shm_zone;

    shm_zone->init = ngx_http_mpns_registry_init_zone;
    shm_zone->data = reg;

    zones = ngx_array_push(&mmcf->registries);
    if (zones == NULL) {
        return NGX_CONF_ERROR;
    }

    *zones = shm_zone;

    return NGX_CONF_OK;
}


char *
ngx_http_mpns_registry_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf)
{
    ngx_http_mpns_loc_conf_t *mlcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (mlcf->send || mlcf->broadcast || mlcf->registry) {
        return "is duplicate";
    }

    value = cf->args->elts;

    mlcf->registry = ngx_http_mpns_registry_add(cf, &value[1]);
    if (mlcf->registry == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);
    clcf->handler = ngx_http_mpns_registry_handler;

    return NGX_CONF_OK;
}


ngx_shm_zone_t *
ngx_http_mpns_registry_add(ngx_conf_t *cf, ngx_str_t *name)
{
    /* size 0: a reference, mpns_registry_zone may come later */

    return ngx_shared_memory_add(cf, name, 0, &ngx_http_mpns_module);
}


char *
ngx_http_mpns_registry_check(ngx_conf_t *cf, ngx_shm_zone_t *zone)
{
    if (zone == NULL || zone->data) {
        return NGX_CONF_OK;
    }

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "unknown mpns_registry_zone \"%V\"", &zone->shm.name);

    return NGX_CONF_ERROR;
}


ngx_http_mpns_registry_t *
ngx_http_mpns_registry_get(ngx_shm_zone_t *zone)
{
    return zone->data;
}


ngx_str_t *
ngx_http_mpns_registry_name(ngx_http_mpns_registry_t *reg)
{
    return &reg->shm_zone->shm.name;
}


ngx_uint_t
ngx_http_mpns_registry_count(ngx_http_mpns_registry_t *reg)
{
    ngx_uint_t  n;

    ngx_shmtx_lock(&reg->shpool->mutex);
    n = reg->sh->count;
    ngx_shmtx_unlock(&reg->shpool->mutex);

    return n;
}


static ngx_int_t
ngx_http_mpns_registry_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_mpns_registry_t *oreg = data;

    size_t                           len;
    ngx_uint_t                       n, mask;
    ngx_slab_pool_t                 *shpool;
    ngx_http_mpns_registry_t        *reg;
    ngx_http_mpns_registry_shctx_t  *sh;

    reg = shm_zone->data;

    if (ngx_http_mpns_state_check(&reg->file) != NGX_OK) {
        return NGX_ERROR;
    }

    if (oreg) {
        /* a reload with the same size: the entries stay where they are */
        reg->sh = oreg->sh;
        reg->shpool = oreg->shpool;
        reg->file.sh = &reg->sh->file;
        reg->file.shpool = reg->shpool;
        return NGX_OK;
    }

    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    sh = ngx_slab_calloc(shpool, sizeof(ngx_http_mpns_registry_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    shpool->data = sh;

    reg->sh = sh;
    reg->shpool = shpool;
    reg->file.sh = &sh->file;
    reg->file.shpool = shpool;

    ngx_rbtree_init(&sh->channels, &sh->channels_sentinel,
                    ngx_http_mpns_registry_insert_channel);
    /* about one bucket per possible entry, a power of two */

    n = shm_zone->shm.size / 256;

    for (mask = 63; mask * 2 + 1 < n; mask = mask * 2 + 1) { /* void */ }

    sh->owners = ngx_slab_calloc(shpool, (mask + 1) * sizeof(void *));
    if (sh->owners == NULL) {
        return NGX_ERROR;
    }

    sh->owners_mask = mask;

    len = sizeof(" in mpns registry zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in mpns registry zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is logged once, see ngx_http_mpns_registry_set() */
    shpool->log_nomem = 0;

    if (ngx_http_mpns_registry_migrate(reg, shm_zone->shm.log)
        != NGX_DECLINED)
    {
        return NGX_OK;
    }

    return ngx_http_mpns_state_load(&reg->file, NULL, shm_zone->shm.log);
}


/*
 * A new zone on reload (its size changed): ngx_cycle is still the old
 * cycle, whose workers keep using the old zone under its own mutex.
 */

static ngx_int_t
ngx_http_mpns_registry_migrate(ngx_http_mpns_registry_t *reg, ngx_log_t *log)
{
    ngx_shm_zone_t            *shm_zone;
    ngx_http_mpns_cursor_t     cursor;
    ngx_http_mpns_registry_t  *oreg;

    shm_zone = reg->shm_zone;
    oreg = ngx_http_mpns_state_previous(shm_zone);

    if (oreg == NULL || oreg->sh == NULL) {
        return NGX_DECLINED;
    }

    ngx_memzero(&cursor, sizeof(ngx_http_mpns_cursor_t));

    while (!cursor.done) {
        if (ngx_http_mpns_registry_next(oreg, NULL, &cursor,
                                        NGX_HTTP_MPNS_SCAN,
                                        ngx_http_mpns_registry_copy, reg)
            != NGX_OK)
        {
            break;
        }
    }

    if (!cursor.done) {
        ngx_log_error(NGX_LOG_WARN, log, 0,
                      "mpns registry zone \"%V\": not all entries of the "
                      "old zone fit, %ui migrated",
                      &shm_zone->shm.name, reg->sh->count);

    } else {
        ngx_log_error(NGX_LOG_NOTICE, log, 0,
                      "mpns registry zone \"%V\": migrated %ui entries "
                      "from the old zone",
                      &shm_zone->shm.name, reg->sh->count);
    }

    /*
     * the new zone owns the state file now: the old workers must not
     * write it, and refuse changes, which the new zone would not have
     */

    ngx_http_mpns_state_migrate(&reg->file, &oreg->file);

    return NGX_OK;
}


/* called with the old zone locked */

static ngx_int_t
ngx_http_mpns_registry_copy(ngx_http_mpns_entry_t *entry, void *data)
{
    ngx_http_mpns_registry_t *reg = data;

    ngx_int_t  rc;

    rc = ngx_http_mpns_registry_set(reg, entry, NULL,
                                    reg->shm_zone->shm.log, NULL);

    if (rc == NGX_OK || rc == NGX_DONE) {
        return NGX_OK;
    }

    return NGX_ERROR;
}


/* a line of the state file; see ngx_http_mpns_state_load_pt */

static ngx_int_t
ngx_http_mpns_registry_load(ngx_http_mpns_state_t *st, ngx_pool_t *pool,
    ngx_str_t *text, ngx_http_mpns_error_t *err)
{
    u_char                 *p, *last;
    ngx_int_t               rc;
    ngx_http_mpns_entry_t   entry;

    rc = ngx_http_mpns_registry_parse(pool, text, 1, &entry, err);

    if (rc != NGX_OK) {
        return rc;
    }

    /* sends check channels in full; this is what the zone relies on */

    last = entry.channel.data + entry.channel.len;

    for (p = entry.channel.data; p < last; p++) {
        if (*p <= ' ' || *p >= 0x7f) {
            break;
        }
    }

    if (p < last || entry.channel.len > NGX_HTTP_MPNS_MAX_CHANNEL) {
        return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                              "invalid value",
                                          &ngx_http_mpns_registry_fields[0]);
    }

    if (entry.tile.data == NULL) {
        /* as the line says: no tile, not the tile of a line before */
        ngx_str_set(&entry.tile, "");
    }

    rc = ngx_http_mpns_registry_set(st->data, &entry, NULL,
                                    st->shm_zone->shm.log, NULL);

    if (rc == NGX_OK || rc == NGX_DONE) {
        return NGX_OK;
    }

    return rc;
}


/* a removal of the journal; see ngx_http_mpns_state_remove_pt */

static ngx_int_t
ngx_http_mpns_registry_remove(ngx_http_mpns_state_t *st, ngx_str_t *channel)
{
    ngx_http_mpns_registry_t *reg = st->data;

    ngx_http_mpns_registry_node_t  *rn;

    ngx_shmtx_lock(&reg->shpool->mutex);

    rn = ngx_http_mpns_registry_lookup(reg->sh, channel);

    if (rn) {
        ngx_http_mpns_registry_free(reg, rn, 0);
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return NGX_OK;
}


/* a zone resized on reload: the old workers' changes would be lost */

static ngx_int_t
ngx_http_mpns_registry_refused(ngx_http_mpns_registry_t *reg, ngx_log_t *log)
{
    ngx_log_error(NGX_LOG_ERR, log, 0,
                  "mpns registry zone \"%V\" was resized on reload, "
                  "a change through an old worker refused",
                  &reg->shm_zone->shm.name);

    return NGX_ERROR;
}


ngx_int_t
ngx_http_mpns_registry_set(ngx_http_mpns_registry_t *reg,
    ngx_http_mpns_entry_t *entry, ngx_str_t *replaced, ngx_log_t *log,
    ngx_http_mpns_store_op_t *op)
{
    u_char                          *p;
    size_t                           size, tags;
    uint32_t                         hash;
    ngx_int_t                        rc;
    ngx_str_t                        owner, tile;
    ngx_uint_t                       i, kind;
    ngx_slab_pool_t                 *shpool;
    ngx_http_mpns_entry_t            stored;
    ngx_http_mpns_registry_node_t   *rn, *old, *prev, *from, **bucket;
    ngx_http_mpns_registry_shctx_t  *sh;

    if (replaced) {
        replaced->len = 0;
    }

    tags = 0;

    for (i = 0; i < entry->ntags; i++) {
        tags += 1 + entry->tags[i].len;
    }

    hash = ngx_crc32_short(entry->channel.data, entry->channel.len);

    if (entry->device.len) {
        kind = NGX_HTTP_MPNS_OWNER_DEVICE;
        owner = entry->device;

    } else if (entry->user.len) {
        kind = NGX_HTTP_MPNS_OWNER_USER;
        owner = entry->user;

    } else {
        kind = NGX_HTTP_MPNS_OWNER_NONE;
        ngx_str_null(&owner);
    }

    sh = reg->sh;
    shpool = reg->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_mpns_state_retired(&reg->file)) {
        ngx_shmtx_unlock(&shpool->mutex);
        return ngx_http_mpns_registry_refused(reg, log);
    }

    old = ngx_http_mpns_registry_lookup(sh, &entry->channel);

    prev = (kind != NGX_HTTP_MPNS_OWNER_NONE)
           ? ngx_http_mpns_registry_lookup_owner(sh, kind, &owner) : NULL;

    /* the device's last tile stays with it, on a new channel too */

    from = old ? old : prev;
    tile = entry->tile;

    if (tile.data == NULL && from) {
        ngx_http_mpns_registry_entry(from, &stored);
        tile = stored.tile;
    }

    entry->previous = from ? from->count : 0;

    size = offsetof(ngx_http_mpns_registry_node_t, data)
           + entry->channel.len + entry->user.len + entry->device.len
           + entry->os.len + tags + tile.len;

    /* nothing changes unless the new entry has its memory */

    rn = ngx_slab_alloc_locked(shpool, size);

    if (rn == NULL) {
        if (!sh->full) {
            sh->full = 1;
            ngx_log_error(NGX_LOG_CRIT, log, 0,
                          "mpns registry zone \"%V\" is full",
                          &reg->shm_zone->shm.name);
        }

        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_BUSY;
    }

    rn->node.key = hash;
    rn->len = (uint16_t) entry->channel.len;
    rn->user_len = (u_char) entry->user.len;
    rn->device_len = (u_char) entry->device.len;
    rn->os_len = (u_char) entry->os.len;
    rn->ntags = (u_char) entry->ntags;
    rn->tags_len = (uint16_t) tags;
    rn->tile_len = (uint16_t) tile.len;
    rn->count = (u_char) entry->count;

    p = ngx_cpymem(rn->data, entry->channel.data, entry->channel.len);
    p = ngx_http_mpns_cpymem(p, entry->user.data, entry->user.len);
    p = ngx_http_mpns_cpymem(p, entry->device.data, entry->device.len);
    p = ngx_http_mpns_cpymem(p, entry->os.data, entry->os.len);

    for (i = 0; i < entry->ntags; i++) {
        *p++ = (u_char) entry->tags[i].len;
        p = ngx_cpymem(p, entry->tags[i].data, entry->tags[i].len);
    }

    (void) ngx_http_mpns_cpymem(p, tile.data, tile.len);

    if (kind != NGX_HTTP_MPNS_OWNER_NONE) {
        rn->owner_hash = ngx_crc32_short(owner.data, owner.len);

        /* a device (or a user without one) keeps its newest channel */

        if (prev && prev != old) {
            if (replaced) {
                replaced->len = prev->len;
                ngx_memcpy(replaced->data, prev->data, prev->len);
            }

            ngx_http_mpns_registry_free(reg, prev, 0);
        }
    }

    if (entry->created) {
        rn->created = (uint32_t) entry->created;

    } else {
        rn->created = old ? old->created : (uint32_t) ngx_time();
    }

    entry->created = rn->created;

    if (old) {
        ngx_http_mpns_registry_free(reg, old, 0);
        rc = NGX_DONE;

    } else {
        rc = NGX_OK;
    }

    ngx_rbtree_insert(&sh->channels, &rn->node);

    if (kind != NGX_HTTP_MPNS_OWNER_NONE) {
        bucket = &sh->owners[rn->owner_hash & sh->owners_mask];
        rn->owner_next = *bucket;
        *bucket = rn;
    }

    sh->count++;

    /* replayed, the record drops what this one dropped */

    ngx_http_mpns_registry_entry(rn, &stored);

    p = ngx_http_mpns_state_record(&reg->file, NGX_HTTP_MPNS_RECORD_SET,
                                   ngx_http_mpns_registry_json_len(&stored));
    if (p) {
        ngx_http_mpns_state_recorded(&reg->file,
                                     ngx_http_mpns_registry_json(p, &stored));
    }

    ngx_shmtx_unlock(&shpool->mutex);

    return ngx_http_mpns_state_commit(&reg->file, op, rc);
}


ngx_int_t
ngx_http_mpns_registry_tile(ngx_http_mpns_registry_t *reg,
    ngx_str_t *channel, ngx_http_mpns_message_t *msg, ngx_uint_t counted,
    ngx_str_t *body, ngx_log_t *log)
{
    u_char                          *p;
    size_t                           size;
    ngx_uint_t                       count;
    ngx_slab_pool_t                 *shpool;
    ngx_http_mpns_entry_t            stored;
    ngx_http_mpns_registry_node_t   *rn, *new;
    ngx_http_mpns_registry_shctx_t  *sh;

    sh = reg->sh;
    shpool = reg->shpool;

    ngx_shmtx_lock(&shpool->mutex);

    if (ngx_http_mpns_state_retired(&reg->file)) {
        ngx_shmtx_unlock(&shpool->mutex);
        return ngx_http_mpns_registry_refused(reg, log);
    }

    rn = ngx_http_mpns_registry_lookup(sh, channel);

    if (rn == NULL) {
        ngx_shmtx_unlock(&shpool->mutex);
        return NGX_DECLINED;
    }

    count = rn->count;

    if (counted) {
        if (count < NGX_HTTP_MPNS_MAX_COUNT) {
            count++;
        }

        body->len = ngx_http_mpns_message_count(body->data, msg, count)
                    - body->data;

    } else {
        body->len = msg->body.len;
        ngx_memcpy(body->data, msg->body.data, msg->body.len);
    }

    if (body->len > NGX_HTTP_MPNS_MAX_TILE) {
        /* too long to keep: the device has no tile to be sent again */
        size = 0;

    } else {
        size = body->len;
    }

    new = rn;

    if (size != rn->tile_len) {

        /* the entry moves to an allocation of its new size */

        new = ngx_slab_alloc_locked(shpool,
                                    offsetof(ngx_http_mpns_registry_node_t,
                                             data)
                                    + rn->len + rn->user_len
                                    + rn->device_len + rn->os_len
                                    + rn->tags_len + size);
        if (new == NULL) {
            if (!sh->full) {
                sh->full = 1;
                ngx_log_error(NGX_LOG_CRIT, log, 0,
                              "mpns registry zone \"%V\" is full",
                              &reg->shm_zone->shm.name);
            }

            ngx_shmtx_unlock(&shpool->mutex);
            return NGX_BUSY;
        }

        ngx_memcpy(new, rn, offsetof(ngx_http_mpns_registry_node_t, data)
                            + rn->len + rn->user_len + rn->device_len
                            + rn->os_len + rn->tags_len);

        ngx_rbtree_delete(&sh->channels, &rn->node);
        ngx_rbtree_insert(&sh->channels, &new->node);

        ngx_http_mpns_registry_owner_replace(sh, rn, new);

        ngx_slab_free_locked(shpool, rn);

        new->tile_len = (uint16_t) size;
    }

    new->count = (u_char) count;

    ngx_http_mpns_registry_entry(new, &stored);
    ngx_memcpy(stored.tile.data, body->data, size);

    p = ngx_http_mpns_state_record(&reg->file, NGX_HTTP_MPNS_RECORD_SET,
                                   ngx_http_mpns_registry_json_len(&stored));
    if (p) {
        ngx_http_mpns_state_recorded(&reg->file,
                                     ngx_http_mpns_registry_json(p, &stored));
    }

    ngx_shmtx_unlock(&shpool->mutex);

    (void) ngx_http_mpns_state_commit(&reg->file, NULL, NGX_OK);

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_registry_last_tile(ngx_http_mpns_registry_t *reg,
    ngx_str_t *channel, ngx_pool_t *pool, ngx_str_t *tile)
{
    ngx_http_mpns_entry_t           stored;
    ngx_http_mpns_registry_node_t  *rn;

    tile->len = 0;
    tile->data = ngx_pnalloc(pool, NGX_HTTP_MPNS_MAX_TILE);

    if (tile->data == NULL) {
        return NGX_ERROR;
    }

    ngx_shmtx_lock(&reg->shpool->mutex);

    rn = ngx_http_mpns_registry_lookup(reg->sh, channel);

    if (rn) {
        ngx_http_mpns_registry_entry(rn, &stored);

        tile->len = stored.tile.len;
        ngx_memcpy(tile->data, stored.tile.data, stored.tile.len);
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_registry_delete(ngx_http_mpns_registry_t *reg, ngx_uint_t by,
    ngx_str_t *value, ngx_uint_t *deleted, ngx_http_mpns_store_op_t *op)
{
    ngx_uint_t                       n;
    ngx_slab_pool_t                 *shpool;
    ngx_http_mpns_cursor_t           cursor;
    ngx_http_mpns_registry_node_t   *rn, *next, *last;
    ngx_http_mpns_registry_shctx_t  *sh;

    *deleted = 0;

    sh = reg->sh;
    shpool = reg->shpool;

    if (value->len == 0) {
        return NGX_OK;
    }

    if (by != NGX_HTTP_MPNS_BY_USER) {
        ngx_shmtx_lock(&shpool->mutex);

        if (ngx_http_mpns_state_retired(&reg->file)) {
            ngx_shmtx_unlock(&shpool->mutex);
            return ngx_http_mpns_registry_refused(reg, ngx_cycle->log);
        }

        if (by == NGX_HTTP_MPNS_BY_CHANNEL) {
            rn = ngx_http_mpns_registry_lookup(sh, value);

        } else {
            rn = ngx_http_mpns_registry_lookup_owner(sh,
                                                  NGX_HTTP_MPNS_OWNER_DEVICE,
                                                  value);
        }

        if (rn) {
            ngx_http_mpns_registry_free(reg, rn, 1);
            *deleted = 1;
        }

        ngx_shmtx_unlock(&shpool->mutex);

        return ngx_http_mpns_state_commit(&reg->file, op, NGX_OK);
    }

    /*
     * a user may own entries through its devices too, so all are looked
     * at, NGX_HTTP_MPNS_SCAN of them per lock
     */

    ngx_memzero(&cursor, sizeof(ngx_http_mpns_cursor_t));

    while (!cursor.done) {

        ngx_shmtx_lock(&shpool->mutex);

        if (ngx_http_mpns_state_retired(&reg->file)) {
            ngx_shmtx_unlock(&shpool->mutex);
            return ngx_http_mpns_registry_refused(reg, ngx_cycle->log);
        }

        rn = ngx_http_mpns_registry_after(sh, &cursor);
        last = NULL;

        for (n = 0; rn && n < NGX_HTTP_MPNS_SCAN; n++) {
            next = ngx_http_mpns_registry_succ(sh, rn);

            if (rn->user_len == value->len
                && ngx_memcmp(rn->data + rn->len, value->data, value->len)
                   == 0)
            {
                ngx_http_mpns_registry_mark(&cursor, rn);
                ngx_http_mpns_registry_free(reg, rn, 1);
                (*deleted)++;
                last = NULL;

            } else {
                last = rn;
            }

            rn = next;
        }

        if (last) {
            ngx_http_mpns_registry_mark(&cursor, last);
        }

        if (rn == NULL) {
            cursor.done = 1;
        }

        ngx_shmtx_unlock(&shpool->mutex);
    }

    return ngx_http_mpns_state_commit(&reg->file, op, NGX_OK);
}


ngx_http_mpns_reader_t *
ngx_http_mpns_reader_create(ngx_pool_t *pool, ngx_http_mpns_registry_t *reg,
    ngx_http_mpns_filter_t *filter)
{
    ngx_http_mpns_reader_t  *rd;

    rd = ngx_pcalloc(pool, sizeof(ngx_http_mpns_reader_t));
    if (rd == NULL) {
        return NULL;
    }

    rd->start = ngx_pnalloc(pool, NGX_HTTP_MPNS_READER_BUFFER);
    if (rd->start == NULL) {
        return NULL;
    }

    rd->registry = reg;
    rd->filter = *filter;
    rd->pos = rd->start;
    rd->last = rd->start;
    rd->end = rd->start + NGX_HTTP_MPNS_READER_BUFFER;

    return rd;
}


ngx_int_t
ngx_http_mpns_reader_next(ngx_http_mpns_reader_t *rd, ngx_str_t *channel,
    ngx_uint_t *refilled)
{
    *refilled = 0;

    while (rd->pos == rd->last) {

        if (rd->cursor.done) {
            return NGX_DONE;
        }

        rd->pos = rd->start;
        rd->last = rd->start;

        if (ngx_http_mpns_registry_next(rd->registry, &rd->filter,
                                        &rd->cursor,
                                        NGX_HTTP_MPNS_READER_REFILL,
                                        ngx_http_mpns_reader_take, rd)
            != NGX_OK)
        {
            return NGX_ERROR;
        }

        *refilled = 1;
    }

    channel->len = (rd->pos[0] << 8) | rd->pos[1];
    channel->data = rd->pos + 2;

    rd->pos += 2 + channel->len;

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_reader_take(ngx_http_mpns_entry_t *entry, void *data)
{
    ngx_http_mpns_reader_t *rd = data;

    size_t  len;

    len = entry->channel.len;

    if ((size_t) (rd->end - rd->last) < 2 + len) {
        return NGX_DECLINED;
    }

    *rd->last++ = (u_char) (len >> 8);
    *rd->last++ = (u_char) (len & 0xff);
    rd->last = ngx_cpymem(rd->last, entry->channel.data, len);

    return NGX_OK;
}


ngx_int_t
ngx_http_mpns_registry_next(ngx_http_mpns_registry_t *reg,
    ngx_http_mpns_filter_t *filter, ngx_http_mpns_cursor_t *cursor,
    ngx_uint_t limit, ngx_http_mpns_entry_pt handler, void *data)
{
    ngx_int_t                       rc;
    ngx_uint_t                      n, taken;
    ngx_http_mpns_entry_t           entry;
    ngx_http_mpns_registry_node_t  *rn, *last;

    if (cursor->done) {
        return NGX_OK;
    }

    rc = NGX_OK;
    taken = 0;
    last = NULL;

    ngx_shmtx_lock(&reg->shpool->mutex);

    rn = ngx_http_mpns_registry_after(reg->sh, cursor);

    for (n = 0; rn && taken < limit && n < NGX_HTTP_MPNS_SCAN; n++) {

        if (ngx_http_mpns_registry_match(rn, filter)) {
            ngx_http_mpns_registry_entry(rn, &entry);

            rc = handler(&entry, data);

            if (rc == NGX_DECLINED) {
                rc = NGX_OK;
                break;
            }

            if (rc != NGX_OK) {
                rc = NGX_ERROR;
                break;
            }

            taken++;
        }

        last = rn;
        rn = ngx_http_mpns_registry_succ(reg->sh, rn);
    }

    if (last) {
        ngx_http_mpns_registry_mark(cursor, last);
    }

    if (rn == NULL) {
        cursor->done = 1;
    }

    ngx_shmtx_unlock(&reg->shpool->mutex);

    return rc;
}


/* a cursor at "channel", as if it had just been handed out */

void
ngx_http_mpns_registry_at(ngx_http_mpns_cursor_t *cursor, ngx_str_t *channel)
{
    cursor->hash = ngx_crc32_short(channel->data, channel->len);
    cursor->len = channel->len;
    ngx_memcpy(cursor->channel, channel->data, channel->len);
    cursor->started = 1;
}


/* whether "channel" comes before "cursor", or is at it */

ngx_uint_t
ngx_http_mpns_registry_within(ngx_http_mpns_cursor_t *cursor,
    ngx_str_t *channel)
{
    uint32_t  hash;

    if (!cursor->started) {
        return 0;
    }

    hash = ngx_crc32_short(channel->data, channel->len);

    if (hash != cursor->hash) {
        return hash < cursor->hash;
    }

    return ngx_memn2cmp(channel->data, cursor->channel, channel->len,
                        cursor->len)
           <= 0;
}


size_t
ngx_http_mpns_registry_json_len(ngx_http_mpns_entry_t *entry)
{
    size_t       len;
    ngx_str_t   *s;
    ngx_uint_t   i;

    len = sizeof("{\"channel\":,\"user\":,\"device\":,\"tags\":[],\"os\":,"
                 "\"created\":}") - 1
          + ngx_http_mpns_json_str_len(&entry->channel) + NGX_TIME_T_LEN;

    for (s = &entry->user; s <= &entry->os; s++) {
        len += s->len ? ngx_http_mpns_json_str_len(s) : sizeof("null") - 1;
    }

    for (i = 0; i < entry->ntags; i++) {
        len += sizeof(",") - 1 + ngx_http_mpns_json_str_len(&entry->tags[i]);
    }

    if (entry->count) {
        len += sizeof(",\"count\":") - 1 + NGX_INT_T_LEN;
    }

    if (entry->tile.len) {
        len += sizeof(",\"tile\":") - 1
               + ngx_http_mpns_json_str_len(&entry->tile);
    }

    return len;
}


/* the one JSON form of an entry: API answers and state file lines */

u_char *
ngx_http_mpns_registry_json(u_char *p, ngx_http_mpns_entry_t *entry)
{
    ngx_uint_t  i;

    p = ngx_cpymem(p, "{\"channel\":", sizeof("{\"channel\":") - 1);
    p = ngx_http_mpns_json_str(p, &entry->channel);

    p = ngx_cpymem(p, ",\"user\":", sizeof(",\"user\":") - 1);
    p = entry->user.len ? ngx_http_mpns_json_str(p, &entry->user)
                        : ngx_cpymem(p, "null", sizeof("null") - 1);

    p = ngx_cpymem(p, ",\"device\":", sizeof(",\"device\":") - 1);
    p = entry->device.len ? ngx_http_mpns_json_str(p, &entry->device)
                          : ngx_cpymem(p, "null", sizeof("null") - 1);

    p = ngx_cpymem(p, ",\"tags\":[", sizeof(",\"tags\":[") - 1);

    for (i = 0; i < entry->ntags; i++) {
        if (i) {
            *p++ = ',';
        }

        p = ngx_http_mpns_json_str(p, &entry->tags[i]);
    }

    p = ngx_cpymem(p, "],\"os\":", sizeof("],\"os\":") - 1);
    p = entry->os.len ? ngx_http_mpns_json_str(p, &entry->os)
                      : ngx_cpymem(p, "null", sizeof("null") - 1);

    p = ngx_sprintf(p, ",\"created\":%T", entry->created);

    /* only where used: the entries of other registries look as they did */

    if (entry->count) {
        p = ngx_sprintf(p, ",\"count\":%ui", entry->count);
    }

    if (entry->tile.len) {
        p = ngx_cpymem(p, ",\"tile\":", sizeof(",\"tile\":") - 1);
        p = ngx_http_mpns_json_str(p, &entry->tile);
    }

    *p++ = '}';

    return p;
}


/*
 * {"channel": "...", "user": "...", "device": "...", "tags": [...],
 * "os": "...", "count": N}, and "created" and "tile" in a state file
 * ("stored"); null or an empty string is the same as a missing key
 */

ngx_int_t
ngx_http_mpns_registry_parse(ngx_pool_t *pool, ngx_str_t *text,
    ngx_uint_t stored, ngx_http_mpns_entry_t *entry,
    ngx_http_mpns_error_t *err)
{
    ngx_int_t                  rc, created, count;
    ngx_str_t                  name, value, *field;
    ngx_uint_t                 i, j, k, e, n, seen;
    ngx_http_mpns_json_t       json;
    ngx_http_mpns_json_tok_t  *t, *v;

    ngx_memzero(entry, sizeof(ngx_http_mpns_entry_t));

    rc = ngx_http_mpns_json_parse(pool, text, &json);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc == NGX_DECLINED) {
        return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                           json.error,
                                           &ngx_http_mpns_registry_body_field);
    }

    if (json.tokens[0].type != NGX_HTTP_MPNS_JSON_OBJECT) {
        return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                           "invalid json",
                                           &ngx_http_mpns_registry_body_field);
    }

    t = json.tokens;
    i = 1;
    seen = 0;

    for (n = 0; n < t[0].size; n++) {

        if (ngx_http_mpns_json_string(pool, &t[i], &name) != NGX_OK) {
            return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                           "invalid json",
                                           &ngx_http_mpns_registry_body_field);
        }

        v = &t[i + 1];
        i = v->next;

        for (k = 0; ngx_http_mpns_registry_fields[k].len; k++) {
            field = &ngx_http_mpns_registry_fields[k];

            if (field->len == name.len
                && ngx_strncmp(field->data, name.data, name.len) == 0)
            {
                break;
            }
        }

        field = &ngx_http_mpns_registry_fields[k];

        if (field->len == 0
            || ((k == NGX_HTTP_MPNS_R_CREATED || k == NGX_HTTP_MPNS_R_TILE)
                && !stored))
        {
            return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                                  "unknown field", &name);
        }

        if (seen & ((ngx_uint_t) 1 << k)) {
            return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                                  "duplicate field", field);
        }

        seen |= (ngx_uint_t) 1 << k;

        if (v->type == NGX_HTTP_MPNS_JSON_PRIMITIVE
            && v->raw.len == 4 && ngx_strncmp(v->raw.data, "null", 4) == 0)
        {
            continue;
        }

        switch (k) {

        case NGX_HTTP_MPNS_R_CHANNEL:

            /* checked as a send checks it, by the caller */

            rc = ngx_http_mpns_registry_string(pool, v, field, 0,
                                               &entry->channel, err);
            break;

        case NGX_HTTP_MPNS_R_USER:
            rc = ngx_http_mpns_registry_string(pool, v, field,
                                               NGX_HTTP_MPNS_MAX_NAME,
                                               &entry->user, err);
            break;

        case NGX_HTTP_MPNS_R_DEVICE:
            rc = ngx_http_mpns_registry_string(pool, v, field,
                                               NGX_HTTP_MPNS_MAX_NAME,
                                               &entry->device, err);
            break;

        case NGX_HTTP_MPNS_R_OS:
            rc = ngx_http_mpns_registry_string(pool, v, field,
                                               NGX_HTTP_MPNS_MAX_NAME,
                                               &entry->os, err);
            break;

        case NGX_HTTP_MPNS_R_TAGS:

            if (v->type != NGX_HTTP_MPNS_JSON_ARRAY) {
                return ngx_http_mpns_registry_mistake(err,
                                                      NGX_HTTP_BAD_REQUEST,
                                                      "invalid value", field);
            }

            rc = NGX_OK;
            j = (v - t) + 1;

            for (e = 0; e < v->size; e++, j = t[j].next) {

                rc = ngx_http_mpns_registry_string(pool, &t[j], field,
                                                   NGX_HTTP_MPNS_MAX_TAG,
                                                   &value, err);
                if (rc != NGX_OK) {
                    break;
                }

                if (value.len == 0) {
                    continue;
                }

                for (k = 0; k < entry->ntags; k++) {
                    if (entry->tags[k].len == value.len
                        && ngx_strncmp(entry->tags[k].data, value.data,
                                       value.len)
                           == 0)
                    {
                        break;
                    }
                }

                if (k < entry->ntags) {
                    continue;
                }

                if (entry->ntags == NGX_HTTP_MPNS_MAX_TAGS) {
                    return ngx_http_mpns_registry_mistake(err,
                                                      NGX_HTTP_BAD_REQUEST,
                                                      "too many tags", field);
                }

                entry->tags[entry->ntags++] = value;
            }

            break;

        case NGX_HTTP_MPNS_R_COUNT:

            count = NGX_ERROR;

            if (v->type == NGX_HTTP_MPNS_JSON_PRIMITIVE) {
                count = ngx_atoi(v->raw.data, v->raw.len);
            }

            if (count == NGX_ERROR || count > NGX_HTTP_MPNS_MAX_COUNT) {
                return ngx_http_mpns_registry_mistake(err,
                                                      NGX_HTTP_BAD_REQUEST,
                                                      "invalid value", field);
            }

            entry->count = count;
            rc = NGX_OK;
            break;

        case NGX_HTTP_MPNS_R_TILE:

            /* sent again as it is: what the service built, and no more */

            rc = ngx_http_mpns_registry_string(pool, v, field,
                                               NGX_HTTP_MPNS_MAX_TILE,
                                               &entry->tile, err);

            if (rc == NGX_OK && entry->tile.len
                && (entry->tile.len < sizeof("<?xml ") - 1
                    || ngx_strncmp(entry->tile.data, "<?xml ",
                                   sizeof("<?xml ") - 1)
                       != 0))
            {
                return ngx_http_mpns_registry_mistake(err,
                                                      NGX_HTTP_BAD_REQUEST,
                                                      "invalid value", field);
            }

            break;

        default: /* NGX_HTTP_MPNS_R_CREATED */

            created = NGX_ERROR;

            if (v->type == NGX_HTTP_MPNS_JSON_PRIMITIVE) {
                created = ngx_atoi(v->raw.data, v->raw.len);
            }

            if (created == NGX_ERROR || created > NGX_MAX_UINT32_VALUE) {
                return ngx_http_mpns_registry_mistake(err,
                                                      NGX_HTTP_BAD_REQUEST,
                                                      "invalid value", field);
            }

            entry->created = (time_t) created;
            rc = NGX_OK;
            break;
        }

        if (rc != NGX_OK) {
            return rc;
        }
    }

    if (entry->channel.len == 0) {
        return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                        "missing field",
                                        &ngx_http_mpns_registry_fields[0]);
    }

    return NGX_OK;
}


/*
 * a string of at most "max" bytes (0: any) in UTF-8 without control
 * characters
 */

static ngx_int_t
ngx_http_mpns_registry_string(ngx_pool_t *pool, ngx_http_mpns_json_tok_t *tok,
    ngx_str_t *name, size_t max, ngx_str_t *value,
    ngx_http_mpns_error_t *err)
{
    ngx_int_t  rc;

    if (tok->type != NGX_HTTP_MPNS_JSON_STRING) {
        return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                              "invalid value", name);
    }

    rc = ngx_http_mpns_json_string(pool, tok, value);

    if (rc == NGX_ERROR) {
        return NGX_ERROR;
    }

    if (rc != NGX_OK) {
        return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                              "invalid character", name);
    }

    if (max == 0) {
        return NGX_OK;
    }

    if (ngx_http_mpns_json_valid_name(value) != NGX_OK) {
        return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                              "invalid character", name);
    }

    if (value->len > max) {
        return ngx_http_mpns_registry_mistake(err, NGX_HTTP_BAD_REQUEST,
                                              "value too long", name);
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_mpns_registry_mistake(ngx_http_mpns_error_t *err, ngx_uint_t status,
    const char *text, ngx_str_t *field)
{
    err->status = status;
    err->text = text;
    err->field = *field;

    return NGX_DECLINED;
}


ngx_int_t
ngx_http_mpns_registry_init_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i;
    ngx_shm_zone_t            **zones;
    ngx_http_mpns_registry_t   *reg;
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mpns_module);

    if (mmcf == NULL) {
        return NGX_OK;
    }

    zones = mmcf->registries.elts;

    for (i = 0; i < mmcf->registries.nelts; i++) {
        reg = zones[i]->data;

        if (ngx_http_mpns_state_init_process(&reg->file, cycle) != NGX_OK) {
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


void
ngx_http_mpns_registry_exit_process(ngx_cycle_t *cycle)
{
    ngx_uint_t                  i;
    ngx_shm_zone_t            **zones;
    ngx_http_mpns_registry_t   *reg;
    ngx_http_mpns_main_conf_t  *mmcf;

    mmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_mpns_module);

    if (mmcf == NULL) {
        return;
    }

    zones = mmcf->registries.elts;

    for (i = 0; i < mmcf->registries.nelts; i++) {
        reg = zones[i]->data;
        ngx_http_mpns_state_exit_process(&reg->file, cycle);
    }
}


/* the state file, a buffer at a time; see ngx_http_mpns_state_render_pt */

static ngx_int_t
ngx_http_mpns_registry_render(ngx_http_mpns_state_t *st, void *cursor,
    ngx_buf_t *b)
{
    ngx_http_mpns_cursor_t *c = cursor;

    if (ngx_http_mpns_registry_next(st->data, NULL, c, NGX_MAX_UINT32_VALUE,
                                    ngx_http_mpns_registry_record, b)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    return c->done ? NGX_OK : NGX_AGAIN;
}


/* called with the zone locked */

static ngx_int_t
ngx_http_mpns_registry_record(ngx_http_mpns_entry_t *entry, void *data)
{
    ngx_buf_t *b = data;

    u_char  *p;
    size_t   len;

    len = ngx_http_mpns_registry_json_len(entry) + 1;

    if (len > (size_t) (b->end - b->last)) {
        return NGX_DECLINED;
    }

    p = ngx_http_mpns_registry_json(b->last, entry);
    *p++ = LF;

    if ((size_t) (p - b->last) > len) {
        ngx_log_error(NGX_LOG_ALERT, ngx_cycle->log, 0,
                      "mpns registry state: buffer overflow");
        return NGX_ERROR;
    }

    b->last = p;

    return NGX_OK;
}


static void
ngx_http_mpns_registry_insert_channel(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t              **p;
    ngx_http_mpns_registry_node_t   *rn;

    rn = (ngx_http_mpns_registry_node_t *) node;

    for ( ;; ) {

        p = (ngx_http_mpns_registry_cmp(node->key, rn->data, rn->len, temp)
             < 0)
            ? &temp->left : &temp->right;

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


/* (hash, channel) against a node of the channel tree */

static ngx_int_t
ngx_http_mpns_registry_cmp(uint32_t hash, u_char *data, size_t len,
    ngx_rbtree_node_t *node)
{
    ngx_http_mpns_registry_node_t  *rn;

    if (hash != node->key) {
        return (hash < node->key) ? -1 : 1;
    }

    rn = (ngx_http_mpns_registry_node_t *) node;

    return ngx_memn2cmp(data, rn->data, len, rn->len);
}


static ngx_uint_t
ngx_http_mpns_registry_owner(ngx_http_mpns_registry_node_t *rn,
    ngx_str_t *owner)
{
    if (rn->device_len) {
        owner->data = rn->data + rn->len + rn->user_len;
        owner->len = rn->device_len;
        return NGX_HTTP_MPNS_OWNER_DEVICE;
    }

    if (rn->user_len) {
        owner->data = rn->data + rn->len;
        owner->len = rn->user_len;
        return NGX_HTTP_MPNS_OWNER_USER;
    }

    ngx_str_null(owner);

    return NGX_HTTP_MPNS_OWNER_NONE;
}


static ngx_http_mpns_registry_node_t *
ngx_http_mpns_registry_lookup(ngx_http_mpns_registry_shctx_t *sh,
    ngx_str_t *channel)
{
    uint32_t            hash;
    ngx_int_t           rc;
    ngx_rbtree_node_t  *node, *sentinel;

    hash = ngx_crc32_short(channel->data, channel->len);

    node = sh->channels.root;
    sentinel = sh->channels.sentinel;

    while (node != sentinel) {
        rc = ngx_http_mpns_registry_cmp(hash, channel->data, channel->len,
                                        node);

        if (rc == 0) {
            return (ngx_http_mpns_registry_node_t *) node;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    return NULL;
}


static ngx_http_mpns_registry_node_t *
ngx_http_mpns_registry_lookup_owner(ngx_http_mpns_registry_shctx_t *sh,
    ngx_uint_t kind, ngx_str_t *owner)
{
    uint32_t                        hash;
    ngx_str_t                       towner;
    ngx_http_mpns_registry_node_t  *rn;

    hash = ngx_crc32_short(owner->data, owner->len);

    for (rn = sh->owners[hash & sh->owners_mask]; rn; rn = rn->owner_next) {

        if (rn->owner_hash == hash
            && ngx_http_mpns_registry_owner(rn, &towner) == kind
            && towner.len == owner->len
            && ngx_memcmp(towner.data, owner->data, owner->len) == 0)
        {
            return rn;
        }
    }

    return NULL;
}


/* the first entry after the cursor, found from the root: O(log n) */

static ngx_http_mpns_registry_node_t *
ngx_http_mpns_registry_after(ngx_http_mpns_registry_shctx_t *sh,
    ngx_http_mpns_cursor_t *cursor)
{
    ngx_rbtree_node_t  *node, *sentinel, *found;

    node = sh->channels.root;
    sentinel = sh->channels.sentinel;

    if (node == sentinel) {
        return NULL;
    }

    if (!cursor->started) {
        return (ngx_http_mpns_registry_node_t *) ngx_rbtree_min(node,
                                                                sentinel);
    }

    found = NULL;

    while (node != sentinel) {
        if (ngx_http_mpns_registry_cmp(cursor->hash, cursor->channel,
                                       cursor->len, node)
            < 0)
        {
            found = node;
            node = node->left;

        } else {
            node = node->right;
        }
    }

    return (ngx_http_mpns_registry_node_t *) found;
}


static ngx_http_mpns_registry_node_t *
ngx_http_mpns_registry_succ(ngx_http_mpns_registry_shctx_t *sh,
    ngx_http_mpns_registry_node_t *rn)
{
    return (ngx_http_mpns_registry_node_t *)
               ngx_rbtree_next(&sh->channels, &rn->node);
}


/* called with the zone locked */

static void
ngx_http_mpns_registry_free(ngx_http_mpns_registry_t *reg,
    ngx_http_mpns_registry_node_t *rn, ngx_uint_t record)
{
    u_char                          *p;
    ngx_http_mpns_registry_shctx_t  *sh;

    sh = reg->sh;

    ngx_rbtree_delete(&sh->channels, &rn->node);

    ngx_http_mpns_registry_owner_replace(sh, rn, rn->owner_next);

    if (record) {
        p = ngx_http_mpns_state_record(&reg->file,
                                       NGX_HTTP_MPNS_RECORD_REMOVE, rn->len);
        if (p) {
            ngx_http_mpns_state_recorded(&reg->file,
                                         ngx_cpymem(p, rn->data, rn->len));
        }
    }

    ngx_slab_free_locked(reg->shpool, rn);

    sh->count--;
    sh->full = 0;
}


/*
 * "rn" out of its owner's chain, "by" in its place (the next one, or the
 * entry that moved); called with the zone locked
 */

static void
ngx_http_mpns_registry_owner_replace(ngx_http_mpns_registry_shctx_t *sh,
    ngx_http_mpns_registry_node_t *rn, ngx_http_mpns_registry_node_t *by)
{
    ngx_str_t                        owner;
    ngx_http_mpns_registry_node_t  **next;

    if (ngx_http_mpns_registry_owner(rn, &owner) == NGX_HTTP_MPNS_OWNER_NONE)
    {
        return;
    }

    for (next = &sh->owners[rn->owner_hash & sh->owners_mask];
         *next;
         next = &(*next)->owner_next)
    {
        if (*next == rn) {
            *next = by;
            return;
        }
    }
}


static void
ngx_http_mpns_registry_entry(ngx_http_mpns_registry_node_t *rn,
    ngx_http_mpns_entry_t *entry)
{
    u_char      *p;
    ngx_uint_t   i;

    p = rn->data;

    entry->channel.data = p;
    entry->channel.len = rn->len;
    p += rn->len;

    entry->user.data = p;
    entry->user.len = rn->user_len;
    p += rn->user_len;

    entry->device.data = p;
    entry->device.len = rn->device_len;
    p += rn->device_len;

    entry->os.data = p;
    entry->os.len = rn->os_len;
    p += rn->os_len;

    for (i = 0; i < rn->ntags; i++) {
        entry->tags[i].len = *p++;
        entry->tags[i].data = p;
        p += entry->tags[i].len;
    }

    entry->ntags = rn->ntags;
    entry->created = rn->created;

    entry->count = rn->count;
    entry->tile.data = p;
    entry->tile.len = rn->tile_len;
}


static ngx_uint_t
ngx_http_mpns_registry_match(ngx_http_mpns_registry_node_t *rn,
    ngx_http_mpns_filter_t *filter)
{
    u_char      *p, *last;
    ngx_str_t   *s;

    if (filter == NULL) {
        return 1;
    }

    s = &filter->user;

    if (s->len
        && (s->len != rn->user_len
            || ngx_memcmp(rn->data + rn->len, s->data, s->len) != 0))
    {
        return 0;
    }

    s = &filter->os;

    if (s->len
        && (s->len != rn->os_len
            || ngx_memcmp(rn->data + rn->len + rn->user_len + rn->device_len,
                          s->data, s->len)
               != 0))
    {
        return 0;
    }

    s = &filter->tag;

    if (s->len == 0) {
        return 1;
    }

    p = rn->data + rn->len + rn->user_len + rn->device_len + rn->os_len;
    last = p + rn->tags_len;

    while (p < last) {
        if (*p == s->len && ngx_memcmp(p + 1, s->data, s->len) == 0) {
            return 1;
        }

        p += 1 + *p;
    }

    return 0;
}


static void
ngx_http_mpns_registry_mark(ngx_http_mpns_cursor_t *cursor,
    ngx_http_mpns_registry_node_t *rn)
{
    cursor->hash = (uint32_t) rn->node.key;
    cursor->len = rn->len;
    ngx_memcpy(cursor->channel, rn->data, rn->len);
    cursor->started = 1;
}


ngx_uint_t
ngx_http_mpns_registry_full(ngx_http_mpns_registry_t *reg)
{
    return reg->sh->full;
}


ngx_str_t *
ngx_http_mpns_registry_state(ngx_http_mpns_registry_t *reg)
{
    return &reg->file.path;
}
