
/*
 * Copyright (C) ngx_mpns_module authors
 */


#ifndef _NGX_HTTP_MPNS_REGISTRY_H_INCLUDED_
#define _NGX_HTTP_MPNS_REGISTRY_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_mpns.h"
#include "ngx_http_mpns_message.h"
#include "ngx_http_mpns_store.h"


#define NGX_HTTP_MPNS_MAX_TAGS          16
#define NGX_HTTP_MPNS_MAX_TAG           64
#define NGX_HTTP_MPNS_MAX_NAME          255     /* user, device, os */
#define NGX_HTTP_MPNS_MAX_COUNT         99      /* what a tile shows */
#define NGX_HTTP_MPNS_MAX_TILE          1024    /* a tile remembered */

/* how many entries one ngx_http_mpns_registry_next() call may look at */
#define NGX_HTTP_MPNS_SCAN              4096

#define NGX_HTTP_MPNS_BY_CHANNEL        0
#define NGX_HTTP_MPNS_BY_DEVICE         1
#define NGX_HTTP_MPNS_BY_USER           2


/* one registration; when read from the zone, strings point into it */
typedef struct {
    ngx_str_t                      channel;
    ngx_str_t                      user;      /* empty: none */
    ngx_str_t                      device;
    ngx_str_t                      os;
    ngx_str_t                      tags[NGX_HTTP_MPNS_MAX_TAGS];
    ngx_uint_t                     ntags;
    time_t                         created;
    ngx_uint_t                     count;     /* mpns_counter's */
    ngx_str_t                      tile;      /* the last tile sent */

    /* set by ngx_http_mpns_registry_set(): the count the device had */
    ngx_uint_t                     previous;
} ngx_http_mpns_entry_t;


/* which entries a listing or a broadcast wants; an empty string: any */
struct ngx_http_mpns_filter_s {
    ngx_str_t                      user;
    ngx_str_t                      tag;
    ngx_str_t                      os;
};


/*
 * A position in the registry that survives releasing the zone lock:
 * the last entry handed out, compared as the registry orders entries.
 */
typedef struct {
    uint32_t                       hash;
    size_t                         len;
    u_char                         channel[NGX_HTTP_MPNS_MAX_CHANNEL];

    unsigned                       started:1;
    unsigned                       done:1;
} ngx_http_mpns_cursor_t;


/*
 * A broadcast's recipients: channels copied ahead from the registry, a few
 * dozen per hold of the zone lock, [len:2][bytes] each.
 */
struct ngx_http_mpns_reader_s {
    ngx_http_mpns_registry_t      *registry;
    ngx_http_mpns_filter_t         filter;
    ngx_http_mpns_cursor_t         cursor;
    u_char                        *start;
    u_char                        *pos;
    u_char                        *last;
    u_char                        *end;
    ngx_http_mpns_store_op_t       op;
};


/*
 * Called with the zone locked: copy what is needed and return NGX_OK to
 * take the entry (the cursor moves past it), NGX_DECLINED to stop before
 * it (it is offered again by the next call), or NGX_ERROR.
 */
typedef ngx_int_t (*ngx_http_mpns_entry_pt)(ngx_http_mpns_entry_t *entry,
    void *data);


/* directives, referenced from the module's command table */
char *ngx_http_mpns_registry_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_mpns_registry_directive(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);

/* "NAME" of mpns_registry/mpns_broadcast; NULL after an [emerg] */
ngx_shm_zone_t *ngx_http_mpns_registry_add(ngx_conf_t *cf, ngx_str_t *name);

/* NGX_CONF_OK, or an error if the zone was referenced but not declared */
char *ngx_http_mpns_registry_check(ngx_conf_t *cf, ngx_shm_zone_t *zone);

ngx_http_mpns_registry_t *ngx_http_mpns_registry_get(ngx_shm_zone_t *zone);
ngx_str_t *ngx_http_mpns_registry_name(ngx_http_mpns_registry_t *reg);
ngx_uint_t ngx_http_mpns_registry_count(ngx_http_mpns_registry_t *reg);

/*
 * The registry's operations; each may answer NGX_AGAIN and complete
 * through "op" later (ngx_http_mpns_store.h).
 *
 * Stores "entry" (created 0: now, or kept from the same channel's entry;
 * set to what was stored; tile.data NULL: the tile of the entry it
 * replaces).  NGX_OK: a new channel, NGX_DONE: the channel was there,
 * NGX_BUSY: the zone is full and nothing changed.  A channel
 * of the same device (or of the same user, without a device) is dropped
 * and copied to "replaced" (room for NGX_HTTP_MPNS_MAX_CHANNEL bytes;
 * may be NULL).  "entry" and "replaced" stay the caller's until "op"
 * completes.
 */
ngx_int_t ngx_http_mpns_registry_set(ngx_http_mpns_registry_t *reg,
    ngx_http_mpns_entry_t *entry, ngx_str_t *replaced, ngx_log_t *log,
    ngx_http_mpns_store_op_t *op);

/*
 * Entries after "cursor" that match "filter", at most "limit" of them and
 * looking at no more than NGX_HTTP_MPNS_SCAN; sets cursor->done at the end.
 */
ngx_int_t ngx_http_mpns_registry_next(ngx_http_mpns_registry_t *reg,
    ngx_http_mpns_filter_t *filter, ngx_http_mpns_cursor_t *cursor,
    ngx_uint_t limit, ngx_http_mpns_entry_pt handler, void *data);

/* a reader with its buffer in "pool", at the start of the registry */
ngx_http_mpns_reader_t *ngx_http_mpns_reader_create(ngx_pool_t *pool,
    ngx_http_mpns_registry_t *reg, ngx_http_mpns_filter_t *filter);

/*
 * NGX_OK with the next channel (valid until the next call; "refilled" tells
 * that the cursor moved), NGX_DONE at the end, NGX_ERROR; NGX_AGAIN while
 * the next channels are being fetched: rd->op.handler is called when they
 * are there
 */
ngx_int_t ngx_http_mpns_reader_next(ngx_http_mpns_reader_t *rd,
    ngx_str_t *channel, ngx_uint_t *refilled);

/* a cursor at a channel; whether a channel is before a cursor, or at it */
void ngx_http_mpns_registry_at(ngx_http_mpns_cursor_t *cursor,
    ngx_str_t *channel);
ngx_uint_t ngx_http_mpns_registry_within(ngx_http_mpns_cursor_t *cursor,
    ngx_str_t *channel);

/*
 * A tile sent to a registered "channel", "msg" as built for every
 * recipient: with "counted" the entry's count goes up by one (up to
 * NGX_HTTP_MPNS_MAX_COUNT) and is written into "body" (room for
 * msg->body.len + 2 bytes), which is the tile the entry then remembers.
 * NGX_DECLINED: not registered, NGX_BUSY: the zone is full and nothing
 * changed.  The caller does not wait for the journal.
 */
ngx_int_t ngx_http_mpns_registry_tile(ngx_http_mpns_registry_t *reg,
    ngx_str_t *channel, ngx_http_mpns_message_t *msg, ngx_uint_t counted,
    ngx_str_t *body, ngx_log_t *log);

/* a copy of the tile "channel" last had, in "pool"; empty: none */
ngx_int_t ngx_http_mpns_registry_last_tile(ngx_http_mpns_registry_t *reg,
    ngx_str_t *channel, ngx_pool_t *pool, ngx_str_t *tile);

/* removes entries by channel, device or user; "deleted" counts them */
ngx_int_t ngx_http_mpns_registry_delete(ngx_http_mpns_registry_t *reg,
    ngx_uint_t by, ngx_str_t *value, ngx_uint_t *deleted,
    ngx_http_mpns_store_op_t *op);

/* an entry as JSON, the same in answers and in the state file */
size_t ngx_http_mpns_registry_json_len(ngx_http_mpns_entry_t *entry);
u_char *ngx_http_mpns_registry_json(u_char *p, ngx_http_mpns_entry_t *entry);

/*
 * A JSON object into "entry" (strings in "pool" or "text"); "stored"
 * allows "created".  NGX_DECLINED: a mistake described in "err".
 */
ngx_int_t ngx_http_mpns_registry_parse(ngx_pool_t *pool, ngx_str_t *text,
    ngx_uint_t stored, ngx_http_mpns_entry_t *entry,
    ngx_http_mpns_error_t *err);

/* the location handler of mpns_registry */
ngx_int_t ngx_http_mpns_registry_handler(ngx_http_request_t *r);

/* per worker: arm state saving; flush it when the worker exits */
ngx_int_t ngx_http_mpns_registry_init_process(ngx_cycle_t *cycle);
void ngx_http_mpns_registry_exit_process(ngx_cycle_t *cycle);


/* for the status page: an entry found no room since the last removal */
ngx_uint_t ngx_http_mpns_registry_full(ngx_http_mpns_registry_t *reg);
ngx_str_t *ngx_http_mpns_registry_state(ngx_http_mpns_registry_t *reg);


#endif /* _NGX_HTTP_MPNS_REGISTRY_H_INCLUDED_ */
